//! `leviathan-host replay`: recorded attempts of every shipped executor run again to
//! identical bytes, from `exec --data-dir` and from a scheduler pass; a changed
//! component, a missing one, a tampered record, a failed attempt and a missing base
//! commit each get their own verdict.

use leviathan_events::EventLog;
use leviathan_tests::{Seed, TestRepo, bare_repo, host_binary, registry, root, variant};
use std::path::Path;
use std::process::{Command, Output};

fn host(args: &[&str]) -> Output {
    Command::new(host_binary())
        .args(args)
        .env("LEVIATHAN_CACHE_DIR", root().join("target/test-cache"))
        .env_remove("LEVIATHAN_CONFIG")
        .env_remove("LEVIATHAN_DATA_DIR")
        .output()
        .expect("leviathan-host runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `exec --data-dir` of one task; the attempt id it recorded.
fn exec_recorded(repo: &TestRepo, task: &str, data: &Path) -> String {
    let before = EventLog::open(data).map(|l| l.last_seq()).unwrap_or(0);
    let out = host(&[
        "exec",
        "--repo",
        &repo.path().display().to_string(),
        "--task",
        task,
        "--plugin-dir",
        &registry().display().to_string(),
        "--data-dir",
        &data.display().to_string(),
    ]);
    let log = EventLog::open(data).unwrap();
    let started = log
        .after(before, 100)
        .unwrap()
        .into_iter()
        .find(|e| e.kind == "attempt.started")
        .unwrap_or_else(|| panic!("{task} recorded: {}", text(&out)));
    started.attempt.unwrap()
}

fn replay(attempt: &str, data: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "replay".to_string(),
        attempt.to_string(),
        "--data-dir".into(),
        data.display().to_string(),
    ];
    if !extra.contains(&"--plugin-dir") {
        args.extend(["--plugin-dir".into(), registry().display().to_string()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    host(&args)
}

const BACKLOG: &str = "tasks:
  - id: d-1
    title: Write the setup guide
    description: How to install and configure.
    scope: docs
    ready: true
    allowed_paths: [docs/]
    acceptance_criteria:
      - Explains setup
  - id: t-1
    title: Stubs for the parser
    scope: tests
    ready: true
    allowed_paths: [tests/]
    acceptance_criteria:
      - Parses an empty list
      - Refuses a tab
  - id: cl-1
    title: Add the API guide
    scope: changelog
    ready: true
    date: 2026-11-24
    allowed_paths: [docs/CHANGELOG.md]
  - id: bad
    title: Two Markdown targets, so the executor refuses
    scope: docs
    ready: true
    allowed_paths: [docs/a.md, docs/b.md]
";

fn worktree() -> TestRepo {
    TestRepo::new(
        BACKLOG,
        &[(
            "docs/CHANGELOG.md",
            "# Changelog\n\n## 2026-01-10\n\n- Older entry (old-1)\n",
        )],
    )
}

/// Back to the committed state, as before the next task.
fn reset(repo: &TestRepo) {
    repo.git(&["checkout", "--quiet", "--", "."]);
    repo.git(&["clean", "--quiet", "-fd"]);
}

#[test]
fn attempts_of_every_shipped_executor_replay_to_identical_bytes() {
    let repo = worktree();
    let data = tempfile::tempdir().unwrap();
    for (task, executor) in [
        ("d-1", "docs-executor@0.1.0"),
        ("t-1", "tests-executor@0.1.0"),
        ("cl-1", "changelog-executor@0.1.0"),
    ] {
        let attempt = exec_recorded(&repo, task, data.path());
        reset(&repo);
        let out = replay(&attempt, data.path(), &["--json"]);
        assert_eq!(out.status.code(), Some(0), "{task}: {}", text(&out));
        let verdict: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(verdict["identical"], true, "{verdict}");
        assert_eq!(verdict["executor"], executor);
        assert!(verdict["files"].as_u64().unwrap() >= 1, "{verdict}");
        assert_eq!(
            verdict["base_commit"],
            repo.git(&["rev-parse", "HEAD"]).trim()
        );
    }
    // The replays wrote nothing into the worktree the attempts ran in.
    assert_eq!(repo.status(), "");
}

#[test]
fn a_scheduler_attempt_replays_on_the_hosts_clone() {
    let dir = tempfile::tempdir().unwrap();
    bare_repo(
        dir.path(),
        "alpha",
        &[
            Seed::Text(".leviathan/backlog.yaml", BACKLOG),
            Seed::Text("docs/CHANGELOG.md", "# Changelog\n"),
        ],
    );
    let config = dir.path().join("leviathan.yaml");
    std::fs::write(
        &config,
        "targets:\n  - id: alpha\n    repository: alpha.git\n",
    )
    .unwrap();
    let (config, data) = (
        config.display().to_string(),
        dir.path().join("data").display().to_string(),
    );
    let registry = registry().display().to_string();
    let out = host(&[
        "tick",
        "--config",
        &config,
        "--data-dir",
        &data,
        "--plugin-dir",
        &registry,
    ]);
    assert!(text(&out).contains("d-1: PR 1 opened"), "{}", text(&out));
    let attempt = EventLog::open(Path::new(&data))
        .unwrap()
        .after(0, 1000)
        .unwrap()
        .into_iter()
        .find(|e| e.kind == "attempt.succeeded")
        .and_then(|e| e.attempt)
        .expect("a succeeded attempt");
    let out = replay(&attempt, Path::new(&data), &["--config", &config]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("identical: 1 file(s)"),
        "{}",
        text(&out)
    );
    // Without a way to find the repository, it says what to pass.
    let out = replay(&attempt, Path::new(&data), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("--config") && text(&out).contains("--repo"),
        "{}",
        text(&out)
    );
}

/// A copy of the test registry to break.
fn registry_copy(into: &Path) {
    for entry in ["docs-executor", "tests-executor", "changelog-executor"] {
        let from = registry().join(entry).join("0.1.0");
        let to = into.join(entry).join("0.1.0");
        std::fs::create_dir_all(&to).unwrap();
        for file in std::fs::read_dir(&from).unwrap() {
            let file = file.unwrap();
            std::fs::copy(file.path(), to.join(file.file_name())).unwrap();
        }
    }
}

#[test]
fn each_reason_a_replay_cannot_match_is_its_own_verdict() {
    let repo = worktree();
    let data = tempfile::tempdir().unwrap();
    let attempt = exec_recorded(&repo, "d-1", data.path());
    reset(&repo);
    let failed = exec_recorded(&repo, "bad", data.path());

    // The component's bytes changed under the same manifest: refused, never run.
    let plugins = tempfile::tempdir().unwrap();
    registry_copy(plugins.path());
    let plugin_dir = plugins.path().display().to_string();
    let wasm = plugins
        .path()
        .join("docs-executor/0.1.0/docs-executor.wasm");
    let bytes = std::fs::read(&wasm).unwrap();
    std::fs::write(&wasm, variant(&bytes, "changed")).unwrap();
    let out = replay(&attempt, data.path(), &["--plugin-dir", &plugin_dir]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("digest mismatch"), "{}", text(&out));

    // The component is gone from the registry.
    std::fs::remove_dir_all(plugins.path().join("docs-executor")).unwrap();
    let out = replay(&attempt, data.path(), &["--plugin-dir", &plugin_dir]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("no longer in the registry") && said.contains("docs-executor@0.1.0"),
        "{said}"
    );

    // A failed attempt has no bytes to compare.
    let out = replay(&failed, data.path(), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("failed (invalid-task)"),
        "{}",
        text(&out)
    );

    // A repository without the base commit.
    let other = TestRepo::new("tasks: []\n", &[("x.md", "other\n")]);
    let out = replay(
        &attempt,
        data.path(),
        &["--repo", &other.path().display().to_string()],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("is not in this repository"),
        "{}",
        text(&out)
    );

    // Untouched, the attempt replays; with its recorded file hash altered in the store,
    // the replay names that file.
    assert_eq!(replay(&attempt, data.path(), &[]).status.code(), Some(0));
    {
        let db = sled::open(data.path()).unwrap();
        let tree = db.open_tree("events").unwrap();
        let mut altered = 0;
        for item in tree.iter() {
            let (key, value) = item.unwrap();
            let Ok(mut event) = serde_json::from_slice::<serde_json::Value>(&value) else {
                continue;
            };
            if event["type"] == "attempt.succeeded" && event["attempt"] == attempt.as_str() {
                event["payload"]["files"][0]["sha256"] = serde_json::json!("0".repeat(64));
                tree.insert(key, serde_json::to_vec(&event).unwrap())
                    .unwrap();
                altered += 1;
            }
        }
        assert_eq!(altered, 1);
        db.flush().unwrap();
    }
    let out = replay(&attempt, data.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("differs: docs/")
            && said.contains(&format!("recorded sha256 {}", "0".repeat(64))),
        "{said}"
    );
}
