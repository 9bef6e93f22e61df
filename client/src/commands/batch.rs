//! `musketeer batch status|results|cancel|delete`, and the progress display of `submit --wait`.

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use musketeer_protocol::{
    BatchId, BatchList, BatchState, BatchStatus, ErrorCode, ResultsFormat, paths,
};

use super::progress::Display;
use crate::api_client::{ApiClient, ApiError};
use crate::cli::{BatchCommand, ResultsFormatArg};
use crate::exit::BatchEndedWithFailures;

/// How long one status long poll may wait while the batch runs: the progress refresh on a
/// terminal. The server answers as soon as the batch ends.
const REFRESH_TERMINAL: Duration = Duration::from_secs(1);
/// The same when stderr is a log: progress lines are printed at most every 2 s anyway.
const REFRESH_LOG: Duration = Duration::from_secs(2);
/// Pause between retries while the server cannot be reached.
pub const RETRY: Duration = Duration::from_secs(1);
/// Retries in a row (about two minutes) before a wait gives up on an unreachable server.
pub const MAX_RETRIES: u32 = 120;

pub fn batch(command: BatchCommand) -> anyhow::Result<()> {
    let runtime = super::connection::runtime()?;
    runtime.block_on(async {
        match command {
            BatchCommand::List { server, json } => {
                let api = super::connection::client(&server)?;
                let list: BatchList = api
                    .get_json(paths::BATCHES)
                    .await
                    .context("cannot list batches")?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&list)?);
                } else if list.batches.is_empty() {
                    crate::note!("no batches for this token (submit one with `musketeer submit`)");
                } else {
                    for status in &list.batches {
                        println!("{}", describe(status));
                    }
                }
                Ok(())
            }
            BatchCommand::Status {
                server,
                id,
                json,
                wait: keep_waiting,
            } => {
                let api = super::connection::client(&server)?;
                let status = if keep_waiting {
                    wait(&api, BatchId(id)).await?
                } else {
                    api.batch_status(BatchId(id))
                        .await
                        .with_context(|| format!("cannot read batch {id}"))?
                };
                if json {
                    println!("{}", serde_json::to_string_pretty(&status)?);
                } else {
                    println!("{}", describe(&status));
                }
                match ended_with_failures(&status) {
                    Some(failures) if keep_waiting => Err(failures.into()),
                    _ => Ok(()),
                }
            }
            BatchCommand::Results {
                server,
                id,
                output,
                format,
            } => {
                let api = super::connection::client(&server)?;
                let format = match format {
                    ResultsFormatArg::Jsonl => ResultsFormat::Jsonl,
                    ResultsFormatArg::Csv => ResultsFormat::Csv,
                };
                write_results(&api, BatchId(id), output.as_deref(), Some(format)).await
            }
            BatchCommand::Cancel { server, id } => {
                let api = super::connection::client(&server)?;
                let status = api
                    .cancel_batch(BatchId(id))
                    .await
                    .with_context(|| format!("cannot cancel batch {id}"))?;
                println!("{}", describe(&status));
                Ok(())
            }
            BatchCommand::Delete { server, id } => {
                let api = super::connection::client(&server)?;
                let deleted = api
                    .delete_batch(BatchId(id))
                    .await
                    .map_err(|error| delete_error(BatchId(id), error))?;
                println!(
                    "deleted batch {} and its {} units (inputs and results)",
                    deleted.batch_id, deleted.deleted_units
                );
                Ok(())
            }
        }
    })
}

/// A refused delete, with what to do about it.
fn delete_error(id: BatchId, error: ApiError) -> anyhow::Error {
    // The server's refusal stays in the chain: it decides the exit status.
    let advice = match &error {
        ApiError::Server {
            code: ErrorCode::Conflict,
            ..
        } => format!(
            "batch {id} is still running: cancel it with `musketeer batch cancel {id}` or wait \
             for it to finish (`musketeer batch status {id} --wait`)"
        ),
        ApiError::Server {
            code: ErrorCode::NotFound,
            ..
        } => format!(
            "no batch {id} for this token: it was deleted already, or it is another \
             researcher's (an admin token can delete any batch)"
        ),
        _ => format!("cannot delete batch {id}"),
    };
    anyhow::Error::new(error).context(advice)
}

/// One line: state, counts, progress.
pub fn describe(status: &BatchStatus) -> String {
    let c = &status.counts;
    format!(
        "batch {} ({} {}): {:?}, {}/{} done, {} failed, {} running, {} queued, {} cancelled",
        status.id,
        status.app,
        status.version,
        status.state,
        c.done,
        c.total(),
        c.failed,
        c.running,
        c.queued,
        c.cancelled
    )
    .replace("Running,", "running,")
    .replace("Finished,", "finished,")
    .replace("Cancelled,", "cancelled,")
        + &stalled_note(status)
}

/// Why queued units may not move: no online host can take them, or the online ones already
/// returned a replica of them (stalled units fail after the server's stall timeout).
pub fn stalled_note(status: &BatchStatus) -> String {
    let mut note = String::new();
    if status.hosts_able == Some(0) {
        note.push_str(
            "; no online host can take the waiting units (none is online, or every volunteer's \
             --max-task-memory is below this app's memory limit)",
        );
    }
    if status.stalled > 0 {
        note.push_str(&format!(
            "; {} stalled: {}",
            status.stalled,
            status
                .stalled_reason
                .as_deref()
                .unwrap_or("no online host may take them")
        ));
    }
    note
}

/// How long one long poll of a wait may be held while the batch runs, for `display`.
pub fn refresh(display: &Display) -> Duration {
    if display.terminal() {
        REFRESH_TERMINAL
    } else {
        REFRESH_LOG
    }
}

/// Shows a progress bar on stderr until the batch is finished or cancelled. Each status request
/// is a long poll the server answers the moment the batch ends, so the wait ends with the batch,
/// not at the next poll.
pub async fn wait(api: &ApiClient, id: BatchId) -> anyhow::Result<BatchStatus> {
    let mut display = Display::default();
    // Even the first request is a long poll: a batch that ends within it costs one request,
    // and the progress shows after one refresh at the latest.
    let wait = refresh(&display);
    loop {
        let mut asked = Instant::now();
        let status = retrying(|| {
            asked = Instant::now();
            api.wait_batch_status(id, wait, None)
        })
        .await
        .with_context(|| format!("cannot read batch {id}"))?;
        display.show(&status);
        if status.state != BatchState::Running {
            return Ok(status);
        }
        // A server that answers a running batch early (shutting down, or one without the long
        // poll) must not be asked again at once.
        if asked.elapsed() < wait / 2 {
            tokio::time::sleep(wait - asked.elapsed()).await;
        }
    }
}

/// `request`, made again after [`RETRY`] while it fails in a way that may pass (the server
/// restarting), at most [`MAX_RETRIES`] times in a row.
pub async fn retrying<T, F, Fut>(mut request: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ApiError>>,
{
    let mut errors = 0u32;
    loop {
        match request().await {
            Err(error) if error.is_retryable() && errors < MAX_RETRIES => {
                errors += 1;
                tokio::time::sleep(RETRY).await;
            }
            answer => return answer,
        }
    }
}

/// The error of a waited-for batch that ended with units that did not succeed.
pub fn ended_with_failures(status: &BatchStatus) -> Option<BatchEndedWithFailures> {
    let counts = &status.counts;
    (counts.failed > 0 || counts.cancelled > 0).then_some(BatchEndedWithFailures {
        batch: status.id,
        failed: counts.failed,
        cancelled: counts.cancelled,
    })
}

/// The format of the results written to `output` (from its extension) or to stdout.
pub fn output_format(
    output: Option<&Path>,
    stdout_format: Option<ResultsFormat>,
) -> anyhow::Result<ResultsFormat> {
    Ok(match output {
        Some(path) => match path.extension().and_then(|e| e.to_str()) {
            Some("csv") => ResultsFormat::Csv,
            Some("jsonl" | "json" | "ndjson") => ResultsFormat::Jsonl,
            _ => anyhow::bail!(
                "--output {}: name the file .csv or .jsonl so the format is clear",
                path.display()
            ),
        },
        None => stdout_format.unwrap_or(ResultsFormat::Jsonl),
    })
}

/// Downloads the results to `output` (format from its extension) or stdout.
pub async fn write_results(
    api: &ApiClient,
    id: BatchId,
    output: Option<&Path>,
    stdout_format: Option<ResultsFormat>,
) -> anyhow::Result<()> {
    let format = output_format(output, stdout_format)?;
    // Streamed to its destination: a batch's results may be larger than memory.
    let context = || format!("cannot download the results of batch {id}");
    match output {
        Some(path) => {
            let mut file = std::fs::File::create(path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            api.batch_results(id, format, &mut file)
                .await
                .with_context(context)?;
            file.sync_all()
                .with_context(|| format!("cannot write {}", path.display()))?;
            crate::note!("results written to {}", path.display());
        }
        None => {
            let mut stdout = std::io::stdout();
            api.batch_results(id, format, &mut stdout)
                .await
                .with_context(context)?;
            stdout.flush()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::progress::progress_line;
    use super::*;

    fn refused(status: u16, code: ErrorCode) -> ApiError {
        ApiError::Server {
            status,
            code,
            message: "from the server".into(),
        }
    }

    #[test]
    fn a_batch_no_online_host_can_take_says_so() {
        let status = |hosts_able: serde_json::Value| -> BatchStatus {
            serde_json::from_value(serde_json::json!({
                "id": 3, "app": "big", "version": "1.0.0", "label": null, "state": "running",
                "created_ms": 0, "first_unit": 1, "progress": 0.0, "priority": 0,
                "counts": {"queued": 2, "running": 0, "done": 0, "failed": 0, "cancelled": 0},
                "replication": {}, "hosts_able": hosts_able,
            }))
            .expect("a batch status")
        };
        let stalled = status(serde_json::json!(0));
        let line = progress_line(&stalled, None);
        assert!(
            line.contains("no online host can take the waiting units"),
            "{line}"
        );
        assert!(describe(&stalled).contains("--max-task-memory"));
        for fine in [serde_json::json!(2), serde_json::Value::Null] {
            let line = progress_line(&status(fine), None);
            assert!(!line.contains("no online host"), "{line}");
        }
    }

    #[test]
    fn stalled_units_are_counted_with_their_reason() {
        let status: BatchStatus = serde_json::from_value(serde_json::json!({
            "id": 3, "app": "big", "version": "1.0.0", "label": null, "state": "running",
            "created_ms": 0, "first_unit": 1, "progress": 0.5, "priority": 0,
            "counts": {"queued": 1, "running": 0, "done": 1, "failed": 0, "cancelled": 0},
            "replication": {}, "hosts_able": 2, "stalled": 1,
            "stalled_reason": "unit 2 is stalled: all 2 online host(s) already returned a replica",
        }))
        .expect("a batch status");
        for line in [progress_line(&status, None), describe(&status)] {
            assert!(
                line.contains("1 stalled: unit 2 is stalled: all 2 online host(s)"),
                "{line}"
            );
        }
    }

    #[test]
    fn refused_deletes_say_what_to_do() {
        let id = BatchId(7);
        let running = delete_error(id, refused(409, ErrorCode::Conflict)).to_string();
        assert!(
            running.contains("batch 7 is still running")
                && running.contains("`musketeer batch cancel 7`"),
            "{running}"
        );
        // Refusals keep the server's answer, so they exit as refused (3).
        let conflict = delete_error(id, refused(409, ErrorCode::Conflict));
        assert_eq!(crate::exit::report(&conflict).0, crate::exit::REFUSED);
        let absent = delete_error(id, refused(404, ErrorCode::NotFound)).to_string();
        assert!(absent.contains("no batch 7 for this token"), "{absent}");
        let other = format!("{:#}", delete_error(id, refused(403, ErrorCode::Forbidden)));
        assert!(
            other.starts_with("cannot delete batch 7: ") && other.contains("from the server"),
            "{other}"
        );
    }
}
