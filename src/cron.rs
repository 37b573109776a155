//! Crontab expressions, read and computed as cronie reads and runs them.
//!
//! Parsing follows cronie's `entry.c`: `*`, `n`, `a-b`, `*/s` and `a-b/s` in
//! comma-separated lists; three-letter names for months and weekdays, in
//! ranges too (`3-apr`); 0 and 7 are Sunday, and a weekday range ending in
//! Sunday wraps (`fri-sun`). When both day fields are restricted (neither
//! starts with `*`) a day matching *either* fires; otherwise both must match.
//! A 6th, leading seconds field and case-insensitive `@shorthands` are autod's
//! extensions.
//!
//! Fires are computed on jiff civil times in the schedule's zone, with
//! cronie's rules for clock changes (`cron.c`): see [`CronExpr::next_after`].
//! No crate did both: the `cron` crate has no clock-change rules and stops in
//! 2100, croner refuses valid lines and reads the day fields otherwise (README,
//! "Conformance", has the measurements).

use jiff::civil::{Date, DateTime};
use jiff::tz::{Offset, TimeZone};
use jiff::{SignedDuration, Timestamp, ToSpan};

/// A crontab expression that cannot be used, in crontab's own terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CronError(String);

/// A parsed crontab expression: one bit per allowed value of each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronExpr {
    source: String,
    seconds: u64,
    minutes: u64,
    hours: u32,
    /// Bits 1–31.
    doms: u32,
    /// Bits 1–12.
    months: u16,
    /// Bits 0–6, Sunday first.
    dows: u8,
    /// cronie's DOM_STAR / DOW_STAR: the field's first character is `*`.
    dom_star: bool,
    dow_star: bool,
    /// cronie's MIN_STAR | HR_STAR: the minute or the hour field starts with
    /// `*`. Such a job runs on the real clock through a clock change; any
    /// other is a fixed-time job (see [`CronExpr::next_after`]).
    wild: bool,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 8] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// How far ahead a fire is looked for: the Gregorian calendar repeats every
/// 400 years, so an expression with no fire in 401 years has none at all.
const HORIZON_YEARS: i16 = 401;

struct Field<'a> {
    name: &'static str,
    lo: u32,
    hi: u32,
    names: &'a [&'a str],
}

impl CronExpr {
    pub fn parse(expr: &str) -> Result<CronExpr, CronError> {
        let source = expr.trim().to_owned();
        let err = |m: String| CronError(format!("{source:?}: {m}"));
        let expanded = match source.to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            // cronie flags @hourly HR_STAR: it is a wildcard job.
            "@hourly" => "0 * * * *",
            s if s.starts_with('@') => {
                return Err(err(
                    "unknown shorthand; use @hourly, @daily, @weekly, @monthly or @yearly (@reboot has no meaning for a schedule)"
                        .into(),
                ));
            }
            _ => source.as_str(),
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let (sec, rest) = match fields.len() {
            5 => ("0", &fields[..]),
            6 => (fields[0], &fields[1..]),
            n => {
                return Err(err(format!(
                    "has {n} fields; a crontab line has 5 (minute hour day-of-month month day-of-week), or 6 with seconds first"
                )));
            }
        };
        let [min, hour, dom, month, dow] = [rest[0], rest[1], rest[2], rest[3], rest[4]];
        let field = |name, lo, hi, names| Field {
            name,
            lo,
            hi,
            names,
        };
        let bits = |f: Field, text: &str| {
            parse_field(&f, text).map_err(|e| err(format!("{} {text:?}: {e}", f.name)))
        };
        let seconds = bits(field("second", 0, 59, &[]), sec)?;
        let minutes = bits(field("minute", 0, 59, &[]), min)?;
        let hours = bits(field("hour", 0, 23, &[]), hour)?;
        let doms = bits(field("day-of-month", 1, 31, &[]), dom)?;
        let months = bits(field("month", 1, 12, &MONTHS), month)?;
        let dows = bits(field("day-of-week", 0, 7, &WEEKDAYS), dow)?;
        // 7 is Sunday too.
        let dows = (dows | (dows >> 7)) & 0x7f;
        let expr = CronExpr {
            source: source.clone(),
            seconds,
            minutes,
            hours: u32::try_from(hours).expect("24 bits"),
            doms: u32::try_from(doms).expect("32 bits"),
            months: u16::try_from(months).expect("13 bits"),
            dows: u8::try_from(dows).expect("7 bits"),
            dom_star: dom.starts_with('*'),
            dow_star: dow.starts_with('*'),
            wild: min.starts_with('*') || hour.starts_with('*'),
        };
        // A day that never comes (30 February) would leave a schedule silent
        // forever; a leap day (29 February) comes within 8 years.
        let start = DateTime::constant(2000, 1, 1, 0, 0, 0, 0);
        let end = start
            .checked_add(i64::from(HORIZON_YEARS).years())
            .expect("within jiff's range");
        if expr.next_civil(start, end).is_none() {
            return Err(err("never fires: no month has that day".into()));
        }
        Ok(expr)
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether cronie counts this as a wildcard job (minute or hour field
    /// starting with `*`, or `@hourly`).
    pub fn is_wild(&self) -> bool {
        self.wild
    }

    /// The first fire strictly after `t`, with the fields read in `tz`.
    ///
    /// Clock changes follow cronie, which compares the clock with where it
    /// would be had nothing changed:
    /// - forward by under 5 minutes: every job whose time was skipped runs
    ///   at the first instant after the jump;
    /// - forward by 5 minutes to under 3 hours (spring forward): wildcard
    ///   jobs go on by the clock; a fixed-time job whose time was skipped
    ///   runs at the first instant after the jump;
    /// - back by up to 3 hours (fall back): wildcard jobs go on by the clock,
    ///   so they run through the repeated hour too; fixed-time jobs do not
    ///   run again in it;
    /// - a larger change either way: jobs simply match what the clock shows
    ///   (a skipped time is lost, a repeated one runs again).
    pub fn next_after(&self, tz: &TimeZone, t: Timestamp) -> Option<Timestamp> {
        let horizon = t
            .to_zoned_datetime(TimeZone::UTC)
            .datetime()
            .checked_add(i64::from(HORIZON_YEARS).years())
            .unwrap_or(DateTime::MAX);
        // Fires are on whole seconds; the first candidate is the next one.
        let mut cur = Timestamp::from_second(t.as_second().checked_add(1)?).ok()?;
        loop {
            let offset = tz.to_offset(cur);
            let mut lo = offset.to_datetime(cur);
            if lo > horizon {
                return None;
            }
            if !self.wild
                && let Some((at, before)) = last_transition(tz, cur)
                && fold_rule(before, offset)
            {
                // In the second pass of a repeated hour: fixed-time jobs
                // resume where the clock was set back.
                lo = lo.max(before.to_datetime(at));
            }
            let next = tz.following(cur).next().map(|tr| tr.timestamp());
            let hi = match next {
                Some(n) => offset
                    .to_datetime(n.checked_sub(SignedDuration::from_secs(1)).ok()?)
                    .min(horizon),
                None => horizon,
            };
            if lo <= hi
                && let Some(c) = self.next_civil(lo, hi)
            {
                return offset.to_timestamp(c).ok();
            }
            let at = next?;
            let after = tz.to_offset(at);
            let shift = after.seconds() - offset.seconds();
            let catch_up = match shift {
                s if s <= 0 => false,
                s if s < 5 * 60 => true,
                s if s < 3 * 3600 => !self.wild,
                _ => false,
            };
            if catch_up {
                let skipped_from = offset.to_datetime(at);
                let skipped_to = after
                    .to_datetime(at)
                    .checked_sub(1.second())
                    .unwrap_or(skipped_from);
                if self.next_civil(skipped_from, skipped_to).is_some() {
                    return Some(at);
                }
            }
            cur = at;
        }
    }

    /// The first civil time in `[from, until]` (whole seconds) that matches.
    fn next_civil(&self, from: DateTime, until: DateTime) -> Option<DateTime> {
        let mut date = from.date();
        let mut time = (from.hour(), from.minute(), from.second());
        while date <= until.date() {
            if self.months & (1 << date.month()) == 0 {
                date = date.last_of_month().tomorrow().ok()?;
                time = (0, 0, 0);
                continue;
            }
            if self.day_matches(date)
                && let Some((h, m, s)) = self.next_time_of_day(time)
            {
                let found = date.at(h, m, s, 0);
                return (found <= until).then_some(found);
            }
            date = date.tomorrow().ok()?;
            time = (0, 0, 0);
        }
        None
    }

    /// cronie's day rule: both day fields must match if either starts with
    /// `*`, else either one will do.
    fn day_matches(&self, date: Date) -> bool {
        let dom = self.doms & (1 << date.day()) != 0;
        let dow = self.dows & (1 << date.weekday().to_sunday_zero_offset()) != 0;
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first matching (hour, minute, second) at or after `from`.
    fn next_time_of_day(&self, (h0, m0, s0): (i8, i8, i8)) -> Option<(i8, i8, i8)> {
        for h in h0..24 {
            if self.hours & (1 << h) == 0 {
                continue;
            }
            let m_from = if h == h0 { m0 } else { 0 };
            for m in m_from..60 {
                if self.minutes & (1 << m) == 0 {
                    continue;
                }
                let s_from = if h == h0 && m == m0 { s0 } else { 0 };
                let later = self.seconds >> s_from;
                if later != 0 {
                    let s = s_from + i8::try_from(later.trailing_zeros()).expect("< 64");
                    return Some((h, m, s));
                }
            }
        }
        None
    }
}

/// The latest transition at or before `t`, with the offset before it.
fn last_transition(tz: &TimeZone, t: Timestamp) -> Option<(Timestamp, Offset)> {
    let at = tz
        .preceding(t.checked_add(SignedDuration::from_nanos(1)).ok()?)
        .next()?
        .timestamp();
    let before = tz.to_offset(at.checked_sub(SignedDuration::from_nanos(1)).ok()?);
    Some((at, before))
}

/// cronie's "negative" case: the clock went back by up to 3 hours (its
/// virtual clock is 1 minute ahead, hence 181 minutes).
fn fold_rule(before: Offset, after: Offset) -> bool {
    let back = before.seconds() - after.seconds();
    back > 0 && back <= 181 * 60
}

/// One field as a bit set (bit n for value n), item by item as cronie's
/// `get_range` reads them.
fn parse_field(f: &Field, text: &str) -> Result<u64, String> {
    let mut bits = 0u64;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(step(s)?)),
            None => (item, None),
        };
        let (lo, hi) = match range {
            "*" => (f.lo, f.hi),
            "" => return Err(format!("empty item in {text:?}")),
            "?" => {
                return Err(
                    "\"?\" is not crontab (it is Quartz's); use * for \"any day\"".to_owned(),
                );
            }
            r if r.contains('~') => {
                return Err(format!(
                    "{r:?}: random values (~) are not supported; a schedule's fires should be predictable, so pick a value"
                ));
            }
            r => match r.split_once('-') {
                Some((a, b)) => {
                    let (a, mut b) = (value(f, a)?, value(f, b)?);
                    // cronie reads `fri-sun` (5-0) as 5-7; only without a step.
                    if f.name == "day-of-week" && a > b && b == 0 && step.is_none() {
                        b = 7;
                    }
                    if a > b {
                        let hint = if f.name == "day-of-week" {
                            format!(
                                "; only a range ending in Sunday wraps (fri-sun); write it as two ranges, like {a}-7,0-{b}"
                            )
                        } else {
                            format!("; write it as two ranges, like {a}-{},{}-{b}", f.hi, f.lo)
                        };
                        return Err(format!("range {r:?} runs backwards{hint}"));
                    }
                    (a, b)
                }
                None if step.is_some() => {
                    return Err(format!(
                        "{item:?}: a step needs a range or *; write {r}-{}/{} (cronie refuses {item})",
                        f.hi,
                        step.unwrap_or(1)
                    ));
                }
                None => {
                    let n = value(f, r)?;
                    (n, n)
                }
            },
        };
        let step = step.unwrap_or(1);
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            // A step of any size (`*/4000000000`) keeps only the first value.
            let Some(next) = v.checked_add(step) else {
                break;
            };
            v = next;
        }
    }
    Ok(bits)
}

fn step(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(0) => Err("a step of 0 never advances".to_owned()),
        Ok(n) => Ok(n),
        Err(_) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => Err(format!(
            "step {s} is too large; a step past the field's end keeps only its first value, so write that value"
        )),
        Err(_) => Err(format!("step {s:?} is not a number")),
    }
}

/// A number in the field's range, or (months and weekdays) a three-letter name.
fn value(f: &Field, v: &str) -> Result<u32, String> {
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return match v.parse::<u32>() {
            Ok(n) if (f.lo..=f.hi).contains(&n) => Ok(n),
            _ if f.name == "day-of-week" => {
                Err(format!("{v} is not a weekday (0-7, 0 and 7 are Sunday)"))
            }
            _ => Err(format!("{v} is out of range ({}-{})", f.lo, f.hi)),
        };
    }
    if let Some(i) = f.names.iter().position(|n| v.eq_ignore_ascii_case(n)) {
        return Ok(f.lo + u32::try_from(i).expect("few names"));
    }
    let lower = v.to_ascii_lowercase();
    if let Some(short) = f
        .names
        .iter()
        .find(|n| lower.len() > 3 && lower.starts_with(*n))
    {
        return Err(format!(
            "{v:?}: crontab names are three letters; write {short:?}"
        ));
    }
    Err(match f.names.first() {
        None => format!(
            "{v:?} is not a number (use {}-{}, a range like 1-5, a step like */15)",
            f.lo, f.hi
        ),
        Some(_) if f.name == "day-of-week" => format!("{v:?} is not a weekday (0-7 or sun..sat)"),
        Some(_) => format!("{v:?} is not a number 1-12 or a name like jan"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::Weekday;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn fires_in(expr: &str, zone: &str, from: &str, n: usize) -> Vec<Timestamp> {
        let c = CronExpr::parse(expr).unwrap();
        let tz = TimeZone::get(zone).unwrap();
        let mut t = at(from);
        (0..n)
            .map(|_| {
                t = c.next_after(&tz, t).unwrap();
                t
            })
            .collect()
    }

    fn fires(expr: &str, from: &str, n: usize) -> Vec<Timestamp> {
        fires_in(expr, "UTC", from, n)
    }

    fn weekdays(f: &[Timestamp]) -> Vec<Weekday> {
        f.iter()
            .map(|t| t.to_zoned_datetime(TimeZone::UTC).weekday())
            .collect()
    }

    #[test]
    fn five_fields_fire_on_the_minute() {
        let f = fires("0 9 * * *", "2026-11-24T08:00:00Z", 2);
        assert_eq!(f, [at("2026-11-24T09:00:00Z"), at("2026-11-25T09:00:00Z")]);
        // Strictly after: a fire time itself is not returned again.
        assert_eq!(fires("0 9 * * *", "2026-11-24T09:00:00Z", 1)[0], f[1]);
        assert_eq!(
            fires("0 9 * * *", "2026-11-24T08:59:59.5Z", 1)[0],
            f[0],
            "a fraction of a second before"
        );
    }

    #[test]
    fn sunday_is_zero_and_seven() {
        for expr in [
            "0 0 * * 0",
            "0 0 * * 7",
            "0 0 * * sun",
            "0 0 * * SUN",
            "@weekly",
        ] {
            let f = fires(expr, "2026-11-24T00:00:00Z", 2);
            assert_eq!(weekdays(&f), [Weekday::Sunday; 2], "{expr}");
        }
    }

    #[test]
    fn weekday_ranges_and_steps() {
        let f = fires("0 12 * * 1-5", "2026-11-27T13:00:00Z", 1); // Friday afternoon
        assert_eq!(weekdays(&f), [Weekday::Monday]);
        let f = fires("0 12 * * 5-7", "2026-11-24T00:00:00Z", 3);
        use Weekday::*;
        assert_eq!(weekdays(&f), [Friday, Saturday, Sunday]);
        let f = fires("0 12 * * */2", "2026-11-22T13:00:00Z", 3); // after Sunday noon
        assert_eq!(weekdays(&f), [Tuesday, Thursday, Saturday]);
        // cronie wraps a range ending in Sunday (and only that one).
        let f = fires("0 12 * * fri-sun", "2026-11-24T00:00:00Z", 4);
        assert_eq!(weekdays(&f), [Friday, Saturday, Sunday, Friday]);
        assert_eq!(
            weekdays(&fires("0 12 * * 5-0", "2026-11-24T00:00:00Z", 3)),
            [Friday, Saturday, Sunday]
        );
        // Names and numbers mix in a range, as in cronie.
        let f = fires("0 12 * * 1-fri", "2026-11-27T13:00:00Z", 1);
        assert_eq!(weekdays(&f), [Monday]);
    }

    #[test]
    fn months_mix_names_and_numbers() {
        assert_eq!(
            fires("0 0 1 3-apr *", "2026-01-01T00:00:00Z", 3),
            [
                at("2026-03-01T00:00:00Z"),
                at("2026-04-01T00:00:00Z"),
                at("2027-03-01T00:00:00Z"),
            ]
        );
        assert_eq!(
            fires("0 0 1 mar-4 *", "2026-01-01T00:00:00Z", 2),
            fires("0 0 1 3-4 *", "2026-01-01T00:00:00Z", 2)
        );
    }

    #[test]
    fn steps_larger_than_the_field_keep_the_first_value() {
        // cronie warns and keeps the start of the range.
        assert_eq!(
            fires("*/60 * * * *", "2026-11-24T00:30:00Z", 2),
            [at("2026-11-24T01:00:00Z"), at("2026-11-24T02:00:00Z")]
        );
        assert_eq!(
            fires("0 */24 * * *", "2026-11-24T00:30:00Z", 1),
            [at("2026-11-25T00:00:00Z")]
        );
    }

    #[test]
    fn day_of_month_or_day_of_week() {
        // The 1st of the month OR any Monday.
        let f = fires("0 0 1 * 1", "2026-11-24T00:00:00Z", 3);
        assert_eq!(
            f,
            [
                at("2026-11-30T00:00:00Z"),
                at("2026-12-01T00:00:00Z"),
                at("2026-12-07T00:00:00Z"),
            ]
        );
        // A day field starting with `*` makes it AND: the odd days that are Mondays.
        let f = fires("0 0 */2 * 1", "2026-11-24T00:00:00Z", 2);
        assert_eq!(f, [at("2026-12-07T00:00:00Z"), at("2026-12-21T00:00:00Z")]);
    }

    #[test]
    fn six_fields_have_seconds_first() {
        let f = fires("30 * * * * *", "2026-11-24T00:00:00Z", 2);
        assert_eq!(f, [at("2026-11-24T00:00:30Z"), at("2026-11-24T00:01:30Z")]);
        let f = fires("*/20 * * * * *", "2026-11-24T00:00:50Z", 2);
        assert_eq!(f, [at("2026-11-24T00:01:00Z"), at("2026-11-24T00:01:20Z")]);
    }

    #[test]
    fn shorthands() {
        assert_eq!(
            fires("@hourly", "2026-11-24T00:30:00Z", 1)[0],
            at("2026-11-24T01:00:00Z")
        );
        assert_eq!(
            fires("@daily", "2026-11-24T00:30:00Z", 1)[0],
            at("2026-11-25T00:00:00Z")
        );
        assert_eq!(
            fires("@monthly", "2026-11-24T00:30:00Z", 1)[0],
            at("2026-12-01T00:00:00Z")
        );
        assert_eq!(
            fires("@yearly", "2026-11-24T00:30:00Z", 1)[0],
            at("2027-01-01T00:00:00Z")
        );
        assert!(CronExpr::parse("@hourly").unwrap().is_wild());
        assert!(!CronExpr::parse("@daily").unwrap().is_wild());
    }

    #[test]
    fn fires_go_on_past_2100() {
        assert_eq!(
            fires("0 0 1 1 *", "2100-06-01T00:00:00Z", 1)[0],
            at("2101-01-01T00:00:00Z")
        );
        assert_eq!(
            fires("0 12 29 2 *", "2399-03-01T00:00:00Z", 1)[0],
            at("2400-02-29T12:00:00Z")
        );
        // 2100 is not a leap year; the next 29 February is in 2104.
        assert_eq!(
            fires("0 0 29 2 *", "2096-03-01T00:00:00Z", 1)[0],
            at("2104-02-29T00:00:00Z")
        );
        let near_end = CronExpr::parse("0 0 1 1 *").unwrap();
        assert_eq!(
            near_end.next_after(&TimeZone::UTC, at("9999-06-01T00:00:00Z")),
            None
        );
    }

    #[test]
    fn wildcard_means_the_first_character_is_a_star() {
        for (expr, wild) in [
            ("*/15 * * * *", true),
            ("0 * * * *", true),
            ("* 2 * * *", true),
            ("0 */2 * * *", true),
            ("0-59 * * * *", true),
            ("0-59 0-23 * * *", false),
            ("30 2 * * *", false),
            ("0,30 1-3 * * *", false),
        ] {
            assert_eq!(CronExpr::parse(expr).unwrap().is_wild(), wild, "{expr}");
        }
    }

    /// Berlin, 29 March 2026: 02:00 CET jumps to 03:00 CEST (01:00Z).
    #[test]
    fn spring_forward_runs_skipped_fixed_times_after_the_jump() {
        let f = fires_in("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", 2);
        assert_eq!(f, [at("2026-03-29T01:00:00Z"), at("2026-03-30T00:30:00Z")]);
        let f = fires_in("0 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", 1);
        assert_eq!(f, [at("2026-03-29T01:00:00Z")]);
        // Several skipped times are one fire; 03:00 itself is the same instant.
        let f = fires_in("0,30 2,3 * * *", "Europe/Berlin", "2026-03-29T00:30:00Z", 2);
        assert_eq!(f, [at("2026-03-29T01:00:00Z"), at("2026-03-29T01:30:00Z")]);
        // Wildcard jobs go on by the clock: no catching up of 02:xx.
        let f = fires_in("*/15 * * * *", "Europe/Berlin", "2026-03-29T00:40:00Z", 3);
        assert_eq!(
            f,
            [
                at("2026-03-29T00:45:00Z"),
                at("2026-03-29T01:00:00Z"),
                at("2026-03-29T01:15:00Z")
            ]
        );
        let f = fires_in("* 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", 1);
        assert_eq!(
            f,
            [at("2026-03-30T00:00:00Z")],
            "a wildcard job at 02:xx has no 02:xx that day"
        );
    }

    /// Lord Howe Island moves its clocks by 30 minutes: 02:00 → 02:30 on
    /// 4 October 2026 (15:30Z on the 3rd).
    #[test]
    fn half_hour_jump_on_lord_howe() {
        let f = fires_in(
            "0 2 * * *",
            "Australia/Lord_Howe",
            "2026-10-03T00:00:00Z",
            2,
        );
        assert_eq!(f, [at("2026-10-03T15:30:00Z"), at("2026-10-04T15:00:00Z")]);
    }

    /// Berlin, 25 October 2026: 03:00 CEST (01:00Z) goes back to 02:00 CET.
    #[test]
    fn fall_back_fires_fixed_times_once_and_wildcards_by_the_clock() {
        let f = fires_in("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", 2);
        assert_eq!(f, [at("2026-10-25T00:30:00Z"), at("2026-10-26T01:30:00Z")]);
        // Starting inside the repeated hour never goes back before the start.
        let f = fires_in("30 2 * * *", "Europe/Berlin", "2026-10-25T01:10:00Z", 1);
        assert_eq!(f, [at("2026-10-26T01:30:00Z")]);
        let f = fires_in("*/15 * * * *", "Europe/Berlin", "2026-10-25T00:40:00Z", 6);
        assert_eq!(
            f,
            [
                "2026-10-25T00:45:00Z",
                "2026-10-25T01:00:00Z",
                "2026-10-25T01:15:00Z",
                "2026-10-25T01:30:00Z",
                "2026-10-25T01:45:00Z",
                "2026-10-25T02:00:00Z",
            ]
            .map(at)
        );
        let f = fires_in("@hourly", "Europe/Berlin", "2026-10-24T23:30:00Z", 3);
        assert_eq!(
            f,
            [
                "2026-10-25T00:00:00Z",
                "2026-10-25T01:00:00Z",
                "2026-10-25T02:00:00Z"
            ]
            .map(at)
        );
        // From the second 02:10, the wildcard job finds the second 02:15.
        let f = fires_in("*/15 * * * *", "Europe/Berlin", "2026-10-25T01:10:00Z", 1);
        assert_eq!(f, [at("2026-10-25T01:15:00Z")]);
    }

    #[test]
    fn next_is_always_after_the_start() {
        let tz = TimeZone::get("Europe/Berlin").unwrap();
        for expr in [
            "30 2 * * *",
            "*/15 * * * *",
            "0 2,3 * * *",
            "* * * * *",
            "@hourly",
            "0 0 * * *",
        ] {
            let c = CronExpr::parse(expr).unwrap();
            let mut t = at("2026-10-24T22:00:00Z");
            while t < at("2026-10-25T04:00:00Z") {
                let n = c.next_after(&tz, t).unwrap();
                assert!(n > t, "{expr} from {t}: {n}");
                t = t
                    .checked_add(SignedDuration::from_secs(7 * 60 + 13))
                    .unwrap();
            }
        }
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let cases = [
            ("* * *", "3 fields"),
            ("0 0 * * 8", "not a weekday"),
            ("0 24 * * *", "hour \"24\": 24 is out of range (0-23)"),
            ("61 * * * *", "minute \"61\": 61 is out of range (0-59)"),
            ("* * 0 * *", "day-of-month \"0\": 0 is out of range (1-31)"),
            ("* * 32 * *", "32 is out of range (1-31)"),
            ("* * * 13 *", "month \"13\": 13 is out of range (1-12)"),
            (
                "0 0 * foo *",
                "\"foo\" is not a number 1-12 or a name like jan",
            ),
            ("*/0 * * * *", "a step of 0 never advances"),
            ("*/x * * * *", "step \"x\" is not a number"),
            ("*/99999999999 * * * *", "step 99999999999 is too large"),
            ("a * * * *", "\"a\" is not a number"),
            (
                "5-1 * * * *",
                "range \"5-1\" runs backwards; write it as two ranges, like 5-59,0-1",
            ),
            ("0 0 * * fri-tue", "only a range ending in Sunday wraps"),
            ("0 0 * * 5-0/2", "runs backwards"),
            ("60 * * * * *", "second \"60\": 60 is out of range (0-59)"),
            ("0 0 30 2 *", "never fires"),
            ("0 0 31 4,6,9,11 *", "never fires"),
            ("0 12 * * 5/2", "a step needs a range or *; write 5-7/2"),
            ("5/10 * * * *", "write 5-59/10"),
            ("0 0 ? * mon", "\"?\" is not crontab"),
            ("0 0 * * monday", "three letters; write \"mon\""),
            ("0 0 * january *", "three letters; write \"jan\""),
            ("~ * * * *", "random values"),
            ("1,,2 * * * *", "empty item"),
            ("@reboot", "unknown shorthand"),
        ];
        for (expr, want) in cases {
            let e = CronExpr::parse(expr).unwrap_err().to_string();
            assert!(e.contains(want), "{expr}: {e}");
            assert!(!e.contains('\n'), "{expr}: one line: {e}");
        }
        for expr in [
            "0 0 29 2 *",
            "0 0 * jan-mar *",
            "0 0 * JAN,dec *",
            "*/15 0-23/2 1-31 * *",
            "0 0 31 * *",
            "0 0 * * sat-sun",
            "0 0 29 2 */7",
        ] {
            assert!(CronExpr::parse(expr).is_ok(), "{expr}");
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Fires are one fixed set of instants: the next one is after the
            /// start, and asking again from anywhere before it finds it again
            /// (nothing between is skipped, nothing earlier comes back).
            #[test]
            fn next_is_after_the_start_and_stable_until_it(
                start in prop_oneof![
                    1_700_000_000i64..1_900_000_000,
                    // Eight hours around the clock changes of 2026 in the
                    // zones below (generated with Python's zoneinfo).
                    prop::sample::select(vec![
                        1_774_746_000i64, 1_792_890_000, 1_772_953_200, 1_793_512_800,
                        1_775_314_800, 1_791_041_400, 1_775_311_200, 1_790_431_200,
                        1_775_358_000, 1_788_667_200,
                    ]).prop_flat_map(|base| (base - 14_400)..(base + 14_400)),
                ],
                frac in 0.0f64..1.0,
                expr in prop::sample::select(vec![
                    "30 2 * * *", "0 2 * * *", "*/15 * * * *", "@hourly", "* 2 * * *",
                    "0,30 1-3 * * *", "*/7 */3 * * *", "0 0 29 2 *", "0 9 * * 1-5", "15 2 * * 0",
                    "*/20 * * * * *", "10 2 1,15 * fri",
                ]),
                zone in prop::sample::select(vec![
                    "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC",
                    "Asia/Kathmandu", "America/Santiago", "Pacific/Chatham",
                ]),
            ) {
                let c = CronExpr::parse(expr).unwrap();
                let tz = TimeZone::get(zone).unwrap();
                let t = Timestamp::from_second(start).unwrap();
                let n = c.next_after(&tz, t).unwrap();
                prop_assert!(n > t);
                let span = n.as_second() - start;
                #[allow(clippy::cast_possible_truncation)]
                let x = start + (span as f64 * frac) as i64;
                let x = Timestamp::from_second(x.min(n.as_second() - 1)).unwrap();
                prop_assert_eq!(c.next_after(&tz, x), Some(n), "from {}", x);
            }

            #[test]
            fn parse_never_panics(s in "[-0-9*/,a-zA-Z?~@ ]{0,30}", any in "\\PC{0,40}") {
                let _ = CronExpr::parse(&s);
                let _ = CronExpr::parse(&any);
            }

            #[test]
            fn any_step_parses_without_panic(step in any::<u32>()) {
                let r = CronExpr::parse(&format!("*/{step} * * * *"));
                prop_assert_eq!(r.is_ok(), step != 0);
            }
        }
    }
}
