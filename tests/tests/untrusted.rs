//! The host around the sandbox, attacked as someone who can push to a target's base
//! branch or holds an API token would (issue #11): committed links to host files and
//! devices, FIFOs, oversized and alias-bomb YAML, forged host events (through the API
//! and in an existing log), idle and slow connections, huge pages, sparse files,
//! malformed and linked registry entries, glob paths, ids git refuses. Everything runs
//! through the real binary on real git repositories and real sockets; memory is bounded
//! by running the binary under a data limit and sampling its peak resident set, never
//! by timing.

use leviathan_events::{Event, EventLog, GENESIS_HASH};
use leviathan_tests::serve::{OPERATOR, Server, VIEWER};
use leviathan_tests::{Seed, backlog_with, bare_repo, git, host_binary, registry, root};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The data limit (RLIMIT_DATA) the binary runs under. wasmtime's pooling allocator
/// maps its 2 GiB stack pool up front, so about 1 GiB is left for everything else; the
/// attacks below asked for 1.8 to 24 GB.
const DATA_LIMIT: u64 = 3 << 30;

/// Longest any of these runs may take before it counts as hung.
const HANG: Duration = Duration::from_secs(90);

/// A marker placed in host files: it must never show up in any output or event.
const SECRET: &str = "HOST-SECRET-7f3a9c";

/// `leviathan-host` under the data limit (through util-linux `prlimit`, which must be
/// there: the test fails rather than skip without it).
fn limited() -> Command {
    let found = Command::new("prlimit")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "util-linux `prlimit` is needed to bound the binary's memory"
    );
    let mut c = Command::new("prlimit");
    c.arg(format!("--data={DATA_LIMIT}"))
        .arg(host_binary())
        .env("LEVIATHAN_CACHE_DIR", root().join("target/test-cache"))
        .env("LEVIATHAN_PLUGIN_DIR", registry());
    c
}

/// The most resident memory any single run here may reach: an unbounded read or
/// expansion passes it long before the data limit stops it (std turns a failed
/// allocation inside `read_to_end` into an error, so only the peak shows the attempt).
const PEAK_RSS: u64 = 256 << 20;

/// The peak resident set (`VmHWM`) of process `pid` so far, in bytes.
fn peak_rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

/// Runs `command` to its end, failing the test if it takes longer than [`HANG`] or its
/// resident memory ever passes [`PEAK_RSS`] (sampled every few milliseconds).
fn run(mut command: Command) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let started = Instant::now();
    let mut peak = 0;
    loop {
        peak = peak.max(peak_rss(child.id()));
        if child.try_wait().expect("wait").is_some() {
            let out = child.wait_with_output().expect("output");
            assert!(
                peak < PEAK_RSS,
                "peak resident memory {peak} bytes: {}",
                text(&out)
            );
            return out;
        }
        if started.elapsed() > HANG || peak >= PEAK_RSS {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "hung for {:?} or grew to {peak} bytes: {}",
                started.elapsed(),
                text(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `exec` of `task` in `repo` under the limit; the exit code and all output.
fn exec(repo: &Path, task: &str, extra: &[&str]) -> (Option<i32>, String) {
    let mut c = limited();
    c.args(["exec", "--task", task, "--repo"])
        .arg(repo)
        .args(extra);
    let out = run(c);
    (out.status.code(), text(&out))
}

/// A one-target configuration for `<name>.git` in `root`.
fn config(root: &Path, name: &str) -> PathBuf {
    let file = root.join(format!("{name}.yaml"));
    std::fs::write(
        &file,
        format!("targets:\n  - id: {name}\n    repository: {name}.git\n"),
    )
    .unwrap();
    file
}

/// One `tick` over `config` with the store in `<root>/data`, under the limit.
fn tick(root: &Path, config: &Path) -> String {
    let mut c = limited();
    c.args(["tick", "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(root.join("data"));
    let out = run(c);
    let shown = text(&out);
    assert!(out.status.success(), "tick: {shown}");
    shown
}

fn events(root: &Path) -> Vec<Event> {
    EventLog::open(&root.join("data"))
        .unwrap()
        .after(0, 100_000)
        .unwrap()
}

fn branches(bare: &Path) -> Vec<String> {
    git(
        bare,
        &["for-each-ref", "--format=%(refname:short)", "refs/heads/"],
    )
    .lines()
    .map(String::from)
    .collect()
}

/// A backlog-shaped host file: what an attacker wants the host to read and rewrite.
fn host_backlog() -> String {
    format!(
        "tasks:\n  - id: docs-1\n    title: {SECRET}\n    scope: docs\n    ready: true\n    allowed_paths: [docs/]\n"
    )
}

#[test]
fn committed_links_to_host_files_are_refused_never_read_or_written() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let outside = root.join("host");
    std::fs::create_dir_all(&outside).unwrap();
    let host_file = outside.join("backlog.yaml");
    std::fs::write(&host_file, host_backlog()).unwrap();
    let before = std::fs::read(&host_file).unwrap();

    // `.leviathan` itself a link to the host directory, and `.leviathan/backlog.yaml`
    // a link to the host file.
    let cases = [
        (
            "dirlink",
            Seed::Link(".leviathan", &outside),
            "`.leviathan`",
        ),
        (
            "filelink",
            Seed::Link(".leviathan/backlog.yaml", &host_file),
            "`.leviathan/backlog.yaml`",
        ),
    ];
    for (name, entry, shown) in cases {
        let bare = bare_repo(
            root,
            name,
            &[entry, Seed::Text("docs/index.md", "# Index\n")],
        );
        let out = tick(root, &config(root, name));
        assert!(
            out.contains("skipped: backlog_invalid") && out.contains(shown),
            "{name}: {out}"
        );
        assert!(out.contains("symbolic link"), "{name}: {out}");
        assert!(!out.contains(SECRET), "{name}: the host file leaked: {out}");
        assert_eq!(branches(&bare), ["main"], "{name}: nothing was pushed");
        assert_eq!(
            std::fs::read(&host_file).unwrap(),
            before,
            "{name}: host file changed"
        );
    }
    let log = serde_json::to_string(&events(root)).unwrap();
    assert!(!log.contains(SECRET), "the host file reached the event log");
    assert!(
        !events(root).iter().any(|e| e.kind.starts_with("attempt.")),
        "no attempt ran"
    );

    // `exec` on such a worktree: refused naming the path, nothing quoted.
    let clone = root.join("work-filelink");
    git(
        root,
        &[
            "clone",
            "--quiet",
            root.join("filelink.git").to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    let data = root.join("exec-data");
    let (code, out) = exec(&clone, "docs-1", &["--data-dir", data.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains(".leviathan/backlog.yaml") && out.contains("symbolic link"),
        "{out}"
    );
    assert!(!out.contains(SECRET), "{out}");
    let recorded =
        serde_json::to_string(&EventLog::open(&data).unwrap().after(0, 100).unwrap()).unwrap();
    assert!(!recorded.contains(SECRET), "{recorded}");
    assert_eq!(std::fs::read(&host_file).unwrap(), before);
}

#[test]
fn devices_fifos_and_links_to_them_are_never_read() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let zero = Path::new("/dev/zero");

    // A backlog that is a link to /dev/zero: refused at once, for exec and tick.
    bare_repo(root, "zero", &[Seed::Link(".leviathan/backlog.yaml", zero)]);
    let out = tick(root, &config(root, "zero"));
    assert!(
        out.contains("skipped: backlog_invalid") && out.contains("symbolic link"),
        "{out}"
    );
    let clone = root.join("zero-clone");
    git(
        root,
        &[
            "clone",
            "--quiet",
            root.join("zero.git").to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    let (code, out) = exec(&clone, "docs-1", &[]);
    assert_eq!(code, Some(2), "{out}");

    // The executor's output path is a committed link to /dev/zero: the change set
    // never reads through it and the attempt is refused.
    let backlog = backlog_with("d-1", "docs", &["docs/"], &["Explains"]);
    bare_repo(
        root,
        "out",
        &[
            Seed::Text(".leviathan/backlog.yaml", &backlog),
            Seed::Link("docs/D_1.md", zero),
        ],
    );
    let clone = root.join("out-clone");
    git(
        root,
        &[
            "clone",
            "--quiet",
            root.join("out.git").to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    let (code, out) = exec(&clone, "d-1", &[]);
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("`docs/D_1.md` is a symbolic link"), "{out}");
    assert!(
        std::fs::symlink_metadata(clone.join("docs/D_1.md"))
            .unwrap()
            .file_type()
            .is_symlink()
    );

    // An allowed file that is a link to a device is refused before the run.
    let backlog = backlog_with("d-2", "docs", &["docs/guide.md"], &["Explains"]);
    std::fs::write(clone.join(".leviathan/backlog.yaml"), &backlog).unwrap();
    symlink(zero, clone.join("docs/guide.md")).unwrap();
    let (code, out) = exec(&clone, "d-2", &[]);
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("`docs/guide.md` is a symbolic link"), "{out}");
    std::fs::remove_file(clone.join("docs/guide.md")).unwrap();

    // A FIFO at the output path: opening it to compare would block forever.
    let fifo = clone.join("docs/guide.md");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    let (code, out) = exec(&clone, "d-2", &[]);
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("FIFO"), "{out}");
    std::fs::remove_file(&fifo).unwrap();

    // A character device (needs CAP_MKNOD; the CI runs as root).
    let made = Command::new("mknod")
        .arg(&fifo)
        .args(["c", "1", "5"])
        .status()
        .is_ok_and(|s| s.success());
    let root_user = Command::new("id")
        .arg("-u")
        .output()
        .unwrap()
        .stdout
        .starts_with(b"0\n");
    assert!(made || !root_user, "root could not mknod");
    if made {
        let (code, out) = exec(&clone, "d-2", &[]);
        assert_eq!(code, Some(3), "{out}");
        assert!(out.contains("character device"), "{out}");
    } else {
        eprintln!("not root: the character-device case ran only as a link to /dev/zero");
    }
}

#[test]
fn yaml_alias_amplification_and_oversized_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // One 400 KiB anchored scalar aliased 3000 times: about 1.2 GB once expanded.
    let mut bomb = format!("big: &a \"{}\"\nrefs: [", "x".repeat(400 << 10));
    bomb.push_str(&vec!["*a"; 3000].join(", "));
    bomb.push_str("]\ntasks: []\n");
    assert!(bomb.len() < 1 << 20);
    let repo = root.join("bomb");
    std::fs::create_dir_all(repo.join(".leviathan")).unwrap();
    std::fs::write(repo.join(".leviathan/backlog.yaml"), &bomb).unwrap();
    let (code, out) = exec(&repo, "docs-1", &[]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("expands to more than"), "{out}");

    // A 50 MB backlog is refused by its size before it is read.
    let mut large = String::from("tasks: []\n");
    large.push_str(&format!("# {}\n", "y".repeat(100)).repeat(500_000));
    std::fs::write(repo.join(".leviathan/backlog.yaml"), &large).unwrap();
    let (code, out) = exec(&repo, "docs-1", &[]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("over the limit of 1048576 bytes"), "{out}");

    // The same loader reads the tokens file: `serve` refuses to start on a bomb.
    let tokens = root.join("tokens.yaml");
    std::fs::write(&tokens, bomb.replace("tasks: []", "tokens: []")).unwrap();
    let mut c = limited();
    c.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(root.join("data"))
        .arg("--tokens-file")
        .arg(&tokens);
    let out = run(c);
    assert!(!out.status.success());
    let shown = text(&out);
    assert!(
        shown.contains("tokens.yaml") && shown.contains("expands"),
        "{shown}"
    );
}

/// A version 1 event, as the version that let clients write any type stored it.
fn v1(seq: u64, prev: &str, kind: &str, refs: [Option<&str>; 3], payload: Value) -> Event {
    let mut e = Event {
        seq,
        ts_ms: 1_700_000_000_000 + seq,
        v: 1,
        kind: kind.into(),
        target: refs[0].map(String::from),
        task: refs[1].map(String::from),
        attempt: refs[2].map(String::from),
        payload,
        origin: None,
        actor: None,
        prev_hash: prev.into(),
        hash: String::new(),
    };
    e.hash = e.compute_hash();
    e
}

/// What the probe forged through the API: a start naming branch `release`, a PR on
/// `release`, a completion of the dependency, an outcome of no attempt.
fn forged() -> Vec<(&'static str, [Option<&'static str>; 3], Value)> {
    let t = Some("forged");
    vec![
        (
            "attempt.started",
            [t, Some("dep"), Some("a1")],
            json!({"branch": "release"}),
        ),
        (
            "pr.opened",
            [t, Some("dep"), Some("a1")],
            json!({"pr": "1", "branch": "release"}),
        ),
        (
            "task.completed",
            [t, Some("dep"), None],
            json!({"reason": "forged"}),
        ),
        (
            "attempt.succeeded",
            [t, Some("dep"), Some("zz")],
            json!({"digest": "x"}),
        ),
    ]
}

/// `after` comes first: only a completed `dep` (which the forged event claims) would
/// let it run before `dep`.
const DEPENDENT: &str = "tasks:
  - id: after
    title: Needs dep
    scope: docs
    ready: true
    dependencies: [dep]
    allowed_paths: [docs/]
  - id: dep
    title: First
    scope: docs
    ready: true
    allowed_paths: [docs/]
";

/// Checks that the forged events in `<root>/data` are not acted on: the merge
/// endpoint refuses the forged PR, a pass deletes nothing, and the dependent task
/// does not run early.
fn forged_events_are_inert(root: &Path) {
    let bare = root.join("forged.git");
    let release = git(&bare, &["rev-parse", "release"]);
    let main = git(&bare, &["rev-parse", "main"]);
    let config = config(root, "forged");
    let mut merge = limited();
    merge
        .args(["prs", "merge", "forged", "1", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(root.join("data"));
    let out = run(merge);
    assert!(!out.status.success(), "merged a forged PR: {}", text(&out));
    assert!(text(&out).contains("no open PR 1"), "{}", text(&out));
    assert_eq!(git(&bare, &["rev-parse", "main"]), main, "the base moved");

    let out = tick(root, &config);
    assert!(
        out.contains("forged: dep: PR 1 opened"),
        "the real task runs: {out}"
    );
    assert_eq!(
        git(&bare, &["rev-parse", "release"]),
        release,
        "release was touched"
    );
    let after: Vec<Event> = events(root)
        .into_iter()
        .filter(|e| e.task.as_deref() == Some("after"))
        .collect();
    assert!(
        after
            .iter()
            .any(|e| e.kind == "task.skipped" && e.payload["reason"] == "deps"),
        "{after:?}"
    );
    assert!(!after.iter().any(|e| e.kind == "attempt.started"));
}

#[test]
fn forged_events_in_an_existing_or_imported_log_are_never_acted_on() {
    for imported in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let bare = bare_repo(
            root,
            "forged",
            &[
                Seed::Text(".leviathan/backlog.yaml", DEPENDENT),
                Seed::Text("docs/index.md", "# Index\n"),
            ],
        );
        // An unreviewed branch the forged events point at.
        let seed = root.join("forged-seed");
        git(&seed, &["checkout", "--quiet", "-b", "release"]);
        std::fs::write(seed.join("RELEASE"), "unreviewed\n").unwrap();
        git(&seed, &["add", "-A"]);
        git(&seed, &["commit", "--quiet", "-m", "unreviewed"]);
        git(
            &seed,
            &["push", "--quiet", bare.to_str().unwrap(), "release"],
        );

        let data = root.join("data");
        if imported {
            let file = root.join("journal.ndjson");
            let lines: Vec<String> = forged()
                .into_iter()
                .map(|(kind, [target, task, attempt], payload)| {
                    json!({"type": kind, "target": target, "task": task, "attempt": attempt, "payload": payload}).to_string()
                })
                .collect();
            std::fs::write(&file, lines.join("\n")).unwrap();
            let mut c = limited();
            // Lines without the original's hash chain: a journal known to be broken.
            c.args(["events", "import", "--allow-broken-chain"])
                .arg(&file)
                .arg("--data-dir")
                .arg(&data);
            let out = run(c);
            assert!(out.status.success(), "{}", text(&out));
        } else {
            // An existing version 1 store, written as the old server stored them.
            let db = sled::open(&data).unwrap();
            let tree = db.open_tree("events").unwrap();
            let mut prev = GENESIS_HASH.to_string();
            for (i, (kind, refs, payload)) in forged().into_iter().enumerate() {
                let event = v1(i as u64 + 1, &prev, kind, refs, payload);
                let mut key = vec![b'e'];
                key.extend_from_slice(&event.seq.to_be_bytes());
                tree.insert(key, serde_json::to_vec(&event).unwrap())
                    .unwrap();
                prev = event.hash.clone();
            }
            db.flush().unwrap();
            drop(tree);
            drop(db);
            let mut c = limited();
            c.args(["events", "verify", "--data-dir"]).arg(&data);
            let out = run(c);
            assert!(
                out.status.success(),
                "the forged log is a valid chain: {}",
                text(&out)
            );
        }
        forged_events_are_inert(root);
    }
}

#[test]
fn clients_write_only_their_namespace_and_the_actor_is_their_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[], &[]);
    for kind in [
        "scheduler.tick",
        "attempt.started",
        "attempt.succeeded",
        "attempt.pushed",
        "pr.opened",
        "pr.merged",
        "task.completed",
        "task.blocked",
        "circuit_breaker.opened",
        "circuit_breaker.closed",
        "autonomy.paused",
        "autonomy.resumed",
        "plugin.loaded",
        "policy.violation",
    ] {
        let body = json!({"type": kind, "target": "t", "task": "k", "attempt": "0badcafe",
                          "payload": {"branch": "release", "by": "someone-else"}});
        let (status, reply) = server.post("/api/v1/events", Some(OPERATOR), &body.to_string());
        assert_eq!(status, 403, "{kind}: {reply}");
        assert_eq!(reply["error"]["field"], "type", "{kind}");
    }
    let (status, reply) = server.post("/api/v1/events", Some(OPERATOR), r#"{"type": ""}"#);
    assert_eq!(
        (status, reply["error"]["field"].as_str()),
        (400, Some("type"))
    );
    let (status, reply) = server.post(
        "/api/v1/events",
        Some(OPERATOR),
        r#"{"type": "note", "actor": "root"}"#,
    );
    assert_eq!(
        (status, reply["error"]["field"].as_str()),
        (400, Some("actor"))
    );
    let (_, page) = server.get("/api/v1/events", Some(VIEWER));
    assert_eq!(page["last_seq"], 0, "nothing refused was stored: {page}");

    let (status, _) = server.post(
        "/api/v1/events",
        Some(OPERATOR),
        r#"{"type": "note", "payload": {"by": "someone-else"}}"#,
    );
    assert_eq!(status, 201);
    let (status, _) = server.post("/api/v1/autonomy/pause", Some(OPERATOR), "");
    assert_eq!(status, 200);
    let (_, page) = server.get("/api/v1/events", Some(VIEWER));
    let stored = page["events"].as_array().unwrap();
    assert_eq!(
        (
            stored[0]["type"].as_str(),
            stored[0]["origin"].as_str(),
            stored[0]["actor"].as_str()
        ),
        (Some("client.note"), Some("client"), Some("ops"))
    );
    assert_eq!(
        (
            stored[1]["type"].as_str(),
            stored[1]["origin"].as_str(),
            stored[1]["actor"].as_str()
        ),
        (Some("autonomy.paused"), Some("operator"), Some("ops"))
    );
    assert_eq!(stored[1]["v"], 2);
}

/// Opens `n` TCP connections to `base` that never send anything.
fn idle_connections(base: &str, n: usize) -> Vec<TcpStream> {
    let addr = base.trim_start_matches("http://");
    (0..n)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect()
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn the_server_holds_under_idle_slow_and_greedy_clients() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--max-connections",
            "32",
            "--header-timeout-secs",
            "2",
            "--max-streams",
            "1",
        ],
        &[],
    );
    let baseline = open_descriptors(server.child.id());
    let idle = idle_connections(&server.base, 400);
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let (status, _) = server.get("/healthz", None);
    assert_eq!(
        status, 200,
        "healthz answers while 400 idle connections wait"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let fds = open_descriptors(server.child.id());
    assert!(
        fds <= baseline + 40,
        "{fds} descriptors open (was {baseline}): the connection cap did not hold"
    );

    // Idle connections are closed at the header-read timeout, and so is a client
    // that never finishes its request head.
    drop(idle);
    std::thread::sleep(Duration::from_millis(2500));
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let t = Instant::now();
    let mut buf = [0u8; 256];
    let read = slow.read(&mut buf);
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(12),
        "the slow connection was closed after {waited:?} ({read:?})"
    );
    assert!(
        !matches!(read, Ok(n) if n > 0 && buf.starts_with(b"HTTP/1.1 200")),
        "an unfinished request was answered"
    );

    // One event stream is the cap here: a second is answered 503 with Retry-After.
    let first = server
        .agent
        .get(format!("{}/api/v1/events/stream", server.base))
        .header("Authorization", format!("Bearer {VIEWER}"))
        .call()
        .unwrap();
    assert_eq!(first.status().as_u16(), 200);
    let second = server
        .agent
        .get(format!("{}/api/v1/events/stream", server.base))
        .header("Authorization", format!("Bearer {VIEWER}"))
        .call()
        .unwrap();
    assert_eq!(second.status().as_u16(), 503);
    assert_eq!(
        second
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    drop(first);
    assert_eq!(server.get("/healthz", None).0, 200);
}

#[test]
fn api_pages_are_bounded_by_bytes_as_well_as_count() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--body-limit", "2000000"], &[]);
    let big = "z".repeat(900_000);
    for i in 0..12 {
        let body = json!({"type": "blob", "payload": {"i": i, "data": big}}).to_string();
        assert_eq!(server.post("/api/v1/events", Some(OPERATOR), &body).0, 201);
    }
    let mut after = 0;
    let mut seen = Vec::new();
    loop {
        let url = format!("{}/api/v1/events?after={after}&limit=1000", server.base);
        let mut response = server
            .agent
            .get(&url)
            .header("Authorization", format!("Bearer {VIEWER}"))
            .call()
            .unwrap();
        let body = response.body_mut().read_to_string().unwrap();
        assert!(
            body.len() < (4 << 20) + 1_000_000,
            "a page of {} bytes",
            body.len()
        );
        let page: Value = serde_json::from_str(&body).unwrap();
        seen.extend(
            page["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["seq"].as_u64().unwrap()),
        );
        after = page["next_after"].as_u64().unwrap();
        if !page["more"].as_bool().unwrap() {
            break;
        }
    }
    assert_eq!(
        seen,
        (1..=12).collect::<Vec<u64>>(),
        "every event, over several pages"
    );
}

/// The bytes actually allocated to files below `dir` (holes do not count).
fn allocated(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total += meta.blocks() * 512;
            }
        }
    }
    total
}

#[test]
fn sparse_files_are_never_inflated_and_staging_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(repo.join(".leviathan")).unwrap();
    std::fs::create_dir_all(repo.join("docs")).unwrap();
    let backlog = format!(
        "{}{}",
        backlog_with("d-1", "docs", &["docs/"], &["Explains"]),
        "  - id: d-2\n    title: Guide\n    scope: docs\n    ready: true\n    allowed_paths: [docs/guide.md]\n"
    );
    std::fs::write(repo.join(".leviathan/backlog.yaml"), backlog).unwrap();
    let huge = std::fs::File::create(repo.join("docs/huge.bin")).unwrap();
    huge.set_len(1 << 30).unwrap();
    drop(huge);

    // Under the default limits the 1 GiB file is too large to stage: an allowed
    // directory holding it is refused, another task runs without it.
    let (code, out) = exec(&repo, "d-1", &[]);
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("max_staged_file_bytes"), "{out}");
    let (code, out) = exec(&repo, "d-2", &[]);
    assert_eq!(code, Some(0), "{out}");

    // With the limits raised it is staged, and its holes stay holes: the scratch
    // directory never holds more than a few blocks of it.
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "executor_limits:\n  max_staged_file_bytes: 2147483648\n  max_staged_bytes: 4294967296\n",
    )
    .unwrap();
    std::fs::remove_file(repo.join("docs/guide.md")).unwrap();
    let scratch = dir.path().join("tmp");
    std::fs::create_dir_all(&scratch).unwrap();
    let mut c = limited();
    c.args(["exec", "--task", "d-2", "--repo"])
        .arg(&repo)
        .arg("--policy")
        .arg(&policy)
        .env("TMPDIR", &scratch);
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut peak = 0;
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        peak = peak.max(allocated(&scratch));
        assert!(started.elapsed() < HANG, "hung");
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(peak < 64 << 20, "the scratch directory held {peak} bytes");
}

#[test]
fn registry_errors_never_quote_files_and_linked_entries_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    let (wasm, manifest) = leviathan_tests::component("docs-executor");
    leviathan_domain::registry::install(&plugins, &wasm, &manifest, None, |_| Ok(())).unwrap();
    let leaky = plugins.join("leaky/0.1.0");
    std::fs::create_dir_all(&leaky).unwrap();
    std::fs::write(
        leaky.join("plugin.toml"),
        format!("name = \"leaky\"\nversion = \"0.1.0\"\nworld = {SECRET}-unquoted\n"),
    )
    .unwrap();
    let secret_file = dir.path().join("secret.toml");
    std::fs::write(&secret_file, format!("name = \"{SECRET}\"\n")).unwrap();
    let linked = plugins.join("linked/0.1.0");
    std::fs::create_dir_all(&linked).unwrap();
    symlink(&secret_file, linked.join("plugin.toml")).unwrap();

    let server = Server::start(dir.path(), &[], &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.get("/readyz", None).0 != 200 {
        assert!(Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, ready) = server.get("/readyz", None);
    assert_eq!(ready["plugins"]["rejected"], 2, "{ready}");
    assert!(!ready.to_string().contains("plugin.toml"), "{ready}");
    let (_, listed) = server.get("/api/v1/plugins", Some(VIEWER));
    let rejected = listed["rejected"].to_string();
    assert!(rejected.contains("invalid TOML at line 3"), "{rejected}");
    assert!(rejected.contains("symbolic link"), "{rejected}");
    assert!(
        listed["loaded"][0]["plugin"] == "docs-executor@0.1.0",
        "{listed}"
    );
    let (_, log) = server.get("/api/v1/events?limit=1000", Some(VIEWER));
    for shown in [
        ready.to_string(),
        listed.to_string(),
        log.to_string(),
        server.log(),
    ] {
        assert!(!shown.contains(SECRET), "{shown}");
    }
}

#[test]
fn glob_allowed_paths_mean_the_same_to_host_and_executor() {
    let repo = leviathan_tests::TestRepo::new(
        &format!(
            "{}{}",
            backlog_with("g-1", "docs", &["docs/**"], &["Explains"]),
            "  - id: g-2\n    title: Glob\n    scope: docs\n    ready: true\n    allowed_paths: ['docs/*.md']\n"
        ),
        &[("docs/index.md", "# Index\n")],
    );
    let (code, out) = exec(repo.path(), "g-1", &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(repo.path().join("docs/G_1.md").is_file(), "{out}");
    let status = repo.status();
    assert!(
        !status.contains('*'),
        "a literal glob directory appeared: {status}"
    );
    let (code, out) = exec(repo.path(), "g-2", &[]);
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("glob pattern"), "{out}");
}

#[test]
fn ids_git_refuses_and_numeric_tokens_are_refused_without_echo() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let backlog = "tasks:\n  - id: a..b\n    title: T\n    scope: docs\n    ready: true\n    allowed_paths: [docs/]\n";
    bare_repo(
        root,
        "ids",
        &[Seed::Text(".leviathan/backlog.yaml", backlog)],
    );
    let out = tick(root, &config(root, "ids"));
    assert!(
        out.contains("skipped: backlog_invalid") && out.contains("field `id`"),
        "{out}"
    );
    assert!(
        !events(root).iter().any(|e| e.kind.starts_with("attempt.")),
        "an id git refuses never reaches an attempt (nor the breaker)"
    );

    let digits = "98765432109876543210";
    let tokens = root.join("tokens.yaml");
    std::fs::write(
        &tokens,
        format!("tokens:\n  - {{name: n, role: viewer, token: {digits}}}\n"),
    )
    .unwrap();
    let mut c = limited();
    c.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(root.join("data2"))
        .arg("--tokens-file")
        .arg(&tokens);
    let out = run(c);
    assert!(!out.status.success());
    let shown = text(&out);
    assert!(shown.contains("field `token`"), "{shown}");
    assert!(!shown.contains(digits), "the token was echoed: {shown}");

    // And on a reload: the log line names the field, never the token.
    let live = root.join("live");
    std::fs::create_dir_all(&live).unwrap();
    let server = Server::start(&live, &[], &[]);
    std::fs::write(
        live.join("tokens.yaml"),
        format!("tokens:\n  - {{name: n, role: viewer, token: {digits}}}\n"),
    )
    .unwrap();
    server.signal("HUP");
    server.wait_for_log(
        "tokens file not reloaded",
        "the reload error was not logged",
    );
    assert!(!server.log().contains(digits), "{}", server.log());
}
