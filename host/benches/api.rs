//! Control-plane API benchmarks against the real `leviathan-host serve` on 127.0.0.1
//! (run with `cargo xtask bench`): start-up (replay) and `GET /graph` latency with
//! 1,000,000 events in the log; durable `POST /api/v1/events` throughput, single
//! events and batches of 100, from concurrent keep-alive clients. Figures go to
//! docs/PERFORMANCE.md.

#[allow(dead_code)]
/// The event history shared with the event log's own benchmark.
#[path = "../events/benches/common/mod.rs"]
mod common;

use common::{fill_loop, percentile};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const TOKEN: &str = "bench-operator-token-0123456789";

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `serve` on `data`; returns it and the time to "listening" (replay included).
fn start(dir: &std::path::Path) -> (Server, Duration) {
    let tokens = dir.join("tokens.yaml");
    std::fs::write(
        &tokens,
        format!("tokens:\n  - {{name: bench, role: operator, token: {TOKEN}}}\n"),
    )
    .expect("tokens file");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_leviathan-host"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("data"))
        .arg("--tokens-file")
        .arg(&tokens)
        .arg("--plugin-dir")
        .arg(dir.join("no-plugins"))
        .env("LEVIATHAN_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("first line");
    let took = started.elapsed();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .expect("listening line")
        .to_string();
    (Server { child, base }, took)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(true)
        .build()
        .into()
}

/// Posts `body` (holding `per_request` events) from `clients` threads for `secs`.
fn post_rate(
    server: &Server,
    name: &str,
    clients: usize,
    per_request: u64,
    body: String,
    secs: f64,
) {
    let stop = Arc::new(AtomicBool::new(false));
    let events = Arc::new(AtomicU64::new(0));
    let url = format!("{}/api/v1/events", server.base);
    let body = Arc::new(body);
    let started = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let (stop, events, url, body) =
                (stop.clone(), events.clone(), url.clone(), body.clone());
            std::thread::spawn(move || {
                let agent = agent();
                while !stop.load(Ordering::Relaxed) {
                    agent
                        .post(&url)
                        .header("Authorization", format!("Bearer {TOKEN}"))
                        .header("Content-Type", "application/json")
                        .send(body.as_str())
                        .expect("POST");
                    events.fetch_add(per_request, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().expect("client");
    }
    let total = events.load(Ordering::Relaxed);
    let took = started.elapsed().as_secs_f64();
    println!(
        "{name:<48} {total:>8} events in {took:.2}s = {:>9.0} events/s ({:.0} requests/s)",
        total as f64 / took,
        total as f64 / per_request as f64 / took
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let big: u64 = if quick { 50_000 } else { 1_000_000 };
    let secs = if quick { 1.0 } else { 5.0 };
    let dir = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    fill_loop(&dir.path().join("data"), big);
    println!("filled {big} loop events in {:.2?}", started.elapsed());

    let (server, startup) = start(dir.path());
    println!("serve start-up with {big} events (replay included): {startup:.2?}");
    let agent = agent();
    let graph_url = format!("{}/api/v1/graph", server.base);
    let mut bytes = 0;
    let mut samples: Vec<f64> = (0..300)
        .map(|_| {
            let started = Instant::now();
            let mut response = agent
                .get(&graph_url)
                .header("Authorization", format!("Bearer {TOKEN}"))
                .call()
                .expect("GET /graph");
            bytes = response.body_mut().read_to_vec().expect("body").len();
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    println!(
        "GET /api/v1/graph at {big} events ({} targets x {} tasks, {bytes} bytes): p50 {:.2} ms, p99 {:.2} ms",
        common::TARGETS,
        common::TASKS,
        percentile(&samples, 50.0),
        percentile(&samples, 99.0)
    );

    let single = r#"{"type":"operator.note","target":"target-00","payload":{"n":1}}"#.to_string();
    let batch = format!(
        "[{}]",
        std::iter::repeat_n(single.as_str(), 100)
            .collect::<Vec<_>>()
            .join(",")
    );
    for clients in [1, 16, 64] {
        post_rate(
            &server,
            &format!("POST single event, {clients} clients"),
            clients,
            1,
            single.clone(),
            secs,
        );
    }
    post_rate(
        &server,
        "POST batches of 100, 4 clients",
        4,
        100,
        batch,
        secs,
    );
}
