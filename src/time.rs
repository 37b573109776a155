//! Timestamps as autod writes them: RFC 3339, UTC, millisecond precision.
//!
//! Every computation here is checked: a time autod writes always has a
//! four-digit year (so it parses back), and no input makes one panic.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

pub type Timestamp = DateTime<Utc>;

pub fn now() -> Timestamp {
    Utc::now()
}

/// The latest time autod writes: later ones would need RFC 3339's
/// unparseable `+YYYYYY` years.
pub fn latest() -> Timestamp {
    DateTime::from_timestamp(253_402_300_799, 999_000_000).expect("9999-12-31T23:59:59.999Z")
}

/// The earliest time autod reads a duration back to: 0001-01-01T00:00:00Z.
pub fn earliest() -> Timestamp {
    DateTime::from_timestamp(-62_135_596_800, 0).expect("0001-01-01T00:00:00Z")
}

pub fn format(ts: Timestamp) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn now_rfc3339() -> String {
    format(now())
}

pub fn parse(s: &str) -> Option<Timestamp> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// `t + d`, but never past [`latest`].
pub fn add(t: Timestamp, d: Duration) -> Timestamp {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .map_or_else(latest, |t| t.min(latest()))
}

/// `t - d`, but never before [`earliest`].
pub fn sub(t: Timestamp, d: Duration) -> Timestamp {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_sub_signed(d))
        .map_or_else(earliest, |t| t.max(earliest()))
}

/// `--since` accepts a duration back from now (`30m`, `2h`, `1day`) or an RFC 3339 time.
/// A duration reaching back before year 1 means "from the beginning".
pub fn parse_since(s: &str) -> Result<Timestamp, String> {
    parse_since_at(s, now())
}

fn parse_since_at(s: &str, now: Timestamp) -> Result<Timestamp, String> {
    if let Some(t) = parse(s) {
        return Ok(t);
    }
    let d = humantime::parse_duration(s).map_err(|_| {
        format!("cannot read {s:?} as a time: use a duration like 30m, 2h, 1day, or an RFC 3339 time like 2026-11-24T09:00:00Z")
    })?;
    Ok(sub(now, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = now();
        let s = format(t);
        assert!(s.ends_with('Z'));
        assert_eq!(parse(&s).unwrap().timestamp_millis(), t.timestamp_millis());
    }

    #[test]
    fn since() {
        let t = parse_since("1h").unwrap();
        assert!((now() - t).num_minutes() >= 59);
        assert!(parse_since("2026-01-01T00:00:00Z").is_ok());
        assert!(parse_since("yesterday-ish").is_err());
    }

    #[test]
    fn since_far_back_is_the_beginning() {
        assert_eq!(parse_since("300000y").unwrap(), earliest());
        assert_eq!(parse_since("500000000000y").unwrap(), earliest());
    }

    #[test]
    fn limits_format_with_four_digit_years() {
        assert_eq!(format(latest()), "9999-12-31T23:59:59.999Z");
        assert_eq!(format(earliest()), "0001-01-01T00:00:00.000Z");
        assert_eq!(parse(&format(latest())), Some(latest()));
        assert_eq!(add(now(), Duration::MAX), latest());
        assert_eq!(sub(now(), Duration::MAX), earliest());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn any_time() -> impl Strategy<Value = Timestamp> {
            (earliest().timestamp()..=latest().timestamp())
                .prop_map(|s| DateTime::from_timestamp(s, 0).expect("in range"))
        }

        fn any_duration() -> impl Strategy<Value = Duration> {
            (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n))
        }

        proptest! {
            #[test]
            fn add_and_sub_stay_writable(t in any_time(), d in any_duration()) {
                for r in [add(t, d), sub(t, d)] {
                    prop_assert!(r >= earliest() && r <= latest());
                    let written = format(r);
                    prop_assert_eq!(parse(&written).map(|p| p.timestamp_millis()), Some(r.timestamp_millis()));
                }
                prop_assert!(add(t, d) >= t);
                prop_assert!(sub(t, d) <= t);
            }

            #[test]
            fn parse_since_never_panics(s in "\\PC{0,40}") {
                let _ = parse_since(&s);
            }

            #[test]
            fn parse_since_of_any_duration_text(n in any::<u64>(), unit in prop::sample::select(vec!["ns", "ms", "s", "m", "h", "d", "w", "M", "y", "days", "years"])) {
                let text = format!("{n}{unit}");
                if let Ok(t) = parse_since_at(&text, now()) {
                    prop_assert!(t >= earliest());
                }
            }

            #[test]
            fn parse_never_panics(s in "\\PC{0,40}") {
                let _ = parse(&s);
            }
        }
    }
}
