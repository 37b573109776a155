//! Crontab expressions as people write them, on top of the `cron` crate.
//!
//! The crate wants a seconds field, numbers weekdays 1–7 from Sunday, and ANDs
//! day-of-month with day-of-week. A crontab line has five fields, numbers
//! weekdays 0–7 (0 and 7 are Sunday), and when both day fields are restricted a
//! day matching *either* one fires (Vixie cron's rule). This module translates:
//!
//! - `@hourly` `@daily` `@midnight` `@weekly` `@monthly` `@yearly` `@annually`;
//! - 5 fields get a `0` seconds field; 6 fields have seconds first;
//! - the weekday field is expanded to an explicit list in the crate's numbering;
//! - both day fields restricted → two schedules, and the earlier fire wins.

use std::str::FromStr;

use chrono::{DateTime, TimeZone};

/// A parsed crontab expression.
#[derive(Debug, Clone)]
pub struct CronExpr {
    source: String,
    schedules: Vec<cron::Schedule>,
}

const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

impl CronExpr {
    pub fn parse(expr: &str) -> Result<CronExpr, String> {
        let source = expr.trim().to_owned();
        let expanded = match source.to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => "0 0 1 1 *".to_owned(),
            "@monthly" => "0 0 1 * *".to_owned(),
            "@weekly" => "0 0 * * 0".to_owned(),
            "@daily" | "@midnight" => "0 0 * * *".to_owned(),
            "@hourly" => "0 * * * *".to_owned(),
            s if s.starts_with('@') => {
                return Err(format!(
                    "{source:?}: unknown shorthand; use @hourly, @daily, @weekly, @monthly or @yearly (@reboot has no meaning for a schedule)"
                ));
            }
            _ => source.clone(),
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let (sec, rest) = match fields.len() {
            5 => ("0", &fields[..]),
            6 => (fields[0], &fields[1..]),
            n => {
                return Err(format!(
                    "{source:?} has {n} fields; a crontab line has 5 (minute hour day-of-month month day-of-week), or 6 with seconds first"
                ));
            }
        };
        let [min, hour, dom, month, dow] = [rest[0], rest[1], rest[2], rest[3], rest[4]];
        let dow_crate =
            translate_weekdays(dow).map_err(|e| format!("{source:?}: day-of-week {dow:?}: {e}"))?;
        let restricted = |f: &str| !f.starts_with('*') && f != "?";
        let variants: Vec<(String, String)> = if restricted(dom) && restricted(dow) {
            vec![
                (dom.to_owned(), "*".to_owned()),
                ("*".to_owned(), dow_crate),
            ]
        } else {
            vec![(dom.to_owned(), dow_crate)]
        };
        let schedules = variants
            .into_iter()
            .map(|(d, w)| {
                cron::Schedule::from_str(&format!("{sec} {min} {hour} {d} {month} {w}"))
                    .map_err(|e| format!("{source:?} is not a valid cron expression: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CronExpr { source, schedules })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The first fire strictly after `t`.
    pub fn next_after<Tz: TimeZone>(&self, t: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        self.schedules
            .iter()
            .filter_map(|s| s.after(t).next())
            .min()
    }
}

/// Crontab weekdays (0–7, names, ranges, steps, lists) → the crate's 1–7 list.
fn translate_weekdays(field: &str) -> Result<String, String> {
    if field == "*" || field == "?" {
        return Ok("*".into());
    }
    let mut days = [false; 7];
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<usize>().map_err(|_| format!("bad step {s:?}"))?,
            ),
            None => (item, 1),
        };
        if step == 0 {
            return Err("a step of 0 never advances".into());
        }
        let (lo, hi) = match range {
            "*" => (0, 6),
            r => match r.split_once('-') {
                Some((a, b)) => (weekday(a)?, weekday(b)?),
                // `5/2` means 5, 7, … up to the end, as in Vixie cron.
                None if item.contains('/') => (weekday(r)?, 6),
                None => {
                    let d = weekday(r)?;
                    (d, d)
                }
            },
        };
        if lo > hi {
            return Err(format!("range {range:?} runs backwards"));
        }
        for d in (lo..=hi).step_by(step) {
            days[d % 7] = true;
        }
    }
    Ok(days
        .iter()
        .enumerate()
        .filter(|(_, on)| **on)
        .map(|(d, _)| (d + 1).to_string())
        .collect::<Vec<_>>()
        .join(","))
}

/// 0–7 or a name; returns 0–7 (7 stays 7 so that `5-7` is a valid range).
fn weekday(s: &str) -> Result<usize, String> {
    if let Ok(n) = s.parse::<usize>() {
        return if n <= 7 {
            Ok(n)
        } else {
            Err(format!("{n} is not a weekday (0-7, 0 and 7 are Sunday)"))
        };
    }
    let lower = s.to_ascii_lowercase();
    WEEKDAYS
        .iter()
        .position(|w| lower == *w || (lower.len() > 3 && lower.starts_with(w)))
        .ok_or_else(|| format!("{s:?} is not a weekday (0-7 or sun..sat)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, Timelike, Utc, Weekday};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn fires(expr: &str, from: &str, n: usize) -> Vec<DateTime<Utc>> {
        let c = CronExpr::parse(expr).unwrap();
        let mut t = at(from);
        (0..n)
            .map(|_| {
                t = c.next_after(&t).unwrap();
                t
            })
            .collect()
    }

    #[test]
    fn five_fields_fire_on_the_minute() {
        // 2026-11-24 is a Tuesday.
        let f = fires("0 9 * * *", "2026-11-24T08:00:00Z", 2);
        assert_eq!(f[0], at("2026-11-24T09:00:00Z"));
        assert_eq!(f[1], at("2026-11-25T09:00:00Z"));
    }

    #[test]
    fn sunday_is_zero_and_seven() {
        for expr in ["0 0 * * 0", "0 0 * * 7", "0 0 * * sun", "@weekly"] {
            let f = fires(expr, "2026-11-24T00:00:00Z", 2);
            assert!(
                f.iter().all(|t| t.weekday() == Weekday::Sun),
                "{expr}: {f:?}"
            );
        }
    }

    #[test]
    fn weekday_ranges_and_steps() {
        let f = fires("0 12 * * 1-5", "2026-11-27T13:00:00Z", 1); // Friday afternoon
        assert_eq!(f[0].weekday(), Weekday::Mon);
        let f = fires("0 12 * * 5-7", "2026-11-24T00:00:00Z", 3);
        let days: Vec<Weekday> = f.iter().map(|t| t.weekday()).collect();
        assert_eq!(days, vec![Weekday::Fri, Weekday::Sat, Weekday::Sun]);
        let f = fires("0 12 * * */2", "2026-11-22T13:00:00Z", 3); // after Sunday noon
        let days: Vec<Weekday> = f.iter().map(|t| t.weekday()).collect();
        assert_eq!(days, vec![Weekday::Tue, Weekday::Thu, Weekday::Sat]);
    }

    #[test]
    fn day_of_month_or_day_of_week() {
        // The 1st of the month OR any Monday.
        let f = fires("0 0 1 * 1", "2026-11-24T00:00:00Z", 3);
        assert_eq!(f[0], at("2026-11-30T00:00:00Z")); // Monday
        assert_eq!(f[1], at("2026-12-01T00:00:00Z")); // the 1st (a Tuesday)
        assert_eq!(f[2], at("2026-12-07T00:00:00Z")); // Monday
    }

    #[test]
    fn six_fields_have_seconds_first() {
        let f = fires("30 * * * * *", "2026-11-24T00:00:00Z", 2);
        assert_eq!(f[0].second(), 30);
        assert_eq!(f[1] - f[0], chrono::Duration::minutes(1));
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
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert!(CronExpr::parse("* * *").unwrap_err().contains("3 fields"));
        assert!(
            CronExpr::parse("0 0 * * 8")
                .unwrap_err()
                .contains("not a weekday")
        );
        assert!(CronExpr::parse("61 * * * *").is_err());
        assert!(
            CronExpr::parse("@reboot")
                .unwrap_err()
                .contains("unknown shorthand")
        );
    }
}
