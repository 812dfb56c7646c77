//! Many targets at once: a pass served by the pool records, per target, exactly what
//! a sequential pass records (attempts, PRs, skips), against real git remotes and
//! the fake GitHub; one target's slow GitHub wait does not hold the others; shards
//! over one configuration cover every target exactly once.

use leviathan_events::{Event, EventLog};
use leviathan_tests::github::{FakeGitHub, Fault, FaultKind};
use leviathan_tests::{Seed, bare_repo, host_binary, registry, root};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

const TOKEN: &str = "ghp_fleet0123456789SECRET";
const TOKEN_ENV: &str = "LEVIATHAN_TEST_FLEET_TOKEN";

const GOOD: &str = "tasks:
  - id: later
    title: Not yet
    scope: docs
    ready: false
    allowed_paths: [docs/]
  - id: guide
    title: Write the guide
    scope: docs
    ready: true
    allowed_paths: [docs/]
  - id: after
    title: After the guide
    scope: docs
    ready: true
    dependencies: [guide]
    allowed_paths: [docs/]
";

/// Two Markdown targets: the docs executor refuses, so every attempt fails.
const FAILING: &str = "tasks:
  - id: broken
    title: Refused by the executor
    scope: docs
    ready: true
    allowed_paths: [docs/a.md, docs/b.md]
";

const LOCAL: usize = 6;
const REMOTE: usize = 3;

struct Fleet {
    dir: tempfile::TempDir,
    fake: FakeGitHub,
}

impl Fleet {
    /// `LOCAL` local targets (every third one failing) and `REMOTE` GitHub targets,
    /// the first of which is `slow` (its first PR listing meets a secondary limit
    /// that asks for a 4 s wait), served by `workers`.
    fn new(workers: usize, shards: Option<u32>) -> Fleet {
        let dir = tempfile::tempdir().expect("tempdir");
        let git_root = dir.path().join("github");
        std::fs::create_dir_all(git_root.join("acme")).expect("mkdir");
        let fake = FakeGitHub::start(&git_root, TOKEN);
        let mut config = format!("workers: {workers}\n");
        if let Some(n) = shards {
            config.push_str(&format!("shards: {n}\n"));
        }
        config.push_str("targets:\n");
        for name in ["slow", "gh-1", "gh-2"].iter().take(REMOTE) {
            fake.create_repo(
                &format!("acme/{name}"),
                &[
                    (".leviathan/backlog.yaml", GOOD),
                    ("docs/index.md", "# Index\n"),
                ],
            );
            config.push_str(&format!(
                "  - id: {name}\n    repository: acme/{name}\n    forge: github\n    github_api_url: {}\n    token_env: {TOKEN_ENV}\n",
                fake.api_url
            ));
        }
        for i in 0..LOCAL {
            let name = format!("local-{i}");
            let backlog = if i % 3 == 2 { FAILING } else { GOOD };
            bare_repo(
                dir.path(),
                &name,
                &[
                    Seed::Text(".leviathan/backlog.yaml", backlog),
                    Seed::Text("docs/index.md", "# Index\n"),
                ],
            );
            config.push_str(&format!("  - id: {name}\n    repository: {name}.git\n"));
        }
        std::fs::write(dir.path().join("leviathan.yaml"), config).expect("config");
        fake.fault(Fault {
            method: "GET",
            path: "/repos/acme/slow/pulls".into(),
            kind: FaultKind::SecondaryLimit { retry_after: 4 },
        });
        Fleet { dir, fake }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn tick_as(&self, data: &str, extra: &[&str]) -> String {
        let out = Command::new(host_binary())
            .arg("tick")
            .arg("--plugin-dir")
            .arg(registry())
            .arg("--config")
            .arg(self.path("leviathan.yaml"))
            .arg("--data-dir")
            .arg(self.path(data))
            .args(extra)
            .env(TOKEN_ENV, TOKEN)
            .env("LEVIATHAN_CACHE_DIR", root().join("target/test-cache"))
            .output()
            .expect("tick runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "tick: {text}");
        text
    }

    fn events(&self, data: &str) -> Vec<Event> {
        EventLog::open(&self.path(data))
            .expect("log")
            .after(0, 100_000)
            .expect("events")
    }
}

/// What a pass recorded for each target, in the target's own order: the type, the
/// task, and the skip reason, failure kind or PR number. Attempt ids and times
/// differ between runs; these do not.
fn per_target(events: &[Event]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in events {
        let Some(target) = &e.target else { continue };
        let detail = match e.kind.as_str() {
            "task.skipped" | "target.skipped" => e.payload["reason"].as_str(),
            "attempt.failed" => e.payload["kind"].as_str(),
            "pr.opened" | "pr.merged" | "pr.closed" => e.payload["pr"].as_str(),
            _ => None,
        };
        out.entry(target.clone()).or_default().push(format!(
            "{} {} {}",
            e.kind,
            e.task.as_deref().unwrap_or("-"),
            detail.unwrap_or("-")
        ));
    }
    out
}

fn first_seq(events: &[Event], target: &str, kind: &str) -> u64 {
    events
        .iter()
        .find(|e| e.target.as_deref() == Some(target) && e.kind == kind)
        .map(|e| e.seq)
        .unwrap_or_else(|| panic!("no {kind} for {target}"))
}

#[test]
fn the_pool_records_what_a_sequential_pass_records_and_a_slow_target_holds_no_one() {
    let sequential = Fleet::new(1, None);
    let pooled = Fleet::new(4, None);
    for _ in 0..2 {
        sequential.tick_as("data", &[]);
        pooled.tick_as("data", &[]);
    }
    let (seq_events, pool_events) = (sequential.events("data"), pooled.events("data"));
    let (seq_view, pool_view) = (per_target(&seq_events), per_target(&pool_events));
    assert_eq!(seq_view.len(), LOCAL + REMOTE, "{seq_view:#?}");
    assert_eq!(
        pool_view, seq_view,
        "same attempts, PRs and skips per target"
    );
    // Every good target opened its PR, every failing one failed, none twice.
    for (target, lines) in &pool_view {
        let opened = lines.iter().filter(|l| l.starts_with("pr.opened")).count();
        let failed = lines
            .iter()
            .filter(|l| l.starts_with("attempt.failed"))
            .count();
        assert!(
            (opened, failed) == (1, 0) || (opened, failed) == (0, 2),
            "{target}: {lines:#?}"
        );
    }
    // Sequentially the slow target, first in the configuration, holds every other
    // target behind its 4 s wait; in the pool the others go on meanwhile.
    let slow = |events: &[Event]| first_seq(events, "slow", "pr.opened");
    let others = |events: &[Event]| {
        ["gh-1", "local-0", "local-1"]
            .iter()
            .map(|t| first_seq(events, t, "pr.opened"))
            .min()
            .expect("some")
    };
    assert!(others(&seq_events) > slow(&seq_events));
    assert!(
        others(&pool_events) < slow(&pool_events),
        "another target's PR came after the slow one's wait"
    );
    // The fake's pull requests agree with the logs on both sides.
    assert_eq!(sequential.fake.pulls().len(), pooled.fake.pulls().len());
}

#[test]
fn shards_over_one_configuration_serve_every_target_exactly_once() {
    let fleet = Fleet::new(2, Some(3));
    let mut served: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for index in 0..3u32 {
        let data = format!("data-{index}");
        let out = fleet.tick_as(&data, &["--shard-index", &index.to_string()]);
        for line in out.lines() {
            if let Some((target, _)) = line.split_once(": ")
                && !target.contains(' ')
            {
                served.entry(target.to_string()).or_default().push(index);
            }
        }
        // Each shard's log holds only its own targets, and its shard record.
        let events = fleet.events(&data);
        let record = events
            .iter()
            .find(|e| e.kind == "shards.configured")
            .expect("shards.configured");
        assert_eq!(record.payload["count"], 3);
        assert_eq!(record.payload["index"], index);
        for e in &events {
            if let Some(t) = &e.target {
                assert_eq!(
                    leviathan_domain::shards::shard_of(t, 3),
                    index,
                    "{t} in shard {index}'s log"
                );
            }
        }
    }
    let expected: BTreeSet<String> = (0..LOCAL)
        .map(|i| format!("local-{i}"))
        .chain(["slow", "gh-1", "gh-2"].iter().map(|s| s.to_string()))
        .collect();
    assert_eq!(served.keys().cloned().collect::<BTreeSet<_>>(), expected);
    for (target, shards) in &served {
        assert_eq!(shards.len(), 1, "{target} served by {shards:?}");
    }
    // A changed count is refused with the way out; the migration lets it start.
    let path = fleet.path("leviathan.yaml");
    let text = std::fs::read_to_string(&path).expect("config");
    std::fs::write(&path, text.replace("shards: 3", "shards: 2")).expect("config");
    let refused = Command::new(host_binary())
        .args(["tick", "--shard-index", "1", "--plugin-dir"])
        .arg(registry())
        .arg("--config")
        .arg(&path)
        .arg("--data-dir")
        .arg(fleet.path("data-1"))
        .env(TOKEN_ENV, TOKEN)
        .output()
        .expect("tick runs");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("shard 1 of 3") && stderr.contains("shards migrate"),
        "{stderr}"
    );
    let migrated = Command::new(host_binary())
        .args([
            "shards",
            "migrate",
            "--count",
            "2",
            "--index",
            "1",
            "--data-dir",
        ])
        .arg(fleet.path("data-1"))
        .output()
        .expect("migrate runs");
    assert!(migrated.status.success(), "{migrated:?}");
    fleet.tick_as("data-1", &["--shard-index", "1"]);
}
