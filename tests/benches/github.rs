//! GitHub forge benchmarks (run with `cargo xtask bench`), against the fake GitHub of
//! the test suite. Figures go to docs/PERFORMANCE.md.
//!
//! 1. API requests per delivered PR over a loop of passes in which every PR the host
//!    opens is merged before the next pass (target: at most 6). Spacing is off here
//!    so the time per PR is the host's own cost.
//! 2. Many targets on one identity with the fake enforcing GitHub's secondary limits:
//!    limit responses (target: 0), requests per PR (<= 6), PRs per minute against
//!    the ceiling the limits allow, and the spread of PRs across targets. GitHub's
//!    windows and spacing are scaled down tenfold (a "minute" of 6 s) so the run takes
//!    minutes, not hours; the counts (80 a minute, 500 an hour) are GitHub's.

use leviathan_domain::config::Config;
use leviathan_events::EventLog;
use leviathan_forge::github::clients::GitHubClients;
use leviathan_forge::github::identity::SecondaryLimits;
use leviathan_forge::github::ratelimit::RetryPolicy;
use leviathan_sandbox::{ArtifactCache, Sandbox};
use leviathan_scheduler::Scheduler;
use leviathan_tests::github::{self as fake_github, FakeGitHub, SecondaryRules};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

const TOKEN: &str = "ghp_bench";

fn backlog(tasks: usize) -> String {
    let mut text = String::from("tasks:\n");
    for i in 0..tasks {
        text.push_str(&format!(
            "  - id: docs-{i:02}\n    title: Guide number {i}\n    scope: docs\n    ready: true\n    allowed_paths: [docs/guide-{i:02}/]\n    acceptance_criteria:\n      - Covers part {i}\n"
        ));
    }
    text
}

/// A scheduler over `config` with the bundled registry, clones under `work/clones`.
fn scheduler<'a>(
    config: &'a Config,
    log: &'a EventLog,
    sandbox: &'a Sandbox,
    github: &'a GitHubClients,
    work: &Path,
) -> Scheduler<'a> {
    Scheduler {
        config,
        log,
        sandbox,
        registry_dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/registry"),
        work_dir: work.join("clones"),
        plugins: None,
        github,
        shard: leviathan_domain::shards::Shard::ALL,
    }
}

/// Delivers `tasks` PRs with `max_open_prs` and returns (requests, PRs, passes, time).
fn run(tasks: usize, max_open_prs: usize) -> (usize, usize, usize, std::time::Duration) {
    let work = tempfile::tempdir().expect("temp dir");
    let git_root = work.path().join("github");
    std::fs::create_dir_all(git_root.join("acme")).expect("mkdir");
    let fake = FakeGitHub::start(&git_root, TOKEN);
    fake.create_repo(
        "acme/widgets",
        &[
            (".leviathan/backlog.yaml", &backlog(tasks)),
            ("docs/index.md", "# Index\n"),
        ],
    );
    std::fs::write(
        work.path().join("policy.yaml"),
        format!("max_open_prs: {max_open_prs}\n"),
    )
    .expect("policy");
    std::fs::write(
        work.path().join("leviathan.yaml"),
        format!(
            "targets:\n  - id: widgets\n    repository: acme/widgets\n    forge: github\n    github_api_url: {}\n    token_file: token\n    policy: policy.yaml\n    labels: [leviathan]\n",
            fake.api_url
        ),
    )
    .expect("config");
    std::fs::write(work.path().join("token"), TOKEN).expect("token");
    let config = Config::load(&work.path().join("leviathan.yaml")).expect("config loads");
    let log = EventLog::open(&work.path().join("data")).expect("log");
    let sandbox =
        Sandbox::new(ArtifactCache::new(Some(work.path().join("cache")))).expect("sandbox");
    let github = GitHubClients::new(
        RetryPolicy::default(),
        SecondaryLimits {
            spacing: Duration::ZERO,
            ..SecondaryLimits::default()
        },
    );
    let scheduler = scheduler(&config, &log, &sandbox, &github, work.path());
    let started = Instant::now();
    let mut passes = 0;
    loop {
        // One pass per open slot, then a human merges everything open.
        for _ in 0..max_open_prs {
            scheduler.tick().expect("tick");
            passes += 1;
        }
        let open: Vec<u64> = fake
            .pulls()
            .iter()
            .filter(|p| p.state == "open")
            .map(|p| p.number)
            .collect();
        if open.is_empty() {
            break;
        }
        for n in open {
            fake.merge("acme/widgets", n);
        }
    }
    let prs = fake.pulls().len();
    assert_eq!(prs, tasks, "every task delivered");
    (fake.requests().len(), prs, passes, started.elapsed())
}

/// GitHub's secondary limits with time scaled by `scale` (windows and spacing).
fn scaled(scale: u32) -> (SecondaryLimits, SecondaryRules) {
    let limits = SecondaryLimits::default();
    let limits = SecondaryLimits {
        spacing: limits.spacing / scale,
        minute: limits.minute / scale,
        hour: limits.hour / scale,
        margin: limits.margin / scale,
        ..limits
    };
    let rules = SecondaryRules {
        per_minute: limits.per_minute as usize,
        per_hour: limits.per_hour as usize,
        minute: limits.minute,
        hour: limits.hour,
        concurrent: limits.concurrent as usize,
        retry_after: 6,
    };
    (limits, rules)
}

/// `targets` GitHub targets on one identity, each with three ready tasks, served by
/// passes for `run_for`; prints what the issue asks for.
fn one_identity(targets: usize, run_for: Duration) {
    const SCALE: u32 = 10;
    let (limits, rules) = scaled(SCALE);
    let work = tempfile::tempdir().expect("temp dir");
    let (fake, config) =
        fake_github::one_identity(work.path(), TOKEN, targets, &backlog(3), 3, rules);
    let log = EventLog::open(&work.path().join("data")).expect("log");
    let sandbox =
        Sandbox::new(ArtifactCache::new(Some(work.path().join("cache")))).expect("sandbox");
    let github = GitHubClients::new(RetryPolicy::default(), limits.clone());
    let scheduler = scheduler(&config, &log, &sandbox, &github, work.path());
    let started = Instant::now();
    let mut passes = 0;
    while started.elapsed() < run_for {
        scheduler.tick().expect("tick");
        passes += 1;
        // `serve`'s interval, scaled: a pass in which every target waits is instant.
        std::thread::sleep(Duration::from_millis(500));
    }
    let took = started.elapsed();
    let mut per_target: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..targets {
        per_target.insert(fake_github::one_identity_repo(i), 0);
    }
    for p in fake.pulls() {
        *per_target.entry(p.repo).or_default() += 1;
    }
    let prs: usize = per_target.values().sum();
    let (min, max) = (
        per_target.values().min().copied().unwrap_or(0),
        per_target.values().max().copied().unwrap_or(0),
    );
    let scaled_minutes = took.as_secs_f64() * f64::from(SCALE) / 60.0;
    // The rate while the hour's budget lasted: from the first PR opened to the last.
    let requests = fake.requests();
    let opened: Vec<Instant> = requests
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/pulls"))
        .map(|r| r.at)
        .collect();
    let delivering = match (opened.first(), opened.last()) {
        (Some(a), Some(b)) if opened.len() > 1 => {
            (opened.len() - 1) as f64
                / (b.duration_since(*a).as_secs_f64() * f64::from(SCALE) / 60.0)
        }
        _ => 0.0,
    };
    // Two content-creating requests per PR (open, label); spacing allows 60 a minute.
    let per_minute_ceiling = f64::from(limits.per_minute)
        .min(60.0 / (limits.spacing.as_secs_f64() * f64::from(SCALE)))
        / 2.0;
    println!(
        "github one identity: {targets} targets, {passes} passes in {:.1} s ({scaled_minutes:.1} GitHub minutes at 1/{SCALE} time): {prs} PRs (the hour's 500 content requests allow 250), {} limit responses (target 0), {:.2} requests per PR (target <= 6), {delivering:.1} PRs per GitHub minute while the hour's budget lasted (ceiling {per_minute_ceiling:.0}: 80 content requests a minute, 1 s apart, 2 per PR), PRs per target min {min} max {max}",
        took.as_secs_f64(),
        fake.limit_responses(),
        requests.len() as f64 / prs.max(1) as f64,
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    if quick {
        one_identity(20, Duration::from_secs(15));
    } else {
        one_identity(200, Duration::from_secs(120));
    }
    let tasks = if quick { 6 } else { 30 };
    for max_open_prs in [1, 3] {
        let (requests, prs, passes, took) = run(tasks, max_open_prs);
        println!(
            "github: {prs} PRs delivered with max_open_prs {max_open_prs} in {passes} passes: {requests} API requests = {:.2} per PR (target <= 6); {:.0} ms per PR end to end",
            requests as f64 / prs as f64,
            took.as_millis() as f64 / prs as f64
        );
    }
}
