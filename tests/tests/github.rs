//! The GitHub forge end to end: the real binary against a local server that behaves
//! like GitHub (REST with pagination and rate-limit headers, GraphQL, and pushes
//! through the real `git http-backend`), asserting the exact requests made.

use leviathan_events::{Event, EventLog};
use leviathan_tests::github::{FakeGitHub, FakePull, Fault, FaultKind};
use leviathan_tests::openapi::Description;
use leviathan_tests::{git, host_binary, registry, root};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "ghp_fake0123456789abcdefSECRET";
const TOKEN_ENV: &str = "LEVIATHAN_TEST_GITHUB_TOKEN";

const BACKLOG: &str = "tasks:
  - id: guide
    title: Write the guide
    scope: docs
    ready: true
    allowed_paths: [docs/]
    acceptance_criteria:
      - Explains setup
  - id: after-guide
    title: After the guide
    scope: docs
    ready: true
    dependencies: [guide]
    allowed_paths: [docs/]
";

struct Hub {
    dir: tempfile::TempDir,
    fake: FakeGitHub,
}

impl Hub {
    /// A fake GitHub with the given repositories (each holding [`BACKLOG`]) and a
    /// configuration with one target per `(id, repo, extra YAML)`.
    fn new(targets: &[(&str, &str, &str)]) -> Hub {
        let dir = tempfile::tempdir().expect("tempdir");
        let git_root = dir.path().join("github");
        std::fs::create_dir_all(&git_root).expect("mkdir");
        let fake = FakeGitHub::start(&git_root, TOKEN);
        let mut config = String::from("targets:\n");
        for (id, repo, extra) in targets {
            std::fs::create_dir_all(git_root.join(repo.split('/').next().expect("owner")))
                .expect("mkdir");
            fake.create_repo(
                repo,
                &[
                    (".leviathan/backlog.yaml", BACKLOG),
                    ("docs/index.md", "# Index\n"),
                ],
            );
            config.push_str(&format!(
                "  - id: {id}\n    repository: {repo}\n    forge: github\n    github_api_url: {}\n    token_env: {TOKEN_ENV}\n    labels: [leviathan]\n{extra}",
                fake.api_url
            ));
        }
        std::fs::write(dir.path().join("leviathan.yaml"), config).expect("config");
        Hub { dir, fake }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn command(&self) -> Command {
        let mut c = Command::new(host_binary());
        c.arg("tick")
            .arg("--plugin-dir")
            .arg(registry())
            .arg("--config")
            .arg(self.path("leviathan.yaml"))
            .arg("--data-dir")
            .arg(self.path("data"))
            .env(TOKEN_ENV, TOKEN)
            .env("LEVIATHAN_CACHE_DIR", root().join("target/test-cache"));
        c
    }

    fn tick(&self) -> String {
        let out = self.command().output().expect("tick runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "tick: {text}");
        assert!(
            !text.contains(TOKEN),
            "the token leaked into the output: {text}"
        );
        text
    }

    fn events(&self) -> Vec<Event> {
        EventLog::open(&self.path("data"))
            .expect("log")
            .after(0, 100_000)
            .expect("events")
    }

    /// `METHOD path` of the API requests since the last call, all of which must
    /// carry the token.
    fn take_requests(&self) -> Vec<String> {
        let requests = self.fake.requests();
        self.fake.clear_requests();
        Description::load().assert_conforms(&requests);
        for r in &requests {
            assert_eq!(
                r.authorization.as_deref(),
                Some(format!("Bearer {TOKEN}").as_str()),
                "{}",
                r.line()
            );
            assert_conventions(r);
        }
        requests.iter().map(|r| r.line()).collect()
    }

    fn agent_pulls(&self) -> Vec<FakePull> {
        self.fake
            .pulls()
            .into_iter()
            .filter(|p| p.head.starts_with("agent/"))
            .collect()
    }

    fn bare_file(&self, repo: &str, branch: &str, path: &str) -> String {
        git(
            &self.path(&format!("github/{repo}.git")),
            &["show", &format!("{branch}:{path}")],
        )
    }
}

/// GitHub's request conventions: each header once, the API version pinned, the
/// application named in the User-Agent, JSON accepted.
fn assert_conventions(r: &leviathan_tests::github::Recorded) {
    let version = format!("leviathan-host/{}", env!("CARGO_PKG_VERSION"));
    for (name, expected) in [
        ("x-github-api-version", "2022-11-28"),
        ("user-agent", version.as_str()),
        ("accept", "application/vnd.github+json"),
    ] {
        assert_eq!(r.header(name), vec![expected], "{name} of {}", r.line());
    }
    assert_eq!(r.header("authorization").len(), 1, "{}", r.line());
}

fn kinds<'a>(events: &'a [Event], kind: &str) -> Vec<&'a Event> {
    events.iter().filter(|e| e.kind == kind).collect()
}

const LIST: &str = "GET /api/v3/repos/acme/widgets/pulls?state=open&base=main&per_page=100";

#[test]
fn prs_are_opened_labelled_paged_and_settled_with_exact_requests() {
    let hub = Hub::new(&[("widgets", "acme/widgets", "")]);
    // Three PRs of other people: with two per page the host must follow `Link`.
    hub.fake.set_page_size(2);
    for head in ["feature/a", "feature/b", "feature/c"] {
        hub.fake.add_pull("acme/widgets", head, &["leviathan"]);
    }

    let out = hub.tick();
    assert!(
        out.contains("widgets: guide: PR 4 opened from agent/task-exec-attempt-guide-"),
        "{out}"
    );
    let page2 = format!("{LIST}&page=2");
    assert_eq!(
        hub.take_requests(),
        vec![
            LIST.to_string(),
            page2.clone(),
            "POST /api/v3/repos/acme/widgets/pulls".into(),
            "POST /api/v3/repos/acme/widgets/issues/4/labels".into(),
        ]
    );
    let pulls = hub.agent_pulls();
    assert_eq!(pulls.len(), 1);
    let pr = &pulls[0];
    assert_eq!((pr.number, pr.base.as_str()), (4, "main"));
    assert_eq!(pr.title, "leviathan: guide: Write the guide");
    assert!(pr.body.contains("- [ ] Explains setup"), "{}", pr.body);
    assert!(pr.body.contains("Executor: docs-executor"), "{}", pr.body);
    assert_eq!(pr.labels, vec!["leviathan"]);
    assert!(
        !pr.auto_merge,
        "auto-merge is off unless the target opts in"
    );
    // The branch was pushed over HTTP with the write-back in the same commit.
    let backlog = hub.bare_file("acme/widgets", &pr.head, ".leviathan/backlog.yaml");
    assert!(backlog.contains("status: completed"), "{backlog}");
    assert!(
        backlog.contains(&format!("branch_name: {}", pr.head)),
        "{backlog}"
    );
    // The token never reached git's configuration or the remote URL.
    let git_config =
        std::fs::read_to_string(hub.path("data-work/widgets/.git/config")).expect("config");
    assert!(!git_config.contains(TOKEN), "{git_config}");
    assert!(
        git_config.contains(&format!("url = {}/acme/widgets.git", hub.fake.url)),
        "{git_config}"
    );
    let events = hub.events();
    let opened = kinds(&events, "pr.opened");
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0].payload["pr"], "4");
    assert_eq!(
        opened[0].payload["url"],
        format!("{}/acme/widgets/pull/4", hub.fake.url)
    );

    // The PR is open and the default policy allows one: two requests, no attempt.
    let out = hub.tick();
    assert!(
        out.contains("widgets: skipped: max_open_prs (1 open of at most 1)"),
        "{out}"
    );
    assert_eq!(hub.take_requests(), vec![LIST.to_string(), page2.clone()]);

    // Merged on GitHub: the host learns it from the PR and runs the dependent task.
    hub.fake.merge("acme/widgets", 4);
    let out = hub.tick();
    assert!(
        out.contains("widgets: after-guide: PR 5 opened from agent/task-exec-attempt-after-guide-"),
        "{out}"
    );
    assert_eq!(
        hub.take_requests(),
        vec![
            LIST.to_string(),
            page2,
            "GET /api/v3/repos/acme/widgets/pulls/4".into(),
            "POST /api/v3/repos/acme/widgets/pulls".into(),
            "POST /api/v3/repos/acme/widgets/issues/5/labels".into(),
        ]
    );
    let events = hub.events();
    let merged = kinds(&events, "pr.merged");
    assert_eq!(merged.len(), 1);
    assert_eq!(
        (merged[0].task.as_deref(), &merged[0].payload["pr"]),
        (Some("guide"), &serde_json::json!("4"))
    );
}

#[test]
fn rate_limits_are_waited_out_and_a_low_budget_leaves_the_next_target() {
    let hub = Hub::new(&[
        ("widgets", "acme/widgets", ""),
        ("gadgets", "acme/gadgets", ""),
    ]);
    // One target after the other: the low budget widgets leaves is what gadgets sees.
    let config = hub.path("leviathan.yaml");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(&config, format!("workers: 1\n{text}")).expect("config");
    // 23 requests left: widgets' pass spends 5 (one list, a secondary limit and the
    // retry, a 502 and the retry), leaving 18, under the reserve of 20.
    hub.fake.set_remaining(23);
    hub.fake.fault(Fault {
        method: "POST",
        path: "/pulls".into(),
        kind: FaultKind::SecondaryLimit { retry_after: 1 },
    });
    hub.fake.fault(Fault {
        method: "POST",
        path: "/labels".into(),
        kind: FaultKind::ServerError(502),
    });
    let out = hub.tick();
    assert!(
        out.contains("widgets: guide: PR 1 opened from agent/task-exec-attempt-guide-"),
        "{out}"
    );
    assert!(
        out.contains("gadgets: skipped: rate_limited (18 API requests left; the budget resets in"),
        "{out}"
    );
    let requests = hub.fake.requests();
    assert_eq!(
        requests.iter().map(|r| r.line()).collect::<Vec<_>>(),
        vec![
            LIST.to_string(),
            "POST /api/v3/repos/acme/widgets/pulls".into(),
            "POST /api/v3/repos/acme/widgets/pulls".into(),
            "POST /api/v3/repos/acme/widgets/issues/1/labels".into(),
            "POST /api/v3/repos/acme/widgets/issues/1/labels".into(),
        ],
        "nothing is sent for gadgets"
    );
    let waited = requests[2].at.duration_since(requests[1].at);
    assert!(
        waited >= Duration::from_secs(1),
        "retry-after: 1 was honoured, waited {waited:?}"
    );
    assert_eq!(hub.agent_pulls().len(), 1, "the retried POST opened one PR");
    let events = hub.events();
    let skipped: Vec<_> = kinds(&events, "target.skipped")
        .into_iter()
        .map(|e| (e.target.clone(), e.payload["reason"].clone()))
        .collect();
    assert_eq!(
        skipped,
        vec![(Some("gadgets".into()), serde_json::json!("rate_limited"))]
    );
}

#[test]
fn a_restart_in_the_middle_of_an_attempt_never_opens_a_second_pr() {
    let hub = Hub::new(&[("widgets", "acme/widgets", "    auto_merge: true\n")]);
    // GitHub creates the PR but the reply never arrives: the host is killed waiting.
    hub.fake.fault(Fault {
        method: "POST",
        path: "/pulls".into(),
        kind: FaultKind::ActThenHang,
    });
    let mut child = hub
        .command()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tick starts");
    let deadline = Instant::now() + Duration::from_secs(120);
    while hub.agent_pulls().is_empty() {
        assert!(Instant::now() < deadline, "the PR was never created");
        assert!(
            child.try_wait().expect("wait").is_none(),
            "tick ended before it was killed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().expect("kill");
    child.wait().expect("reap");
    let branch = hub.agent_pulls()[0].head.clone();
    hub.fake.clear_requests();

    // First restart while GitHub is rate-limiting for ten minutes: the attempt stays
    // open and its branch (and with it the PR) stays, for the next pass.
    hub.fake.fault(Fault {
        method: "POST",
        path: "/pulls".into(),
        kind: FaultKind::SecondaryLimit { retry_after: 600 },
    });
    let out = hub.tick();
    assert!(
        out.contains("widgets: skipped: forge_failed (GitHub POST /repos/acme/widgets/pulls: rate limited for another 600s)"),
        "{out}"
    );
    assert_eq!(
        hub.take_requests(),
        vec!["POST /api/v3/repos/acme/widgets/pulls".to_string()]
    );
    assert!(kinds(&hub.events(), "attempt.failed").is_empty());
    assert_eq!(hub.agent_pulls()[0].state, "open");

    let out = hub.tick();
    assert!(
        out.contains("widgets: skipped: max_open_prs (1 open of at most 1)"),
        "{out}"
    );
    let head =
        format!("GET /api/v3/repos/acme/widgets/pulls?state=open&head=acme:{branch}&per_page=1");
    assert_eq!(
        hub.take_requests(),
        vec![
            "POST /api/v3/repos/acme/widgets/pulls".to_string(),
            head,
            "POST /api/v3/repos/acme/widgets/issues/1/labels".into(),
            "POST /api/v3/repos/acme/widgets/issues/1/comments".into(),
            "POST /api/graphql".into(),
            LIST.to_string(),
        ]
    );
    let pulls = hub.agent_pulls();
    assert_eq!(pulls.len(), 1, "one PR for the task: {pulls:?}");
    let pr = &pulls[0];
    assert_eq!(pr.labels, vec!["leviathan"]);
    assert!(pr.auto_merge, "the target opted in to auto-merge");
    assert_eq!(pr.comments.len(), 1);
    assert!(
        pr.comments[0].contains("resumed attempt"),
        "{:?}",
        pr.comments
    );

    let events = hub.events();
    assert_eq!(
        kinds(&events, "attempt.started").len(),
        1,
        "no second attempt"
    );
    assert_eq!(kinds(&events, "attempt.pushed").len(), 1);
    let succeeded = kinds(&events, "attempt.succeeded");
    assert_eq!(succeeded.len(), 1);
    assert_eq!(succeeded[0].payload["resumed"], true);
    let opened = kinds(&events, "pr.opened");
    assert_eq!(opened.len(), 1);
    assert_eq!(
        (
            &opened[0].payload["pr"],
            &opened[0].payload["existed"],
            &opened[0].payload["auto_merge"]
        ),
        (
            &serde_json::json!("1"),
            &serde_json::json!(true),
            &serde_json::json!("enabled")
        )
    );

    // A third pass is quiet: one list, nothing opened.
    let out = hub.tick();
    assert!(out.contains("widgets: skipped: max_open_prs"), "{out}");
    assert_eq!(hub.take_requests(), vec![LIST.to_string()]);
    assert_eq!(hub.agent_pulls().len(), 1);
}

#[test]
fn a_missing_token_skips_the_target_naming_the_variable() {
    let hub = Hub::new(&[("widgets", "acme/widgets", "")]);
    let out = hub
        .command()
        .env_remove(TOKEN_ENV)
        .output()
        .expect("tick runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains(&format!(
            "widgets: skipped: forge_unavailable (token_env `{TOKEN_ENV}` is not set or empty)"
        )),
        "{text}"
    );
    assert!(hub.fake.requests().is_empty());
    // GitHub PRs are merged on GitHub, not by the local forge's command.
    let out = Command::new(host_binary())
        .args(["prs", "merge", "--config"])
        .arg(hub.path("leviathan.yaml"))
        .arg("--data-dir")
        .arg(hub.path("data"))
        .args(["widgets", "1"])
        .output()
        .expect("prs runs");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        text.contains("target `widgets` uses the GitHub forge"),
        "{text}"
    );
}

#[test]
fn api_failures_fail_the_attempt_and_an_exhausted_budget_is_not_hammered() {
    let hub = Hub::new(&[("widgets", "acme/widgets", "")]);
    // GitHub refuses the PR outright: a failed attempt, and no branch left behind.
    hub.fake.fault(Fault {
        method: "POST",
        path: "/pulls".into(),
        kind: FaultKind::ServerError(404),
    });
    let out = hub.tick();
    assert!(
        out.contains("widgets: guide: attempt failed (forge): GitHub POST /repos/acme/widgets/pulls: HTTP 404"),
        "{out}"
    );
    let branches = git(
        &hub.path("github/acme/widgets.git"),
        &["for-each-ref", "--format=%(refname)", "refs/heads/agent/"],
    );
    assert_eq!(branches, "", "branch deleted");
    let events = hub.events();
    let failed = kinds(&events, "attempt.failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].payload["kind"], "forge");
    assert!(kinds(&events, "pr.opened").is_empty());
    assert!(hub.agent_pulls().is_empty());
    hub.fake.clear_requests();

    // The primary budget is spent for the next hour: one request, no retry storm.
    hub.fake.set_remaining(0);
    let out = hub.tick();
    assert!(
        out.contains(&format!(
            "widgets: skipped: forge_failed (GitHub GET {}: rate limited for another",
            LIST.trim_start_matches("GET /api/v3")
        )),
        "{out}"
    );
    assert_eq!(hub.take_requests(), vec![LIST.to_string()]);
}

/// The numeric value of the series `name` (with its labels, exactly) in Prometheus text.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[test]
fn serve_reports_the_passes_and_the_github_budget_in_its_metrics() {
    let hub = Hub::new(&[("widgets", "acme/widgets", "")]);
    hub.fake.set_remaining(4321);
    let config = hub.path("leviathan.yaml");
    let registry = registry().display().to_string();
    let server = leviathan_tests::serve::Server::start(
        hub.dir.path(),
        &[
            "--config",
            &config.display().to_string(),
            "--plugin-dir",
            &registry,
        ],
        &[
            (TOKEN_ENV, TOKEN),
            (
                "LEVIATHAN_CACHE_DIR",
                &root().join("target/test-cache").display().to_string(),
            ),
        ],
    );
    let api = hub.fake.api_url.trim_end_matches('/').to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    let metrics = loop {
        let (_, body) = server.get("/metrics", None);
        let text = body.as_str().unwrap_or_default().to_string();
        let passed = sample(
            &text,
            "leviathan_scheduler_last_pass_completed_timestamp_seconds",
        )
        .is_some_and(|t| t > 0.0);
        if passed && !hub.agent_pulls().is_empty() {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no pass completed with a PR: {text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(sample(&metrics, "leviathan_scheduler_running"), Some(1.0));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let last = sample(
        &metrics,
        "leviathan_scheduler_last_pass_completed_timestamp_seconds",
    )
    .expect("last pass");
    assert!((now - last).abs() < 300.0, "last pass {last}, now {now}");
    let label = format!("{{api_url=\"{api}\"}}");
    // The fake counts the budget down from what it was set to.
    let remaining = sample(
        &metrics,
        &format!("leviathan_github_rate_limit_remaining{label}"),
    )
    .unwrap_or_else(|| panic!("remaining for {api}: {metrics}"));
    assert!(remaining > 0.0 && remaining <= 4321.0, "{remaining}");
    assert_eq!(
        sample(
            &metrics,
            &format!("leviathan_github_rate_limit_limit{label}")
        ),
        Some(5000.0)
    );
    // Opening and labelling the PR are content-creating requests.
    let created = sample(
        &metrics,
        &format!("leviathan_github_content_requests_total{label}"),
    )
    .expect("content requests");
    assert!(created >= 2.0, "{created}");
    // The identity's own series, named by where its token comes from.
    let identity = format!("env:{TOKEN_ENV}");
    let hour = sample(
        &metrics,
        &format!(
            "leviathan_github_identity_content_remaining{{api_url=\"{api}\",identity=\"{identity}\",window=\"hour\"}}"
        ),
    )
    .unwrap_or_else(|| panic!("the identity's hour window: {metrics}"));
    assert!(hour <= 500.0 - created, "{hour} left after {created}");
    assert_eq!(
        sample(
            &metrics,
            &format!(
                "leviathan_github_identity_waiting_targets{{api_url=\"{api}\",identity=\"{identity}\"}}"
            )
        ),
        Some(0.0)
    );
    // And the API shows the target's identity with its budgets.
    let (status, targets) = server.get("/api/v1/targets", Some(leviathan_tests::serve::VIEWER));
    assert_eq!(status, 200, "{targets}");
    let widgets = targets["targets"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["id"] == "widgets"))
        .unwrap_or_else(|| panic!("{targets}"));
    let github = &widgets["github"];
    assert_eq!(github["identity"], identity.as_str(), "{targets}");
    assert_eq!(github["api_url"], api.as_str());
    assert_eq!(github["secondary"]["per_hour"], 500);
    assert_eq!(github["secondary"]["per_minute"], 80);
    assert!(
        github["rate_limit"]["remaining"]
            .as_u64()
            .is_some_and(|r| r <= 4321)
    );
    assert!(
        github["secondary"]["hour_remaining"]
            .as_u64()
            .is_some_and(|r| r <= 498)
    );
    assert_eq!(
        targets["github_identities"][0]["targets"],
        serde_json::json!(["widgets"])
    );
    assert!(!targets.to_string().contains(TOKEN));
    assert_eq!(
        sample(
            &metrics,
            "leviathan_target_circuit_breaker_open{target=\"widgets\"}"
        ),
        Some(0.0)
    );
    assert!(
        !metrics.contains(TOKEN),
        "the token leaked into the metrics"
    );
    assert!(server.stop().success());
}
