//! `cargo xtask api-fuzz` (and a step of `cargo xtask test`): property-based fuzzing of the HTTP
//! API against the OpenAPI document the server serves, with schemathesis (pinned, in a venv
//! under target/).
//!
//! A real debug `musketeer-server` on 127.0.0.1 (free port, store in a temp dir) gets a
//! published app, a batch and a registered host, then schemathesis runs once per kind of
//! caller (host, researcher, admin) with a fixed seed and a bounded number of examples. Its
//! checks: no 5xx, and every answer's status, content type and body as the document says. Any
//! failure fails the step, with schemathesis' report (a `curl` line per failure) above it.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::demo::{Child, TempDir, output, s, step};
use crate::{cargo, root, run};

/// The schemathesis release the step is pinned to (a new one may generate other cases).
const SCHEMATHESIS: &str = "schemathesis==4.32.5";
/// The checks: no server error, and answers as documented.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_schema_conformance";
/// Examples per operation and caller: with 3 callers and ~30 operations, about a minute on 2
/// cores.
const MAX_EXAMPLES: &str = "20";
/// Fixed so that a failure reproduces and a pass stays a pass.
const SEED: &str = "20261201";

/// Schemathesis' settings beyond the command line: long polls answer at once (`wait_ms=0`; the
/// server caps waits at 30 s, and fuzzing them would only spend the time budget waiting), and
/// a request may take longer than that cap before it counts as a network error.
const CONFIG: &str = "request-timeout = 40.0\n\
                      [parameters]\n\
                      \"query.wait_ms\" = 0\n";

/// `build_binaries`: build the debug binaries first (when run alone; `cargo xtask test` has
/// built them already).
pub fn run_fuzz(build_binaries: bool) -> Result<(), String> {
    let root = root();
    let venv = root.join("target").join("schemathesis-venv");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    step(&format!(
        "API fuzzing with {SCHEMATHESIS} (venv {})",
        venv.display()
    ));
    if !venv.join("bin").join("python").exists() {
        run(Command::new(&python).args(["-m", "venv"]).arg(&venv)).map_err(|error| {
            format!(
                "{error}\nthe API fuzzing step needs Python >= 3.10 with venv: install it \
                 (Debian: apt-get install python3 python3-venv) or point PYTHON at it"
            )
        })?;
    }
    let bin = venv.join("bin");
    run(Command::new(bin.join("python")).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        SCHEMATHESIS,
    ]))?;
    if build_binaries {
        cargo(&["build", "-p", "musketeer-client", "-p", "musketeer-server"])?;
    }
    let debug = root.join("target").join("debug");
    let exe = std::env::consts::EXE_SUFFIX;
    let musketeer = debug.join(format!("musketeer{exe}"));
    let server_bin = debug.join(format!("musketeer-server{exe}"));

    let work = TempDir::create("api-fuzz")?;
    let callers = project(&musketeer, &server_bin, work.path())?;
    let mut server = Command::new(&server_bin);
    server
        .args(["serve", "--data-dir", &s(&work.path().join("data"))])
        .args(["--listen", "127.0.0.1:0"])
        .env("MUSKETEER_LOG", "warn");
    let mut server = Child::spawn(server, "musketeer-server", false)?;
    let url = server.server_url()?;
    let host = seed(&musketeer, &url, &callers, work.path())?;

    let config = work.path().join("schemathesis.toml");
    std::fs::write(&config, CONFIG)
        .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
    let schema = format!("{url}/api/v1/openapi.json");
    // The host first: the admin run may ban it. The admin run leaves out revoking tokens, which
    // would revoke its own token half-way (the Rust tests cover revocation).
    let runs: [(&str, &str, &[&str]); 3] = [
        ("host", &host, &[]),
        ("researcher", &callers.researcher, &[]),
        (
            "admin",
            &callers.admin,
            &["--exclude-operation-id", "DELETE /api/v1/tokens/{id}"],
        ),
    ];
    for (who, token, extra) in runs {
        step(&format!("schemathesis as the {who}"));
        run(Command::new(bin.join("st"))
            .arg("--config-file")
            .arg(&config)
            .args(["run", &schema, "--checks", CHECKS])
            .args(["--max-examples", MAX_EXAMPLES, "--seed", SEED])
            .args(["--workers", "1", "--generation-database", "none"])
            .args(["--no-color", "--suppress-health-check", "all"])
            .args(extra)
            .arg("--header")
            .arg(format!("Authorization: Bearer {token}"))
            .current_dir(work.path()))
        .map_err(|error| format!("{error}\nschemathesis found the failures listed above"))?;
    }
    server.terminate();
    Ok(())
}

/// The tokens of a fresh project.
struct Callers {
    admin: String,
    researcher: String,
    publisher: String,
}

/// Creates a project in `dir/data` trusting a new key in `dir/keys`.
fn project(musketeer: &Path, server: &Path, dir: &Path) -> Result<Callers, String> {
    let keys = dir.join("keys");
    output(musketeer, &["keys", "generate", "--out", &s(&keys)])?;
    let data = s(&dir.join("data"));
    let init = output(
        server,
        &[
            "init",
            "--data-dir",
            &data,
            "--project-name",
            "api fuzzing",
            "--trust-key",
            &s(&keys.join("musketeer.pub")),
        ],
    )?;
    let admin = init
        .lines()
        .find(|l| l.starts_with("mku_"))
        .ok_or_else(|| format!("`musketeer-server init` printed no admin token:\n{init}"))?
        .to_owned();
    let token = |role: &str| -> Result<String, String> {
        let out = output(
            server,
            &["token", "create", "--data-dir", &data, "--role", role],
        )?;
        Ok(out.trim().to_owned())
    };
    Ok(Callers {
        admin,
        researcher: token("researcher")?,
        publisher: token("publisher")?,
    })
}

/// Gives the fuzzer something to find: an app (any bytes make a module the server stores), a
/// batch of it, and a host. Answers the host's token.
fn seed(musketeer: &Path, url: &str, callers: &Callers, dir: &Path) -> Result<String, String> {
    let module = dir.join("module.wasm");
    let manifest = dir.join("fuzz.manifest.json");
    std::fs::write(&module, b"\0asm fuzzing module")
        .map_err(|e| format!("cannot write {}: {e}", module.display()))?;
    output(
        musketeer,
        &[
            "sign",
            "--key",
            &s(&dir.join("keys").join("musketeer.key")),
            "--module",
            &s(&module),
            "--app",
            "fuzz",
            "--version",
            "1.0.0",
            "--out",
            &s(&manifest),
        ],
    )?;
    output(
        musketeer,
        &[
            "publish",
            "--server",
            url,
            "--token",
            &callers.publisher,
            "--manifest",
            &s(&manifest),
            "--module",
            &s(&module),
        ],
    )?;
    post_json(
        url,
        "/api/v1/batches",
        Some(&callers.researcher),
        r#"{"app": "fuzz", "inputs": [1, 2, 3, 4]}"#,
    )?;
    let registered = post_json(
        url,
        "/api/v1/hosts/register",
        None,
        r#"{"name": "fuzzer", "platform": {"arch": "x86_64", "os": "linux",
            "client_version": "0.1.0", "wasmtime_version": "48.0.8",
            "backend": "cranelift", "slots": 2}}"#,
    )?;
    let answer: serde_json::Value = serde_json::from_str(&registered)
        .map_err(|e| format!("registering a host answered {registered:?}: {e}"))?;
    answer["host_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("registering a host answered {registered:?}"))
}

/// `POST path` with a JSON body; the answer's body if it is a 2xx (std only: xtask keeps its
/// dependencies minimal).
fn post_json(url: &str, path: &str, token: Option<&str>, body: &str) -> Result<String, String> {
    let addr = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("not an http URL: {url}"))?;
    let mut stream =
        TcpStream::connect(addr).map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let authorization = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{authorization}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("POST {path}: {e}"))?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|e| format!("POST {path}: {e}"))?;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    if head.starts_with("HTTP/1.1 2") {
        Ok(body.to_owned())
    } else {
        Err(format!("POST {path} answered {head}\n{body}"))
    }
}
