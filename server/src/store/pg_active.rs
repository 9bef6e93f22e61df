//! The row naming the active server of several on one PostgreSQL database (`musketeer_active`,
//! SQL migration 2): its epoch, the address standbys forward to, and the secret that lets it
//! trust the client addresses they pass on. The server holding the database's lock claims it;
//! standbys read it (docs/decisions/0008-postgresql-store.md).

use std::time::{Duration, Instant};

use postgres::{Client, Config};

use super::pg::{LOCK_KEY, PgStore, connect, display_name, table_exists};
use super::{Backend, Store, StoreError};

/// How long opening waits for the lock a just-killed server's connection may still hold.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// The active server, as the row says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveRow {
    /// Bumped by each server that becomes active; commits of an older one are refused.
    pub epoch: u64,
    /// The base URL standbys forward requests to.
    pub url: String,
    /// The secret standbys show with the client address they forward.
    pub secret: String,
}

/// How opening takes the database's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LockMode {
    /// Try for a moment (a server killed just now may still hold it), then say it is in use.
    Patient,
    /// Try once: a `serve` that finds it taken becomes a standby.
    Once,
    /// Wait as long as it takes: a standby waiting to take over.
    Wait,
}

/// Take the database's lock on this session as `mode` says, or say that another one has it. A
/// server killed a moment ago holds it until PostgreSQL notices the closed connection, so CLI
/// commands wait a little for it.
pub(super) fn lock(mut client: Client, name: &str, mode: LockMode) -> Result<Client, StoreError> {
    if mode == LockMode::Wait {
        client.execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])?;
        return Ok(client);
    }
    let deadline = match mode {
        LockMode::Patient => Instant::now() + LOCK_WAIT,
        LockMode::Once | LockMode::Wait => Instant::now(),
    };
    loop {
        let row = client.query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK_KEY])?;
        if row.try_get::<_, bool>(0)? {
            return Ok(client);
        }
        if Instant::now() >= deadline {
            return Err(StoreError::DatabaseInUse(name.to_owned()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Store {
    /// Open the PostgreSQL store at `url` if no other server holds its lock (`serve`); None if
    /// one does (this server is then a standby).
    pub fn open_postgres_if_free(url: &str) -> Result<Option<Store>, StoreError> {
        match Store::open_postgres(url, LockMode::Once) {
            Ok(store) => Ok(Some(store)),
            Err(StoreError::DatabaseInUse(_)) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Open the PostgreSQL store at `url`, waiting as long as it takes for the server that
    /// holds its lock to go (a standby). Blocking.
    pub fn open_postgres_waiting(url: &str) -> Result<Store, StoreError> {
        Store::open_postgres(url, LockMode::Wait)
    }

    /// Make this server the active one of those on its PostgreSQL database: bump the epoch and
    /// record where standbys forward to and the secret they show; from then on a commit fails
    /// with [`StoreError::Superseded`] once another server has claimed it. Blocking; returns
    /// the epoch.
    pub fn claim_active(&self, url: String, secret: String) -> Result<u64, StoreError> {
        match &self.backend {
            Backend::Postgres(pg) => pg.claim_active(url, secret),
            Backend::Redb(_) => Err(StoreError::PostgresOnly(
                "several servers share a PostgreSQL store only; the embedded store has one",
            )),
        }
    }

    /// The PostgreSQL database, as messages name it (no password); None for the embedded store.
    pub fn database_name(&self) -> Option<String> {
        match &self.backend {
            Backend::Postgres(pg) => Some(pg.name().to_owned()),
            Backend::Redb(_) => None,
        }
    }

    /// The active server of the PostgreSQL database at `url`, on a connection of its own;
    /// None while none has claimed it. Blocking.
    pub fn read_active(url: &str) -> Result<Option<ActiveRow>, StoreError> {
        read_active(url)
    }
}

impl PgStore {
    /// Become the active server: bump the epoch and store `url` and `secret`, in one statement.
    /// It waits for the share lock a previous active's commit in flight holds on the row, so
    /// that every commit of the previous one is visible to what this one loads next; from now
    /// on the writer's commits check the epoch.
    pub(super) fn claim_active(&self, url: String, secret: String) -> Result<u64, StoreError> {
        let epoch: i64 = self.call(move |client| {
            let row = client.query_one(
                "INSERT INTO musketeer_active (id, epoch, url, secret, since) \
                 VALUES (1, 1, $1, $2, now()) \
                 ON CONFLICT (id) DO UPDATE SET epoch = musketeer_active.epoch + 1, \
                 url = excluded.url, secret = excluded.secret, since = excluded.since \
                 RETURNING epoch",
                &[&url, &secret],
            )?;
            Ok(row.try_get(0)?)
        })?;
        // A second claim by the same store keeps the first epoch, which is then stale: the
        // writer refuses to commit and the server stops, as for any superseded one.
        let _ = self.epoch.set(epoch);
        Ok(epoch.unsigned_abs())
    }
}

/// The active server of the database at `url`, read on a connection of its own; None while
/// no server has claimed it (or before migration 2). Blocking: call it off the async threads.
pub(super) fn read_active(url: &str) -> Result<Option<ActiveRow>, StoreError> {
    let config: Config = url
        .parse()
        .map_err(|error| StoreError::PostgresUrl { error })?;
    let mut client = connect(&config, &display_name(&config))?;
    if !table_exists(&mut client, "musketeer_active")? {
        return Ok(None);
    }
    let row = client.query_opt(
        "SELECT epoch, url, secret FROM musketeer_active WHERE id = 1",
        &[],
    )?;
    let Some(row) = row else {
        return Ok(None);
    };
    Ok(Some(ActiveRow {
        epoch: row.try_get::<_, i64>(0)?.unsigned_abs(),
        url: row.try_get(1)?,
        secret: row.try_get(2)?,
    }))
}
