//! Sandbox benchmarks (run with `cargo xtask bench`; figures go to docs/PERFORMANCE.md).
//! Plain timing loops: the median and 99th percentile of many runs, after warm-up.
//!
//! Measures: component compile vs loading the cached artifact; one docs run in the
//! sandbox and its parts (store set-up, instantiation, `execute`, teardown; staging and
//! git excluded); the same executor natively; the original Python docs executor in
//! process, timed the same way (when `python3` is present); resident memory with the
//! plugins loaded.
//!
//! `-- --profile-loop N` runs only `N` sandboxed docs runs on one staged directory (what
//! `perf record -g` is pointed at for docs/PERFORMANCE.md's profile).
//! `-- --compare-with DIR` runs only sandboxed docs runs, of this registry's docs
//! component and of the one installed in the registry at `DIR`, interleaved in one
//! process (how a change to an executor or the SDK is measured side by side).

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

/// The value after `flag` on the command line, if the flag is there.
fn flag_value(flag: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|a| a == flag)?;
    Some(
        args.get(at + 1)
            .unwrap_or_else(|| panic!("{flag} takes a value"))
            .clone(),
    )
}

/// `--profile-loop N`: only the profiling loop, `N` runs.
fn profile_loop_runs() -> Option<usize> {
    flag_value("--profile-loop").map(|n| n.parse().expect("--profile-loop takes a run count"))
}

/// `--compare-with DIR`: only the sandboxed docs runs, of this registry's component
/// and of the one in the registry at `DIR`, interleaved in one process.
fn compare_registry() -> Option<PathBuf> {
    flag_value("--compare-with").map(PathBuf::from)
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

/// The original's docs executor timed by `benches/original/docs_bench.py` (the same
/// task, a fresh directory per run), or `None` without `python3`.
fn original_python(runs: usize) -> Option<Vec<Duration>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/original/docs_bench.py");
    let output = std::process::Command::new("python3")
        .arg(&script)
        .arg(runs.to_string())
        .output()
        .ok()?;
    if !output.status.success() {
        println!(
            "original Python docs executor failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
        return None;
    }
    let samples: Vec<u64> = serde_json::from_slice(&output.stdout).expect("samples in JSON");
    Some(samples.into_iter().map(Duration::from_nanos).collect())
}

/// Rounds the docs runs are interleaved in.
const ROUNDS: usize = 10;

/// The timed parts of sandboxed runs.
#[derive(Default)]
struct Parts {
    setup: Vec<Duration>,
    instantiate: Vec<Duration>,
    execute: Vec<Duration>,
    teardown: Vec<Duration>,
    total: Vec<Duration>,
    fuel: u64,
    memory: u64,
}

/// What the docs runs share.
#[derive(Clone)]
struct Bench<'a> {
    sandbox: &'a Sandbox,
    component: &'a leviathan_sandbox::LoadedComponent,
    worktree: &'a Path,
    task: Task,
    policy: Policy,
    allowed: Vec<leviathan_domain::paths::RepoPath>,
}

impl Bench<'_> {
    fn stage(&self) -> stage::Stage {
        stage::prepare(self.worktree, &self.allowed, &[], &self.policy.staging).expect("stage")
    }

    /// The run request of the docs task on `staged`.
    fn request(&self, staged: &stage::Stage) -> RunRequest {
        RunRequest {
            task: self.task.clone(),
            read_only: vec![Mount {
                guest: "/repo".into(),
                host: staged.repo.clone(),
            }],
            read_write: staged.mounts.clone(),
            write_root: Some(staged.write_root()),
            allowed: self.allowed.clone(),
            seed: run_seed(&self.task, None),
            limits: self.policy.limits.clone(),
            timeout: self.policy.attempt_timeout,
        }
    }

    /// `n` runs in the sandbox, each on a freshly staged directory.
    fn sandboxed(&self, n: usize, parts: &mut Parts) {
        for _ in 0..n {
            let staged = self.stage();
            let request = self.request(&staged);
            let t = Instant::now();
            let outcome = self.sandbox.run(self.component, &request);
            parts.total.push(t.elapsed());
            let report = outcome.result.expect("docs task succeeds");
            assert_eq!(report.files.len(), 1);
            parts.setup.push(outcome.stats.setup);
            parts.instantiate.push(outcome.stats.instantiate);
            parts.execute.push(outcome.stats.execute);
            parts.teardown.push(outcome.stats.teardown);
            parts.fuel = outcome.stats.fuel_used;
            parts.memory = outcome.stats.memory_peak;
        }
    }

    /// `n` sandboxed runs on one staged directory, the output removed between runs:
    /// the loop to profile (`perf record -g`) with nothing but the run in it.
    fn profile_loop(&self, n: usize) {
        let staged = self.stage();
        let request = self.request(&staged);
        let t = Instant::now();
        for _ in 0..n {
            let outcome = self.sandbox.run(self.component, &request);
            let report = outcome.result.expect("docs task succeeds");
            for file in &report.files {
                std::fs::remove_file(staged.out.join(file)).expect("remove output");
            }
        }
        println!(
            "profile loop: {n} runs, {:.1?} per run",
            t.elapsed() / n as u32
        );
    }

    /// `n` runs of the same executor crate compiled natively.
    fn native(&self, n: usize, samples: &mut Vec<Duration>) {
        let task = &self.task;
        let sdk_task = leviathan_executor_sdk::Task {
            id: task.id.clone(),
            title: task.title.clone(),
            description: task.description.clone(),
            scope: task.scope.clone(),
            allowed_paths: task.allowed_paths.clone(),
            acceptance_criteria: task.acceptance_criteria.clone(),
            ..Default::default()
        };
        for _ in 0..n {
            let staged = self.stage();
            let workspace = leviathan_executor_sdk::Workspace {
                repo: staged.repo.clone(),
                out: staged.out.clone(),
            };
            let t = Instant::now();
            <docs_executor::DocsExecutor as leviathan_executor_sdk::Executor>::execute(
                &sdk_task, &workspace,
            )
            .expect("native run");
            samples.push(t.elapsed());
        }
    }
}

/// `runs` sandboxed docs runs of each of two components, alternating in blocks of 50
/// (this, other, other, this), with the p50 of every part side by side: a comparison the machine's drift
/// touches alike (docs/PERFORMANCE.md, "Method").
fn compare(this: &Bench, other: &Bench, runs: usize) {
    let (mut a, mut b) = (Parts::default(), Parts::default());
    for _ in 0..runs / 100 {
        this.sandboxed(50, &mut a);
        other.sandboxed(50, &mut b);
        other.sandboxed(50, &mut b);
        this.sandboxed(50, &mut a);
    }
    println!(
        "{:<30} {:>12} {:>12} {:>8}",
        "p50 (n per side)", "this", "other", "this/other"
    );
    let rows: [(&str, &mut Vec<Duration>, &mut Vec<Duration>); 5] = [
        ("set-up", &mut a.setup, &mut b.setup),
        ("instantiate", &mut a.instantiate, &mut b.instantiate),
        ("execute", &mut a.execute, &mut b.execute),
        ("teardown", &mut a.teardown, &mut b.teardown),
        ("run total", &mut a.total, &mut b.total),
    ];
    for (name, this_samples, other_samples) in rows {
        let n = this_samples.len();
        let (x, y) = (
            percentile(this_samples, 0.5),
            percentile(other_samples, 0.5),
        );
        println!(
            "{:<30} {:>12.1?} {:>12.1?} {:>8.3}",
            format!("{name} ({n})"),
            x,
            y,
            ratio(x, y)
        );
    }
    println!(
        "fuel: this {}, other {}; guest memory: this {} bytes, other {} bytes",
        a.fuel, b.fuel, a.memory, b.memory
    );
}

/// What the policy check at the WASI call adds: a docs run makes one checked call
/// (the open that creates its file) and records one directory handle per preopen;
/// this times that work alone, many times over.
fn guard_cost(scale: usize) {
    use leviathan_sandbox::guard::{Action, WriteGuard};
    let allowed = vec![leviathan_domain::paths::RepoPath::parse("docs/").expect("path")];
    let n = 200_000 / scale;
    let t = Instant::now();
    for i in 0..n {
        let mut guard = WriteGuard::new(allowed.clone(), ["/repo"], ["/out/docs"]);
        guard.opened_mount(1, "/repo");
        guard.opened_mount(2, "/out/docs");
        let file = if i % 2 == 0 {
            "DOCS_BENCH.md"
        } else {
            "sub/../X.md"
        };
        std::hint::black_box(guard.check(2, file, Action::Write)).expect("allowed");
    }
    println!(
        "guard per docs run (set-up, two mounts, one checked open)  {:>10.2?}",
        t.elapsed() / n as u32
    );
}

fn main() {
    // Staging and the Python harness make their directories under TMPDIR: tmpfs when
    // the machine has one (set before any thread starts).
    if Path::new("/dev/shm").is_dir() && std::env::var_os("LEVIATHAN_BENCH_TMP").is_none() {
        // SAFETY: no other thread exists yet.
        unsafe { std::env::set_var("TMPDIR", "/dev/shm") };
    }
    println!(
        "temporary directories in {}",
        std::env::temp_dir().display()
    );
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

    // One docs run in the sandbox, the same crate natively, and the original Python
    // executor, in interleaved rounds so the machine's drift (its disk above all)
    // touches all three alike. Staging and the fresh directories are made outside the
    // timed regions, on tmpfs when there is one, so the figures are the executors' and
    // not the disk's.
    let worktree = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(worktree.path().join("docs")).expect("mkdir");
    std::fs::write(worktree.path().join("docs/index.md"), "# Index\n").expect("write");
    let bench = Bench {
        sandbox: &sandbox,
        component: &component,
        worktree: worktree.path(),
        task: docs_task(),
        policy: Policy::default_policy(),
        allowed: vec![leviathan_domain::paths::RepoPath::parse("docs/").expect("path")],
    };
    if let Some(n) = profile_loop_runs() {
        bench.profile_loop(n);
        return;
    }
    if let Some(other_dir) = compare_registry() {
        let other_registry = Registry::scan(&other_dir).expect("the registry to compare with");
        let other_entry = other_registry
            .entries
            .iter()
            .find(|e| e.manifest.name == "docs-executor")
            .expect("docs-executor installed in the registry to compare with");
        let other_component = load_entry(other_entry, &sandbox).expect("the other docs loads");
        let other = Bench {
            component: &other_component,
            ..bench.clone()
        };
        compare(&bench, &other, 4000 / scale);
        return;
    }
    let runs = 2000 / scale;
    let mut parts = Parts::default();
    let mut native = Vec::with_capacity(runs);
    let mut python = Some(Vec::with_capacity(runs));
    for _ in 0..ROUNDS {
        bench.sandboxed(runs / ROUNDS, &mut parts);
        bench.native(runs / ROUNDS, &mut native);
        python = python.and_then(|mut all| {
            all.extend(original_python(runs / ROUNDS)?);
            Some(all)
        });
    }
    report("store + WASI context set-up", &mut parts.setup);
    report("instantiate (fresh instance)", &mut parts.instantiate);
    let sandboxed = report("docs execute() in sandbox", &mut parts.execute);
    report(
        "teardown (instance memory back to the pool)",
        &mut parts.teardown,
    );
    let run_total = report("docs run total (set-up to teardown)", &mut parts.total);
    println!(
        "fuel used by one docs task: {}; guest memory: {} bytes",
        parts.fuel, parts.memory
    );
    let native_p50 = report("docs execute() native", &mut native);
    println!(
        "sandbox / native (execute p50): {:.2}x; run total / native: {:.2}x",
        ratio(sandboxed, native_p50),
        ratio(run_total, native_p50)
    );
    match python {
        Some(mut python) => {
            let python_p50 = report("original Python docs executor, in process", &mut python);
            println!(
                "sandbox run total / original Python: {:.2}x",
                ratio(run_total, python_p50)
            );
        }
        None => println!("original Python docs executor: skipped (no python3)"),
    }
    guard_cost(scale);
    println!("rss at end: {} KiB", rss_kib());
}
