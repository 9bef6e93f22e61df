//! Durable storage in one redb file (the default), or in a PostgreSQL database ([`pg`]) with
//! the same tables and rows. Only this module touches redb and PostgreSQL. Rows are JSON, except
//! units (the hot rows), which use the binary layout of [`unit_row`], and the chart history of
//! [`done_per_minute_row`]; docs/operator.md describes them. Reads happen anywhere; all writes go
//! through the [`Writer`] thread, which group-commits.

mod archive;
mod backup;
mod codec;
pub mod done_per_minute_row;
mod migrate;
mod pg;
mod pg_active;
mod pg_rows;
pub mod rows;
pub mod unit_row;
#[cfg(test)]
mod unit_row_props;
mod writer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use musketeer_protocol::UnitId;

use crate::domain::lifecycle::Unit;
use crate::domain::tokens::TokenRecord;
use crate::domain::world::{AppVersion, Batch, Host, NextIds};
pub use archive::UnitArchive;
pub use migrate::{MigrationReport, SCHEMA_VERSION};
pub use pg_active::ActiveRow;
pub use writer::{UnitRows, Write, Writer};

/// The store file inside the data directory.
pub const DB_FILE: &str = "musketeer.redb";

pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub(crate) const TOKENS: TableDefinition<u64, &[u8]> = TableDefinition::new("tokens");
pub(crate) const HOSTS: TableDefinition<u64, &[u8]> = TableDefinition::new("hosts");
pub(crate) const APPS: TableDefinition<&str, &[u8]> = TableDefinition::new("apps");
pub(crate) const MODULES: TableDefinition<&str, &[u8]> = TableDefinition::new("modules");
pub(crate) const BATCHES: TableDefinition<u64, &[u8]> = TableDefinition::new("batches");
pub(crate) const UNITS: TableDefinition<u64, &[u8]> = TableDefinition::new("units");

const PROJECT_KEY: &str = "project";
const SCHEMA_KEY: &str = "schema_version";
const DONE_PER_MINUTE_KEY: &str = "done_per_minute";
const NEXT_IDS_KEY: &str = "next_ids";

/// Storage failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// `init` found an existing store.
    #[error("{} already exists; refusing to overwrite an existing store", .0.display())]
    AlreadyExists(PathBuf),
    /// `serve` found no store.
    #[error("no store at {}; run `musketeer-server init` first", .0.display())]
    Missing(PathBuf),
    /// The data directory given is a file.
    #[error(
        "{} is a file, not a directory: --data-dir names the directory that holds the store \
         ({DB_FILE}), as given to `musketeer-server init`",
        .0.display()
    )]
    NotADirectory(PathBuf),
    /// Another process (probably a running server) has the store open.
    #[error("the store {} is in use by another process (a running server?); stop it or use the admin API", .0.display())]
    InUse(PathBuf),
    /// redb failed.
    #[error("storage error: {0}")]
    Redb(#[from] redb::Error),
    /// A stored row does not decode.
    #[error("corrupt {table} row {key}: {error}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The row key.
        key: String,
        /// The decoding error.
        error: serde_json::Error,
    },
    /// A commit failed (or the writer stopped); the change was not saved and memory was put
    /// back to what the store holds.
    #[error("storage refused the change (disk full or failing?); nothing was saved; retry later")]
    WriterStopped,
    /// A row given to [`Store::write_rows`] has a key of the wrong kind for its table.
    #[error("a {table} row has the key {key}, of the wrong kind for that table (text or id)")]
    WrongKeyKind {
        /// The table.
        table: &'static str,
        /// The key.
        key: String,
    },
    /// A commit failed on purpose (tests of storage faults).
    #[error("injected storage failure")]
    Injected,
    /// The store was written by a newer server, whose rows this one may misread.
    #[error(
        "the store {} has schema version {found}: written by a newer musketeer-server (this one knows up to {}); upgrade the binary",
        path.display(),
        SCHEMA_VERSION
    )]
    NewerSchema {
        /// The store file.
        path: PathBuf,
        /// Its schema version.
        found: u64,
    },
    /// The store predates schema migrations.
    #[error(
        "the store {} has schema version {found}, older than any migration; collect its results with the release that wrote it, then `init` a new store",
        path.display()
    )]
    TooOld {
        /// The store file.
        path: PathBuf,
        /// Its schema version.
        found: u64,
    },
    /// The copy a migration makes first exists already (from an interrupted attempt).
    #[error(
        "{} exists from an earlier migration attempt (a copy of the store before the upgrade); move it elsewhere and start again",
        .0.display()
    )]
    MigrationBackupExists(PathBuf),
    /// A file of the store could not be examined.
    #[error("cannot read {}: {error}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The data directory could not be created.
    #[error("could not create data directory {}: {error}", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// `--store` is not a PostgreSQL connection URL.
    #[error(
        "--store is not a PostgreSQL URL such as postgres://musketeer@127.0.0.1:5432/musketeer: {}",
        postgres_reason(.error)
    )]
    PostgresUrl {
        /// Why it does not parse.
        error: postgres::Error,
    },
    /// PostgreSQL cannot be reached or refused the login.
    #[error(
        "cannot connect to the PostgreSQL store {database}: {}; check that PostgreSQL runs \
         there and that the user, password and database in --store are right",
        postgres_reason(.error)
    )]
    PostgresConnect {
        /// The database (URL without password).
        database: String,
        /// The connection error.
        error: postgres::Error,
    },
    /// A PostgreSQL statement failed.
    #[error("PostgreSQL error: {}", postgres_reason(.0))]
    Postgres(#[from] postgres::Error),
    /// The thread that holds the PostgreSQL session stopped.
    #[error("the connection to the PostgreSQL store was lost; restart the server")]
    PostgresGone,
    /// Another server became the active one on this database: this one may commit nothing more.
    #[error(
        "another musketeer-server became the active one on the PostgreSQL store {0}; this one \
         stops (nothing more is committed)"
    )]
    Superseded(String),
    /// Another server (or CLI command) holds the database's lock.
    #[error(
        "the PostgreSQL store {0} is in use by another musketeer-server (one server per database); \
         stop it or use the admin API"
    )]
    DatabaseInUse(String),
    /// `init` found the musketeer tables in the database already.
    #[error("the PostgreSQL store {0} is initialised already; refusing to overwrite it")]
    DatabaseNotEmpty(String),
    /// The database has no musketeer tables.
    #[error(
        "the PostgreSQL database {0} holds no musketeer store; run `musketeer-server init --store ...` first"
    )]
    DatabaseUninitialised(String),
    /// The database was set up by a newer server.
    #[error(
        "the PostgreSQL store {database} has {found}: written by a newer musketeer-server; upgrade the binary"
    )]
    NewerDatabase {
        /// The database (URL without password).
        database: String,
        /// What is newer.
        found: String,
    },
    /// A key above what PostgreSQL's bigint holds.
    #[error("{table} key {key} is beyond what the PostgreSQL store holds (2^63 - 1)")]
    KeyOutOfRange {
        /// The table.
        table: &'static str,
        /// The key.
        key: u64,
    },
    /// The PostgreSQL store lacks SQL migrations this binary knows (a copy reads it as is).
    #[error(
        "the PostgreSQL store {database} lacks {missing}: run `musketeer-server migrate --store ...` first"
    )]
    PostgresNotMigrated {
        /// The database (URL without password).
        database: String,
        /// The first migration it lacks.
        missing: String,
    },
    /// The operation exists for the embedded store only.
    #[error("{0}")]
    NotOnPostgres(&'static str),
    /// The operation exists for the PostgreSQL store only.
    #[error("{0}")]
    PostgresOnly(&'static str),
    /// A thread of the store could not be started.
    #[error("cannot start a store thread: {error}")]
    Thread {
        /// The OS error.
        error: std::io::Error,
    },
}

/// A PostgreSQL error with its cause: the client's own text names only the kind ("db error",
/// "error connecting to server"), and what went wrong (the database that does not exist, the
/// refused password, the refused connection) is in the cause.
fn postgres_reason(error: &postgres::Error) -> String {
    match std::error::Error::source(error) {
        Some(cause) => format!("{error}: {cause}"),
        None => error.to_string(),
    }
}

/// Converts any of redb's error types with `?`.
pub(crate) trait RedbResult<T> {
    fn db(self) -> Result<T, StoreError>;
}

impl<T, E: Into<redb::Error>> RedbResult<T> for Result<T, E> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::Redb(e.into()))
    }
}

/// Project settings fixed at init (and by key rotations).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectConfig {
    /// Display name.
    pub name: String,
    /// Keys trusted for app manifests.
    pub trust: musketeer_signing_keys::TrustStore,
    /// Applied rotation statements, oldest first.
    pub rotations: Vec<musketeer_signing_keys::RotationStatement>,
    /// Oldest client version that gets work.
    pub min_client_version: semver::Version,
    /// When the store was created.
    pub created_ms: u64,
}

impl ProjectConfig {
    /// Trusts `statement`'s new key (and retires the old one if it says so), keeping the
    /// statement for clients that pinned an older key. A statement already applied changes
    /// nothing and is not an error, so an operator can safely send it twice.
    pub fn rotate(
        &mut self,
        statement: &musketeer_signing_keys::RotationStatement,
    ) -> Result<(), musketeer_signing_keys::RotationError> {
        self.trust.apply_rotation(statement)?;
        if !self.rotations.contains(statement) {
            self.rotations.push(statement.clone());
        }
        Ok(())
    }
}

/// Everything stored, as loaded at start.
#[derive(Debug)]
pub struct Loaded {
    /// Project settings.
    pub project: ProjectConfig,
    /// User tokens (including revoked ones).
    pub tokens: Vec<TokenRecord>,
    /// Hosts.
    pub hosts: Vec<Host>,
    /// App versions.
    pub apps: Vec<AppVersion>,
    /// Batches.
    pub batches: Vec<Batch>,
    /// The overview chart's history: (minute since the Unix epoch, units done in it). Empty if
    /// the row is missing or does not decode (it is a display aid, not worth refusing to start).
    pub done_per_minute: Vec<(u64, u64)>,
    /// The ids the next batch and unit get at least (default if no batch was ever deleted).
    pub next_ids: NextIds,
}

/// Where a store is: a directory holding the redb file, or a PostgreSQL database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// The embedded store's directory (`--data-dir`).
    DataDir(PathBuf),
    /// A PostgreSQL connection URL (`--store postgres://...`).
    Postgres(String),
}

impl fmt::Display for StoreLocation {
    /// The directory, or the URL without its password (for messages).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::DataDir(dir) => write!(f, "{}", dir.display()),
            StoreLocation::Postgres(url) => match url.parse::<postgres::Config>() {
                Ok(config) => f.write_str(&pg::display_name(&config)),
                Err(_) => f.write_str("the PostgreSQL database given"),
            },
        }
    }
}

/// The open store.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
}

/// The store behind [`Store`]. An enum, not a trait object, so that the redb path stays direct.
#[derive(Debug, Clone)]
enum Backend {
    Redb(Arc<Database>),
    Postgres(Arc<pg::PgStore>),
}

/// The rows [`Store::load`] reads, before decoding (keys as text, for messages).
#[derive(Debug, Default)]
struct LoadedRows {
    project: Option<Vec<u8>>,
    done_per_minute: Option<Vec<u8>>,
    next_ids: Option<Vec<u8>>,
    tokens: Vec<(String, Vec<u8>)>,
    hosts: Vec<(String, Vec<u8>)>,
    apps: Vec<(String, Vec<u8>)>,
    batches: Vec<(String, Vec<u8>)>,
}

impl Store {
    fn redb(db: Database) -> Store {
        Store {
            backend: Backend::Redb(Arc::new(db)),
        }
    }

    /// Create a new store at `location` with the project settings. Fails if one exists.
    pub fn create_at(
        location: &StoreLocation,
        project: &ProjectConfig,
    ) -> Result<Store, StoreError> {
        match location {
            StoreLocation::DataDir(dir) => Store::create(dir, project),
            StoreLocation::Postgres(url) => {
                let first_rows = vec![
                    Write::Meta(SCHEMA_KEY.into(), SCHEMA_VERSION.to_le_bytes().to_vec()),
                    project_write(project),
                ];
                Ok(Store {
                    backend: Backend::Postgres(Arc::new(pg::PgStore::create(url, first_rows)?)),
                })
            }
        }
    }

    /// Open the existing store at `location`, migrating an older schema forward.
    pub fn open_at(location: &StoreLocation) -> Result<Store, StoreError> {
        match location {
            StoreLocation::DataDir(dir) => Store::open(dir),
            StoreLocation::Postgres(url) => Store::open_postgres(url, pg::LockMode::Patient),
        }
    }

    fn open_postgres(url: &str, mode: pg::LockMode) -> Result<Store, StoreError> {
        let (store, applied) = pg::PgStore::open(url, mode)?;
        if !applied.is_empty() {
            tracing::info!(database = store.name(), ?applied, "migrated the store");
        }
        Ok(Store {
            backend: Backend::Postgres(Arc::new(store)),
        })
    }

    /// The SQL migrations a PostgreSQL store at `url` lacks, applied unless `dry_run`; for
    /// `migrate` (`serve` applies them as it opens the store).
    pub fn migrate_postgres(url: &str, dry_run: bool) -> Result<Vec<String>, StoreError> {
        let store = pg::PgStore::open_unmigrated(url)?;
        store.migrate(!dry_run)
    }

    /// Whether this is a PostgreSQL store.
    pub fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// Create a new store in `data_dir` with the project settings. Fails if one exists.
    pub fn create(data_dir: &Path, project: &ProjectConfig) -> Result<Store, StoreError> {
        if data_dir.is_file() {
            return Err(StoreError::NotADirectory(data_dir.to_owned()));
        }
        std::fs::create_dir_all(data_dir).map_err(|error| StoreError::DataDir {
            path: data_dir.to_owned(),
            error,
        })?;
        let path = data_dir.join(DB_FILE);
        if path.exists() {
            return Err(StoreError::AlreadyExists(path));
        }
        let db = builder().create(&path).map_err(|e| open_error(e, &path))?;
        let txn = db.begin_write().db()?;
        {
            let mut meta = txn.open_table(META).db()?;
            meta.insert(SCHEMA_KEY, SCHEMA_VERSION.to_le_bytes().as_slice())
                .db()?;
            meta.insert(PROJECT_KEY, encode(project).as_slice()).db()?;
            // Create every table so that readers never meet a missing one.
            txn.open_table(TOKENS).db()?;
            txn.open_table(HOSTS).db()?;
            txn.open_table(APPS).db()?;
            txn.open_table(MODULES).db()?;
            txn.open_table(BATCHES).db()?;
            txn.open_table(UNITS).db()?;
        }
        txn.commit().db()?;
        Ok(Store::redb(db))
    }

    /// Open the existing store in `data_dir`, migrating an older schema forward
    /// ([`Store::open_migrating`]).
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        Store::open_migrating(data_dir).map(|(store, _)| store)
    }

    /// Rewrites the store file of `data_dir` without the space that deleted rows left free,
    /// and returns its size before and after. The store must be open nowhere else (a stopped
    /// server); redb's compaction is crash-safe, like any commit.
    pub fn compact(data_dir: &Path) -> Result<(u64, u64), StoreError> {
        let path = data_dir.join(DB_FILE);
        if !path.exists() {
            return Err(missing(data_dir));
        }
        let size = |path: &Path| {
            std::fs::metadata(path)
                .map(|m| m.len())
                .map_err(|error| StoreError::File {
                    path: path.to_owned(),
                    error,
                })
        };
        let before = size(&path)?;
        let mut db = Database::create(&path).map_err(|e| open_error(e, &path))?;
        // Each pass moves what it can; the next one finds more until nothing is left to gain.
        while db.compact().db()? {}
        drop(db);
        Ok((before, size(&path)?))
    }

    /// Every unit row in id order, one at a time (a restart keeps only the unfinished ones in
    /// memory, so they are not collected here).
    pub fn for_each_unit(&self, mut visit: impl FnMut(Unit)) -> Result<(), StoreError> {
        self.scan(UnitId(0)..UnitId(u64::MAX), false, &mut |unit| {
            visit(unit);
            true
        })
    }

    /// Every unit row, collected (tests and tools; the server streams them).
    pub fn units(&self) -> Result<Vec<Unit>, StoreError> {
        let mut units = Vec::new();
        self.for_each_unit(|unit| units.push(unit))?;
        Ok(units)
    }

    /// Read everything but the units ([`Store::for_each_unit`]).
    pub fn load(&self) -> Result<Loaded, StoreError> {
        let rows = match &self.backend {
            Backend::Redb(db) => load_redb(db)?,
            Backend::Postgres(pg) => pg.load()?,
        };
        let project = rows
            .project
            .map(|v| decode::<ProjectConfig>("meta", PROJECT_KEY, &v))
            .transpose()?
            .ok_or_else(|| StoreError::Corrupt {
                table: "meta",
                key: PROJECT_KEY.into(),
                error: serde::de::Error::custom("missing"),
            })?;
        let done_per_minute = match rows.done_per_minute {
            None => Vec::new(),
            Some(row) => done_per_minute_row::decode(&row).unwrap_or_else(|reason| {
                tracing::warn!(
                    %reason,
                    "corrupt meta row {DONE_PER_MINUTE_KEY}; the units-per-minute chart starts empty"
                );
                Vec::new()
            }),
        };
        let next_ids = rows
            .next_ids
            .map(|v| decode::<NextIds>("meta", NEXT_IDS_KEY, &v))
            .transpose()?
            .unwrap_or_default();
        Ok(Loaded {
            project,
            tokens: decode_all(rows.tokens, "tokens")?,
            hosts: decode_all(rows.hosts, "hosts")?,
            apps: decode_all(rows.apps, "apps")?,
            batches: decode_all(rows.batches, "batches")?,
            done_per_minute,
            next_ids,
        })
    }

    /// A module's bytes.
    pub fn module(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match &self.backend {
            Backend::Redb(db) => {
                let txn = db.begin_read().db()?;
                let table = txn.open_table(MODULES).db()?;
                Ok(table.get(sha256).db()?.map(|v| v.value().to_vec()))
            }
            Backend::Postgres(pg) => pg.module(sha256),
        }
    }

    /// Write rows in one durable transaction, from the calling thread (CLI commands; the server
    /// uses the [`Writer`]).
    pub fn write_now(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Redb(db) => writer::commit(db, &writes),
            Backend::Postgres(pg) => pg.write_now(writes),
        }
    }

    /// Start the group-committing writer thread.
    pub fn writer(&self) -> Writer {
        match &self.backend {
            Backend::Redb(db) => Writer::start(db.clone()),
            Backend::Postgres(pg) => Writer::start(pg.writer()),
        }
    }
}

/// The rows of [`Store::load`] from one redb read transaction.
fn load_redb(db: &Database) -> Result<LoadedRows, StoreError> {
    let txn = db.begin_read().db()?;
    let meta = txn.open_table(META).db()?;
    let get = |key: &str| -> Result<Option<Vec<u8>>, StoreError> {
        Ok(meta.get(key).db()?.map(|v| v.value().to_vec()))
    };
    Ok(LoadedRows {
        project: get(PROJECT_KEY)?,
        done_per_minute: get(DONE_PER_MINUTE_KEY)?,
        next_ids: get(NEXT_IDS_KEY)?,
        tokens: read_all(&txn.open_table(TOKENS).db()?)?,
        hosts: read_all(&txn.open_table(HOSTS).db()?)?,
        apps: read_all(&txn.open_table(APPS).db()?)?,
        batches: read_all(&txn.open_table(BATCHES).db()?)?,
    })
}

/// The meta row holding the project settings.
pub fn project_write(project: &ProjectConfig) -> Write {
    Write::Meta(PROJECT_KEY.into(), encode(project))
}

/// The meta row holding the overview chart's history, (minute, units done) pairs.
pub fn done_per_minute_write(history: &[(u64, u64)]) -> Write {
    let mut row = Vec::with_capacity(2 + 3 * history.len());
    done_per_minute_row::encode(history, &mut row);
    Write::Meta(DONE_PER_MINUTE_KEY.into(), row)
}

/// The meta row holding the ids the next batch and unit get at least.
pub fn next_ids_write(next: NextIds) -> Write {
    Write::Meta(NEXT_IDS_KEY.into(), encode(&next))
}

/// Most memory redb's page cache takes. Its default (1 GiB) would keep every page a restart or
/// a download read, so the server's RAM would grow with the history; the interior pages every
/// lookup touches fit many times over.
const CACHE_BYTES: usize = 64 << 20;

/// How the server opens its store file.
pub(crate) fn builder() -> redb::Builder {
    let mut builder = redb::Builder::new();
    builder.set_cache_size(CACHE_BYTES);
    builder
}

/// Why `data_dir` holds no store: it is a file, or the store file is not there.
pub(crate) fn missing(data_dir: &Path) -> StoreError {
    if data_dir.is_file() {
        StoreError::NotADirectory(data_dir.to_owned())
    } else {
        StoreError::Missing(data_dir.join(DB_FILE))
    }
}

pub(crate) fn open_error(e: redb::DatabaseError, path: &Path) -> StoreError {
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse(path.to_owned()),
        other => StoreError::Redb(other.into()),
    }
}

/// Encode a row.
pub fn encode<T: Serialize>(row: &T) -> Vec<u8> {
    // Rows are plain data with string keys; encoding cannot fail.
    serde_json::to_vec(row).unwrap_or_default()
}

fn decode<T: DeserializeOwned>(
    table: &'static str,
    key: &str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|error| StoreError::Corrupt {
        table,
        key: key.to_owned(),
        error,
    })
}

fn read_all<K: redb::Key + 'static>(
    table: &impl ReadableTable<K, &'static [u8]>,
) -> Result<Vec<(String, Vec<u8>)>, StoreError>
where
    for<'a> K::SelfType<'a>: std::fmt::Debug,
{
    let mut rows = Vec::new();
    for entry in table.iter().db()? {
        let (key, value) = entry.db()?;
        rows.push((format!("{:?}", key.value()), value.value().to_vec()));
    }
    Ok(rows)
}

fn decode_all<T: DeserializeOwned>(
    rows: Vec<(String, Vec<u8>)>,
    table: &'static str,
) -> Result<Vec<T>, StoreError> {
    rows.iter()
        .map(|(key, value)| decode(table, key, value))
        .collect()
}
