//! On-disk cache of precompiled components, keyed by component digest and the engine's
//! compatibility hash. wasmtime's deserialize checks versions and settings but not
//! bytes, so each artifact carries our own SHA-256 which is verified before loading;
//! any mismatch or load error means recompile and replace.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from a verified cached artifact.
    Hit,
    /// Compiled (no cache, no entry, or a stale/corrupt entry that was replaced).
    Compiled,
}

/// The artifact cache; `None` directory disables it.
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: Option<PathBuf>,
}

impl ArtifactCache {
    /// A cache rooted at `dir` (created on first write).
    pub fn new(dir: Option<PathBuf>) -> ArtifactCache {
        ArtifactCache { dir }
    }

    /// The default location: `$LEVIATHAN_CACHE_DIR`, else `$XDG_CACHE_HOME/leviathan`,
    /// else `~/.cache/leviathan`, each with `artifacts/` below.
    pub fn default_dir() -> Option<PathBuf> {
        let base = std::env::var_os("LEVIATHAN_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("leviathan"))
            })
            .or_else(|| {
                std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/leviathan"))
            })?;
        Some(base.join("artifacts"))
    }

    fn key(engine: &Engine, digest_hex: &str) -> String {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        format!("{digest_hex}-{:016x}", h.finish())
    }

    /// Path of the artifact for a component digest under this engine.
    pub fn artifact_path(&self, engine: &Engine, digest_hex: &str) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{}.cwasm", Self::key(engine, digest_hex))))
    }

    /// Loads the component with `digest_hex` (of `wasm`) from the cache, or compiles
    /// it and stores the artifact.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        digest_hex: &str,
        wasm: &[u8],
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let Some(path) = self.artifact_path(engine, digest_hex) else {
            return Ok((Component::new(engine, wasm)?, CacheOutcome::Compiled));
        };
        if let Some(component) = load_verified(engine, &path) {
            return Ok((component, CacheOutcome::Hit));
        }
        let artifact = engine.precompile_component(wasm)?;
        // Load from the artifact we are about to cache, so a hit and a miss run the
        // very same code.
        // SAFETY: `artifact` was produced just now by this engine's own compiler.
        let component = unsafe { Component::deserialize(engine, &artifact)? };
        if let Err(e) = store(&path, &artifact) {
            tracing::warn!(path = %path.display(), "cannot write compiled artifact: {e}");
        }
        Ok((component, CacheOutcome::Compiled))
    }
}

fn sidecar(path: &Path) -> PathBuf {
    path.with_extension("cwasm.sha256")
}

fn load_verified(engine: &Engine, path: &Path) -> Option<Component> {
    let bytes = std::fs::read(path).ok()?;
    let expected = std::fs::read_to_string(sidecar(path)).ok()?;
    let actual = hex::encode(Sha256::digest(&bytes));
    if expected.trim() != actual {
        tracing::warn!(path = %path.display(), "cached artifact digest mismatch; recompiling");
        return None;
    }
    // SAFETY: the bytes are the artifact this host wrote (its SHA-256 matches the
    // sidecar written with it) for this engine's compatibility hash; wasmtime also
    // checks its version and settings and errors out on mismatch.
    match unsafe { Component::deserialize(engine, &bytes) } {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(path = %path.display(), "cached artifact rejected ({e}); recompiling");
            None
        }
    }
}

fn store(path: &Path, artifact: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let digest = hex::encode(Sha256::digest(artifact));
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::fs::write(tmp.path(), artifact)?;
    let tmp_sum = tempfile::NamedTempFile::new_in(dir)?;
    std::fs::write(tmp_sum.path(), &digest)?;
    // Sidecar first: a reader that sees the new artifact also sees its digest.
    tmp_sum.persist(sidecar(path)).map_err(|e| e.error)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
