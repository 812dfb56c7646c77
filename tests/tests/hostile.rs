//! Hostile guests: each attack must fail its attempt cleanly, with the right error
//! kind, leaving the worktree untouched, while the host keeps working.

use leviathan_sandbox::exec::{ErrorKind, ExecFailure};
use leviathan_tests::{TestRepo, backlog_with};

fn attack(mode: &str, allowed: &[&str]) -> (TestRepo, ExecFailure) {
    let repo = TestRepo::new(
        &backlog_with(mode, "hostile", allowed, &[]),
        &[("docs/index.md", "# Index\n")],
    );
    let err = repo.exec(mode).expect_err("the attack must fail");
    assert_eq!(
        repo.status(),
        "",
        "{mode}: the worktree must be untouched ({err})"
    );
    assert_eq!(repo.read("docs/index.md"), "# Index\n");
    (repo, err)
}

fn assert_failure(err: &ExecFailure, kind: ErrorKind, needle: &str) {
    assert_eq!(err.kind, kind, "{err}");
    assert!(
        err.message.contains(needle),
        "expected `{needle}` in: {err}"
    );
}

/// After an attack, the same host still runs an ordinary docs task.
fn a_normal_task_still_runs() {
    let repo = TestRepo::new(
        &backlog_with("after", "docs", &["docs/"], &["still works"]),
        &[],
    );
    let report = repo
        .exec("after")
        .expect("a normal task still runs in the same host");
    assert_eq!(report.files.len(), 1);
}

#[test]
fn infinite_loop_runs_out_of_fuel() {
    let (_, err) = attack("loop", &["docs/"]);
    assert_failure(&err, ErrorKind::ExecutorFailed, "fuel limit");
    let used = err.stats.expect("the executor ran");
    let fuel = leviathan_domain::policy::Policy::default_policy()
        .limits
        .fuel;
    assert!(used.fuel_used >= fuel - 100_000, "all the fuel: {used:?}");
}

#[test]
fn wall_clock_timeout_stops_a_loop_when_fuel_would_not() {
    let repo = TestRepo::new(&backlog_with("loop", "hostile", &["docs/"], &[]), &[]);
    let policy = repo.path().join("../timeout-policy.yaml");
    std::fs::write(
        &policy,
        "attempt_timeout_seconds: 1\nexecutor_limits:\n  fuel: 1000000000000000\n",
    )
    .unwrap();
    let err = repo
        .exec_with_policy("loop", Some(&policy))
        .expect_err("times out");
    let _ = std::fs::remove_file(&policy);
    assert_failure(&err, ErrorKind::ExecutorFailed, "wall-clock timeout");
}

#[test]
fn unbounded_memory_growth_hits_the_memory_limit() {
    let (_, err) = attack("grow", &["docs/"]);
    assert_failure(&err, ErrorKind::ExecutorFailed, "memory limit");
    // What the run used comes with the failure (the console shows it).
    let used = err.stats.expect("the executor ran");
    let cap = leviathan_domain::policy::Policy::default_policy()
        .limits
        .memory_bytes;
    assert!(used.memory_peak > 0 && used.memory_peak <= cap, "{used:?}");
    assert!(used.fuel_used > 0, "{used:?}");
}

#[test]
fn writes_outside_the_grant_are_refused_by_the_sandbox() {
    let (repo, err) = attack("outside", &["docs/"]);
    assert_failure(&err, ErrorKind::PolicyDenied, "every attempt was refused");
    assert!(!repo.path().join("src").exists());
    assert!(!repo.path().parent().unwrap().join("evil.txt").exists());
}

#[test]
fn the_sdk_refuses_a_path_no_mount_holds() {
    let (repo, err) = attack("unmounted", &["docs/"]);
    assert_failure(
        &err,
        ErrorKind::PolicyDenied,
        "no directory the sandbox mounted holds `src/evil.rs`",
    );
    assert!(!repo.path().join("src").exists());
}

#[test]
fn a_write_beside_an_allowed_file_fails_at_the_call() {
    let (repo, err) = attack("sibling", &["docs/allowed.md"]);
    // The guest's own error is the sandbox's refusal (not-permitted), and the host
    // names the rule and the path.
    assert_failure(&err, ErrorKind::PolicyDenied, "write /out/docs/other.md");
    assert_failure(
        &err,
        ErrorKind::PolicyDenied,
        "refused to write `docs/other.md`: outside the task's allowed paths (rule allowed_paths)",
    );
    assert_eq!(err.denials.len(), 1, "{:?}", err.denials);
    assert_eq!(err.denials[0].path, "docs/other.md");
    assert!(!repo.path().join("docs/other.md").exists());
}

#[test]
fn every_kind_of_change_beside_an_allowed_file_is_refused_at_the_call() {
    let repo = TestRepo::new(
        &backlog_with("probe", "hostile", &["docs/guide.md"], &[]),
        &[("docs/index.md", "# Index\n")],
    );
    let report = repo
        .exec("probe")
        .expect("the guest carries on after the refusals");
    assert!(!report.summary.contains("ESCAPED"), "{}", report.summary);
    // Each refusal reached the guest as permission-denied (not-permitted).
    assert_eq!(
        report.summary.matches("PermissionDenied").count(),
        4,
        "{}",
        report.summary
    );
    let refused: Vec<(String, &str, &str)> = report
        .denials
        .iter()
        .map(|d| (d.path.clone(), d.action.as_str(), d.rule.as_str()))
        .collect();
    assert_eq!(
        refused,
        vec![
            ("docs/other.md".to_string(), "write", "allowed_paths"),
            ("docs/sub".to_string(), "create directory", "allowed_paths"),
            (
                "docs/link.md".to_string(),
                "create a hard link at",
                "no_links"
            ),
            ("docs/moved.md".to_string(), "rename onto", "allowed_paths"),
        ]
    );
    // Only the allowed file changed in the worktree.
    assert_eq!(
        report
            .files
            .iter()
            .map(|f| f.path.as_string())
            .collect::<Vec<_>>(),
        ["docs/guide.md"]
    );
    for absent in ["docs/other.md", "docs/sub", "docs/link.md", "docs/moved.md"] {
        assert!(!repo.path().join(absent).exists(), "{absent}");
    }
}

#[test]
fn dot_dot_paths_cannot_escape() {
    let (repo, err) = attack("dotdot", &["docs/"]);
    assert_failure(&err, ErrorKind::PolicyDenied, "every attempt was refused");
    // Exclusive creates (the sandbox's short path for new files) are refused alike.
    assert_failure(
        &err,
        ErrorKind::PolicyDenied,
        "create /out/docs/../../../escape.md",
    );
    assert!(!repo.path().parent().unwrap().join("escape.md").exists());
}

#[test]
fn git_directory_is_not_visible() {
    let (_, err) = attack("git", &["docs/"]);
    assert_failure(&err, ErrorKind::PolicyDenied, "every attempt was refused");
}

#[test]
fn symlinks_made_by_the_guest_never_reach_the_worktree() {
    let (repo, err) = attack("symlink", &["docs/"]);
    assert_eq!(err.kind, ErrorKind::PolicyDenied, "{err}");
    for link in ["abs-link.md", "rel-link.md", "inside-link.md"] {
        assert!(
            std::fs::symlink_metadata(repo.path().join("docs").join(link)).is_err(),
            "{link}"
        );
    }
}

#[test]
fn flooding_files_hits_the_write_cap() {
    let (repo, err) = attack("flood", &["docs/"]);
    assert_eq!(err.kind, ErrorKind::ExecutorFailed, "{err}");
    assert!(
        err.message.contains("files-written limit") || err.message.contains("at most 64"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(repo.path().join("docs")).unwrap().count(),
        1
    );
}

#[test]
fn running_out_of_stack_traps_the_run_and_the_host_keeps_working() {
    // Executors are built with a 64 KiB stack: recursion past it must trap the run
    // (the stack pointer leaves the linear memory), never overwrite the guest's data.
    let (_, err) = attack("recurse", &["docs/"]);
    assert_failure(&err, ErrorKind::ExecutorFailed, "trapped");
    assert!(err.message.contains("out of bounds memory access"), "{err}");
    a_normal_task_still_runs();
}

#[test]
fn panic_and_exit_fail_cleanly_and_the_host_keeps_working() {
    let (_, err) = attack("trap", &["docs/"]);
    assert_failure(&err, ErrorKind::ExecutorFailed, "trapped");
    assert!(
        err.message.contains("hostile guest panics on purpose"),
        "stderr is surfaced: {err}"
    );
    let (_, err) = attack("exit", &["docs/"]);
    assert_failure(&err, ErrorKind::ExecutorFailed, "exited with status 1"); // WASI 0.2 exit carries only ok/err
    a_normal_task_still_runs();
}

#[test]
fn a_component_importing_sockets_does_not_load() {
    leviathan_tests::registry();
    let wasm = std::fs::read(
        leviathan_tests::root().join("target/wasm32-wasip2/release/network_guest.wasm"),
    )
    .expect("network guest built by the test set-up");
    let err = match leviathan_tests::sandbox().load("network-guest", &wasm) {
        Ok(_) => panic!("a component importing wasi:sockets must not load"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("wasi:sockets"), "{err}");
}

/// What the `peek` guest saw of README.md, src/secret.rs and docs/index.md, under a
/// registry whose hostile-guest manifest has `reads` and a policy of `policy_yaml`.
fn peek(reads: &[&str], policy_yaml: &str) -> (String, Vec<String>) {
    use leviathan_sandbox::exec::{ExecRequest, exec};
    let repo = TestRepo::new(
        &backlog_with("peek", "hostile", &["docs/"], &[]),
        &[
            ("docs/index.md", "# Index\n"),
            ("README.md", "readme\n"),
            ("src/secret.rs", "// secret\n"),
        ],
    );
    let plugins = tempfile::tempdir().unwrap();
    let entry = plugins.path().join("hostile-guest/0.1.0");
    std::fs::create_dir_all(&entry).unwrap();
    let installed = leviathan_tests::registry().join("hostile-guest/0.1.0");
    std::fs::copy(
        installed.join("hostile-guest.wasm"),
        entry.join("hostile-guest.wasm"),
    )
    .unwrap();
    let mut manifest = std::fs::read_to_string(installed.join("plugin.toml")).unwrap();
    if !reads.is_empty() {
        let list: Vec<String> = reads.iter().map(|r| format!("{r:?}")).collect();
        manifest.push_str(&format!("reads = [{}]\n", list.join(", ")));
    }
    std::fs::write(entry.join("plugin.toml"), manifest).unwrap();
    let policy = plugins.path().join("policy.yaml");
    std::fs::write(&policy, policy_yaml).unwrap();
    let request = ExecRequest {
        repo: repo.path().to_path_buf(),
        task_id: "peek".into(),
        policy: Some(policy),
        registry_dir: plugins.path().to_path_buf(),
    };
    let report = exec(leviathan_tests::sandbox(), &request).expect("peek runs");
    (repo.read("docs/peek.md"), report.record.read_paths)
}

#[test]
fn an_executor_sees_only_its_read_scope_and_its_allowed_paths() {
    let seen = |readme: &str, secret: &str| {
        format!("README.md: {readme}\nsrc/secret.rs: {secret}\ndocs/index.md: visible\n")
    };
    // Nothing beyond the allowed paths by default.
    assert_eq!(peek(&[], "{}\n"), (seen("absent", "absent"), vec![]));
    // What the manifest asks for.
    assert_eq!(
        peek(&["README.md"], "{}\n"),
        (seen("visible", "absent"), vec!["README.md".to_string()])
    );
    // Narrowed by the policy, and recorded as narrowed.
    assert_eq!(
        peek(&["README.md", "src/"], "plugins:\n  read_paths: [src/]\n"),
        (seen("absent", "visible"), vec!["src/".to_string()])
    );
}
