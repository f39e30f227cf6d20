//! [`MemoryBudget`]: one bound on the memory of every upload of a mount.
//!
//! Each writing file holds up to `concurrency` parts in flight plus the one being filled
//! (72 MiB at the defaults): 64 files written at once used to take 4.6 GiB. The budget is
//! shared: a part buffer reserves its whole part before it grows past
//! [`super::part::WHOLE_PART_FROM`] (a small file's buffer stays small and free), a part
//! read from disk for upload reserves its size, and the reservation travels with the part
//! until S3 answered for it. Writers wait for room rather than fail; since a waiting writer
//! holds no part being filled (it asks only when starting one), parts in flight always
//! drain, and a budget of at least one part cannot deadlock.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The unit the budget counts in: coarse enough for a semaphore, fine enough for 5 MiB parts.
const UNIT: u64 = 64 * 1024;

/// Bytes of upload buffers a mount may hold at once.
#[derive(Debug)]
pub struct MemoryBudget {
    units: Arc<Semaphore>,
    total: u64,
}

/// Room reserved in a [`MemoryBudget`], given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    _permit: OwnedSemaphorePermit,
}

impl MemoryBudget {
    /// A budget of `bytes` (at least one unit).
    pub fn new(bytes: u64) -> Arc<MemoryBudget> {
        let units = (bytes / UNIT).clamp(1, Semaphore::MAX_PERMITS as u64 / 2);
        Arc::new(MemoryBudget {
            units: Arc::new(Semaphore::new(units as usize)),
            total: units * UNIT,
        })
    }

    fn units(&self, bytes: u64) -> u32 {
        // A part larger than the whole budget may still go, alone.
        let total_units = (self.total / UNIT) as u32;
        (bytes.div_ceil(UNIT) as u32).clamp(1, total_units.max(1))
    }

    /// Waits until `bytes` fit, then holds them.
    pub async fn reserve(&self, bytes: u64) -> Reservation {
        let n = self.units(bytes);
        match Arc::clone(&self.units).acquire_many_owned(n).await {
            Ok(permit) => Reservation { _permit: permit },
            // The semaphore is never closed; were it, going on unbounded beats hanging.
            Err(_) => unreachable_budget(),
        }
    }

    /// Holds `bytes` if they fit now.
    pub fn try_reserve(&self, bytes: u64) -> Option<Reservation> {
        let n = self.units(bytes);
        Arc::clone(&self.units)
            .try_acquire_many_owned(n)
            .ok()
            .map(|permit| Reservation { _permit: permit })
    }

    /// Bytes of the budget.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Bytes held now.
    pub fn in_use(&self) -> u64 {
        self.total
            .saturating_sub(self.units.available_permits() as u64 * UNIT)
    }
}

fn unreachable_budget() -> Reservation {
    // A closed semaphore would be a bug; a fresh one-unit semaphore keeps the writer going.
    let fallback = Arc::new(Semaphore::new(1));
    match fallback.try_acquire_owned() {
        Ok(permit) => Reservation { _permit: permit },
        Err(_) => unreachable!("a fresh semaphore has a permit"),
    }
}

/// The default budget for a machine with `memory` bytes of RAM: an eighth of it, between
/// 128 MiB (16 parts of 8 MiB) and 1 GiB (128 parts: enough to fill a 10 Gbit/s link
/// from many files at once).
pub fn default_budget(memory: u64) -> u64 {
    (memory / 8).clamp(128 << 20, 1 << 30)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A reservation that does not fit waits until another is given back.
    #[tokio::test]
    async fn reservations_wait_for_room() {
        let budget = MemoryBudget::new(16 << 20);
        let a = budget.reserve(8 << 20).await;
        let _b = budget.reserve(8 << 20).await;
        assert!(budget.try_reserve(1).is_none());
        assert_eq!(budget.in_use(), 16 << 20);
        let waiting = {
            let budget = Arc::clone(&budget);
            tokio::spawn(async move { budget.reserve(8 << 20).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        drop(a);
        waiting.await.unwrap();
    }

    /// A part larger than the whole budget still goes, alone.
    #[tokio::test]
    async fn an_oversized_part_takes_the_whole_budget() {
        let budget = MemoryBudget::new(4 << 20);
        let big = budget.reserve(64 << 20).await;
        assert!(budget.try_reserve(1).is_none());
        drop(big);
        assert!(budget.try_reserve(4 << 20).is_some());
    }

    /// The default follows the machine within its bounds.
    #[test]
    fn default_budget_is_bounded() {
        assert_eq!(default_budget(512 << 20), 128 << 20);
        assert_eq!(default_budget(4 << 30), 512 << 20);
        assert_eq!(default_budget(64 << 30), 1 << 30);
    }
}
