//! The row view of the store: every table as (key, row bytes), the same whatever engine holds
//! them, for tools that copy a store whole (`export` and `import`). A backend provides two
//! operations: [`Store::visit_rows`] (a table's rows in key order) and [`Store::write_rows`] (a
//! chunk of raw rows in one transaction; on PostgreSQL, every chunk of a copy in one transaction
//! that the durable chunk commits: see `pg_rows`). The row bytes are the backend-neutral encodings of
//! the other modules (JSON, [`super::unit_row`]); nothing here decodes them.

use std::path::Path;

use redb::{Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{
    APPS, BATCHES, Backend, HOSTS, META, MODULES, RedbResult, Store, StoreError, StoreLocation,
    TOKENS, UNITS, open_error, pg::PgStore,
};

/// The store's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    /// Schema version, project settings, chart history, next ids; keyed by name.
    Meta,
    /// User tokens, by id.
    Tokens,
    /// Hosts, by id.
    Hosts,
    /// App versions, by `app@version`.
    Apps,
    /// Modules, by sha256.
    Modules,
    /// Batches, by id.
    Batches,
    /// Units, by id.
    Units,
}

impl Table {
    /// Every table, in the order a copy lists them.
    pub const ALL: [Table; 7] = [
        Table::Meta,
        Table::Tokens,
        Table::Hosts,
        Table::Apps,
        Table::Modules,
        Table::Batches,
        Table::Units,
    ];

    /// The table's name (also redb's).
    pub fn name(self) -> &'static str {
        match self {
            Table::Meta => "meta",
            Table::Tokens => "tokens",
            Table::Hosts => "hosts",
            Table::Apps => "apps",
            Table::Modules => "modules",
            Table::Batches => "batches",
            Table::Units => "units",
        }
    }

    /// The table named `name`.
    pub fn from_name(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|table| table.name() == name)
    }

    /// Whether its keys are text (otherwise ids).
    pub fn text_keys(self) -> bool {
        matches!(self, Table::Meta | Table::Apps | Table::Modules)
    }
}

/// A row's key: text or id, as its table has. Ordered as the store orders keys (text
/// bytewise, ids numerically), and in JSON a string or a number.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RowKey {
    /// A numeric id.
    Id(u64),
    /// A text key.
    Text(String),
}

impl std::fmt::Display for RowKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RowKey::Id(id) => write!(f, "{id}"),
            RowKey::Text(text) => write!(f, "{text:?}"),
        }
    }
}

/// Whether a commit of [`Store::write_rows`] must be on disk when it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// Durable on return (the last chunk of a copy).
    Durable,
    /// Durable with the next durable commit (the chunks before it: a copy that dies half way
    /// is thrown away anyway).
    Deferred,
}

impl Store {
    /// Open the existing store in `data_dir` as it is, without migrating it; returns its schema
    /// version. For copies: a store of any schema reads as rows.
    pub fn open_unmigrated(data_dir: &Path) -> Result<(Store, u64), StoreError> {
        let (db, _) = super::migrate::open_file(data_dir)?;
        let schema = super::migrate::schema_version(&db)?;
        Ok((Store::redb(db), schema))
    }

    /// Open the existing store at `location` as it is, without migrating its rows; returns its
    /// schema version. A PostgreSQL store must have every SQL migration this binary knows.
    pub fn open_unmigrated_at(location: &StoreLocation) -> Result<(Store, u64), StoreError> {
        match location {
            StoreLocation::DataDir(dir) => Store::open_unmigrated(dir),
            StoreLocation::Postgres(url) => {
                let store = PgStore::open_unmigrated(url)?;
                // Refuses an uninitialised database and one a newer server set up.
                let missing = store.migrate(false)?;
                if let Some(first) = missing.first() {
                    return Err(StoreError::PostgresNotMigrated {
                        database: store.name().to_owned(),
                        missing: first.clone(),
                    });
                }
                let schema = store.row_schema()?;
                Ok((
                    Store {
                        backend: Backend::Postgres(std::sync::Arc::new(store)),
                    },
                    schema,
                ))
            }
        }
    }

    /// Create the tables of a PostgreSQL store at `url` (a database that holds no musketeer
    /// store) in a transaction left open: rows written by [`Store::write_rows`] join it, and the
    /// first [`Commit::Durable`] makes the store exist. Dropped before that, it leaves nothing.
    pub fn create_empty_postgres(url: &str) -> Result<Store, StoreError> {
        Ok(Store {
            backend: Backend::Postgres(std::sync::Arc::new(PgStore::create_empty(url)?)),
        })
    }

    /// Create a store file at `path` (which must not hold one) with every table and no row, to
    /// be filled by [`Store::write_rows`].
    pub fn create_empty(path: &Path) -> Result<Store, StoreError> {
        let is_empty = std::fs::metadata(path).map_or(true, |m| m.len() == 0);
        if !is_empty {
            return Err(StoreError::AlreadyExists(path.to_owned()));
        }
        let db = super::builder()
            .create(path)
            .map_err(|e| open_error(e, path))?;
        let txn = db.begin_write().db()?;
        for table in Table::ALL {
            if table.text_keys() {
                txn.open_table(text_table(table)).db()?;
            } else {
                txn.open_table(id_table(table)).db()?;
            }
        }
        txn.commit().db()?;
        Ok(Store::redb(db))
    }

    /// Call `visit` with every row of `table` in key order, in one read transaction; stops at
    /// the first error `visit` returns.
    pub fn visit_rows<E: From<StoreError>>(
        &self,
        table: Table,
        mut visit: impl FnMut(&RowKey, &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let db = match &self.backend {
            Backend::Redb(db) => db,
            Backend::Postgres(pg) => return pg.visit_rows(table, &mut visit),
        };
        let txn = db.begin_read().db()?;
        if table.text_keys() {
            for entry in txn.open_table(text_table(table)).db()?.iter().db()? {
                let (key, row) = entry.db()?;
                visit(&RowKey::Text(key.value().to_owned()), row.value())?;
            }
        } else {
            for entry in txn.open_table(id_table(table)).db()?.iter().db()? {
                let (id, row) = entry.db()?;
                visit(&RowKey::Id(id.value()), row.value())?;
            }
        }
        Ok(())
    }

    /// Insert (or overwrite) `rows` of `table` in one transaction. A key of the wrong kind for
    /// the table (text for an id table or the reverse) fails the whole chunk.
    pub fn write_rows(
        &self,
        table: Table,
        rows: &[(RowKey, Vec<u8>)],
        commit: Commit,
    ) -> Result<(), StoreError> {
        let db = match &self.backend {
            Backend::Redb(db) => db,
            Backend::Postgres(pg) => return pg.write_rows(table, rows, commit),
        };
        let mut txn = db.begin_write().db()?;
        if commit == Commit::Deferred {
            txn.set_durability(Durability::None).db()?;
        }
        {
            let wrong_kind = |key: &RowKey| StoreError::WrongKeyKind {
                table: table.name(),
                key: key.to_string(),
            };
            if table.text_keys() {
                let mut target = txn.open_table(text_table(table)).db()?;
                for (key, row) in rows {
                    let RowKey::Text(text) = key else {
                        return Err(wrong_kind(key));
                    };
                    target.insert(text.as_str(), row.as_slice()).db()?;
                }
            } else {
                let mut target = txn.open_table(id_table(table)).db()?;
                for (key, row) in rows {
                    let &RowKey::Id(id) = key else {
                        return Err(wrong_kind(key));
                    };
                    target.insert(id, row.as_slice()).db()?;
                }
            }
        }
        txn.commit().db()
    }
}

/// Whether this binary can serve a store of schema `found` (as it is, or after migrating it);
/// `source` names where the schema was read, for the error.
pub fn check_schema(found: u64, source: &Path) -> Result<(), StoreError> {
    super::migrate::check_migratable(found, source)
}

/// The redb definition of a table keyed by text. Tables keyed by ids map to meta, which is
/// never asked for them ([`Table::text_keys`] picks).
fn text_table(table: Table) -> TableDefinition<'static, &'static str, &'static [u8]> {
    match table {
        Table::Apps => APPS,
        Table::Modules => MODULES,
        _ => META,
    }
}

/// The redb definition of a table keyed by ids (see [`text_table`]).
fn id_table(table: Table) -> TableDefinition<'static, u64, &'static [u8]> {
    match table {
        Table::Tokens => TOKENS,
        Table::Hosts => HOSTS,
        Table::Batches => BATCHES,
        _ => UNITS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ProjectConfig, Write};

    fn project() -> ProjectConfig {
        ProjectConfig {
            name: "rows".into(),
            trust: musketeer_signing_keys::TrustStore::from(vec![]),
            rotations: vec![],
            min_client_version: semver::Version::new(0, 1, 0),
            created_ms: 0,
        }
    }

    fn rows_of(store: &Store, table: Table) -> Vec<(RowKey, Vec<u8>)> {
        let mut rows = Vec::new();
        store
            .visit_rows::<StoreError>(table, |key, row| {
                rows.push((key.clone(), row.to_vec()));
                Ok(())
            })
            .unwrap();
        rows
    }

    #[test]
    fn every_row_is_visited_in_key_order_and_copies_to_an_empty_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(&dir.path().join("a"), &project()).unwrap();
        store
            .write_now(vec![
                Write::Batch(10, b"ten".to_vec()),
                Write::Batch(2, b"two".to_vec()),
                Write::Module("b".into(), b"B".to_vec()),
                Write::Module("a".into(), b"A".to_vec()),
            ])
            .unwrap();
        assert_eq!(
            rows_of(&store, Table::Batches),
            vec![
                (RowKey::Id(2), b"two".to_vec()),
                (RowKey::Id(10), b"ten".to_vec())
            ]
        );
        let meta_keys: Vec<RowKey> = rows_of(&store, Table::Meta)
            .into_iter()
            .map(|(key, _)| key)
            .collect();
        assert_eq!(
            meta_keys,
            vec![
                RowKey::Text("project".into()),
                RowKey::Text("schema_version".into())
            ]
        );

        let copy_path = dir.path().join("copy.redb");
        let copy = Store::create_empty(&copy_path).unwrap();
        assert!(rows_of(&copy, Table::Meta).is_empty());
        for table in Table::ALL {
            let commit = if table == Table::Units {
                Commit::Durable
            } else {
                Commit::Deferred
            };
            copy.write_rows(table, &rows_of(&store, table), commit)
                .unwrap();
        }
        for table in Table::ALL {
            assert_eq!(rows_of(&copy, table), rows_of(&store, table), "{table:?}");
        }
        drop(copy);
        assert!(matches!(
            Store::create_empty(&copy_path),
            Err(StoreError::AlreadyExists(_))
        ));
    }

    #[test]
    fn a_key_of_the_wrong_kind_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create_empty(&dir.path().join("s.redb")).unwrap();
        let rows = vec![
            (RowKey::Id(1), b"one".to_vec()),
            (RowKey::Text("x".into()), b"x".to_vec()),
        ];
        let refused = store.write_rows(Table::Units, &rows, Commit::Durable);
        assert!(
            matches!(&refused, Err(StoreError::WrongKeyKind { table: "units", key }) if key == "\"x\""),
            "{refused:?}"
        );
        assert!(rows_of(&store, Table::Units).is_empty());
    }

    #[test]
    fn names_and_key_kinds_round_trip() {
        for table in Table::ALL {
            assert_eq!(Table::from_name(table.name()), Some(table));
        }
        assert_eq!(Table::from_name("unit"), None);
        assert_eq!(
            serde_json::to_string(&[RowKey::Id(7), RowKey::Text("k".into())]).unwrap(),
            r#"[7,"k"]"#
        );
        let keys: Vec<RowKey> = serde_json::from_str(r#"[7,"k"]"#).unwrap();
        assert_eq!(keys, vec![RowKey::Id(7), RowKey::Text("k".into())]);
    }
}
