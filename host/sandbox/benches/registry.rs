//! Plugin registry benchmarks (run with `cargo xtask bench`): loading 50 plugins cold
//! (every component compiled) and warm (every component from the artifact cache), and
//! hot-reload latency from a file change to the new plugin being in force. Figures go
//! to docs/PERFORMANCE.md.
//!
//! Every entry is the docs executor with a distinct custom section (the same code, 50
//! distinct digests, so nothing is shared between them). A component must describe
//! itself as its manifest says, so each sits in its own registry directory; loading
//! the 50 directories one after another is the work of one registry of 50 entries.

use leviathan_domain::policy::PluginPolicy;
use leviathan_domain::registry::{Entry, install};
use leviathan_sandbox::plugins::set::PluginSet;
use leviathan_sandbox::plugins::watch::{SharedPlugins, watch};
use leviathan_sandbox::{ArtifactCache, Sandbox};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn docs_component() -> (Vec<u8>, PathBuf) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let wasm = root.join("plugins/registry/docs-executor/0.1.0/docs-executor.wasm");
    let bytes = std::fs::read(&wasm).expect("docs executor installed (run `cargo xtask build`)");
    (bytes, root.join("plugins/docs-executor/plugin.toml"))
}

/// `bytes` with a custom section named after `tag`: another digest, same code.
fn variant(bytes: &[u8], tag: &str) -> Vec<u8> {
    let name = b"bench";
    let size = 1 + name.len() + tag.len();
    let mut out = bytes.to_vec();
    out.extend([0u8, size as u8, name.len() as u8]);
    out.extend(name);
    out.extend(tag.as_bytes());
    out
}

fn install_variant(registry: &Path, scratch: &Path, tag: &str) -> Entry {
    let (bytes, manifest) = docs_component();
    let file = scratch.join(format!("{tag}.wasm"));
    std::fs::write(&file, variant(&bytes, tag)).expect("write variant");
    install(registry, &file, &manifest, None, |_| Ok(())).expect("install")
}

fn load_all(dirs: &[PathBuf], cache: &Path) -> Duration {
    // A new sandbox each pass: only the on-disk cache carries over.
    let sandbox = Sandbox::new(ArtifactCache::new(Some(cache.to_path_buf()))).expect("sandbox");
    let started = Instant::now();
    for dir in dirs {
        let set = PluginSet::load(dir, &PluginPolicy::default(), &sandbox, None).expect("load");
        assert_eq!(set.loaded.len(), 1, "{:?}", set.registry.rejected);
    }
    started.elapsed()
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let count = if quick { 5 } else { 50 };
    let work = tempfile::tempdir().expect("temp dir");
    let dirs: Vec<PathBuf> = (0..count)
        .map(|i| {
            let dir = work.path().join(format!("registry-{i:02}"));
            install_variant(&dir, work.path(), &format!("v{i:02}"));
            dir
        })
        .collect();
    let cache = work.path().join("cache");
    let cold = load_all(&dirs, &cache);
    let warm = load_all(&dirs, &cache);
    println!(
        "registry load, {count} plugins: cold (compile) {cold:.2?} = {:.1} ms/plugin; warm (cache) {warm:.2?} = {:.2} ms/plugin",
        cold.as_secs_f64() * 1e3 / count as f64,
        warm.as_secs_f64() * 1e3 / count as f64
    );

    // Hot reload: replace the entry, then poll for the new digest.
    let debounce = Duration::from_millis(50);
    let registry = work.path().join("hot");
    install_variant(&registry, work.path(), "h00");
    let sandbox = Arc::new(Sandbox::new(ArtifactCache::new(Some(cache))).expect("sandbox"));
    let policy = PluginPolicy::default();
    let shared = Arc::new(SharedPlugins::new(
        PluginSet::load(&registry, &policy, &sandbox, None).expect("load"),
    ));
    let (tx, rx) = std::sync::mpsc::channel();
    let _watch = watch(
        registry.clone(),
        policy,
        sandbox,
        shared.clone(),
        debounce,
        move |r| {
            let _ = tx.send(r.took);
        },
    )
    .expect("watch");
    let rounds = if quick { 3 } else { 10 };
    let mut total = Vec::new();
    let mut reload = Vec::new();
    for round in 1..=rounds {
        let entry = install_variant(&registry, work.path(), &format!("h{round:02}"));
        let changed = Instant::now();
        let want = format!("sha256:{}", entry.manifest.sha256);
        while shared
            .current()
            .loaded
            .values()
            .next()
            .map(|p| p.component.digest.as_str())
            != Some(want.as_str())
        {
            std::thread::sleep(Duration::from_micros(200));
        }
        total.push(changed.elapsed());
        while let Ok(took) = rx.try_recv() {
            reload.push(took);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    total.sort();
    reload.sort();
    println!(
        "hot reload (debounce {debounce:?}), {rounds} replacements: change to first use p50 {:.1?} (max {:.1?}); the reload itself (compile + swap) p50 {:.1?}",
        total[total.len() / 2],
        total[total.len() - 1],
        reload.get(reload.len() / 2).copied().unwrap_or_default()
    );
}
