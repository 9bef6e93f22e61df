//! The wasmtime sandbox: verifies a signed module, compiles it once (cached), and runs it with
//! fuel, a wall-clock deadline, memory/table/instance limits, capped output and captured stdio,
//! deterministic WASI and no ambient authority.

mod cache;
mod classify;
mod determinism;
mod engine;
mod error;
mod host;
mod limiter;
mod pause;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use musketeer_protocol::guest_text;
use musketeer_signing_keys::{Manifest, SignedManifest, TrustStore};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, Store};

pub use cache::CacheError;
pub use determinism::FIXED_WALL_CLOCK;
#[doc(hidden)]
pub use engine::engine_config;
pub use engine::{Backend, wasmtime_version};
pub use error::RunError;
pub use host::ProgressSink;
pub use pause::PauseToken;

use crate::net::fetch::{HttpConfig, HttpFetcher};
use crate::net::policy::Allowlist;
use engine::{EPOCH_TICK, EpochTicker};
use host::{HostSetup, HostState, Task, TaskPre};

/// Fuel for instantiation, kept apart from the task's budget so that the reported fuel is the
/// run alone (instantiation cost varies with the memory-init strategy).
const INSTANTIATION_FUEL: u64 = 100_000_000;
/// How often (in fuel) a guest yields to tokio, so many tasks share few cores fairly.
const FUEL_YIELD_INTERVAL: u64 = 1_000_000;
/// Longest error string of a task that is kept (sanitised); also the least the host will lift
/// out of the task in one call, so that such an error can cross even under a tiny output limit.
const MAX_TASK_ERROR: usize = 4096;

/// Settings of the volunteer's side of the sandbox (the manifest sets the per-task limits).
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Where compiled code is cached; `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
    /// Which code generator to use.
    pub backend: Backend,
    /// Limits of the HTTP import.
    pub http: HttpConfig,
    /// Cap of captured stdout and of captured stderr, each.
    pub stdio_cap: usize,
    /// Maximum wasm call-stack size in bytes.
    pub max_wasm_stack: usize,
    /// Run at most this many tasks at a time from a pool of memories, tables, instances and
    /// stacks reserved once (wasmtime's pooling allocator; 64-bit hosts only), instead of
    /// mapping and unmapping them for every task. Runs beyond it wait for a free place.
    /// `None`: no pool, no cap.
    pub pooled_tasks: Option<u32>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            backend: Backend::Auto,
            http: HttpConfig::default(),
            stdio_cap: 64 * 1024,
            max_wasm_stack: 512 * 1024,
            pooled_tasks: None,
        }
    }
}

/// Failure to set up the sandbox itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// wasmtime rejected the engine configuration.
    #[error("cannot configure wasmtime: {0}")]
    Engine(String),
    /// The compiled-code cache could not be opened.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The HTTP client could not be built.
    #[error("cannot build HTTP client: {0}")]
    Http(String),
    /// The epoch thread could not be started.
    #[error("cannot start the epoch thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// A verified, compiled task, ready to run many times.
pub struct PreparedTask {
    manifest: Manifest,
    allowlist: Allowlist,
    pre: host::TaskPre<HostState>,
    /// True when the compiled code came from the cache.
    pub from_cache: bool,
}

/// What a successful run produced.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// The task's output bytes.
    pub output: Vec<u8>,
    /// Fuel the `run` call consumed (identical on every host for identical inputs).
    pub fuel_consumed: u64,
    /// Wall time of instantiation plus run.
    pub wall_time: Duration,
    /// Captured stdout (capped).
    pub stdout: Vec<u8>,
    /// Captured stderr (capped).
    pub stderr: Vec<u8>,
    /// Lines the task logged through the `log` import (capped, sanitised).
    pub logs: Vec<String>,
    /// Bytes all memories and tables of the task held at the end (they never shrink, so this
    /// is also their peak); counted against the memory limit.
    pub memory_bytes: usize,
}

/// Per-run options.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Seeds the deterministic clocks and randomness; replicas of one unit share it.
    pub run_id: String,
    /// Receives progress reports.
    pub progress: Option<ProgressSink>,
    /// Pauses the task at its next fuel yield while set; paused time does not count against
    /// its wall-clock limit.
    pub pause: Option<PauseToken>,
}

/// The sandbox: one engine, linker, HTTP client and code cache shared by all runs.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<HostState>,
    cache: Option<cache::CodeCache>,
    fetcher: HttpFetcher,
    config: SandboxConfig,
    /// One permit per place in the pool, when the engine has one.
    pool_places: Option<tokio::sync::Semaphore>,
    _ticker: EpochTicker,
}

impl Sandbox {
    /// Builds the engine and starts its epoch ticker.
    pub fn new(config: SandboxConfig) -> Result<Self, SandboxError> {
        let (engine, pool_places) = build_engine(&config)?;
        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| SandboxError::Engine(format!("{e:#}")))?;
        Task::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |state| state)
            .map_err(|e| SandboxError::Engine(format!("{e:#}")))?;
        let cache = match &config.cache_dir {
            Some(dir) => Some(cache::CodeCache::open(
                dir,
                engine::engine_fingerprint(&engine),
            )?),
            None => None,
        };
        let fetcher =
            HttpFetcher::new(config.http.clone()).map_err(|e| SandboxError::Http(e.to_string()))?;
        let ticker = EpochTicker::start(engine.clone())?;
        Ok(Self {
            engine,
            linker,
            cache,
            fetcher,
            config,
            pool_places,
            _ticker: ticker,
        })
    }

    /// Whether tasks run from a pool reserved once (see [`SandboxConfig::pooled_tasks`]).
    pub fn is_pooled(&self) -> bool {
        self.pool_places.is_some()
    }

    /// `cranelift` or `pulley`.
    pub fn backend_name(&self) -> &'static str {
        engine::backend_name(&self.engine)
    }

    /// Verifies the signed manifest and the module against `trust` (before any compilation),
    /// then compiles the module or loads this client's own cached compilation of it.
    pub fn prepare(
        &self,
        trust: &TrustStore,
        signed: &SignedManifest,
        module: &[u8],
    ) -> Result<PreparedTask, RunError> {
        let manifest = trust.verify(signed, module)?.clone();
        let allowlist = Allowlist::new(&manifest.http_allow)
            .map_err(|e| RunError::BadManifest(e.to_string()))?;
        let cached = self
            .cache
            .as_ref()
            .and_then(|cache| cache.load(&self.engine, &manifest.module_sha256));
        let from_cache = cached.is_some();
        let component = match cached {
            Some(component) => component,
            None => {
                let component = Component::new(&self.engine, module)
                    .map_err(|e| RunError::InvalidModule(one_line(&e)))?;
                if let Some(cache) = &self.cache
                    && let Err(error) = cache.store(&manifest.module_sha256, &component)
                {
                    tracing::warn!(%error, "could not cache compiled module");
                }
                component
            }
        };
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| RunError::UnsupportedImports(one_line(&e)))?;
        let pre = TaskPre::new(pre).map_err(|e| RunError::UnsupportedImports(one_line(&e)))?;
        Ok(PreparedTask {
            manifest,
            allowlist,
            pre,
            from_cache,
        })
    }

    /// Runs a prepared task on `input` within the manifest's limits.
    pub async fn run(
        &self,
        task: &PreparedTask,
        input: &[u8],
        options: RunOptions,
    ) -> Result<RunOutput, RunError> {
        // A place in the pool first (never closed, so this only waits), held until the store
        // has given its instance back; the wait is not the task's wall time.
        let _place = match &self.pool_places {
            Some(places) => Some(
                places
                    .acquire()
                    .await
                    .map_err(|e| RunError::Internal(e.to_string()))?,
            ),
            None => None,
        };
        let limits = &task.manifest.limits;
        let memory_bytes = usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX);
        let (state, captured) = HostState::new(HostSetup {
            run_id: &options.run_id,
            allowlist: task.allowlist.clone(),
            fetcher: self.fetcher.clone(),
            memory_bytes,
            stdio_cap: self.config.stdio_cap,
            progress: options.progress,
        });
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        // What the host copies out of the task in one call (its output, or an argument of a
        // host call) is capped, so that an oversized output is refused before it is copied.
        let lift_cap = usize::try_from(limits.output_bytes)
            .unwrap_or(usize::MAX)
            .max(MAX_TASK_ERROR);
        store.set_hostcall_fuel(lift_cap);
        let internal = |e: wasmtime::Error| RunError::Internal(one_line(&e));
        store.set_fuel(INSTANTIATION_FUEL).map_err(internal)?;
        store
            .fuel_async_yield_interval(Some(FUEL_YIELD_INTERVAL))
            .map_err(internal)?;
        let wall = Duration::from_millis(limits.wall_time_ms);
        let ticks = limits.wall_time_ms / EPOCH_TICK.as_millis() as u64 + 1;
        store.set_epoch_deadline(ticks);
        let started = Instant::now();
        // Counts only the time the task was allowed to run (see `pause`).
        let active = pause::ActiveClock::start(options.pause.clone());
        let epoch_clock = active.clone();
        store.epoch_deadline_callback(move |_| {
            // The deadline passed in wall time; a pause may have left it active time to go.
            let left = wall.saturating_sub(epoch_clock.active());
            if left.is_zero() {
                return Ok(wasmtime::UpdateDeadline::Interrupt);
            }
            Ok(wasmtime::UpdateDeadline::Continue(
                (left.as_millis() / EPOCH_TICK.as_millis()) as u64 + 1,
            ))
        });

        let mut instantiated = false;
        // The epoch deadline interrupts wasm code; the timeout also ends a task that is
        // blocked in a host call (a sleep, a slow HTTP response), which epochs cannot reach.
        let work = async {
            let instance = task.pre.instantiate_async(&mut store).await?;
            instantiated = true;
            store.set_fuel(limits.fuel)?;
            let result = instance.call_run(&mut store, input).await;
            Ok::<_, wasmtime::Error>(result)
        };
        let outcome = match &options.pause {
            Some(token) => active.timeout(wall, token.run(work)).await,
            None => active.timeout(wall, work).await,
        }
        .ok_or(());
        let wall_time = started.elapsed();

        let stdout = captured.stdout.contents().to_vec();
        let stderr = captured.stderr.contents().to_vec();
        let result = match outcome {
            Err(_elapsed) => {
                return Err(RunError::WallTimeout {
                    limit_ms: limits.wall_time_ms,
                });
            }
            Ok(Err(error)) | Ok(Ok(Err(error))) => {
                let ending = classify::Ending {
                    limits,
                    instantiation_fuel: INSTANTIATION_FUEL,
                    instantiated,
                    limit_hit: store.data().limiter.hit(),
                    lift_cap,
                    stdout: &stdout,
                    stderr: &stderr,
                    stdio_cap: self.config.stdio_cap,
                };
                return Err(classify::classify(&error, &ending));
            }
            Ok(Ok(Ok(result))) => result,
        };
        let remaining = store.get_fuel().map_err(internal)?;
        let fuel_consumed = limits.fuel.saturating_sub(remaining);
        let output = result.map_err(|message| {
            RunError::TaskFailed(guest_text::sanitize(&message, MAX_TASK_ERROR))
        })?;
        if output.len() as u64 > limits.output_bytes {
            return Err(RunError::OutputTooLarge {
                limit: limits.output_bytes,
                actual: Some(output.len() as u64),
            });
        }
        Ok(RunOutput {
            output,
            fuel_consumed,
            wall_time,
            stdout,
            stderr,
            logs: std::mem::take(&mut store.data_mut().logs),
            memory_bytes: store.data().limiter.used_bytes(),
        })
    }
}

/// The engine, pooled as `config` asks when this host can (with one permit per place), else on
/// demand. A pool that cannot be reserved (e.g. address space capped with `ulimit -v`) is not
/// fatal: tasks then map their memories per run, as without one.
fn build_engine(
    config: &SandboxConfig,
) -> Result<(Engine, Option<tokio::sync::Semaphore>), SandboxError> {
    if let Some(tasks) = config.pooled_tasks.filter(|_| engine::POOLING_SUPPORTED) {
        match engine::build_engine(config.backend, config.max_wasm_stack, Some(tasks)) {
            Ok(engine) => {
                let places = tokio::sync::Semaphore::new(tasks.max(1) as usize);
                return Ok((engine, Some(places)));
            }
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "cannot reserve the task pool; tasks map their memory per run")
            }
        }
    }
    let engine = engine::build_engine(config.backend, config.max_wasm_stack, None)
        .map_err(|e| SandboxError::Engine(format!("{e:#}")))?;
    Ok((engine, None))
}

/// The first line of a wasmtime error with its causes, e.g. a compile or link error.
fn one_line(error: &wasmtime::Error) -> String {
    let text = format!("{error:#}");
    guest_text::sanitize(
        text.lines().next().unwrap_or_default(),
        classify::MAX_REASON,
    )
}
