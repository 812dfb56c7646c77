//! GitHub App authentication (issue #17), as organisations run bots: the App's
//! private key signs a short JWT (RS256, through `ring`), the JWT buys an
//! installation token (`POST /app/installations/{id}/access_tokens`), and the token
//! is reused until five minutes before it expires. The App's bot user
//! (`<slug>[bot]`) is the author of the host's commits, so they are attributed as
//! GitHub attributes the App's own.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use std::path::Path;

/// Why an App's key or token could not be had. Never quotes the key.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("GitHub App private key {}: {message}", path.display())]
    Key {
        path: std::path::PathBuf,
        message: String,
    },
    #[error("GitHub App {app_id}: {message}")]
    Sign { app_id: u64, message: String },
}

/// An installation token is renewed when less than this is left of it.
pub const RENEW_BEFORE_SECS: u64 = 300;

/// How long a JWT is valid (GitHub allows at most ten minutes).
const JWT_LIFETIME_SECS: u64 = 540;

/// GitHub's clock may be a little behind ours: the JWT is issued a minute early.
const JWT_BACKDATE_SECS: u64 = 60;

/// An App's RSA private key.
pub struct AppKey {
    key: ring::rsa::KeyPair,
}

impl std::fmt::Debug for AppKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppKey(..)")
    }
}

/// The DER inside a PEM block with `label`, if the text holds one.
fn pem_block(text: &str, label: &str) -> Option<Result<Vec<u8>, String>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let stop = text[start..].find(&end)? + start;
    let body: String = text[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    Some(
        STANDARD
            .decode(body)
            .map_err(|_| "the PEM body is not base64".to_string()),
    )
}

impl AppKey {
    /// Reads a PEM private key (PKCS#1 `RSA PRIVATE KEY`, as GitHub hands them out,
    /// or PKCS#8 `PRIVATE KEY`) from a regular file of bounded size.
    pub fn load(path: &Path) -> Result<AppKey, AppError> {
        let err = |message: String| AppError::Key {
            path: path.to_path_buf(),
            message,
        };
        let text =
            leviathan_domain::repofs::read_secret_file(path).map_err(|e| err(e.to_string()))?;
        AppKey::from_pem(&text).map_err(err)
    }

    /// Parses a PEM private key.
    pub fn from_pem(text: &str) -> Result<AppKey, String> {
        let key = if let Some(der) = pem_block(text, "RSA PRIVATE KEY") {
            ring::rsa::KeyPair::from_der(&der?)
        } else if let Some(der) = pem_block(text, "PRIVATE KEY") {
            ring::rsa::KeyPair::from_pkcs8(&der?)
        } else {
            return Err(
                "no `RSA PRIVATE KEY` or `PRIVATE KEY` PEM block (GitHub's .pem download is one)"
                    .into(),
            );
        }
        .map_err(|e| format!("not a usable RSA private key ({e})"))?;
        Ok(AppKey { key })
    }

    /// The public half (DER `RSAPublicKey`), for checking signatures.
    pub fn public_der(&self) -> Vec<u8> {
        use ring::signature::KeyPair;
        self.key.public_key().as_ref().to_vec()
    }

    /// A JWT for App `app_id` issued at `now` (seconds since the epoch).
    pub fn jwt(&self, app_id: u64, now: u64) -> Result<String, AppError> {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let iat = now.saturating_sub(JWT_BACKDATE_SECS);
        let claims = URL_SAFE_NO_PAD.encode(
            serde_json::json!({"iat": iat, "exp": iat + JWT_LIFETIME_SECS, "iss": app_id.to_string()})
                .to_string(),
        );
        let input = format!("{header}.{claims}");
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| AppError::Sign {
                app_id,
                message: "signing the JWT failed".into(),
            })?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

/// An installation token and when it expires.
#[derive(Clone)]
pub struct InstallationToken {
    pub token: String,
    pub expires_epoch: u64,
}

impl std::fmt::Debug for InstallationToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "InstallationToken(expires {})", self.expires_epoch)
    }
}

impl InstallationToken {
    /// Whether it is still good for a pass at `now` (more than
    /// [`RENEW_BEFORE_SECS`] left).
    pub fn fresh(&self, now: u64) -> bool {
        self.expires_epoch > now + RENEW_BEFORE_SECS
    }
}

/// Who the host's commits are by when it acts as an App: GitHub's bot user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotIdentity {
    /// `<slug>[bot]`
    pub name: String,
    /// `<user id>+<slug>[bot]@users.noreply.github.com`
    pub email: String,
}

impl BotIdentity {
    /// The bot user of the App `slug` whose user id is `user_id`.
    pub fn new(slug: &str, user_id: u64) -> BotIdentity {
        BotIdentity {
            name: format!("{slug}[bot]"),
            email: format!("{user_id}+{slug}[bot]@users.noreply.github.com"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2048-bit test key (tests/data/github-app-test-key.pem), never used anywhere
    /// but the tests.
    fn key() -> AppKey {
        let text = include_str!("../../../../tests/data/github-app-test-key.pem");
        AppKey::from_pem(text).expect("the test key parses")
    }

    #[test]
    fn a_jwt_is_rs256_signed_with_githubs_claims() {
        let k = key();
        let jwt = k.jwt(42, 1_800_000_000).expect("jwt");
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
        assert_eq!(claims["iss"], "42");
        assert_eq!(claims["iat"], 1_800_000_000 - 60);
        assert_eq!(claims["exp"], 1_800_000_000 - 60 + 540);
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).expect("b64");
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            k.public_der(),
        );
        let input = format!("{}.{}", parts[0], parts[1]);
        public
            .verify(input.as_bytes(), &signature)
            .expect("the signature verifies with the public key");
        let mut forged = input.into_bytes();
        forged[5] ^= 1;
        assert!(public.verify(&forged, &signature).is_err());
    }

    #[test]
    fn keys_that_are_not_rsa_pem_are_refused_without_quoting_them() {
        let err = AppKey::from_pem("hello SECRET").expect_err("no PEM");
        assert!(
            err.contains("PEM block") && !err.contains("SECRET"),
            "{err}"
        );
        let err = AppKey::from_pem(
            "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
        )
        .expect_err("not a key");
        assert!(err.contains("not a usable RSA private key"), "{err}");
    }

    #[test]
    fn tokens_are_renewed_five_minutes_before_they_expire() {
        let t = InstallationToken {
            token: "ghs_x".into(),
            expires_epoch: 1000,
        };
        assert!(t.fresh(699));
        assert!(!t.fresh(700));
        assert!(!format!("{t:?}").contains("ghs_x"));
    }

    #[test]
    fn the_bot_identity_follows_githubs_noreply_form() {
        let b = BotIdentity::new("leviathan", 4242);
        assert_eq!(b.name, "leviathan[bot]");
        assert_eq!(b.email, "4242+leviathan[bot]@users.noreply.github.com");
    }
}
