//! The compiled-artifact cache: hits after the first load, and a corrupted or
//! foreign entry is recompiled and replaced, never trusted.

use leviathan_sandbox::{ArtifactCache, CacheOutcome, Sandbox};

#[test]
fn cache_hits_and_corrupt_entries_are_replaced() {
    let registry = leviathan_tests::registry();
    let wasm =
        std::fs::read(registry.join("docs-executor/0.1.0/docs-executor.wasm")).expect("component");
    let dir = tempfile::tempdir().expect("temp dir");
    let cache = ArtifactCache::new(Some(dir.path().to_path_buf()));
    let sandbox = Sandbox::new(cache.clone()).expect("sandbox");

    let first = sandbox.load("docs", &wasm).expect("compiles");
    assert_eq!(first.cache, CacheOutcome::Compiled);
    let second = sandbox.load("docs", &wasm).expect("loads");
    assert_eq!(second.cache, CacheOutcome::Hit);
    assert!(sandbox.describe(&second).is_ok(), "a cached artifact runs");

    let digest = leviathan_domain::digest::sha256_hex(&wasm);
    let artifact = cache
        .artifact_path(sandbox.engine(), &digest)
        .expect("cache path");
    let mut bytes = std::fs::read(&artifact).expect("artifact written");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&artifact, &bytes).expect("corrupt it");
    let third = sandbox.load("docs", &wasm).expect("recompiles");
    assert_eq!(
        third.cache,
        CacheOutcome::Compiled,
        "a corrupted artifact is never trusted"
    );
    assert_eq!(
        sandbox.load("docs", &wasm).expect("loads").cache,
        CacheOutcome::Hit,
        "and is replaced"
    );

    std::fs::write(&artifact, b"not an artifact").expect("foreign bytes");
    std::fs::write(
        artifact.with_extension("cwasm.sha256"),
        leviathan_domain::digest::sha256_hex(b"not an artifact"),
    )
    .expect("matching sidecar");
    assert_eq!(
        sandbox.load("docs", &wasm).expect("recompiles").cache,
        CacheOutcome::Compiled
    );
}
