//! Per-run store state: WASI context, resource table, limits and captured logs.

use super::determinism::VirtualMonotonicClock;
use crate::guard::WriteGuard;
use crate::guarded_fs::GuardedFs;
use std::path::PathBuf;
use std::time::Instant;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Which sandbox limit stopped a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// The fuel (deterministic CPU) budget ran out.
    Fuel,
    /// The wall-clock timeout fired (epoch deadline).
    Timeout,
    /// The executor tried to grow memory past its cap.
    Memory,
    /// The executor wrote more files than allowed.
    FilesWritten,
    /// The executor wrote more bytes than allowed.
    BytesWritten,
}

impl std::fmt::Display for LimitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LimitKind::Fuel => "fuel limit",
            LimitKind::Timeout => "wall-clock timeout",
            LimitKind::Memory => "memory limit",
            LimitKind::FilesWritten => "files-written limit",
            LimitKind::BytesWritten => "bytes-written limit",
        })
    }
}

/// One log line a plugin sent to the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginLog {
    pub level: String,
    pub message: String,
}

/// Most log lines kept from one run; later ones are counted, not stored.
pub const MAX_LOG_LINES: usize = 256;
/// Longest log line kept, in bytes.
pub const MAX_LOG_LINE: usize = 4096;

/// Write caps checked while the plugin runs.
#[derive(Debug, Clone)]
pub struct WriteWatch {
    /// The host directory holding the plugin's writable mounts.
    pub root: PathBuf,
    pub max_files: u64,
    pub max_bytes: u64,
    /// Files and bytes already under `root` before the run (copies of current content).
    pub baseline_files: u64,
    pub baseline_bytes: u64,
    /// Epoch ticks seen so far; the caps are checked every few ticks.
    pub ticks: u64,
}

/// The WASI context and the resource table of a run, apart from the rest of the
/// state so a host call can borrow them next to the guard and the log.
pub struct Wasi {
    pub ctx: WasiCtx,
    pub table: ResourceTable,
}

impl WasiView for Wasi {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

/// The log lines a plugin sent (and the sandbox's own lines about it), capped.
#[derive(Debug, Default)]
pub struct LogBook {
    lines: Vec<PluginLog>,
    dropped: usize,
}

impl LogBook {
    /// Keeps one line, cut to [`MAX_LOG_LINE`] bytes; past [`MAX_LOG_LINES`] lines it
    /// is only counted.
    pub fn push(&mut self, level: &str, mut message: String) {
        if self.lines.len() >= MAX_LOG_LINES {
            self.dropped += 1;
            return;
        }
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        self.lines.push(PluginLog {
            level: level.into(),
            message,
        });
    }

    /// The kept lines, with a last one counting the dropped ones.
    pub fn into_lines(self) -> Vec<PluginLog> {
        let mut lines = self.lines;
        if self.dropped > 0 {
            lines.push(PluginLog {
                level: "warn".into(),
                message: format!("{} more log lines dropped", self.dropped),
            });
        }
        lines
    }
}

/// Store data for one executor run.
pub struct SandboxState {
    pub wasi: Wasi,
    /// The task's allowed paths, checked at every filesystem call that changes a path.
    pub guard: WriteGuard,
    pub memory_limit: u64,
    /// The largest linear memory the guest grew to, in bytes.
    pub memory_peak: u64,
    pub limit_hit: Option<LimitKind>,
    pub deadline: Instant,
    pub clock: VirtualMonotonicClock,
    pub logs: LogBook,
    pub write_watch: Option<WriteWatch>,
}

impl WasiView for SandboxState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        self.wasi.ctx()
    }
}

impl SandboxState {
    /// The filesystem host of a call: wasmtime-wasi's view behind the guard.
    pub fn guarded_fs(&mut self) -> GuardedFs<'_> {
        GuardedFs {
            fs: wasmtime_wasi::filesystem::WasiFilesystemView::filesystem(&mut self.wasi),
            guard: &mut self.guard,
            logs: &mut self.logs,
        }
    }
}

impl wasmtime::ResourceLimiter for SandboxState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.memory_limit {
            self.limit_hit = Some(LimitKind::Memory);
            return Ok(false);
        }
        self.memory_peak = self.memory_peak.max(desired as u64);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

impl super::bindings::leviathan::executor::log::Host for SandboxState {
    fn log(&mut self, level: super::bindings::leviathan::executor::log::Level, message: String) {
        use super::bindings::leviathan::executor::log::Level;
        let level = match level {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        tracing::debug!(target: "plugin", level, "{message}");
        self.logs.push(level, message);
    }
}

/// Files and bytes currently under `root` (regular files only, not following links).
pub fn usage(root: &std::path::Path) -> (u64, u64) {
    let mut files = 0;
    let mut bytes = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                files += 1;
                bytes += meta.len();
            }
        }
    }
    (files, bytes)
}

impl super::bindings::leviathan::executor::types::Host for SandboxState {}
