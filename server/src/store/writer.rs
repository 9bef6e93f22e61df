//! The single writer: handlers queue rows, the thread commits everything queued in one durable
//! transaction and then acknowledges every request in it (group commit).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc;

use redb::Database;
use tokio::sync::{oneshot, watch};

use super::{APPS, BATCHES, HOSTS, META, MODULES, RedbResult, StoreError, TOKENS, UNITS};

/// One row to write.
#[derive(Debug, Clone)]
pub enum Write {
    /// A meta row.
    Meta(String, Vec<u8>),
    /// A user token.
    Token(u64, Vec<u8>),
    /// A host.
    Host(u64, Vec<u8>),
    /// An app version, keyed `app@version`.
    App(String, Vec<u8>),
    /// A module, keyed by sha256.
    Module(String, Vec<u8>),
    /// A batch.
    Batch(u64, Vec<u8>),
    /// Units, in the layout of [`super::unit_row`], in one buffer (one allocation per commit
    /// request instead of one per unit).
    Units(UnitRows),
    /// Remove a batch row and its unit rows, `first_unit .. first_unit + n_units`.
    DeleteBatch {
        /// The batch id.
        batch: u64,
        /// Its first unit id.
        first_unit: u64,
        /// How many units it has.
        n_units: u64,
    },
}

/// Unit rows encoded back to back in one buffer.
#[derive(Debug, Clone, Default)]
pub struct UnitRows {
    bytes: Vec<u8>,
    /// (unit id, end of its row in `bytes`); each row starts where the previous one ends.
    rows: Vec<(u64, usize)>,
}

impl UnitRows {
    /// Room for `n` rows.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(n * 64),
            rows: Vec::with_capacity(n),
        }
    }

    /// Append a unit's row.
    pub fn push(&mut self, unit: &crate::domain::lifecycle::Unit) {
        super::unit_row::encode_unit(unit, &mut self.bytes);
        self.rows.push((unit.id.0, self.bytes.len()));
    }

    /// No rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (u64, &[u8])> {
        let mut start = 0;
        self.rows.iter().map(move |&(id, end)| {
            let row = &self.bytes[start..end];
            start = end;
            (id, row)
        })
    }
}

/// What the writer thread commits a group into: one durable transaction per call.
pub(super) trait Commit: Send + 'static {
    /// Write `writes` in order, in one transaction; return once it is durable.
    fn commit(&mut self, writes: &[&Write]) -> Result<(), StoreError>;
}

impl Commit for Arc<Database> {
    fn commit(&mut self, writes: &[&Write]) -> Result<(), StoreError> {
        commit_refs(self, writes)
    }
}

struct Request {
    writes: Vec<Write>,
    /// Its place in the order of submission (see [`Writer::committed`]).
    ticket: u64,
    done: oneshot::Sender<Result<(), ()>>,
}

enum Message {
    Write(Request),
    /// Answer once everything queued before this is committed or refused.
    Barrier(mpsc::Sender<()>),
    /// Commit what is queued before this, then stop.
    Stop,
}

/// What the writer thread shares with its handles.
#[derive(Debug, Default)]
struct Health {
    /// A commit failed: every later one is refused until [`Writer::resume`], so that nothing
    /// is acknowledged on top of changes the disk does not have.
    failed: AtomicBool,
    /// Another server became the active one on the database (see `pg_active`): commits stay
    /// refused for good, and the server stops.
    superseded: AtomicBool,
    /// Commits to fail on purpose (tests of storage faults).
    injected_failures: AtomicU32,
    /// The ticket of the last request submitted; locked while a request is numbered and queued,
    /// so that tickets follow the queue's order whichever threads submit.
    submitted: std::sync::Mutex<u64>,
    /// The ticket of the last request committed: every request up to it is durable.
    committed: AtomicU64,
}

/// Most requests merged into one transaction; bounds the latency of the first one.
const MAX_GROUP: usize = 4096;

/// Where the writer thread stands, for readers waiting until what they saw is durable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settled {
    /// The ticket of the last request committed or refused: every request up to it is done.
    pub processed: u64,
    /// How many group commits failed so far.
    pub failures: u64,
}

/// Handle to the writer thread. Dropping every handle stops the thread after it drains.
#[derive(Debug, Clone)]
pub struct Writer {
    tx: mpsc::Sender<Message>,
    health: Arc<Health>,
    /// Follows the thread's [`Settled`]; closed when the thread ends.
    settled: watch::Receiver<Settled>,
    thread: Arc<std::sync::Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl Writer {
    pub(super) fn start(mut target: impl Commit) -> Writer {
        let (tx, rx) = mpsc::channel::<Message>();
        let health = Arc::new(Health::default());
        let shared = health.clone();
        let (settled_tx, settled) = watch::channel(Settled::default());
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run(&mut target, &rx, &shared, &settled_tx))
            .ok();
        Writer {
            tx,
            health,
            settled,
            thread: Arc::new(std::sync::Mutex::new(thread)),
        }
    }

    /// Queue rows; the receiver resolves once they are durable. Call in the order the in-memory
    /// changes were made (the queue is FIFO and commits are ordered).
    pub fn submit(&self, writes: Vec<Write>) -> oneshot::Receiver<Result<(), ()>> {
        self.submit_ticketed(writes).0
    }

    /// [`Writer::submit`], also returning the request's ticket: once [`Writer::committed`]
    /// reaches it, the rows are durable.
    pub fn submit_ticketed(&self, writes: Vec<Write>) -> (oneshot::Receiver<Result<(), ()>>, u64) {
        let (done, rx) = oneshot::channel();
        let mut submitted = self
            .health
            .submitted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *submitted += 1;
        let ticket = *submitted;
        // If the thread is gone the sender is dropped and the receiver reports the failure.
        let _ = self.tx.send(Message::Write(Request {
            writes,
            ticket,
            done,
        }));
        (rx, ticket)
    }

    /// The ticket of the last committed request ([`Writer::submit_ticketed`]); 0 before any.
    pub fn committed(&self) -> u64 {
        self.health.committed.load(Ordering::SeqCst)
    }

    /// How many group commits failed so far (see [`Writer::settle`]).
    pub fn failures(&self) -> u64 {
        self.settled.borrow().failures
    }

    /// Wait until every request submitted so far is committed or refused; `Err` if a commit
    /// failed since `failures` was read from [`Writer::failures`] (what a reader saw in between
    /// may have been taken back), or if the writer thread is gone with requests undone.
    pub async fn settle(&self, failures: u64) -> Result<(), ()> {
        let ticket = *self
            .health
            .submitted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut settled = self.settled.clone();
        let now = match settled.wait_for(|now| now.processed >= ticket).await {
            Ok(now) => *now,
            Err(_) => return Err(()),
        };
        if now.failures > failures {
            Err(())
        } else {
            Ok(())
        }
    }

    /// Block until everything queued so far is committed or refused.
    pub fn drain(&self) {
        let (done, wait) = mpsc::channel();
        if self.tx.send(Message::Barrier(done)).is_ok() {
            // An error means the thread is gone: nothing more will be committed either way.
            let _ = wait.recv();
        }
    }

    /// Whether a commit failed since the last [`Writer::resume`] (later ones are refused).
    pub fn has_failed(&self) -> bool {
        self.health.failed.load(Ordering::SeqCst)
    }

    /// Whether another server became the active one on the database: nothing more is
    /// committed, and no reload helps (the state is that server's now).
    pub fn is_superseded(&self) -> bool {
        self.health.superseded.load(Ordering::SeqCst)
    }

    /// Whether the writer thread is alive (it stops on [`Writer::close`] or if it panicked).
    pub fn is_running(&self) -> bool {
        self.thread
            .lock()
            .is_ok_and(|thread| thread.as_ref().is_some_and(|t| !t.is_finished()))
    }

    /// Accept commits again, once memory matches the disk (after a failed commit).
    pub fn resume(&self) {
        self.health.failed.store(false, Ordering::SeqCst);
    }

    /// Make the next `n` commits fail as a full disk would (tests of storage faults).
    #[doc(hidden)]
    pub fn inject_failures(&self, n: u32) {
        self.health.injected_failures.store(n, Ordering::SeqCst);
    }

    /// Wait until everything queued so far is durable and stop the thread (on shutdown).
    pub fn close(&self) {
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        let _ = self.tx.send(Message::Stop);
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

fn run(
    target: &mut impl Commit,
    rx: &mpsc::Receiver<Message>,
    health: &Health,
    settled: &watch::Sender<Settled>,
) {
    let mut stop = false;
    while !stop {
        let mut barrier = None;
        let mut group = match rx.recv() {
            Ok(Message::Write(first)) => vec![first],
            Ok(Message::Barrier(done)) => {
                let _ = done.send(());
                continue;
            }
            Ok(Message::Stop) | Err(_) => break,
        };
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(Message::Write(request)) => group.push(request),
                Ok(Message::Barrier(done)) => {
                    barrier = Some(done);
                    break;
                }
                Ok(Message::Stop) => {
                    stop = true;
                    break;
                }
                Err(_) => break,
            }
        }
        let injected = health
            .injected_failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let result = if health.failed.load(Ordering::SeqCst) {
            Err(())
        } else {
            let writes: Vec<&Write> = group.iter().flat_map(|r| &r.writes).collect();
            let committed = if injected {
                Err(StoreError::Injected)
            } else {
                target.commit(&writes)
            };
            committed.map_err(|e| {
                if matches!(e, StoreError::Superseded(_)) {
                    tracing::error!(error = %e, "superseded: refusing every commit from now on");
                    health.superseded.store(true, Ordering::SeqCst);
                } else {
                    // Memory is now ahead of the disk; refuse everything until the server
                    // state is reloaded from the disk, so that nothing is acknowledged (or
                    // shown) that a restart would not show.
                    tracing::error!(error = %e, "commit failed; reloading the state from the store");
                }
                health.failed.store(true, Ordering::SeqCst);
            })
        };
        if result.is_ok()
            && let Some(last) = group.last()
        {
            health.committed.fetch_max(last.ticket, Ordering::SeqCst);
        }
        let last = group.last().map_or(0, |request| request.ticket);
        settled.send_modify(|now| {
            now.processed = now.processed.max(last);
            now.failures += u64::from(result.is_err());
        });
        for request in group {
            let _ = request.done.send(result);
        }
        if let Some(done) = barrier {
            let _ = done.send(());
        }
    }
}

pub(super) fn commit(db: &Database, writes: &[Write]) -> Result<(), StoreError> {
    commit_refs(db, &writes.iter().collect::<Vec<_>>())
}

fn commit_refs(db: &Database, writes: &[&Write]) -> Result<(), StoreError> {
    let txn = db.begin_write().db()?;
    {
        let mut meta = txn.open_table(META).db()?;
        let mut tokens = txn.open_table(TOKENS).db()?;
        let mut hosts = txn.open_table(HOSTS).db()?;
        let mut apps = txn.open_table(APPS).db()?;
        let mut modules = txn.open_table(MODULES).db()?;
        let mut batches = txn.open_table(BATCHES).db()?;
        let mut units = txn.open_table(UNITS).db()?;
        for write in writes {
            match write {
                Write::Meta(k, v) => meta.insert(k.as_str(), v.as_slice()).map(drop),
                Write::Token(k, v) => tokens.insert(k, v.as_slice()).map(drop),
                Write::Host(k, v) => hosts.insert(k, v.as_slice()).map(drop),
                Write::App(k, v) => apps.insert(k.as_str(), v.as_slice()).map(drop),
                Write::Module(k, v) => modules.insert(k.as_str(), v.as_slice()).map(drop),
                Write::Batch(k, v) => batches.insert(k, v.as_slice()).map(drop),
                Write::Units(rows) => rows
                    .iter()
                    .try_for_each(|(k, v)| units.insert(k, v).map(drop)),
                Write::DeleteBatch {
                    batch,
                    first_unit,
                    n_units,
                } => batches.remove(batch).map(drop).and_then(|()| {
                    units.retain_in(*first_unit..first_unit + n_units, |_, _| false)
                }),
            }
            .db()?;
        }
    }
    // Durability::Immediate is redb's default: commit returns after fsync.
    txn.commit().db()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A store whose commits wait for the test to let each one through, with its verdict.
    struct Gated(mpsc::Receiver<Result<(), StoreError>>);

    impl Commit for Gated {
        fn commit(&mut self, _: &[&Write]) -> Result<(), StoreError> {
            self.0.recv().unwrap_or(Err(StoreError::WriterStopped))
        }
    }

    fn row() -> Vec<Write> {
        vec![Write::Meta("k".into(), b"v".to_vec())]
    }

    #[tokio::test]
    async fn readers_settle_only_once_what_was_queued_before_them_is_durable() {
        let (verdicts, gate) = mpsc::channel();
        let writer = Writer::start(Gated(gate));
        // Nothing queued: nothing to wait for.
        assert_eq!(writer.settle(writer.failures()).await, Ok(()));

        let failures = writer.failures();
        let done = writer.submit(row());
        let reader = tokio::spawn({
            let writer = writer.clone();
            async move { writer.settle(failures).await }
        });
        // Held while the commit is under way (a reader answering now could show a change a
        // crash would take back).
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!reader.is_finished());
        verdicts.send(Ok(())).expect("writer alive");
        assert_eq!(reader.await.expect("no panic"), Ok(()));
        assert_eq!(done.await.expect("answered"), Ok(()));

        // A refused commit makes the waiting reader fail: what it saw was taken back.
        let failures = writer.failures();
        let refused = writer.submit(row());
        verdicts
            .send(Err(StoreError::Injected))
            .expect("writer alive");
        assert_eq!(writer.settle(failures).await, Err(()));
        assert_eq!(refused.await.expect("answered"), Err(()));
        drop(verdicts);
        writer.close();
    }
}
