//! The event log through the real binary and real sled: append, verify, export,
//! tamper detection, and crash safety under SIGKILL.

use leviathan_host::events::{EventDraft, EventLog};
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
