//! Ed25519 signatures on registry entries. The signed message binds the plugin's
//! name, version and component digest, so a signature cannot be moved to another
//! component or another entry.

use super::manifest::Manifest;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use std::path::Path;

/// The bytes a signature covers.
pub fn message(manifest: &Manifest) -> Vec<u8> {
    let mut text = format!(
        "leviathan-plugin-v1\n{}\n{}\nsha256:{}\n",
        manifest.name,
        manifest.version,
        manifest.sha256.to_ascii_lowercase()
    );
    // What the plugin may read is signed too (a manifest without `reads` signs the
    // same message as before the field existed).
    for read in &manifest.reads {
        text.push_str(&format!("reads:{read}\n"));
    }
    text.into_bytes()
}

/// A signing key read from a key file (the 32-byte seed as 64 hex digits).
pub struct Key(SigningKey);

impl Key {
    /// Reads a key file written by [`Key::generate`].
    pub fn load(file: &Path) -> Result<Key, String> {
        let text = crate::repofs::read_secret_file(file)
            .map_err(|e| format!("{}: cannot read: {e}", file.display()))?;
        let seed = hex::decode(text.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| format!("{}: expected a 64-hex-digit Ed25519 seed", file.display()))?;
        Ok(Key(SigningKey::from_bytes(&seed)))
    }

    /// A new key from the operating system's randomness, written to `file` (mode
    /// 0600, never overwriting).
    pub fn generate(file: &Path) -> Result<Key, String> {
        use std::io::{Read, Write};
        use std::os::unix::fs::OpenOptionsExt;
        let mut seed = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut seed))
            .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(file)
            .map_err(|e| format!("{}: {e}", file.display()))?;
        writeln!(out, "{}", hex::encode(seed)).map_err(|e| format!("{}: {e}", file.display()))?;
        Ok(Key(SigningKey::from_bytes(&seed)))
    }

    /// The public key, hex.
    pub fn public_hex(&self) -> String {
        hex::encode(self.0.verifying_key().to_bytes())
    }

    /// Signs `manifest` in place (`signature`, `signed_by`).
    pub fn sign(&self, manifest: &mut Manifest) {
        let signature = self.0.sign(&message(manifest));
        manifest.signature = Some(hex::encode(signature.to_bytes()));
        manifest.signed_by = Some(self.public_hex());
    }
}

/// What checking an entry's signature found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureStatus {
    /// No signature.
    Unsigned,
    /// Valid, by a trusted key.
    Trusted,
    /// Valid, by a key the policy does not trust.
    Untrusted,
}

/// Checks the manifest's signature; an invalid one is an error.
pub fn check(manifest: &Manifest, trusted: &[[u8; 32]]) -> Result<SignatureStatus, String> {
    let (Some(signature), Some(signer)) = (&manifest.signature, &manifest.signed_by) else {
        return Ok(SignatureStatus::Unsigned);
    };
    let signer_bytes: [u8; 32] = hex::decode(signer)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("field `signed_by`: expected an Ed25519 public key as 64 hex digits")?;
    let key = VerifyingKey::from_bytes(&signer_bytes)
        .map_err(|_| "field `signed_by`: not a valid Ed25519 public key")?;
    let signature_bytes: [u8; 64] = hex::decode(signature)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("field `signature`: expected 128 hex digits")?;
    key.verify(&message(manifest), &Signature::from_bytes(&signature_bytes))
        .map_err(|_| {
            "bad signature: it does not match this name, version and component digest".to_string()
        })?;
    Ok(if trusted.contains(&signer_bytes) {
        SignatureStatus::Trusted
    } else {
        SignatureStatus::Untrusted
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        super::super::manifest::parse(
            Path::new("plugin.toml"),
            &format!(
                "name = \"x\"\nversion = \"1.0.0\"\nworld = \"{}\"\nscopes = [\"docs\"]\nsha256 = \"{}\"\n",
                super::super::manifest::EXECUTOR_WORLD,
                "ab".repeat(32)
            ),
        )
        .unwrap()
    }

    #[test]
    fn signatures_bind_name_version_and_digest() {
        let dir = tempfile::tempdir().unwrap();
        let key = Key::generate(&dir.path().join("key")).unwrap();
        assert!(
            Key::generate(&dir.path().join("key")).is_err(),
            "never overwrites"
        );
        let reloaded = Key::load(&dir.path().join("key")).unwrap();
        assert_eq!(reloaded.public_hex(), key.public_hex());
        let mut m = manifest();
        assert_eq!(check(&m, &[]), Ok(SignatureStatus::Unsigned));
        key.sign(&mut m);
        let public: [u8; 32] = hex::decode(key.public_hex()).unwrap().try_into().unwrap();
        assert_eq!(check(&m, &[public]), Ok(SignatureStatus::Trusted));
        assert_eq!(check(&m, &[]), Ok(SignatureStatus::Untrusted));
        let mut moved = m.clone();
        moved.sha256 = "cd".repeat(32);
        assert!(
            check(&moved, &[public])
                .unwrap_err()
                .contains("bad signature")
        );
        let mut renamed = m.clone();
        renamed.name = "y".into();
        assert!(check(&renamed, &[public]).is_err());
        // Widening what the plugin reads breaks the signature; a signed `reads` holds.
        let mut widened = m.clone();
        widened.reads = vec!["src/".into()];
        assert!(check(&widened, &[public]).is_err());
        key.sign(&mut widened);
        assert_eq!(check(&widened, &[public]), Ok(SignatureStatus::Trusted));
        assert_ne!(message(&widened), message(&m));
    }

    #[test]
    fn reads_must_be_repository_paths_outside_git() {
        let base = format!(
            "name = \"x\"\nversion = \"1.0.0\"\nworld = \"{}\"\nscopes = [\"docs\"]\nsha256 = \"{}\"\n",
            super::super::manifest::EXECUTOR_WORLD,
            "ab".repeat(32)
        );
        let parse = |reads: &str| {
            let path = Path::new("plugin.toml");
            let m = super::super::manifest::parse(path, &format!("{base}reads = {reads}\n"))?;
            super::super::manifest::validate(path, &m).map(|()| m)
        };
        assert_eq!(
            parse("[\"README.md\", \"src/**\"]")
                .unwrap()
                .read_paths()
                .len(),
            2
        );
        for bad in [
            "[\"../etc/\"]",
            "[\"/etc/passwd\"]",
            "[\".git/\"]",
            "[\"src/*.rs\"]",
        ] {
            let err = parse(bad).expect_err(bad);
            assert!(err.contains("field `reads`"), "{bad}: {err}");
        }
    }
}
