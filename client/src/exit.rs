//! Exit statuses of the `musketeer` binary and the one-line error report behind them: every
//! failure goes through [`report`], so that scripts can branch on the status and people read one
//! root cause with a hint.

use crate::api_client::ApiError;
use musketeer_protocol::ErrorCode;

/// Success.
pub const OK: u8 = 0;
/// Any other error (a file that cannot be read, a malformed input, ...).
pub const ERROR: u8 = 1;
/// The command line itself is wrong (clap's own status for usage errors).
pub const USAGE: u8 = 2;
/// Refused: the server refused the request (unknown batch or app, bad token, invalid request),
/// or `run` refused the task or the task failed in the sandbox.
pub const REFUSED: u8 = 3;
/// The server could not be reached.
pub const UNREACHABLE: u8 = 4;
/// `submit --wait` or `batch status --wait`: the batch ended, but some units failed or were
/// cancelled (their rows carry the error).
pub const BATCH_FAILURES: u8 = 5;

/// What `musketeer --help` says after the options.
pub const AFTER_HELP: &str = "\
Exit status:
  0  success
  1  error (unreadable file, malformed input, ...)
  2  usage error (unknown flag, missing argument, no server or token given)
  3  refused: by the server (bad token, unknown batch or app, invalid request) or, for `run`,
     the task was refused or failed in the sandbox
  4  the server could not be reached
  5  the waited-for batch ended with failed or cancelled units

Configuration: --server/--token, or MUSKETEER_SERVER/MUSKETEER_TOKEN, or the JSON file
~/.config/musketeer/config.json ({\"server\": \"http://...\", \"token\": \"mku_...\"}).
Diagnostics: -v/-vv/-vvv or MUSKETEER_LOG (tracing filter syntax).";

/// The command line misses something clap cannot require (a server or token may come from the
/// environment or the config file instead): exits with [`USAGE`], like a missing flag.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A waited-for batch ended with units that did not succeed: exits with [`BATCH_FAILURES`].
#[derive(Debug, thiserror::Error)]
#[error(
    "batch {batch} ended with {failed} failed and {cancelled} cancelled unit(s); their rows carry the error"
)]
pub struct BatchEndedWithFailures {
    /// The batch.
    pub batch: musketeer_protocol::BatchId,
    /// Its failed units.
    pub failed: u64,
    /// Its cancelled units.
    pub cancelled: u64,
}

/// The exit status and the text to print (one error line, maybe a hint line) for `error`.
pub fn report(error: &anyhow::Error) -> (u8, String) {
    // A task `run` refused or that failed in the sandbox: its message is one line already.
    if let Some(failed) = error.downcast_ref::<crate::commands::run::TaskRunFailed>() {
        return (REFUSED, format!("error: {failed}"));
    }
    if let Some(failures) = error.downcast_ref::<BatchEndedWithFailures>() {
        return (BATCH_FAILURES, format!("error: {failures}"));
    }
    if error.chain().any(|e| e.is::<UsageError>()) {
        return (USAGE, format!("error: {}", one_line(error)));
    }
    let api_error = error.chain().find_map(|e| e.downcast_ref::<ApiError>());
    let line = one_line(error);
    let (status, hint) = match api_error {
        Some(ApiError::Transport { .. }) => (
            UNREACHABLE,
            Some(
                "is the server running, and is --server (or MUSKETEER_SERVER, or \"server\" in \
                 the config file) its URL?",
            ),
        ),
        Some(ApiError::Server { code, status, .. }) => (
            if *status >= 500 { ERROR } else { REFUSED },
            match code {
                ErrorCode::Unauthorized => Some(
                    "check the token (--token, MUSKETEER_TOKEN or \"token\" in the config file); \
                     ask the project's operator for a new one if it was revoked or expired",
                ),
                ErrorCode::Forbidden => {
                    Some("this token's role or apps do not allow it; ask the project's operator")
                }
                ErrorCode::NotFound => Some(
                    "`musketeer apps list` shows the published apps, `musketeer batch list` \
                     this token's batches",
                ),
                _ => None,
            },
        ),
        Some(ApiError::BadUrl(_)) => (USAGE, None),
        _ => (ERROR, None),
    };
    let text = match hint {
        Some(hint) => format!("error: {line}\nhint: {hint}"),
        None => format!("error: {line}"),
    };
    (status, text)
}

/// The error chain on one line, outermost first, each message once. An unreachable server
/// is told as "cannot reach the server at URL" and the root cause (e.g. "Connection refused"),
/// without the HTTP stack's layers in between.
pub fn one_line(error: &anyhow::Error) -> String {
    let mut messages = Vec::new();
    for cause in error.chain() {
        if let Some(ApiError::Transport { url, .. }) = cause.downcast_ref::<ApiError>() {
            messages.push(format!("cannot reach the server at {url}"));
            if let Some(root) = error.chain().last() {
                messages.push(root.to_string());
            }
            break;
        }
        messages.push(cause.to_string());
    }
    crate::volunteer::events::compact_chain(messages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_refusal_is_refused_with_a_hint_for_bad_tokens() {
        let refused = anyhow::Error::new(ApiError::Server {
            status: 401,
            code: ErrorCode::Unauthorized,
            message: "unknown token".into(),
        })
        .context("cannot read batch 3");
        let (status, text) = report(&refused);
        assert_eq!(status, REFUSED);
        assert!(
            text.starts_with("error: cannot read batch 3: server refused (401")
                && text.contains("\nhint: check the token"),
            "{text}"
        );
        let missing = anyhow::Error::new(ApiError::Server {
            status: 404,
            code: ErrorCode::NotFound,
            message: "no batch 9".into(),
        });
        let (status, text) = report(&missing);
        assert_eq!(status, REFUSED);
        assert!(text.contains("\nhint: `musketeer apps list`"), "{text}");
        let invalid = anyhow::Error::new(ApiError::Server {
            status: 400,
            code: ErrorCode::InvalidRequest,
            message: "a batch needs 1 to 1000000 inputs".into(),
        });
        assert_eq!(report(&invalid).0, REFUSED);
        assert!(!report(&invalid).1.contains("hint"));
        let plain = anyhow::anyhow!("cannot read inputs file x");
        assert_eq!(
            report(&plain),
            (ERROR, "error: cannot read inputs file x".into())
        );
        let failures = anyhow::Error::new(BatchEndedWithFailures {
            batch: musketeer_protocol::BatchId(4),
            failed: 2,
            cancelled: 0,
        });
        assert_eq!(report(&failures).0, BATCH_FAILURES);
        let usage = anyhow::Error::new(UsageError("no server given: pass --server URL".into()));
        assert_eq!(
            report(&usage),
            (USAGE, "error: no server given: pass --server URL".into())
        );
    }
}
