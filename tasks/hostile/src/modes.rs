//! The hostile behaviours, one function per mode (see the crate docs for the contract).

// NaN mode computes `0/0` and `inf-inf` on purpose.
#![allow(clippy::eq_op)]

use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::hint::black_box;
use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use musketeer_task_sdk::http_get;
use serde::Deserialize;
use serde_json::json;

/// One mebibyte.
const MIB: u64 = 1024 * 1024;
/// Memory mode allocates in chunks of this many MiB.
const CHUNK_MIB: u64 = 16;

/// The input: `{"mode": "...", ...}`. Field-less modes are written `{}` so that
/// `deny_unknown_fields` also applies to them (serde ignores it for unit variants).
#[derive(Debug, Deserialize)]
#[serde(tag = "mode", rename_all = "lowercase", deny_unknown_fields)]
pub enum Mode {
    Ok {},
    Loop {},
    Sleep {
        #[serde(default = "an_hour")]
        secs: u64,
        url: Option<String>,
    },
    Memory {
        #[serde(default = "four_gib_in_mib")]
        mib: u64,
    },
    Stack {
        #[serde(default = "unbounded")]
        depth: u64,
    },
    Output {
        #[serde(default = "sixty_four_mib")]
        bytes: u64,
    },
    Stdout {
        #[serde(default)]
        ignore_errors: bool,
    },
    Stderr {
        #[serde(default)]
        ignore_errors: bool,
    },
    File {
        #[serde(default = "passwd")]
        path: String,
    },
    Env {},
    Http {
        url: String,
        #[serde(default = "once")]
        repeat: u32,
        #[serde(default)]
        headers: Vec<(String, String)>,
    },
    Nan {},
    Clock {},
    Panic {
        message: String,
    },
    Exit {
        code: i32,
    },
    Frames {
        #[serde(default = "unbounded")]
        depth: u64,
    },
    Error {
        message: String,
    },
    Log {
        line: String,
    },
}

fn an_hour() -> u64 {
    3600
}
fn four_gib_in_mib() -> u64 {
    4096
}
fn unbounded() -> u64 {
    u64::MAX
}
fn sixty_four_mib() -> u64 {
    64 * MIB
}
fn passwd() -> String {
    "/etc/passwd".to_owned()
}
fn once() -> u32 {
    1
}

/// Runs one mode. Errors are the strings documented in the crate docs.
pub fn run(mode: Mode) -> Result<Vec<u8>, String> {
    let bytes = match mode {
        Mode::Ok {} => b"fine".to_vec(),
        Mode::Loop {} => spin_forever(),
        Mode::Sleep { url: Some(url), .. } => http(&url, 1, &[])?,
        Mode::Sleep { secs, url: None } => {
            std::thread::sleep(Duration::from_secs(secs));
            format!("slept {secs} s").into_bytes()
        }
        Mode::Memory { mib } => allocate(mib)?,
        Mode::Stack { depth } => {
            black_box(recurse(0, black_box(depth)));
            format!("recursed {depth} frames").into_bytes()
        }
        Mode::Output { bytes } => {
            let n = usize::try_from(bytes)
                .map_err(|_| format!("output: {bytes} bytes cannot be addressed here"))?;
            vec![b'x'; n]
        }
        Mode::Stdout { ignore_errors } => flood(std::io::stdout(), ignore_errors, "stdout"),
        Mode::Stderr { ignore_errors } => flood(std::io::stderr(), ignore_errors, "stderr"),
        Mode::File { path } => match std::fs::read(&path) {
            Ok(content) => json_bytes(&json!({ "read_bytes": content.len() })),
            Err(e) => return Err(format!("file: {e}")),
        },
        Mode::Env {} => {
            let args: Vec<String> = std::env::args().collect();
            let vars: BTreeMap<String, String> = std::env::vars().collect();
            json_bytes(&json!({ "args": args, "vars": vars }))
        }
        Mode::Http {
            url,
            repeat,
            headers,
        } => http(&url, repeat, &headers)?,
        Mode::Nan {} => json_bytes(&nan_bits()),
        Mode::Clock {} => json_bytes(&clock()),
        Mode::Panic { message } => panic!("{message}"),
        Mode::Exit { code } => std::process::exit(code),
        Mode::Frames { depth } => {
            black_box(big_frames(0, black_box(depth)));
            format!("recursed {depth} large frames").into_bytes()
        }
        Mode::Error { message } => return Err(message),
        Mode::Log { line } => {
            musketeer_task_sdk::log(&line);
            b"logged".to_vec()
        }
    };
    Ok(bytes)
}

fn json_bytes(value: &serde_json::Value) -> Vec<u8> {
    value.to_string().into_bytes()
}

fn spin_forever() -> ! {
    let mut counter = 0u64;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

fn allocate(mib: u64) -> Result<Vec<u8>, String> {
    let mut held: Vec<Vec<u8>> = Vec::with_capacity((mib / CHUNK_MIB + 1) as usize);
    let mut allocated = 0;
    while allocated < mib {
        let this = CHUNK_MIB.min(mib - allocated);
        let len = (this * MIB) as usize;
        let mut chunk = Vec::new();
        if chunk.try_reserve_exact(len).is_err() {
            return Err(format!("memory: allocation failed after {allocated} MiB"));
        }
        // Touch every page so the memory is really used, not just reserved.
        chunk.resize(len, 0xA5);
        held.push(chunk);
        allocated += this;
    }
    black_box(&held);
    Ok(format!("allocated {allocated} MiB").into_bytes())
}

/// Recurses `limit - n` times. The work after the call (not an associative accumulator) keeps
/// LLVM from turning the recursion into a loop, and `inline(never)` keeps every frame a real wasm
/// call, so the host's wasm stack limit is what stops it.
#[inline(never)]
fn recurse(n: u64, limit: u64) -> u64 {
    if n >= limit {
        return n;
    }
    let deeper = recurse(n + 1, limit);
    deeper.rotate_left(7) ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Bytes of local data in each [`big_frames`] frame.
const BIG_FRAME: usize = 64 * 1024;

/// Like [`recurse`], but each frame holds [`BIG_FRAME`] bytes of locals. Such locals live on the
/// task's own stack in its linear memory (not on the wasm call stack), so this overflows that
/// stack after a few frames and runs off the start of memory instead of hitting the host's
/// wasm stack limit.
#[inline(never)]
fn big_frames(n: u64, limit: u64) -> u64 {
    let mut frame = [0u8; BIG_FRAME];
    frame[n as usize % BIG_FRAME] = n as u8;
    black_box(&mut frame);
    if n >= limit {
        return u64::from(frame[0]);
    }
    let deeper = big_frames(n + 1, limit);
    deeper ^ u64::from(frame[(deeper as usize) % BIG_FRAME])
}

fn flood(mut out: impl Write, ignore_errors: bool, name: &str) -> ! {
    let mut line = vec![b'#'; 1023];
    line.push(b'\n');
    let mut written: u64 = 0;
    loop {
        match out.write_all(&line).and_then(|()| out.flush()) {
            Ok(()) => written += line.len() as u64,
            Err(e) if !ignore_errors => {
                // What `println!` does on a failed write: the run traps.
                panic!("{name}: write failed after {written} bytes: {e}")
            }
            Err(_) => {}
        }
    }
}

fn http(url: &str, repeat: u32, headers: &[(String, String)]) -> Result<Vec<u8>, String> {
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let mut last = None;
    for _ in 0..repeat {
        last = Some(http_get(url, &headers).map_err(|e| format!("{e:?}"))?);
    }
    let (status, body_len) = last.map_or((0, 0), |r| (r.status, r.body.len()));
    Ok(json_bytes(&json!({
        "status": status,
        "body_len": body_len,
        "requests": repeat,
    })))
}

fn nan_bits() -> serde_json::Value {
    let zero = black_box(0.0f64);
    let inf = black_box(f64::INFINITY);
    let zero32 = black_box(0.0f32);
    let f64_hex = |v: f64| format!("0x{:016x}", v.to_bits());
    let f32_hex = |v: f32| format!("0x{:08x}", v.to_bits());
    json!({
        "f64_0_div_0": f64_hex(zero / zero),
        "f64_inf_minus_inf": f64_hex(inf - inf),
        "f64_sqrt_neg1": f64_hex(black_box(-1.0f64).sqrt()),
        "f64_signaling_plus_0": f64_hex(black_box(f64::from_bits(0x7ff0_0000_0000_0001)) + zero),
        "f64_negative_nan_times_1": f64_hex(black_box(f64::from_bits(0xfff8_0000_0000_0001)) * black_box(1.0)),
        "f32_0_div_0": f32_hex(zero32 / zero32),
        "f32_sqrt_neg1": f32_hex(black_box(-1.0f32).sqrt()),
        "f32_demote_f64_nan": f32_hex(black_box(f64::from_bits(0x7ff8_dead_beef_0001)) as f32),
        "f64_promote_f32_nan": f64_hex(f64::from(black_box(f32::from_bits(0x7fc0_1234)))),
    })
}

fn clock() -> serde_json::Value {
    let system_time_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let started = Instant::now();
    // A little work so a real monotonic clock would move.
    let mut x = 0u64;
    for i in 0..black_box(100_000u64) {
        x = black_box(x.wrapping_add(i));
    }
    let instant_elapsed_ns = started.elapsed().as_nanos() as u64;
    // `RandomState` keys come from `wasi:random/insecure-seed`; each new one differs from the last.
    let random: Vec<u64> = (0..3)
        .map(|i: u64| std::collections::hash_map::RandomState::new().hash_one(i))
        .collect();
    // getrandom reads `wasi:random/random`; a failure is reported in place of the numbers.
    let secure: Result<Vec<u64>, String> = (0..3)
        .map(|_| getrandom::u64().map_err(|e| format!("getrandom: {e}")))
        .collect();
    json!({
        "system_time_ns": system_time_ns,
        "instant_elapsed_ns": instant_elapsed_ns,
        "random": random,
        "secure_random": match secure {
            Ok(values) => json!(values),
            Err(e) => json!(e),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_json(input: &str) -> Result<Vec<u8>, String> {
        run(musketeer_task_sdk::parse_json(input.as_bytes())?)
    }

    fn json_of(input: &str) -> serde_json::Value {
        serde_json::from_slice(&run_json(input).unwrap()).unwrap()
    }

    #[test]
    fn ok_and_bad_input() {
        assert_eq!(run_json(r#"{"mode":"ok"}"#).unwrap(), b"fine");
        let err = run_json(r#"{"mode":"explode"}"#).unwrap_err();
        assert!(
            err.starts_with("invalid input JSON: unknown variant `explode`"),
            "{err}"
        );
        let err = run_json(r#"{"mode":"ok","extra":1}"#).unwrap_err();
        assert!(
            err.starts_with("invalid input JSON: unknown field `extra`"),
            "{err}"
        );
        let err = run_json(r#"{"mode":"http"}"#).unwrap_err();
        assert!(
            err.starts_with("invalid input JSON: missing field `url`"),
            "{err}"
        );
    }

    #[test]
    fn bounded_modes_finish() {
        assert_eq!(
            run_json(r#"{"mode":"memory","mib":40}"#).unwrap(),
            b"allocated 40 MiB"
        );
        assert_eq!(
            run_json(r#"{"mode":"stack","depth":1000}"#).unwrap(),
            b"recursed 1000 frames"
        );
        assert_eq!(
            run_json(r#"{"mode":"output","bytes":5}"#).unwrap(),
            b"xxxxx"
        );
        assert_eq!(run_json(r#"{"mode":"output"}"#).unwrap().len(), 64 << 20);
        assert_eq!(
            run_json(r#"{"mode":"sleep","secs":0}"#).unwrap(),
            b"slept 0 s"
        );
        assert_eq!(
            run_json(r#"{"mode":"frames","depth":3}"#).unwrap(),
            b"recursed 3 large frames"
        );
        assert_eq!(
            run_json(r#"{"mode":"log","line":"a\nb"}"#).unwrap(),
            b"logged"
        );
        assert_eq!(
            run_json(r#"{"mode":"error","message":"no\u001b[31m"}"#).unwrap_err(),
            "no\u{1b}[31m"
        );
    }

    #[test]
    fn file_errors_carry_the_io_error() {
        let err = run_json(r#"{"mode":"file","path":"/nonexistent/musketeer"}"#).unwrap_err();
        assert!(err.starts_with("file: "), "{err}");
    }

    #[test]
    fn http_errors_are_debug_formatted() {
        // Natively there is no host: the SDK answers `Failed`.
        let err = run_json(r#"{"mode":"http","url":"http://127.0.0.1:9/"}"#).unwrap_err();
        assert!(err.starts_with("Failed(\"no musketeer host"), "{err}");
        let err = run_json(r#"{"mode":"sleep","url":"http://127.0.0.1:9/"}"#).unwrap_err();
        assert!(err.starts_with("Failed("), "{err}");
        // Zero requests leave nothing to report but are not an error.
        let out = json_of(r#"{"mode":"http","url":"http://127.0.0.1:9/","repeat":0}"#);
        assert_eq!(out, json!({"status": 0, "body_len": 0, "requests": 0}));
    }

    #[test]
    fn report_shapes() {
        let env = json_of(r#"{"mode":"env"}"#);
        assert!(env["args"].is_array() && env["vars"].is_object());
        let nan = json_of(r#"{"mode":"nan"}"#);
        let f64_nan = nan["f64_0_div_0"].as_str().unwrap();
        let bits = u64::from_str_radix(&f64_nan[2..], 16).unwrap();
        assert!(f64::from_bits(bits).is_nan());
        let clock = json_of(r#"{"mode":"clock"}"#);
        assert!(clock["system_time_ns"].as_u64().unwrap() > 0);
        assert_eq!(clock["random"].as_array().unwrap().len(), 3);
        assert_eq!(clock["secure_random"].as_array().unwrap().len(), 3);
    }
}
