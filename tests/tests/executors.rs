//! Both real executors, as components in the sandbox, on real git repositories.

use leviathan_sandbox::exec::ErrorKind;
use leviathan_tests::{TestRepo, backlog_with};
use std::process::Command;

#[test]
fn docs_task_writes_markdown_into_the_allowed_directory() {
    let repo = TestRepo::new(
        &backlog_with(
            "docs-guide",
            "docs",
            &["docs/"],
            &["Explains setup", "Lists the commands"],
        ),
        &[("docs/index.md", "# Index\n")],
    );
    let report = repo.exec("docs-guide").expect("docs task runs");
    assert_eq!(report.executor, "docs-executor@0.1.0");
    assert_eq!(report.files.len(), 1);
    assert_eq!(report.files[0].path.as_string(), "docs/DOCS_GUIDE.md");
    let text = repo.read("docs/DOCS_GUIDE.md");
    assert!(text.starts_with("# Task docs-guide\n"), "{text}");
    assert!(
        text.contains("docs-guide")
            && text.contains("Explains setup")
            && text.contains("Lists the commands")
    );
    assert_eq!(report.files[0].bytes, text.len() as u64);
    assert_eq!(
        report.files[0].sha256,
        leviathan_domain::digest::sha256_hex(text.as_bytes())
    );
    assert!(report.digest.starts_with("sha256:") && report.digest.len() == 71);
    assert_eq!(
        repo.read("docs/index.md"),
        "# Index\n",
        "other files untouched"
    );
    assert_eq!(repo.status().trim(), "?? docs/DOCS_GUIDE.md");
}

#[test]
fn second_run_is_idempotent_and_reports_no_files() {
    let repo = TestRepo::new(
        &backlog_with("docs-guide", "docs", &["docs/"], &["One"]),
        &[],
    );
    let first = repo.exec("docs-guide").expect("first run");
    let before = repo.read("docs/DOCS_GUIDE.md");
    let second = repo.exec("docs-guide").expect("second run");
    assert_eq!(first.files.len(), 1);
    assert!(second.files.is_empty(), "{:?}", second.files);
    assert_ne!(first.digest, second.digest);
    assert_eq!(repo.read("docs/DOCS_GUIDE.md"), before);
}

#[test]
fn docs_task_with_one_markdown_path_writes_exactly_that_file() {
    let repo = TestRepo::new(
        &backlog_with(
            "pr-template",
            "docs",
            &["docs/templates/PULL_REQUEST.md"],
            &["PR names the task"],
        ),
        &[],
    );
    let report = repo.exec("pr-template").expect("runs");
    assert_eq!(
        report.files[0].path.as_string(),
        "docs/templates/PULL_REQUEST.md"
    );
    assert!(
        repo.read("docs/templates/PULL_REQUEST.md")
            .contains("- [ ] PR names the task")
    );
}

#[test]
fn docs_task_with_two_markdown_paths_is_invalid_and_writes_nothing() {
    let repo = TestRepo::new(
        &backlog_with("two", "docs", &["docs/a.md", "docs/b.md"], &["x"]),
        &[],
    );
    let err = repo.exec("two").expect_err("ambiguous output");
    assert_eq!(err.kind, ErrorKind::InvalidTask, "{err}");
    assert_eq!(repo.status(), "");
}

#[test]
fn empty_allowed_paths_is_invalid() {
    let repo = TestRepo::new(&backlog_with("none", "docs", &[], &["x"]), &[]);
    let err = repo.exec("none").expect_err("no output path");
    assert_eq!(err.kind, ErrorKind::InvalidTask, "{err}");
}

#[test]
fn tests_task_writes_pending_pytest_stubs_that_pytest_accepts() {
    let criteria = [
        "Rejects a task without an id",
        "Rejects a task without an id",
        "Handles \"quotes\", back\\slashes and 'single' quotes",
        "Ünïcödé — naïve café ✓",
        "!!!",
    ];
    let repo = TestRepo::new(
        &backlog_with("parser-tests", "tests", &["tests/"], &criteria),
        &[],
    );
    let report = repo.exec("parser-tests").expect("tests task runs");
    assert_eq!(report.executor, "tests-executor@0.1.0");
    assert_eq!(
        report.files[0].path.as_string(),
        "tests/test_parser_tests.py"
    );
    let text = repo.read("tests/test_parser_tests.py");
    assert!(text.contains("def test_rejects_a_task_without_an_id("));
    assert!(text.contains("def test_rejects_a_task_without_an_id_2("));
    let out = Command::new("python3")
        .args(["-m", "pytest", "-q", "-rs", "tests/test_parser_tests.py"])
        .current_dir(repo.path())
        .output()
        .expect("python3 runs (cargo xtask test installs pytest)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pytest failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("5 skipped"),
        "every stub must be pending:\n{stdout}"
    );
    assert!(!stdout.contains("passed"), "{stdout}");
}

#[test]
fn scope_test_is_an_alias_for_tests() {
    let repo = TestRepo::new(&backlog_with("alias", "test", &["tests/unit/"], &[]), &[]);
    let report = repo.exec("alias").expect("runs");
    assert_eq!(report.files[0].path.as_string(), "tests/unit/test_alias.py");
    assert!(
        repo.read("tests/unit/test_alias.py")
            .contains("def test_alias(")
    );
}

#[test]
fn unknown_scope_is_invalid_and_names_the_scope() {
    let repo = TestRepo::new(&backlog_with("deploy", "deploy", &["docs/"], &["x"]), &[]);
    let err = repo.exec("deploy").expect_err("no executor");
    assert_eq!(err.kind, ErrorKind::InvalidTask);
    assert!(err.message.contains("scope `deploy`"), "{err}");
}

#[test]
fn unknown_and_not_ready_tasks_are_refused() {
    let backlog = "tasks:\n  - id: later\n    title: Later\n    description: d\n    scope: docs\n    ready: false\n    allowed_paths: [docs/]\n";
    let repo = TestRepo::new(backlog, &[]);
    let err = repo.exec("missing").expect_err("unknown task");
    assert_eq!(err.kind, ErrorKind::InvalidTask);
    assert!(err.message.contains("no task with id `missing`"), "{err}");
    let err = repo.exec("later").expect_err("not ready");
    assert_eq!(err.kind, ErrorKind::InvalidTask);
    assert!(err.message.contains("not `ready: true`"), "{err}");
}

#[test]
fn paths_outside_the_policy_or_escaping_are_denied() {
    for (allowed, needle) in [
        ("src/", "outside the policy's allowed_path_prefixes"),
        ("docs2/", "outside the policy's allowed_path_prefixes"),
        ("docs/../src/", "contains `..`"),
        ("/etc/", "absolute"),
        (".git/hooks/", "`.git`"),
    ] {
        let repo = TestRepo::new(&backlog_with("t", "docs", &[allowed], &["x"]), &[]);
        let err = repo.exec("t").expect_err(allowed);
        assert_eq!(err.kind, ErrorKind::PolicyDenied, "{allowed}: {err}");
        assert!(err.message.contains(needle), "{allowed}: {err}");
        assert!(
            err.message.contains("allowed_paths"),
            "names the field: {err}"
        );
        assert_eq!(repo.status(), "");
    }
}

#[cfg(unix)]
#[test]
fn symlinked_docs_directory_is_refused_not_written_through() {
    let outside = tempfile::tempdir().unwrap();
    let repo = TestRepo::new(&backlog_with("t", "docs", &["docs/"], &["x"]), &[]);
    std::os::unix::fs::symlink(outside.path(), repo.path().join("docs")).unwrap();
    let err = repo.exec("t").expect_err("symlink refused");
    assert_eq!(err.kind, ErrorKind::PolicyDenied, "{err}");
    assert!(err.message.contains("symbolic link"), "{err}");
    assert_eq!(
        std::fs::read_dir(outside.path()).unwrap().count(),
        0,
        "nothing written through the link"
    );
}

#[cfg(unix)]
#[test]
fn symlinked_target_file_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim.md");
    std::fs::write(&victim, "keep me\n").unwrap();
    let repo = TestRepo::new(
        &backlog_with("t", "docs", &["docs/T.md"], &["x"]),
        &[("docs/index.md", "i\n")],
    );
    std::os::unix::fs::symlink(&victim, repo.path().join("docs/T.md")).unwrap();
    let err = repo.exec("t").expect_err("symlinked file refused");
    assert_eq!(err.kind, ErrorKind::PolicyDenied, "{err}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me\n");
}

#[test]
fn malformed_backlog_names_the_file_and_line() {
    let repo = TestRepo::new("tasks:\n  - id: a\n    title: [unclosed\n", &[]);
    let err = repo.exec("a").expect_err("bad yaml");
    assert_eq!(err.kind, ErrorKind::InvalidTask);
    assert!(err.message.contains(".leviathan/backlog.yaml"), "{err}");
    assert!(err.message.contains("line"), "{err}");
}

#[test]
fn policy_file_with_missing_guardrails_takes_defaults_and_bad_fields_are_named() {
    let repo = TestRepo::new(&backlog_with("t", "docs", &["notes/"], &["x"]), &[]);
    let policy = repo.path().join("policy.yaml");
    std::fs::write(&policy, "allowed_path_prefixes: [notes/]\n").unwrap();
    let report = repo
        .exec_with_policy("t", Some(&policy))
        .expect("narrow policy works");
    assert_eq!(report.files[0].path.as_string(), "notes/T.md");
    std::fs::write(
        &policy,
        "allowed_path_prefixes: [notes/]\nmax_open_prs: many\n",
    )
    .unwrap();
    let err = repo
        .exec_with_policy("t", Some(&policy))
        .expect_err("bad policy");
    assert_eq!(err.kind, ErrorKind::InvalidTask);
    assert!(
        err.message.contains("policy.yaml") && err.message.contains("max_open_prs"),
        "{err}"
    );
}

#[test]
fn bytes_written_cap_fails_the_attempt_and_writes_nothing() {
    let repo = TestRepo::new(&backlog_with("t", "docs", &["docs/"], &["x"]), &[]);
    let policy = repo.path().join("../bytes-policy.yaml");
    std::fs::write(&policy, "executor_limits:\n  max_bytes_written: 10\n").unwrap();
    let err = repo
        .exec_with_policy("t", Some(&policy))
        .expect_err("over the byte cap");
    let _ = std::fs::remove_file(&policy);
    assert_eq!(err.kind, ErrorKind::ExecutorFailed, "{err}");
    assert!(
        err.message.contains("at most 10") || err.message.contains("bytes-written limit"),
        "{err}"
    );
    assert_eq!(repo.status(), "");
}

#[test]
fn changelog_task_adds_a_dated_entry_once_and_keeps_the_rest() {
    let backlog = "tasks:\n  - id: cl-1\n    title: Add the API guide\n    scope: changelog\n    ready: true\n    date: 2026-11-24\n    allowed_paths: [docs/]\n  - id: cl-2\n    title: Fix typos\n    scope: changelog\n    ready: true\n    allowed_paths: [docs/CHANGELOG.md]\n";
    let existing =
        "# Changelog\n\nAll notable changes.\n\n## 2026-01-10\n\n- Older entry (old-1)\n";
    let repo = TestRepo::new(backlog, &[("docs/CHANGELOG.md", existing)]);
    let report = repo.exec("cl-1").expect("changelog task runs");
    assert_eq!(report.executor, "changelog-executor@0.1.0");
    assert_eq!(
        repo.read("docs/CHANGELOG.md"),
        "# Changelog\n\nAll notable changes.\n\n## 2026-11-24\n\n- Add the API guide (cl-1)\n\n## 2026-01-10\n\n- Older entry (old-1)\n"
    );
    let again = repo.exec("cl-1").expect("second run");
    assert!(again.files.is_empty(), "idempotent: {:?}", again.files);
    repo.exec("cl-2").expect("undated entry");
    let text = repo.read("docs/CHANGELOG.md");
    assert!(
        text.starts_with("# Changelog\n\nAll notable changes.\n\n## Unreleased\n\n- Fix typos (cl-2)\n\n## 2026-11-24"),
        "{text}"
    );
    assert_eq!(repo.status().trim(), "M docs/CHANGELOG.md");
}

#[test]
fn changelog_task_with_a_bad_date_is_an_invalid_task() {
    let backlog = "tasks:\n  - id: cl-9\n    title: X\n    scope: changelog\n    ready: true\n    date: soon\n    allowed_paths: [docs/]\n";
    let repo = TestRepo::new(backlog, &[]);
    let err = repo.exec("cl-9").expect_err("refused");
    assert_eq!(err.kind, ErrorKind::InvalidTask);
    assert!(err.message.contains("field `date`"), "{}", err.message);
}
