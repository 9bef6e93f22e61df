//! The PostgreSQL store (`--store postgres://...`): the seven tables of the redb file as
//! PostgreSQL tables, key -> bytea holding the same row bytes, so that the domain, the row codecs
//! and a (table, key, bytes) view of the rows are shared by both stores. One active server per
//! database: a session-level advisory lock, held by the connection that serves the reads, makes
//! a CLI command fail as a second opener of a redb file does, and a second `serve` a standby
//! (`pg_active`, `crate::cluster`).
//!
//! The sync `postgres` client drives a small tokio runtime of its own and panics if called on a
//! thread that drives async tasks (the server's handlers read the archive there), so every
//! connection lives on a thread of its own: reads are sent to the session thread, and the
//! writer thread owns the connection that commits.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::thread::JoinHandle;

use postgres::fallible_iterator::FallibleIterator as _;
use postgres::{Client, Config, GenericClient, NoTls, Row, Transaction};

pub(super) use super::pg_active::LockMode;
use super::pg_active::lock;
use super::writer::{Commit, Write};
use super::{LoadedRows, SCHEMA_KEY, SCHEMA_VERSION, StoreError};

/// The key of the advisory lock the active server holds on its database ("musketer" in ASCII).
pub(super) const LOCK_KEY: i64 = 0x6d75_736b_6574_6572;

/// Rows a scan hands from the session thread to the reader at a time.
const SCAN_CHUNK: usize = 512;

/// A versioned step of the SQL schema; `init` applies all, `migrate` and `serve` the new ones.
pub(super) struct SqlMigration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

/// The SQL schema, oldest first. Append only: a database records the versions it has applied.
pub(super) const SQL_MIGRATIONS: &[SqlMigration] = &[
    SqlMigration {
        version: 1,
        name: "the seven row tables (key -> bytea), as in the redb store",
        sql: "CREATE TABLE meta (key text PRIMARY KEY, value bytea NOT NULL);
          CREATE TABLE tokens (key bigint PRIMARY KEY, value bytea NOT NULL);
          CREATE TABLE hosts (key bigint PRIMARY KEY, value bytea NOT NULL);
          CREATE TABLE apps (key text PRIMARY KEY, value bytea NOT NULL);
          CREATE TABLE modules (key text PRIMARY KEY, value bytea NOT NULL);
          CREATE TABLE batches (key bigint PRIMARY KEY, value bytea NOT NULL);
          CREATE TABLE units (key bigint PRIMARY KEY, value bytea NOT NULL);",
    },
    SqlMigration {
        version: 2,
        name: "the active server of several on one database (epoch, address, forwarding secret)",
        sql: "CREATE TABLE musketeer_active (
            id smallint PRIMARY KEY CHECK (id = 1),
            epoch bigint NOT NULL,
            url text NOT NULL,
            secret text NOT NULL,
            since timestamptz NOT NULL);",
    },
];

/// The table recording which [`SQL_MIGRATIONS`] a database has.
pub(super) const MIGRATIONS_TABLE: &str = "CREATE TABLE musketeer_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now())";

type Job = Box<dyn FnOnce(&mut Client) + Send>;

/// Takes a unit row (key, bytes) of a scan; returns whether to go on.
pub(super) type RowVisitor<'a> = dyn FnMut(u64, &[u8]) -> Result<bool, StoreError> + 'a;

/// An open PostgreSQL store: the session thread, which holds the lock and serves reads.
#[derive(Debug)]
pub(super) struct PgStore {
    config: Config,
    /// How messages name the database: its URL without the password.
    name: String,
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    /// Whether a copy's transaction (see `pg_rows`) is open on the session's connection.
    pub(super) copy_open: AtomicBool,
    /// The epoch this server claimed as the active one (see `pg_active`); once set, every
    /// commit of the writer first checks that it is still the current one.
    pub(super) epoch: Arc<OnceLock<i64>>,
}

impl PgStore {
    /// Connect to `url` and take the database's lock, migrating nothing (`migrate`).
    pub(super) fn open_unmigrated(url: &str) -> Result<PgStore, StoreError> {
        PgStore::connect(url)
    }

    /// Connect to `url` and take the database's lock.
    pub(super) fn connect(url: &str) -> Result<PgStore, StoreError> {
        PgStore::connect_locking(url, LockMode::Patient)
    }

    /// Connect to `url` and take the database's lock as `mode` says (blocking).
    pub(super) fn connect_locking(url: &str, mode: LockMode) -> Result<PgStore, StoreError> {
        let config: Config = url
            .parse()
            .map_err(|error| StoreError::PostgresUrl { error })?;
        let name = display_name(&config);
        let (jobs, receiver) = mpsc::channel::<Job>();
        let (ready, started) = mpsc::sync_channel(1);
        let session_config = config.clone();
        let session_name = name.clone();
        let thread = std::thread::Builder::new()
            .name("store-pg-session".into())
            .spawn(move || {
                let mut client = match connect(&session_config, &session_name)
                    .and_then(|client| lock(client, &session_name, mode))
                {
                    Ok(client) => {
                        let _ = ready.send(Ok(()));
                        client
                    }
                    Err(error) => {
                        let _ = ready.send(Err(error));
                        return;
                    }
                };
                for job in receiver {
                    job(&mut client);
                }
                // Released explicitly, so that the next opener never races the server noticing
                // the closed connection.
                let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY]);
            })
            .map_err(|error| StoreError::Thread { error })?;
        started.recv().map_err(|_| StoreError::PostgresGone)??;
        Ok(PgStore {
            config,
            name,
            jobs: Some(jobs),
            thread: Some(thread),
            copy_open: AtomicBool::new(false),
            epoch: Arc::new(OnceLock::new()),
        })
    }

    /// Create the schema in an empty database and store the first rows (schema version, project).
    pub(super) fn create(url: &str, first_rows: Vec<Write>) -> Result<PgStore, StoreError> {
        let store = PgStore::connect(url)?;
        let name = store.name.clone();
        store.call(move |client| {
            if applied_version(client)?.is_some() {
                return Err(StoreError::DatabaseNotEmpty(name));
            }
            let mut txn = client.transaction()?;
            txn.batch_execute(MIGRATIONS_TABLE)?;
            for migration in SQL_MIGRATIONS {
                apply(&mut txn, migration)?;
            }
            let refs: Vec<&Write> = first_rows.iter().collect();
            write_rows(&mut txn, &refs)?;
            txn.commit()?;
            Ok(())
        })?;
        Ok(store)
    }

    /// Open an initialised database, applying the SQL migrations it lacks (`migrate` and `serve`
    /// do; the names of those applied are returned).
    pub(super) fn open(url: &str, mode: LockMode) -> Result<(PgStore, Vec<String>), StoreError> {
        let store = PgStore::connect_locking(url, mode)?;
        let applied = store.migrate(true)?;
        match store.row_schema()? {
            // Every PostgreSQL store was created at the current row schema or a later one.
            SCHEMA_VERSION => Ok((store, applied)),
            found => Err(StoreError::NewerDatabase {
                database: store.name.clone(),
                found: format!("row schema {found}"),
            }),
        }
    }

    /// The schema version of the rows (meta `schema_version`).
    pub(super) fn row_schema(&self) -> Result<u64, StoreError> {
        let row_schema = self.call(|client| {
            let row = client.query_opt("SELECT value FROM meta WHERE key = $1", &[&SCHEMA_KEY])?;
            Ok(row.map(|row| row.try_get::<_, Vec<u8>>(0)).transpose()?)
        })?;
        row_schema
            .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
            .map(u64::from_le_bytes)
            .ok_or_else(|| StoreError::Corrupt {
                table: "meta",
                key: SCHEMA_KEY.into(),
                error: serde::de::Error::custom("missing or not 8 bytes"),
            })
    }

    /// The SQL migrations the database lacks, applied if `apply` (each in its own transaction,
    /// with its record), else only named.
    pub(super) fn migrate(&self, apply_them: bool) -> Result<Vec<String>, StoreError> {
        let name = self.name.clone();
        self.call(move |client| {
            let Some(have) = applied_version(client)? else {
                return Err(StoreError::DatabaseUninitialised(name));
            };
            let known = SQL_MIGRATIONS.last().map_or(0, |m| m.version);
            if have > known {
                return Err(StoreError::NewerDatabase {
                    database: name,
                    found: format!("SQL schema {have} (this server knows up to {known})"),
                });
            }
            let mut names = Vec::new();
            for migration in SQL_MIGRATIONS.iter().filter(|m| m.version > have) {
                if apply_them {
                    let mut txn = client.transaction()?;
                    apply(&mut txn, migration)?;
                    txn.commit()?;
                }
                names.push(format!(
                    "SQL schema {}: {}",
                    migration.version, migration.name
                ));
            }
            Ok(names)
        })
    }

    /// The database, as messages name it (no password).
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// A committer for the writer thread, with a connection of its own.
    pub(super) fn writer(&self) -> PgWriter {
        PgWriter {
            config: self.config.clone(),
            name: self.name.clone(),
            client: None,
            epoch: self.epoch.clone(),
        }
    }

    /// Run `job` on the session's connection and wait for its answer.
    pub(super) fn call<R: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Client) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let (answer, wait) = mpsc::sync_channel(1);
        let jobs = self.jobs.as_ref().ok_or(StoreError::PostgresGone)?;
        jobs.send(Box::new(move |client| {
            let _ = answer.send(job(client));
        }))
        .map_err(|_| StoreError::PostgresGone)?;
        wait.recv().map_err(|_| StoreError::PostgresGone)?
    }

    /// Write rows in one transaction on the session's connection (CLI commands).
    pub(super) fn write_now(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.call(move |client| {
            let refs: Vec<&Write> = writes.iter().collect();
            let mut txn = client.transaction()?;
            write_rows(&mut txn, &refs)?;
            txn.commit()?;
            Ok(())
        })
    }

    /// Every row but the units, in one snapshot.
    pub(super) fn load(&self) -> Result<LoadedRows, StoreError> {
        self.call(|client| {
            let mut txn = client
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let mut meta = BTreeMap::new();
            for row in txn.query("SELECT key, value FROM meta", &[])? {
                meta.insert(row.try_get::<_, String>(0)?, row.try_get::<_, Vec<u8>>(1)?);
            }
            let mut rows = LoadedRows {
                project: meta.remove(super::PROJECT_KEY),
                done_per_minute: meta.remove(super::DONE_PER_MINUTE_KEY),
                next_ids: meta.remove(super::NEXT_IDS_KEY),
                ..LoadedRows::default()
            };
            for (table, into) in [
                ("tokens", &mut rows.tokens),
                ("hosts", &mut rows.hosts),
                ("apps", &mut rows.apps),
                ("batches", &mut rows.batches),
            ] {
                // Keys are bigint or text; both print as text for the messages about them.
                let sql = format!("SELECT key::text, value FROM {table} ORDER BY key");
                for row in txn.query(&sql, &[])? {
                    into.push((row.try_get(0)?, row.try_get(1)?));
                }
            }
            txn.commit()?;
            Ok(rows)
        })
    }

    /// A module's bytes.
    pub(super) fn module(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = sha256.to_owned();
        self.call(move |client| {
            let row = client.query_opt("SELECT value FROM modules WHERE key = $1", &[&key])?;
            Ok(row.map(|row| row.try_get(0)).transpose()?)
        })
    }

    /// The row of unit `id`.
    pub(super) fn unit_row(&self, id: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let Ok(key) = i64::try_from(id) else {
            return Ok(None);
        };
        self.call(move |client| {
            let row = client.query_opt("SELECT value FROM units WHERE key = $1", &[&key])?;
            Ok(row.map(|row| row.try_get(0)).transpose()?)
        })
    }

    /// The unit rows with keys in `ids`, in key order (descending if asked), handed to `visit`
    /// until it returns false. One query, so one snapshot; rows stream in chunks.
    pub(super) fn scan_units(
        &self,
        ids: Range<u64>,
        descending: bool,
        visit: &mut RowVisitor<'_>,
    ) -> Result<(), StoreError> {
        // Keys above i64::MAX cannot be stored (writes refuse them), so clamping loses nothing.
        let clamp = |id: u64| i64::try_from(id).unwrap_or(i64::MAX);
        let (start, end) = (clamp(ids.start), clamp(ids.end));
        let order = if descending { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT key, value FROM units WHERE key >= $1 AND key < $2 ORDER BY key {order}"
        );
        self.stream(
            sql,
            vec![start, end],
            |row| Ok((row.try_get::<_, i64>(0)?, row.try_get::<_, Vec<u8>>(1)?)),
            // Stored keys are never negative: writes convert them from u64.
            &mut |(key, row): (i64, Vec<u8>)| visit(key.unsigned_abs(), &row),
        )
    }

    /// Run the query `sql` (bigint parameters) on the session's connection and hand each row,
    /// as `decode` makes it, to `visit` until it returns false. One query, so one snapshot;
    /// rows stream from the session thread in chunks, so memory does not grow with the table.
    pub(super) fn stream<T: Send + 'static, E: From<StoreError>>(
        &self,
        sql: String,
        params: Vec<i64>,
        decode: fn(&Row) -> Result<T, StoreError>,
        visit: &mut dyn FnMut(T) -> Result<bool, E>,
    ) -> Result<(), E> {
        type Chunk<T> = Result<Vec<T>, StoreError>;
        let (chunks, received) = mpsc::sync_channel::<Chunk<T>>(4);
        let jobs = self.jobs.as_ref().ok_or(StoreError::PostgresGone)?;
        jobs.send(Box::new(move |client| {
            let streamed = (|| -> Result<(), StoreError> {
                let mut rows = client.query_raw(&sql, params)?;
                let mut chunk = Vec::with_capacity(SCAN_CHUNK);
                while let Some(row) = rows.next()? {
                    chunk.push(decode(&row)?);
                    if chunk.len() == SCAN_CHUNK
                        && chunks.send(Ok(std::mem::take(&mut chunk))).is_err()
                    {
                        // The reader stopped early.
                        return Ok(());
                    }
                }
                if !chunk.is_empty() {
                    let _ = chunks.send(Ok(chunk));
                }
                Ok(())
            })();
            if let Err(error) = streamed {
                let _ = chunks.send(Err(error));
            }
        }))
        .map_err(|_| StoreError::PostgresGone)?;
        for chunk in received {
            for item in chunk? {
                if !visit(item)? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // A copy that never made its durable commit is thrown away before the lock is released.
        if self.copy_open.load(Ordering::Relaxed)
            && let Some(jobs) = &self.jobs
        {
            let _ = jobs.send(Box::new(|client| {
                let _ = client.batch_execute("ROLLBACK");
            }));
        }
        // Closing the queue ends the session thread, which releases the lock; waiting for it
        // lets the next opener (a restart in the same process) find the lock free.
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The writer thread's committer: its own connection, made on that thread at the first commit
/// and again after a failure that closed it.
pub(super) struct PgWriter {
    config: Config,
    name: String,
    client: Option<Client>,
    /// The epoch claimed as the active server, if one was (`serve`; CLI commands claim none).
    epoch: Arc<OnceLock<i64>>,
}

impl Commit for PgWriter {
    fn commit(&mut self, writes: &[&Write]) -> Result<(), StoreError> {
        let client = match &mut self.client {
            Some(client) if !client.is_closed() => client,
            slot => slot.insert(connect(&self.config, &self.name)?),
        };
        let mut txn = client.transaction()?;
        if let Some(epoch) = self.epoch.get() {
            // Fencing: the share lock on the row makes a new active's epoch bump wait for this
            // commit, and a bump already made means another server is active: commit nothing.
            let current = txn.query_opt(
                "SELECT 1 FROM musketeer_active WHERE id = 1 AND epoch = $1 FOR SHARE",
                &[epoch],
            )?;
            if current.is_none() {
                return Err(StoreError::Superseded(self.name.clone()));
            }
        }
        write_rows(&mut txn, writes)?;
        txn.commit()?;
        Ok(())
    }
}

/// Connect, with every commit waiting for PostgreSQL's durable commit (whatever the server's
/// default says): a result is acknowledged only once a crash of PostgreSQL would keep it.
pub(super) fn connect(config: &Config, name: &str) -> Result<Client, StoreError> {
    let mut client = config
        .connect(NoTls)
        .map_err(|error| StoreError::PostgresConnect {
            database: name.to_owned(),
            error,
        })?;
    client.batch_execute("SET synchronous_commit = on")?;
    Ok(client)
}

/// Whether the table `name` exists in the connection's search path.
pub(super) fn table_exists(client: &mut Client, name: &str) -> Result<bool, StoreError> {
    let row = client.query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])?;
    Ok(row.try_get::<_, bool>(0)?)
}

/// The highest SQL migration applied, or None if the database was never initialised.
pub(super) fn applied_version(client: &mut Client) -> Result<Option<i32>, StoreError> {
    if !table_exists(client, "musketeer_migrations")? {
        return Ok(None);
    }
    let row = client.query_one(
        "SELECT coalesce(max(version), 0) FROM musketeer_migrations",
        &[],
    )?;
    Ok(Some(row.try_get(0)?))
}

pub(super) fn apply(
    txn: &mut impl GenericClient,
    migration: &SqlMigration,
) -> Result<(), StoreError> {
    txn.batch_execute(migration.sql)?;
    txn.execute(
        "INSERT INTO musketeer_migrations (version, name) VALUES ($1, $2)",
        &[&migration.version, &migration.name],
    )?;
    Ok(())
}

/// Rows waiting to be upserted, per table, the last write of a key winning (one statement may
/// not upsert a key twice).
#[derive(Default)]
struct Pending<'a> {
    meta: BTreeMap<&'a str, &'a [u8]>,
    tokens: BTreeMap<i64, &'a [u8]>,
    hosts: BTreeMap<i64, &'a [u8]>,
    apps: BTreeMap<&'a str, &'a [u8]>,
    modules: BTreeMap<&'a str, &'a [u8]>,
    batches: BTreeMap<i64, &'a [u8]>,
    units: BTreeMap<i64, &'a [u8]>,
}

impl Pending<'_> {
    /// One statement per table that has rows (unnest of two arrays: one round trip).
    fn flush(&mut self, txn: &mut Transaction<'_>) -> Result<(), StoreError> {
        upsert_text(txn, "meta", &mut self.meta)?;
        upsert_id(txn, "tokens", &mut self.tokens)?;
        upsert_id(txn, "hosts", &mut self.hosts)?;
        upsert_text(txn, "apps", &mut self.apps)?;
        upsert_text(txn, "modules", &mut self.modules)?;
        upsert_id(txn, "batches", &mut self.batches)?;
        upsert_id(txn, "units", &mut self.units)
    }
}

pub(super) fn upsert_id(
    txn: &mut impl GenericClient,
    table: &str,
    rows: &mut BTreeMap<i64, &[u8]>,
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let (keys, values): (Vec<i64>, Vec<&[u8]>) = std::mem::take(rows).into_iter().unzip();
    let sql = format!(
        "INSERT INTO {table} (key, value) SELECT * FROM unnest($1::bigint[], $2::bytea[]) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value"
    );
    txn.execute(&sql, &[&keys, &values])?;
    Ok(())
}

pub(super) fn upsert_text(
    txn: &mut impl GenericClient,
    table: &str,
    rows: &mut BTreeMap<&str, &[u8]>,
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let (keys, values): (Vec<&str>, Vec<&[u8]>) = std::mem::take(rows).into_iter().unzip();
    let sql = format!(
        "INSERT INTO {table} (key, value) SELECT * FROM unnest($1::text[], $2::bytea[]) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value"
    );
    txn.execute(&sql, &[&keys, &values])?;
    Ok(())
}

/// A u64 key as PostgreSQL's bigint.
pub(super) fn id_key(table: &'static str, key: u64) -> Result<i64, StoreError> {
    i64::try_from(key).map_err(|_| StoreError::KeyOutOfRange { table, key })
}

/// Apply `writes` in order inside `txn`.
fn write_rows(txn: &mut Transaction<'_>, writes: &[&Write]) -> Result<(), StoreError> {
    let mut pending = Pending::default();
    for write in writes {
        match write {
            Write::Meta(k, v) => drop(pending.meta.insert(k, v)),
            Write::Token(k, v) => drop(pending.tokens.insert(id_key("tokens", *k)?, v)),
            Write::Host(k, v) => drop(pending.hosts.insert(id_key("hosts", *k)?, v)),
            Write::App(k, v) => drop(pending.apps.insert(k, v)),
            Write::Module(k, v) => drop(pending.modules.insert(k, v)),
            Write::Batch(k, v) => drop(pending.batches.insert(id_key("batches", *k)?, v)),
            Write::Units(rows) => {
                for (k, v) in rows.iter() {
                    pending.units.insert(id_key("units", k)?, v);
                }
            }
            Write::DeleteBatch {
                batch,
                first_unit,
                n_units,
            } => {
                // Earlier rows first, so that the delete also removes rows written before it.
                pending.flush(txn)?;
                let batch = id_key("batches", *batch)?;
                let start = id_key("units", *first_unit)?;
                let end = id_key("units", first_unit.saturating_add(*n_units))?;
                txn.execute("DELETE FROM batches WHERE key = $1", &[&batch])?;
                txn.execute(
                    "DELETE FROM units WHERE key >= $1 AND key < $2",
                    &[&start, &end],
                )?;
            }
        }
    }
    pending.flush(txn)
}

/// `postgres://user@host:port/database`, without the password.
pub(super) fn display_name(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(host)) => host.clone(),
        Some(postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("");
    let at = if user.is_empty() { "" } else { "@" };
    let database = config.get_dbname().unwrap_or(user);
    format!("postgres://{user}{at}{host}:{port}/{database}")
}
