//! The wasmtime engine every task runs on: deterministic, metered and interruptible.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::{Config, Engine, PoolingAllocationConfig};

use super::limiter::{MAX_INSTANCES, MAX_MEMORIES, MAX_TABLE_ELEMENTS, MAX_TABLES};

/// How often the epoch advances; wall-clock deadlines are counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Which code generator runs the tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// Cranelift on x86_64 and aarch64; wasmtime's Pulley interpreter elsewhere (e.g. ARMv7).
    #[default]
    Auto,
    /// Force the Pulley interpreter even where Cranelift exists (benchmarks, cross-checks).
    Pulley,
}

/// Builds the engine. Everything that could make two hosts disagree on output bytes or fuel is
/// pinned here: NaN canonicalisation, deterministic relaxed SIMD, no threads (the feature is
/// not even compiled in), no copy-on-write
/// memory init (it changes the fuel spent while instantiating).
///
/// With `pooled_tasks`, memories, tables, instances and fiber stacks come from a pool reserved
/// once for that many tasks at a time (see [`pooling_config`]) instead of being mapped and
/// unmapped for every task.
pub fn build_engine(
    backend: Backend,
    max_wasm_stack: usize,
    pooled_tasks: Option<u32>,
) -> wasmtime::Result<Engine> {
    let mut config = engine_config(backend, max_wasm_stack)?;
    if let Some(tasks) = pooled_tasks {
        config.allocation_strategy(pooling_config(tasks));
    }
    Engine::new(&config)
}

/// Cap of one instance's metadata in the pool (wasmtime's default is 1 MiB).
const MAX_INSTANCE_METADATA: usize = 64 * 1024 * 1024;

/// Whether this host can use [`pooling_config`]: 32-bit hosts have too little address space to
/// reserve a pool of 4 GiB memories.
pub const POOLING_SUPPORTED: bool = cfg!(target_pointer_width = "64");

/// A pool for `tasks` tasks at a time. Every per-task count and size is one above the store
/// limits of [`super::limiter`], so that a task over a limit is stopped by the limiter (and its
/// error names the limit) before the pool could run out; the memory budget itself stays the
/// limiter's. Each memory slot reserves wasmtime's default 4 GiB (the largest budget a manifest
/// may set) plus guards, so the pool is address space, not memory: about 37 GiB per task. A
/// freed memory is zeroed (madvise) before its slot is reused, as a fresh one would be.
fn pooling_config(tasks: u32) -> PoolingAllocationConfig {
    let tasks = tasks.max(1);
    let per_task = |limit: usize| u32::try_from(limit + 1).unwrap_or(u32::MAX);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(tasks)
        .total_stacks(tasks)
        .total_core_instances(tasks.saturating_mul(per_task(MAX_INSTANCES)))
        .total_memories(tasks.saturating_mul(per_task(MAX_MEMORIES)))
        .total_tables(tasks.saturating_mul(per_task(MAX_TABLES)))
        .max_memories_per_module(per_task(MAX_MEMORIES))
        .max_tables_per_module(per_task(MAX_TABLES))
        .table_elements(MAX_TABLE_ELEMENTS + 1)
        // Only checked, never reserved (instance metadata is allocated at its real size): a big
        // interpreter component (Python, JavaScript) must not be refused for it.
        .max_core_instance_size(MAX_INSTANCE_METADATA)
        .max_component_instance_size(MAX_INSTANCE_METADATA);
    pool
}

/// The configuration [`build_engine`] uses. Public (but hidden) only so that the sandbox
/// benchmark can measure a fuel-off variant that differs from production in that one setting.
#[doc(hidden)]
pub fn engine_config(backend: Backend, max_wasm_stack: usize) -> wasmtime::Result<Config> {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .consume_fuel(true)
        .epoch_interruption(true)
        .cranelift_nan_canonicalization(true)
        // Task modules are built with simd128 (tasks/.cargo/config.toml); SIMD is wasmtime's
        // default, said here so that it stays on.
        .wasm_simd(true)
        .relaxed_simd_deterministic(true)
        .memory_init_cow(false)
        .max_wasm_stack(max_wasm_stack)
        .async_stack_size(max_wasm_stack + 1024 * 1024)
        .parallel_compilation(true);
    if backend == Backend::Pulley {
        let target = if cfg!(target_pointer_width = "64") {
            "pulley64"
        } else {
            "pulley32"
        };
        config.target(target)?;
    }
    if cfg!(target_pointer_width = "32") {
        // 32-bit hosts have little address space: reserve only what a task may use and
        // let memories move when they grow.
        config.memory_reservation(64 * 1024 * 1024);
        config.memory_guard_size(64 * 1024);
        config.memory_reservation_for_growth(16 * 1024 * 1024);
    }
    Ok(config)
}

/// A stable fingerprint of everything that makes compiled code valid for this engine (wasmtime
/// version, target, settings). Part of the compiled-code cache key.
pub fn engine_fingerprint(engine: &Engine) -> String {
    // SipHash with the fixed keys of `DefaultHasher::new()` is stable for one build of the
    // client, which is all the cache needs; the wasmtime version is added in clear text.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("wasmtime{}-{:016x}", wasmtime_version(), hasher.finish())
}

/// The wasmtime version this client embeds (fuel is only comparable between equal versions).
pub fn wasmtime_version() -> &'static str {
    "48.0.8"
}

/// Name of the backend the engine really uses.
pub fn backend_name(engine: &Engine) -> &'static str {
    if engine.is_pulley() {
        "pulley"
    } else {
        "cranelift"
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] on a background thread until dropped.
#[derive(Debug)]
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    /// Starts ticking `engine`.
    pub fn start(engine: Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("musketeer-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
