//! The plugin registry directory: `<registry>/<name>/<version>/plugin.toml` next to
//! `<name>.wasm`. Manifests are read up front; a component is compiled, checked
//! against its manifest and digest, and linked only when a task needs it.

use crate::backlog::Task;
use crate::digest::sha256_hex;
use crate::sandbox::{LoadedComponent, Sandbox, SandboxError};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};

/// The directory used when neither `--plugin-dir` nor `LEVIATHAN_PLUGIN_DIR` is set.
pub const DEFAULT_REGISTRY_DIR: &str = "plugins/registry";
/// The WIT world every executor implements.
pub const EXECUTOR_WORLD: &str = "leviathan:executor/executor-plugin@0.1.0";

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

    /// Reads, verifies and loads an entry's component, and checks that the component
    /// describes itself as its manifest does.
    pub fn load(&self, sandbox: &Sandbox) -> Result<LoadedComponent, RegistryError> {
        let entry = self;
        let invalid = |message: String| RegistryError::Invalid {
            id: entry.id(),
            file: entry.wasm.clone(),
            message,
        };
        let wasm = fs::read(&entry.wasm).map_err(|e| invalid(format!("cannot read: {e}")))?;
        let actual = sha256_hex(&wasm);
        if !actual.eq_ignore_ascii_case(&entry.manifest.sha256) {
            return Err(invalid(format!(
                "digest mismatch: plugin.toml says sha256 {}, the file is {actual}",
                entry.manifest.sha256
            )));
        }
        let component = sandbox.load_with_digest(&entry.id(), &wasm, &actual)?;
        let info = sandbox
            .describe(&component)
            .map_err(|e| invalid(format!("describe() failed: {e}")))?;
        let m = &entry.manifest;
        if info.name != m.name || info.version != m.version.to_string() {
            return Err(invalid(format!(
                "the component describes itself as {}@{}, plugin.toml says {}",
                info.name,
                info.version,
                entry.id()
            )));
        }
        let mut declared = m.scopes.clone();
        let mut described = info.scopes.clone();
        declared.sort();
        described.sort();
        if declared != described {
            return Err(invalid(format!(
                "the component handles scopes [{}], plugin.toml declares [{}]",
                described.join(", "),
                declared.join(", ")
            )));
        }
        Ok(component)
    }
}

/// An entry that was not accepted, and why.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub dir: PathBuf,
    pub reason: String,
}

/// Errors from the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("plugin registry {dir}: {message}")]
    Unreadable { dir: PathBuf, message: String },
    #[error("no executor plugin handles scope `{scope}` (registry {dir}; installed: {installed})")]
    NoExecutor {
        scope: String,
        dir: PathBuf,
        installed: String,
    },
    #[error("task field `executor`: `{0}` is not `name` or `name@version-requirement`")]
    BadExecutorField(String),
    #[error(
        "task field `executor`: no installed plugin matches `{wanted}` (installed: {installed})"
    )]
    NoMatch { wanted: String, installed: String },
    #[error(
        "scope `{scope}` is claimed by several plugins ({names}); name one in the task's `executor` field"
    )]
    Ambiguous { scope: String, names: String },
    #[error("plugin {id} ({file}): {message}")]
    Invalid {
        id: String,
        file: PathBuf,
        message: String,
    },
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
}

/// The registry's valid entries and the rejected ones.
#[derive(Debug, Clone)]
pub struct Registry {
    pub dir: PathBuf,
    pub entries: Vec<Entry>,
    pub rejected: Vec<Rejected>,
}

impl Registry {
    /// The registry directory: `LEVIATHAN_PLUGIN_DIR` or [`DEFAULT_REGISTRY_DIR`].
    pub fn default_dir() -> PathBuf {
        std::env::var_os("LEVIATHAN_PLUGIN_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_REGISTRY_DIR))
    }

    /// Reads every manifest under `dir`. Invalid entries are listed in `rejected`.
    pub fn scan(dir: &Path) -> Result<Registry, RegistryError> {
        let unreadable = |e: std::io::Error| RegistryError::Unreadable {
            dir: dir.to_path_buf(),
            message: e.to_string(),
        };
        let mut entries = Vec::new();
        let mut rejected = Vec::new();
        let mut names: Vec<_> = fs::read_dir(dir)
            .map_err(unreadable)?
            .flatten()
            .map(|e| e.path())
            .collect();
        names.sort();
        for name_dir in names.into_iter().filter(|p| p.is_dir()) {
            let mut versions: Vec<_> = match fs::read_dir(&name_dir) {
                Ok(rd) => rd
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .collect(),
                Err(e) => {
                    rejected.push(Rejected {
                        dir: name_dir,
                        reason: e.to_string(),
                    });
                    continue;
                }
            };
            versions.sort();
            for version_dir in versions {
                match read_entry(&version_dir) {
                    Ok(entry) => entries.push(entry),
                    Err(reason) => rejected.push(Rejected {
                        dir: version_dir,
                        reason,
                    }),
                }
            }
        }
        Ok(Registry {
            dir: dir.to_path_buf(),
            entries,
            rejected,
        })
    }

    fn installed(&self) -> String {
        if self.entries.is_empty() {
            return "none; run `cargo xtask build`".into();
        }
        self.entries
            .iter()
            .map(|e| format!("{} [{}]", e.id(), e.manifest.scopes.join(", ")))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Picks the plugin for `task`: by its `executor` field (`name` or
    /// `name@<semver requirement>`), else the highest version handling its scope.
    pub fn route(&self, task: &Task) -> Result<&Entry, RegistryError> {
        if let Some(wanted) = task.executor.as_deref() {
            let (name, req) = match wanted.split_once('@') {
                Some((n, r)) => (
                    n.trim(),
                    semver::VersionReq::parse(r.trim())
                        .map_err(|_| RegistryError::BadExecutorField(wanted.into()))?,
                ),
                None => (wanted.trim(), semver::VersionReq::STAR),
            };
            return self
                .entries
                .iter()
                .filter(|e| e.manifest.name == name && req.matches(&e.manifest.version))
                .max_by(|a, b| a.manifest.version.cmp(&b.manifest.version))
                .ok_or_else(|| RegistryError::NoMatch {
                    wanted: wanted.into(),
                    installed: self.installed(),
                });
        }
        let candidates: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| e.manifest.scopes.iter().any(|s| s == &task.scope))
            .collect();
        let mut names: Vec<&str> = candidates
            .iter()
            .map(|e| e.manifest.name.as_str())
            .collect();
        names.sort();
        names.dedup();
        if names.len() > 1 {
            return Err(RegistryError::Ambiguous {
                scope: task.scope.clone(),
                names: names.join(", "),
            });
        }
        candidates
            .into_iter()
            .max_by(|a, b| a.manifest.version.cmp(&b.manifest.version))
            .ok_or_else(|| RegistryError::NoExecutor {
                scope: task.scope.clone(),
                dir: self.dir.clone(),
                installed: self.installed(),
            })
    }
}

/// Installs the component `wasm` with the manifest template `manifest` (whose
/// `sha256` may be empty) as `<registry>/<name>/<version>/`, replacing an existing
/// entry of the same version. The entry is written to a temporary directory, passed
/// to `verify` there, and only then renamed into place: readers never see half an
/// entry, and a manifest or component that fails its checks never removes the entry
/// it would have replaced.
pub fn install(
    registry: &Path,
    wasm: &Path,
    manifest: &Path,
    verify: impl FnOnce(&Entry) -> Result<(), String>,
) -> Result<Entry, String> {
    let text = fs::read_to_string(manifest)
        .map_err(|e| format!("{}: cannot read: {e}", manifest.display()))?;
    let mut parsed: Manifest =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", manifest.display()))?;
    let bytes = fs::read(wasm).map_err(|e| format!("{}: cannot read: {e}", wasm.display()))?;
    parsed.sha256 = sha256_hex(&bytes);
    // Checked before anything is replaced: a bad template never removes a good entry.
    validate_manifest(manifest, &parsed)?;
    let manifest_text =
        toml::to_string(&parsed).map_err(|e| format!("{}: {e}", manifest.display()))?;
    let name_dir = registry.join(&parsed.name);
    fs::create_dir_all(&name_dir).map_err(|e| format!("{}: {e}", name_dir.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".install-")
        .tempdir_in(&name_dir)
        .map_err(|e| format!("{}: {e}", name_dir.display()))?;
    let write = |file: &str, data: &[u8]| {
        fs::write(staging.path().join(file), data)
            .map_err(|e| format!("{}: {e}", staging.path().display()))
    };
    write("plugin.toml", manifest_text.as_bytes())?;
    let wasm_name = format!("{}.wasm", parsed.name);
    write(&wasm_name, &bytes)?;
    verify(&Entry {
        wasm: staging.path().join(&wasm_name),
        dir: staging.path().to_path_buf(),
        manifest: parsed.clone(),
    })?;
    let target = name_dir.join(parsed.version.to_string());
    if target.exists() {
        fs::remove_dir_all(&target).map_err(|e| format!("{}: {e}", target.display()))?;
    }
    let staged = staging.keep();
    fs::rename(&staged, &target).map_err(|e| format!("{}: {e}", target.display()))?;
    read_entry(&target)
}

/// The checks on a manifest's own fields (not on where it lives).
fn validate_manifest(manifest_path: &Path, manifest: &Manifest) -> Result<(), String> {
    let bad = |field: &str, message: String| {
        format!("{}: field `{field}`: {message}", manifest_path.display())
    };
    if manifest.world != EXECUTOR_WORLD {
        return Err(bad(
            "world",
            format!(
                "`{}` is not supported; this host implements `{EXECUTOR_WORLD}`",
                manifest.world
            ),
        ));
    }
    if manifest.scopes.is_empty() {
        return Err(bad("scopes", "must list at least one scope".into()));
    }
    if manifest.sha256.len() != 64 || !manifest.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad("sha256", "must be 64 hex digits".into()));
    }
    Ok(())
}

fn read_entry(dir: &Path) -> Result<Entry, String> {
    let manifest_path = dir.join("plugin.toml");
    let text = fs::read_to_string(&manifest_path)
        .map_err(|e| format!("{}: cannot read: {e}", manifest_path.display()))?;
    let manifest: Manifest =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", manifest_path.display()))?;
    validate_manifest(&manifest_path, &manifest)?;
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
    let wasm = dir.join(format!("{}.wasm", manifest.name));
    if !wasm.is_file() {
        return Err(format!(
            "{}: missing component {}",
            manifest_path.display(),
            wasm.display()
        ));
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

    fn write_entry(root: &Path, name: &str, version: &str, scopes: &str) {
        let dir = root.join(name).join(version);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(format!("{name}.wasm")), b"\0asm").unwrap();
        fs::write(
            dir.join("plugin.toml"),
            format!(
                "name = \"{name}\"\nversion = \"{version}\"\nworld = \"{EXECUTOR_WORLD}\"\nscopes = [{scopes}]\nsha256 = \"{}\"\n",
                sha256_hex(b"\0asm")
            ),
        )
        .unwrap();
    }

    fn task(scope: &str, executor: Option<&str>) -> Task {
        Task {
            id: "T".into(),
            scope: scope.into(),
            executor: executor.map(String::from),
            ..Task::default()
        }
    }

    #[test]
    fn routes_by_scope_to_highest_version_and_by_executor_field() {
        let root = tempfile::tempdir().unwrap();
        write_entry(root.path(), "docs-executor", "0.1.0", "\"docs\"");
        write_entry(root.path(), "docs-executor", "0.2.0", "\"docs\"");
        write_entry(
            root.path(),
            "tests-executor",
            "0.1.0",
            "\"tests\", \"test\"",
        );
        let reg = Registry::scan(root.path()).unwrap();
        assert!(reg.rejected.is_empty(), "{:?}", reg.rejected);
        assert_eq!(
            reg.route(&task("docs", None)).unwrap().id(),
            "docs-executor@0.2.0"
        );
        assert_eq!(
            reg.route(&task("test", None)).unwrap().id(),
            "tests-executor@0.1.0"
        );
        assert_eq!(
            reg.route(&task("docs", Some("docs-executor@<0.2")))
                .unwrap()
                .id(),
            "docs-executor@0.1.0"
        );
        let err = reg.route(&task("deploy", None)).unwrap_err().to_string();
        assert!(
            err.contains("no executor plugin handles scope `deploy`"),
            "{err}"
        );
    }

    #[test]
    fn bad_manifests_are_rejected_with_the_field_named() {
        let root = tempfile::tempdir().unwrap();
        write_entry(root.path(), "good", "1.0.0", "\"docs\"");
        let bad = root.path().join("bad/1.0.0");
        fs::create_dir_all(&bad).unwrap();
        fs::write(
            bad.join("plugin.toml"),
            "name = \"bad\"\nversion = \"one\"\n",
        )
        .unwrap();
        let reg = Registry::scan(root.path()).unwrap();
        assert_eq!(reg.entries.len(), 1);
        assert_eq!(reg.rejected.len(), 1);
        assert!(
            reg.rejected[0].reason.contains("version"),
            "{}",
            reg.rejected[0].reason
        );
    }

    #[test]
    fn two_plugins_for_one_scope_is_ambiguous() {
        let root = tempfile::tempdir().unwrap();
        write_entry(root.path(), "a", "1.0.0", "\"docs\"");
        write_entry(root.path(), "b", "1.0.0", "\"docs\"");
        let reg = Registry::scan(root.path()).unwrap();
        let err = reg.route(&task("docs", None)).unwrap_err().to_string();
        assert!(err.contains("claimed by several plugins (a, b)"), "{err}");
    }

    #[test]
    fn install_writes_a_scannable_entry_and_a_bad_template_keeps_the_old_one() {
        let root = tempfile::tempdir().unwrap();
        let src = tempfile::tempdir().unwrap();
        let wasm = src.path().join("x.wasm");
        fs::write(&wasm, b"\0asm v1").unwrap();
        let template = src.path().join("plugin.toml");
        fs::write(
            &template,
            format!("name = \"x\"\nversion = \"1.0.0\"\nworld = \"{EXECUTOR_WORLD}\"\nscopes = [\"docs\"]\n"),
        )
        .unwrap();
        let entry = install(root.path(), &wasm, &template, |_| Ok(())).unwrap();
        assert_eq!(entry.manifest.sha256, sha256_hex(b"\0asm v1"));
        let reg = Registry::scan(root.path()).unwrap();
        assert_eq!(reg.entries.len(), 1, "{:?}", reg.rejected);

        fs::write(
            &template,
            "name = \"x\"\nversion = \"1.0.0\"\nworld = \"other:world@9.0.0\"\nscopes = [\"docs\"]\n",
        )
        .unwrap();
        let err = install(root.path(), &wasm, &template, |_| Ok(())).unwrap_err();
        assert!(err.contains("field `world`"), "{err}");
        let reg = Registry::scan(root.path()).unwrap();
        assert_eq!(
            reg.entries.len(),
            1,
            "the good entry survives: {:?}",
            reg.rejected
        );
    }
}
