//! Delivering spooled results: on the next fetch when one is due soon (see `work`), else with a
//! report request of their own.
//!
//! At most one request carries results at a time (the [`Shared::sending`] lock), so a result is
//! never in two requests at once and the server never sees it twice from a live client.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use musketeer_protocol::{ReportAck, ReportRequest, ResultId};
use tokio::sync::mpsc;

use super::backoff::Backoff;
use super::work::{Shared, lock};
use crate::api_client::ApiError;

/// Results per request (the server accepts up to this many on a report or a fetch).
pub const REPORT_BATCH: usize = musketeer_protocol::MAX_RESULTS_PER_REQUEST;

/// How long finished results wait for a fetch to carry them before they get a report of their
/// own, while fetches are finding work (they come often then).
const RIDE_WAIT: Duration = Duration::from_millis(250);

/// Forgets every acknowledged result, saying why the server refused any.
pub fn forget_acknowledged(shared: &Shared, acks: &[ReportAck]) {
    for ack in acks {
        if let Some(reason) = &ack.reason {
            shared.events.emit(
                "report-refused",
                serde_json::json!({"result_id": ack.result_id, "status": ack.status, "reason": reason}),
                format!("server did not record result {}: {reason}", ack.result_id),
            );
        }
        shared.spool.remove(ack.result_id);
    }
}

/// Reports spooled results that no fetch carried, backing off while the server is away.
pub async fn report_loop(
    shared: Arc<Shared>,
    cancel: mpsc::UnboundedSender<Vec<ResultId>>,
    fatal: mpsc::UnboundedSender<ApiError>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(250), shared.config.max_backoff);
    loop {
        // A result is reported once released by its slot and synced by the spool; either can
        // come last.
        while !shared.spool.has_reportable() {
            tokio::select! {
                () = shared.spooled.notified() => {}
                () = shared.spool.on_synced().notified() => {}
            }
        }
        if shared.results_ride_on_fetches.load(Ordering::Relaxed) {
            tokio::time::sleep(RIDE_WAIT).await;
        }
        match report_once(&shared).await {
            Ok((cancelled, forgotten)) => {
                backoff.reset();
                if !cancelled.is_empty() {
                    let _ = cancel.send(cancelled);
                }
                if forgotten == 0 && shared.spool.has_reportable() {
                    // Acknowledged none of them (or a fetch has them now); do not spin.
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
            Err(error) if error.is_retryable() => {
                let delay = backoff.next_delay();
                let cause = super::events::cause_chain(&error);
                shared.events.emit(
                    "retry",
                    serde_json::json!({"what": "report", "error": cause, "delay_ms": delay.as_millis() as u64, "spooled": shared.spool.len()}),
                    format!(
                        "cannot report {} result(s) ({cause}); kept on disk, retrying in {:.1} s",
                        shared.spool.len(),
                        delay.as_secs_f64()
                    ),
                );
                tokio::time::sleep(delay).await;
            }
            Err(error) => {
                let refused_token = error.is_unauthorized();
                let _ = fatal.send(error);
                if refused_token {
                    return;
                }
                tokio::time::sleep(shared.config.max_backoff).await;
            }
        }
    }
}

/// Sends one report of spooled results; forgets every acknowledged one. Returns the cancelled
/// in-flight results and how many spooled results were forgotten.
pub async fn report_once(shared: &Shared) -> Result<(Vec<ResultId>, usize), ApiError> {
    let _sending = shared.sending.lock().await;
    let results = shared.spool.pending(REPORT_BATCH);
    if results.is_empty() {
        return Ok((Vec::new(), 0));
    }
    // Their `finished` lines first: whoever sees the server count a result has seen its event.
    super::events::flush();
    let in_flight = lock(&shared.in_flight).iter().copied().collect();
    let response = shared
        .api
        .report(&ReportRequest { results, in_flight })
        .await?;
    forget_acknowledged(shared, &response.acks);
    Ok((response.cancelled, response.acks.len()))
}
