//! Finished results kept on disk until the server acknowledges them, so a result computed is
//! not lost to a crash, a restart or an unreachable server.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use musketeer_protocol::{ResultId, ResultReport};

use super::files::{FileError, write_atomic};

/// The spool: one JSON file per result, mirrored in memory.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    entries: Mutex<BTreeMap<ResultId, ResultReport>>,
}

impl Spool {
    /// Opens the spool in `dir`, loading what a previous run left there. Unreadable files are
    /// skipped with a warning (they cannot be reported anyway).
    pub fn open(dir: PathBuf) -> Result<Self, FileError> {
        let mut entries = BTreeMap::new();
        let listing = std::fs::read_dir(&dir).map_err(|source| FileError::Io {
            path: dir.clone(),
            source,
        })?;
        for entry in listing.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            match std::fs::read(&path)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<ResultReport>(&bytes).ok())
            {
                Some(report) => {
                    entries.insert(report.result_id, report);
                }
                None => {
                    tracing::warn!(path = %path.display(), "skipping unreadable spooled result")
                }
            }
        }
        Ok(Self {
            dir,
            entries: Mutex::new(entries),
        })
    }

    /// Stores a result durably before it is reported.
    pub fn push(&self, report: ResultReport) -> Result<(), FileError> {
        let bytes = serde_json::to_vec(&report).map_err(|e| FileError::Corrupt {
            path: self.path(report.result_id),
            message: e.to_string(),
        })?;
        write_atomic(&self.path(report.result_id), &bytes, false)?;
        self.lock().insert(report.result_id, report);
        Ok(())
    }

    /// Up to `max` results waiting for acknowledgement, oldest ids first.
    pub fn pending(&self, max: usize) -> Vec<ResultReport> {
        self.lock().values().take(max).cloned().collect()
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

    /// Forgets an acknowledged result.
    pub fn remove(&self, id: ResultId) {
        self.lock().remove(&id);
        let _ = std::fs::remove_file(self.path(id));
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

    fn path(&self, id: ResultId) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<ResultId, ResultReport>> {
        // A panic while holding the lock cannot leave the map inconsistent (single inserts).
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use musketeer_protocol::{Outcome, UnitId};

    #[test]
    fn results_survive_a_restart_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        let id = ResultId {
            unit: UnitId(42),
            replica: 1,
        };
        let spool = Spool::open(dir.path().to_path_buf()).unwrap();
        spool
            .push(ResultReport {
                result_id: id,
                outcome: Outcome::Returned,
            })
            .unwrap();
        drop(spool);
        let spool = Spool::open(dir.path().to_path_buf()).unwrap();
        assert_eq!(spool.pending(10)[0].result_id, id);
        spool.remove(id);
        drop(spool);
        assert!(Spool::open(dir.path().to_path_buf()).unwrap().is_empty());
    }

    #[test]
    fn discarded_results_stay_gone_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path().to_path_buf()).unwrap();
        for replica in 1..=3 {
            spool
                .push(ResultReport {
                    result_id: ResultId {
                        unit: UnitId(7),
                        replica,
                    },
                    outcome: Outcome::Returned,
                })
                .unwrap();
        }
        assert_eq!(spool.discard_all(), 3);
        assert!(spool.is_empty());
        drop(spool);
        assert!(Spool::open(dir.path().to_path_buf()).unwrap().is_empty());
    }
}
