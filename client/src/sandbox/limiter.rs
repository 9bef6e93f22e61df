//! One memory budget per task: every linear memory and every table of the store draws from it,
//! so a component cannot multiply its limit by instantiating several core modules (each with a
//! memory of its own) or by declaring several memories in one module.

use wasmtime::ResourceLimiter;

/// Bytes one table element costs the host: wasmtime stores a funcref element as one pointer and
/// an externref as a smaller GC reference, so a pointer's width bounds both.
pub const TABLE_ELEMENT_BYTES: usize = size_of::<usize>();
/// Most elements one table may hold, whatever the budget (a task needs a few thousand).
pub const MAX_TABLE_ELEMENTS: usize = 100_000;
/// Most core instances one task may create: its own code plus the WASI adapter and shims need
/// about ten.
pub const MAX_INSTANCES: usize = 64;
/// Most tables one task may create.
pub const MAX_TABLES: usize = 64;
/// Most linear memories one task may create (a Rust task has one, its adapter one).
pub const MAX_MEMORIES: usize = 8;

/// Which store limit a task ran into, recorded so the trap can be named precisely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitHit {
    /// All memories and tables together would exceed the task's memory limit.
    Memory,
    /// One table would exceed [`MAX_TABLE_ELEMENTS`].
    Table,
}

/// Sums the sizes of all memories and tables of one store against one budget and remembers
/// which limit was hit.
#[derive(Debug)]
pub struct Limiter {
    budget_bytes: usize,
    used_bytes: usize,
    /// Bytes granted by the last approved growth, taken back if wasmtime then fails it.
    pending_bytes: usize,
    hit: Option<LimitHit>,
}

impl Limiter {
    /// A limiter that lets all memories and tables together use at most `budget_bytes`.
    pub fn new(budget_bytes: usize) -> Self {
        Self {
            budget_bytes,
            used_bytes: 0,
            pending_bytes: 0,
            hit: None,
        }
    }

    /// The limit that stopped the task, if one did.
    pub fn hit(&self) -> Option<LimitHit> {
        self.hit
    }

    /// Bytes all memories and tables of the store hold now.
    pub fn used_bytes(&self) -> usize {
        self.used_bytes
    }

    /// Grants `added` more bytes if the budget allows; memories and tables never shrink, so the
    /// sum only grows.
    fn grow(&mut self, added: usize, hit: LimitHit) -> wasmtime::Result<bool> {
        match self.used_bytes.checked_add(added) {
            Some(total) if total <= self.budget_bytes => {
                self.used_bytes = total;
                self.pending_bytes = added;
                Ok(true)
            }
            _ => {
                self.hit = Some(hit);
                // An error, not `Ok(false)`: `memory.grow` returning -1 would let a guest probe
                // the budget and carry on; a task over its limit is stopped.
                Err(wasmtime::Error::msg(
                    "memory limit exceeded (all memories and tables of the task together)",
                ))
            }
        }
    }

    fn undo_pending(&mut self) {
        self.used_bytes = self.used_bytes.saturating_sub(self.pending_bytes);
        self.pending_bytes = 0;
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Called with `current == 0` when a memory is created, so creation is counted too.
        self.grow(desired.saturating_sub(current), LimitHit::Memory)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.undo_pending();
        Ok(())
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            self.hit = Some(LimitHit::Table);
            return Err(wasmtime::Error::msg("table limit exceeded"));
        }
        let added = desired.saturating_sub(current);
        self.grow(added.saturating_mul(TABLE_ELEMENT_BYTES), LimitHit::Memory)
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.undo_pending();
        Ok(())
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    #[test]
    fn memories_share_one_budget() {
        let mut limiter = Limiter::new(64 * MIB);
        // Three memories of 16 MiB each fit; a fourth growing by 32 MiB does not.
        for _ in 0..3 {
            assert!(limiter.memory_growing(0, 16 * MIB, None).unwrap());
        }
        assert!(limiter.memory_growing(0, 32 * MIB, None).is_err());
        assert_eq!(limiter.hit(), Some(LimitHit::Memory));
        assert_eq!(limiter.used_bytes(), 48 * MIB);
    }

    #[test]
    fn growth_counts_only_the_difference() {
        let mut limiter = Limiter::new(64 * MIB);
        assert!(limiter.memory_growing(0, 10 * MIB, None).unwrap());
        assert!(limiter.memory_growing(10 * MIB, 60 * MIB, None).unwrap());
        assert_eq!(limiter.used_bytes(), 60 * MIB);
        assert!(limiter.memory_growing(60 * MIB, 65 * MIB, None).is_err());
    }

    #[test]
    fn tables_draw_from_the_memory_budget() {
        let mut limiter = Limiter::new(MIB);
        assert!(limiter.memory_growing(0, MIB - 1000, None).unwrap());
        let elements_left = 1000 / TABLE_ELEMENT_BYTES;
        assert!(limiter.table_growing(0, elements_left, None).unwrap());
        assert!(limiter.table_growing(0, 1, None).is_err());
        assert_eq!(limiter.hit(), Some(LimitHit::Memory));
    }

    #[test]
    fn a_huge_table_is_refused_whatever_the_budget() {
        let mut limiter = Limiter::new(usize::MAX);
        assert!(
            limiter
                .table_growing(0, MAX_TABLE_ELEMENTS + 1, None)
                .is_err()
        );
        assert_eq!(limiter.hit(), Some(LimitHit::Table));
    }

    #[test]
    fn a_failed_growth_gives_its_bytes_back() {
        let mut limiter = Limiter::new(64 * MIB);
        assert!(limiter.memory_growing(0, 40 * MIB, None).unwrap());
        limiter
            .memory_grow_failed(wasmtime::Error::msg("mmap failed"))
            .unwrap();
        assert_eq!(limiter.used_bytes(), 0);
        assert!(limiter.memory_growing(0, 60 * MIB, None).unwrap());
    }
}
