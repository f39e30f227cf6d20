//! How the commands print time: instants as RFC 3339 in whole seconds, spans in their two
//! largest units (`3 h 2 min`), and instants relative to now (`in 4 h 10 min`, `42 s ago`).
//! One place, so `credentials`, `check` and `status` say the same thing the same way.

use std::time::{Duration, SystemTime};

/// `2026-11-23T18:11:13Z`.
pub fn rfc3339(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "?".into())
}

/// `42 s`, `5 min`, `3 h 2 min`, `2 d 4 h`: the two largest units, rounded down.
pub fn span(d: Duration) -> String {
    let secs = d.as_secs();
    let (days, hours, minutes) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60);
    match secs {
        0..=59 => format!("{secs} s"),
        60..=3599 => format!("{minutes} min"),
        3600..=86_399 if minutes == 0 => format!("{hours} h"),
        3600..=86_399 => format!("{hours} h {minutes} min"),
        _ if hours == 0 => format!("{days} d"),
        _ => format!("{days} d {hours} h"),
    }
}

/// `in 4 h 10 min` or `42 s ago`: `t` seen from `now`.
pub fn relative(now: SystemTime, t: SystemTime) -> String {
    match t.duration_since(now) {
        Ok(d) => format!("in {}", span(d)),
        Err(e) => format!("{} ago", span(e.duration())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Durations show their two largest units.
    #[test]
    fn durations_in_two_units() {
        let s = Duration::from_secs;
        assert_eq!(span(s(0)), "0 s");
        assert_eq!(span(s(59)), "59 s");
        assert_eq!(span(s(61)), "1 min");
        assert_eq!(span(s(3 * 3600)), "3 h");
        assert_eq!(span(s(3 * 3600 + 2 * 60 + 5)), "3 h 2 min");
        assert_eq!(span(s(2 * 86_400)), "2 d");
        assert_eq!(span(s(2 * 86_400 + 4 * 3600 + 60)), "2 d 4 h");
    }

    /// Instants ahead read "in …", instants behind "… ago"; RFC 3339 drops fractions.
    #[test]
    fn relative_and_absolute() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(relative(now, now + Duration::from_secs(90)), "in 1 min");
        assert_eq!(relative(now, now - Duration::from_secs(42)), "42 s ago");
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_500);
        assert_eq!(rfc3339(t), "1970-01-01T00:00:01Z");
    }
}
