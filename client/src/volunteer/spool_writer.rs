//! The spool's two threads: the writer appends records as they come, the syncer makes what was
//! written durable with one fdatasync per group.
//!
//! A slot waits only for the write (a copy into the page cache, which a killed process does not
//! lose); results become reportable once the syncer has covered them (see decision 0007). Every
//! job carries a sequence number in the order it was queued; the syncer publishes the highest
//! one it made durable.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Condvar, Mutex};

use tokio::sync::{Notify, oneshot, watch};

use super::{Entries, RecordRef, frame, lock, sync_dir};

/// Most records written as one group.
const MAX_GROUP: usize = 1024;

/// Something for the writer to append.
pub(super) struct Job {
    pub frame: Vec<u8>,
    /// Its place in the queue (see [`Durability::durable`]).
    pub seq: u64,
    /// Told once the frame is written (or failed to be).
    pub written: Option<oneshot::Sender<std::io::Result<()>>>,
}

/// What the writer has written and the syncer still has to sync.
struct Pending {
    /// The log file now (compaction replaces it).
    file: Arc<File>,
    /// The highest sequence number written to `file` or to an earlier, synced file.
    written: u64,
    /// The writer has stopped: sync what is written, then stop.
    closing: bool,
}

/// Shared by the writer, the syncer and the spool.
pub(super) struct Durability {
    pending: Mutex<Pending>,
    wake_syncer: Condvar,
    /// The highest sequence number known durable; every record up to it survives a power loss.
    pub durable: watch::Sender<u64>,
    /// Told each time `durable` moves (the reporter waits on it).
    pub synced: Notify,
    /// Held by tests to keep the syncer from syncing.
    #[cfg(test)]
    pub hold_syncs: Mutex<()>,
}

impl std::fmt::Debug for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Durability")
            .field("durable", &*self.durable.borrow())
            .finish_non_exhaustive()
    }
}

impl Durability {
    pub fn new(file: Arc<File>) -> Self {
        Self {
            pending: Mutex::new(Pending {
                file,
                written: 0,
                closing: false,
            }),
            wake_syncer: Condvar::new(),
            durable: watch::Sender::new(0),
            synced: Notify::new(),
            #[cfg(test)]
            hold_syncs: Mutex::new(()),
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        // Plain numbers and a handle: a panic elsewhere cannot leave them inconsistent.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, durable: u64) {
        self.durable.send_if_modified(|now| {
            let moved = durable > *now;
            if moved {
                *now = durable;
            }
            moved
        });
        self.synced.notify_one();
    }

    /// The syncer thread: one fdatasync for everything written since the last one.
    pub fn run_syncer(&self) {
        loop {
            let (file, target) = {
                let mut pending = self.pending();
                while pending.written <= *self.durable.borrow() && !pending.closing {
                    pending = self
                        .wake_syncer
                        .wait(pending)
                        .unwrap_or_else(|e| e.into_inner());
                }
                if pending.written <= *self.durable.borrow() {
                    return;
                }
                // Read together: `written` counts records in this file or in a synced one.
                (pending.file.clone(), pending.written)
            };
            #[cfg(test)]
            let _held = self.hold_syncs.lock();
            if let Err(error) = file.sync_data() {
                // As before this design: a result the disk refuses is reported from memory
                // rather than lost; the operator sees why.
                tracing::warn!(%error, "cannot sync the spool; its newest results are kept in memory only");
            }
            self.publish(target);
        }
    }
}

/// The writer thread's side of the log.
pub(super) struct Writer {
    pub path: PathBuf,
    pub file: Arc<File>,
    /// The file's length (whole records only).
    pub len: u64,
    /// Records in the file, for deciding when to compact.
    pub records: u64,
    pub compact_after: u64,
}

impl Writer {
    pub fn run(&mut self, queue: Receiver<Job>, entries: &Entries, durability: &Durability) {
        while let Ok(first) = queue.recv() {
            // What queued while the last group was written goes in this one.
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match queue.try_recv() {
                    Ok(job) => group.push(job),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            let mut bytes = Vec::with_capacity(group.iter().map(|job| job.frame.len()).sum());
            for job in &group {
                bytes.extend_from_slice(&job.frame);
            }
            let written = self.append(&bytes);
            let last = group.last().map_or(0, |job| job.seq);
            {
                // Counted even when the write failed: such results go out from memory, as the
                // writer's caller was told (see `Spool::push`).
                let mut pending = durability.pending();
                pending.written = pending.written.max(last);
                durability.wake_syncer.notify_one();
            }
            for job in group {
                if let Some(done) = job.written {
                    let answer = match &written {
                        Ok(()) => Ok(()),
                        Err(error) => Err(std::io::Error::new(error.kind(), error.to_string())),
                    };
                    let _ = done.send(answer);
                }
            }
            if let Err(error) = written {
                tracing::warn!(%error, path = %self.path.display(), "cannot write the spool");
                continue;
            }
            self.records += super::bytes_records(&bytes);
            let waiting = lock(entries).len() as u64;
            if self.records >= self.compact_after
                && waiting * 2 <= self.records
                && let Err(error) = self.compact(entries, durability, last)
            {
                tracing::warn!(%error, path = %self.path.display(), "cannot compact the spool");
            }
        }
        durability.pending().closing = true;
        durability.wake_syncer.notify_one();
    }

    /// Appends whole records; on failure cuts the file back so no partial record stays before
    /// later ones.
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let written = (&*self.file).write_all(bytes);
        match written {
            Ok(()) => self.len += bytes.len() as u64,
            Err(_) => {
                let _ = self.file.set_len(self.len);
            }
        }
        written
    }

    /// Rewrites the log with the waiting results alone, atomically (temporary file, sync,
    /// rename, directory sync). Everything written up to `written` is durable afterwards.
    fn compact(
        &mut self,
        entries: &Entries,
        durability: &Durability,
        written: u64,
    ) -> std::io::Result<()> {
        let mut bytes = Vec::new();
        let mut waiting = 0;
        for entry in lock(entries).values() {
            let report = &entry.report;
            bytes.extend(frame(&RecordRef::Result { report }).map_err(std::io::Error::other)?);
            waiting += 1;
        }
        let tmp = self.path.with_extension("log.tmp");
        let mut file = File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, &self.path)?;
        sync_dir(&self.path);
        let file = Arc::new(OpenOptions::new().append(true).open(&self.path)?);
        durability.pending().file = file.clone();
        self.file = file;
        self.len = bytes.len() as u64;
        self.records = waiting;
        // The new file holds every result still waiting, synced: the syncer need not cover them.
        durability.publish(written);
        Ok(())
    }
}
