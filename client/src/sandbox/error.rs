//! How a sandboxed run can end other than with an output.

use musketeer_signing_keys::VerifyError;

/// Why a task did not produce an output. Each variant names one containment or refusal, so
/// the server and the volunteer can tell a hostile module from a bug or an honest failure.
///
/// The message (`Display`) is a one-line reason that does not repeat the [kind](Self::kind):
/// printed as `<kind>: <reason>`, e.g. `task-error: TWSE: no data`. Text that came from the
/// guest is already sanitised (control characters escaped, length capped).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The module or its manifest failed verification; nothing was compiled.
    #[error("{0}")]
    Refused(#[from] VerifyError),
    /// The manifest is signed but unusable (e.g. a malformed allowlist entry).
    #[error("the signed manifest is unusable: {0}")]
    BadManifest(String),
    /// The bytes are not a valid WebAssembly component for this engine.
    #[error("not a valid WebAssembly component for this host: {0}")]
    InvalidModule(String),
    /// The component imports something the musketeer host does not provide.
    #[error("the module needs imports the sandbox does not offer: {0}")]
    UnsupportedImports(String),
    /// The module's start-up code (core start functions, run while instantiating) used up the
    /// sandbox's instantiation budget, which is separate from the manifest's fuel.
    #[error(
        "the module's start-up code used all {limit} units of the sandbox's instantiation fuel \
         before `run` was called"
    )]
    InstantiationFuelExhausted {
        /// The sandbox's fixed instantiation budget.
        limit: u64,
    },
    /// The task used up its fuel budget.
    #[error("the task used all {limit} units of its fuel budget")]
    FuelExhausted {
        /// The budget from the manifest.
        limit: u64,
    },
    /// The task ran past its wall-clock deadline.
    #[error("the task ran longer than {limit_ms} ms")]
    WallTimeout {
        /// The deadline from the manifest.
        limit_ms: u64,
    },
    /// The task's memories and tables together would have outgrown its memory limit.
    #[error(
        "the task tried to use more than {limit} bytes of memory (all its memories and tables together)"
    )]
    MemoryLimit {
        /// The limit from the manifest.
        limit: u64,
    },
    /// The task tried to grow a table, create instances or pass data beyond the sandbox's
    /// fixed limits.
    #[error("{0}")]
    ResourceLimit(String),
    /// The task exhausted the wasm call stack.
    #[error("the task exhausted the wasm call stack (too deep a recursion)")]
    StackOverflow,
    /// The task accessed memory outside its linear memory.
    #[error(
        "the task accessed memory outside its linear memory (for a Rust task: its stack in \
         linear memory overflowed, e.g. through large local variables)"
    )]
    MemoryFault,
    /// The task panicked (a Rust panic aborts with an `unreachable` trap).
    #[error("the task panicked: {0}")]
    Panicked(String),
    /// The task called `exit` instead of returning a result.
    #[error("the task called exit({code}) instead of returning a result")]
    Exited {
        /// The status it passed to `exit`.
        code: i32,
    },
    /// The task returned more output than the manifest allows. Refused before the host copies
    /// it out of the task's memory.
    #[error("the task's output is larger than its limit of {limit} bytes{}", actual_size(*.actual))]
    OutputTooLarge {
        /// The limit from the manifest.
        limit: u64,
        /// What the task returned, when known (an output far over the limit is refused before
        /// its length is read).
        actual: Option<u64>,
    },
    /// The task wrote more to stdout or stderr than the capture cap.
    #[error("the task wrote more than {cap} bytes to {stream}")]
    StdioFlood {
        /// `stdout` or `stderr`.
        stream: &'static str,
        /// The capture cap.
        cap: usize,
    },
    /// The task returned an error of its own (e.g. a refused HTTP request it could not handle);
    /// the message is the task's own words, sanitised.
    #[error("{0}")]
    TaskFailed(String),
    /// Any other trap (integer division by zero, a bare `unreachable`, ...).
    #[error("{0}")]
    Trap(String),
    /// A failure of the host, not of the task.
    #[error("the sandbox failed (not the task's fault): {0}")]
    Internal(String),
}

fn actual_size(actual: Option<u64>) -> String {
    actual.map_or_else(String::new, |bytes| format!(" ({bytes} bytes)"))
}

impl RunError {
    /// A stable kebab-case name for reports and JSON output.
    pub fn kind(&self) -> &'static str {
        match self {
            RunError::Refused(_) => "refused-module",
            RunError::BadManifest(_) => "bad-manifest",
            RunError::InvalidModule(_) => "invalid-module",
            RunError::UnsupportedImports(_) => "unsupported-imports",
            RunError::InstantiationFuelExhausted { .. } => "instantiation-fuel-exhausted",
            RunError::FuelExhausted { .. } => "fuel-exhausted",
            RunError::WallTimeout { .. } => "wall-timeout",
            RunError::MemoryLimit { .. } => "memory-limit",
            RunError::ResourceLimit(_) => "resource-limit",
            RunError::StackOverflow => "stack-overflow",
            RunError::MemoryFault => "memory-fault",
            RunError::Panicked(_) => "panic",
            RunError::Exited { .. } => "exit",
            RunError::OutputTooLarge { .. } => "output-too-large",
            RunError::StdioFlood { .. } => "stdio-flood",
            RunError::TaskFailed(_) => "task-error",
            RunError::Trap(_) => "trap",
            RunError::Internal(_) => "internal",
        }
    }
}
