//! The event log through the real binary and real sled: append, verify, export,
//! tamper detection, and crash safety under SIGKILL.

use leviathan_events::{EventDraft, EventLog};
use leviathan_tests::host_binary;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

fn events_cmd(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(host_binary())
        .arg("events")
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .expect("leviathan-host runs")
}

fn fill(dir: &Path, n: usize) {
    let log = EventLog::open(dir).expect("open");
    for i in 0..n {
        let mut d = EventDraft::new("attempt.started");
        d.target = Some("demo".into());
        d.task = Some(format!("task-{i}"));
        d.payload = serde_json::json!({"i": i});
        log.append(vec![d]).expect("append");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn cli_appends_exports_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let out = events_cmd(
        dir.path(),
        &[
            "append",
            "--type",
            "operator.note",
            "--target",
            "demo",
            "--payload",
            "{\"a\":1}",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = events_cmd(dir.path(), &["append", "--type", "Bad Type"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("field `type`"));
    let bad = events_cmd(dir.path(), &["append", "--type", "x", "--payload", "{nope"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--payload"));
    let export = events_cmd(dir.path(), &["export", "--format", "ndjson"]);
    let text = String::from_utf8(export.stdout).unwrap();
    assert_eq!(
        text.lines().count(),
        1,
        "the invalid appends stored nothing"
    );
    let event: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(event["seq"], 1);
    assert_eq!(event["type"], "operator.note");
    assert_eq!(event["payload"]["a"], 1);
    let verify = events_cmd(dir.path(), &["verify"]);
    assert_eq!(verify.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&verify.stdout).contains("1 events"));
}

#[test]
fn verify_names_the_first_altered_event_in_a_copied_store() {
    let original = tempfile::tempdir().unwrap();
    fill(original.path(), 10);
    let copy = tempfile::tempdir().unwrap();
    copy_dir(original.path(), copy.path());
    {
        let db = sled::open(copy.path()).unwrap();
        let tree = db.open_tree("events").unwrap();
        let mut key = vec![b'e'];
        key.extend_from_slice(&4u64.to_be_bytes());
        let stored = tree.get(&key).unwrap().expect("event 4 stored");
        let mut event: serde_json::Value = serde_json::from_slice(&stored).unwrap();
        event["payload"]["i"] = serde_json::json!(999);
        tree.insert(key, serde_json::to_vec(&event).unwrap())
            .unwrap();
        db.flush().unwrap();
    }
    let verify = events_cmd(copy.path(), &["verify"]);
    assert_eq!(verify.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&verify.stderr);
    assert!(
        stderr.contains("event 4") && stderr.contains("altered"),
        "{stderr}"
    );
    assert_eq!(
        events_cmd(original.path(), &["verify"]).status.code(),
        Some(0)
    );
}

#[test]
fn sigkill_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..3 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_event-writer"))
            .arg(dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .expect("writer starts");
        let stdout = child.stdout.take().unwrap();
        let mut acked = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(seq) = line.strip_prefix("ack ") {
                acked.push(seq.parse::<u64>().unwrap());
            }
            if acked.len() >= 300 {
                break;
            }
        }
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        let log = EventLog::open(dir.path()).expect("reopens after SIGKILL");
        let count = log
            .verify()
            .unwrap_or_else(|e| panic!("round {round}: chain broken: {e}"));
        for seq in &acked {
            assert!(
                log.get(*seq).unwrap().is_some(),
                "round {round}: acknowledged event {seq} lost"
            );
        }
        assert!(count >= *acked.iter().max().unwrap());
    }
}

#[test]
fn exec_records_started_and_outcome_events() {
    use leviathan_tests::{TestRepo, backlog_with, registry};
    let data = tempfile::tempdir().unwrap();
    let repo = TestRepo::new(
        &format!(
            "{}{}",
            backlog_with("good", "docs", &["docs/"], &["x"]),
            backlog_with("bad", "docs", &["src/"], &["x"]).trim_start_matches("tasks:\n")
        ),
        &[],
    );
    for (task, code) in [("good", 0), ("bad", 3)] {
        let out = Command::new(host_binary())
            .args(["exec", "--json", "--task", task, "--repo"])
            .arg(repo.path())
            .arg("--data-dir")
            .arg(data.path())
            .env("LEVIATHAN_PLUGIN_DIR", registry())
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(code),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let log = EventLog::open(data.path()).unwrap();
    assert_eq!(log.verify(), Ok(4));
    let events = log.after(0, 10).unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "attempt.started",
            "attempt.succeeded",
            "attempt.started",
            "attempt.failed"
        ]
    );
    assert_eq!(events[0].attempt, events[1].attempt);
    assert_ne!(events[1].attempt, events[2].attempt);
    assert_eq!(events[1].payload["executor"], "docs-executor@0.1.0");
    assert_eq!(events[1].payload["files"][0]["path"], "docs/GOOD.md");
    assert!(
        events[1].payload["digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert_eq!(events[3].payload["kind"], "policy-denied");
    let target = events[0].target.clone().unwrap();
    assert_eq!(log.by_task(&target, "bad", 0, 10).unwrap().len(), 2);
}

#[test]
fn import_maps_the_original_store_and_a_bad_line_imports_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("old.ndjson");
    let good = [
        r#"{"event_id":"e1","event_type":"attempt.created","timestamp":"2025-01-02T03:04:05Z","payload":{"target_id":"radix","task_id":"docs-1","attempt_id":"att-1"}}"#,
        r#"{"event_id":"e2","event_type":"attempt.succeeded","payload":{"target_id":"radix","task_id":"docs-1","attempt_id":"att-1","digest":"d"}}"#,
        r#"{"event_id":"e3","event_type":"pr.created","target_id":"radix","task_id":"docs-1","attempt_id":"att-1","payload":{"pr_number":12,"branch_name":"agent/task-exec-attempt-docs-1-1a2b3c4d"}}"#,
        r#"{"event_id":"e4","event_type":"graph.node_added","payload":{"node":"n1"}}"#,
    ];
    std::fs::write(
        &file,
        format!(
            "{}\n{{\"event_type\":\"attempt.failed\"}}\n",
            good.join("\n")
        ),
    )
    .unwrap();
    let out = events_cmd(&data, &["import", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("old.ndjson:5") && err.contains("target_id"),
        "{err}"
    );
    assert_eq!(
        EventLog::open(&data).unwrap().last_seq(),
        0,
        "a refused import appended events"
    );

    std::fs::write(&file, good.join("\n")).unwrap();
    let out = events_cmd(&data, &["import", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "imported 4 events as 1..=4"
    );
    let again = events_cmd(&data, &["import", file.to_str().unwrap()]);
    assert_eq!(
        again.status.code(),
        Some(1),
        "a second import needs --into-nonempty"
    );

    let log = EventLog::open(&data).unwrap();
    assert_eq!(log.verify(), Ok(4));
    let graph = log.projection().unwrap();
    let task = &graph.targets["radix"].tasks["docs-1"];
    assert_eq!(graph.targets["radix"].open_prs, 1);
    assert_eq!(task.prs[0].pr, "12");
    assert_eq!(task.attempts[0].digest.as_deref(), Some("d"));
    let kinds: Vec<String> = log
        .after(0, 10)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            "attempt.started",
            "attempt.succeeded",
            "pr.opened",
            "legacy.graph.node_added"
        ]
    );
}

#[test]
fn tail_follow_prints_events_other_processes_append() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 3);
    let mut follower = Command::new(host_binary())
        .args([
            "events",
            "tail",
            "--last",
            "1",
            "--follow",
            "--poll-ms",
            "100",
            "--data-dir",
        ])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follower.stdout.take().unwrap()).lines();
    let first: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["seq"], 3);
    // The follower lets go of the store between polls, so another process can append.
    let mut appended = None;
    for _ in 0..50 {
        let out = events_cmd(dir.path(), &["append", "--type", "operator.note"]);
        if out.status.success() {
            appended = Some(out);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(appended.is_some(), "the store stayed locked");
    let next: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(
        (next["seq"].as_u64(), next["type"].as_str()),
        (Some(4), Some("operator.note"))
    );
    let _ = follower.kill();
    let _ = follower.wait();
}
