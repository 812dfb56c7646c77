//! The targets configuration in force while `serve` runs, and reloading it from its
//! file (on SIGHUP, or when the file changes): a file that does not load, or that
//! changes the shard count, leaves the configuration in force as it was.

use crate::config::Config;
use crate::in_force::InForce;
use crate::yaml::InputError;
use std::sync::Arc;

/// The configuration in force, replaced whole by [`LiveConfig::reload`]; readers take
/// the current one for the length of their work (a pass, a request).
#[derive(Debug)]
pub struct LiveConfig {
    current: InForce<Config>,
}

/// What a reload changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// Targets in force now.
    pub targets: usize,
    /// Ids of the targets the file added and removed.
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

/// Why a reload left the configuration in force as it was.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Input(#[from] InputError),
    #[error(
        "{file}: field `shards`: changed from {was} to {now}; a running host keeps its shard count (stop every shard, run `leviathan-host shards migrate`, then start them with the new count)"
    )]
    Shards {
        file: std::path::PathBuf,
        was: u32,
        now: u32,
    },
}

impl LiveConfig {
    /// `config` in force.
    pub fn new(config: Config) -> LiveConfig {
        LiveConfig {
            current: InForce::new(config),
        }
    }

    /// The configuration in force.
    pub fn current(&self) -> Arc<Config> {
        self.current.current()
    }

    /// Reads the configuration's file again and puts it in force.
    pub fn reload(&self) -> Result<Reloaded, ReloadError> {
        let old = self.current();
        let new = Config::load(&old.source)?;
        if new.shards != old.shards {
            return Err(ReloadError::Shards {
                file: old.source.clone(),
                was: old.shards,
                now: new.shards,
            });
        }
        let ids = |c: &Config| -> Vec<String> { c.targets.iter().map(|t| t.id.clone()).collect() };
        let (before, after) = (ids(&old), ids(&new));
        let reloaded = Reloaded {
            targets: after.len(),
            added: after
                .iter()
                .filter(|id| !before.contains(id))
                .cloned()
                .collect(),
            removed: before
                .iter()
                .filter(|id| !after.contains(id))
                .cloned()
                .collect(),
        };
        self.current.replace(Arc::new(new));
        Ok(reloaded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &std::path::Path, text: &str) -> std::path::PathBuf {
        let file = dir.join("leviathan.yaml");
        std::fs::write(&file, text).unwrap();
        file
    }

    #[test]
    fn a_reload_puts_the_file_in_force_and_says_what_changed() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            "targets:\n  - {id: a, repository: a.git}\n  - {id: b, repository: b.git}\n",
        );
        let live = LiveConfig::new(Config::load(&file).unwrap());
        write(
            dir.path(),
            "interval_seconds: 30\ntargets:\n  - {id: b, repository: b.git}\n  - {id: c, repository: c.git}\n",
        );
        let reloaded = live.reload().unwrap();
        assert_eq!(
            reloaded,
            Reloaded {
                targets: 2,
                added: vec!["c".into()],
                removed: vec!["a".into()],
            }
        );
        assert_eq!(live.current().interval_seconds, 30);
    }

    #[test]
    fn a_file_that_does_not_load_or_moves_the_shards_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "targets:\n  - {id: a, repository: a.git}\n");
        let live = LiveConfig::new(Config::load(&file).unwrap());
        let held = live.current();
        write(
            dir.path(),
            "targets:\n  - {id: a, repository: a.git, colour: blue}\n",
        );
        let err = live.reload().unwrap_err().to_string();
        assert!(
            err.contains("leviathan.yaml") && err.contains("colour"),
            "{err}"
        );
        write(
            dir.path(),
            "shards: 2\ntargets:\n  - {id: b, repository: b.git}\n",
        );
        let err = live.reload().unwrap_err().to_string();
        assert!(
            err.contains("`shards`") && err.contains("from 1 to 2"),
            "{err}"
        );
        assert!(
            Arc::ptr_eq(&held, &live.current()),
            "the configuration in force is unchanged"
        );
    }
}
