//! A file's modification time as user metadata: `x-amz-meta-mtime`.
//!
//! S3 keeps only `Last-Modified`, the time of the write; a time set with `utimes` (`touch -d`,
//! `cp -p`, `rsync -a`, `tar x`) has to travel as metadata. The value is seconds since the
//! epoch, with a fraction when there is one: `1700000000` or `1700000000.123456789`. s3fs
//! writes the first form and rclone the second, so objects written by either keep their
//! times when mounted here, and ours keep theirs there.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The header (and, without `x-amz-meta-`, the metadata key) the time travels in.
pub const HEADER: &str = "x-amz-meta-mtime";

/// `t` as the header's value. Times before 1970 are written as 0.
pub fn format(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    match since.subsec_nanos() {
        0 => since.as_secs().to_string(),
        nanos => format!("{}.{nanos:09}", since.as_secs()),
    }
}

/// The header's value as a time; `None` for anything that is not `SECONDS[.FRACTION]`
/// (another tool's format is ignored, never an error: the object stays readable).
pub fn parse(value: &str) -> Option<SystemTime> {
    let value = value.trim();
    let (secs, frac) = value.split_once('.').unwrap_or((value, ""));
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: u64 = secs.parse().ok()?;
    // Nanoseconds from at most nine digits of fraction, right-padded.
    let digits = &frac[..frac.len().min(9)];
    let nanos = if digits.is_empty() {
        0
    } else {
        digits.parse::<u32>().ok()? * 10u32.pow(9 - digits.len() as u32)
    };
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_whole_and_fractional_seconds() {
        for t in [
            UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789),
            UNIX_EPOCH + Duration::new(5, 1),
        ] {
            assert_eq!(parse(&format(t)), Some(t));
        }
        assert_eq!(
            format(UNIX_EPOCH + Duration::new(7, 500_000_000)),
            "7.500000000"
        );
    }

    #[test]
    fn reads_the_forms_s3fs_and_rclone_write() {
        assert_eq!(
            parse("1700000000"),
            Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
        assert_eq!(
            parse("1700000000.5"),
            Some(UNIX_EPOCH + Duration::new(1_700_000_000, 500_000_000))
        );
        // More than nanosecond precision is cut, not refused.
        assert_eq!(
            parse("1.1234567891"),
            Some(UNIX_EPOCH + Duration::new(1, 123_456_789))
        );
    }

    #[test]
    fn ignores_what_is_not_a_time() {
        for bad in [
            "",
            ".",
            "-5",
            "abc",
            "2024-01-01T00:00:00Z",
            "1.2.3",
            "1e9",
            " . 5",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
