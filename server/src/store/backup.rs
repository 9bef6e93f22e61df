//! Online backup: a consistent copy of the store taken while the server serves. One read
//! transaction sees a single committed state (redb is MVCC), so writes go on meanwhile and the
//! copy holds every row of that state and nothing of later commits.

use std::path::Path;

use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};

use super::{
    APPS, BATCHES, HOSTS, META, MODULES, RedbResult, Store, StoreError, TOKENS, UNITS, open_error,
};

impl Store {
    /// Copy every table, as of one committed state, into a new store file at `dest` (which must
    /// not exist). Returns the number of rows copied. Blocking; the copy is durable on return.
    pub fn backup_to(&self, dest: &Path) -> Result<u64, StoreError> {
        if dest.exists() {
            return Err(StoreError::AlreadyExists(dest.to_owned()));
        }
        let super::Backend::Redb(db) = &self.backend else {
            return Err(StoreError::NotOnPostgres(
                "the online backup copies the embedded store; back up a PostgreSQL store with pg_dump",
            ));
        };
        let snapshot = db.begin_read().db()?;
        let copy = Database::create(dest).map_err(|e| open_error(e, dest))?;
        let txn = copy.begin_write().db()?;
        let rows = copy_table(&snapshot, &txn, META)?
            + copy_table(&snapshot, &txn, TOKENS)?
            + copy_table(&snapshot, &txn, HOSTS)?
            + copy_table(&snapshot, &txn, APPS)?
            + copy_table(&snapshot, &txn, MODULES)?
            + copy_table(&snapshot, &txn, BATCHES)?
            + copy_table(&snapshot, &txn, UNITS)?;
        txn.commit().db()?;
        Ok(rows)
    }
}

/// Copies one table's rows; the store's tables differ only in their key type.
fn copy_table<K: redb::Key + 'static>(
    from: &ReadTransaction,
    to: &WriteTransaction,
    table: TableDefinition<K, &[u8]>,
) -> Result<u64, StoreError> {
    let source = from.open_table(table).db()?;
    let mut target = to.open_table(table).db()?;
    let mut rows = 0;
    for entry in source.iter().db()? {
        let (key, value) = entry.db()?;
        target.insert(key.value(), value.value()).db()?;
        rows += 1;
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ProjectConfig, Write};

    fn project() -> ProjectConfig {
        ProjectConfig {
            name: "backup".into(),
            trust: musketeer_signing_keys::TrustStore::from(vec![
                musketeer_signing_keys::SecretKey::from_seed(&[3; 32]).public_key(),
            ]),
            rotations: vec![],
            min_client_version: semver::Version::new(0, 1, 0),
            created_ms: 0,
        }
    }

    #[test]
    fn the_copy_holds_the_snapshot_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(&dir.path().join("live"), &project()).unwrap();
        store
            .write_now(vec![
                Write::Module("abc".into(), b"module bytes".to_vec()),
                Write::Batch(7, b"{}".to_vec()),
            ])
            .unwrap();
        let copy_dir = dir.path().join("copy");
        std::fs::create_dir(&copy_dir).unwrap();
        let dest = copy_dir.join(crate::store::DB_FILE);
        // meta: schema version and project; plus the module and the batch.
        assert_eq!(store.backup_to(&dest).unwrap(), 4);
        assert!(matches!(
            store.backup_to(&dest),
            Err(StoreError::AlreadyExists(_))
        ));
        store
            .write_now(vec![Write::Batch(8, b"{}".to_vec())])
            .unwrap();
        let copy = Store::open(&copy_dir).unwrap();
        assert_eq!(
            copy.module("abc").unwrap().as_deref(),
            Some(&b"module bytes"[..])
        );
        let super::super::Backend::Redb(db) = &copy.backend else {
            unreachable!("opened from a directory")
        };
        let txn = db.begin_read().unwrap();
        let batches = txn.open_table(BATCHES).unwrap();
        assert!(batches.get(7).unwrap().is_some());
        assert!(
            batches.get(8).unwrap().is_none(),
            "written after the snapshot"
        );
    }
}
