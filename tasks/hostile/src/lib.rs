//! `hostile`: a TEST-ONLY task module that misbehaves on request.
//!
//! **Never sign it for a real project.** The host's hostile-module suite runs it to prove that the
//! sandbox contains each kind of abuse with a specific error and keeps serving the next task.
//!
//! Input: a JSON object whose `"mode"` selects the behaviour; unknown modes or fields are
//! refused with `invalid input JSON: <serde message>`. Outputs are bytes as listed (JSON where
//! marked), and every error string the module itself returns is listed too, so host tests can
//! match them exactly or by prefix.
//!
//! | input | behaviour | result |
//! |---|---|---|
//! | `{"mode":"ok"}` | nothing | ok: `fine` (4 bytes, not JSON) |
//! | `{"mode":"loop"}` | spins forever | never returns (fuel / deadline) |
//! | `{"mode":"sleep","secs":S}` | `std::thread::sleep(S s)`, a WASI monotonic-clock poll; default 3600 | ok: `slept S s` if it ever wakes |
//! | `{"mode":"sleep","url":U}` | one host `http-get` of `U` (point it at a server that hangs) | as `http` |
//! | `{"mode":"memory","mib":M}` | allocates and touches 16 MiB chunks up to `M` MiB (default 4096) | trap if the host traps on `memory.grow` failure; else err `memory: allocation failed after N MiB`; ok `allocated M MiB` |
//! | `{"mode":"stack","depth":D}` | non-tail recursion through the wasm call stack, `D` frames (default unbounded) | trap (stack overflow); ok `recursed D frames` if `D` fits |
//! | `{"mode":"output","bytes":B}` | returns `B` bytes of `x` (default 64 MiB) | ok: the bytes |
//! | `{"mode":"stdout"}` / `{"mode":"stderr"}` | writes 1 KiB lines forever | a failed write panics like `println!` (trap); with `"ignore_errors":true` it keeps writing (fuel / deadline) |
//! | `{"mode":"file","path":P}` | `std::fs::read(P)`, default `/etc/passwd` | err `file: <io error>` (expected); ok JSON `{"read_bytes":N}` means escape |
//! | `{"mode":"env"}` | reads `std::env::args()` and `std::env::vars()` | ok JSON `{"args":[..],"vars":{..}}` (expected `{"args":[],"vars":{}}`) |
//! | `{"mode":"http","url":U,"repeat":R,"headers":[[name,value],..]}` | `R` (default 1) host `http-get`s of `U` | ok JSON `{"status":S,"body_len":N,"requests":R}` (last response); err `format!("{:?}", HttpError)` of the first failure: `Denied("<reason>")`, `Timeout`, `TooLarge(<cap>)`, `TooManyRequests`, `Failed("<reason>")` |
//! | `{"mode":"nan"}` | NaN-producing f32/f64 arithmetic | ok JSON object, key -> `0x` + hex bits (keys sorted) |
//! | `{"mode":"clock"}` | wall clock, monotonic clock, `RandomState` hash keys (seeded from `wasi:random/insecure-seed`), `getrandom` (`wasi:random/random`) | ok JSON `{"system_time_ns":N,"instant_elapsed_ns":N,"random":[u64,u64,u64],"secure_random":[u64,u64,u64]}` (`secure_random` is the string `getrandom: <error>` if that fails) |
//! | `{"mode":"panic","message":M}` | `panic!("{M}")` (the message goes to stderr, then the module aborts) | trap (unreachable) |
//! | `{"mode":"exit","code":C}` | `std::process::exit(C)` | the run ends with no result; WASI p2 carries only success or failure, so the host sees status 0 for `C == 0` and 1 otherwise |
//! | `{"mode":"frames","depth":D}` | recursion with 64 KiB of locals per frame on the task's own stack in linear memory, `D` frames (default unbounded) | trap (out-of-bounds memory access once that stack runs past the start of memory); ok `recursed D large frames` if `D` fits |
//! | `{"mode":"error","message":M}` | returns `M` as the task's error, unchanged (control characters included) | err `M` |
//! | `{"mode":"log","line":L}` | one host `log` call with `L`, unchanged | ok: `logged` |

mod modes;

musketeer_task_sdk::task!(run);

fn run(input: &[u8]) -> Result<Vec<u8>, String> {
    modes::run(musketeer_task_sdk::parse_json(input)?)
}
