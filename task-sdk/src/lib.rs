//! Guest-side API for musketeer task modules.
//!
//! A musketeer task is a WebAssembly component built for `wasm32-wasip2` that exports one
//! function, `run(input) -> result<output, error>` (the WIT world in `task-sdk/wit/task.wit`).
//! This crate hides the wit-bindgen plumbing: a task is a plain Rust function, and the
//! [`task!`] macro turns it into the component export.
//!
//! ```no_run
//! // src/lib.rs of a crate with `crate-type = ["cdylib"]`
//! musketeer_task_sdk::task!(run);
//!
//! fn run(input: &[u8]) -> Result<Vec<u8>, String> {
//!     let text = std::str::from_utf8(input).map_err(|e| format!("input is not UTF-8: {e}"))?;
//!     musketeer_task_sdk::log(&format!("got {} bytes", input.len()));
//!     Ok(text.to_uppercase().into_bytes())
//! }
//! ```
//!
//! With the default `json` feature, [`task_json!`] takes and returns serde types instead:
//!
//! ```no_run
//! #[derive(serde::Deserialize)]
//! struct Input { a: i64, b: i64 }
//! #[derive(serde::Serialize)]
//! struct Output { sum: i64 }
//!
//! musketeer_task_sdk::task_json!(add);
//!
//! fn add(input: Input) -> Result<Output, String> {
//!     Ok(Output { sum: input.a.checked_add(input.b).ok_or("overflow")? })
//! }
//! ```
//!
//! The host imports are wrapped as [`http_get`], [`progress`] and [`log`]. Everything else a
//! task sees is deterministic WASI p2: clocks and random numbers are seeded per work unit, and
//! there is no filesystem, environment, argument list or socket.
//!
//! Build with `cargo build --release --target wasm32-wasip2`; the `.wasm` that cargo writes is
//! already a component. On other targets (for `cargo test` of a task's plain modules) the crate
//! compiles too: the export is left out and [`http_get`] answers [`HttpError::Failed`].

mod host;
#[cfg(feature = "json")]
mod json;

pub use host::{HttpError, HttpResponse, http_get, log, progress};
#[cfg(feature = "json")]
pub use json::{parse_json, to_json};

/// Not public API: used by the [`task!`] and [`task_json!`] expansions.
#[doc(hidden)]
pub mod __private {
    /// The wit-bindgen output for the `task` world.
    #[allow(missing_docs, clippy::all, unsafe_op_in_unsafe_fn)]
    pub mod bindings {
        wit_bindgen::generate!({
            world: "task",
            path: "wit",
            pub_export_macro: true,
            export_macro_name: "__musketeer_export_task_world",
            default_bindings_module: "musketeer_task_sdk::__private::bindings",
        });
    }

    pub use bindings::Guest;

    #[cfg(feature = "json")]
    pub use serde_json;

    /// Calls the task function and converts its result to the ABI's types.
    pub fn call<F, O, E>(input: &[u8], run: F) -> Result<Vec<u8>, String>
    where
        F: FnOnce(&[u8]) -> Result<O, E>,
        O: Into<Vec<u8>>,
        E: core::fmt::Display,
    {
        run(input).map(Into::into).map_err(|e| e.to_string())
    }

    /// Like [`call`], with JSON decoding of the input and encoding of the output.
    #[cfg(feature = "json")]
    pub fn call_json<F, I, O, E>(input: &[u8], run: F) -> Result<Vec<u8>, String>
    where
        F: FnOnce(I) -> Result<O, E>,
        I: serde::de::DeserializeOwned,
        O: serde::Serialize,
        E: core::fmt::Display,
    {
        let input = crate::parse_json(input)?;
        let output = run(input).map_err(|e| e.to_string())?;
        crate::to_json(&output)
    }
}

/// Exports a function as the task's `run`.
///
/// The function takes the input bytes and returns `Result<O, E>` where `O: Into<Vec<u8>>`
/// (`Vec<u8>`, `String`, ...) and `E: Display` (the error text becomes the run's error result).
/// Use it once per crate, at item level. A panic aborts the run (the host reports a trap).
///
/// The export exists only when compiling for `wasm32`; on other targets the macro expands to a
/// reference to the function so that native `cargo test` of the crate works.
#[macro_export]
macro_rules! task {
    ($run:expr $(,)?) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct MusketeerTask;

            impl $crate::__private::Guest for MusketeerTask {
                fn run(
                    input: ::std::vec::Vec<u8>,
                ) -> ::core::result::Result<::std::vec::Vec<u8>, ::std::string::String> {
                    $crate::__private::call(&input, $run)
                }
            }

            $crate::__private::bindings::__musketeer_export_task_world!(
                MusketeerTask with_types_in $crate::__private::bindings
            );
        };

        #[cfg(not(target_arch = "wasm32"))]
        const _: () = {
            #[allow(dead_code)]
            fn musketeer_task_entry(
                input: &[u8],
            ) -> ::core::result::Result<::std::vec::Vec<u8>, ::std::string::String> {
                $crate::__private::call(input, $run)
            }
        };
    };
}

/// Exports a function taking and returning serde types as the task's `run`.
///
/// The function takes `I: DeserializeOwned` and returns `Result<O, E>` with `O: Serialize` and
/// `E: Display`. Input that does not decode is answered with the error
/// `invalid input JSON: <serde_json message>` without calling the function; the output is
/// compact JSON (`serde_json::to_vec`).
#[cfg(feature = "json")]
#[macro_export]
macro_rules! task_json {
    ($run:expr $(,)?) => {
        $crate::task!(|input: &[u8]| $crate::__private::call_json(input, $run));
    };
}
