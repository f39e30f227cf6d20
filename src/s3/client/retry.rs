//! The retry policy: capped exponential backoff with full jitter.
//!
//! Full jitter (`sleep = random(0, min(max, initial * 2^n))`) spreads the retries of many
//! concurrent requests (a parallel listing, a burst of reads hitting `SlowDown`) instead of
//! sending them back in lockstep. What is retryable is `S3Error::is_retryable`.

use std::time::Duration;

use rand::Rng;

/// How many attempts, and how long to wait between them.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (at least 1).
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// The longest sleep after failed attempt number `attempt` (1-based):
    /// `min(max_backoff, initial_backoff * 2^(attempt-1))`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.initial_backoff
            .checked_mul(factor)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
    }

    /// A random sleep in `0..=ceiling(attempt)`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::thread_rng().gen_range(0..=nanos))
    }

    /// Whether another attempt may follow failed attempt number `attempt`.
    pub fn may_retry(&self, attempt: u32) -> bool {
        attempt < self.max_attempts.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(1000),
    };

    #[test]
    fn ceiling_doubles_then_caps() {
        let ceilings: Vec<u128> = (1..=6).map(|a| POLICY.ceiling(a).as_millis()).collect();
        assert_eq!(ceilings, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(POLICY.ceiling(200), Duration::from_millis(1000));
    }

    #[test]
    fn jitter_stays_within_the_ceiling() {
        for attempt in 1..=5 {
            for _ in 0..50 {
                assert!(POLICY.backoff(attempt) <= POLICY.ceiling(attempt));
            }
        }
    }

    #[test]
    fn attempts_are_bounded() {
        assert!(POLICY.may_retry(3));
        assert!(!POLICY.may_retry(4));
        let once = RetryPolicy {
            max_attempts: 0,
            ..POLICY
        };
        assert!(!once.may_retry(1));
    }
}
