//! `submit --wait` of a small batch into JSON lines: the wait and the download in one stream of
//! requests. Each results page is a long poll answered when units finish, so a one-unit batch
//! costs its submit and one page; the rows are kept and written in unit order once the batch has
//! ended, as `batch results` would download them.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use musketeer_protocol::{BatchId, BatchStatus, ResultsPageQuery, UnitId};

use super::batch::retrying;
use super::progress::Display;
use crate::api_client::ApiClient;

/// Batches of at most this many units are collected while waiting: one full page of the
/// server's, so a finished batch of that size would be read in a single request anyway.
pub const MAX_COLLECTED_UNITS: u64 = 1_000;
/// Rows held in memory at most; past it the wait goes on by status and the results are streamed
/// from the download (a batch's results may be larger than memory).
const MAX_COLLECTED_BYTES: usize = 8 << 20;

/// How a collecting wait ended.
#[derive(Debug)]
pub enum Waited {
    /// The batch ended and every unit's row is here: JSON lines in unit order.
    Collected {
        /// The batch's final status.
        status: BatchStatus,
        /// One JSON line (with its newline) per unit, in unit order.
        lines: Vec<String>,
    },
    /// The batch ended, but its rows are not all here (e.g. units cancelled before they ran
    /// have no place in the finishing order): download them.
    Ended(BatchStatus),
    /// The rows outgrew [`MAX_COLLECTED_BYTES`] while the batch runs: wait by status, then
    /// download.
    TooLarge,
}

/// Waits for batch `id` by its results pages, keeping each unit's row, with the progress on
/// stderr.
pub async fn wait_collecting(api: &ApiClient, id: BatchId) -> anyhow::Result<Waited> {
    let mut display = Display::default();
    // Every page is a long poll, the first too: it is answered as soon as a unit finishes.
    let wait = super::batch::refresh(&display);
    // A cursor from before a server restart reads from the start again: rows are keyed by unit.
    let mut lines: BTreeMap<UnitId, String> = BTreeMap::new();
    let mut bytes = 0usize;
    let mut cursor = ResultsPageQuery::START.to_owned();
    loop {
        let page = retrying(|| api.results_page(id, &cursor, wait))
            .await
            .with_context(|| format!("cannot read batch {id}"))?;
        for row in &page.rows {
            let mut line = serde_json::to_string(row).context("cannot encode a result row")?;
            line.push('\n');
            bytes += line.len();
            if let Some(replaced) = lines.insert(row.unit_id, line) {
                bytes -= replaced.len();
            }
        }
        display.show(&page.status);
        if page.complete {
            let status = page.status;
            if lines.len() as u64 != status.counts.total() {
                return Ok(Waited::Ended(status));
            }
            let lines = lines.into_values().collect();
            return Ok(Waited::Collected { status, lines });
        }
        if bytes > MAX_COLLECTED_BYTES {
            return Ok(Waited::TooLarge);
        }
        cursor = page.next;
    }
}

/// Writes collected `lines` to `output` (synced, as a download is) or stdout.
pub fn write_lines(lines: &[String], output: Option<&Path>) -> anyhow::Result<()> {
    let write_all = |out: &mut dyn std::io::Write| -> std::io::Result<()> {
        for line in lines {
            out.write_all(line.as_bytes())?;
        }
        out.flush()
    };
    match output {
        Some(path) => {
            let cannot = || format!("cannot write {}", path.display());
            let mut file = std::fs::File::create(path).with_context(cannot)?;
            write_all(&mut file).with_context(cannot)?;
            file.sync_all().with_context(cannot)?;
            crate::note!("results written to {}", path.display());
        }
        None => write_all(&mut std::io::stdout().lock())?,
    }
    Ok(())
}
