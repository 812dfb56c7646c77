//! Hot reload: the registry directory is watched (inotify through `notify`); after a
//! burst of changes settles (the debounce), a new [`PluginSet`] is loaded and swapped
//! in. Attempts that already hold the previous set finish on it.

use super::set::PluginSet;
use crate::Sandbox;
use leviathan_domain::policy::PluginPolicy;
use notify::Watcher as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The current plugin set, replaced as a whole on reload; holding the set taken
/// keeps its plugins alive.
pub type SharedPlugins = leviathan_domain::in_force::InForce<PluginSet>;

/// A running watch; dropping it stops watching.
pub struct Watch {
    watcher: Option<notify::RecommendedWatcher>,
    thread: Option<JoinHandle<()>>,
    failures: Arc<AtomicU64>,
}

impl Watch {
    /// Reloads that failed (the registry could not be read, or the set not built);
    /// the set in force stays.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // Dropping the watcher closes the event channel, which ends the thread.
        drop(self.watcher.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What one reload did.
pub struct Reload {
    pub set: Arc<PluginSet>,
    /// From the end of the debounce to the new set being loaded.
    pub took: Duration,
}

/// Watches `dir` (created if missing) and reloads `shared` after changes have been
/// quiet for `debounce`; `on_reload` runs for each new set just before it is swapped in.
pub fn watch(
    dir: PathBuf,
    policy: PluginPolicy,
    sandbox: Arc<Sandbox>,
    shared: Arc<SharedPlugins>,
    debounce: Duration,
    on_reload: impl Fn(Reload) + Send + 'static,
) -> Result<Watch, String> {
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (tx, rx) = mpsc::channel::<()>();
    let failures = Arc::new(AtomicU64::new(0));
    let failed = failures.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access()) {
            let _ = tx.send(());
        }
    })
    .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
    watcher
        .watch(&dir, notify::RecursiveMode::Recursive)
        .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
    let thread = std::thread::Builder::new()
        .name("plugin-watch".into())
        .spawn(move || {
            while rx.recv().is_ok() {
                loop {
                    match rx.recv_timeout(debounce) {
                        Ok(()) => continue,
                        Err(RecvTimeoutError::Timeout) => break,
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
                let started = Instant::now();
                let previous = shared.current();
                match PluginSet::load(&dir, &policy, &sandbox, Some(&previous)) {
                    Ok(set) => {
                        let set = Arc::new(set);
                        let took = started.elapsed();
                        // What `on_reload` records is visible no later than the set.
                        on_reload(Reload {
                            set: set.clone(),
                            took,
                        });
                        shared.replace(set);
                    }
                    Err(e) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(error = %e, "plugin registry not reloaded");
                    }
                }
            }
        })
        .map_err(|e| format!("cannot start the watch thread: {e}"))?;
    Ok(Watch {
        watcher: Some(watcher),
        thread: Some(thread),
        failures,
    })
}
