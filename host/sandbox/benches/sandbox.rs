//! Sandbox benchmarks (run with `cargo xtask bench`; figures go to docs/PERFORMANCE.md).
//! Plain timing loops: the median and 99th percentile of many runs, after warm-up.
//!
//! Measures: component compile vs loading the cached artifact; instantiation; the
//! docs executor's `execute` in the sandbox (excluding git and staging) and natively;
//! resident memory with both plugins loaded.

use leviathan_domain::backlog::Task;
use leviathan_domain::policy::Policy;
use leviathan_domain::registry::Registry;
use leviathan_sandbox::exec::run_seed;
use leviathan_sandbox::plugins::load_entry;
use leviathan_sandbox::stage;
use leviathan_sandbox::{ArtifactCache, Mount, RunRequest, Sandbox};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let idx = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[idx]
}

fn report(name: &str, samples: &mut [Duration]) -> Duration {
    let p50 = percentile(samples, 0.50);
    let p99 = percentile(samples, 0.99);
    println!(
        "{name:<44} n={:<6} p50={:>10.1?} p99={:>10.1?}",
        samples.len(),
        p50,
        p99
    );
    p50
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn docs_task() -> Task {
    Task {
        id: "docs-bench".into(),
        title: "Benchmark document".into(),
        description: "A document of typical size.".into(),
        scope: "docs".into(),
        ready: true,
        allowed_paths: vec!["docs/".into()],
        acceptance_criteria: (1..=5)
            .map(|i| format!("Criterion number {i} is explained"))
            .collect(),
        ..Task::default()
    }
}

fn registry_dir() -> PathBuf {
    std::env::var_os("LEVIATHAN_PLUGIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins/registry"))
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = if quick { 10 } else { 1 };
    let registry =
        Registry::scan(&registry_dir()).expect("registry (run `cargo xtask build` first)");
    let docs = registry
        .entries
        .iter()
        .find(|e| e.manifest.name == "docs-executor")
        .expect("docs-executor installed");
    let wasm = std::fs::read(&docs.wasm).expect("component readable");
    println!("rss at start: {} KiB", rss_kib());

    // Compile vs cached load.
    let cache_dir = tempfile::tempdir().expect("temp dir");
    let uncached = Sandbox::new(ArtifactCache::new(None)).expect("sandbox");
    let mut compile: Vec<Duration> = (0..5)
        .map(|_| {
            let t = Instant::now();
            uncached.load("docs", &wasm).expect("compiles");
            t.elapsed()
        })
        .collect();
    report("component compile (no cache)", &mut compile);
    let sandbox =
        Sandbox::new(ArtifactCache::new(Some(cache_dir.path().to_path_buf()))).expect("sandbox");
    sandbox
        .load("docs", &wasm)
        .expect("first load fills the cache");
    let mut cached: Vec<Duration> = (0..200 / scale)
        .map(|_| {
            let t = Instant::now();
            sandbox.load("docs", &wasm).expect("cached load");
            t.elapsed()
        })
        .collect();
    report("component load from verified cache", &mut cached);
    drop(uncached);

    // Both plugins loaded: resident memory.
    let loaded: Vec<_> = registry
        .entries
        .iter()
        .map(|e| load_entry(e, &sandbox).expect("plugin loads"))
        .collect();
    println!(
        "rss with {} plugins loaded: {} KiB",
        loaded.len(),
        rss_kib()
    );
    let component = load_entry(docs, &sandbox).expect("docs loads");

    // Instantiate and execute in the sandbox (staging is outside the timed region).
    let worktree = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(worktree.path().join("docs")).expect("mkdir");
    std::fs::write(worktree.path().join("docs/index.md"), "# Index\n").expect("write");
    let task = docs_task();
    let policy = Policy::default_policy();
    let allowed = vec![leviathan_domain::paths::RepoPath::parse("docs/").expect("path")];
    let runs = 2000 / scale;
    let mut instantiate = Vec::with_capacity(runs);
    let mut execute = Vec::with_capacity(runs);
    let mut total = Vec::with_capacity(runs);
    let mut fuel = 0;
    for _ in 0..runs {
        let staged =
            stage::prepare(worktree.path(), &allowed, &[], &policy.staging).expect("stage");
        let request = RunRequest {
            task: task.clone(),
            read_only: vec![Mount {
                guest: "/repo".into(),
                host: staged.repo.clone(),
            }],
            read_write: staged.mounts.clone(),
            write_root: Some(staged.out.clone()),
            seed: run_seed(&task, None),
            limits: policy.limits.clone(),
            timeout: policy.attempt_timeout,
        };
        let t = Instant::now();
        let outcome = sandbox.run(&component, &request);
        total.push(t.elapsed());
        let report = outcome.result.expect("docs task succeeds");
        assert_eq!(report.files.len(), 1);
        instantiate.push(outcome.stats.instantiate);
        execute.push(outcome.stats.execute);
        fuel = outcome.stats.fuel_used;
    }
    report("instantiate (fresh store + instance)", &mut instantiate);
    let sandboxed = report("docs execute() in sandbox", &mut execute);
    report("docs run total (store+instantiate+execute)", &mut total);
    println!("fuel used by one docs task: {fuel}");

    // The same executor logic compiled natively.
    let mut native = Vec::with_capacity(runs);
    for _ in 0..runs {
        let staged =
            stage::prepare(worktree.path(), &allowed, &[], &policy.staging).expect("stage");
        let workspace = leviathan_executor_sdk::Workspace {
            repo: staged.repo.clone(),
            out: staged.out.clone(),
        };
        let sdk_task = leviathan_executor_sdk::Task {
            id: task.id.clone(),
            title: task.title.clone(),
            description: task.description.clone(),
            scope: task.scope.clone(),
            allowed_paths: task.allowed_paths.clone(),
            acceptance_criteria: task.acceptance_criteria.clone(),
            ..Default::default()
        };
        let t = Instant::now();
        <docs_executor::DocsExecutor as leviathan_executor_sdk::Executor>::execute(
            &sdk_task, &workspace,
        )
        .expect("native run");
        native.push(t.elapsed());
    }
    let native_p50 = report("docs execute() native", &mut native);
    println!(
        "sandbox / native (execute p50): {:.2}x",
        sandboxed.as_secs_f64() / native_p50.as_secs_f64().max(1e-9)
    );
    println!("rss at end: {} KiB", rss_kib());
}
