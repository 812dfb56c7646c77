//! The loaded plugin set: every accepted entry compiled (or taken from the cache),
//! contract-checked and linked, with the rejected ones and why. A set is immutable;
//! hot reload builds a new one and swaps it in, so an attempt that holds a set keeps
//! the versions it started with.

use crate::{LoadedComponent, Sandbox};
use leviathan_domain::backlog::Task;
use leviathan_domain::policy::PluginPolicy;
use leviathan_domain::registry::signing::SignatureStatus;
use leviathan_domain::registry::{Entry, Registry, RegistryError, Rejected};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// One plugin ready to run.
#[derive(Clone)]
pub struct LoadedPlugin {
    pub entry: Entry,
    pub component: LoadedComponent,
    pub signature: SignatureStatus,
}

/// The state of one registry entry, keyed by its directory (`name/version`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum EntryState {
    Loaded { plugin: String, sha256: String },
    Rejected { reason: String },
}

/// A registry loaded against a policy.
#[derive(Clone)]
pub struct PluginSet {
    /// The accepted entries that loaded (routing only considers these).
    pub registry: Registry,
    pub loaded: BTreeMap<String, LoadedPlugin>,
    /// The plugin rules the set was loaded under; a target whose policy has other
    /// rules must not route through it.
    pub rules: PluginPolicy,
}

impl PluginSet {
    /// Scans `dir`, applies `policy` and loads every accepted entry. Components that
    /// `previous` already loaded with the same digest are reused, not recompiled. A
    /// missing directory is an empty registry. Scope conflicts are settled among the
    /// entries that loaded, so a broken entry never knocks out a working one.
    pub fn load(
        dir: &Path,
        policy: &PluginPolicy,
        sandbox: &Sandbox,
        previous: Option<&PluginSet>,
    ) -> Result<PluginSet, RegistryError> {
        PluginSet::load_matching(dir, policy, sandbox, previous, |_| true)
    }

    /// [`PluginSet::load`] of only the entries `wanted` selects (the candidates for
    /// one task, for `exec`): the others are neither compiled nor listed.
    pub fn load_matching(
        dir: &Path,
        policy: &PluginPolicy,
        sandbox: &Sandbox,
        previous: Option<&PluginSet>,
        wanted: impl Fn(&Entry) -> bool,
    ) -> Result<PluginSet, RegistryError> {
        let mut registry = if dir.exists() {
            Registry::scan_with_policy(dir, policy)?
        } else {
            tracing::warn!(dir = %dir.display(), "plugin registry directory does not exist");
            let mut empty = Registry::empty(dir);
            empty.routes = policy.routes.clone();
            empty
        };
        let mut loaded = BTreeMap::new();
        let mut kept = Vec::with_capacity(registry.entries.len());
        for entry in std::mem::take(&mut registry.entries)
            .into_iter()
            .filter(|e| wanted(e))
        {
            let id = entry.id();
            let reused = previous.and_then(|p| p.loaded.get(&id)).filter(|p| {
                p.entry.manifest.sha256 == entry.manifest.sha256 && p.entry.wasm == entry.wasm
            });
            let component = match reused {
                Some(p) => Ok(p.component.clone()),
                None => super::load_entry(&entry, sandbox),
            };
            match component {
                Ok(component) => {
                    let signature = registry
                        .signatures
                        .get(&id)
                        .cloned()
                        .unwrap_or(SignatureStatus::Unsigned);
                    loaded.insert(
                        id,
                        LoadedPlugin {
                            entry: entry.clone(),
                            component,
                            signature,
                        },
                    );
                    kept.push(entry);
                }
                Err(e) => registry.rejected.push(Rejected {
                    dir: entry.dir.clone(),
                    reason: e.to_string(),
                }),
            }
        }
        registry.entries = kept;
        for id in registry.reject_contested() {
            loaded.remove(&id);
        }
        Ok(PluginSet {
            registry,
            loaded,
            rules: policy.clone(),
        })
    }

    /// The plugin for `task` (see [`Registry::route`]).
    pub fn route(&self, task: &Task) -> Result<&LoadedPlugin, RegistryError> {
        let entry = self.registry.route(task)?;
        self.loaded
            .get(&entry.id())
            .ok_or_else(|| RegistryError::NoMatch {
                wanted: entry.id(),
                installed: "none loaded".into(),
            })
    }

    /// Every entry's state, keyed by its directory relative to the registry.
    pub fn states(&self) -> BTreeMap<String, EntryState> {
        let key = |dir: &Path| {
            dir.strip_prefix(&self.registry.dir)
                .unwrap_or(dir)
                .to_string_lossy()
                .into_owned()
        };
        let mut states = BTreeMap::new();
        for p in self.loaded.values() {
            states.insert(
                key(&p.entry.dir),
                EntryState::Loaded {
                    plugin: p.entry.id(),
                    sha256: p.entry.manifest.sha256.clone(),
                },
            );
        }
        for r in &self.registry.rejected {
            states.insert(
                key(&r.dir),
                EntryState::Rejected {
                    reason: r.reason.clone(),
                },
            );
        }
        states
    }
}
