//! One GitHub identity shared by many targets (issue #17): the host plans for
//! GitHub's secondary limits instead of tripping them, spaces content-creating
//! requests, and hands the identity's budget out fairly. The fake GitHub enforces
//! the limits (403 with `retry-after` past them); the windows are scaled down (an
//! "hour" of 4 s) so a few passes cross several of them.

use leviathan_domain::config::Config;
use leviathan_events::EventLog;
use leviathan_forge::github::clients::GitHubClients;
use leviathan_forge::github::identity::SecondaryLimits;
use leviathan_forge::github::ratelimit::RetryPolicy;
use leviathan_tests::github::{FakeGitHub, SecondaryRules, one_identity, one_identity_repo};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const TOKEN: &str = "ghp_identity0123456789SECRET";
const TARGETS: usize = 6;
const TASKS: usize = 8;

/// Eight independent ready tasks.
fn backlog() -> String {
    let mut text = String::from("tasks:\n");
    for i in 1..=TASKS {
        text.push_str(&format!(
            "  - id: page-{i}\n    title: Page {i}\n    scope: docs\n    ready: true\n    allowed_paths: [docs/page-{i}.md]\n"
        ));
    }
    text
}

struct World {
    dir: tempfile::TempDir,
    fake: FakeGitHub,
    config: Config,
}

fn world(rules: SecondaryRules) -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let (fake, config) = one_identity(dir.path(), TOKEN, TARGETS, &backlog(), 20, rules);
    World { dir, fake, config }
}

impl World {
    fn pass(&self, log: &EventLog, github: &GitHubClients) -> Vec<String> {
        leviathan_tests::pass_in_process(&self.config, log, github, &self.dir.path().join("work"))
    }

    /// Agent PRs per target.
    fn delivered(&self) -> BTreeMap<String, usize> {
        let mut out: BTreeMap<String, usize> =
            (0..TARGETS).map(|i| (one_identity_repo(i), 0)).collect();
        for p in self.fake.pulls() {
            if p.head.starts_with("agent/") {
                *out.entry(p.repo).or_default() += 1;
            }
        }
        out
    }
}

/// The scaled limits: 4 content-creating requests a "minute" of 1 s, 8 an "hour"
/// of 4 s, at most 3 requests in flight.
fn rules() -> SecondaryRules {
    SecondaryRules {
        per_minute: 4,
        per_hour: 8,
        minute: Duration::from_secs(1),
        hour: Duration::from_secs(4),
        concurrent: 3,
        retry_after: 1,
    }
}

fn limits() -> SecondaryLimits {
    SecondaryLimits {
        per_minute: 4,
        per_hour: 8,
        spacing: Duration::from_millis(60),
        concurrent: 3,
        minute: Duration::from_secs(1),
        hour: Duration::from_secs(4),
        margin: Duration::from_millis(150),
    }
}

#[test]
fn many_targets_on_one_identity_never_trip_the_secondary_limits_and_share_fairly() {
    let w = world(rules());
    let log = EventLog::open(&w.dir.path().join("data")).expect("log");
    let github = GitHubClients::new(RetryPolicy::default(), limits());
    let started = Instant::now();
    let mut passes = 0;
    // Passes until every target has two PRs (12: three scaled hours' worth).
    while w.delivered().values().min().copied().unwrap_or(0) < 2 {
        passes += 1;
        assert!(
            passes <= 40,
            "{passes} passes and still {:?} after {:?}",
            w.delivered(),
            started.elapsed()
        );
        let reports = w.pass(&log, &github);
        for r in &reports {
            assert!(!r.contains("failed"), "{r}");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let delivered = w.delivered();
    assert_eq!(
        w.fake.limit_responses(),
        0,
        "no request met a limit: {delivered:?}"
    );
    // Fair: no target is more than one PR ahead of another.
    let (min, max) = (
        delivered.values().min().copied().unwrap_or(0),
        delivered.values().max().copied().unwrap_or(0),
    );
    assert!(max - min <= 1, "{delivered:?}");
    // Content-creating requests followed each other at least the spacing apart (a
    // little less on arrival, for the network).
    let requests = w.fake.requests();
    let content: Vec<Instant> = requests
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| r.at)
        .collect();
    for pair in content.windows(2) {
        let gap = pair[1].duration_since(pair[0]);
        assert!(
            gap >= Duration::from_millis(40),
            "content requests {gap:?} apart"
        );
    }
    // Each delivered PR cost at most six requests.
    let prs: usize = delivered.values().sum();
    assert!(
        requests.len() <= 6 * prs + TARGETS * passes,
        "{} requests for {prs} PRs in {passes} passes",
        requests.len()
    );
    // The budget is reported per identity, named by where its token comes from.
    let usage = github.usage();
    assert_eq!(usage.len(), 1, "{usage:?}");
    assert!(
        usage[0].identity.starts_with("file:"),
        "{}",
        usage[0].identity
    );
    assert!(usage[0].identity.ends_with("gh.token"));
    assert_eq!(usage[0].targets.len(), TARGETS);
    assert!(!format!("{usage:?}").contains(TOKEN));
    // Refused targets were recorded as such, once per change of reason.
    let skips = log
        .after(0, 100_000)
        .expect("events")
        .into_iter()
        .filter(|e| e.kind == "target.skipped" && e.payload["reason"] == "identity_budget")
        .count();
    assert!(skips > 0, "some pass found the identity's budget spent");
}

/// A restart (or the next `tick`, a new process) remembers the identity's recent
/// content-creating requests, so it does not spend the same hour twice, and its
/// queue, so the targets that waited are served first.
#[test]
fn a_new_process_does_not_spend_the_same_hour_again() {
    let hour = Duration::from_secs(60);
    let w = world(SecondaryRules {
        per_hour: 4,
        hour,
        ..rules()
    });
    let limits = SecondaryLimits {
        per_hour: 4,
        hour,
        ..limits()
    };
    let log = EventLog::open(&w.dir.path().join("data")).expect("log");
    let first = GitHubClients::new(RetryPolicy::default(), limits.clone());
    w.pass(&log, &first);
    assert_eq!(
        w.delivered().values().sum::<usize>(),
        2,
        "two PRs fill the hour"
    );
    let waited = first.usage()[0].secondary.waiting.clone();
    assert!(!waited.is_empty(), "targets were left waiting");
    drop(first);
    assert!(
        w.dir
            .path()
            .join("work")
            .join(leviathan_scheduler::GITHUB_MEMORY_FILE)
            .is_file()
    );
    // The next process.
    let next = GitHubClients::new(RetryPolicy::default(), limits);
    let reports = w.pass(&log, &next);
    assert!(
        reports
            .iter()
            .all(|r| r.contains("skipped: identity_budget")),
        "{reports:#?}"
    );
    assert_eq!(w.delivered().values().sum::<usize>(), 2);
    // The targets that waited keep their places, ahead of the two that delivered.
    let waiting = next.usage()[0].secondary.waiting.clone();
    assert_eq!(waiting[..waited.len()], waited[..], "{waiting:?}");
    assert_eq!(waiting.len(), waited.len() + 2, "{waiting:?}");
    assert_eq!(
        w.fake.limit_responses(),
        0,
        "nothing was sent into the full hour"
    );
}
