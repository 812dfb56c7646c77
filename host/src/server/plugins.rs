//! Loading the plugin registry when the server starts; `/readyz` reports it.

use super::AppState;
use crate::registry::Registry;
use crate::sandbox::{ArtifactCache, Sandbox};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

/// The outcome of loading the registry.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PluginSummary {
    /// `name@version` of each entry that loaded.
    pub loaded: Vec<String>,
    /// Entries that did not load, with the reason.
    pub rejected: Vec<RejectedPlugin>,
}

/// One entry that did not load.
#[derive(Debug, Clone, Serialize)]
pub struct RejectedPlugin {
    pub path: String,
    pub reason: String,
}

/// `None` until loading has finished.
#[derive(Default)]
pub struct PluginStatus(RwLock<Option<PluginSummary>>);

impl PluginStatus {
    /// The summary, once loading has finished.
    pub fn summary(&self) -> Option<PluginSummary> {
        match self.0.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set(&self, summary: PluginSummary) {
        match self.0.write() {
            Ok(mut s) => *s = Some(summary),
            Err(poisoned) => *poisoned.into_inner() = Some(summary),
        }
    }
}

/// Scans and loads (compiles or takes from the cache) every registry entry.
fn load(dir: &std::path::Path) -> PluginSummary {
    let mut summary = PluginSummary::default();
    let registry = match Registry::scan(dir) {
        Ok(r) => r,
        Err(e) => {
            summary.rejected.push(RejectedPlugin {
                path: dir.display().to_string(),
                reason: e.to_string(),
            });
            return summary;
        }
    };
    for r in &registry.rejected {
        summary.rejected.push(RejectedPlugin {
            path: r.dir.display().to_string(),
            reason: r.reason.clone(),
        });
    }
    let sandbox = match Sandbox::new(ArtifactCache::new(ArtifactCache::default_dir())) {
        Ok(s) => s,
        Err(e) => {
            summary.rejected.push(RejectedPlugin {
                path: dir.display().to_string(),
                reason: format!("sandbox: {e}"),
            });
            return summary;
        }
    };
    for entry in &registry.entries {
        match entry.load(&sandbox) {
            Ok(_) => summary.loaded.push(entry.id()),
            Err(e) => summary.rejected.push(RejectedPlugin {
                path: entry.dir.display().to_string(),
                reason: e.to_string(),
            }),
        }
    }
    summary
}

/// Loads the registry on a blocking thread and publishes the result.
pub fn load_in_background(state: Arc<AppState>, dir: PathBuf) {
    tokio::task::spawn_blocking(move || {
        let summary = load(&dir);
        for r in &summary.rejected {
            tracing::warn!(path = %r.path, reason = %r.reason, "plugin rejected");
        }
        tracing::info!(
            loaded = summary.loaded.len(),
            rejected = summary.rejected.len(),
            "plugins loaded"
        );
        state.plugins.set(summary);
    });
}
