//! The wasmtime engine: deterministic, fuel-metered, epoch-interruptible, pooled.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch ticker advances the engine's epoch.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

pub use leviathan_domain::policy::MAX_MEMORY_BYTES;

/// Executor instances that can be alive at once.
pub const MAX_CONCURRENT_INSTANCES: u32 = 16;

/// Bytes of each pooled linear memory kept mapped between runs (an executor built
/// with the SDK's 64 KiB stack uses 128 KiB; all of a memory up to this size is
/// zeroed or restored from its image at teardown, used or not).
pub const KEEP_RESIDENT_MEMORY: usize = 512 << 10;
/// Bytes of each pooled table kept mapped between runs.
pub const KEEP_RESIDENT_TABLE: usize = 64 << 10;

/// Builds the engine all executors run on.
pub fn build_engine() -> wasmtime::Result<Engine> {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(MAX_CONCURRENT_INSTANCES)
        .total_core_instances(MAX_CONCURRENT_INSTANCES * 8)
        .total_memories(MAX_CONCURRENT_INSTANCES * 2)
        .total_tables(MAX_CONCURRENT_INSTANCES * 8)
        .max_memories_per_component(4)
        .max_tables_per_component(16)
        .max_memory_size(MAX_MEMORY_BYTES as usize)
        .max_component_instance_size(1 << 20)
        .max_core_instance_size(1 << 20)
        // A run's memory and tables up to these sizes are zeroed in place when its
        // instance is dropped, instead of being unmapped (an madvise and a TLB
        // shoot-down) and faulted back in page by page on the next run.
        .linear_memory_keep_resident(KEEP_RESIDENT_MEMORY)
        .table_keep_resident(KEEP_RESIDENT_TABLE);

    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .concurrency_support(false)
        .consume_fuel(true)
        .epoch_interruption(true)
        .cranelift_nan_canonicalization(true)
        .relaxed_simd_deterministic(true)
        .max_wasm_stack(1 << 20)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config)
}

/// A background thread advancing the engine's epoch every [`EPOCH_TICK`]; it is the
/// wall-clock backstop behind fuel. Stops when dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    /// Starts ticking `engine`.
    pub fn start(engine: &Engine) -> std::io::Result<EpochTicker> {
        let stop = Arc::new(AtomicBool::new(false));
        let engine = engine.clone();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("leviathan-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })?;
        Ok(EpochTicker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
