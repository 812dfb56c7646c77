//! Bearer tokens from a YAML file (`--tokens-file`): roles, hashed storage and
//! constant-time checks. Tokens are never logged; only their names are.

use crate::yaml::{self, Fields, InputError};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::Path;
use subtle::ConstantTimeEq;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads.
    Viewer,
    /// Reads, writes, pauses and resets.
    Operator,
}

impl Role {
    /// The role's name as written in the tokens file.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
        }
    }
}

/// The caller a token identifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
}

struct Entry {
    principal: Principal,
    sha256: [u8; 32],
}

/// The loaded tokens, held only as SHA-256 digests.
pub struct Tokens {
    entries: Vec<Entry>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.entries.iter().map(|e| &e.principal.name).collect();
        f.debug_struct("Tokens").field("names", &names).finish()
    }
}

/// The shortest plain token accepted.
const MIN_TOKEN_LEN: usize = 16;

impl Tokens {
    /// Reads and validates the tokens file; errors name the file, entry and field.
    pub fn load(file: &Path) -> Result<Tokens, InputError> {
        let doc = yaml::load(file)?;
        let root = doc.as_mapping().ok_or_else(|| InputError::Field {
            file: file.to_path_buf(),
            context: String::new(),
            field: "tokens".into(),
            message: "the file must be a mapping with a `tokens:` list".into(),
        })?;
        let top = Fields {
            file,
            context: String::new(),
            map: root,
        };
        unknown_keys(&top, &["tokens"], "only `tokens`")?;
        let items = match top.get("tokens") {
            Some(serde_norway::Value::Sequence(items)) => items,
            Some(v) => {
                return Err(top.error(
                    "tokens",
                    format!("expected a list, found {}", yaml::describe(v)),
                ));
            }
            None => return Err(top.error("tokens", "is required")),
        };
        let mut entries: Vec<Entry> = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let context = format!("tokens[{i}]: ");
            let map = item.as_mapping().ok_or_else(|| InputError::Field {
                file: file.to_path_buf(),
                context: context.clone(),
                field: "entry".into(),
                message: format!("expected a mapping, found {}", yaml::describe(item)),
            })?;
            let fields = Fields { file, context, map };
            entries.push(entry(&fields)?);
            let name = &entries[entries.len() - 1].principal.name;
            if entries[..entries.len() - 1]
                .iter()
                .any(|e| &e.principal.name == name)
            {
                return Err(fields.error("name", format!("`{name}` is used twice")));
            }
        }
        Ok(Tokens { entries })
    }

    /// How many tokens are loaded.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no token is loaded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The caller `presented` identifies. Every entry is compared, in constant time,
    /// whether or not an earlier one matched.
    pub fn check(&self, presented: &str) -> Option<Principal> {
        self.check_digest(&token_digest(presented))
    }

    /// The caller whose token has SHA-256 `digest` (what a console session keeps
    /// instead of the token), compared like [`Tokens::check`].
    pub fn check_digest(&self, digest: &[u8; 32]) -> Option<Principal> {
        let mut found = None;
        for e in &self.entries {
            if bool::from(e.sha256.ct_eq(digest)) {
                found = Some(e.principal.clone());
            }
        }
        found
    }
}

/// The SHA-256 digest of a presented token.
pub fn token_digest(presented: &str) -> [u8; 32] {
    Sha256::digest(presented.as_bytes()).into()
}

/// Refuses a mapping with a key not in `known`, naming the key by its place (a key
/// of this file may be a token pasted in the wrong place, so it is never quoted) and
/// the known key it looks like a misspelling of, if any.
fn unknown_keys(fields: &Fields, known: &[&'static str], expected: &str) -> Result<(), InputError> {
    for (i, key) in fields.map.keys().enumerate() {
        let name = yaml::scalar_text(key).unwrap_or_default();
        if !known.contains(&name.as_str()) {
            let meant = yaml::near_miss(&name, known)
                .map(|k| format!("; did you mean `{k}`?"))
                .unwrap_or_default();
            return Err(InputError::Invalid {
                file: fields.file.to_path_buf(),
                context: fields.context.clone(),
                message: format!(
                    "key #{} is not a known field (expected {expected}; its name is not shown, as this file holds secrets{meant})",
                    i + 1
                ),
            });
        }
    }
    Ok(())
}

fn entry(fields: &Fields) -> Result<Entry, InputError> {
    unknown_keys(
        fields,
        &["name", "role", "token", "sha256"],
        "name, role, token or sha256",
    )?;
    let name = fields.string("name")?;
    let role = match fields.string("role")?.as_str() {
        "viewer" => Role::Viewer,
        "operator" => Role::Operator,
        _ => {
            return Err(fields.error(
                "role",
                "is not a role: viewer or operator (the value is not shown, as this file holds secrets)",
            ));
        }
    };
    let sha256 = match (fields.opt_string("token")?, fields.opt_string("sha256")?) {
        (Some(token), None) => {
            if token.len() < MIN_TOKEN_LEN {
                return Err(fields.error(
                    "token",
                    format!("must be at least {MIN_TOKEN_LEN} characters"),
                ));
            }
            Sha256::digest(token.as_bytes()).into()
        }
        (None, Some(hex_digest)) => {
            let bytes = hex::decode(hex_digest.trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok());
            bytes.ok_or_else(|| fields.error("sha256", "must be 64 hexadecimal digits"))?
        }
        _ => {
            return Err(fields.error("token", "give exactly one of `token` or `sha256`"));
        }
    };
    Ok(Entry {
        principal: Principal { name, role },
        sha256,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Tokens, InputError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens.yaml");
        std::fs::write(&file, text).unwrap();
        Tokens::load(&file)
    }

    #[test]
    fn plain_and_hashed_tokens_identify_their_holder() {
        let hashed = hex::encode(Sha256::digest(b"viewer-token-0123456789"));
        let tokens = load(&format!(
            "tokens:\n  - {{name: ops, role: operator, token: operator-token-0123}}\n  - {{name: dash, role: viewer, sha256: {hashed}}}\n"
        ))
        .unwrap();
        assert_eq!(
            tokens.check("operator-token-0123").unwrap().role,
            Role::Operator
        );
        let viewer = tokens.check("viewer-token-0123456789").unwrap();
        assert_eq!((viewer.name.as_str(), viewer.role), ("dash", Role::Viewer));
        assert_eq!(tokens.check("operator-token-012"), None);
        assert!(!format!("{tokens:?}").contains("operator-token"));
    }

    #[test]
    fn errors_name_the_entry_and_field() {
        let err = load("tokens:\n  - {name: a, role: admin, token: aaaaaaaaaaaaaaaaaaaa}\n")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("tokens[0]") && err.contains("role"), "{err}");
        let err = load("tokens:\n  - {name: a, role: viewer, token: short}\n")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("token") && err.contains("16"), "{err}");
        let err = load("tokens:\n  - {name: a, role: viewer, sha256: abc}\n")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("sha256"), "{err}");
        let err = load(
            "tokens:\n  - {name: a, role: viewer, token: aaaaaaaaaaaaaaaaaaaa}\n  - {name: a, role: viewer, token: bbbbbbbbbbbbbbbbbbbb}\n",
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            err.contains("tokens[1]") && err.contains("used twice"),
            "{err}"
        );
        let err = load("tokenz: []\n").err().unwrap().to_string();
        assert!(err.contains("did you mean `tokens`?"), "{err}");
        assert!(!err.contains("tokenz"), "{err}");
    }

    #[test]
    fn a_token_pasted_as_a_key_or_a_role_is_never_quoted() {
        let secret = "ghp_0123456789abcdefghij";
        let as_a_key = format!("tokens:\n  - name: a\n    role: viewer\n    {secret}: x\n");
        for text in [
            as_a_key.clone(),
            format!("{secret}:\ntokens: []\n"),
            format!("tokens:\n  - {{name: a, role: {secret}, token: viewer}}\n"),
        ] {
            let err = load(&text).err().unwrap().to_string();
            assert!(!err.contains(secret), "{err}");
            assert!(err.contains("tokens.yaml"), "{err}");
        }
        let err = load(&as_a_key).err().unwrap().to_string();
        assert!(
            err.contains("tokens[0]: key #3 is not a known field"),
            "{err}"
        );
    }
}
