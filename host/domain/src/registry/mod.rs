//! The plugin registry directory: `<registry>/<name>/<version>/plugin.toml` next to
//! `<name>.wasm`. Manifests are read and checked against the policy up front
//! (fields, signatures); scope conflicts are settled among the entries that load, and
//! loading (compile, digest, contract, link) is the sandbox's (`leviathan_sandbox::plugins`).

mod install;
pub mod manifest;
pub mod signing;

pub use install::install;
pub use manifest::{EXECUTOR_WORLD, Entry, Manifest, ManifestLimits};

use crate::backlog::Task;
use crate::paths::RepoPath;
use crate::policy::PluginPolicy;
use crate::repofs::{Kind, RepoDir};
use manifest::{EXECUTOR_INTERFACE, EXECUTOR_PACKAGE, read_entry};
use signing::SignatureStatus;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The directory used when neither `--plugin-dir` nor `LEVIATHAN_PLUGIN_DIR` is set.
pub const DEFAULT_REGISTRY_DIR: &str = "plugins/registry";

/// The component's bytes, read through a handle on its entry directory: a regular
/// file, not a link, at most [`manifest::MAX_COMPONENT`] bytes.
pub fn read_component(entry: &Entry) -> Result<Vec<u8>, String> {
    let name = entry
        .wasm
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| RepoPath::parse(n).ok())
        .ok_or_else(|| "the component has no usable file name".to_string())?;
    let dir = RepoDir::open(&entry.dir, "the plugin registry")
        .map_err(|e| format!("cannot open {}: {e}", entry.dir.display()))?;
    dir.read(&name, manifest::MAX_COMPONENT)
        .map_err(|e| format!("cannot read: {e}"))?
        .ok_or_else(|| "cannot read: the component is missing".to_string())
}

fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.to_str().is_some_and(|n| n.starts_with('.'))
}

/// The subdirectories of a registry level, by name; a link or other non-directory
/// entry there is rejected with its reason (a registry entry is never reached through
/// a link), files are ignored, hidden names skipped.
fn subdirs(
    handle: &RepoDir,
    path: &Path,
    rejected: &mut Vec<Rejected>,
) -> Result<Vec<(PathBuf, RepoDir)>, String> {
    let mut out = Vec::new();
    for (name, kind) in handle.entries().map_err(|e| e.to_string())? {
        if is_hidden(&name) {
            continue;
        }
        let dir = path.join(&name);
        match kind {
            Kind::Dir => {}
            Kind::Symlink => {
                rejected.push(Rejected {
                    dir,
                    reason: "is a symbolic link; registry entries must be real directories".into(),
                });
                continue;
            }
            _ => continue,
        }
        let opened = name
            .to_str()
            .and_then(|n| RepoPath::parse(n).ok())
            .map(|rel| handle.open_dir(&rel));
        match opened {
            Some(Ok(Some(sub))) => out.push((dir, sub)),
            Some(Ok(None)) => {}
            Some(Err(e)) => rejected.push(Rejected {
                dir,
                reason: e.to_string(),
            }),
            None => rejected.push(Rejected {
                dir,
                reason: "the directory name is not a usable path component".into(),
            }),
        }
    }
    Ok(out)
}

/// Checks that a component exports the executor interface once, at the contract
/// version its manifest declares, and that this host can run that version.
pub fn check_exports(exports: &[String], declared: &semver::Version) -> Result<(), String> {
    let versions: Vec<semver::Version> = exports
        .iter()
        .filter_map(|name| manifest::contract_version(name, EXECUTOR_INTERFACE))
        .collect();
    match versions.as_slice() {
        [] => Err(format!(
            "the component does not export `{EXECUTOR_PACKAGE}/{EXECUTOR_INTERFACE}` (it exports: {})",
            exports.join(", ")
        )),
        [v] if v != declared => Err(format!(
            "the component exports contract {v}, plugin.toml declares {declared}"
        )),
        [v] => manifest::check_contract_version(v),
        _ => Err("the component exports several versions of the executor interface".into()),
    }
}

/// The plugin name an `executor` field (`name` or `name@<requirement>`) asks for.
fn executor_name(wanted: &str) -> &str {
    wanted.split('@').next().unwrap_or(wanted).trim()
}

/// Whether `entry` could serve `task`: the plugin its `executor` field names, else one
/// handling its scope (what [`Registry::route`] chooses among).
pub fn is_candidate(entry: &Entry, task: &Task) -> bool {
    match task.executor.as_deref() {
        Some(wanted) => entry.manifest.name == executor_name(wanted),
        None => entry.manifest.scopes.iter().any(|s| s == &task.scope),
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
    /// The sandbox could not load the component (compile, contract, link).
    #[error("{0}")]
    Load(String),
}

/// The registry's valid entries and the rejected ones.
#[derive(Debug, Clone)]
pub struct Registry {
    pub dir: PathBuf,
    pub entries: Vec<Entry>,
    pub rejected: Vec<Rejected>,
    /// Scope → plugin name tie-breakers (from the policy).
    pub routes: BTreeMap<String, String>,
    /// The signature status of each accepted entry, by id.
    pub signatures: BTreeMap<String, SignatureStatus>,
}

impl Registry {
    /// The registry directory: `LEVIATHAN_PLUGIN_DIR` or [`DEFAULT_REGISTRY_DIR`].
    pub fn default_dir() -> PathBuf {
        std::env::var_os("LEVIATHAN_PLUGIN_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_REGISTRY_DIR))
    }

    /// A registry without entries.
    pub fn empty(dir: &Path) -> Registry {
        Registry {
            dir: dir.to_path_buf(),
            entries: Vec::new(),
            rejected: Vec::new(),
            routes: BTreeMap::new(),
            signatures: BTreeMap::new(),
        }
    }

    /// Reads every manifest under `dir` through a handle on it (no link inside the
    /// registry is followed). Invalid entries are listed in `rejected`. Hidden
    /// directories (an install in progress, `.install-*`) are skipped.
    pub fn scan(dir: &Path) -> Result<Registry, RegistryError> {
        let unreadable = |message: String| RegistryError::Unreadable {
            dir: dir.to_path_buf(),
            message,
        };
        let root =
            RepoDir::open(dir, "the plugin registry").map_err(|e| unreadable(e.to_string()))?;
        let mut entries = Vec::new();
        let mut rejected = Vec::new();
        for (name_dir, name_handle) in subdirs(&root, dir, &mut rejected).map_err(unreadable)? {
            let versions = match subdirs(&name_handle, &name_dir, &mut rejected) {
                Ok(v) => v,
                Err(reason) => {
                    rejected.push(Rejected {
                        dir: name_dir,
                        reason,
                    });
                    continue;
                }
            };
            for (version_dir, handle) in versions {
                match read_entry(&handle, &version_dir) {
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
            routes: BTreeMap::new(),
            signatures: BTreeMap::new(),
        })
    }

    /// Scans `dir` and applies `policy`: see [`Registry::apply_policy`].
    pub fn scan_with_policy(dir: &Path, policy: &PluginPolicy) -> Result<Registry, RegistryError> {
        let mut registry = Registry::scan(dir)?;
        registry.apply_policy(policy);
        Ok(registry)
    }

    /// Rejects entries with a bad signature, and unsigned or untrusted entries when the
    /// policy requires signatures. Scope conflicts are settled later, among the
    /// entries that load ([`Registry::reject_contested`]): a broken entry never
    /// knocks out a working one.
    pub fn apply_policy(&mut self, policy: &PluginPolicy) {
        self.routes = policy.routes.clone();
        let mut kept = Vec::with_capacity(self.entries.len());
        for entry in std::mem::take(&mut self.entries) {
            let accepted = signing::check(&entry.manifest, &policy.trusted_keys).and_then(
                |status| match status {
                    SignatureStatus::Unsigned if policy.require_signatures => Err(
                        "unsigned, and the policy requires signatures (plugins.require_signatures)"
                            .to_string(),
                    ),
                    SignatureStatus::Untrusted if policy.require_signatures => Err(format!(
                        "signed by {}, which is not in the policy's plugins.trusted_keys",
                        entry.manifest.signed_by.as_deref().unwrap_or_default()
                    )),
                    status => Ok(status),
                },
            );
            match accepted {
                Ok(status) => {
                    self.signatures.insert(entry.id(), status);
                    kept.push(entry);
                }
                Err(reason) => self.rejected.push(Rejected {
                    dir: entry.dir.clone(),
                    reason: format!("{}: {reason}", entry.id()),
                }),
            }
        }
        self.entries = kept;
    }

    /// Rejects every entry claiming a scope that another plugin name also claims,
    /// unless the policy's `routes` names the one to use. Called on the entries that
    /// loaded, so only working plugins contest a scope; returns the ids rejected.
    pub fn reject_contested(&mut self) -> Vec<String> {
        let mut claims: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for entry in &self.entries {
            for scope in &entry.manifest.scopes {
                let names = claims.entry(scope.as_str()).or_default();
                if !names.contains(&entry.manifest.name.as_str()) {
                    names.push(entry.manifest.name.as_str());
                }
            }
        }
        let contested: BTreeMap<String, String> = claims
            .into_iter()
            .filter(|(scope, names)| names.len() > 1 && !self.routes.contains_key(*scope))
            .map(|(scope, names)| (scope.to_string(), names.join(", ")))
            .collect();
        let mut removed = Vec::new();
        for entry in std::mem::take(&mut self.entries) {
            let conflict = entry
                .manifest
                .scopes
                .iter()
                .find_map(|s| contested.get(s).map(|names| (s, names)));
            match conflict {
                Some((scope, names)) => {
                    self.signatures.remove(&entry.id());
                    removed.push(entry.id());
                    self.rejected.push(Rejected {
                        dir: entry.dir.clone(),
                        reason: format!(
                            "{}: scope `{scope}` is claimed by {names}; name the plugin to use in the policy (plugins.routes.{scope})",
                            entry.id()
                        ),
                    })
                }
                None => self.entries.push(entry),
            }
        }
        removed
    }

    fn installed(&self) -> String {
        let rejected = self
            .rejected
            .iter()
            .map(|r| format!("{} rejected: {}", r.dir.display(), r.reason))
            .collect::<Vec<_>>()
            .join("; ");
        if self.entries.is_empty() && rejected.is_empty() {
            return "none; run `cargo xtask build`".into();
        }
        let mut listed: Vec<String> = self
            .entries
            .iter()
            .map(|e| format!("{} [{}]", e.id(), e.manifest.scopes.join(", ")))
            .collect();
        if listed.is_empty() {
            listed.push("none accepted".into());
        }
        if !rejected.is_empty() {
            listed.push(rejected);
        }
        listed.join(", ")
    }

    /// Picks the plugin for `task`: by its `executor` field (`name` or
    /// `name@<semver requirement>`), else the highest version handling its scope.
    pub fn route(&self, task: &Task) -> Result<&Entry, RegistryError> {
        if let Some(wanted) = task.executor.as_deref() {
            let (name, req) = match wanted.split_once('@') {
                Some((_, r)) => (
                    executor_name(wanted),
                    semver::VersionReq::parse(r.trim())
                        .map_err(|_| RegistryError::BadExecutorField(wanted.into()))?,
                ),
                None => (executor_name(wanted), semver::VersionReq::STAR),
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
        let preferred = self.routes.get(&task.scope);
        let candidates: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| e.manifest.scopes.iter().any(|s| s == &task.scope))
            .filter(|e| preferred.is_none_or(|name| &e.manifest.name == name))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::sha256_hex;
    use std::fs;

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
    fn the_export_must_be_the_declared_compatible_contract() {
        let v010 = semver::Version::new(0, 1, 0);
        let ok = [
            "wasi:cli/run@0.2.0".to_string(),
            "leviathan:executor/executor@0.1.0".into(),
        ];
        assert_eq!(check_exports(&ok, &v010), Ok(()));
        let none = ["wasi:cli/run@0.2.0".to_string()];
        assert!(
            check_exports(&none, &v010)
                .unwrap_err()
                .contains("does not export")
        );
        let other = ["leviathan:executor/executor@1.0.0".to_string()];
        let err = check_exports(&other, &v010).unwrap_err();
        assert!(
            err.contains("exports contract 1.0.0, plugin.toml declares 0.1.0"),
            "{err}"
        );
        let v100 = semver::Version::new(1, 0, 0);
        assert!(
            check_exports(&other, &v100)
                .unwrap_err()
                .contains("different major")
        );
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
        let entry = install(root.path(), &wasm, &template, None, |_| Ok(())).unwrap();
        assert_eq!(entry.manifest.sha256, sha256_hex(b"\0asm v1"));
        let reg = Registry::scan(root.path()).unwrap();
        assert_eq!(reg.entries.len(), 1, "{:?}", reg.rejected);

        fs::write(
            &template,
            "name = \"x\"\nversion = \"1.0.0\"\nworld = \"other:world@9.0.0\"\nscopes = [\"docs\"]\n",
        )
        .unwrap();
        let err = install(root.path(), &wasm, &template, None, |_| Ok(())).unwrap_err();
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
