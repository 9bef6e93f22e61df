//! `musketeer run`: verify and run one task locally.

use std::io::Write;

use anyhow::Context;
use musketeer_protocol::guest_text;
use musketeer_signing_keys::{ManifestError, TrustStore};

use crate::cli::{BackendArg, RunArgs};
use crate::sandbox::{Backend, RunOptions, Sandbox, SandboxConfig};

/// Why `run` failed, kept apart from setup errors so `main` can pick the exit code. Printed as
/// `<kind>: <error>` with the stable kind of [`RunError::kind`](crate::sandbox::RunError::kind),
/// e.g. `fuel-exhausted`.
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {0}", kind = .0.kind())]
pub struct TaskRunFailed(pub crate::sandbox::RunError);

/// Most bytes of the task's (escaped) stderr in the `--json` report.
const STDERR_MAX: usize = 256 * 1024;

pub async fn run(args: &RunArgs) -> anyhow::Result<()> {
    // Size-checked before a byte is read; a file that cannot be read is a setup error, one that
    // is too large or malformed a bad manifest.
    let signed = match musketeer_signing_keys::read_manifest_file(&args.manifest) {
        Ok(signed) => signed,
        Err(error @ ManifestError::Read { .. }) => return Err(error.into()),
        Err(error) => {
            return Err(
                TaskRunFailed(crate::sandbox::RunError::BadManifest(error.to_string())).into(),
            );
        }
    };
    let module = std::fs::read(&args.module)
        .with_context(|| format!("cannot read module {}", args.module.display()))?;
    let mut trust = TrustStore::default();
    for path in &args.trust {
        let key = musketeer_signing_keys::read_public_key(path)
            .with_context(|| format!("cannot read public key {}", path.display()))?;
        trust.add(key);
    }
    let input = match args.input.strip_prefix('@') {
        Some(path) => {
            std::fs::read(path).with_context(|| format!("cannot read input file {path}"))?
        }
        None => args.input.clone().into_bytes(),
    };
    let config = SandboxConfig {
        cache_dir: if args.no_cache {
            None
        } else {
            args.cache_dir.clone().or_else(super::default_cache_dir)
        },
        backend: match args.backend {
            BackendArg::Auto => Backend::Auto,
            BackendArg::Pulley => Backend::Pulley,
        },
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::new(config).context("cannot start the sandbox")?;
    let fail = TaskRunFailed;
    let task = sandbox.prepare(&trust, &signed, &module).map_err(fail)?;
    let options = RunOptions {
        run_id: args.run_id.clone(),
        progress: None,
        pause: None,
    };
    let result = sandbox.run(&task, &input, options).await.map_err(fail)?;

    let mut stdout = std::io::stdout().lock();
    if args.json {
        let output = match serde_json::from_slice::<serde_json::Value>(&result.output) {
            Ok(value) => value,
            Err(_) => serde_json::Value::String(String::from_utf8_lossy(&result.output).into()),
        };
        let report = serde_json::json!({
            "output": output,
            "fuel_consumed": result.fuel_consumed,
            "wall_time_ms": result.wall_time.as_secs_f64() * 1000.0,
            "backend": sandbox.backend_name(),
            "compiled_from_cache": task.from_cache,
            "stderr": guest_text::sanitize_lines(&String::from_utf8_lossy(&result.stderr), STDERR_MAX),
            "logs": result.logs,
            "memory_bytes": result.memory_bytes,
        });
        writeln!(stdout, "{report}")?;
    } else {
        stdout.write_all(&result.output)?;
        if !result.output.ends_with(b"\n") {
            writeln!(stdout)?;
        }
    }
    Ok(())
}
