//! Reads of unit rows on demand: the finished units that left the in-memory world are served
//! from here (one unit, or the units of an id range in order, read in one snapshot). The world
//! and the views use only [`UnitArchive`], so that another store can serve the same calls.

use std::fmt::Debug;
use std::ops::Range;

use musketeer_protocol::UnitId;
use redb::ReadableDatabase;

use super::{Backend, RedbResult, Store, StoreError, UNITS, unit_row};
use crate::domain::lifecycle::Unit;

/// Where units that are not in memory are read from.
pub trait UnitArchive: Debug + Send + Sync {
    /// The stored row of unit `id`, if there is one.
    fn unit(&self, id: UnitId) -> Result<Option<Unit>, StoreError>;

    /// The stored units with ids in `ids`, ascending (descending if asked), handed to `visit`
    /// until it returns false. Reads one consistent snapshot, one row at a time.
    fn scan(
        &self,
        ids: Range<UnitId>,
        descending: bool,
        visit: &mut dyn FnMut(Unit) -> bool,
    ) -> Result<(), StoreError>;
}

impl UnitArchive for Store {
    fn unit(&self, id: UnitId) -> Result<Option<Unit>, StoreError> {
        let db = match &self.backend {
            Backend::Redb(db) => db,
            Backend::Postgres(pg) => {
                return pg.unit_row(id.0)?.map(|row| decode(id.0, &row)).transpose();
            }
        };
        let txn = db.begin_read().db()?;
        let table = txn.open_table(UNITS).db()?;
        let row = table.get(id.0).db()?;
        row.map(|row| decode(id.0, row.value())).transpose()
    }

    fn scan(
        &self,
        ids: Range<UnitId>,
        descending: bool,
        visit: &mut dyn FnMut(Unit) -> bool,
    ) -> Result<(), StoreError> {
        let db = match &self.backend {
            Backend::Redb(db) => db,
            Backend::Postgres(pg) => {
                return pg.scan_units(ids.start.0..ids.end.0, descending, &mut |key, row| {
                    Ok(visit(decode(key, row)?))
                });
            }
        };
        let txn = db.begin_read().db()?;
        let table = txn.open_table(UNITS).db()?;
        let range = table.range(ids.start.0..ids.end.0).db()?;
        let mut step = |entry: Result<
            (redb::AccessGuard<'_, u64>, redb::AccessGuard<'_, &[u8]>),
            redb::StorageError,
        >| {
            let (key, value) = entry.db()?;
            Ok::<bool, StoreError>(visit(decode(key.value(), value.value())?))
        };
        if descending {
            for entry in range.rev() {
                if !step(entry)? {
                    break;
                }
            }
        } else {
            for entry in range {
                if !step(entry)? {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// A unit row, or why it does not decode.
pub(super) fn decode(key: u64, row: &[u8]) -> Result<Unit, StoreError> {
    unit_row::decode_unit(row).map_err(|reason| StoreError::Corrupt {
        table: "units",
        key: key.to_string(),
        error: serde::de::Error::custom(reason),
    })
}
