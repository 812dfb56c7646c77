//! Console benchmark (run with `cargo xtask bench`): the time the real `serve`
//! takes to answer the overview and a target page over loopback (render included)
//! with 1,000,000 events across 200 targets, and the console's page weight.
//! `--quick` uses 50,000 events. Figures go to docs/PERFORMANCE.md.

#[allow(dead_code)]
#[path = "../../host/events/benches/common/mod.rs"]
mod common;

use leviathan_events::{EventDraft, EventLog};
use leviathan_tests::serve::{OPERATOR, Server};
use leviathan_tests::{Seed, bare_repo};
use std::time::{Duration, Instant};

const TARGETS: u64 = 200;
const TASKS: u64 = 50;

/// The event benches' synthetic loop history, spread over [`TARGETS`] targets.
fn event(i: u64) -> EventDraft {
    let mut draft = common::loop_event(i);
    draft.target = Some(format!("target-{:03}", (i / 5) % TARGETS));
    draft
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let events: u64 = if quick { 50_000 } else { 1_000_000 };
    let dir = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    {
        let log = EventLog::open(&dir.path().join("data")).expect("open");
        let mut i = 0;
        while i < events {
            let end = (i + 1000).min(events);
            log.append((i..end).map(event).collect()).expect("append");
            i = end;
        }
    }
    println!(
        "console bench: {events} events over {TARGETS} targets written in {:.1?}",
        started.elapsed()
    );
    // Every target configured (no pass runs: the schedule is once a year), the first
    // with its backlog cloned where serve reads it.
    let mut backlog = String::from("tasks:\n");
    for t in 0..TASKS {
        let deps = if t > 0 {
            format!("[task-{:03}]", t - 1)
        } else {
            "[]".into()
        };
        backlog.push_str(&format!(
            "  - id: task-{t:03}\n    title: Guide {t}\n    description: Part {t} of the guide.\n    scope: docs\n    ready: true\n    dependencies: {deps}\n    allowed_paths: [docs/]\n    acceptance_criteria: [Covers part {t}]\n"
        ));
    }
    let bare = bare_repo(
        dir.path(),
        "repo",
        &[Seed::Text(".leviathan/backlog.yaml", &backlog)],
    );
    let mut config = String::from("schedule: \"0 0 1 1 *\"\ntargets:\n");
    for t in 0..TARGETS {
        config.push_str(&format!(
            "  - id: target-{t:03}\n    repository: repo.git\n"
        ));
    }
    std::fs::write(dir.path().join("leviathan.yaml"), config).expect("config");
    let clone = dir.path().join("data-work/target-000");
    std::fs::create_dir_all(clone.parent().expect("parent")).expect("mkdir");
    leviathan_tests::git(
        dir.path(),
        &[
            "clone",
            "--quiet",
            &bare.display().to_string(),
            &clone.display().to_string(),
        ],
    );
    let replay = Instant::now();
    drop(EventLog::open(&dir.path().join("data")).expect("reopen"));
    println!("replay of the store in-process: {:.1?}", replay.elapsed());
    let config = dir.path().join("leviathan.yaml").display().to_string();
    let opened = Instant::now();
    let server = Server::start(dir.path(), &["--config", &config], &[]);
    println!(
        "serve listening after {:.1?} (replay included)",
        opened.elapsed()
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let login = agent
        .post(format!("{}/console/login", server.base))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Sec-Fetch-Site", "same-origin")
        .send(format!("token={OPERATOR}"))
        .expect("login");
    let cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_string();
    let fetch = |path: &str| -> (Duration, usize) {
        let started = Instant::now();
        let mut r = agent
            .get(format!("{}{path}", server.base))
            .header("Cookie", &cookie)
            .call()
            .expect("page");
        assert_eq!(r.status().as_u16(), 200, "{path}");
        let body = r.body_mut().read_to_string().expect("body");
        (started.elapsed(), body.len())
    };
    let samples = if quick { 30 } else { 200 };
    let mut weight = 0;
    for (name, path) in [
        ("overview", "/console"),
        ("target page", "/console/targets/target-000"),
    ] {
        for _ in 0..5 {
            fetch(path);
        }
        let mut times: Vec<f64> = Vec::with_capacity(samples);
        let mut bytes = 0;
        for _ in 0..samples {
            let (took, len) = fetch(path);
            times.push(took.as_secs_f64() * 1000.0);
            bytes = len;
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{name}: p50 {:.2} ms, p99 {:.2} ms over {samples} requests; {bytes} bytes of HTML",
            common::percentile(&times, 50.0),
            common::percentile(&times, 99.0)
        );
        weight = weight.max(bytes);
    }
    let css = fetch("/console/assets/console.css").1;
    let js = fetch("/console/assets/console.js").1;
    println!(
        "page weight: largest page {weight} B + CSS {css} B + JS {js} B = {} B (no third-party code)",
        weight + css + js
    );
}
