//! The row naming the active server of several on one PostgreSQL database (`musketeer_active`,
//! SQL migration 2): its epoch, the address standbys forward to, and the secret that lets it
//! trust the client addresses they pass on. The server holding the database's lock claims it;
//! standbys read it (docs/decisions/0008-postgresql-store.md).

use postgres::Config;

use super::StoreError;
use super::pg::{PgStore, display_name};

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
    let mut client =
        config
            .connect(postgres::NoTls)
            .map_err(|error| StoreError::PostgresConnect {
                database: display_name(&config),
                error,
            })?;
    let exists = client.query_one("SELECT to_regclass('musketeer_active') IS NOT NULL", &[])?;
    if !exists.try_get::<_, bool>(0)? {
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
