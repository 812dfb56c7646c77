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

/// `line` with a space after every `,` and `:` outside strings, as Python's default
/// `json.dumps` separators write it.
fn respace(line: &str) -> String {
    let (mut out, mut in_string, mut escaped) = (String::new(), false, false);
    for c in line.chars() {
        out.push(c);
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            ',' | ':' if !in_string => out.push(' '),
            _ => {}
        }
    }
    out
}

/// A journal the original's own model wrote (tests/fixtures/original/make_journal.py).
const JOURNAL: &str = include_str!("../fixtures/original/journal.ndjson");
/// Its event count and head hash, as the original computed them.
const JOURNAL_HEAD: &str = include_str!("../fixtures/original/journal.head");

fn journal_head() -> (&'static str, &'static str) {
    JOURNAL_HEAD.trim().split_once(' ').unwrap()
}

fn stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn an_original_journal_imports_whole_and_verify_continues_its_chain() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("events.ndjson");
    std::fs::write(&file, JOURNAL).unwrap();
    let (count, head) = journal_head();

    let out = stdout(&events_cmd(&data, &["import", file.to_str().unwrap()]));
    assert!(out.contains("imported 10 events as 1..=10"), "{out}");
    assert!(
        out.contains(&format!(
            "original chain verified: {count} events, head {head}"
        )),
        "{out}"
    );
    assert!(
        out.contains("task.completed: 1 kept as legacy (no target_id (required for `task.completed`): 1), never acted on"),
        "{out}"
    );
    assert!(
        out.contains("attempt.started: 1 as `attempt.started`, 1 kept as legacy"),
        "{out}"
    );

    let out = stdout(&events_cmd(&data, &["verify"]));
    assert!(out.starts_with("ok: 11 events, hash chain intact"), "{out}");
    assert!(
        out.contains(&format!(
            "events 1..=10 imported from {}: original chain verified up to {head}, then ours",
            file.display()
        )),
        "{out}"
    );

    let again = events_cmd(&data, &["import", file.to_str().unwrap()]);
    assert_eq!(
        again.status.code(),
        Some(1),
        "a second import needs --into-nonempty"
    );

    let log = EventLog::open(&data).unwrap();
    let events = log.after(0, 20).unwrap();
    assert_eq!(
        events.len(),
        11,
        "every event the original stored, then the record"
    );
    assert!(
        events
            .iter()
            .all(|e| e.origin == Some(leviathan_events::Origin::Import))
    );
    let record = &events[10];
    assert_eq!(record.kind, "import.completed");
    assert_eq!(record.payload["original_head"], head);
    // The loose `task.completed` is kept, never acted on: the task is not done, while
    // the imported attempt and PR that carry their references are.
    assert_eq!(events[8].kind, "legacy.task.completed");
    let graph = log.projection().unwrap();
    let task = &graph.targets["radix"].tasks["docs-api"];
    assert_eq!(graph.targets["radix"].open_prs, 1);
    assert_eq!(task.prs[0].pr, "64");
    assert_ne!(
        task.status,
        leviathan_events::projection::TaskStatus::Completed,
        "a legacy event was acted on"
    );
    assert_eq!(
        task.attempts[0].outcome,
        leviathan_events::projection::AttemptOutcome::Succeeded
    );
}

#[test]
fn a_tampered_dropped_or_reordered_journal_imports_nothing_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<&str> = JOURNAL.lines().collect();
    let edit = |n: usize, from: &str, to: &str| {
        let mut l: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
        assert!(l[n].contains(from), "{from}");
        l[n] = l[n].replacen(from, to, 1);
        l.join("\n")
    };
    let without = |n: usize| {
        let mut l = lines.clone();
        l.remove(n);
        l.join("\n")
    };
    let swapped = |a: usize, b: usize| {
        let mut l = lines.clone();
        l.swap(a, b);
        l.join("\n")
    };
    for (name, text, line, id) in [
        (
            "payload",
            edit(2, "\"attempt_number\":1", "\"attempt_number\":2"),
            3,
            "5b0c1d2e-0003",
        ),
        (
            "float",
            edit(1, "\"ratio\":0.1", "\"ratio\":0.2"),
            2,
            "5b0c1d2e-0002",
        ),
        ("non-ASCII", edit(1, "café", "cafe"), 2, "5b0c1d2e-0002"),
        ("timestamp", edit(3, "+05:30", "+05:00"), 4, "5b0c1d2e-0004"),
        (
            "actor",
            edit(8, "\"actor_id\":null", "\"actor_id\":\"x\""),
            9,
            "5b0c1d2e-0009",
        ),
        ("dropped", without(4), 5, "5b0c1d2e-0006"),
        (
            "dropped last but one",
            without(8),
            9,
            "invalidation-attempt-7f3a-1769763609.5",
        ),
        ("swapped", swapped(5, 6), 6, "5b0c1d2e-0007"),
        ("first missing", without(0), 1, "5b0c1d2e-0002"),
    ] {
        let data = dir.path().join(format!("data-{}", name.replace(' ', "-")));
        let file = dir.path().join("journal.ndjson");
        std::fs::write(&file, &text).unwrap();
        let out = events_cmd(&data, &["import", file.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(
            err.contains(&format!("journal.ndjson:{line}: "))
                && err.contains(&format!("event {id}: ")),
            "{name}: {err}"
        );
        assert!(err.contains("--allow-broken-chain"), "{name}: {err}");
        assert_eq!(
            EventLog::open(&data).unwrap().last_seq(),
            0,
            "{name}: a refused import appended events"
        );

        let out = stdout(&events_cmd(
            &data,
            &["import", "--allow-broken-chain", file.to_str().unwrap()],
        ));
        assert!(
            out.contains(&format!("original chain BROKEN at line {line} (event {id}")),
            "{name}: {out}"
        );
        let out = stdout(&events_cmd(&data, &["verify"]));
        assert!(
            out.contains("original chain NOT verified (imported with --allow-broken-chain; first break at line"),
            "{name}: {out}"
        );
        assert!(
            out.contains(&format!(
                "it vouches for its first {} events only",
                line - 1
            )),
            "{name}: {out}"
        );
    }

    // Re-spacing a line is no tampering: the original hashed the values, not the
    // line's text.
    let data = dir.path().join("data-respaced");
    let file = dir.path().join("respaced.ndjson");
    let respaced: Vec<String> = lines.iter().map(|l| respace(l)).collect();
    std::fs::write(&file, respaced.join("\n")).unwrap();
    let out = stdout(&events_cmd(&data, &["import", file.to_str().unwrap()]));
    assert!(out.contains("original chain verified: 10 events"), "{out}");
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
