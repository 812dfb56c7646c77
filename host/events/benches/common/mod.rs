//! Shared by the benchmarks: a realistic event stream and store helpers.

use leviathan_events::{EventDraft, EventLog};
use std::path::Path;

/// Targets and tasks per target in the synthetic graph.
pub const TARGETS: u64 = 20;
pub const TASKS: u64 = 50;

/// Event `i` of a synthetic loop history: per attempt, `task.selected`,
/// `attempt.started`, `attempt.succeeded` (or `attempt.failed` every fourth),
/// `pr.opened`, `pr.merged`, spread over [`TARGETS`] × [`TASKS`] tasks.
pub fn loop_event(i: u64) -> EventDraft {
    let cycle = i / 5;
    let target = format!("target-{:02}", cycle % TARGETS);
    let task = format!("task-{:03}", (cycle / TARGETS) % TASKS);
    let attempt = format!("att-{cycle:08x}");
    let failed = cycle % 4 == 3;
    let (kind, payload) = match (i % 5, failed) {
        (0, _) => ("task.selected", serde_json::Value::Null),
        (1, _) => ("attempt.started", serde_json::json!({"via": "scheduler"})),
        (2, false) => (
            "attempt.succeeded",
            serde_json::json!({"executor": "docs-executor@0.1.0", "digest": format!("{cycle:064x}"),
                "files": [{"path": "docs/x.md", "sha256": format!("{i:064x}"), "bytes": 812}],
                "fuel_used": 91826, "instantiate_us": 30, "execute_us": 240}),
        ),
        (2, true) => (
            "attempt.failed",
            serde_json::json!({"kind": "timeout", "message": "attempt exceeded 900 s"}),
        ),
        (3, false) => (
            "pr.opened",
            serde_json::json!({"pr": cycle, "branch": format!("agent/task-exec-attempt-{task}-{cycle:08x}")}),
        ),
        (4, false) => ("pr.merged", serde_json::json!({"pr": cycle})),
        _ => ("task.skipped", serde_json::json!({"reason": "inflight"})),
    };
    EventDraft {
        kind: kind.into(),
        target: Some(target),
        task: Some(task),
        attempt: (!i.is_multiple_of(5)).then_some(attempt),
        payload,
    }
}

/// Appends `n` loop events to the store in `dir` (batches of 1,000).
pub fn fill_loop(dir: &Path, n: u64) {
    let log = EventLog::open(dir).expect("open");
    let mut i = log.last_seq();
    while i < n {
        let end = (i + 1000).min(n);
        log.append((i..end).map(loop_event).collect())
            .expect("append");
        i = end;
    }
}

/// Bytes under `path`.
pub fn dir_size(path: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            total += if meta.is_dir() {
                dir_size(&e.path())
            } else {
                meta.len()
            };
        }
    }
    total
}

/// The `p`-th percentile (0–100) of sorted `samples`.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// A memory figure of this process from `/proc/self/status`, in KiB (0 if absent).
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Peak resident set size of this process, in KiB (`VmHWM`).
pub fn peak_rss_kib() -> u64 {
    status_kib("VmHWM:")
}

/// Resident set size of this process now, in KiB (`VmRSS`).
pub fn rss_kib() -> u64 {
    status_kib("VmRSS:")
}
