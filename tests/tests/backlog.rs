//! `leviathan-host backlog validate` through the binary: a clean backlog passes; every
//! problem of a broken one is named by file, task and field, with exit status 1.

use leviathan_tests::{TestRepo, host_binary, registry};
use std::process::Output;

fn validate(repo: &TestRepo, extra: &[&str]) -> Output {
    std::process::Command::new(host_binary())
        .args(["backlog", "validate", "--repo"])
        .arg(repo.path())
        .arg("--plugin-dir")
        .arg(registry())
        .args(extra)
        .output()
        .unwrap()
}

/// Each problem of a `--json` report as (task, field, message), "" for a null.
fn task_field_message(report: &serde_json::Value) -> Vec<(String, String, String)> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["task"].as_str().unwrap_or("").to_string(),
                p["field"].as_str().unwrap_or("").to_string(),
                p["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn task(id: &str, scope: &str, deps: &str, paths: &str) -> String {
    format!(
        "  - id: {id}\n    title: Task {id}\n    scope: {scope}\n    ready: true\n    dependencies: [{deps}]\n    allowed_paths: [{paths}]\n"
    )
}

#[test]
fn a_clean_backlog_passes_and_each_problem_is_named() {
    let clean = format!(
        "tasks:   # the team's backlog\n{}{}",
        task("a", "docs", "", "docs/"),
        task("b", "tests", "a", "tests/")
    );
    let out = validate(&TestRepo::new(&clean, &[]), &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok, 2 task(s)"));

    let broken = format!(
        "tasks:\n{}{}{}{}",
        task("a", "docs", "b, ghost", "docs/"),
        task("b", "docs", "a", "docs/"),
        task("c", "poetry", "", "docs/"),
        task("d", "docs", "", "src/"),
    );
    let repo = TestRepo::new(&broken, &[]);
    let out = validate(&repo, &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems = task_field_message(&report);
    let has = |task: &str, field: &str, words: &str| {
        problems
            .iter()
            .any(|(t, f, m)| t == task && f == field && m.contains(words))
    };
    assert!(
        has("a", "dependencies", "`ghost` is not a task"),
        "{problems:?}"
    );
    assert!(has("a", "dependencies", "a → b → a"), "{problems:?}");
    assert!(
        has("c", "scope", "no executor plugin handles scope `poetry`"),
        "{problems:?}"
    );
    assert!(
        has("d", "allowed_paths", "outside the policy"),
        "{problems:?}"
    );
    assert_eq!(problems.len(), 4, "{problems:?}");
    assert!(
        report["file"]
            .as_str()
            .unwrap()
            .ends_with(".leviathan/backlog.yaml")
    );

    // A policy that allows `src/` clears that one.
    let policy = repo.path().join("policy.yaml");
    std::fs::write(&policy, "allowed_path_prefixes: [docs/, src/]\n").unwrap();
    let out = validate(&repo, &["--policy", &policy.display().to_string()]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!text.contains("task `d`"), "{text}");
    assert!(text.contains("3 problem(s)"), "{text}");

    // A backlog the host could not record completions in is one problem, with its line.
    let flow = TestRepo::new(
        "tasks:\n  - id: a\n    title: A\n    scope: docs\n    ready: true\n    status: >\n      pending\n",
        &[],
    );
    let out = validate(&flow, &[]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("line 6") && text.contains("task `a`"),
        "{text}"
    );
}

#[test]
fn a_misspelt_field_that_would_have_no_effect_is_named_with_the_field_meant() {
    // `dependecies` would be kept as an executor parameter and the task would run
    // before `b`; `max_open_pr` would leave the default in force. An executor's own
    // parameter (`changelog_section`) and the original's extra policy fields
    // (`target_id`) are not typos.
    let text = format!(
        "tasks:\n{}    dependecies: [b]\n    changelog_section: Added\n{}",
        task("a", "docs", "", "docs/"),
        task("b", "docs", "", "docs/")
    );
    let repo = TestRepo::new(&text, &[]);
    let policy = repo.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "max_open_pr: 3\ntarget_id: radix\nallowed_path_prefixes: [docs/]\n",
    )
    .unwrap();
    let out = validate(
        &repo,
        &["--json", "--policy", &policy.display().to_string()],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let named: Vec<(String, String, String)> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["file"]
                    .as_str()
                    .unwrap_or("")
                    .rsplit('/')
                    .next()
                    .unwrap_or("")
                    .to_string(),
                p["task"].as_str().unwrap_or("").to_string(),
                p["field"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        named,
        vec![
            (
                "policy.yaml".to_string(),
                String::new(),
                "max_open_pr".to_string()
            ),
            (
                "backlog.yaml".to_string(),
                "a".to_string(),
                "dependecies".to_string()
            ),
        ],
        "{report}"
    );
    for problem in report["problems"].as_array().unwrap() {
        let message = problem["message"].as_str().unwrap();
        assert!(message.contains("did you mean"), "{message}");
    }
    assert!(
        report["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("`max_open_prs`")
    );
    assert!(
        report["problems"][1]["message"]
            .as_str()
            .unwrap()
            .contains("`dependencies`")
    );
}

#[test]
fn without_policy_the_repository_s_own_policy_is_the_one_checked_under() {
    // The policy a discovered target runs under: it allows `src/`, the built-in does not.
    let text = task("a", "docs", "", "src/");
    let backlog = format!("tasks:\n{text}");
    let own = TestRepo::new(
        &backlog,
        &[(".leviathan/policy.yaml", "allowed_path_prefixes: [src/]\n")],
    );
    let out = validate(&own, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout.contains(".leviathan/policy.yaml"), "{stdout}");

    let none = TestRepo::new(&backlog, &[]);
    let out = validate(&none, &["--json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["policy"].as_str().unwrap().contains("built-in"),
        "{report}"
    );

    // The repository's policy is checked too: a misspelt field is named in its file.
    let typo = TestRepo::new(
        &backlog,
        &[(
            ".leviathan/policy.yaml",
            "allowed_path_prefixes: [src/]\nmax_attempts_per_tsk: 1\n",
        )],
    );
    let out = validate(&typo, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr.contains(".leviathan/policy.yaml: field `max_attempts_per_tsk`")
            && stderr.contains("`max_attempts_per_task`"),
        "{stderr}"
    );
}

#[test]
fn every_task_the_backlog_cannot_read_is_named_at_once_by_task_and_field() {
    // One task with two wrong fields, one with a wrong title, one without an id, a
    // duplicate of the first (broken) task's id, and a readable task with its own
    // problem after them: each is reported, none hides the next.
    let text = format!(
        "tasks:\n{}{}{}{}{}",
        "  - id: a\n    title: A\n    scope: docs\n    ready: \"true\"\n    labels: {x: 1}\n    dependencies: [b]\n",
        "  - id: b\n    title: [B]\n    scope: docs\n",
        "  - title: no id\n    scope: docs\n",
        "  - id: a\n    title: again\n    scope: docs\n",
        task("d", "docs", "a, b, ghost", "src/"),
    );
    let repo = TestRepo::new(&text, &[]);
    let out = validate(&repo, &["--json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let named = task_field_message(&report);
    let fields: Vec<(&str, &str)> = named
        .iter()
        .map(|(t, f, _)| (t.as_str(), f.as_str()))
        .collect();
    assert_eq!(
        fields,
        vec![
            ("a", "ready"),
            ("a", "labels"),
            ("b", "title"),
            ("", "id"),
            ("a", "id"),
            // `a` and `b` are in the backlog though unreadable: only `ghost` is missing.
            ("d", "dependencies"),
            ("d", "allowed_paths"),
        ],
        "{report}"
    );
    assert!(named[0].2.contains("expected true or false") && named[0].2.contains("task #1"));
    assert!(named[3].2.contains("is required") && named[3].2.contains("task #3"));
    assert!(named[4].2.contains("duplicate task id") && named[4].2.contains("task #4"));
    assert!(named[5].2.contains("`ghost`"), "{}", named[5].2);
    assert_eq!(report["tasks"], 5, "{report}");

    // Without a readable plugin registry the rest is still checked, and the report
    // says the executors were not.
    let out = std::process::Command::new(host_binary())
        .args(["backlog", "validate", "--json", "--repo"])
        .arg(repo.path())
        .arg("--plugin-dir")
        .arg(repo.path().join("no-registry"))
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems = report["problems"].as_array().unwrap();
    assert!(
        problems[0]["message"]
            .as_str()
            .unwrap()
            .contains("no task's executor was checked"),
        "{report}"
    );
    assert_eq!(problems.len(), 8, "{report}");
}

#[test]
fn a_policy_the_host_cannot_read_is_named_by_its_field() {
    let repo = TestRepo::new(&format!("tasks:\n{}", task("a", "docs", "", "docs/")), &[]);
    for (text, field, words) in [
        (
            "max_open_prs: three\n",
            "max_open_prs",
            "non-negative integer",
        ),
        (
            "plugins:\n  trusted_keys: [nothex]\n",
            "plugins.trusted_keys",
            "item 1",
        ),
    ] {
        let policy = repo.path().join("policy.yaml");
        std::fs::write(&policy, text).unwrap();
        let out = validate(
            &repo,
            &["--json", "--policy", &policy.display().to_string()],
        );
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let problem = &report["problems"][0];
        assert_eq!(problem["field"], field, "{report}");
        assert!(
            problem["message"].as_str().unwrap().contains(words),
            "{report}"
        );
        assert!(report["policy"].as_str().unwrap().ends_with("policy.yaml"));
    }
}
