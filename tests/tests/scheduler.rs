//! The closed loop with the local forge, end to end through the real binary on real
//! git repositories: two targets, skip reasons, PRs, the write-back bytes, merge, a
//! dependent task becoming runnable, attempt counting, the circuit breaker, pause.

use leviathan_domain::writeback::{Completion, write_back};
use leviathan_events::{Event, EventLog};
use leviathan_tests::{Seed, bare_repo, git, host_binary, registry, root};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A bare repository `<name>.git` under `root` whose `main` holds `backlog`.
fn remote(root: &Path, name: &str, backlog: &str) -> PathBuf {
    bare_repo(
        root,
        name,
        &[
            Seed::Text(".leviathan/backlog.yaml", backlog),
            Seed::Text("docs/index.md", "# Index\n"),
        ],
    )
}

const ALPHA: &str = "# Alpha backlog: comments and quoting stay as written.
tasks:
  - id: a-notready
    title: Not yet
    scope: docs
    ready: false
    allowed_paths: [docs/]
  - id: a-outside
    title: Outside the policy
    scope: docs
    ready: true
    allowed_paths: [ops/]
  - id: a-docs
    title: 'Guide: setup'   # quoted on purpose
    scope: docs
    ready: true
    status: pending
    allowed_paths: [docs/]
    acceptance_criteria:
      - Explains setup
  - id: a-dependent
    title: After the guide
    scope: docs
    ready: true
    dependencies: [a-docs]
    allowed_paths: [docs/]
";

const BETA: &str = "tasks:
  - id: b-fail
    title: Two Markdown targets, so the executor refuses
    scope: docs
    ready: true
    allowed_paths: [docs/a.md, docs/b.md]
";

struct World {
    dir: tempfile::TempDir,
}

/// What `command` printed (stdout, then stderr); panics with it unless it succeeded.
fn succeeded(mut command: Command) -> String {
    let out = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{command:?}: {text}");
    text
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        remote(dir.path(), "alpha", ALPHA);
        remote(dir.path(), "beta", BETA);
        std::fs::write(
            dir.path().join("leviathan.yaml"),
            "targets:\n  - id: alpha\n    repository: alpha.git\n    labels: [leviathan]\n  - id: beta\n    repository: beta.git\n",
        )
        .unwrap();
        World { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The host command `args` on this world's data directory and configuration.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(host_binary());
        command
            .args(args)
            .arg("--data-dir")
            .arg(self.path("data"))
            .env("LEVIATHAN_CONFIG", self.path("leviathan.yaml"))
            .env("LEVIATHAN_CACHE_DIR", root().join("target/test-cache"));
        command
    }

    /// `tick` on this world, as [`World::command`].
    fn tick_command(&self) -> Command {
        let plugins = registry().display().to_string();
        self.command(&["tick", "--plugin-dir", &plugins])
    }

    fn host(&self, args: &[&str]) -> String {
        succeeded(self.command(args))
    }

    fn tick(&self) -> String {
        succeeded(self.tick_command())
    }

    fn events_since(&self, after: u64) -> Vec<Event> {
        EventLog::open(&self.path("data"))
            .unwrap()
            .after(after, 10_000)
            .unwrap()
    }

    fn last_seq(&self) -> u64 {
        EventLog::open(&self.path("data")).unwrap().last_seq()
    }

    fn branches(&self, repo: &str) -> Vec<String> {
        git(
            &self.path(repo),
            &[
                "for-each-ref",
                "--format=%(refname:short)",
                "refs/heads/agent/",
            ],
        )
        .lines()
        .map(String::from)
        .collect()
    }
}

/// (target, task, reason) of the `task.skipped` events.
fn skips(events: &[Event]) -> Vec<(String, String, String)> {
    events
        .iter()
        .filter(|e| e.kind == "task.skipped")
        .map(|e| {
            (
                e.target.clone().unwrap_or_default(),
                e.task.clone().unwrap_or_default(),
                e.payload["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn target_skips(events: &[Event]) -> Vec<(String, String)> {
    events
        .iter()
        .filter(|e| e.kind == "target.skipped")
        .map(|e| {
            (
                e.target.clone().unwrap_or_default(),
                e.payload["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn owned(items: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    items
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect()
}

#[test]
fn the_local_loop_with_two_targets() {
    let world = World::new();

    // Pass 1: alpha skips two tasks and opens a PR for a-docs; beta's task fails.
    let out = world.tick();
    assert!(
        out.contains("alpha: a-docs: PR 1 opened from agent/task-exec-attempt-a-docs-"),
        "{out}"
    );
    assert!(
        out.contains("beta: b-fail: attempt failed (invalid-task)"),
        "{out}"
    );
    let events = world.events_since(0);
    assert_eq!(
        skips(&events),
        owned(&[
            ("alpha", "a-notready", "not_ready"),
            ("alpha", "a-outside", "scope")
        ])
    );
    let branches = world.branches("alpha.git");
    assert_eq!(branches.len(), 1, "{branches:?}");
    let branch = &branches[0];
    let opened = events
        .iter()
        .find(|e| e.kind == "pr.opened")
        .expect("pr.opened");
    assert_eq!(opened.payload["branch"], branch.as_str());
    assert!(
        opened.payload["body"]
            .as_str()
            .unwrap()
            .contains("- [ ] Explains setup")
    );
    assert!(
        opened.payload["body"]
            .as_str()
            .unwrap()
            .contains("Executor: docs-executor@0.1.0")
    );

    // The branch holds the executor's file and the write-back, every other byte kept.
    let files = git(
        &world.path("alpha.git"),
        &["ls-tree", "-r", "--name-only", branch],
    );
    assert!(
        files
            .lines()
            .any(|f| f.starts_with("docs/") && f != "docs/index.md"),
        "{files}"
    );
    let written = git(
        &world.path("alpha.git"),
        &["show", &format!("{branch}:.leviathan/backlog.yaml")],
    );
    let completed_at = written
        .lines()
        .find_map(|l| l.trim().strip_prefix("completed_at: "))
        .unwrap()
        .trim_matches('"')
        .to_string();
    let attempt = opened.attempt.clone().unwrap();
    let expected = write_back(
        ALPHA,
        "a-docs",
        &Completion {
            attempt_id: attempt.clone(),
            branch_name: branch.clone(),
            completed_at,
        },
    )
    .unwrap();
    assert_eq!(written, expected);
    assert!(written.contains("    title: 'Guide: setup'   # quoted on purpose\n    scope: docs\n    ready: false\n    status: completed\n"));
    let message = git(
        &world.path("alpha.git"),
        &["log", "-1", "--format=%B", branch],
    );
    assert!(message.starts_with("leviathan: a-docs: Guide: setup\n\nExecutor: docs-executor@0.1.0\nChange digest: sha256:"), "{message}");
    assert!(
        message.contains(&format!("Attempt: {attempt}")),
        "{message}"
    );

    // Pass 2: alpha is at max_open_prs; beta fails again and its breaker opens.
    let before = world.last_seq();
    world.tick();
    let events = world.events_since(before);
    assert_eq!(
        target_skips(&events),
        [("alpha".to_string(), "max_open_prs".to_string())]
    );
    assert!(
        events
            .iter()
            .any(|e| e.kind == "circuit_breaker.opened" && e.target.as_deref() == Some("beta"))
    );

    // Pass 3: beta's breaker holds it. alpha is still at max_open_prs: the report
    // says so, the log does not repeat it (a pass records what changed).
    let before = world.last_seq();
    let out = world.tick();
    assert!(
        out.contains("alpha: skipped: max_open_prs (1 open of at most 1)"),
        "{out}"
    );
    let events = world.events_since(before);
    assert_eq!(
        target_skips(&events),
        [("beta".to_string(), "circuit_open".to_string())]
    );
    // Pass 4 changes nothing, so it writes nothing; no pass writes a heartbeat.
    let before = world.last_seq();
    world.tick();
    assert_eq!(world.events_since(before), vec![], "a quiet pass is silent");
    assert!(
        !world
            .events_since(0)
            .iter()
            .any(|e| e.kind == "scheduler.tick")
    );

    // Merging the PR completes a-docs on main and makes a-dependent runnable.
    let listing = world.host(&["prs", "list"]);
    assert!(
        listing.contains("alpha") && listing.contains("a-docs"),
        "{listing}"
    );
    let merged = world.host(&["prs", "merge", "alpha", "1"]);
    assert!(merged.contains("merged PR 1"), "{merged}");
    assert!(
        world.branches("alpha.git").is_empty(),
        "the merged branch is deleted"
    );
    let main_backlog = git(
        &world.path("alpha.git"),
        &["show", "main:.leviathan/backlog.yaml"],
    );
    assert_eq!(main_backlog, expected);
    // An operator resets beta's breaker (the API does the same).
    world.host(&[
        "events",
        "append",
        "--type",
        "circuit_breaker.closed",
        "--target",
        "beta",
    ]);
    let before = world.last_seq();
    let out = world.tick();
    assert!(out.contains("alpha: a-dependent: PR 2 opened"), "{out}");
    let events = world.events_since(before);
    // a-notready and a-outside were skipped for the same reasons in pass 1: not again.
    // (Targets are served at once: their events interleave, so compare sorted.)
    let mut got = skips(&events);
    got.sort();
    assert_eq!(
        got,
        owned(&[
            ("alpha", "a-docs", "status"),
            ("beta", "b-fail", "attempts"),
        ])
    );
    let blocked: Vec<_> = events.iter().filter(|e| e.kind == "task.blocked").collect();
    assert_eq!(blocked.len(), 1);
    assert_eq!(blocked[0].task.as_deref(), Some("b-fail"));

    // Closing a PR deletes its branch; pausing a target stops it.
    world.host(&["prs", "close", "alpha", "2"]);
    assert!(world.branches("alpha.git").is_empty());
    world.host(&[
        "events",
        "append",
        "--type",
        "autonomy.paused",
        "--target",
        "alpha",
    ]);
    let before = world.last_seq();
    world.tick();
    let events = world.events_since(before);
    assert_eq!(
        target_skips(&events)[0],
        ("alpha".to_string(), "paused".to_string())
    );
    assert!(
        !events.iter().any(|e| e.kind == "task.blocked"),
        "a blocked task is recorded once"
    );
    // Resuming lets the target run again: a-dependent's PR was closed, so it runs anew.
    world.host(&[
        "events",
        "append",
        "--type",
        "autonomy.resumed",
        "--target",
        "alpha",
    ]);
    let out = world.tick();
    assert!(out.contains("alpha: a-dependent: PR 3 opened"), "{out}");
    assert_eq!(
        EventLog::open(&world.path("data"))
            .unwrap()
            .verify()
            .map(|_| ()),
        Ok(())
    );
}

#[test]
fn a_bad_config_names_the_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("leviathan.yaml");
    std::fs::write(
        &config,
        "targets:\n  - id: x\n    repository: r\n    forge: gitlab\n",
    )
    .unwrap();
    let out = Command::new(host_binary())
        .args(["tick", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("leviathan.yaml") && err.contains("targets[0]") && err.contains("forge"),
        "{err}"
    );
}

#[test]
fn a_breaker_with_a_cool_down_closes_by_itself() {
    let world = World::new();
    std::fs::write(
        world.path("beta-policy.yaml"),
        "circuit_breaker_failures: 1\ncircuit_breaker_cooldown_seconds: 1\nmax_attempts_per_task: 5\n",
    )
    .unwrap();
    std::fs::write(
        world.path("leviathan.yaml"),
        "targets:\n  - id: beta\n    repository: beta.git\n    policy: beta-policy.yaml\n",
    )
    .unwrap();
    world.tick();
    let before = world.last_seq();
    world.tick();
    let events = world.events_since(before);
    assert_eq!(
        target_skips(&events),
        [("beta".to_string(), "circuit_open".to_string())]
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let before = world.last_seq();
    let out = world.tick();
    assert!(out.contains("beta: b-fail: attempt failed"), "{out}");
    let events = world.events_since(before);
    let closed = events
        .iter()
        .find(|e| e.kind == "circuit_breaker.closed")
        .expect("closed by the cool-down");
    assert_eq!(closed.payload["reason"], "cooldown");
    assert!(
        events.iter().any(|e| e.kind == "circuit_breaker.opened"),
        "and open again after the next failure"
    );
}

const VIEWER: &str = "scheduler-test-viewer-token";
const OPERATOR: &str = "scheduler-test-operator-token";

/// `serve --config` running over a world; stopped with SIGTERM by [`Served::stop`].
struct Served {
    child: std::process::Child,
    base: String,
    agent: ureq::Agent,
}

impl Served {
    fn start(world: &World, plugin_dir: &Path, extra: &[&str]) -> Served {
        use std::io::BufRead;
        std::fs::write(
            world.path("tokens.yaml"),
            format!(
                "tokens:\n  - {{name: t, role: viewer, token: {VIEWER}}}\n  - {{name: ops, role: operator, token: {OPERATOR}}}\n"
            ),
        )
        .unwrap();
        let mut child = Command::new(host_binary())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(world.path("data"))
            .arg("--tokens-file")
            .arg(world.path("tokens.yaml"))
            .arg("--config")
            .arg(world.path("leviathan.yaml"))
            .arg("--plugin-dir")
            .arg(plugin_dir)
            .args(extra)
            .env("LEVIATHAN_CACHE_DIR", root().join("target/test-cache"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap()
            .to_string();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Served { child, base, agent }
    }

    /// `(status, JSON body)` of a request with `bearer`.
    fn call(&self, method: &str, path: &str, bearer: &str) -> (u16, serde_json::Value) {
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {bearer}");
        let mut response = match method {
            "GET" => self.agent.get(&url).header("Authorization", &auth).call(),
            _ => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .send_empty(),
        }
        .unwrap();
        let status = response.status().as_u16();
        let body = serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
        (status, body)
    }

    /// The types of every event, in order.
    fn kinds(&self) -> Vec<String> {
        let (_, page) = self.call("GET", "/api/v1/events?limit=1000", VIEWER);
        page["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap().to_string())
            .collect()
    }

    /// Polls the event types until `done` holds (at most 60 s).
    fn wait(&self, what: &str, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let kinds = self.kinds();
            if done(&kinds) {
                return kinds;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}: {kinds:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// SIGTERM; whether the process then exited successfully.
    fn stop(mut self) -> bool {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap().success()
    }
}

#[test]
fn serve_runs_passes_on_the_configured_interval() {
    let world = World::new();
    std::fs::write(
        world.path("leviathan.yaml"),
        "interval_seconds: 1\ntargets:\n  - id: alpha\n    repository: alpha.git\n",
    )
    .unwrap();
    let served = Served::start(&world, registry(), &[]);
    // The second pass finds the PR open: the first skip is news, later ones are not.
    let kinds = served.wait("a second pass", |k| k.iter().any(|e| e == "target.skipped"));
    assert!(kinds.contains(&"pr.opened".to_string()), "{kinds:?}");
    // The passes' own attempts reach the metrics, not only what the API appends.
    let mut response = served
        .agent
        .get(format!("{}/metrics", served.base))
        .call()
        .unwrap();
    let metrics = response.body_mut().read_to_string().unwrap();
    assert!(
        metrics.contains("leviathan_attempts_total{outcome=\"succeeded\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("leviathan_executor_fuel_used_count 1"),
        "{metrics}"
    );
    let (_, autonomy) = served.call("GET", "/api/v1/autonomy", VIEWER);
    assert_eq!(autonomy["enabled"], true);
    assert!(autonomy["last_tick_ms"].as_u64().is_some(), "{autonomy}");
    // Liveness without heartbeat events: each target's last pass is in the graph.
    let (_, graph) = served.call("GET", "/api/v1/graph", VIEWER);
    assert!(
        graph["targets"][0]["last_served_ms"].as_u64().is_some(),
        "{graph}"
    );
    assert!(!kinds.iter().any(|k| k == "scheduler.tick"), "{kinds:?}");
    // While serve holds the log, the local PR is merged through the API.
    let merge = |pr: &str, bearer: &str| {
        served.call(
            "POST",
            &format!("/api/v1/targets/alpha/prs/{pr}/merge"),
            bearer,
        )
    };
    assert_eq!(merge("1", VIEWER).0, 403);
    assert_eq!(merge("9", OPERATOR).0, 404);
    let (status, merged) = merge("1", OPERATOR);
    assert_eq!(status, 200, "{merged}");
    assert_eq!(merged["state"], "merged");
    assert_eq!(merged["task"], "a-docs");
    let main_backlog = git(
        &world.path("alpha.git"),
        &["show", "main:.leviathan/backlog.yaml"],
    );
    assert!(main_backlog.contains("status: completed"), "{main_backlog}");
    assert!(served.stop(), "a clean stop after the running pass");
    let branches = world.branches("alpha.git");
    assert!(
        branches.len() <= 1 && !branches.iter().any(|b| b.contains("-a-docs-")),
        "one PR per task however many passes, and the merged branch is gone: {branches:?}"
    );
}

#[test]
fn a_branch_without_a_pr_record_is_adopted_and_never_doubled() {
    let world = World::new();
    // As if an attempt had pushed and the host had died before recording its PR (or the
    // original Leviathan had left the branch open).
    let branch = "agent/task-exec-attempt-a-docs-1a2b3c4d";
    git(&world.path("alpha.git"), &["branch", branch, "main"]);
    let max2 = world.path("max2.yaml");
    std::fs::write(&max2, "max_open_prs: 2\n").unwrap();
    std::fs::write(
        world.path("leviathan.yaml"),
        "targets:\n  - id: alpha\n    repository: alpha.git\n    policy: max2.yaml\n",
    )
    .unwrap();
    let out = world.tick();
    assert!(
        out.contains("alpha: nothing to run"),
        "a-docs is inflight, a-dependent waits: {out}"
    );
    let events = world.events_since(0);
    let adopted: Vec<_> = events
        .iter()
        .filter(|e| e.kind == "pr.opened" && e.payload["adopted"] == true)
        .collect();
    assert_eq!(adopted.len(), 1);
    assert_eq!(adopted[0].task.as_deref(), Some("a-docs"));
    assert_eq!(adopted[0].attempt.as_deref(), Some("1a2b3c4d"));
    assert!(skips(&events).contains(&("alpha".into(), "a-docs".into(), "inflight".into())));
    assert_eq!(
        world
            .branches("alpha.git")
            .iter()
            .filter(|b| b.contains("a-docs"))
            .count(),
        1,
        "no second branch or PR for the task"
    );
    // A second pass adopts nothing new; the adopted PR can be closed like any other.
    world.tick();
    let adopted_again = world
        .events_since(0)
        .iter()
        .filter(|e| e.kind == "pr.opened" && e.payload["adopted"] == true)
        .count();
    assert_eq!(adopted_again, 1);
    let listing = world.host(&["prs", "list"]);
    assert!(listing.contains(branch), "{listing}");
    world.host(&["prs", "close", "alpha", "1"]);
    assert!(!world.branches("alpha.git").contains(&branch.to_string()));
}

#[test]
fn serve_attempts_pick_up_a_plugin_added_while_it_runs() {
    let world = World::new();
    std::fs::write(
        world.path("patient.yaml"),
        "circuit_breaker_failures: 100\nmax_attempts_per_task: 100\n",
    )
    .unwrap();
    std::fs::write(
        world.path("leviathan.yaml"),
        "interval_seconds: 1\ntargets:\n  - id: alpha\n    repository: alpha.git\n    policy: patient.yaml\n",
    )
    .unwrap();
    let plugins = world.path("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let served = Served::start(&world, &plugins, &["--reload-debounce-ms", "100"]);
    // No executor yet: the attempt fails.
    served.wait("a failed attempt", |k| {
        k.iter().any(|e| e == "attempt.failed")
    });
    // Installed while serve runs: a later pass delivers the PR, without a restart.
    let (wasm, manifest) = leviathan_tests::component("docs-executor");
    let out = Command::new(host_binary())
        .args(["plugins", "install"])
        .arg(wasm)
        .arg("--manifest")
        .arg(manifest)
        .arg("--plugin-dir")
        .arg(&plugins)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let k = served.wait("the PR", |k| k.iter().any(|e| e == "pr.opened"));
    assert!(k.iter().any(|e| e == "plugin.loaded"), "{k:?}");
    assert!(served.stop());
}

#[test]
fn serve_routes_each_target_under_its_own_plugin_rules() {
    let world = World::new();
    // serve's own policy trusts unsigned plugins; alpha's requires signatures, so
    // the hot-reloaded set must not run alpha's attempts.
    std::fs::write(
        world.path("signed.yaml"),
        "plugins:\n  require_signatures: true\n",
    )
    .unwrap();
    std::fs::write(
        world.path("leviathan.yaml"),
        "interval_seconds: 1\ntargets:\n  - id: alpha\n    repository: alpha.git\n    policy: signed.yaml\n",
    )
    .unwrap();
    let served = Served::start(&world, registry(), &[]);
    served.wait("alpha's failed attempt", |k| {
        k.iter().any(|e| e == "attempt.failed")
    });
    assert!(served.stop());
    let events = world.events_since(0);
    assert!(
        !events.iter().any(|e| e.kind == "pr.opened"),
        "an unsigned executor ran under require_signatures"
    );
    let failed = events
        .iter()
        .find(|e| e.kind == "attempt.failed")
        .expect("a failed attempt");
    let message = failed.payload["message"].as_str().unwrap_or_default();
    assert!(message.contains("signature"), "{}", failed.payload);
}

#[test]
fn a_relative_config_path_finds_the_repositories_beside_it() {
    let world = World::new();
    let mut tick = Command::new(host_binary());
    tick.args([
        "tick",
        "--config",
        "leviathan.yaml",
        "--data-dir",
        "data",
        "--plugin-dir",
    ])
    .arg(registry())
    .current_dir(world.dir.path())
    .env("LEVIATHAN_CACHE_DIR", root().join("target/test-cache"));
    let text = succeeded(tick);
    assert!(text.contains("alpha: a-docs: PR 1 opened"), "{text}");
}

#[test]
fn a_policy_violation_fails_the_attempt_and_leaves_nothing_behind() {
    let world = World::new();
    remote(
        world.dir.path(),
        "gamma",
        "tasks:\n  - id: sibling\n    title: Writes beside its allowed file\n    scope: hostile\n    ready: true\n    allowed_paths: [docs/allowed.md]\n",
    );
    std::fs::write(
        world.path("leviathan.yaml"),
        "targets:\n  - id: gamma\n    repository: gamma.git\n",
    )
    .unwrap();
    let out = world.tick();
    assert!(
        out.contains("gamma: sibling: attempt failed (policy-denied)"),
        "{out}"
    );
    let events = world.events_since(0);
    let violation = events
        .iter()
        .find(|e| e.kind == "policy.violation")
        .expect("a policy.violation event");
    assert_eq!(violation.task.as_deref(), Some("sibling"));
    let failed = events
        .iter()
        .find(|e| e.kind == "attempt.failed" && e.payload["kind"] == "policy-denied")
        .expect("the attempt failed as policy-denied");
    // The sandbox refused the write at the call and the log says which rule and path.
    assert_eq!(
        failed.payload["denied"],
        serde_json::json!([{"action": "write", "path": "docs/other.md", "rule": "allowed_paths"}]),
        "{}",
        failed.payload
    );
    assert!(
        world.branches("gamma.git").is_empty(),
        "no branch was pushed"
    );
    assert!(!events.iter().any(|e| e.kind == "pr.opened"));
}

/// An in-process pass over the config at `dir` on `log` (what `tick` does).
fn pass_in_process(dir: &Path, log: &EventLog) -> Vec<String> {
    let config = leviathan_domain::config::Config::load(&dir.join("leviathan.yaml")).unwrap();
    let github = leviathan_forge::github::clients::GitHubClients::default();
    leviathan_tests::pass_in_process(&config, log, &github, &dir.join("work"))
}

/// A pass and a local merge of the same target never interleave: a pass that met the
/// merged PR's branch already deleted while the log still held the PR open ran the
/// merged task a second time (the console's browser test caught it once in CI).
#[test]
fn a_pass_and_a_local_merge_of_one_target_take_turns() {
    use std::sync::Arc;
    use std::time::Duration;
    let world = World::new();
    std::fs::write(
        world.path("leviathan.yaml"),
        "targets:\n  - id: alpha\n    repository: alpha.git\n",
    )
    .unwrap();
    let log = Arc::new(EventLog::open(&world.path("data")).unwrap());
    let alpha_events_after = |seq: u64| {
        log.after(seq, 10_000)
            .unwrap()
            .iter()
            .filter(|e| e.target.as_deref() == Some("alpha"))
            .count()
    };
    let dir = world.path("");
    let first = pass_in_process(&dir, &log);
    assert!(first[0].contains("a-docs: PR 1 opened"), "{first:?}");

    // A pass waits while the target's PRs are being changed.
    let held = leviathan_forge::serial::lock("alpha");
    let before = log.last_seq();
    let pass = {
        let (dir, log) = (dir.clone(), log.clone());
        std::thread::spawn(move || pass_in_process(&dir, &log))
    };
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        alpha_events_after(before),
        0,
        "the pass waited for the target"
    );
    drop(held);
    let second = pass.join().unwrap();
    assert!(second[0].contains("max_open_prs"), "{second:?}");

    // A merge waits while a pass holds the target.
    let held = leviathan_forge::serial::lock("alpha");
    let before = log.last_seq();
    let merge = {
        let (dir, log) = (dir.clone(), log.clone());
        std::thread::spawn(move || {
            let config =
                leviathan_domain::config::Config::load(&dir.join("leviathan.yaml")).unwrap();
            leviathan_forge::pull_requests::merge_or_close_local(
                &config,
                &log,
                &dir.join("work"),
                "alpha",
                "1",
                true,
                leviathan_events::Provenance::host_for("test"),
                None,
            )
            .map(|done| done.task)
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        alpha_events_after(before),
        0,
        "the merge waited for the pass"
    );
    assert_eq!(
        world.branches("alpha.git").len(),
        1,
        "the branch is still there"
    );
    drop(held);
    assert_eq!(merge.join().unwrap().unwrap(), "a-docs");
    let third = pass_in_process(&dir, &log);
    assert!(third[0].contains("a-dependent: PR 2 opened"), "{third:?}");
}

/// The port of a remote that accepts connections and never answers.
fn silent_remote() -> u16 {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming() {
            held.push(stream);
        }
    });
    port
}

#[test]
fn a_silent_remote_is_given_up_and_a_clone_a_crash_left_locked_is_repaired() {
    let world = World::new();
    let port = silent_remote();
    std::fs::write(
        world.path("leviathan.yaml"),
        format!(
            "git_timeout_seconds: 1\ntargets:\n  - id: silent\n    repository: http://127.0.0.1:{port}/acme/silent.git\n  - id: alpha\n    repository: alpha.git\n    labels: [leviathan]\n"
        ),
    )
    .unwrap();
    let first = world.tick();
    assert!(
        first.contains("silent: skipped: fetch_failed") && first.contains("stopped after 1 s"),
        "{first}"
    );
    assert!(first.contains("alpha: a-docs: PR 1 opened"), "{first}");
    // The host was killed in the middle of a git command on alpha's clone.
    std::fs::write(world.path("data-work/alpha/.git/index.lock"), "").unwrap();
    let second = world.tick();
    let alpha = second
        .lines()
        .find(|l| l.starts_with("alpha: "))
        .unwrap_or_default();
    assert!(
        !alpha.is_empty() && !alpha.contains("fetch_failed"),
        "{second}"
    );
    assert!(!world.path("data-work/alpha/.git/index.lock").exists());
}

#[test]
fn a_target_past_the_clone_bound_is_skipped_and_the_others_served() {
    let world = World::new();
    // 3 MiB of one letter: a pack of a few kilobytes, a checkout of 3 MiB.
    let big = "x".repeat(3 << 20);
    bare_repo(
        world.dir.path(),
        "huge",
        &[
            Seed::Text(".leviathan/backlog.yaml", ALPHA),
            Seed::Text("docs/index.md", "# Index\n"),
            Seed::Text("docs/big.txt", &big),
        ],
    );
    std::fs::write(
        world.path("leviathan.yaml"),
        "max_clone_mib: 1\ntargets:\n  - id: huge\n    repository: huge.git\n  - id: alpha\n    repository: alpha.git\n    labels: [leviathan]\n",
    )
    .unwrap();
    let out = world.tick();
    let huge = out
        .lines()
        .find(|l| l.starts_with("huge: "))
        .unwrap_or_default();
    assert!(
        huge.contains("skipped: fetch_failed") && huge.contains("more than max_clone_mib (1 MiB)"),
        "{out}"
    );
    assert!(!world.path("data-work/huge/docs/big.txt").exists());
    assert!(out.contains("alpha: a-docs: PR 1 opened"), "{out}");
}

#[test]
fn the_clone_of_a_target_taken_out_of_the_configuration_is_removed() {
    let world = World::new();
    world.tick();
    assert!(world.path("data-work/beta/.git").is_dir());
    // Something of the operator's own in the work directory, looking like a clone.
    std::fs::create_dir_all(world.path("data-work/notes/.git")).unwrap();
    std::fs::write(world.path("data-work/notes/todo.md"), "keep me\n").unwrap();
    std::fs::write(
        world.path("leviathan.yaml"),
        "targets:\n  - id: alpha\n    repository: alpha.git\n    labels: [leviathan]\n",
    )
    .unwrap();
    let out = world.tick();
    assert!(!out.contains("beta"), "{out}");
    assert!(
        !world.path("data-work/beta").exists(),
        "the removed target's clone stays"
    );
    assert!(!world.path("data-work/.beta.lock").exists());
    assert!(world.path("data-work/alpha/.git").is_dir());
    assert!(
        world.path("data-work/notes/todo.md").is_file(),
        "not the host's: kept"
    );
    // Back in the configuration, the target is cloned again.
    std::fs::write(
        world.path("leviathan.yaml"),
        "targets:\n  - id: alpha\n    repository: alpha.git\n    labels: [leviathan]\n  - id: beta\n    repository: beta.git\n",
    )
    .unwrap();
    world.tick();
    assert!(world.path("data-work/beta/.git").is_dir());
}

/// The processes (not yet exited) whose command line names `needle`.
fn processes_naming(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let dir = entry.path();
        let Ok(cmdline) = std::fs::read(dir.join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let alive = std::fs::read_to_string(dir.join("stat"))
            .ok()
            .and_then(|stat| Some(!stat.rsplit_once(") ")?.1.starts_with(['Z', 'X'])))
            .unwrap_or(false);
        if alive && cmdline.contains(needle) {
            found.push(cmdline);
        }
    }
    found
}

/// A world whose one target is a silent remote (under the default git deadline of
/// 600 s), and that remote's URL.
fn world_with_a_silent_target() -> (World, String) {
    let world = World::new();
    let url = format!("http://127.0.0.1:{}/acme/silent.git", silent_remote());
    std::fs::write(
        world.path("leviathan.yaml"),
        format!("targets:\n  - id: silent\n    repository: {url}\n"),
    )
    .unwrap();
    (world, url)
}

#[test]
fn ctrl_c_on_tick_stops_its_git_commands_too() {
    let (world, url) = world_with_a_silent_target();
    let tick = world
        .tick_command()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_process_naming(&url);
    // What a terminal's Ctrl-C sends the foreground process (the clone is in a
    // process group of its own).
    let sent = Command::new("kill")
        .args(["-INT", &tick.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = tick.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_no_process_left_naming(&url);
}

#[test]
fn a_clone_a_killed_tick_left_running_is_stopped_when_the_next_pass_starts() {
    let (world, url) = world_with_a_silent_target();
    let mut tick = world
        .tick_command()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let record = world.path("data-work/.silent.running");
    let started = std::time::Instant::now();
    while !std::fs::read_to_string(&record).is_ok_and(|r| r.ends_with('\n')) {
        assert!(
            started.elapsed().as_secs() < 60,
            "the clone was never recorded"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    tick.kill().unwrap(); // SIGKILL: the host runs nothing more
    tick.wait().unwrap();
    assert!(
        !processes_naming(&url).is_empty(),
        "the clone outlived its host, as a killed host's does"
    );
    // The target leaves the configuration: no pass takes its clone again.
    std::fs::write(
        world.path("leviathan.yaml"),
        "targets:\n  - id: alpha\n    repository: alpha.git\n    labels: [leviathan]\n",
    )
    .unwrap();
    let out = world.tick();
    assert!(out.contains("alpha: a-docs: PR 1 opened"), "{out}");
    assert_no_process_left_naming(&url);
    assert!(!record.exists());
}

/// Waits (at most 60 s) until a process names `needle`.
fn wait_for_process_naming(needle: &str) {
    let started = std::time::Instant::now();
    while processes_naming(needle).is_empty() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "no process names {needle}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Waits (at most 10 s) until no process names `needle`; panics naming them otherwise.
fn assert_no_process_left_naming(needle: &str) {
    let started = std::time::Instant::now();
    while !processes_naming(needle).is_empty() && started.elapsed().as_secs() < 10 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        processes_naming(needle),
        Vec::<String>::new(),
        "git outlived the host"
    );
}

#[test]
fn serve_stopped_mid_pass_stops_its_git_commands_at_the_end_of_its_grace() {
    let (world, url) = world_with_a_silent_target();
    let served = Served::start(&world, registry(), &["--shutdown-grace-secs", "1"]);
    wait_for_process_naming(&url);
    assert!(served.stop(), "serve stops cleanly");
    assert_no_process_left_naming(&url);
}

impl Served {
    /// The targets the events name, in order of first appearance.
    fn event_targets(&self) -> Vec<String> {
        let (_, page) = self.call("GET", "/api/v1/events?limit=1000", VIEWER);
        let mut out: Vec<String> = Vec::new();
        for e in page["events"].as_array().unwrap() {
            if let Some(t) = e["target"].as_str()
                && !out.iter().any(|o| o == t)
            {
                out.push(t.to_string());
            }
        }
        out
    }

    /// Polls until `done` holds of the event targets (at most 60 s).
    fn wait_targets(&self, what: &str, done: impl Fn(&[String]) -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !done(&self.event_targets()) {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}: {:?}",
                self.event_targets()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// The value of one metric series in `/metrics`.
    fn metric(&self, series: &str) -> Option<String> {
        let mut response = self
            .agent
            .get(format!("{}/metrics", self.base))
            .call()
            .unwrap();
        let text = response.body_mut().read_to_string().unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ').map(String::from))
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

const ALPHA_ONLY: &str =
    "interval_seconds: 1\ntargets:\n  - id: alpha\n    repository: alpha.git\n";
const ALPHA_AND_BETA: &str = "interval_seconds: 1\ntargets:\n  - id: alpha\n    repository: alpha.git\n  - id: beta\n    repository: beta.git\n";

#[test]
fn serve_reloads_the_targets_when_the_configuration_file_changes() {
    let world = World::new();
    std::fs::write(world.path("leviathan.yaml"), ALPHA_ONLY).unwrap();
    let served = Served::start(&world, registry(), &["--tokens-poll-ms", "100"]);
    served.wait_targets("alpha's first pass", |t| t.iter().any(|t| t == "alpha"));
    std::fs::write(world.path("leviathan.yaml"), ALPHA_AND_BETA).unwrap();
    served.wait_targets("beta, added while serve runs", |t| {
        t.iter().any(|t| t == "beta")
    });
    assert_eq!(
        served.metric("leviathan_config_reload_failing").as_deref(),
        Some("0")
    );
    // A file that does not load, and one that moves the shard count, change nothing.
    std::fs::write(
        world.path("leviathan.yaml"),
        "interval_seconds: 1\ntargets:\n  - id: alpha\n    repository: alpha.git\n    colour: blue\n",
    )
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while served.metric("leviathan_config_reload_failing").as_deref() != Some("1") {
        assert!(
            std::time::Instant::now() < deadline,
            "the broken file was not reported"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // (That the configuration in force stays whole is `LiveConfig`'s unit test.)
    assert!(served.stop());
}

#[test]
fn serve_reloads_the_targets_on_sighup() {
    let world = World::new();
    std::fs::write(world.path("leviathan.yaml"), ALPHA_ONLY).unwrap();
    // Polling off: only the signal can reload here.
    let served = Served::start(&world, registry(), &["--tokens-poll-ms", "0"]);
    served.wait_targets("alpha's first pass", |t| t.iter().any(|t| t == "alpha"));
    std::fs::write(world.path("leviathan.yaml"), ALPHA_AND_BETA).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(
        !served.event_targets().iter().any(|t| t == "beta"),
        "beta served without a reload"
    );
    served.signal("HUP");
    served.wait_targets("beta, after SIGHUP", |t| t.iter().any(|t| t == "beta"));
    assert!(served.stop());
}

#[test]
fn the_operators_own_git_configuration_and_environment_stay_out_of_the_hosts_clones() {
    let world = World::new();
    // A developer's ~/.gitconfig: signed commits, global hooks, CRLF conversion.
    let home = world.path("home");
    let hooks = home.join("hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    let marker = world.path("hook-ran");
    for hook in [
        "post-checkout",
        "pre-commit",
        "post-commit",
        "reference-transaction",
    ] {
        let script = format!("#!/bin/sh\necho {hook} \"$PWD\" >> {}\n", marker.display());
        std::fs::write(hooks.join(hook), script).unwrap();
        let mut mode = std::fs::metadata(hooks.join(hook)).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut mode, 0o755);
        std::fs::set_permissions(hooks.join(hook), mode).unwrap();
    }
    // `git lfs install`'s filters (a script that records where it ran), and a target
    // whose attributes put its Markdown under them.
    let filter = hooks.join("lfs-filter");
    std::fs::write(
        &filter,
        format!(
            "#!/bin/sh\necho lfs-$1 \"$PWD\" >> {}\ncat\n",
            marker.display()
        ),
    )
    .unwrap();
    let mut mode = std::fs::metadata(&filter).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut mode, 0o755);
    std::fs::set_permissions(&filter, mode).unwrap();
    let edit = world.path("alpha-edit");
    git(
        &world.path(""),
        &["clone", "--quiet", "alpha.git", edit.to_str().unwrap()],
    );
    std::fs::write(
        edit.join(".gitattributes"),
        "*.md filter=lfs diff=lfs merge=lfs -text\n",
    )
    .unwrap();
    git(&edit, &["add", ".gitattributes"]);
    git(&edit, &["commit", "--quiet", "-m", "LFS for Markdown"]);
    git(&edit, &["push", "--quiet", "origin", "main"]);
    std::fs::write(
        home.join(".gitconfig"),
        format!(
            "[commit]\n\tgpgSign = true\n[core]\n\thooksPath = {hooks}\n\tautocrlf = true\n[submodule]\n\trecurse = true\n\
             [filter \"lfs\"]\n\tsmudge = {filter} smudge\n\tclean = {filter} clean\n\tprocess = {filter} process\n\trequired = true\n\
             [gc]\n\tautoDetach = true\n",
            hooks = hooks.display(),
            filter = filter.display(),
        ),
    )
    .unwrap();
    let mut tick = world.tick_command();
    tick.env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        // As if started from a git hook or alias of another repository.
        .env("GIT_DIR", world.path("alpha.git"))
        .env("GIT_INDEX_FILE", world.path("stray-index"));
    let text = succeeded(tick);
    assert!(text.contains("alpha: a-docs: PR 1 opened"), "{text}");
    // The push runs the remote's own receive side, which keeps its configuration (a
    // local forge's repository is the operator's); no hook or filter runs in the
    // host's clones.
    let ran = std::fs::read_to_string(&marker).unwrap_or_default();
    assert!(
        !ran.contains("data-work"),
        "the operator's hooks or filters ran in a clone: {ran}"
    );
    assert!(!world.path("stray-index").exists());
}
