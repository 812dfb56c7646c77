//! Scheduler passes beside the API (`serve --config`): one right away, then one every
//! `interval_seconds`; or, with a cron `schedule`, one at each of its minutes (UTC).
//! A pass runs on its own thread with the server's event log and the plugin set in
//! force when it starts; shutdown lets a running pass finish.

use crate::Scheduler;
use leviathan_domain::clock::now_secs;
use leviathan_domain::cron::Cron;
use leviathan_domain::live_config::LiveConfig;
use leviathan_events::EventLog;
use leviathan_forge::github::clients::GitHubClients;
use leviathan_sandbox::Sandbox;
use leviathan_sandbox::plugins::set::PluginSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Sleeps in short steps until `done()` or a stop; whether it was not a stop.
fn wait_until(stopping: &AtomicBool, done: impl Fn() -> bool) -> bool {
    while !done() {
        if stopping.load(Ordering::SeqCst) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    !stopping.load(Ordering::SeqCst)
}

/// Sleeps until the schedule's next minute; false when stopping first (or when the
/// schedule never matches, which is logged).
fn wait_for_cron(cron: &Cron, stopping: &AtomicBool) -> bool {
    let Some(next) = cron.next_after(now_secs()) else {
        tracing::error!(
            schedule = cron.as_str(),
            "the schedule never matches: no passes run"
        );
        wait_until(stopping, || false);
        return false;
    };
    tracing::info!(
        schedule = cron.as_str(),
        next_epoch = next,
        "next scheduler pass"
    );
    wait_until(stopping, || now_secs() >= next)
}

/// The running pass loop.
pub struct Passes {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    status: PassStatus,
}

/// How the pass loop is doing, for the server's metrics: when a pass last ran to
/// its end, how many failed (the log could not be read or written), and what the
/// GitHub identities have left.
#[derive(Clone)]
pub struct PassStatus {
    /// Milliseconds since the epoch when a pass last completed; 0 before the first.
    last_completed_ms: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    github: Arc<GitHubClients>,
}

impl PassStatus {
    /// When a pass last ran to its end (ms since the epoch).
    pub fn last_completed_ms(&self) -> Option<u64> {
        Some(self.last_completed_ms.load(Ordering::SeqCst)).filter(|ms| *ms > 0)
    }

    /// Passes that ended in an error of the log.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::SeqCst)
    }

    /// Each GitHub client's budget and content requests.
    pub fn github(&self) -> Vec<leviathan_forge::github::clients::Usage> {
        self.github.usage()
    }

    /// The targets discovered in App installations, as the passes last served them.
    pub fn discovered(&self) -> Vec<leviathan_domain::config::Target> {
        self.github.discovered()
    }
}

impl Passes {
    /// Starts the loop on the configuration `live` holds, read again at the start of
    /// each pass (its `github_limits` are read once, here). `plugins` gives the
    /// hot-reloaded plugin set at the start of each pass (`None` while it is still
    /// loading: the pass then scans the registry directory).
    pub fn start(
        live: Arc<LiveConfig>,
        log: Arc<EventLog>,
        sandbox: Arc<Sandbox>,
        registry_dir: PathBuf,
        work_dir: PathBuf,
        plugins: impl Fn() -> Option<Arc<PluginSet>> + Send + 'static,
        shard: leviathan_domain::shards::Shard,
    ) -> std::io::Result<Passes> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        // One set of GitHub clients for every pass: the rate-limit budgets carry over.
        let status = PassStatus {
            last_completed_ms: Arc::new(AtomicU64::new(0)),
            failed: Arc::new(AtomicU64::new(0)),
            github: Arc::new(GitHubClients::for_config(&live.current())),
        };
        let reported = status.clone();
        let thread = std::thread::Builder::new()
            .name("scheduler".into())
            .spawn(move || {
                let github = reported.github.clone();
                while !stopping.load(Ordering::SeqCst) {
                    if let Some(cron) = &live.current().schedule
                        && !wait_for_cron(cron, &stopping)
                    {
                        break;
                    }
                    // Each pass runs on the configuration in force when it starts.
                    let config = live.current();
                    let started = Instant::now();
                    let scheduler = Scheduler {
                        config: &config,
                        log: &log,
                        sandbox: &sandbox,
                        registry_dir: registry_dir.clone(),
                        work_dir: work_dir.clone(),
                        plugins: plugins(),
                        github: &github,
                        shard,
                    };
                    match scheduler.tick() {
                        Ok(reports) => {
                            for r in reports {
                                tracing::info!(target_id = %r.target, outcome = %r.outcome, "pass");
                            }
                            reported
                                .last_completed_ms
                                .store(leviathan_domain::clock::now_ms(), Ordering::SeqCst);
                        }
                        Err(e) => {
                            reported.failed.fetch_add(1, Ordering::SeqCst);
                            tracing::error!(error = %e, "scheduler pass failed");
                        }
                    }
                    if config.schedule.is_none() {
                        let interval = Duration::from_secs(config.interval_seconds);
                        wait_until(&stopping, || started.elapsed() >= interval);
                    }
                }
            })?;
        Ok(Passes {
            stop,
            thread: Some(thread),
            status,
        })
    }

    /// How the loop is doing (a handle that stays valid after `stop`).
    pub fn status(&self) -> PassStatus {
        self.status.clone()
    }

    /// Stops after the running pass, waiting for it up to `grace`.
    pub fn stop(mut self, grace: Duration) {
        self.stop.store(true, Ordering::SeqCst);
        let Some(thread) = self.thread.take() else {
            return;
        };
        let deadline = Instant::now() + grace;
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if thread.is_finished() {
            let _ = thread.join();
        } else {
            // Its git commands would otherwise go on in clones whose claims are let go.
            let stopped = leviathan_forge::git::stop_remote_commands();
            tracing::warn!(
                git_commands_stopped = stopped,
                "a scheduler pass is still running at shutdown; its events so far are durable"
            );
        }
    }
}
