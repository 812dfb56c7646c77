//! GitHub App authentication (issue #17) against the fake GitHub serving the App
//! endpoints: the host signs a JWT with the App's key (the fake checks it with the
//! public half), mints an installation token, acts with it for the API and git,
//! commits as the App's bot user, renews the token before it expires while keeping
//! one budget for the installation, and refuses a wrong key with a clear reason.

use leviathan_domain::config::Config;
use leviathan_events::EventLog;
use leviathan_forge::github::app::AppKey;
use leviathan_forge::github::clients::GitHubClients;
use leviathan_forge::github::identity::SecondaryLimits;
use leviathan_forge::github::ratelimit::RetryPolicy;
use leviathan_tests::github::{FakeApp, FakeGitHub};
use leviathan_tests::openapi::Description;
use leviathan_tests::{git, root};
use std::path::PathBuf;
use std::time::Duration;

const TOKEN: &str = "ghp_unused_by_the_app";
const KEY: &str = include_str!("../data/github-app-test-key.pem");

const BACKLOG: &str = "tasks:
  - id: guide
    title: Write the guide
    scope: docs
    ready: true
    allowed_paths: [docs/]
  - id: faq
    title: Write the FAQ
    scope: docs
    ready: true
    allowed_paths: [docs/faq/]
";

struct World {
    dir: tempfile::TempDir,
    fake: FakeGitHub,
    config: Config,
}

/// The fake with the App (tokens living `ttl`) and one target acting as the App
/// with the key at `key_file`.
fn world(ttl: Duration, key_file: Option<PathBuf>) -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let git_root = dir.path().join("github");
    std::fs::create_dir_all(git_root.join("acme")).expect("mkdir");
    let fake = FakeGitHub::start(&git_root, TOKEN);
    fake.enable_app(FakeApp {
        app_id: 12,
        installation_id: 34,
        slug: "leviathan-bot".into(),
        bot_user_id: 4242,
        public_der: AppKey::from_pem(KEY).expect("test key").public_der(),
        token_ttl: ttl,
    });
    fake.create_repo(
        "acme/widgets",
        &[
            (".leviathan/backlog.yaml", BACKLOG),
            ("docs/index.md", "# Index\n"),
        ],
    );
    std::fs::write(dir.path().join("policy.yaml"), "max_open_prs: 5\n").expect("policy");
    let key_file = key_file.unwrap_or_else(|| root().join("tests/data/github-app-test-key.pem"));
    let file = dir.path().join("leviathan.yaml");
    std::fs::write(
        &file,
        format!(
            "targets:\n  - id: widgets\n    repository: acme/widgets\n    forge: github\n    github_api_url: {}\n    policy: policy.yaml\n    labels: [leviathan]\n    github_app:\n      app_id: 12\n      private_key_file: {}\n      installation_id: 34\n",
            fake.api_url,
            key_file.display()
        ),
    )
    .expect("config");
    let config = Config::load(&file).expect("config loads");
    World { dir, fake, config }
}

impl World {
    fn pass(&self, log: &EventLog, github: &GitHubClients) -> Vec<String> {
        leviathan_tests::pass_in_process(&self.config, log, github, &self.dir.path().join("work"))
    }
}

fn clients() -> GitHubClients {
    GitHubClients::new(
        RetryPolicy::default(),
        SecondaryLimits {
            spacing: Duration::ZERO,
            ..SecondaryLimits::default()
        },
    )
}

#[test]
fn the_host_acts_as_the_apps_installation_and_renews_its_token() {
    // Tokens live 302 s: the host renews any with less than 300 s left, so the
    // second pass, a few seconds later, mints a new one.
    let w = world(Duration::from_secs(302), None);
    let log = EventLog::open(&w.dir.path().join("data")).expect("log");
    let github = clients();
    let first = w.pass(&log, &github);
    assert!(first[0].contains("guide: PR 1 opened"), "{first:?}");
    let requests = w.fake.requests();
    let operations = Description::load().assert_conforms(&requests);
    assert_eq!(
        operations[..3],
        [
            "apps/create-installation-access-token",
            "apps/get-authenticated",
            "users/get-by-username"
        ]
    );
    let lines: Vec<String> = requests.iter().map(|r| r.line()).collect();
    assert_eq!(
        lines[..3],
        [
            "POST /api/v3/app/installations/34/access_tokens",
            "GET /api/v3/app",
            "GET /api/v3/users/leviathan-bot%5Bbot%5D",
        ],
        "{lines:#?}"
    );
    // The JWT went to the App endpoints only; the installation token to the rest.
    assert!(
        requests[..2].iter().all(|r| r
            .authorization
            .as_deref()
            .is_some_and(|a| a.starts_with("Bearer ey"))),
        "a JWT"
    );
    assert!(
        requests[3..]
            .iter()
            .all(|r| r.authorization.as_deref() == Some("Bearer ghs_fake0001")),
        "{lines:#?}"
    );
    // The commit is the App's bot's.
    let pull = w.fake.pulls()[0].clone();
    let author = git(
        &w.dir.path().join("github/acme/widgets.git"),
        &["log", "-1", "--format=%an <%ae>|%cn", &pull.head],
    );
    assert_eq!(
        author.trim(),
        "leviathan-bot[bot] <4242+leviathan-bot[bot]@users.noreply.github.com>|leviathan-bot[bot]"
    );

    std::thread::sleep(Duration::from_secs(3));
    w.fake.clear_requests();
    let second = w.pass(&log, &github);
    assert!(second[0].contains("faq: PR 2 opened"), "{second:?}");
    assert_eq!(
        w.fake.installation_tokens(),
        ["ghs_fake0001", "ghs_fake0002"],
        "renewed before it expired"
    );
    let lines: Vec<String> = w.fake.requests().iter().map(|r| r.line()).collect();
    assert_eq!(
        lines[0], "POST /api/v3/app/installations/34/access_tokens",
        "the bot user is looked up once: {lines:#?}"
    );
    assert!(!lines.iter().any(|l| l.contains("/users/")));
    // One identity for the installation, however many tokens it had.
    let usage = github.usage();
    assert_eq!(usage.len(), 1, "{usage:?}");
    assert_eq!(usage[0].identity, "app:12/installation:34");
    assert_eq!(usage[0].targets, ["widgets"]);
    assert_eq!(
        usage[0].content_requests, 4,
        "two PRs, each opened and labelled"
    );
}

#[test]
fn a_wrong_app_key_skips_the_target_naming_the_app_and_never_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wrong = dir.path().join("wrong.pem");
    let out = std::process::Command::new("openssl")
        .args(["genrsa", "-traditional", "-out"])
        .arg(&wrong)
        .arg("2048")
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "{out:?}");
    let w = world(Duration::from_secs(3600), Some(wrong.clone()));
    let log = EventLog::open(&w.dir.path().join("data")).expect("log");
    let report = w.pass(&log, &clients());
    assert!(
        report[0].contains("skipped: forge_unavailable")
            && report[0].contains("GitHub App 12 installation 34")
            && report[0].contains("HTTP 401"),
        "{report:?}"
    );
    let key_text = std::fs::read_to_string(&wrong).expect("key");
    let body_line = key_text.lines().nth(1).expect("a body line");
    assert!(!report[0].contains(body_line));
    assert!(w.fake.pulls().is_empty());
    assert!(w.fake.installation_tokens().is_empty());

    // A key file that is not a key is refused before anything is sent.
    std::fs::write(&wrong, "not a key").expect("write");
    w.fake.clear_requests();
    let report = w.pass(&log, &clients());
    assert!(
        report[0].contains("private key") && report[0].contains("wrong.pem"),
        "{report:?}"
    );
    assert!(w.fake.requests().is_empty());
}

#[test]
fn discovery_serves_the_allowed_repositories_under_their_own_policies() {
    let w = world(Duration::from_secs(3600), None);
    for (repo, policy) in [
        (
            "acme/docs-a",
            Some("max_open_prs: 2\nallowed_path_prefixes: [docs/]\n"),
        ),
        ("acme/docs-b", None),
        ("acme/other", Some("max_open_prs: 2\n")),
    ] {
        let mut files = vec![
            (".leviathan/backlog.yaml", BACKLOG),
            ("docs/index.md", "# Index\n"),
        ];
        if let Some(p) = policy {
            files.push((".leviathan/policy.yaml", p));
        }
        w.fake.create_repo(repo, &files);
    }
    // Two repositories a page: the listing is followed through `Link`.
    w.fake.set_page_size(2);
    let file = w.dir.path().join("leviathan.yaml");
    let text = std::fs::read_to_string(&file).expect("config");
    std::fs::write(
        &file,
        format!(
            "{text}discover:\n  - github_api_url: {}\n    github_app:\n      app_id: 12\n      private_key_file: {}\n      installation_id: 34\n    repositories: ['acme/docs-*', 'acme/widgets']\n    labels: [leviathan]\n",
            w.fake.api_url,
            root().join("tests/data/github-app-test-key.pem").display()
        ),
    )
    .expect("config");
    let config = Config::load(&file).expect("config loads");
    let w = World { config, ..w };
    let log = EventLog::open(&w.dir.path().join("data")).expect("log");
    let github = clients();
    let mut reports = w.pass(&log, &github);
    reports.sort();
    assert_eq!(reports.len(), 3, "{reports:#?}");
    // What the console and the API show: the served discovered target under its
    // repository's policy (the one without a policy never ran).
    let discovered = github.discovered();
    assert_eq!(
        discovered
            .iter()
            .map(|t| (t.id.as_str(), t.policy.max_open_prs))
            .collect::<Vec<_>>(),
        [("acme-docs-a", 2)]
    );
    assert!(
        reports[0].starts_with("acme-docs-a: guide: PR 1 opened"),
        "{reports:#?}"
    );
    assert_eq!(
        reports[1],
        "acme-docs-b: skipped: no_policy (a discovered repository needs its own .leviathan/policy.yaml)"
    );
    assert!(
        reports[2].starts_with("widgets: guide: PR 1 opened"),
        "configured once: {reports:#?}"
    );
    let requests = w.fake.requests();
    let operations = Description::load().assert_conforms(&requests);
    assert!(
        operations
            .iter()
            .any(|o| o == "apps/list-repos-accessible-to-installation")
    );
    let lines: Vec<String> = requests.iter().map(|r| r.line()).collect();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("GET /api/v3/installation/repositories"))
            .count(),
        2,
        "four repositories, two a page: {lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("/repos/acme/other")),
        "a repository off the allow-list is never touched: {lines:#?}"
    );
    let skipped: Vec<_> = log
        .after(0, 1000)
        .expect("events")
        .into_iter()
        .filter(|e| e.kind == "target.skipped")
        .map(|e| (e.target.unwrap_or_default(), e.payload["reason"].clone()))
        .collect();
    assert_eq!(
        skipped,
        [("acme-docs-b".to_string(), serde_json::json!("no_policy"))]
    );
}
