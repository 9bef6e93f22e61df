//! How a sandboxed run can end other than with an output.

use musketeer_signing_keys::VerifyError;

/// Why a task did not produce an output. Each variant names one containment or refusal, so
/// the server and the volunteer can tell a hostile module from a bug or an honest failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The module or its manifest failed verification; nothing was compiled.
    #[error("refused module: {0}")]
    Refused(#[from] VerifyError),
    /// The manifest is signed but unusable (e.g. a malformed allowlist entry).
    #[error("refused manifest: {0}")]
    BadManifest(String),
    /// The bytes are not a valid WebAssembly component for this engine.
    #[error("invalid module: {0}")]
    InvalidModule(String),
    /// The component imports something the musketeer host does not provide.
    #[error("module needs imports the sandbox does not offer: {0}")]
    UnsupportedImports(String),
    /// The task used up its fuel budget.
    #[error("fuel exhausted: the task used all {limit} units of its fuel budget")]
    FuelExhausted {
        /// The budget from the manifest.
        limit: u64,
    },
    /// The task ran past its wall-clock deadline.
    #[error("wall-clock timeout: the task ran longer than {limit_ms} ms")]
    WallTimeout {
        /// The deadline from the manifest.
        limit_ms: u64,
    },
    /// The task tried to grow memory beyond its limit.
    #[error("memory limit: the task tried to use more than {limit} bytes")]
    MemoryLimit {
        /// The limit from the manifest.
        limit: u64,
    },
    /// The task tried to grow a table or create instances beyond the sandbox's limits.
    #[error("resource limit: {0}")]
    ResourceLimit(String),
    /// The task exhausted its call stack.
    #[error("stack overflow")]
    StackOverflow,
    /// The task returned more output than the manifest allows.
    #[error("output too large: {actual} bytes, limit {limit}")]
    OutputTooLarge {
        /// The limit from the manifest.
        limit: u64,
        /// What the task returned.
        actual: u64,
    },
    /// The task wrote more to stdout or stderr than the capture cap.
    #[error("{stream} flood: the task wrote more than {cap} bytes")]
    StdioFlood {
        /// `stdout` or `stderr`.
        stream: &'static str,
        /// The capture cap.
        cap: usize,
    },
    /// The task returned an error of its own (e.g. a refused HTTP request it could not handle).
    #[error("task error: {0}")]
    TaskFailed(String),
    /// Any other trap (unreachable, out-of-bounds access, ...).
    #[error("trap: {0}")]
    Trap(String),
    /// A failure of the host, not of the task.
    #[error("internal error: {0}")]
    Internal(String),
}

impl RunError {
    /// A stable kebab-case name for reports and JSON output.
    pub fn kind(&self) -> &'static str {
        match self {
            RunError::Refused(_) => "refused-module",
            RunError::BadManifest(_) => "bad-manifest",
            RunError::InvalidModule(_) => "invalid-module",
            RunError::UnsupportedImports(_) => "unsupported-imports",
            RunError::FuelExhausted { .. } => "fuel-exhausted",
            RunError::WallTimeout { .. } => "wall-timeout",
            RunError::MemoryLimit { .. } => "memory-limit",
            RunError::ResourceLimit(_) => "resource-limit",
            RunError::StackOverflow => "stack-overflow",
            RunError::OutputTooLarge { .. } => "output-too-large",
            RunError::StdioFlood { .. } => "stdio-flood",
            RunError::TaskFailed(_) => "task-error",
            RunError::Trap(_) => "trap",
            RunError::Internal(_) => "internal",
        }
    }
}
