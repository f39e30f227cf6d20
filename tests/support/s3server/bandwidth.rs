//! The link's capacity in one direction, shared by every connection of the server — as a
//! laptop's uplink is shared by all its uploads, so eight parallel part uploads over a 2 MiB/s
//! link get 2 MiB/s between them, not 2 MiB/s each.
//!
//! It is a schedule, not a bucket of tokens: each slice of a body books the link for the time
//! it takes to cross (`len / rate`) right after the slices booked before it, and is released
//! when its crossing ends. Booking in arrival order shares the link fairly between
//! connections, and because the schedule advances by exact crossing times (not by when timers
//! happen to fire) the average rate is right even when timers are late.
//!
//! Slices are about [`SLICE_TIME`] of the link and at most [`MAX_SLICE`] bytes, so bytes flow
//! smoothly: a 256 MiB upload at 2 MiB/s takes 128 s and never waits more than ~20 ms for its
//! next slice.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The link time one slice takes: short enough that a throttled transfer looks continuous to
/// the client (and to its idle timeouts), long enough that timers are not the bottleneck.
const SLICE_TIME: Duration = Duration::from_millis(20);

/// Largest slice, whatever the rate: a fast link still moves in pieces that keep connections
/// sharing it interleaved.
const MAX_SLICE: usize = 64 * 1024;

/// How far the schedule may fall behind the clock before idle time is forgotten: a late timer
/// is caught up, but a link idle for a minute does not owe anyone a minute of free bytes.
const CATCH_UP: Duration = Duration::from_millis(50);

/// One direction of the link.
#[derive(Default)]
pub struct Bandwidth {
    /// Whether a rate is set: read without the lock, so an unlimited link (the demo server,
    /// benchmarks) costs every connection's every frame one atomic load, not a shared lock.
    limited: AtomicBool,
    // A std mutex: held for a few arithmetic operations, never across an await.
    schedule: Mutex<Schedule>,
}

#[derive(Default)]
struct Schedule {
    /// Bytes per second; `None` is an unlimited link.
    rate: Option<u64>,
    /// When the link is free for the next slice.
    free_at: Option<Instant>,
}

/// A slice of `len` bytes, to be released at `at` (`None`: at once).
pub struct Slice {
    pub len: usize,
    pub at: Option<Instant>,
}

impl Bandwidth {
    /// Sets the rate in bytes per second; `None` (or 0) lifts the limit. Transfers in flight
    /// move at the new rate from their next slice.
    pub fn set(&self, rate: Option<u64>) {
        let mut schedule = self.lock();
        schedule.rate = rate.filter(|r| *r > 0);
        schedule.free_at = None;
        self.limited
            .store(schedule.rate.is_some(), Ordering::Release);
    }

    /// Books the link for the next slice of a body that has `available` bytes ready.
    pub fn book(&self, available: usize) -> Slice {
        let unlimited = Slice {
            len: available,
            at: None,
        };
        if !self.limited.load(Ordering::Acquire) {
            return unlimited;
        }
        let mut schedule = self.lock();
        let Some(rate) = schedule.rate else {
            return unlimited;
        };
        let per_slice = (rate as f64 * SLICE_TIME.as_secs_f64()) as usize;
        let len = available.min(per_slice.clamp(1, MAX_SLICE));
        let now = Instant::now();
        let start = match schedule.free_at {
            Some(free_at) => free_at.max(now.checked_sub(CATCH_UP).unwrap_or(now)),
            None => now,
        };
        let end = start + Duration::from_secs_f64(len as f64 / rate as f64);
        schedule.free_at = Some(end);
        Slice { len, at: Some(end) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Schedule> {
        self.schedule.lock().unwrap_or_else(|e| e.into_inner())
    }
}
