//! The control-plane API: the real `leviathan-host serve` on 127.0.0.1 with real sled,
//! driven by a real HTTP client.

use leviathan_tests::serve::{OPERATOR, Server, VIEWER, write_tokens};
use leviathan_tests::{component, host_binary, registry, variant};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

#[test]
fn auth_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry().display().to_string();
    let server = Server::start(dir.path(), &["--plugin-dir", &registry], &[]);
    let event = r#"{"type": "operator.note"}"#;

    let (status, body) = server.get("/api/v1/graph", None);
    assert_eq!((status, error_code(&body)), (401, "unauthorized"));
    let (status, body) = server.get("/api/v1/graph", Some("not-a-token-at-all"));
    assert_eq!((status, error_code(&body)), (401, "unauthorized"));
    let (status, _) = server.post("/api/v1/events", None, event);
    assert_eq!(status, 401);

    assert_eq!(server.get("/api/v1/graph", Some(VIEWER)).0, 200);
    assert_eq!(server.get("/api/v1/events", Some(VIEWER)).0, 200);
    let (status, body) = server.post("/api/v1/events", Some(VIEWER), event);
    assert_eq!((status, error_code(&body)), (403, "forbidden"));
    assert_eq!(
        server.post("/api/v1/autonomy/pause", Some(VIEWER), "").0,
        403
    );

    let (status, body) = server.post("/api/v1/events", Some(OPERATOR), event);
    assert_eq!(status, 201, "{body}");
    assert!(body["events"][0]["seq"].as_u64().unwrap() >= 1);
    assert_eq!(body["events"][0]["type"], "client.operator.note");
    assert_eq!(body["events"][0]["hash"].as_str().unwrap().len(), 64);
    assert_eq!(server.get("/api/v1/graph", Some(OPERATOR)).0, 200);

    for open in ["/healthz", "/metrics"] {
        assert_eq!(server.get(open, None).0, 200, "{open}");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.get("/readyz", None).0 != 200 {
        assert!(Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Without a token, readiness gives counts; the entries need a viewer.
    let (_, ready) = server.get("/readyz", None);
    assert!(ready["plugins"]["loaded"].as_u64().unwrap() >= 2, "{ready}");
    assert!(!ready.to_string().contains("docs-executor"), "{ready}");
    let (status, plugins) = server.get("/api/v1/plugins", Some(VIEWER));
    assert_eq!(status, 200);
    let loaded = plugins["loaded"].as_array().unwrap();
    for plugin in ["docs-executor@0.1.0", "tests-executor@0.1.0"] {
        assert!(loaded.iter().any(|p| p["plugin"] == plugin), "{plugins}");
    }
    assert!(!server.log().contains(OPERATOR), "a token was logged");
}

#[test]
fn malformed_requests_get_400_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--body-limit", "2048"], &[]);
    let post = |body: &str| server.post("/api/v1/events", Some(OPERATOR), body);

    let (status, body) = post("{not json");
    assert_eq!((status, error_code(&body)), (400, "bad_request"));
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 1"),
        "{body}"
    );
    let (status, body) = post(r#"[{"type": "a"}, {"type": 7}]"#);
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("[1].type"))
    );
    let (status, body) = post(r#"{"type": "a", "colour": "red"}"#);
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("colour"))
    );
    let (status, body) = post(r#"{"type": "Bad Type"}"#);
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("[0].type"))
    );
    let (status, body) = post(r#"{"type": "pr.opened", "target": "t", "task": "k"}"#);
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (403, Some("type")),
        "the host's own types are not the clients' to write: {body}"
    );
    let (status, body) = post(&format!(
        r#"{{"type": "a", "payload": "{}"}}"#,
        "x".repeat(4096)
    ));
    assert_eq!(
        (status, error_code(&body)),
        (413, "payload_too_large"),
        "{body}"
    );

    let (status, body) = server.get("/api/v1/events?limit=ten", Some(VIEWER));
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("limit"))
    );
    let (status, body) = server.get("/api/v1/events?limit=5000", Some(VIEWER));
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("limit"))
    );
    let (status, body) = server.get("/api/v1/events?task=k", Some(VIEWER));
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("task"))
    );
    let (status, body) = server.post("/api/v1/autonomy/pause", Some(OPERATOR), r#"{"target": 1}"#);
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("target"))
    );
    let (status, body) = server.get("/api/v1/targets/nope", Some(VIEWER));
    assert_eq!((status, error_code(&body)), (404, "not_found"));
    // A method the path does not take, and a request the server's state refuses, in
    // the same error shape, each with its own code.
    let (status, body) = server.post("/api/v1/targets", Some(OPERATOR), "{}");
    assert_eq!(
        (status, error_code(&body)),
        (405, "method_not_allowed"),
        "{body}"
    );
    let (status, body) = server.post("/api/v1/targets/t/prs/1/merge", Some(OPERATOR), "");
    assert_eq!((status, error_code(&body)), (409, "conflict"), "{body}");

    // Nothing of the refused requests reached the log.
    let (_, page) = server.get("/api/v1/events", Some(VIEWER));
    assert_eq!(page["events"].as_array().unwrap().len(), 0, "{page}");
}

#[test]
fn paging_through_events_and_by_target() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[], &[]);
    let batch: Vec<Value> = (0..250)
        .map(|i| {
            json!({"type": "note", "target": if i % 2 == 0 { "even" } else { "odd" },
                   "task": format!("t{i}"), "payload": {"i": i}})
        })
        .collect();
    let (status, body) = server.post("/api/v1/events", Some(OPERATOR), &json!(batch).to_string());
    assert_eq!(status, 201);
    assert_eq!(body["events"].as_array().unwrap().len(), 250);

    let mut after = 0;
    let mut seen = Vec::new();
    loop {
        let (status, page) = server.get(
            &format!("/api/v1/events?after={after}&limit=100"),
            Some(VIEWER),
        );
        assert_eq!(status, 200);
        let events = page["events"].as_array().unwrap();
        seen.extend(events.iter().map(|e| e["seq"].as_u64().unwrap()));
        after = page["next_after"].as_u64().unwrap();
        if !page["more"].as_bool().unwrap() {
            break;
        }
    }
    assert_eq!(seen, (1..=250).collect::<Vec<u64>>());

    let (_, page) = server.get(
        "/api/v1/events?target=odd&after=100&limit=1000",
        Some(VIEWER),
    );
    let odd: Vec<u64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        odd,
        (101..=250).filter(|s| s % 2 == 0).collect::<Vec<u64>>()
    );
    let (_, page) = server.get("/api/v1/events?target=even&task=t4", Some(VIEWER));
    assert_eq!(page["events"][0]["seq"], 5);
    assert_eq!(page["events"].as_array().unwrap().len(), 1);
}

/// Reads SSE frames (`id`, `event`) until `count` events arrived.
fn read_sse(reader: &mut impl BufRead, count: usize) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let (mut id, mut kind) = (None, None);
    let mut line = String::new();
    while out.len() < count {
        line.clear();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "stream ended early"
        );
        let line = line.trim_end();
        if let Some(v) = line
            .strip_prefix("id: ")
            .or_else(|| line.strip_prefix("id:"))
        {
            id = v.trim().parse().ok();
        } else if let Some(v) = line
            .strip_prefix("event: ")
            .or_else(|| line.strip_prefix("event:"))
        {
            kind = Some(v.trim().to_string());
        } else if line.is_empty()
            && let (Some(i), Some(k)) = (id.take(), kind.take())
        {
            out.push((i, k));
        }
    }
    out
}

fn open_stream(server: &Server, query: &str, last_event_id: Option<u64>) -> impl BufRead + use<> {
    let mut request = server
        .agent
        .get(format!("{}/api/v1/events/stream{query}", server.base))
        .header("Authorization", format!("Bearer {VIEWER}"));
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id.to_string());
    }
    let response = request.call().unwrap();
    assert_eq!(response.status().as_u16(), 200);
    BufReader::new(response.into_body().into_reader())
}

#[test]
fn sse_delivers_live_and_resumes_with_last_event_id() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[], &[]);
    let note = |i: u32| json!({"type": "operator.note", "payload": {"i": i}}).to_string();
    for i in 0..3 {
        assert_eq!(
            server.post("/api/v1/events", Some(OPERATOR), &note(i)).0,
            201
        );
    }
    // From the start: the three stored events, then one appended while connected.
    let mut stream = open_stream(&server, "?after=0", None);
    assert_eq!(
        read_sse(&mut stream, 3),
        [1, 2, 3].map(|i| (i, "client.operator.note".to_string()))
    );
    let live = std::thread::scope(|s| {
        let reader = s.spawn(|| read_sse(&mut stream, 1));
        std::thread::sleep(Duration::from_millis(200));
        let pause = server.post("/api/v1/autonomy/pause", Some(OPERATOR), "");
        assert_eq!(pause.0, 200);
        reader.join().unwrap()
    });
    assert_eq!(live, [(4, "autonomy.paused".to_string())]);
    drop(stream);

    // A client that saw up to 2 reconnects and gets 3 and 4, then new ones.
    for i in 3..5 {
        server.post("/api/v1/events", Some(OPERATOR), &note(i));
    }
    let mut resumed = open_stream(&server, "?after=0", Some(2));
    let ids: Vec<u64> = read_sse(&mut resumed, 4).iter().map(|(i, _)| *i).collect();
    assert_eq!(ids, [3, 4, 5, 6], "Last-Event-ID overrides ?after");

    // A target filter only passes that target's events.
    let mut filtered = open_stream(&server, "?after=0&target=t1", None);
    server.post(
        "/api/v1/events",
        Some(OPERATOR),
        r#"[{"type":"tick"},{"type":"picked","target":"t1","task":"k"}]"#,
    );
    assert_eq!(
        read_sse(&mut filtered, 1),
        [(8, "client.picked".to_string())]
    );
    drop((resumed, filtered));

    // An open stream does not hold up shutdown.
    let _held = open_stream(&server, "", None);
    assert!(server.stop().success());
}

/// Appends the host's own events to `<dir>/data` as the scheduler would (clients
/// cannot write these types), before a server opens the store.
fn seed_log(dir: &Path, events: &Value) {
    let drafts: Vec<leviathan_events::EventDraft> =
        serde_json::from_value(events.clone()).expect("drafts");
    let log = leviathan_events::EventLog::open(&dir.join("data")).expect("store opens");
    log.append(drafts).expect("seeded");
}

#[test]
fn projection_after_restart_equals_the_one_before_and_operator_actions() {
    let dir = tempfile::tempdir().unwrap();
    let attempt = |kind: &str, task: &str, id: &str, payload: Value| json!({"type": kind, "target": "web", "task": task, "attempt": id, "payload": payload});
    let events = json!([
        {"type": "scheduler.tick", "payload": {"targets": 2}},
        {"type": "task.selected", "target": "web", "task": "docs-1"},
        attempt("attempt.started", "docs-1", "a1", json!(null)),
        attempt("attempt.succeeded", "docs-1", "a1", json!({"digest": "d1", "fuel_used": 12345, "instantiate_us": 40, "execute_us": 300})),
        attempt("pr.opened", "docs-1", "a1", json!({"pr": 17, "branch": "agent/task-exec-attempt-docs-1-0badcafe"})),
        attempt("attempt.started", "tests-1", "a2", json!(null)),
        attempt("attempt.failed", "tests-1", "a2", json!({"kind": "policy", "message": "write outside"})),
        attempt("attempt.started", "tests-1", "a3", json!(null)),
        attempt("attempt.failed", "tests-1", "a3", json!({"kind": "timeout", "message": "slow"})),
        {"type": "circuit_breaker.opened", "target": "web", "payload": {"failures": 2}},
        {"type": "task.skipped", "target": "api", "task": "x", "payload": {"reason": "deps"}},
    ]);
    seed_log(dir.path(), &events);
    let server = Server::start(dir.path(), &[], &[]);
    let note = server.post("/api/v1/events", Some(OPERATOR), r#"{"type": "note"}"#);
    assert_eq!(note.0, 201, "{}", note.1);
    let (_, before) = server.get("/api/v1/graph", Some(VIEWER));
    let web = &before["targets"][1];
    assert_eq!(web["id"], "web");
    assert_eq!(web["open_prs"], 1);
    assert_eq!(web["consecutive_failures"], 2);
    assert_eq!(web["circuit_breaker"]["open"], true);
    assert_eq!(web["tasks"]["docs-1"]["status"], "in_review");
    assert_eq!(web["tasks"]["docs-1"]["open_prs"][0]["pr"], "17");
    assert_eq!(web["tasks"]["docs-1"]["prs"], 1);
    assert_eq!(web["tasks"]["tests-1"]["attempts"], 2);
    assert_eq!(before["targets"][0]["tasks"]["x"]["last_skip"], "deps");

    // Durable events are counted by a task that follows the log, so the note appended
    // above reaches the counter shortly after its 201, not with it.
    let started = std::time::Instant::now();
    let metrics = loop {
        let (_, metrics) = server.get("/metrics", None);
        let metrics = metrics.as_str().unwrap().to_string();
        if metrics.contains("leviathan_events_appended_total 1")
            || started.elapsed() > std::time::Duration::from_secs(10)
        {
            break metrics;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let openmetrics = server
        .agent
        .get(format!("{}/metrics", server.base))
        .header("Accept", "application/openmetrics-text; version=1.0.0")
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(
        openmetrics.ends_with("# EOF\n")
            && openmetrics.contains("# TYPE leviathan_events_appended counter")
    );
    assert!(
        metrics.contains("leviathan_attempts_total{outcome=\"failed\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("leviathan_circuit_breakers_open 1"),
        "{metrics}"
    );
    // Per target, for an alert that names the target.
    for series in [
        "leviathan_target_circuit_breaker_open{target=\"web\"} 1",
        "leviathan_target_circuit_breaker_open{target=\"api\"} 0",
        // No --config: no passes, so no "no pass for long" alert either.
        "leviathan_scheduler_running 0",
        "leviathan_plugin_reload_failures_total 0",
    ] {
        assert!(metrics.contains(series), "{series}: {metrics}");
    }
    let gauge = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name}: {metrics}"))
    };
    let (free, size) = (
        gauge("leviathan_data_volume_free_bytes"),
        gauge("leviathan_data_volume_size_bytes"),
    );
    assert!(free > 0 && size >= free, "free {free} of {size}");
    // Attempts count the whole log; events, what this process appended since start.
    assert!(
        metrics.contains("leviathan_attempts_total{outcome=\"succeeded\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("leviathan_events_appended_total 1"),
        "{metrics}"
    );
    if let Some(promtool) = promtool() {
        let mut child = Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(metrics.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    assert!(server.stop().success());
    let server = Server::start(dir.path(), &[], &[]);
    let (_, after) = server.get("/api/v1/graph", Some(VIEWER));
    assert_eq!(after, before, "the rebuilt projection differs");

    // Operator actions go through the log and show in the projection.
    let (status, reset) = server.post(
        "/api/v1/targets/web/circuit-breaker/reset",
        Some(OPERATOR),
        "",
    );
    assert_eq!(status, 200, "{reset}");
    let (_, autonomy) = server.get("/api/v1/autonomy", Some(VIEWER));
    assert_eq!(autonomy["targets"]["web"]["circuit_breaker"]["open"], false);
    assert_eq!(autonomy["targets"]["web"]["consecutive_failures"], 0);
    assert_eq!(
        server
            .post(
                "/api/v1/autonomy/pause",
                Some(OPERATOR),
                r#"{"target": "api", "reason": "deploy"}"#
            )
            .0,
        200
    );
    let (_, autonomy) = server.get("/api/v1/autonomy", Some(VIEWER));
    assert_eq!(
        (
            autonomy["paused"].as_bool(),
            autonomy["targets"]["api"]["paused"].as_bool()
        ),
        (Some(false), Some(true))
    );
    let (_, task) = server.get("/api/v1/tasks/web/tests-1", Some(VIEWER));
    assert_eq!(task["state"]["attempts"][1]["failure"], "timeout");
    assert_eq!(task["recent_events"].as_array().unwrap().len(), 4);
    let (_, log) = server.get("/api/v1/events?target=web&after=12", Some(VIEWER));
    assert_eq!(log["events"][0]["payload"]["by"], "ops");
    assert_eq!(log["events"][0]["origin"], "operator");
    assert_eq!(log["events"][0]["actor"], "ops");
}

/// `promtool`, when the test command installed it (it then must be present).
fn promtool() -> Option<&'static str> {
    let found = Command::new("promtool")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if std::env::var_os("LEVIATHAN_REQUIRE_PROMTOOL").is_some() {
        assert!(
            found,
            "LEVIATHAN_REQUIRE_PROMTOOL is set but promtool does not run"
        );
    }
    found.then_some("promtool")
}

#[test]
fn tokens_reload_on_sighup_and_a_broken_file_keeps_the_old_ones() {
    let dir = tempfile::tempdir().unwrap();
    // Polling off: only the signal can reload here.
    let server = Server::start(dir.path(), &["--tokens-poll-ms", "0"], &[]);
    let tokens = dir.path().join("tokens.yaml");
    let fresh = "fresh-operator-token-42";
    write_tokens(&tokens, &[("new-ops", "operator", fresh)]);
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.get("/api/v1/graph", Some(fresh)).0 != 200 {
        assert!(Instant::now() < deadline, "the new token never worked");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        server.get("/api/v1/graph", Some(VIEWER)).0,
        401,
        "removed token still works"
    );

    std::fs::write(
        &tokens,
        "tokens: [{name: x, role: root, token: abcdefghijklmnopqrstuvwxyz}]\n",
    )
    .unwrap();
    server.signal("HUP");
    server.wait_for_log(
        "tokens file not reloaded",
        "the broken file was not reported",
    );
    assert_eq!(server.get("/api/v1/graph", Some(fresh)).0, 200);
    assert!(server.log().contains("role"), "the error names the field");
}

/// Lays out `dir` as the kubelet mounts a Secret: `tokens.yaml -> ..data/tokens.yaml`,
/// `..data -> <version>`; an update writes a new version directory and swaps `..data`
/// by a rename, so the file the path resolves to changes without any write to it.
fn kubelet_secret_version(dir: &Path, version: &str, write: impl FnOnce(&Path)) {
    let versioned = dir.join(version);
    std::fs::create_dir_all(&versioned).unwrap();
    write(&versioned.join("tokens.yaml"));
    let next = dir.join("..data_tmp");
    std::os::unix::fs::symlink(version, &next).unwrap();
    std::fs::rename(&next, dir.join("..data")).unwrap();
    let link = dir.join("tokens.yaml");
    if std::fs::symlink_metadata(&link).is_err() {
        std::os::unix::fs::symlink("..data/tokens.yaml", &link).unwrap();
    }
}

fn until_status(server: &Server, token: &str, status: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while server.get("/api/v1/graph", Some(token)).0 != status {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn tokens_reload_when_a_mounted_secret_or_the_file_changes_without_a_signal() {
    let dir = tempfile::tempdir().unwrap();
    kubelet_secret_version(dir.path(), "..2026_12_04_v1", |f| {
        write_tokens(
            f,
            &[("ops", "operator", OPERATOR), ("dash", "viewer", VIEWER)],
        )
    });
    let server = Server::start(dir.path(), &["--tokens-poll-ms", "100"], &[]);
    assert_eq!(server.get("/api/v1/graph", Some(VIEWER)).0, 200);

    // A Secret update: the viewer's token rotated.
    let rotated = "rotated-viewer-token-77";
    kubelet_secret_version(dir.path(), "..2026_12_04_v2", |f| {
        write_tokens(
            f,
            &[("ops", "operator", OPERATOR), ("dash", "viewer", rotated)],
        )
    });
    until_status(&server, rotated, 200, "the rotated token never worked");
    assert_eq!(
        server.get("/api/v1/graph", Some(VIEWER)).0,
        401,
        "the old token still works"
    );

    // A broken version keeps the tokens in force and says why.
    kubelet_secret_version(dir.path(), "..2026_12_04_v3", |f| {
        std::fs::write(
            f,
            "tokens: [{name: x, role: root, token: abcdefghijklmnopqrstuvwxyz}]\n",
        )
        .unwrap()
    });
    server.wait_for_log(
        "tokens file not reloaded",
        "the broken file was not reported",
    );
    assert_eq!(server.get("/api/v1/graph", Some(rotated)).0, 200);

    // The link replaced by a plain file, then that file edited in place.
    let plain = dir.path().join("tokens.yaml");
    std::fs::remove_file(&plain).unwrap();
    write_tokens(&plain, &[("ops", "operator", OPERATOR)]);
    until_status(
        &server,
        rotated,
        401,
        "the removed viewer token still works",
    );
    assert_eq!(server.get("/api/v1/graph", Some(OPERATOR)).0, 200);
    let edited = "edited-in-place-operator-9";
    write_tokens(&plain, &[("ops", "operator", edited)]);
    until_status(&server, edited, 200, "an edit in place was not seen");
    assert_eq!(server.get("/api/v1/graph", Some(OPERATOR)).0, 401);
    assert!(server.stop().success());
}

#[test]
fn json_logs_carry_request_ids_and_never_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[], &[("LEVIATHAN_LOG_FORMAT", "json")]);
    let response = server
        .agent
        .get(format!("{}/api/v1/graph", server.base))
        .header("Authorization", format!("Bearer {VIEWER}"))
        .header("x-request-id", "req-abc-1")
        .call()
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "req-abc-1");
    let generated = server
        .agent
        .get(format!("{}/healthz", server.base))
        .call()
        .unwrap();
    assert!(generated.headers().contains_key("x-request-id"));
    assert!(server.stop().success());
    let dir_log = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().starts_with("serve-"))
        .unwrap();
    let mut text = String::new();
    std::fs::File::open(dir_log.path())
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    let request = lines
        .iter()
        .find(|l| l["span"]["request_id"] == "req-abc-1")
        .expect("a log line with the request id");
    assert_eq!(request["fields"]["status"], 200);
    assert!(!text.contains(VIEWER) && !text.contains(OPERATOR));
}

#[test]
fn serve_refuses_a_bad_tokens_file_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.yaml");
    std::fs::write(&tokens, "tokens:\n  - {name: a, role: viewer}\n").unwrap();
    let out = Command::new(host_binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--tokens-file")
        .arg(&tokens)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tokens.yaml") && err.contains("tokens[0]") && err.contains("token"),
        "{err}"
    );
}

#[test]
fn events_tail_follows_a_running_server_with_the_token_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[], &[]);
    for i in 0..3 {
        let note = json!({"type": "operator.note", "payload": {"i": i}}).to_string();
        server.post("/api/v1/events", Some(OPERATOR), &note);
    }
    let mut tail = Command::new(host_binary())
        .args([
            "events",
            "tail",
            "--last",
            "2",
            "--follow",
            "--api",
            &server.base,
        ])
        .env("LEVIATHAN_TOKEN", VIEWER)
        .env_remove("LEVIATHAN_DATA_DIR")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(tail.stdout.take().unwrap()).lines();
    let mut next_seq = || {
        let line = lines.next().unwrap().unwrap();
        serde_json::from_str::<Value>(&line).unwrap()["seq"]
            .as_u64()
            .unwrap()
    };
    assert_eq!((next_seq(), next_seq()), (2, 3));
    server.post("/api/v1/autonomy/pause", Some(OPERATOR), "");
    assert_eq!(next_seq(), 4);
    let _ = tail.kill();
    let _ = tail.wait();

    let refused = Command::new(host_binary())
        .args(["events", "tail", "--api", &server.base])
        .env("LEVIATHAN_TOKEN", "wrong-token-wrong-token")
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("401"));
}

/// Installs the docs executor, tagged so each tag has its own digest.
fn install_docs(plugins: &Path, work: &Path, tag: &str) -> String {
    let (wasm, manifest) = component("docs-executor");
    let bytes = variant(&std::fs::read(wasm).unwrap(), tag);
    let file = work.join(format!("docs-{tag}.wasm"));
    std::fs::write(&file, &bytes).unwrap();
    let out = Command::new(host_binary())
        .args(["plugins", "install"])
        .arg(&file)
        .arg("--manifest")
        .arg(manifest)
        .arg("--plugin-dir")
        .arg(plugins)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    leviathan_domain::digest::sha256_hex(&bytes)
}

#[test]
fn serve_hot_reloads_the_registry_and_records_each_change() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let server = Server::start(dir.path(), &["--reload-debounce-ms", "100"], &[]);
    let loaded = |server: &Server| -> Vec<(String, String)> {
        let (status, body) = server.get("/api/v1/plugins", Some(VIEWER));
        if status != 200 {
            return vec![("starting".into(), String::new())];
        }
        body["loaded"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["plugin"].as_str().unwrap().to_string(),
                    p["sha256"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let wait = |what: &str, want: Vec<(String, String)>| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while loaded(&server) != want {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {:?}",
                loaded(&server)
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    };
    wait("an empty registry", vec![]);
    let id = "docs-executor@0.1.0".to_string();
    let first = install_docs(&plugins, dir.path(), "a");
    wait("the added plugin", vec![(id.clone(), first.clone())]);
    let second = install_docs(&plugins, dir.path(), "b");
    wait("the replaced plugin", vec![(id.clone(), second.clone())]);
    std::fs::remove_dir_all(plugins.join("docs-executor")).unwrap();
    wait("the removed plugin", vec![]);

    let (_, page) = server.get("/api/v1/events?limit=1000", Some(VIEWER));
    let changes: Vec<(String, String, String)> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["payload"]["entry"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                e["payload"]["sha256"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    let entry = "docs-executor/0.1.0".to_string();
    assert_eq!(
        changes,
        [
            ("plugin.loaded".to_string(), entry.clone(), first),
            ("plugin.loaded".to_string(), entry.clone(), second.clone()),
            ("plugin.removed".to_string(), entry, String::new()),
        ]
    );
    let (_, metrics) = server.get("/metrics", None);
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("leviathan_plugin_reload_seconds_count"),
        "{metrics}"
    );

    // A restart with an unchanged registry records nothing new.
    let before = page["last_seq"].as_u64().unwrap();
    assert!(server.stop().success());
    let server = Server::start(dir.path(), &[], &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.get("/readyz", None).0 != 200 {
        assert!(Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(25));
    }
    let (_, page) = server.get("/api/v1/events?limit=1", Some(VIEWER));
    assert_eq!(page["last_seq"].as_u64(), Some(before));
}
