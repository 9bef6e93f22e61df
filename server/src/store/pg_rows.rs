//! The row view ([`super::rows`]) of a PostgreSQL store: the same tables, keys and row bytes as
//! the redb file, in the same key order (text keys bytewise through `COLLATE "C"`, ids
//! numerically), so that an export of either store is the same stream.
//!
//! A copy into PostgreSQL is one transaction: [`PgStore::create_empty`] creates the schema in
//! it, [`PgStore::write_rows`] adds rows to it, and only the durable commit of the last chunk
//! makes the store exist. A copy that fails or is killed leaves the database as it was.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use super::StoreError;
use super::pg::{
    MIGRATIONS_TABLE, PgStore, SQL_MIGRATIONS, applied_version, apply, id_key, upsert_id,
    upsert_text,
};
use super::rows::{Commit, RowKey, Table};

/// A chunk's keys, checked against the table's kind before anything is sent.
enum Keys {
    Text(Vec<String>),
    Ids(Vec<i64>),
}

impl PgStore {
    /// Connect to `url`, take the lock and create the schema in a transaction left open (the
    /// database must hold no musketeer store), to be filled by [`PgStore::write_rows`].
    pub(super) fn create_empty(url: &str) -> Result<PgStore, StoreError> {
        let store = PgStore::connect(url)?;
        let name = store.name().to_owned();
        store.call(move |client| {
            if applied_version(client)?.is_some() {
                return Err(StoreError::DatabaseNotEmpty(name));
            }
            client.batch_execute("BEGIN")?;
            client.batch_execute(MIGRATIONS_TABLE)?;
            for migration in SQL_MIGRATIONS {
                apply(client, migration)?;
            }
            Ok(())
        })?;
        store.copy_open.store(true, Ordering::Relaxed);
        Ok(store)
    }

    /// Call `visit` with every row of `table` in key order (one query: one snapshot).
    pub(super) fn visit_rows<E: From<StoreError>>(
        &self,
        table: Table,
        mut visit: impl FnMut(&RowKey, &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let name = table.name();
        if table.text_keys() {
            let sql = format!("SELECT key, value FROM {name} ORDER BY key COLLATE \"C\"");
            self.stream(
                sql,
                Vec::new(),
                |row| Ok((RowKey::Text(row.try_get(0)?), row.try_get(1)?)),
                &mut |(key, row): (RowKey, Vec<u8>)| visit(&key, &row).map(|()| true),
            )
        } else {
            let sql = format!("SELECT key, value FROM {name} ORDER BY key");
            self.stream(
                sql,
                Vec::new(),
                // Stored keys are never negative: writes convert them from u64.
                |row| {
                    let key: i64 = row.try_get(0)?;
                    Ok((RowKey::Id(key.unsigned_abs()), row.try_get(1)?))
                },
                &mut |(key, row): (RowKey, Vec<u8>)| visit(&key, &row).map(|()| true),
            )
        }
    }

    /// Upsert `rows` of `table` in the copy's transaction (begun here if none is open), and
    /// commit it if `commit` is durable. A failure rolls the whole copy back.
    pub(super) fn write_rows(
        &self,
        table: Table,
        rows: &[(RowKey, Vec<u8>)],
        commit: Commit,
    ) -> Result<(), StoreError> {
        let wrong_kind = |key: &RowKey| StoreError::WrongKeyKind {
            table: table.name(),
            key: key.to_string(),
        };
        let keys = if table.text_keys() {
            let texts = rows.iter().map(|(key, _)| match key {
                RowKey::Text(text) => Ok(text.clone()),
                RowKey::Id(_) => Err(wrong_kind(key)),
            });
            Keys::Text(texts.collect::<Result<_, _>>()?)
        } else {
            let ids = rows.iter().map(|(key, _)| match key {
                &RowKey::Id(id) => id_key(table.name(), id),
                RowKey::Text(_) => Err(wrong_kind(key)),
            });
            Keys::Ids(ids.collect::<Result<_, _>>()?)
        };
        let values: Vec<Vec<u8>> = rows.iter().map(|(_, row)| row.clone()).collect();
        let begin = !self.copy_open.load(Ordering::Relaxed);
        let name = table.name();
        let written = self.call(move |client| {
            let upserted = (|| -> Result<(), StoreError> {
                if begin {
                    client.batch_execute("BEGIN")?;
                }
                let values = values.iter().map(Vec::as_slice);
                match &keys {
                    Keys::Text(texts) => {
                        let mut rows: BTreeMap<&str, &[u8]> =
                            texts.iter().map(String::as_str).zip(values).collect();
                        upsert_text(client, name, &mut rows)?;
                    }
                    Keys::Ids(ids) => {
                        let mut rows: BTreeMap<i64, &[u8]> =
                            ids.iter().copied().zip(values).collect();
                        upsert_id(client, name, &mut rows)?;
                    }
                }
                if commit == Commit::Durable {
                    client.batch_execute("COMMIT")?;
                }
                Ok(())
            })();
            if upserted.is_err() {
                let _ = client.batch_execute("ROLLBACK");
            }
            upserted
        });
        self.copy_open.store(
            written.is_ok() && commit == Commit::Deferred,
            Ordering::Relaxed,
        );
        written
    }
}
