//! Event log benchmarks (run with `cargo xtask bench`): durable append throughput,
//! single events and batches of 100, from one and four threads; replay (open + verify)
//! time; store size per event. Figures go to docs/PERFORMANCE.md.

use leviathan_host::events::{EventDraft, EventLog};
use std::sync::Arc;
use std::time::Instant;

fn draft(i: u64) -> EventDraft {
    let mut d = EventDraft::new("attempt.succeeded");
    d.target = Some(format!("target-{}", i % 8));
    d.task = Some(format!("task-{}", i % 500));
    d.attempt = Some(format!("attempt-{i}"));
    d.payload = serde_json::json!({"executor": "docs-executor@0.1.0", "files": 1, "fuel": 91826});
    d
}

fn dir_size(path: &std::path::Path) -> u64 {
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

fn run(name: &str, threads: u64, batch: u64, per_thread: u64) -> (tempfile::TempDir, u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = Arc::new(EventLog::open(dir.path()).expect("open"));
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..per_thread / batch {
                    let drafts = (0..batch)
                        .map(|j| draft(t * 1_000_000 + i * batch + j))
                        .collect();
                    log.append(drafts).expect("append");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
    let total = threads * (per_thread / batch) * batch;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{name:<44} {total:>8} events in {secs:>6.2}s = {:>9.0} events/s (durable)",
        total as f64 / secs
    );
    (dir, total)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n = if quick { 2_000 } else { 20_000 };
    run("single events, 1 thread", 1, 1, n / 10);
    run("single events, 4 threads (group commit)", 4, 1, n / 10);
    run("batches of 100, 1 thread", 1, 100, n * 5);
    let (dir, total) = run("batches of 100, 4 threads", 4, 100, n * 5);
    let size = dir_size(dir.path());
    println!(
        "store size: {} bytes for {total} events = {} bytes/event",
        size,
        size / total.max(1)
    );
    let started = Instant::now();
    let log = EventLog::open(dir.path()).expect("reopen");
    let opened = started.elapsed();
    let verified = log.verify().expect("chain intact");
    println!(
        "reopen {opened:.2?}, verify {verified} events {:.2?} total",
        started.elapsed()
    );
}
