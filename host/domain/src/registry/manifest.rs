//! `plugin.toml`: the manifest of a registry entry, its validation, and the WIT world
//! compatibility rules.

use crate::paths::RepoPath;
use crate::policy::ExecutorLimits;
use crate::repofs::{Kind, Limit, RepoDir};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The WIT package executors implement.
pub const EXECUTOR_PACKAGE: &str = "leviathan:executor";
/// The world name inside [`EXECUTOR_PACKAGE`].
pub const EXECUTOR_WORLD_NAME: &str = "executor-plugin";
/// The interface a component must export.
pub const EXECUTOR_INTERFACE: &str = "executor";
/// Versions of the contract this host has bindings for (one folder each under `wit/`).
pub const KNOWN_WORLD_VERSIONS: &[semver::Version] = &[semver::Version::new(0, 1, 0)];
/// The world the shipped plugins implement.
pub const EXECUTOR_WORLD: &str = "leviathan:executor/executor-plugin@0.1.0";

/// Limits a plugin asks for; each is lowered to the policy's if the policy is lower.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_files_written: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes_written: Option<u64>,
}

impl ManifestLimits {
    /// The limits a run gets: the policy's, lowered where the plugin asks for less.
    pub fn effective(&self, policy: &ExecutorLimits) -> ExecutorLimits {
        let lower = |ask: Option<u64>, cap: u64| ask.map_or(cap, |a| a.min(cap));
        ExecutorLimits {
            fuel: lower(self.fuel, policy.fuel),
            memory_bytes: lower(
                self.memory_mib.map(|m| m.saturating_mul(1 << 20)),
                policy.memory_bytes,
            ),
            max_files_written: lower(self.max_files_written, policy.max_files_written),
            max_bytes_written: lower(self.max_bytes_written, policy.max_bytes_written),
        }
    }
}

/// A plugin's `plugin.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub version: semver::Version,
    /// The WIT world implemented, e.g. `leviathan:executor/executor-plugin@0.1.0`.
    pub world: String,
    /// Task scopes handled.
    pub scopes: Vec<String>,
    /// Lower-case hex SHA-256 of the component file (filled in by `install`).
    #[serde(default)]
    pub sha256: String,
    #[serde(default)]
    pub summary: String,
    /// Ed25519 signature (hex) over [`super::signing::message`], by `signed_by`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// The signer's Ed25519 public key (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<String>,
    /// Limits the plugin asks for (the policy can only lower them).
    #[serde(default, skip_serializing_if = "ManifestLimits::is_empty")]
    pub limits: ManifestLimits,
    /// What the executor reads of the repository besides its task's allowed paths
    /// (repository-relative files or directories); nothing by default. The policy's
    /// `plugins.read_paths` can narrow it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reads: Vec<String>,
}

impl Manifest {
    /// The parsed `reads` ([`validate`] has checked each).
    pub fn read_paths(&self) -> Vec<crate::paths::RepoPath> {
        self.reads
            .iter()
            .filter_map(|r| crate::paths::RepoPath::parse_allowed(r).ok())
            .collect()
    }
}

impl ManifestLimits {
    fn is_empty(&self) -> bool {
        *self == ManifestLimits::default()
    }
}

/// One registry entry whose manifest is valid.
#[derive(Debug, Clone)]
pub struct Entry {
    pub manifest: Manifest,
    pub dir: PathBuf,
    pub wasm: PathBuf,
}

impl Entry {
    /// `name@version`.
    pub fn id(&self) -> String {
        format!("{}@{}", self.manifest.name, self.manifest.version)
    }
}

/// The version of a world or interface name `leviathan:executor/<item>@<version>`.
pub fn contract_version(name: &str, item: &str) -> Option<semver::Version> {
    let rest = name.strip_prefix(EXECUTOR_PACKAGE)?.strip_prefix('/')?;
    let version = rest.strip_prefix(item)?.strip_prefix('@')?;
    semver::Version::parse(version).ok()
}

/// Whether this host can run a plugin built against contract `version`: same major
/// (for 0.x, same minor, as semver treats 0.x minors as breaking), and a newer
/// minor only if the host knows it.
pub fn check_contract_version(version: &semver::Version) -> Result<(), String> {
    let known = KNOWN_WORLD_VERSIONS
        .iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let same_line = |k: &semver::Version| {
        k.major == version.major && (version.major > 0 || k.minor == version.minor)
    };
    if !KNOWN_WORLD_VERSIONS.iter().any(same_line) {
        return Err(format!(
            "contract {version} is incompatible: this host implements {known} (a different major version)"
        ));
    }
    let newest_known = KNOWN_WORLD_VERSIONS
        .iter()
        .filter(|k| k.major == version.major)
        .map(|k| k.minor)
        .max()
        .unwrap_or(0);
    if version.minor > newest_known {
        return Err(format!(
            "contract {version} is newer than this host knows ({known}); upgrade the host"
        ));
    }
    Ok(())
}

/// The checks on a manifest's own fields (not on where it lives).
pub fn validate(manifest_path: &Path, manifest: &Manifest) -> Result<(), String> {
    let bad = |field: &str, message: String| {
        format!("{}: field `{field}`: {message}", manifest_path.display())
    };
    let valid_name = !manifest.name.is_empty()
        && manifest.name.len() <= 64
        && manifest
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !valid_name {
        return Err(bad(
            "name",
            "must be 1 to 64 characters of a-z, 0-9, `-` and `_`".into(),
        ));
    }
    let version = contract_version(&manifest.world, EXECUTOR_WORLD_NAME).ok_or_else(|| {
        bad(
            "world",
            format!("is not `{EXECUTOR_PACKAGE}/{EXECUTOR_WORLD_NAME}@<version>`"),
        )
    })?;
    check_contract_version(&version).map_err(|m| bad("world", m))?;
    if manifest.scopes.is_empty() || manifest.scopes.iter().any(|s| s.trim().is_empty()) {
        return Err(bad(
            "scopes",
            "must list at least one non-empty scope".into(),
        ));
    }
    if manifest.sha256.len() != 64 || !manifest.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad("sha256", "must be 64 hex digits".into()));
    }
    match (&manifest.signature, &manifest.signed_by) {
        (None, None) | (Some(_), Some(_)) => {}
        (Some(_), None) => return Err(bad("signed_by", "is required with `signature`".into())),
        (None, Some(_)) => return Err(bad("signature", "is required with `signed_by`".into())),
    }
    for (i, read) in manifest.reads.iter().enumerate() {
        match crate::paths::RepoPath::parse_allowed(read) {
            Ok(path)
                if path
                    .components()
                    .iter()
                    .any(|c| c.eq_ignore_ascii_case(".git")) =>
            {
                return Err(bad(
                    "reads",
                    format!("item {}: `.git` is never staged", i + 1),
                ));
            }
            Ok(path) if path.components().is_empty() => {
                return Err(bad(
                    "reads",
                    format!(
                        "item {}: the whole repository cannot be asked for; name the files or directories read",
                        i + 1
                    ),
                ));
            }
            Ok(_) => {}
            Err(e) => return Err(bad("reads", format!("item {}: {e}", i + 1))),
        }
    }
    let limits = &manifest.limits;
    for (field, value) in [
        ("limits.fuel", limits.fuel),
        ("limits.memory_mib", limits.memory_mib),
        ("limits.max_files_written", limits.max_files_written),
        ("limits.max_bytes_written", limits.max_bytes_written),
    ] {
        if value == Some(0) {
            return Err(bad(field, "must be at least 1".into()));
        }
    }
    Ok(())
}

/// The largest `plugin.toml` read.
pub const MAX_MANIFEST: Limit = Limit::new(64 << 10, "manifest size limit");

/// The largest component (`<name>.wasm`) read.
pub const MAX_COMPONENT: Limit = Limit::new(64 << 20, "component size limit");

/// The keys a manifest may hold: the only names from the file an error repeats.
const MANIFEST_KEYS: &[&str] = &[
    "name",
    "version",
    "world",
    "scopes",
    "sha256",
    "summary",
    "signature",
    "signed_by",
    "limits",
    "reads",
    "fuel",
    "memory_mib",
    "max_files_written",
    "max_bytes_written",
];

/// A parser message with every quoted value replaced by `…` (`"…"`, `` `…` ``): only
/// the manifest's own key names stay, nothing else from the file.
fn without_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find(['"', '`']) {
        let quote = rest[start..].chars().next().unwrap_or('"');
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(len) = after.find(quote) else {
            out.push(quote);
            out.push('…');
            return out;
        };
        let inner = &after[..len];
        out.push(quote);
        if quote == '`' && MANIFEST_KEYS.contains(&inner) {
            out.push_str(inner);
        } else {
            out.push('…');
        }
        out.push(quote);
        rest = &after[len + 1..];
    }
    out.push_str(rest);
    out
}

/// For the parser's "unknown field" message, the known key the field looks like a
/// misspelling of (`summery`: `summary`), named without repeating the field itself.
fn meant_key(message: &str) -> String {
    let unknown = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(field, _)| field);
    match unknown.and_then(|field| crate::yaml::near_miss(field, MANIFEST_KEYS)) {
        Some(meant) => format!(" (did you mean `{meant}`?)"),
        None => String::new(),
    }
}

/// The manifest key assigned on the line holding byte `at`, if it is a known key.
fn key_on_line(text: &str, at: usize) -> Option<&'static str> {
    let start = text[..at.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?;
    let key = line.split('=').next()?.trim();
    MANIFEST_KEYS.iter().copied().find(|k| *k == key)
}

/// Parses a manifest file. The error gives the line, column and (a known) field and
/// the parser's message, never the offending line or a value from it.
pub fn parse(manifest_path: &Path, text: &str) -> Result<Manifest, String> {
    toml::from_str(text).map_err(|e| {
        let first = e.message().lines().next().unwrap_or_default();
        let message = without_values(first) + &meant_key(first);
        match e.span() {
            Some(span) => {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                let field = key_on_line(text, span.start)
                    .map(|k| format!(" field `{k}`:"))
                    .unwrap_or_default();
                format!(
                    "{}: invalid TOML at line {line}, column {column}:{field} {message}",
                    manifest_path.display()
                )
            }
            None => format!("{}: invalid TOML: {message}", manifest_path.display()),
        }
    })
}

/// Reads and checks the entry in `dir` (`<name>/<version>/`), through `handle` on
/// that directory: `plugin.toml` and the component must be regular files there, not
/// links, and of bounded size.
pub fn read_entry(handle: &RepoDir, dir: &Path) -> Result<Entry, String> {
    let manifest_path = dir.join("plugin.toml");
    let file = RepoPath::parse("plugin.toml").map_err(|e| e.to_string())?;
    let bytes = handle
        .read(&file, MAX_MANIFEST)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .ok_or_else(|| format!("{}: cannot read: no such file", manifest_path.display()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        format!(
            "{}: not UTF-8 ({})",
            manifest_path.display(),
            crate::yaml::first_bad_byte(&e)
        )
    })?;
    let manifest = parse(&manifest_path, &text)?;
    validate(&manifest_path, &manifest)?;
    let dir_name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let parent_name = dir
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if parent_name != manifest.name || dir_name != manifest.version.to_string() {
        return Err(format!(
            "{}: declares {}@{} but lives in {parent_name}/{dir_name}/",
            manifest_path.display(),
            manifest.name,
            manifest.version
        ));
    }
    let wasm_name = format!("{}.wasm", manifest.name);
    let wasm = dir.join(&wasm_name);
    let component = RepoPath::parse(&wasm_name).map_err(|e| e.to_string())?;
    match handle.stat(&component) {
        Ok(Some(meta)) if meta.kind == Kind::File => {}
        Ok(Some(meta)) => {
            return Err(format!(
                "{}: the component `{wasm_name}` is {}, not a regular file",
                dir.display(),
                meta.kind.described()
            ));
        }
        Ok(None) => {
            return Err(format!(
                "{}: missing component {}",
                manifest_path.display(),
                wasm.display()
            ));
        }
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    }
    Ok(Entry {
        manifest,
        dir: dir.to_path_buf(),
        wasm,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> semver::Version {
        semver::Version::parse(s).unwrap()
    }

    #[test]
    fn contract_versions_follow_semver_lines() {
        assert!(check_contract_version(&v("0.1.0")).is_ok());
        assert!(check_contract_version(&v("0.1.7")).is_ok());
        let newer = check_contract_version(&v("0.2.0")).unwrap_err();
        assert!(
            newer.contains("incompatible"),
            "0.x minors are breaking: {newer}"
        );
        let major = check_contract_version(&v("1.0.0")).unwrap_err();
        assert!(major.contains("different major"), "{major}");
        assert_eq!(
            contract_version(
                "leviathan:executor/executor-plugin@0.1.0",
                EXECUTOR_WORLD_NAME
            ),
            Some(v("0.1.0"))
        );
        assert_eq!(
            contract_version("other:executor/executor-plugin@0.1.0", EXECUTOR_WORLD_NAME),
            None
        );
    }

    #[test]
    fn toml_errors_name_line_and_column_without_the_line() {
        let text = "name = \"x\"\nversion = \"1.0.0\"\nsecret = host-file-content here\n";
        let err = parse(Path::new("r/x/1.0.0/plugin.toml"), text).unwrap_err();
        assert!(err.contains("line 3"), "{err}");
        assert!(!err.contains("host-file-content"), "{err}");
        let err = parse(Path::new("p.toml"), "name = 5\nversion = \"1.0.0\"\n").unwrap_err();
        assert!(err.contains("line 1"), "{err}");
        assert_eq!(
            without_values(r#"invalid "secret" value `name`, not `7` or `host_line`"#),
            r#"invalid "…" value `name`, not `…` or `…`"#
        );
        // An unknown field is not repeated, but the key it looks like is named.
        let err = parse(Path::new("p.toml"), "name = \"x\"\nsummery = \"s\"\n").unwrap_err();
        assert!(
            err.contains("did you mean `summary`?") && !err.contains("summery"),
            "{err}"
        );
        let err = parse(Path::new("p.toml"), "name = \"x\"\nsecret_words = 1\n").unwrap_err();
        assert!(!err.contains("did you mean"), "{err}");
        let err = parse(Path::new("p.toml"), "name = \"x\"\nscopes = 7\n").unwrap_err();
        assert!(
            err.contains("field `scopes`") && !err.contains('7'),
            "{err}"
        );
    }

    #[test]
    fn limits_are_lowered_never_raised() {
        let policy = ExecutorLimits {
            fuel: 100,
            memory_bytes: 64 << 20,
            max_files_written: 10,
            max_bytes_written: 1000,
        };
        let ask = ManifestLimits {
            fuel: Some(1_000),
            memory_mib: Some(16),
            max_files_written: None,
            max_bytes_written: Some(10),
        };
        let got = ask.effective(&policy);
        assert_eq!(got.fuel, 100, "the policy caps a higher ask");
        assert_eq!(got.memory_bytes, 16 << 20);
        assert_eq!(got.max_files_written, 10);
        assert_eq!(got.max_bytes_written, 10);
    }
}
