//! Event log benchmarks (run with `cargo xtask bench`): durable append throughput,
//! single events and batches of 100, from one and four threads; store size per
//! event; replay (open: indexes and projection) and verify at 1,000,000 events.
//! Figures go to docs/PERFORMANCE.md.

#[allow(dead_code)]
mod common;

use common::{dir_size, fill_loop};
use leviathan_events::{EventDraft, EventLog};
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
    drop(dir);

    let big: u64 = if quick { 50_000 } else { 1_000_000 };
    let dir = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    fill_loop(dir.path(), big);
    println!(
        "loop history: {big} events written in {:.2?}, {} bytes/event",
        started.elapsed(),
        dir_size(dir.path()) / big
    );
    let mut opens = Vec::new();
    let mut log = None;
    for _ in 0..3 {
        drop(log.take());
        let started = Instant::now();
        log = Some(EventLog::open(dir.path()).expect("reopen"));
        opens.push(started.elapsed().as_secs_f64());
    }
    let log = log.expect("opened");
    opens.sort_by(f64::total_cmp);
    println!(
        "replay (open: indexes + projection) of {big} events: median {:.2}s (runs {:?})",
        opens[1],
        opens.iter().map(|s| format!("{s:.2}")).collect::<Vec<_>>()
    );
    let started = Instant::now();
    let verified = log.verify().expect("chain intact");
    println!("verify {verified} events: {:.2?}", started.elapsed());
}
