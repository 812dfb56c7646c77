//! One executor run: a fresh store and instance with the run's mounts, seed and limits.

use super::bindings::leviathan::executor::types as wit;
use super::determinism::{FixedWallClock, SeededRng, VirtualMonotonicClock, insecure_seed};
use super::state::{LimitKind, LogBook, PluginLog, SandboxState, Wasi, WriteWatch, usage};
use super::{LoadedComponent, Sandbox};
use crate::guard::{Denial, WriteGuard};
use leviathan_domain::backlog::Task;
use leviathan_domain::paths::RepoPath;
use leviathan_domain::policy::ExecutorLimits;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use wasmtime::component::ResourceTable;
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

/// Most bytes of stdout/stderr kept from a run.
pub const MAX_CAPTURED_OUTPUT: usize = 64 * 1024;
/// The write caps are checked every this many epoch ticks while a plugin runs.
const WRITE_CHECK_TICKS: u64 = 5;

/// A host directory made visible to the guest at `guest`.
#[derive(Debug, Clone)]
pub struct Mount {
    pub guest: String,
    pub host: PathBuf,
}

pub use crate::guard::OUT_GUEST;

/// Everything one run needs.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub task: Task,
    /// Mounted read-only (the repository snapshot at `/repo`).
    pub read_only: Vec<Mount>,
    /// Mounted read-write (the allowed-path roots under `/out`).
    pub read_write: Vec<Mount>,
    /// The host directory holding every read-write mount, watched for the write caps.
    pub write_root: Option<WriteRoot>,
    /// What the run may create, write, rename or remove, checked at each WASI call
    /// (read-write mounts are under [`OUT_GUEST`], by repository path).
    pub allowed: Vec<RepoPath>,
    /// Seed for every random source the guest sees.
    pub seed: [u8; 32],
    pub limits: ExecutorLimits,
    pub timeout: Duration,
}

/// The host directory holding a run's writable mounts, and what it held before.
#[derive(Debug, Clone)]
pub struct WriteRoot {
    pub dir: PathBuf,
    pub files_before: u64,
    pub bytes_before: u64,
}

/// The successful result of an `execute` call, as the plugin reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestReport {
    pub files: Vec<String>,
    pub summary: String,
}

/// Why a run did not produce a report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunFailure {
    #[error("the executor rejected the task: {0}")]
    InvalidTask(String),
    #[error("the executor was denied: {0}")]
    Denied(String),
    #[error("the executor failed: {0}")]
    Internal(String),
    #[error("the executor hit its {0}")]
    Limit(LimitKind),
    #[error("the executor exited with status {0}")]
    Exit(i32),
    #[error("the executor trapped: {0}")]
    Trap(String),
    #[error("the executor could not be instantiated: {0}")]
    Instantiate(String),
}

/// Measurements of one run.
#[derive(Debug, Clone, Default)]
pub struct RunStats {
    /// Store and WASI context set-up (mounts, clocks, limits).
    pub setup: Duration,
    pub instantiate: Duration,
    pub execute: Duration,
    pub fuel_used: u64,
    /// The largest linear memory the guest grew to, in bytes.
    pub memory_peak: u64,
    /// Dropping the store: the instance's memory returned to the pool.
    pub teardown: Duration,
}

/// What a run produced.
#[derive(Debug)]
pub struct RunOutcome {
    pub result: Result<GuestReport, RunFailure>,
    pub stats: RunStats,
    pub logs: Vec<PluginLog>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Filesystem calls the guard refused, in order.
    pub denials: Vec<Denial>,
}

/// What a plugin says about itself (host-side copy of the WIT record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub scopes: Vec<String>,
    pub summary: String,
}

fn to_wit(task: &Task) -> wit::Task {
    wit::Task {
        id: task.id.clone(),
        title: task.title.clone(),
        description: task.description.clone(),
        scope: task.scope.clone(),
        priority: task.priority.clone(),
        estimated_size: task.estimated_size.clone(),
        allowed_paths: task.allowed_paths.clone(),
        acceptance_criteria: task.acceptance_criteria.clone(),
        labels: task.labels.clone(),
        dependencies: task.dependencies.clone(),
        parameters: task.parameters(),
    }
}

struct Pipes {
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
}

impl Sandbox {
    fn store(&self, request: &RunRequest) -> Result<(Store<SandboxState>, Pipes), RunFailure> {
        let pipes = Pipes {
            stdout: MemoryOutputPipe::new(MAX_CAPTURED_OUTPUT),
            stderr: MemoryOutputPipe::new(MAX_CAPTURED_OUTPUT),
        };
        let clock = VirtualMonotonicClock::default();
        let mut builder = WasiCtxBuilder::new();
        builder
            .allow_blocking_current_thread(true)
            .stdout(pipes.stdout.clone())
            .stderr(pipes.stderr.clone())
            .wall_clock(FixedWallClock)
            .monotonic_clock(clock.clone())
            .secure_random(SeededRng::new(request.seed, "secure"))
            .insecure_random(SeededRng::new(request.seed, "insecure"))
            .insecure_random_seed(insecure_seed(request.seed));
        let mounts = request
            .read_only
            .iter()
            .map(|m| (m, FsPerms::ReadOnly))
            .chain(request.read_write.iter().map(|m| (m, FsPerms::ReadWrite)));
        for (mount, perms) in mounts {
            builder
                .preopened_dir(&mount.host, &mount.guest, perms)
                .map_err(|e| {
                    RunFailure::Instantiate(format!(
                        "cannot mount {} at {}: {e:#}",
                        mount.host.display(),
                        mount.guest
                    ))
                })?;
        }
        let guard = WriteGuard::new(
            request.allowed.clone(),
            request.read_only.iter().map(|m| m.guest.as_str()),
            request.read_write.iter().map(|m| m.guest.as_str()),
        );
        let state = SandboxState {
            wasi: Wasi {
                ctx: builder.build(),
                table: ResourceTable::new(),
            },
            guard,
            memory_limit: request.limits.memory_bytes,
            memory_peak: 0,
            limit_hit: None,
            deadline: Instant::now() + request.timeout,
            clock,
            logs: LogBook::default(),
            write_watch: request.write_root.as_ref().map(|root| WriteWatch {
                root: root.dir.clone(),
                baseline_files: root.files_before,
                baseline_bytes: root.bytes_before,
                max_files: request.limits.max_files_written,
                max_bytes: request.limits.max_bytes_written,
                ticks: 0,
            }),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| s as &mut dyn wasmtime::ResourceLimiter);
        store
            .set_fuel(request.limits.fuel)
            .map_err(|e| RunFailure::Instantiate(format!("{e:#}")))?;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(on_epoch_tick);
        Ok((store, pipes))
    }

    /// Asks a component for its name, version and scopes.
    pub fn describe(&self, component: &LoadedComponent) -> Result<PluginInfo, RunFailure> {
        let request = RunRequest {
            task: Task::default(),
            read_only: Vec::new(),
            read_write: Vec::new(),
            write_root: None,
            allowed: Vec::new(),
            seed: [0; 32],
            limits: ExecutorLimits {
                fuel: 100_000_000,
                memory_bytes: 64 << 20,
                max_files_written: 0,
                max_bytes_written: 0,
            },
            timeout: Duration::from_secs(10),
        };
        let (mut store, _pipes) = self.store(&request)?;
        let plugin = component
            .pre
            .instantiate(&mut store)
            .map_err(|e| RunFailure::Instantiate(format!("{e:#}")))?;
        let info = plugin
            .leviathan_executor_executor()
            .call_describe(&mut store)
            .map_err(|e| classify(&store, e))?;
        Ok(PluginInfo {
            name: info.name,
            version: info.version,
            scopes: info.scopes,
            summary: info.summary,
        })
    }

    /// Runs `execute` on a fresh instance of `component`.
    pub fn run(&self, component: &LoadedComponent, request: &RunRequest) -> RunOutcome {
        let mut stats = RunStats::default();
        let started = Instant::now();
        let store = self.store(request);
        stats.setup = started.elapsed();
        let (mut store, pipes) = match store {
            Ok(s) => s,
            Err(e) => {
                return RunOutcome {
                    result: Err(e),
                    stats,
                    logs: Vec::new(),
                    stdout: Vec::new(),
                    stderr: Vec::new(),
                    denials: Vec::new(),
                };
            }
        };
        let started = Instant::now();
        let instance = component.pre.instantiate(&mut store);
        stats.instantiate = started.elapsed();
        let result = match instance {
            Err(e) => Err(RunFailure::Instantiate(format!("{e:#}"))),
            Ok(plugin) => {
                let started = Instant::now();
                let called = plugin
                    .leviathan_executor_executor()
                    .call_execute(&mut store, &to_wit(&request.task));
                stats.execute = started.elapsed();
                match called {
                    Ok(Ok(report)) => Ok(GuestReport {
                        files: report.files,
                        summary: report.summary,
                    }),
                    Ok(Err(wit::ExecError::InvalidTask(m))) => Err(RunFailure::InvalidTask(m)),
                    Ok(Err(wit::ExecError::Denied(m))) => Err(RunFailure::Denied(m)),
                    Ok(Err(wit::ExecError::Internal(m))) => Err(RunFailure::Internal(m)),
                    Err(e) => Err(classify(&store, e)),
                }
            }
        };
        stats.fuel_used = request
            .limits
            .fuel
            .saturating_sub(store.get_fuel().unwrap_or(0));
        let started = Instant::now();
        let state = store.into_data();
        stats.teardown = started.elapsed();
        stats.memory_peak = state.memory_peak;
        RunOutcome {
            result,
            stats,
            logs: state.logs.into_lines(),
            denials: state.guard.into_denials(),
            stdout: pipes.stdout.contents().to_vec(),
            stderr: pipes.stderr.contents().to_vec(),
        }
    }
}

/// Runs on every epoch tick while the guest executes: enforces the wall-clock
/// deadline and, every few ticks, the write caps.
fn on_epoch_tick(
    mut ctx: wasmtime::StoreContextMut<'_, SandboxState>,
) -> wasmtime::Result<UpdateDeadline> {
    let state = ctx.data_mut();
    if Instant::now() >= state.deadline {
        state.limit_hit = Some(LimitKind::Timeout);
        return Ok(UpdateDeadline::Interrupt);
    }
    if let Some(watch) = state.write_watch.as_mut() {
        watch.ticks += 1;
        if watch.ticks % WRITE_CHECK_TICKS == 0 {
            let (files, bytes) = usage(&watch.root);
            let hit = if files > watch.max_files.saturating_add(watch.baseline_files) {
                Some(LimitKind::FilesWritten)
            } else if bytes > watch.max_bytes.saturating_add(watch.baseline_bytes) {
                Some(LimitKind::BytesWritten)
            } else {
                None
            };
            if let Some(kind) = hit {
                state.limit_hit = Some(kind);
                return Ok(UpdateDeadline::Interrupt);
            }
        }
    }
    Ok(UpdateDeadline::Continue(1))
}

/// Turns a wasmtime error from a guest call into the reason the run failed.
fn classify(store: &Store<SandboxState>, error: wasmtime::Error) -> RunFailure {
    if let Some(kind) = store.data().limit_hit {
        return RunFailure::Limit(kind);
    }
    if let Some(exit) = error.downcast_ref::<I32Exit>() {
        return RunFailure::Exit(exit.0);
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => RunFailure::Limit(LimitKind::Fuel),
        Some(Trap::Interrupt) => RunFailure::Limit(LimitKind::Timeout),
        Some(trap) => RunFailure::Trap(trap.to_string()),
        None => RunFailure::Trap(first_line(&error.root_cause().to_string())),
    }
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    line.chars().take(500).collect()
}

/// The last lines a guest printed to stderr before failing (Rust panics print their
/// location and message there), without the backtrace hint.
pub fn stderr_tail(stderr: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE"))
        .collect();
    let tail = lines[lines.len().saturating_sub(2)..].join(" ");
    (!tail.is_empty()).then(|| tail.chars().take(1000).collect())
}
