//! `exec` against repository size (run with `cargo xtask bench`): the release
//! `leviathan-host exec` of one docs task on repositories of 10, 1,000, 10,000 and
//! 50,000 files of 2 KB, each different (git repositories with one commit, files 100
//! to a directory).
//! For each: the median and slowest wall time of five runs (the output file removed
//! between runs), the largest peak RSS, and the bytes staged (from `--json`). Figures
//! go to docs/PERFORMANCE.md. `-- --quick` stops at 10,000 files.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 5;
const FILE_BYTES: usize = 2048;
const TASK: &str = "docs-size";

/// A repository of `files` files plus a backlog with one docs task.
fn repository(root: &Path, files: usize) -> PathBuf {
    let repo = root.join(format!("repo-{files}"));
    std::fs::create_dir_all(repo.join(".leviathan")).expect("repo dir");
    std::fs::write(
        repo.join(".leviathan/backlog.yaml"),
        format!(
            "tasks:\n  - id: {TASK}\n    title: Size benchmark\n    scope: docs\n    ready: true\n    allowed_paths: [docs/]\n    acceptance_criteria: [It is written]\n"
        ),
    )
    .expect("backlog");
    let filler = "x".repeat(FILE_BYTES - 9) + "\n";
    for i in 0..files {
        let body = format!("{i:08}\n{filler}");
        let dir = repo.join(format!("src/d{:03}", i / 100));
        if i % 100 == 0 {
            std::fs::create_dir_all(&dir).expect("dir");
        }
        std::fs::write(dir.join(format!("f{i:05}.txt")), &body).expect("file");
    }
    git(&repo, &["init", "-q"]);
    git(&repo, &["add", "-A"]);
    git(
        &repo,
        &[
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@localhost",
            "commit",
            "-qm",
            "seed",
        ],
    );
    repo
}

fn git(repo: &Path, args: &[&str]) {
    let status = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .status()
        .expect("git runs");
    assert!(status.success(), "git {args:?}");
}

/// One `exec`: wall time, peak RSS in KiB, and the JSON it printed.
// The child is reaped by `wait4` (which also gives its peak RSS), not `Child::wait`.
#[allow(clippy::zombie_processes)]
fn exec_once(repo: &Path, registry: &Path) -> (Duration, u64, serde_json::Value) {
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_leviathan-host"))
        .args(["exec", "--task", TASK, "--json", "--repo"])
        .arg(repo)
        .arg("--plugin-dir")
        .arg(registry)
        .stdout(Stdio::piped())
        .spawn()
        .expect("exec starts");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our child, not yet waited for; the pointers are valid.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let took = started.elapsed();
    assert_eq!(waited, pid, "wait4");
    let mut stdout = child.stdout.expect("stdout");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut text).expect("output");
    let json: serde_json::Value = serde_json::from_str(text.trim()).expect("one JSON object");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "exec failed: {json}"
    );
    (took, usage.ru_maxrss as u64, json)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let registry = std::env::var_os("LEVIATHAN_PLUGIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/registry"));
    let root = tempfile::tempdir().expect("temp dir");
    let sizes: &[usize] = if quick {
        &[10, 1_000, 10_000]
    } else {
        &[10, 1_000, 10_000, 50_000]
    };
    println!(
        "{:>7} {:>9} {:>10} {:>10} {:>10} {:>12} {:>9}",
        "files", "repo MB", "exec p50", "exec max", "peak RSS", "staged B", "vs 10"
    );
    let mut smallest = None;
    for &files in sizes {
        let repo = repository(root.path(), files);
        let mut times = Vec::with_capacity(RUNS);
        let mut rss = 0;
        let mut staged = 0;
        for _ in 0..RUNS {
            let _ = std::fs::remove_dir_all(repo.join("docs"));
            let (took, peak, json) = exec_once(&repo, &registry);
            assert_eq!(json["files"].as_array().map(Vec::len), Some(1), "{json}");
            times.push(took);
            rss = rss.max(peak);
            staged = json["staged_bytes"].as_u64().expect("staged_bytes");
        }
        times.sort();
        let p50 = times[RUNS / 2];
        let base = *smallest.get_or_insert(p50);
        println!(
            "{files:>7} {:>9.1} {:>10.1?} {:>10.1?} {:>7} KiB {staged:>12} {:>8.2}x",
            (files * FILE_BYTES) as f64 / 1e6,
            p50,
            times[RUNS - 1],
            rss,
            p50.as_secs_f64() / base.as_secs_f64()
        );
        let _ = std::fs::remove_dir_all(&repo);
    }
}
