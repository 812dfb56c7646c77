//! GitHub forge benchmark (run with `cargo xtask bench`): API requests per delivered
//! PR against the fake GitHub of the test suite, over a loop of passes in which
//! every PR the host opens is merged before the next pass. Target: at most 6.
//! Figures go to docs/PERFORMANCE.md.

use leviathan_domain::config::Config;
use leviathan_events::EventLog;
use leviathan_forge::github::clients::GitHubClients;
use leviathan_sandbox::{ArtifactCache, Sandbox};
use leviathan_scheduler::Scheduler;
use leviathan_tests::github::FakeGitHub;
use std::path::Path;
use std::time::Instant;

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
    let github = GitHubClients::default();
    let scheduler = Scheduler {
        config: &config,
        log: &log,
        sandbox: &sandbox,
        registry_dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/registry"),
        work_dir: work.path().join("clones"),
        plugins: None,
        github: &github,
        shard: leviathan_domain::shards::Shard::ALL,
    };
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

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
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
