//! Timestamps as autod writes them: RFC 3339, UTC, millisecond precision.
//!
//! Every computation here is checked: a time autod writes always has a
//! four-digit year (so it parses back), and no input makes one panic.
//!
//! The time library (jiff) is named here and in the schedule code that needs
//! zones (`src/cron.rs`, `src/zone.rs`, `src/daemon/schedule.rs`); the rest of
//! autod goes through these functions, so a change of library is one file.
//! What autod writes and reads is spelled out here by hand rather than left
//! to the library's own printer and parser: the format is on disk (state
//! files, the run log), and the text accepted is what autod accepted before
//! (chrono's RFC 3339 parser), no more and no less.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use jiff::civil::DateTime;
use jiff::tz::Offset;

pub type Timestamp = jiff::Timestamp;

pub fn now() -> Timestamp {
    Timestamp::now()
}

/// The latest time autod handles: the last millisecond jiff holds (jiff keeps
/// a day's margin under year 10000, so that every instant has a civil time in
/// every offset). It has a four-digit year, so it reads back.
pub fn latest() -> Timestamp {
    // Timestamp::MAX is 9999-12-30T22:00:00.999999999Z.
    Timestamp::constant(253_402_207_200, 999_000_000)
}

/// The earliest time autod reads a duration back to: 0001-01-01T00:00:00Z.
pub fn earliest() -> Timestamp {
    Timestamp::constant(-62_135_596_800, 0)
}

/// RFC 3339 in UTC with exactly three fractional digits, truncated (not
/// rounded): `2026-11-24T09:00:00.123Z`.
pub fn format(ts: Timestamp) -> String {
    let t = civil(ts);
    let mut s = String::with_capacity(24);
    write_date(&mut s, t, "-");
    s.push('T');
    push_digits(&mut s, t.hour(), 2);
    s.push(':');
    push_digits(&mut s, t.minute(), 2);
    s.push(':');
    push_digits(&mut s, t.second(), 2);
    s.push('.');
    push_digits(&mut s, t.subsec_nanosecond() / 1_000_000, 3);
    s.push('Z');
    s
}

/// `n` (not negative, under 10^width) in exactly `width` digits. Every event
/// without a `ts` gets one formatted, and `write!` cost several times more.
fn push_digits(s: &mut String, n: impl Into<i32>, width: u32) {
    let n = n.into();
    debug_assert!((0..10_i32.pow(width)).contains(&n));
    for place in (0..width).rev() {
        let digit = (n / 10_i32.pow(place) % 10).unsigned_abs();
        s.push(char::from_digit(digit, 10).unwrap_or('0'));
    }
}

/// Like [`format`], in whole seconds (truncated): `2026-11-24T09:00:00Z`.
pub fn format_seconds(ts: Timestamp) -> String {
    let t = civil(ts);
    let mut s = String::with_capacity(20);
    write_date(&mut s, t, "-");
    let _ = write!(s, "T{:02}:{:02}:{:02}Z", t.hour(), t.minute(), t.second());
    s
}

/// ISO 8601's basic format in UTC, whole seconds: `20261124T090000Z` (the
/// last part of a schedule fire's eventId).
pub fn format_basic(ts: Timestamp) -> String {
    let t = civil(ts);
    let mut s = String::with_capacity(16);
    write_date(&mut s, t, "");
    let _ = write!(s, "T{:02}{:02}{:02}Z", t.hour(), t.minute(), t.second());
    s
}

fn civil(ts: Timestamp) -> DateTime {
    Offset::UTC.to_datetime(ts)
}

/// The date as chrono wrote it: four digits for years 0–9999, a sign and at
/// least four digits otherwise (jiff goes down to year -9999).
fn write_date(s: &mut String, t: DateTime, sep: &str) {
    let year = t.year();
    if (0..=9999).contains(&year) {
        push_digits(s, year, 4);
    } else {
        let _ = write!(s, "{year:+05}");
    }
    s.push_str(sep);
    push_digits(s, t.month(), 2);
    s.push_str(sep);
    push_digits(s, t.day(), 2);
}

pub fn now_rfc3339() -> String {
    format(now())
}

/// An RFC 3339 time with any offset, as UTC. The grammar is chrono's
/// `DateTime::parse_from_rfc3339`, which autod used until it moved to jiff:
/// `YYYY-MM-DD`, then `T`, `t` or a space, `hh:mm:ss`, an optional `.` and one
/// or more digits (those past the ninth ignored), then `Z`, `z` or an offset
/// `±hh:mm` up to 23:59 (the sign may be U+2212 too), and nothing after.
/// Years run 0000–9999; a leap second (`:60`) reads as the last nanosecond
/// before the next minute.
///
/// A time later than jiff's last instant (the final 26 hours of year 9999,
/// in UTC) reads as that instant: chrono read it, and whatever autod does
/// with so late a time (a retry never due, a `--since` that admits nothing)
/// comes out the same.
pub fn parse(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let two = |i: usize| -> Option<i8> {
        let (h, l) = (b[i], b[i + 1]);
        (h.is_ascii_digit() && l.is_ascii_digit()).then(|| ((h - b'0') * 10 + (l - b'0')) as i8)
    };
    let year = i16::from(two(0)?) * 100 + i16::from(two(2)?);
    let (month, day) = (two(5)?, two(8)?);
    let (hour, minute, second) = (two(11)?, two(14)?, two(17)?);
    let mut rest = &s[19..];
    let mut nanos = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let mut scale = 100_000_000;
        for d in frac.bytes().take(digits.min(9)) {
            nanos += i32::from(d - b'0') * scale;
            scale /= 10;
        }
        rest = &frac[digits..];
    }
    let offset = parse_offset(rest)?;
    let local = if second == 60 {
        DateTime::new(year, month, day, hour, minute, 59, 999_999_999).ok()?
    } else {
        DateTime::new(year, month, day, hour, minute, second, nanos).ok()?
    };
    // Years 0000–9999 less 23:59 are all far above jiff's earliest instant,
    // so a time that does not convert is past its latest.
    Some(
        Offset::from_seconds(offset)
            .ok()?
            .to_timestamp(local)
            .unwrap_or(Timestamp::MAX),
    )
}

/// `Z`, `z` or `±hh:mm` (hours 00–23, minutes 00–59), then the end: the
/// offset in seconds east of UTC.
fn parse_offset(s: &str) -> Option<i32> {
    if s == "Z" || s == "z" {
        return Some(0);
    }
    let (negative, hm) = if let Some(hm) = s.strip_prefix('+') {
        (false, hm)
    } else if let Some(hm) = s.strip_prefix('-').or_else(|| s.strip_prefix('\u{2212}')) {
        (true, hm)
    } else {
        return None;
    };
    let b = hm.as_bytes();
    if b.len() != 5
        || b[2] != b':'
        || !b
            .iter()
            .enumerate()
            .all(|(i, c)| i == 2 || c.is_ascii_digit())
    {
        return None;
    }
    let hours = i32::from(b[0] - b'0') * 10 + i32::from(b[1] - b'0');
    let minutes = i32::from(b[3] - b'0') * 10 + i32::from(b[4] - b'0');
    if hours > 23 || minutes > 59 {
        return None;
    }
    let seconds = hours * 3600 + minutes * 60;
    Some(if negative { -seconds } else { seconds })
}

/// `t + d`, but never past [`latest`].
pub fn add(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(d)
        .map_or_else(|_| latest(), |t| t.min(latest()))
}

/// `t - d`, but never before [`earliest`].
pub fn sub(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_sub(d)
        .map_or_else(|_| earliest(), |t| t.max(earliest()))
}

/// How long `later` is after `earlier`; `None` if it is before.
pub fn since(earlier: Timestamp, later: Timestamp) -> Option<Duration> {
    Duration::try_from(later.duration_since(earlier)).ok()
}

/// Whole seconds since 1970-01-01T00:00:00Z, rounded down (a time before
/// 1970 with a fraction counts the second it is in).
pub fn unix_seconds(t: Timestamp) -> i64 {
    let s = t.as_second();
    if t.subsec_nanosecond() < 0 { s - 1 } else { s }
}

/// The time `s` whole seconds after 1970-01-01T00:00:00Z, if jiff holds it.
pub fn from_unix_seconds(s: i64) -> Option<Timestamp> {
    Timestamp::from_second(s).ok()
}

/// A file time (an mtime), if jiff holds it.
pub fn from_system(t: SystemTime) -> Option<Timestamp> {
    Timestamp::try_from(t).ok()
}

/// A UTC calendar day (the archive files events by it).
pub type Day = jiff::civil::Date;

/// The UTC day `t` falls on.
pub fn utc_day(t: Timestamp) -> Day {
    t.to_zoned_datetime(jiff::tz::TimeZone::UTC).date()
}

/// When the UTC day after `d` begins; `None` past the last day jiff holds.
pub fn end_of_day(d: Day) -> Option<Timestamp> {
    let next = d.tomorrow().ok()?;
    next.to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

/// `YYYY-MM-DD`.
pub fn format_day(d: Day) -> String {
    d.strftime("%Y-%m-%d").to_string()
}

/// Exactly `YYYY-MM-DD` (no shorter forms such as `2026-1-5`).
pub fn parse_day(s: &str) -> Option<Day> {
    let b = s.as_bytes();
    let shaped = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    shaped.then(|| s.parse::<Day>().ok()).flatten()
}

/// Milliseconds since 1970-01-01T00:00:00Z (for ordering).
pub fn unix_millis(t: Timestamp) -> i64 {
    t.as_millisecond()
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

    fn at(s: i64, nanos: i32) -> Timestamp {
        Timestamp::new(s, nanos).unwrap()
    }

    #[test]
    fn round_trip() {
        let t = now();
        let s = format(t);
        assert!(s.ends_with('Z'));
        assert_eq!(parse(&s).unwrap().as_millisecond(), t.as_millisecond());
    }

    /// What chrono's `to_rfc3339_opts(SecondsFormat::Millis, true)` wrote for
    /// the same instants (checked against chrono 0.4.45 before it was
    /// dropped): the fraction truncated, never rounded, also before 1970.
    #[test]
    fn format_is_byte_for_byte_what_chrono_wrote() {
        for (t, want) in [
            (at(1_795_510_800, 123_000_000), "2026-11-24T09:00:00.123Z"),
            (at(1_795_510_800, 0), "2026-11-24T09:00:00.000Z"),
            (at(1_795_510_800, 123_999_999), "2026-11-24T09:00:00.123Z"),
            (at(1_795_510_800, 999_999_999), "2026-11-24T09:00:00.999Z"),
            (at(1_795_510_800, 999_500_000), "2026-11-24T09:00:00.999Z"),
            (at(1_795_510_800, 400), "2026-11-24T09:00:00.000Z"),
            (at(1_795_510_859, 1_000_000), "2026-11-24T09:00:59.001Z"),
            (at(0, 0), "1970-01-01T00:00:00.000Z"),
            (at(-1, 999_999_999), "1969-12-31T23:59:59.999Z"),
            (at(0, 999_999), "1970-01-01T00:00:00.000Z"),
            (at(0, -1), "1969-12-31T23:59:59.999Z"),
            (at(0, -500_000), "1969-12-31T23:59:59.999Z"),
            (at(-1, -1), "1969-12-31T23:59:58.999Z"),
            (at(951_782_400, 5_000_000), "2000-02-29T00:00:00.005Z"),
            (at(-62_135_596_800, 0), "0001-01-01T00:00:00.000Z"),
            (at(-62_167_219_200, 0), "0000-01-01T00:00:00.000Z"),
            (at(-62_167_219_201, 0), "-0001-12-31T23:59:59.000Z"),
            (at(253_402_207_200, 999_999_999), "9999-12-30T22:00:00.999Z"),
        ] {
            assert_eq!(format(t), want, "{t:?}");
        }
        let t = at(1_795_510_800, 999_999_999);
        assert_eq!(format_seconds(t), "2026-11-24T09:00:00Z");
        assert_eq!(format_basic(t), "20261124T090000Z");
        assert_eq!(format_basic(at(-1, 0)), "19691231T235959Z");
    }

    /// chrono's `DateTime::parse_from_rfc3339`, case by case (checked against
    /// chrono 0.4.45 before it was dropped).
    #[test]
    fn parse_reads_what_chrono_read_and_refuses_what_it_refused() {
        let ms = |s: &str| parse(s).map(|t| (t.as_second(), t.subsec_nanosecond()));
        let nov24 = 1_795_510_800;
        for (text, want) in [
            ("2026-11-24T09:00:00Z", (nov24, 0)),
            ("2026-11-24T09:00:00.123Z", (nov24, 123_000_000)),
            ("2026-11-24t09:00:00z", (nov24, 0)),
            ("2026-11-24 09:00:00Z", (nov24, 0)),
            ("2026-11-24T10:00:00+01:00", (nov24, 0)),
            ("2026-11-24T08:00:00-01:00", (nov24, 0)),
            ("2026-11-24T08:00:00\u{2212}01:00", (nov24, 0)),
            ("2026-11-24T09:00:00-00:00", (nov24, 0)),
            ("2026-11-25T08:59:00+23:59", (nov24, 0)),
            ("2026-11-24T09:00:00.5Z", (nov24, 500_000_000)),
            ("2026-11-24T09:00:00.123456789Z", (nov24, 123_456_789)),
            ("2026-11-24T09:00:00.1234567899999Z", (nov24, 123_456_789)),
            ("2026-11-24T08:59:60Z", (nov24 - 1, 999_999_999)),
            ("2026-11-24T08:59:60.5Z", (nov24 - 1, 999_999_999)),
            ("2024-02-29T00:00:00Z", (1_709_164_800, 0)),
            ("0000-01-01T00:00:00Z", (-62_167_219_200, 0)),
            ("0000-01-01T00:00:00+23:59", (-62_167_219_200 - 86_340, 0)),
            ("9999-12-30T22:00:00.999Z", (253_402_207_200, 999_000_000)),
            // Past jiff's last instant: that instant.
            ("9999-12-31T23:59:59.999Z", (253_402_207_200, 999_999_999)),
            ("9999-12-31T23:59:59-23:59", (253_402_207_200, 999_999_999)),
        ] {
            assert_eq!(ms(text), Some(want), "{text}");
        }
        for text in [
            "",
            "2026-11-24",
            "2026-11-24T09:00Z",
            "2026-11-24T09:00:00",
            "2026-11-24T09:00:00+01",
            "2026-11-24T09:00:00+0100",
            "2026-11-24T09:00:00+01:0",
            "2026-11-24T09:00:00+01:00:00",
            "2026-11-24T09:00:00+24:00",
            "2026-11-24T09:00:00+01:60",
            "2026-11-24T09:00:00 +01:00",
            "2026-11-24T09:00:00Z ",
            " 2026-11-24T09:00:00Z",
            "2026-11-24T09:00:00UTC",
            "2026-11-24T09:00:00.Z",
            "2026-11-24T09:00:00,5Z",
            "2026-11-24T09:00:00ZZ",
            "2026-11-24_09:00:00Z",
            "2026-11-24T24:00:00Z",
            "2026-11-24T09:60:00Z",
            "2026-11-24T09:00:61Z",
            "2026-02-29T09:00:00Z",
            "2026-13-01T09:00:00Z",
            "2026-00-01T09:00:00Z",
            "2026-11-00T09:00:00Z",
            "2026-11-31T09:00:00Z",
            "20261124T090000Z",
            "+2026-11-24T09:00:00Z",
            "+275760-09-13T00:00:00.000Z",
            "-0001-01-01T00:00:00Z",
            "2026-1-24T09:00:00.000Z",
            "2026-11-24T9:00:00.000Z",
            "2026-11-24T09:00:00Z[Europe/Berlin]",
            "2026-11-24T09:00:00+01:00[Europe/Berlin]",
            "2026-11-24T09:00:00+1:00",
            "2026-11-24T09:00:00+a1:00",
            "2026-11-24T09:00:00\u{2013}01:00",
            "2026-11-24T09:00:00.١Z",
            "2026-11-24T09:00:00é",
        ] {
            assert_eq!(parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn since() {
        let t = parse_since("1h").unwrap();
        assert!(super::since(t, now()).unwrap() >= Duration::from_secs(59 * 60));
        assert!(super::since(now(), t).is_none());
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
        assert_eq!(format(latest()), "9999-12-30T22:00:00.999Z");
        assert_eq!(format(earliest()), "0001-01-01T00:00:00.000Z");
        assert_eq!(parse(&format(latest())), Some(latest()));
        assert_eq!(add(now(), Duration::MAX), latest());
        assert_eq!(sub(now(), Duration::MAX), earliest());
        assert_eq!(add(Timestamp::MAX, Duration::ZERO), latest());
    }

    #[test]
    fn unix_seconds_round_down() {
        assert_eq!(unix_seconds(at(5, 999_999_999)), 5);
        assert_eq!(unix_seconds(at(0, -1)), -1);
        assert_eq!(unix_seconds(at(-5, 0)), -5);
        assert_eq!(from_unix_seconds(-5), Some(at(-5, 0)));
        assert_eq!(from_unix_seconds(i64::MAX), None);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn any_time() -> impl Strategy<Value = Timestamp> {
            (unix_seconds(earliest())..=unix_seconds(latest()))
                .prop_map(|s| from_unix_seconds(s).expect("in range"))
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
                    prop_assert_eq!(parse(&written).map(|p| p.as_millisecond()), Some(r.as_millisecond()));
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

    #[test]
    fn utc_days_name_parse_and_end() {
        let t = parse("2026-03-29T23:30:00+02:00").unwrap();
        let d = utc_day(t);
        assert_eq!(format_day(d), "2026-03-29");
        assert_eq!(parse_day("2026-03-29"), Some(d));
        for bad in [
            "2026-3-29",
            "2026-03-9",
            "2026/03/29",
            "2026-02-30",
            "20260329",
            "+026-03-29",
        ] {
            assert_eq!(parse_day(bad), None, "{bad}");
        }
        assert_eq!(format(end_of_day(d).unwrap()), "2026-03-30T00:00:00.000Z");
        assert_eq!(end_of_day(utc_day(latest())), None);
    }
}
