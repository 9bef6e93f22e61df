//! Sandbox benchmarks, side by side in one run (medians; the machine is shared and noisy):
//!
//! 1. per-task overhead: instantiate + run the `noop` task with the compiled cache warm;
//! 2. the `primes` task in wasm (fuel and NaN canonicalisation on) vs the same kernel native,
//!    with two diagnostic rows (not the goal): the same engine settings with fuel off, and with
//!    fuel and epoch interruption off, to show what the metering and the deadline checks cost;
//! 3. preparing a module cold (compile) vs from the compiled-code cache.
//!
//! Run: `cargo bench -p musketeer-client --bench sandbox`

#[allow(dead_code)]
#[path = "../../tasks/primes/src/kernel.rs"]
mod kernel;

use std::hint::black_box;
use std::time::{Duration, Instant};

use musketeer_client::sandbox::{
    Backend, PreparedTask, RunOptions, RunOutput, Sandbox, SandboxConfig, engine_config,
};
use musketeer_signing_keys::{Limits, Manifest, SecretKey, SignedManifest, TrustStore};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

struct Signed {
    trust: TrustStore,
    manifest: SignedManifest,
    module: Vec<u8>,
}

fn sign(path: &str) -> Signed {
    let module = std::fs::read(path).expect("built module");
    let key = SecretKey::generate();
    let limits = Limits {
        fuel: 1_000_000_000_000,
        wall_time_ms: 600_000,
        ..Limits::default()
    };
    let manifest = Manifest::for_module(
        "bench",
        semver::Version::new(1, 0, 0),
        &module,
        vec![],
        limits,
    )
    .expect("manifest")
    .sign(&key);
    let mut trust = TrustStore::default();
    trust.add(key.public_key());
    Signed {
        trust,
        manifest,
        module,
    }
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index]
}

fn sandbox(cache_dir: Option<std::path::PathBuf>, backend: Backend) -> Sandbox {
    Sandbox::new(SandboxConfig {
        cache_dir,
        backend,
        ..SandboxConfig::default()
    })
    .expect("sandbox")
}

async fn run(sandbox: &Sandbox, task: &PreparedTask, input: &[u8]) -> (Duration, RunOutput) {
    let options = RunOptions {
        run_id: "bench".into(),
        progress: None,
        pause: None,
    };
    let started = Instant::now();
    let out = sandbox.run(task, input, options).await.expect("run");
    (started.elapsed(), out)
}

/// A bare host for the diagnostic rows: default (empty) WASI, the musketeer imports as traps
/// (`primes` uses none), no limiter, no fuel yields.
struct Bare {
    ctx: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Bare {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

/// The production engine settings with fuel metering, and optionally epoch interruption, off.
struct Diagnostic {
    engine: Engine,
    linker: Linker<Bare>,
    component: Component,
}

impl Diagnostic {
    fn new(module: &[u8], epochs: bool) -> Self {
        let mut config = engine_config(Backend::Auto, SandboxConfig::default().max_wasm_stack)
            .expect("engine config");
        config.consume_fuel(false).epoch_interruption(epochs);
        let engine = Engine::new(&config).expect("engine");
        let component = Component::new(&engine, module).expect("compile");
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).expect("WASI");
        linker
            .define_unknown_imports_as_traps(&component)
            .expect("stub imports");
        Self {
            engine,
            linker,
            component,
        }
    }

    async fn run(&self, input: &[u8]) -> (Duration, Vec<u8>) {
        let bare = Bare {
            ctx: WasiCtxBuilder::new().build(),
            table: ResourceTable::new(),
        };
        let mut store = Store::new(&self.engine, bare);
        // Epochs never advance here (no ticker): the checks run, the deadline is never reached.
        store.set_epoch_deadline(u64::MAX / 2);
        let started = Instant::now();
        let instance = self
            .linker
            .instantiate_async(&mut store, &self.component)
            .await
            .expect("instantiate");
        let run = instance
            .get_typed_func::<(&[u8],), (Result<Vec<u8>, String>,)>(&mut store, "run")
            .expect("run export");
        let (output,) = run.call_async(&mut store, (input,)).await.expect("call");
        (started.elapsed(), output.expect("task result"))
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(bench());
}

async fn bench() {
    let cache = tempfile::tempdir().expect("temp dir");
    let warm = sandbox(Some(cache.path().join("compiled")), Backend::Auto);
    println!("backend: {}", warm.backend_name());

    // 1. Per-task overhead.
    let noop = sign(musketeer_task_artifacts::NOOP);
    let task = warm
        .prepare(&noop.trust, &noop.manifest, &noop.module)
        .expect("prepare");
    for _ in 0..200 {
        run(&warm, &task, b"").await;
    }
    let mut samples: Vec<Duration> = Vec::with_capacity(3000);
    for _ in 0..3000 {
        samples.push(run(&warm, &task, b"").await.0);
    }
    println!(
        "per-task overhead (noop, instantiate+run, cache warm): median {:.1} us, p90 {:.1} us, n={}",
        median(&mut samples).as_secs_f64() * 1e6,
        percentile(&mut samples, 0.9).as_secs_f64() * 1e6,
        samples.len()
    );

    // 2. wasm vs native, interleaved rounds.
    let primes = sign(musketeer_task_artifacts::PRIMES);
    let task = warm
        .prepare(&primes.trust, &primes.manifest, &primes.module)
        .expect("prepare");
    let (from, to) = (1u64, 30_000_000u64);
    let input = format!(r#"{{"from":{from},"to":{to}}}"#);
    let expected = kernel::count_primes(from, to);
    let fuel_off = Diagnostic::new(&primes.module, true);
    let no_checks = Diagnostic::new(&primes.module, false);
    let (mut native, mut wasm, mut wasm_fuel_off, mut wasm_no_checks) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut fuel = 0;
    let mut output = Vec::new();
    for _ in 0..21 {
        let started = Instant::now();
        let summary = black_box(kernel::count_primes(black_box(from), black_box(to)));
        native.push(started.elapsed());
        assert_eq!(summary, expected);
        let (elapsed, out) = run(&warm, &task, input.as_bytes()).await;
        wasm.push(elapsed);
        (fuel, output) = (out.fuel_consumed, out.output);
        let (elapsed, diagnostic_output) = fuel_off.run(input.as_bytes()).await;
        wasm_fuel_off.push(elapsed);
        assert_eq!(diagnostic_output, output);
        let (elapsed, diagnostic_output) = no_checks.run(input.as_bytes()).await;
        wasm_no_checks.push(elapsed);
        assert_eq!(diagnostic_output, output);
    }
    assert_eq!(
        String::from_utf8_lossy(&output),
        format!(
            r#"{{"count":{},"last":{}}}"#,
            expected.count,
            expected.last.expect("a prime")
        )
    );
    let native_median = median(&mut native);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let ratio = |d: Duration| d.as_secs_f64() / native_median.as_secs_f64();
    let wasm_median = median(&mut wasm);
    println!(
        "primes 1..{to} ({} primes), medians of {}: native {:.2} ms, wasm {:.2} ms (fuel {fuel}), wasm/native {:.3}x",
        expected.count,
        native.len(),
        ms(native_median),
        ms(wasm_median),
        ratio(wasm_median)
    );
    for (label, samples) in [
        ("fuel off", &mut wasm_fuel_off),
        ("fuel and epoch checks off", &mut wasm_no_checks),
    ] {
        let m = median(samples);
        println!(
            "  diagnostic, not the goal: wasm with {label} {:.2} ms, {:.3}x native",
            ms(m),
            ratio(m)
        );
    }

    // 3. Compile cold vs cached, interleaved, for the largest example module.
    let stock = sign(musketeer_task_artifacts::STOCK_DAY);
    let cold = sandbox(None, Backend::Auto);
    warm.prepare(&stock.trust, &stock.manifest, &stock.module)
        .expect("prime the cache");
    let (mut compile, mut cached) = (Vec::new(), Vec::new());
    for _ in 0..9 {
        let started = Instant::now();
        let task = cold
            .prepare(&stock.trust, &stock.manifest, &stock.module)
            .expect("compile");
        compile.push(started.elapsed());
        assert!(!task.from_cache);
        let started = Instant::now();
        let task = warm
            .prepare(&stock.trust, &stock.manifest, &stock.module)
            .expect("cached");
        cached.push(started.elapsed());
        assert!(task.from_cache);
    }
    let (compile_median, cached_median) = (median(&mut compile), median(&mut cached));
    println!(
        "prepare stock-day ({} KiB): compile median {:.1} ms, cached median {:.2} ms, cold/cached {:.0}x",
        stock.module.len() / 1024,
        compile_median.as_secs_f64() * 1e3,
        cached_median.as_secs_f64() * 1e3,
        compile_median.as_secs_f64() / cached_median.as_secs_f64()
    );
}
