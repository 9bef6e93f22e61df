//! Sandbox benchmarks, side by side in one run (medians; the machine is shared and noisy):
//!
//! 1. per-task overhead: instantiate + run the `noop` task with the compiled cache warm;
//! 2. the `primes` task in wasm (fuel and NaN canonicalisation on) vs the same kernel native;
//! 3. preparing a module cold (compile) vs from the compiled-code cache.
//!
//! Run: `cargo bench -p musketeer-client --bench sandbox`

#[allow(dead_code)]
#[path = "../../tasks/primes/src/kernel.rs"]
mod kernel;

use std::hint::black_box;
use std::time::{Duration, Instant};

use musketeer_client::sandbox::{Backend, PreparedTask, RunOptions, Sandbox, SandboxConfig};
use musketeer_signing_keys::{Limits, Manifest, SecretKey, SignedManifest, TrustStore};

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

async fn run(sandbox: &Sandbox, task: &PreparedTask, input: &[u8]) -> (Duration, u64) {
    let options = RunOptions {
        run_id: "bench".into(),
        progress: None,
    };
    let started = Instant::now();
    let out = sandbox.run(task, input, options).await.expect("run");
    (started.elapsed(), out.fuel_consumed)
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
    let (mut native, mut wasm) = (Vec::new(), Vec::new());
    let mut fuel = 0;
    for _ in 0..11 {
        let started = Instant::now();
        let summary = black_box(kernel::count_primes(black_box(from), black_box(to)));
        native.push(started.elapsed());
        assert_eq!(summary, expected);
        let (elapsed, used) = run(&warm, &task, input.as_bytes()).await;
        wasm.push(elapsed);
        fuel = used;
    }
    let (native_median, wasm_median) = (median(&mut native), median(&mut wasm));
    println!(
        "primes 1..{to} ({} primes): native median {:.1} ms, wasm median {:.1} ms (fuel {fuel}), wasm/native {:.3}x",
        expected.count,
        native_median.as_secs_f64() * 1e3,
        wasm_median.as_secs_f64() * 1e3,
        wasm_median.as_secs_f64() / native_median.as_secs_f64()
    );

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
