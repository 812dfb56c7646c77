//! The `leviathan-host exec` command line: JSON shape and exit codes.

use leviathan_tests::{TestRepo, backlog_with, host_binary, registry};
use serde_json::Value;
use std::process::Output;

fn exec(repo: &TestRepo, task: &str, extra: &[&str]) -> (Output, Value) {
    let out = std::process::Command::new(host_binary())
        .args(["exec", "--json", "--task", task, "--repo"])
        .arg(repo.path())
        .args(extra)
        .env("LEVIATHAN_PLUGIN_DIR", registry())
        .env(
            "LEVIATHAN_CACHE_DIR",
            leviathan_tests::root().join("target/test-artifact-cache"),
        )
        .output()
        .expect("leviathan-host runs");
    let stdout = String::from_utf8(out.stdout.clone()).expect("utf-8 stdout");
    assert_eq!(
        stdout.lines().count(),
        1,
        "stdout must be exactly one JSON object: {stdout}"
    );
    let value: Value = serde_json::from_str(&stdout).expect("stdout is JSON");
    (out, value)
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    k.sort();
    k
}

#[test]
fn success_prints_the_report_and_exits_zero() {
    let repo = TestRepo::new(&backlog_with("docs-x", "docs", &["docs/"], &["a"]), &[]);
    let (out, v) = exec(&repo, "docs-x", &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        keys(&v),
        [
            "denied",
            "digest",
            "executor",
            "files",
            "staged_bytes",
            "task"
        ]
    );
    assert_eq!(v["task"], "docs-x");
    assert_eq!(v["denied"], Value::Array(vec![]), "nothing was refused");
    assert!(v["staged_bytes"].is_u64(), "{v}");
    assert_eq!(v["executor"], "docs-executor@0.1.0");
    let file = &v["files"][0];
    assert_eq!(keys(file), ["bytes", "path", "sha256"]);
    assert_eq!(file["path"], "docs/DOCS_X.md");
    let text = repo.read("docs/DOCS_X.md");
    assert_eq!(file["bytes"], text.len() as u64);
    assert_eq!(
        file["sha256"],
        leviathan_domain::digest::sha256_hex(text.as_bytes())
    );
    assert!(v["digest"].as_str().unwrap().starts_with("sha256:"));
    let (_, again) = exec(&repo, "docs-x", &[]);
    assert_eq!(
        again["files"],
        Value::Array(vec![]),
        "only changed files are listed"
    );
}

fn assert_error(v: &Value, kind: &str, needle: &str) {
    assert_eq!(keys(v), ["error"]);
    assert_eq!(keys(&v["error"]), ["kind", "message"]);
    assert_eq!(v["error"]["kind"], kind, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains(needle),
        "{v}"
    );
}

#[test]
fn invalid_input_exits_two() {
    let repo = TestRepo::new(&backlog_with("a", "docs", &["docs/"], &["x"]), &[]);
    let (out, v) = exec(&repo, "nope", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert_error(&v, "invalid-task", "no task with id `nope`");

    let bad = TestRepo::new(
        "tasks:\n  - id: a\n    ready: yes please\n    allowed_paths: docs/\n",
        &[],
    );
    let (out, v) = exec(&bad, "a", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert_error(&v, "invalid-task", "backlog.yaml");
}

#[test]
fn policy_denial_exits_three() {
    let repo = TestRepo::new(&backlog_with("a", "docs", &["src/"], &["x"]), &[]);
    let (out, v) = exec(&repo, "a", &[]);
    assert_eq!(out.status.code(), Some(3));
    assert_error(&v, "policy-denied", "allowed_path_prefixes");
    assert_eq!(repo.status(), "");
}

#[test]
fn executor_failure_exits_four() {
    let repo = TestRepo::new(&backlog_with("trap", "hostile", &["docs/"], &[]), &[]);
    let (out, v) = exec(&repo, "trap", &[]);
    assert_eq!(out.status.code(), Some(4));
    assert_error(&v, "executor-failed", "trapped");
    assert_eq!(repo.status(), "");
}

#[test]
fn missing_policy_file_is_named() {
    let repo = TestRepo::new(&backlog_with("a", "docs", &["docs/"], &["x"]), &[]);
    let (out, v) = exec(&repo, "a", &["--policy", "/nonexistent/dev.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert_error(&v, "invalid-task", "/nonexistent/dev.yaml");
}
