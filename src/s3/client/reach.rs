//! Whether S3 answers at all: every attempt that got an HTTP answer (of any status) says
//! it does; one that could not get one (refused, reset, timed out, no route) says it may
//! not. [`Reach`] keeps when the failures began, for the filesystem's offline mode (drive
//! mode answers from what it saw while S3 cannot be reached) and for the write-back
//! mount's shorter patience with a network that is gone (see
//! [`S3Client::set_unreachable_budget`](super::S3Client::set_unreachable_budget)).

use std::sync::Mutex;
use std::time::{Instant, SystemTime};

/// Since when S3 has not answered (`None`: it answered last).
#[derive(Debug, Default)]
pub struct Reach {
    since: Mutex<Option<(Instant, SystemTime)>>,
    /// Times S3 stopped answering, so a watcher that looks now and then misses none.
    outages: std::sync::atomic::AtomicU64,
}

impl Reach {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<(Instant, SystemTime)>> {
        // A plain value: a panic elsewhere cannot leave it half written.
        self.since.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An attempt got an answer.
    pub fn answered(&self) {
        *self.slot() = None;
    }

    /// An attempt got no answer.
    pub fn unanswered(&self) {
        let mut slot = self.slot();
        if slot.is_none() {
            *slot = Some((Instant::now(), SystemTime::now()));
            self.outages
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
    }

    /// How many times S3 stopped answering so far.
    pub fn outages(&self) -> u64 {
        self.outages.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Since when S3 has not answered, if it has not.
    pub fn since(&self) -> Option<(Instant, SystemTime)> {
        *self.slot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_unanswered_attempt_dates_the_outage_and_an_answer_ends_it() {
        let reach = Reach::default();
        assert!(reach.since().is_none());
        reach.unanswered();
        let first = reach.since().unwrap();
        reach.unanswered();
        assert_eq!(reach.since().unwrap().0, first.0);
        reach.answered();
        assert!(reach.since().is_none());
        assert_eq!(reach.outages(), 1);
    }
}
