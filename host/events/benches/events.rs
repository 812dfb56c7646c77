//! Event log benchmarks (run with `cargo xtask bench`): durable append throughput,
//! single events and batches of 100, from one and four threads; store size per
//! event; start-up (open) at 1,000,000 events with and without the projection
//! checkpoint, alternating, with the resident memory it adds; verify.
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

/// `--open-only DIR`: opens the store, prints the open time, the time to the first
/// index lookup's answer and this process's peak RSS (the child of `--history`, so
/// the writer's memory is not counted).
fn open_only(dir: &str, rebuild: bool) {
    if rebuild {
        leviathan_events::checkpoint::remove(std::path::Path::new(dir)).expect("remove checkpoint");
    }
    let started = Instant::now();
    let log = EventLog::open(std::path::Path::new(dir)).expect("open");
    let open_s = started.elapsed().as_secs_f64();
    let at_open = common::peak_rss_kib() / 1024;
    log.by_target("target-01", 0, 1).expect("lookup");
    println!(
        "open {open_s:.3} s (peak RSS {at_open} MiB), first lookup answered at {:.3} s (peak RSS {} MiB, resident now {} MiB)",
        started.elapsed().as_secs_f64(),
        common::peak_rss_kib() / 1024,
        common::rss_kib() / 1024
    );
    // Lookups that visit every index run (an attempt's events: where they lie is
    // not known in advance) and that read old epochs.
    let last = log.last_seq();
    for (what, seq) in [("middle", last / 2), ("newest", last.saturating_sub(2))] {
        let Some(attempt) = common::loop_event(seq.saturating_sub(1)).attempt else {
            continue;
        };
        let timed = Instant::now();
        let events = log.by_attempt(&attempt, 0, 100).expect("by attempt");
        println!(
            "  the {what} history's attempt {attempt}: {} events in {:.1} ms",
            events.len(),
            timed.elapsed().as_secs_f64() * 1e3
        );
    }
    let timed = Instant::now();
    let page = log.by_target("target-07", 0, 100).expect("by target");
    println!(
        "  the oldest 100 events of one target: {} in {:.1} ms",
        page.len(),
        timed.elapsed().as_secs_f64() * 1e3
    );
}

/// `--history N`: start-up with `N` events of loop history (issue #17 asks for
/// 20,000,000): written once, then opened in child processes from the checkpoint
/// (three times) and with a full rebuild (once), each reporting its own peak RSS.
fn history(n: u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    fill_loop(dir.path(), n);
    println!(
        "history: {n} events written in {:.1?}, {} bytes on disk (writer peak RSS {} MiB)",
        started.elapsed(),
        dir_size(dir.path()),
        common::peak_rss_kib() / 1024
    );
    let exe = std::env::current_exe().expect("the bench binary");
    // The child removes the checkpoint itself for the rebuild: the store's lock is
    // then never handed between processes.
    let child = |rebuild: bool| {
        let out = std::process::Command::new(&exe)
            .arg(if rebuild {
                "--rebuild-only"
            } else {
                "--open-only"
            })
            .arg(dir.path())
            .output()
            .expect("child runs");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    for round in 0..3 {
        println!(
            "history {n}: from the checkpoint, run {}: {}",
            round + 1,
            child(false)
        );
    }
    println!("history {n}: full rebuild: {}", child(true));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    for (flag, rebuild) in [("--open-only", false), ("--rebuild-only", true)] {
        if let Some(i) = args.iter().position(|a| a == flag) {
            open_only(args.get(i + 1).expect("--open-only DIR"), rebuild);
            return;
        }
    }
    if let Some(i) = args.iter().position(|a| a == "--history") {
        let n = args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .expect("--history N");
        history(n);
        return;
    }
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
    // Start-up with the checkpoint the previous close wrote (replays nothing after
    // it) against a full rebuild (checkpoint removed), alternating, three of each.
    let (mut with, mut without, mut indexed) = (Vec::new(), Vec::new(), Vec::new());
    let mut log = None;
    for round in 0..6 {
        drop(log.take());
        let checkpointed = round % 2 == 1;
        if !checkpointed {
            leviathan_events::checkpoint::remove(dir.path()).expect("remove checkpoint");
        }
        let started = Instant::now();
        let opened = EventLog::open(dir.path()).expect("reopen");
        let open_s = started.elapsed().as_secs_f64();
        opened.by_target("target-1", 0, 1).expect("lookup");
        let ready_s = started.elapsed().as_secs_f64();
        if checkpointed {
            with.push(open_s);
            indexed.push(ready_s);
        } else {
            without.push(open_s);
        }
        log = Some(opened);
    }
    let log = log.expect("opened");
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (w, wo, ix) = (
        median(&mut with),
        median(&mut without),
        median(&mut indexed),
    );
    println!(
        "start-up (open) of {big} events: full rebuild median {wo:.3}s, from the checkpoint {w:.3}s ({:.0}x faster; first index lookup answered after {ix:.3}s); peak RSS {} MiB",
        wo / w.max(1e-9),
        common::peak_rss_kib() / 1024
    );
    let started = Instant::now();
    let verified = log.verify().expect("chain intact");
    println!("verify {verified} events: {:.2?}", started.elapsed());
}
