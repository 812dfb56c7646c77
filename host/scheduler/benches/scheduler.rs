//! Scheduler benchmark (run with `cargo xtask bench`): one `tick` over 200 local
//! targets with 50 tasks each, time and peak RSS; attempts per minute end to end with
//! the local forge; sequential (1 worker) against the pool (4 workers), each in its
//! own child process (so each peak RSS is its own), in the same run. Figures go to
//! docs/PERFORMANCE.md.

use leviathan_domain::config::Config;
use leviathan_events::EventLog;
use leviathan_sandbox::{ArtifactCache, Sandbox};
use leviathan_scheduler::Scheduler;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "b")
        .env("GIT_AUTHOR_EMAIL", "b@b")
        .env("GIT_COMMITTER_NAME", "b")
        .env("GIT_COMMITTER_EMAIL", "b@b")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn backlog(tasks: usize) -> String {
    let mut text = String::from("tasks:\n");
    for i in 0..tasks {
        text.push_str(&format!(
            "  - id: docs-{i:02}\n    title: Guide number {i}\n    scope: docs\n    ready: true\n    allowed_paths: [docs/guide-{i:02}/]\n    acceptance_criteria:\n      - Covers part {i}\n"
        ));
    }
    text
}

/// Peak resident set size of this process, in KiB (`VmHWM`).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds used so far by this process and the children it waited for (the
/// `git` processes), from `/proc/self/stat` (in USER_HZ, 100 per second on Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(") ").map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<u64> = after_name
        .split_whitespace()
        .skip(11)
        .take(4)
        .filter_map(|f| f.parse().ok())
        .collect();
    fields.iter().sum::<u64>() as f64 / 100.0
}

/// The pool sizes compared.
const WORKERS: [usize; 2] = [1, 4];

/// What reading a target's backlog costs a pass: the parse, and the up-front check
/// that its tasks can have their completion recorded (a trial write-back of every task
/// at once, parsed again, when first asked), on this bench's 50-task backlog,
/// alternating in one loop.
fn backlog_costs(runs: u32) {
    use leviathan_domain::backlog::Backlog;
    let text = backlog(50);
    let file = Path::new(".leviathan/backlog.yaml");
    let parsed = Backlog::from_text(file, &text).expect("the bench backlog parses");
    let (mut parse, mut check) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
    for _ in 0..runs {
        let t = Instant::now();
        std::hint::black_box(Backlog::from_text(file, &text).expect("parses"));
        parse += t.elapsed();
        let fresh = parsed.clone();
        let t = Instant::now();
        assert!(std::hint::black_box(fresh.completion_problem("docs-49")).is_none());
        check += t.elapsed();
    }
    println!(
        "backlog of 50 tasks ({} bytes): parse {:.0?}, write-back check of every task {:.0?} (mean of {runs})",
        text.len(),
        parse / runs,
        check / runs
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    if let Some(i) = args.iter().position(|a| a == "--workers") {
        let workers = args.get(i + 1).and_then(|w| w.parse().ok()).unwrap_or(1);
        run(quick, workers);
        return;
    }
    let me = std::env::current_exe().expect("own path");
    let mut firsts = Vec::new();
    for workers in WORKERS {
        let mut c = Command::new(&me);
        c.args(["--workers", &workers.to_string()]);
        if quick {
            c.arg("--quick");
        }
        let out = c.output().expect("bench child runs");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        print!("{text}");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let secs = |prefix: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(prefix))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(f64::NAN)
        };
        firsts.push((secs("first_pass_s "), secs("second_pass_s ")));
    }
    println!(
        "pool ({} workers) against sequential, same run: first pass {:.2}x faster, all-at-max_open_prs pass {:.2}x faster",
        WORKERS[1],
        firsts[0].0 / firsts[1].0,
        firsts[0].1 / firsts[1].1
    );
    backlog_costs(if quick { 100 } else { 2000 });
}

fn run(quick: bool, workers: usize) {
    let (targets, tasks) = if quick { (10, 50) } else { (200, 50) };
    let work = tempfile::tempdir().expect("temp dir");
    let seed = work.path().join("seed");
    std::fs::create_dir_all(seed.join(".leviathan")).expect("seed");
    std::fs::write(seed.join(".leviathan/backlog.yaml"), backlog(tasks)).expect("backlog");
    git(&seed, &["init", "--quiet", "-b", "main"]);
    git(&seed, &["add", "."]);
    git(&seed, &["commit", "--quiet", "-m", "seed"]);
    let mut config = format!("workers: {workers}\ntargets:\n");
    for t in 0..targets {
        let bare = work.path().join(format!("t{t:03}.git"));
        git(
            work.path(),
            &[
                "clone",
                "--quiet",
                "--bare",
                seed.to_str().expect("utf-8"),
                bare.to_str().expect("utf-8"),
            ],
        );
        config.push_str(&format!("  - id: t{t:03}\n    repository: t{t:03}.git\n"));
    }
    let config_file = work.path().join("leviathan.yaml");
    std::fs::write(&config_file, config).expect("config");
    let config = Config::load(&config_file).expect("config loads");
    let log = EventLog::open(&work.path().join("data")).expect("log");
    let sandbox =
        Sandbox::new(ArtifactCache::new(Some(work.path().join("cache")))).expect("sandbox");
    let registry = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins/registry");
    let github = leviathan_forge::github::clients::GitHubClients::default();
    let scheduler = Scheduler {
        config: &config,
        log: &log,
        sandbox: &sandbox,
        registry_dir: registry,
        work_dir: work.path().join("clones"),
        plugins: None,
        github: &github,
        shard: leviathan_domain::shards::Shard::ALL,
    };
    let rss_before = peak_rss_kib();
    let started = Instant::now();
    let cpu_before = cpu_seconds();
    let reports = scheduler.tick().expect("tick");
    let first = started.elapsed();
    let first_cpu = cpu_seconds() - cpu_before;
    let opened = reports
        .iter()
        .filter(|r| r.outcome.contains("opened"))
        .count();
    assert_eq!(opened, targets, "{:?}", reports.first());
    let started = Instant::now();
    let reports = scheduler.tick().expect("second tick");
    let second = started.elapsed();
    assert!(
        reports.iter().all(|r| r.outcome.contains("max_open_prs")),
        "{:?}",
        reports.first()
    );
    let before_quiet = log.last_seq();
    let started = Instant::now();
    scheduler.tick().expect("third tick");
    let quiet = started.elapsed();
    println!("== {workers} worker(s)");
    println!(
        "third pass (nothing changed): {quiet:.2?}, {} events written",
        log.last_seq() - before_quiet
    );
    println!("first_pass_s {}", first.as_secs_f64());
    println!("second_pass_s {}", second.as_secs_f64());
    println!(
        "tick over {targets} targets x {tasks} tasks, first pass (clone, {opened} attempts, PRs): {first:.2?} = {:.0} attempts/min end to end",
        opened as f64 / first.as_secs_f64() * 60.0
    );
    println!("second pass (every target at max_open_prs, nothing to fetch): {second:.2?}");
    println!(
        "first pass CPU (host + git children): {first_cpu:.2} s = {:.2} of {} cores busy on average",
        first_cpu / first.as_secs_f64(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "peak RSS of the process: {} MiB (before the passes: {} MiB); {} events",
        peak_rss_kib() / 1024,
        rss_before / 1024,
        log.last_seq()
    );
}
