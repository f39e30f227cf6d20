//! [`SkewedClock`]: the time requests are signed with — the local clock corrected by what
//! an AWS server said of its own.
//!
//! SigV4 signatures carry their time, and AWS refuses one more than 15 minutes off its
//! clock (S3: `RequestTimeTooSkewed`; STS: `SignatureDoesNotMatch` "Signature expired",
//! or `RequestExpired`). A host whose clock drifted would then lose S3 and, at the next
//! renewal, its credentials too. Whoever gets such an answer learns the server's time
//! from its `Date` header into this clock, and every later signature — S3's and STS's
//! alike — is dated by it. One clock per mount, shared by the S3 client and the STS
//! providers (it lives here because `s3` may use `credentials`, never the reverse).
//!
//! It is an offset in an atomic, never a lock: signing reads it once per attempt.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;

/// A server's clock this far from ours (or more) explains a refused signature. Below it,
/// a refusal is about something else (the key, the secret) and learning would not help;
/// the AWS SDKs correct skew from the same 4 minutes on.
pub const SKEW_TOLERANCE: Duration = Duration::from_secs(4 * 60);

/// The local clock, corrected by an offset learned from servers; clones share the offset.
#[derive(Clone, Debug, Default)]
pub struct SkewedClock {
    /// Server time minus local time, in milliseconds.
    offset_ms: Arc<AtomicI64>,
}

impl SkewedClock {
    /// A clock with no correction yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The time to sign with: local time corrected by what a server told us of its clock.
    pub fn now(&self) -> SystemTime {
        shift(SystemTime::now(), self.offset_ms())
    }

    /// Server time minus local time, in milliseconds (0 until something was learned).
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }

    /// Takes `server_time`, read from an answer just received, as the right time from now
    /// on; returns the new offset in milliseconds.
    pub fn learn(&self, server_time: SystemTime) -> i64 {
        let offset_ms = difference_ms(server_time, SystemTime::now());
        self.offset_ms.store(offset_ms, Ordering::Relaxed);
        offset_ms
    }

    /// True when `server_time` is [`SKEW_TOLERANCE`] or more away from [`SkewedClock::now`]:
    /// the signature was refused for its date, and learning the server's time will help.
    pub fn is_off(&self, server_time: SystemTime) -> bool {
        let off_ms = difference_ms(server_time, self.now()).unsigned_abs();
        u128::from(off_ms) >= SKEW_TOLERANCE.as_millis()
    }
}

/// Two clocks are equal when they are the same clock (clones of one another).
impl PartialEq for SkewedClock {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.offset_ms, &other.offset_ms)
    }
}

impl Eq for SkewedClock {}

/// The time an answer's `Date` header gives; `None` when it has none that parses.
pub fn server_date(headers: &HeaderMap) -> Option<SystemTime> {
    headers
        .get(reqwest::header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|d| httpdate::parse_http_date(d).ok())
}

/// `a - b` in milliseconds.
fn difference_ms(a: SystemTime, b: SystemTime) -> i64 {
    match a.duration_since(b) {
        Ok(ahead) => i64::try_from(ahead.as_millis()).unwrap_or(i64::MAX),
        Err(behind) => i64::try_from(behind.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

fn shift(t: SystemTime, offset_ms: i64) -> SystemTime {
    let by = Duration::from_millis(offset_ms.unsigned_abs());
    if offset_ms >= 0 {
        t + by
    } else {
        t - by
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn near(a: SystemTime, b: SystemTime) -> bool {
        difference_ms(a, b).unsigned_abs() < 2_000
    }

    /// After learning a server's time, every clone tells that time, ahead or behind.
    #[test]
    fn learned_time_is_shared_by_clones() {
        let clock = SkewedClock::new();
        let signer = clock.clone();
        assert!(near(signer.now(), SystemTime::now()));
        let ahead = SystemTime::now() + Duration::from_secs(3600);
        let offset = clock.learn(ahead);
        assert!((offset - 3_600_000).abs() < 2_000, "{offset}");
        assert!(near(signer.now(), ahead));
        let behind = SystemTime::now() - Duration::from_secs(1200);
        clock.learn(behind);
        assert!(near(signer.now(), behind));
    }

    /// A server clock within the tolerance is no reason to learn; beyond it, it is.
    #[test]
    fn only_a_large_difference_is_off() {
        let clock = SkewedClock::new();
        let now = SystemTime::now();
        assert!(!clock.is_off(now + Duration::from_secs(60)));
        assert!(!clock.is_off(now - Duration::from_secs(60)));
        assert!(clock.is_off(now + Duration::from_secs(20 * 60)));
        assert!(clock.is_off(now - Duration::from_secs(20 * 60)));
        clock.learn(now + Duration::from_secs(20 * 60));
        assert!(!clock.is_off(now + Duration::from_secs(20 * 60)));
    }

    /// The `Date` header of an answer is read as HTTP dates are written.
    #[test]
    fn server_date_reads_the_date_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(server_date(&headers), None);
        headers.insert("date", "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap());
        assert_eq!(
            server_date(&headers),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777))
        );
        headers.insert("date", "yesterday".parse().unwrap());
        assert_eq!(server_date(&headers), None);
    }
}
