//! The plugin registry inside `serve`: loaded in the background at start (`/readyz`
//! waits for it), then watched and reloaded on change. Every change is recorded as
//! `plugin.loaded`, `plugin.rejected` or `plugin.removed`, by comparing the registry
//! with what the log last recorded, so a restart with an unchanged registry records
//! nothing.

use super::AppState;
use leviathan_domain::policy::PluginPolicy;
use leviathan_events::projection::PluginView;
use leviathan_events::{EventDraft, EventLog};
use leviathan_sandbox::Sandbox;
use leviathan_sandbox::plugins::set::{EntryState, PluginSet};
use leviathan_sandbox::plugins::watch::{SharedPlugins, Watch, watch};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The plugins of a running server: empty until the first load finishes.
#[derive(Default)]
pub struct PluginStatus {
    shared: OnceLock<Arc<SharedPlugins>>,
    watch: Mutex<Option<Watch>>,
}

impl PluginStatus {
    /// The set in force, once loaded.
    pub fn current(&self) -> Option<Arc<PluginSet>> {
        self.shared.get().map(|s| s.current())
    }

    /// Reloads of the watched registry that failed so far.
    pub fn reload_failures(&self) -> u64 {
        self.watch
            .lock()
            .ok()
            .and_then(|w| w.as_ref().map(|w| w.failures()))
            .unwrap_or(0)
    }
}

fn same(view: Option<&PluginView>, state: &EntryState) -> bool {
    match (view, state) {
        (Some(v), EntryState::Loaded { plugin, sha256 }) => {
            v.status == "loaded"
                && v.plugin.as_ref() == Some(plugin)
                && v.sha256.as_ref() == Some(sha256)
        }
        (Some(v), EntryState::Rejected { reason }) => {
            v.status == "rejected" && v.reason.as_ref() == Some(reason)
        }
        (None, _) => false,
    }
}

/// The events that bring the log's view of the registry to `set`.
fn changes(recorded: &BTreeMap<String, PluginView>, set: &PluginSet) -> Vec<EventDraft> {
    let states = set.states();
    let mut drafts = Vec::new();
    for (entry, state) in &states {
        if same(recorded.get(entry), state) {
            continue;
        }
        let draft = match state {
            EntryState::Loaded { plugin, sha256 } => {
                let signed = set
                    .loaded
                    .get(plugin)
                    .map(|p| format!("{:?}", p.signature).to_lowercase());
                let mut d = EventDraft::new("plugin.loaded");
                d.payload =
                    json!({"entry": entry, "plugin": plugin, "sha256": sha256, "signed": signed});
                d
            }
            EntryState::Rejected { reason } => {
                let mut d = EventDraft::new("plugin.rejected");
                d.payload = json!({"entry": entry, "reason": reason});
                d
            }
        };
        drafts.push(draft);
    }
    for entry in recorded.keys().filter(|k| !states.contains_key(*k)) {
        let mut d = EventDraft::new("plugin.removed");
        d.payload = json!({"entry": entry});
        drafts.push(d);
    }
    drafts
}

fn record(log: &EventLog, set: &PluginSet) {
    let drafts = match log.with_projection(|p| changes(&p.plugins, set)) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "plugin changes not recorded");
            return;
        }
    };
    for d in &drafts {
        tracing::info!(event = %d.kind, payload = %d.payload, "plugin registry change");
    }
    if let Err(e) = log.append(drafts) {
        tracing::error!(error = %e, "plugin changes not recorded");
    }
}

/// Loads the registry on a blocking thread, publishes it, records the changes and
/// starts watching the directory.
/// The plugins are compiled for `sandbox`'s engine: attempts must run in the same one.
pub fn start(
    state: Arc<AppState>,
    sandbox: Arc<Sandbox>,
    dir: PathBuf,
    policy: PluginPolicy,
    debounce: Duration,
) {
    tokio::task::spawn_blocking(move || {
        let set = match PluginSet::load(&dir, &policy, &sandbox, None) {
            Ok(set) => set,
            Err(e) => {
                tracing::error!(error = %e, "plugin registry not loaded");
                return;
            }
        };
        record(&state.log, &set);
        tracing::info!(
            loaded = set.loaded.len(),
            rejected = set.registry.rejected.len(),
            "plugins loaded"
        );
        let shared = Arc::new(SharedPlugins::new(set));
        let log = state.log.clone();
        let reloads = state.metrics.clone_plugin_reload();
        match watch(
            dir,
            policy,
            sandbox,
            shared.clone(),
            debounce,
            move |reload| {
                reloads.observe(reload.took.as_secs_f64());
                record(&log, &reload.set);
                tracing::info!(
                    loaded = reload.set.loaded.len(),
                    took_ms = reload.took.as_millis() as u64,
                    "plugins reloaded"
                );
            },
        ) {
            Ok(w) => {
                if let Ok(mut slot) = state.plugins.watch.lock() {
                    *slot = Some(w);
                }
            }
            Err(e) => tracing::error!(error = %e, "plugin hot reload is off"),
        }
        let _ = state.plugins.shared.set(shared);
    });
}
