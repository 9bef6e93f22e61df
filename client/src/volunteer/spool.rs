//! Finished results kept on disk until the server acknowledges them, so a result computed is
//! not lost to a crash, a restart or an unreachable server.
//!
//! One append-only log, `spool.log`, of framed records: `[payload length: u32 LE]
//! [checksum: the first 8 bytes of the payload's SHA-256][payload: JSON]`. A payload is a
//! finished result or an acknowledgement (a tombstone: the server has that result). A writer
//! thread appends what queued while its last write ran; a syncer thread makes what was written
//! durable with one fdatasync per group ([`writer`]). A pushed result is held (its replica is
//! this host's) once written, and reported only once synced (decision 0007), so nothing is
//! reported that a power loss could take back. When most of the log is acknowledged it is
//! rewritten atomically with the waiting results alone. On open a torn last record (a crash
//! mid-append) is dropped and a record whose checksum fails is skipped, each with a warning.
//! Older clients kept one `<id>.json` file per result; those are moved into the log once.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use musketeer_protocol::{ResultId, ResultReport};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::sync::oneshot;

use super::files::FileError;
use writer::{Durability, Job, Writer};

#[path = "spool_writer.rs"]
mod writer;

/// The log's file name in the spool directory.
const LOG_NAME: &str = "spool.log";
/// Length and checksum before each payload.
const HEADER_BYTES: usize = 12;
/// A length beyond this is a corrupt header, not a record (outputs are far smaller).
const MAX_RECORD_BYTES: usize = 256 << 20;
/// The log is rewritten once it holds this many records and at most half of them wait.
const COMPACT_AFTER_RECORDS: u64 = 4096;

/// One record of the log, as read.
#[derive(Deserialize)]
#[serde(tag = "record", rename_all = "lowercase")]
enum Record {
    /// A finished result waiting for acknowledgement.
    Result { report: ResultReport },
    /// The server acknowledged this result: forget it.
    Ack { result_id: ResultId },
}

/// One record of the log, as written ([`Record`] without copying the result).
#[derive(Serialize)]
#[serde(tag = "record", rename_all = "lowercase")]
enum RecordRef<'a> {
    Result { report: &'a ResultReport },
    Ack { result_id: ResultId },
}

/// A result waiting for acknowledgement.
#[derive(Debug)]
struct Entry {
    report: ResultReport,
    /// Whether it may be reported yet (see [`Spool::release`]).
    ready: bool,
    /// Its record's sequence number: reportable once the syncer made it durable (0: loaded from
    /// disk).
    seq: u64,
}

/// The results waiting for acknowledgement, in memory, shared with the writer for compaction.
type Entries = Arc<Mutex<BTreeMap<ResultId, Entry>>>;

/// The spool: an append-only log on disk, mirrored in memory.
#[derive(Debug)]
pub struct Spool {
    path: PathBuf,
    entries: Entries,
    /// The last sequence number given to a record; taken under the `entries` lock, so records
    /// reach the writer in sequence order.
    last_seq: std::sync::atomic::AtomicU64,
    durability: Arc<Durability>,
    jobs: Option<std::sync::mpsc::Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl Spool {
    /// Opens the spool in `dir`, loading what a previous run left there (and the one-file-per-
    /// result spool of older clients, moved into the log).
    pub fn open(dir: PathBuf) -> Result<Self, FileError> {
        Self::open_compacting_after(dir, COMPACT_AFTER_RECORDS)
    }

    fn open_compacting_after(dir: PathBuf, compact_after: u64) -> Result<Self, FileError> {
        let path = dir.join(LOG_NAME);
        let io = |source| FileError::Io {
            path: path.clone(),
            source,
        };
        let loaded = read_log(&path).map_err(io)?;
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        if file.metadata().map_err(io)?.len() > loaded.good_len {
            tracing::warn!(path = %path.display(), "dropping a torn record at the end of the spool");
            file.set_len(loaded.good_len).map_err(io)?;
        }
        let mut entries = loaded.entries;
        let mut records = loaded.records;
        let migrated = migrate_json_files(&dir, &mut file, &mut entries).map_err(io)?;
        records += migrated;

        let entries = entries
            .into_iter()
            .map(|(id, report)| {
                (
                    id,
                    Entry {
                        report,
                        ready: true,
                        seq: 0,
                    },
                )
            })
            .collect();
        let entries = Arc::new(Mutex::new(entries));
        let (jobs, queue) = std::sync::mpsc::channel();
        let len = file.metadata().map_err(io)?.len();
        let file = Arc::new(file);
        let durability = Arc::new(Durability::new(file.clone()));
        let mut writer = Writer {
            path: path.clone(),
            file,
            len,
            records,
            compact_after,
        };
        let (shared, writer_durability) = (entries.clone(), durability.clone());
        let writer = std::thread::Builder::new()
            .name("spool-writer".into())
            .spawn(move || writer.run(queue, &shared, &writer_durability))
            .map_err(io)?;
        let syncer_durability = durability.clone();
        let syncer = std::thread::Builder::new()
            .name("spool-syncer".into())
            .spawn(move || syncer_durability.run_syncer())
            .map_err(io)?;
        Ok(Self {
            path,
            entries,
            last_seq: std::sync::atomic::AtomicU64::new(0),
            durability,
            jobs: Some(jobs),
            threads: vec![writer, syncer],
        })
    }

    /// Stores a result; returns once it is written (a killed process keeps it; a power loss may
    /// not, so it is reported only once synced). It is held (listed by [`Spool::ids`]) but not
    /// reported until [`Spool::release`], so the caller can say it finished first. On error the
    /// result is still reported, from memory.
    pub async fn push(&self, report: ResultReport) -> Result<(), FileError> {
        let (done, written) = oneshot::channel();
        self.enqueue(report, Some(done), false)?;
        let stopped = || std::io::Error::other("the spool writer stopped");
        written
            .await
            .unwrap_or_else(|_| Err(stopped()))
            .map_err(|source| FileError::Io {
                path: self.path.clone(),
                source,
            })
    }

    /// Stores a result without waiting for it to be written (for replicas handed back unrun:
    /// losing one costs the server a lease deadline, not a computation).
    pub fn push_soon(&self, report: ResultReport) -> Result<(), FileError> {
        self.enqueue(report, None, true)
    }

    /// Lets a pushed result be reported (once it is synced).
    pub fn release(&self, id: ResultId) {
        if let Some(entry) = self.lock().get_mut(&id) {
            entry.ready = true;
        }
    }

    fn enqueue(
        &self,
        report: ResultReport,
        written: Option<oneshot::Sender<std::io::Result<()>>>,
        ready: bool,
    ) -> Result<(), FileError> {
        let frame =
            frame(&RecordRef::Result { report: &report }).map_err(|e| FileError::Corrupt {
                path: self.path.clone(),
                message: e.to_string(),
            })?;
        // In memory at once, so that a compaction before the write keeps it too.
        let mut entries = self.lock();
        let seq = self.next_seq();
        entries.insert(report.result_id, Entry { report, ready, seq });
        self.send(Job {
            frame,
            seq,
            written,
        });
        Ok(())
    }

    fn next_seq(&self) -> u64 {
        self.last_seq
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1
    }

    /// Waits until every result pushed so far is durable (and so reportable once released).
    pub async fn synced(&self) {
        let target = self.last_seq.load(std::sync::atomic::Ordering::Relaxed);
        let mut durable = self.durability.durable.subscribe();
        // Err only when the spool is gone, and with it the wait.
        let _ = durable.wait_for(|&durable| durable >= target).await;
    }

    /// Told each time more results become durable (for the one task that reports them).
    pub fn on_synced(&self) -> &tokio::sync::Notify {
        &self.durability.synced
    }

    /// Whether a result is ready and durable: something to report.
    pub fn has_reportable(&self) -> bool {
        let durable = *self.durability.durable.borrow();
        self.lock()
            .values()
            .any(|entry| entry.ready && entry.seq <= durable)
    }

    /// Up to `max` results ready to be reported and durable, oldest ids first.
    pub fn pending(&self, max: usize) -> Vec<ResultReport> {
        let durable = *self.durability.durable.borrow();
        self.lock()
            .values()
            .filter(|entry| entry.ready && entry.seq <= durable)
            .take(max)
            .map(|entry| entry.report.clone())
            .collect()
    }

    /// The ids of up to `max` results waiting for acknowledgement, oldest first.
    pub fn ids(&self, max: usize) -> Vec<ResultId> {
        self.lock().keys().take(max).copied().collect()
    }

    /// How many results wait.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets an acknowledged result. The tombstone is not synced: losing it to a power cut
    /// means one duplicate report, which the server answers `duplicate`.
    pub fn remove(&self, id: ResultId) {
        let mut entries = self.lock();
        if entries.remove(&id).is_none() {
            return;
        }
        // An ack is ids and strings only; it always serializes.
        if let Ok(frame) = frame(&RecordRef::Ack { result_id: id }) {
            let seq = self.next_seq();
            self.send(Job {
                frame,
                seq,
                written: None,
            });
        }
    }

    /// Forgets every result; returns how many there were. For results that can no longer be
    /// reported: they belong to a host identity the server has forgotten, and their ids may
    /// name other results on it now.
    pub fn discard_all(&self) -> usize {
        let ids: Vec<ResultId> = self.lock().keys().copied().collect();
        for &id in &ids {
            self.remove(id);
        }
        ids.len()
    }

    fn send(&self, job: Job) {
        if let Some(jobs) = &self.jobs
            && let Err(std::sync::mpsc::SendError(job)) = jobs.send(job)
            && let Some(done) = job.written
        {
            let _ = done.send(Err(std::io::Error::other("the spool writer stopped")));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<ResultId, Entry>> {
        lock(&self.entries)
    }
}

impl Drop for Spool {
    /// Writes and syncs what is queued before the spool goes, so a reopened spool sees it.
    fn drop(&mut self) {
        self.jobs = None;
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn lock(entries: &Entries) -> std::sync::MutexGuard<'_, BTreeMap<ResultId, Entry>> {
    // A panic while holding the lock cannot leave the map inconsistent (single inserts).
    entries.lock().unwrap_or_else(|e| e.into_inner())
}

/// How many whole frames `bytes` holds (they were framed by this process).
fn bytes_records(mut bytes: &[u8]) -> u64 {
    let mut count = 0;
    while bytes.len() >= HEADER_BYTES {
        let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        bytes = bytes.get(HEADER_BYTES + len..).unwrap_or_default();
        count += 1;
    }
    count
}

fn sync_dir(path: &Path) {
    if let Some(parent) = path.parent()
        && let Ok(dir) = File::open(parent)
    {
        let _ = dir.sync_all();
    }
}

fn checksum(payload: &[u8]) -> [u8; 8] {
    let digest = Sha256::digest(payload);
    let mut sum = [0; 8];
    sum.copy_from_slice(&digest[..8]);
    sum
}

fn frame(record: &RecordRef<'_>) -> Result<Vec<u8>, serde_json::Error> {
    let payload = serde_json::to_vec(record)?;
    let mut frame = Vec::with_capacity(HEADER_BYTES + payload.len());
    // Results are bounded by the task output limit, far below 4 GiB.
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&checksum(&payload));
    frame.extend_from_slice(&payload);
    Ok(frame)
}

/// What a log held.
struct Loaded {
    entries: BTreeMap<ResultId, ResultReport>,
    /// Bytes up to the end of the last whole record.
    good_len: u64,
    records: u64,
}

fn read_log(path: &Path) -> std::io::Result<Loaded> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(error) => return Err(error),
    };
    let mut entries = BTreeMap::new();
    let mut offset = 0;
    let mut records = 0;
    while offset < bytes.len() {
        let Some(header) = bytes.get(offset..offset + HEADER_BYTES) else {
            break;
        };
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if len > MAX_RECORD_BYTES {
            // A length this large is damage, not a record: nothing after it can be framed.
            tracing::warn!(path = %path.display(), offset, "unreadable spool record; the rest of the spool is dropped");
            break;
        }
        let Some(payload) = bytes.get(offset + HEADER_BYTES..offset + HEADER_BYTES + len) else {
            break;
        };
        offset += HEADER_BYTES + len;
        records += 1;
        if header[4..] != checksum(payload) {
            tracing::warn!(path = %path.display(), offset, "skipping a spool record whose checksum fails");
            continue;
        }
        match serde_json::from_slice::<Record>(payload) {
            Ok(Record::Result { report }) => {
                entries.insert(report.result_id, report);
            }
            Ok(Record::Ack { result_id }) => {
                entries.remove(&result_id);
            }
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "skipping an unreadable spool record")
            }
        }
    }
    Ok(Loaded {
        entries,
        good_len: offset as u64,
        records,
    })
}

/// Moves the `<id>.json` files of older clients into the log (synced before they go); returns
/// how many records were appended. Unreadable files are skipped with a warning (they cannot be
/// reported anyway).
fn migrate_json_files(
    dir: &Path,
    log: &mut File,
    entries: &mut BTreeMap<ResultId, ResultReport>,
) -> std::io::Result<u64> {
    let mut files = Vec::new();
    let mut bytes = Vec::new();
    let mut records = 0;
    for entry in std::fs::read_dir(dir)?.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        match std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<ResultReport>(&bytes).ok())
        {
            Some(report) => {
                bytes.extend(
                    frame(&RecordRef::Result { report: &report }).map_err(std::io::Error::other)?,
                );
                records += 1;
                entries.insert(report.result_id, report);
            }
            None => {
                tracing::warn!(path = %path.display(), "skipping unreadable spooled result")
            }
        }
        files.push(path);
    }
    if files.is_empty() {
        return Ok(0);
    }
    log.write_all(&bytes)?;
    log.sync_data()?;
    for path in &files {
        let _ = std::fs::remove_file(path);
    }
    sync_dir(&dir.join(LOG_NAME));
    Ok(records)
}

#[cfg(test)]
#[path = "spool_tests.rs"]
mod tests;
