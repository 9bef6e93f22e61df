//! `submit --wait --stream`: each unit's result written as it finishes, read page by page with
//! the server's results cursor while the progress shows on stderr.

use std::collections::HashSet;
use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use musketeer_protocol::{BatchId, BatchStatus, ResultsPageQuery, UnitId};

use super::batch::retrying;
use super::progress::Display;
use crate::api_client::ApiClient;

/// How long one page request may wait on the server for a unit to finish (the progress refresh).
const PAGE_WAIT: Duration = Duration::from_secs(2);

/// Writes each finished unit's row (a JSON line) to `out` once, in finishing order, until the
/// batch has ended and every row is written; returns the batch's final status.
pub async fn stream_results(
    api: &ApiClient,
    id: BatchId,
    out: &mut dyn Write,
) -> anyhow::Result<BatchStatus> {
    let mut display = Display::default();
    // A cursor from before a server restart reads from the start again: rows already written
    // are skipped by their unit id.
    let mut written: HashSet<UnitId> = HashSet::new();
    let mut cursor = ResultsPageQuery::START.to_owned();
    // The first page answers at once, so that progress shows from the start.
    let mut wait = Duration::ZERO;
    loop {
        let page = retrying(|| api.results_page(id, &cursor, wait))
            .await
            .with_context(|| format!("cannot read the results of batch {id}"))?;
        for row in &page.rows {
            if written.insert(row.unit_id) {
                serde_json::to_writer(&mut *out, row).context("cannot write a result")?;
                out.write_all(b"\n").context("cannot write a result")?;
            }
        }
        // Each row is where it is going before the progress moves past it.
        out.flush().context("cannot write the results")?;
        display.show(&page.status);
        if page.complete {
            return Ok(page.status);
        }
        cursor = page.next;
        wait = PAGE_WAIT;
    }
}
