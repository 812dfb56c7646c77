//! The WebAssembly sandbox executors run in: one engine and linker for the process,
//! one pre-instantiated component per plugin, a fresh store and instance per run; the
//! staging of what an executor sees, the change set it produced, the loaded plugin
//! set, and `exec` (one task end to end). The only crate that depends on wasmtime.

pub mod cache;
pub mod changeset;
pub mod determinism;
pub mod engine;
pub mod exec;
pub mod grants;
pub mod guard;
pub mod guarded_fs;
pub mod plugins;
pub mod record;
pub mod run;
pub mod stage;
pub mod state;

pub use cache::{ArtifactCache, CacheOutcome};
pub use run::{
    GuestReport, Mount, PluginInfo, RunFailure, RunOutcome, RunRequest, RunStats, WriteRoot,
};
pub use state::LimitKind;

use std::time::{Duration, Instant};
use wasmtime::Engine;
use wasmtime::component::Linker;

/// Host bindings generated from `wit/leviathan-executor@0.1.0`.
pub mod bindings {
    wasmtime::component::bindgen!({
        world: "executor-plugin",
        path: "../../wit/leviathan-executor@0.1.0",
    });
}

/// The WIT package version executors are bound against.
pub const CONTRACT: &str = "leviathan:executor@0.1.0";

/// Errors while preparing a component (not while running it).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot start the WebAssembly engine: {0}")]
    Engine(String),
    #[error("`{component}` is not a valid executor component: {message}")]
    Component { component: String, message: String },
    #[error("`{component}` does not implement {CONTRACT} (world executor-plugin): {message}")]
    Contract { component: String, message: String },
}

/// A component compiled and linked, ready to be instantiated for each run.
#[derive(Clone)]
pub struct LoadedComponent {
    /// `sha256:` digest of the component bytes.
    pub digest: String,
    pub(crate) pre: bindings::ExecutorPluginPre<state::SandboxState>,
    /// Whether the compiled artifact came from the cache.
    pub cache: CacheOutcome,
    /// Time to compile or load the artifact and link it.
    pub load_time: Duration,
}

/// The process-wide sandbox: engine, linker with the granted imports, epoch ticker and
/// artifact cache.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<state::SandboxState>,
    cache: ArtifactCache,
    _ticker: engine::EpochTicker,
}

impl Sandbox {
    /// A sandbox caching compiled artifacts in `cache` (see [`ArtifactCache`]).
    pub fn new(cache: ArtifactCache) -> Result<Sandbox, SandboxError> {
        let engine = engine::build_engine().map_err(|e| SandboxError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        grants::link(&mut linker).map_err(|e| SandboxError::Engine(format!("{e:#}")))?;
        let ticker = engine::EpochTicker::start(&engine)
            .map_err(|e| SandboxError::Engine(format!("epoch thread: {e}")))?;
        Ok(Sandbox {
            engine,
            linker,
            cache,
            _ticker: ticker,
        })
    }

    /// The engine (for benchmarks and diagnostics).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compiles (or loads from cache) and links a component. `name` is only used in
    /// error messages.
    pub fn load(&self, name: &str, wasm: &[u8]) -> Result<LoadedComponent, SandboxError> {
        self.load_with_digest(name, wasm, &leviathan_domain::digest::sha256_hex(wasm))
    }

    /// [`Sandbox::load`] for a caller that has already computed (and checked) the
    /// component's hex SHA-256, so it is not hashed a second time.
    pub fn load_with_digest(
        &self,
        name: &str,
        wasm: &[u8],
        digest_hex: &str,
    ) -> Result<LoadedComponent, SandboxError> {
        self.load_checked(name, wasm, digest_hex, |_| Ok(()))
    }

    /// [`Sandbox::load_with_digest`] that first passes the names the compiled
    /// component exports (e.g. `leviathan:executor/executor@0.1.0`) to `check`; an
    /// error from `check` is reported as a contract error, before linking.
    pub fn load_checked(
        &self,
        name: &str,
        wasm: &[u8],
        digest_hex: &str,
        check: impl FnOnce(&[String]) -> Result<(), String>,
    ) -> Result<LoadedComponent, SandboxError> {
        let started = Instant::now();
        let (component, cache) = self
            .cache
            .load_or_compile(&self.engine, digest_hex, wasm)
            .map_err(|e| SandboxError::Component {
                component: name.into(),
                message: format!("{e:#}"),
            })?;
        let exports: Vec<String> = component
            .component_type()
            .exports(&self.engine)
            .map(|(export, _)| export.to_string())
            .collect();
        check(&exports).map_err(|message| SandboxError::Contract {
            component: name.into(),
            message,
        })?;
        let instance_pre =
            self.linker
                .instantiate_pre(&component)
                .map_err(|e| SandboxError::Contract {
                    component: name.into(),
                    message: format!("{e:#}"),
                })?;
        let pre =
            bindings::ExecutorPluginPre::new(instance_pre).map_err(|e| SandboxError::Contract {
                component: name.into(),
                message: format!("{e:#}"),
            })?;
        Ok(LoadedComponent {
            digest: format!("sha256:{digest_hex}"),
            pre,
            cache,
            load_time: started.elapsed(),
        })
    }
}
