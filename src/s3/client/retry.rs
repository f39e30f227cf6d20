//! The retry policy: capped exponential backoff with full jitter, within a time budget.
//!
//! Full jitter (`sleep = random(0, min(max, initial * 2^n))`) spreads the retries of many
//! concurrent requests (a parallel listing, a burst of reads hitting `SlowDown`) instead of
//! sending them back in lockstep. What is retryable is `S3Error::is_retryable`.
//!
//! How long to keep trying is a *time* budget, not a count: an outage of 20 s or a
//! `SlowDown` storm of a few seconds must cost latency, never an error, and a count of
//! attempts cannot promise that (five attempts with a 100 ms start used to give up after
//! 1.5 s of waiting at most, before the backoff ever reached its cap). A number of attempts
//! (`AWS_MAX_ATTEMPTS`) is still honoured, as a floor: they are made even when the budget
//! is spent.

use std::time::Duration;

use rand::Rng;

/// How many attempts, how long to keep trying, and how long to wait between attempts.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Attempts made whatever the budget says, the first included (at least 1).
    pub min_attempts: u32,
    /// Another attempt starts only while this much time has not passed since the first
    /// one started (the pause before it included).
    pub budget: Duration,
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

    /// Whether another attempt may follow failed attempt number `attempt`, when it would
    /// start `elapsed` after the first one did.
    pub fn may_retry(&self, attempt: u32, elapsed: Duration) -> bool {
        attempt < self.min_attempts.max(1) || elapsed <= self.budget
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        min_attempts: 4,
        budget: Duration::from_secs(60),
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(1000),
    };

    /// The ceiling doubles per attempt until the cap, then stays there.
    #[test]
    fn ceiling_doubles_then_caps() {
        let ceilings: Vec<u128> = (1..=6).map(|a| POLICY.ceiling(a).as_millis()).collect();
        assert_eq!(ceilings, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(POLICY.ceiling(200), Duration::from_millis(1000));
    }

    /// Every sleep is within its ceiling.
    #[test]
    fn jitter_stays_within_the_ceiling() {
        for attempt in 1..=5 {
            for _ in 0..50 {
                assert!(POLICY.backoff(attempt) <= POLICY.ceiling(attempt));
            }
        }
    }

    /// Attempts go on while the budget lasts, however many; the floor of attempts is made
    /// even when it is spent.
    #[test]
    fn the_budget_bounds_time_and_attempts_are_a_floor() {
        assert!(POLICY.may_retry(50, Duration::from_secs(59)));
        assert!(!POLICY.may_retry(50, Duration::from_secs(61)));
        assert!(POLICY.may_retry(3, Duration::from_secs(600)));
        let no_budget = RetryPolicy {
            budget: Duration::ZERO,
            ..POLICY
        };
        assert!(no_budget.may_retry(3, Duration::from_millis(1)));
        assert!(!no_budget.may_retry(4, Duration::from_millis(1)));
    }

    /// Over a budget of a minute the pauses reach the cap: the sum of the ceilings of the
    /// attempts the budget allows is far more than the 1.5 s five attempts used to wait.
    #[test]
    fn a_minute_of_budget_reaches_the_cap() {
        let policy = RetryPolicy {
            min_attempts: 1,
            budget: Duration::from_secs(60),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        };
        let mut elapsed = Duration::ZERO;
        let mut attempt = 1;
        while policy.may_retry(attempt, elapsed + policy.ceiling(attempt)) {
            elapsed += policy.ceiling(attempt);
            attempt += 1;
        }
        assert_eq!(policy.ceiling(attempt), Duration::from_secs(5));
        assert!(elapsed >= Duration::from_secs(55), "{elapsed:?}");
    }
}
