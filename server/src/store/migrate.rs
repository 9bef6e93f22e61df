//! Schema versions and forward migrations. Opening a store of an older schema backs it up next
//! to itself (`musketeer.redb.pre-v3.bak`) and migrates it in one write transaction, so a crash
//! leaves either the old store or the new one; a store of a newer schema is refused, since this
//! binary cannot know what the newer rows mean.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, WriteTransaction};

use super::{
    BATCHES, META, RedbResult, SCHEMA_KEY, Store, StoreError, decode, encode, open_error, unit_row,
};
use crate::domain::lifecycle::UnitStatus;
use crate::domain::world::Batch;

/// The schema this binary writes. 2: binary unit rows; 3: batches record when they finished.
pub const SCHEMA_VERSION: u64 = 3;

/// The oldest schema that migrates forward (schema 1 stores predate migrations).
const OLDEST_MIGRATABLE: u64 = 2;

/// What a migration did, or (dry run) would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// The store's schema before.
    pub from: u64,
    /// The schema after.
    pub to: u64,
    /// Where the store was (or would be) copied first.
    pub backup: PathBuf,
    /// One line per step, with what it changed.
    pub steps: Vec<String>,
}

impl std::fmt::Display for MigrationReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "schema {} -> {} (backup {})",
            self.from,
            self.to,
            self.backup.display()
        )?;
        for step in &self.steps {
            write!(f, "; {step}")?;
        }
        Ok(())
    }
}

impl Store {
    /// Open the existing store in `data_dir`, migrating it forward first if it has an older
    /// schema; returns what the migration did, if one ran.
    pub fn open_migrating(data_dir: &Path) -> Result<(Store, Option<MigrationReport>), StoreError> {
        let (db, path) = open_file(data_dir)?;
        let from = schema_version(&db)?;
        if from == SCHEMA_VERSION {
            return Ok((Store::redb(db), None));
        }
        check_migratable(from, &path)?;
        let db = Arc::new(db);
        let store = Store {
            backend: super::Backend::Redb(db.clone()),
        };
        let backup = backup_path(&path);
        if backup.exists() {
            return Err(StoreError::MigrationBackupExists(backup));
        }
        store.backup_to(&backup)?;
        let txn = db.begin_write().db()?;
        let steps = apply_steps(&txn, from)?;
        txn.commit().db()?;
        let report = MigrationReport {
            from,
            to: SCHEMA_VERSION,
            backup,
            steps,
        };
        tracing::info!(%report, "migrated the store");
        Ok((store, Some(report)))
    }

    /// What opening the store in `data_dir` would migrate, without changing it: the migration
    /// runs in a transaction that is then aborted. `None` if the schema is current.
    pub fn migration_plan(data_dir: &Path) -> Result<Option<MigrationReport>, StoreError> {
        let (db, path) = open_file(data_dir)?;
        let from = schema_version(&db)?;
        if from == SCHEMA_VERSION {
            return Ok(None);
        }
        check_migratable(from, &path)?;
        let txn = db.begin_write().db()?;
        let steps = apply_steps(&txn, from)?;
        txn.abort().db()?;
        Ok(Some(MigrationReport {
            from,
            to: SCHEMA_VERSION,
            backup: backup_path(&path),
            steps,
        }))
    }
}

pub(super) fn open_file(data_dir: &Path) -> Result<(Database, PathBuf), StoreError> {
    let path = data_dir.join(super::DB_FILE);
    if !path.exists() {
        return Err(super::missing(data_dir));
    }
    let db = super::builder()
        .create(&path)
        .map_err(|e| open_error(e, &path))?;
    Ok((db, path))
}

pub(super) fn schema_version(db: &Database) -> Result<u64, StoreError> {
    let txn = db.begin_read().db()?;
    let meta = txn.open_table(META).db()?;
    let row = meta.get(SCHEMA_KEY).db()?;
    row.and_then(|v| <[u8; 8]>::try_from(v.value()).ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| StoreError::Corrupt {
            table: "meta",
            key: SCHEMA_KEY.into(),
            error: serde::de::Error::custom("missing or not 8 bytes"),
        })
}

pub(super) fn check_migratable(found: u64, path: &Path) -> Result<(), StoreError> {
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_owned(),
            found,
        });
    }
    if found < OLDEST_MIGRATABLE {
        return Err(StoreError::TooOld {
            path: path.to_owned(),
            found,
        });
    }
    Ok(())
}

fn backup_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".pre-v{SCHEMA_VERSION}.bak"));
    PathBuf::from(name)
}

/// Runs every step from schema `from` up to [`SCHEMA_VERSION`] in `txn`, including the new
/// version number.
fn apply_steps(txn: &WriteTransaction, from: u64) -> Result<Vec<String>, StoreError> {
    let mut steps = Vec::new();
    if from < 3 {
        steps.push(stamp_finished_batches(txn)?);
    }
    txn.open_table(META)
        .db()?
        .insert(SCHEMA_KEY, SCHEMA_VERSION.to_le_bytes().as_slice())
        .db()?;
    Ok(steps)
}

/// 2 -> 3: batches already finished get the migration's time as their finishing time, so that
/// retention counts from the upgrade (they never finish again to be stamped otherwise).
fn stamp_finished_batches(txn: &WriteTransaction) -> Result<String, StoreError> {
    let now_ms = crate::state::AppState::now_ms();
    let units = txn.open_table(super::UNITS).db()?;
    let mut batches = txn.open_table(BATCHES).db()?;
    let mut stamped = Vec::new();
    for entry in batches.iter().db()? {
        let (key, value) = entry.db()?;
        let mut batch: Batch = decode("batches", &key.value().to_string(), value.value())?;
        if batch.finished_ms.is_some() {
            continue;
        }
        let mut finished = true;
        for unit in batch.unit_ids() {
            let Some(row) = units.get(unit.0).db()? else {
                continue;
            };
            let unit =
                unit_row::decode_unit(row.value()).map_err(|reason| StoreError::Corrupt {
                    table: "units",
                    key: unit.0.to_string(),
                    error: serde::de::Error::custom(reason),
                })?;
            if matches!(unit.status, UnitStatus::Active) {
                finished = false;
                break;
            }
        }
        if finished {
            batch.finished_ms = Some(now_ms);
            stamped.push((key.value(), encode(&batch)));
        }
    }
    let count = stamped.len();
    for (id, row) in stamped {
        batches.insert(id, row.as_slice()).db()?;
    }
    Ok(format!(
        "v3: stamped {count} finished batch(es) as finished now (their retention starts today)"
    ))
}

#[cfg(test)]
mod tests {
    use musketeer_protocol::{BatchId, Replication, TokenId, UnitCounts, UnitId};

    use super::*;
    use crate::domain::lifecycle::{Params, Unit};
    use crate::store::{ProjectConfig, UnitRows, Write};

    fn project() -> ProjectConfig {
        ProjectConfig {
            name: "migrate".into(),
            trust: musketeer_signing_keys::TrustStore::new(),
            rotations: vec![],
            min_client_version: semver::Version::new(0, 1, 0),
            created_ms: 0,
        }
    }

    fn batch(id: u64, first_unit: u64) -> Batch {
        Batch {
            id: BatchId(id),
            owner: TokenId(1),
            app: "demo".into(),
            version: semver::Version::new(1, 0, 0),
            label: None,
            created_ms: 0,
            first_unit: UnitId(first_unit),
            n_units: 1,
            params: Params::resolve(&Replication::default()).unwrap(),
            priority: 0,
            cancelled: false,
            finished_ms: None,
            finish_order: Vec::new(),
            results: Default::default(),
            failed_replicas: 0,
            counts: UnitCounts::default(),
        }
    }

    /// A schema-2 store: batch 1's only unit failed, batch 2's still waits.
    fn v2_store(data_dir: &Path) {
        let store = Store::create(data_dir, &project()).unwrap();
        let params = Params::resolve(&Replication::default()).unwrap();
        let mut failed = Unit::new(UnitId(1), BatchId(1), params, serde_json::json!(1));
        failed.status = UnitStatus::Failed {
            reason: "gave up".into(),
        };
        let waiting = Unit::new(UnitId(2), BatchId(2), params, serde_json::json!(2));
        let mut units = UnitRows::with_capacity(2);
        units.push(&failed);
        units.push(&waiting);
        store
            .write_now(vec![
                Write::Meta(SCHEMA_KEY.into(), 2u64.to_le_bytes().to_vec()),
                Write::Batch(1, encode(&batch(1, 1))),
                Write::Batch(2, encode(&batch(2, 2))),
                Write::Units(units),
            ])
            .unwrap();
    }

    #[test]
    fn a_schema_2_store_is_copied_then_migrated_once() {
        let dir = tempfile::tempdir().unwrap();
        v2_store(dir.path());
        let plan = Store::migration_plan(dir.path()).unwrap().unwrap();
        assert_eq!((plan.from, plan.to), (2, 3));
        assert!(plan.steps[0].contains("stamped 1 finished batch"), "{plan}");
        assert!(!plan.backup.exists(), "a plan changes nothing");
        assert!(Store::migration_plan(dir.path()).unwrap().is_some());

        let (store, report) = Store::open_migrating(dir.path()).unwrap();
        assert_eq!(report, Some(plan.clone()));
        let batches = store.load().unwrap().batches;
        assert!(
            batches[0].finished_ms.is_some(),
            "the failed batch is finished"
        );
        assert_eq!(batches[1].finished_ms, None, "the waiting batch is not");
        drop(store);
        // The copy is the store as it was: still schema 2, still unstamped.
        let copy_dir = dir.path().join("copy");
        std::fs::create_dir(&copy_dir).unwrap();
        std::fs::rename(&plan.backup, copy_dir.join(crate::store::DB_FILE)).unwrap();
        assert_eq!(
            Store::migration_plan(&copy_dir).unwrap(),
            Some(MigrationReport {
                backup: backup_path(&copy_dir.join(crate::store::DB_FILE)),
                ..plan
            })
        );

        let (_, again) = Store::open_migrating(dir.path()).unwrap();
        assert_eq!(again, None, "already at schema 3");
    }

    #[test]
    fn a_leftover_backup_stops_the_migration_before_it_starts() {
        let dir = tempfile::tempdir().unwrap();
        v2_store(dir.path());
        let backup = backup_path(&dir.path().join(crate::store::DB_FILE));
        std::fs::write(&backup, b"an earlier copy").unwrap();
        let error = Store::open_migrating(dir.path()).unwrap_err();
        assert!(
            matches!(error, StoreError::MigrationBackupExists(_)),
            "{error}"
        );
        assert_eq!(std::fs::read(&backup).unwrap(), b"an earlier copy");
        assert!(
            Store::migration_plan(dir.path()).unwrap().is_some(),
            "still schema 2"
        );
    }

    #[test]
    fn schema_1_predates_migrations() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path(), &project()).unwrap();
        store
            .write_now(vec![Write::Meta(
                SCHEMA_KEY.into(),
                1u64.to_le_bytes().to_vec(),
            )])
            .unwrap();
        drop(store);
        let error = Store::open(dir.path()).unwrap_err();
        assert!(
            matches!(error, StoreError::TooOld { found: 1, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("init"), "{error}");
    }
}
