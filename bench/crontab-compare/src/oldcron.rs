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
        // Checked here so that a mistake is named in crontab's own terms: the
        // crate's messages quote its 6-field form and state bounds off by one.
        let seconds = (fields.len() == 6).then_some(("second", sec, 0, 59, &[][..]));
        let checks = [
            ("minute", min, 0, 59, &[][..]),
            ("hour", hour, 0, 23, &[][..]),
            ("day-of-month", dom, 1, 31, &[][..]),
            ("month", month, 1, 12, &MONTHS[..]),
        ];
        for (name, field, lo, hi, names) in seconds.into_iter().chain(checks) {
            check_field(field, lo, hi, names)
                .map_err(|e| format!("{source:?}: {name} {field:?}: {e}"))?;
        }
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
                cron::Schedule::from_str(&format!("{sec} {min} {hour} {d} {month} {w}")).map_err(
                    |e| {
                        // The crate's message spans lines and points into its own form.
                        let e = e.to_string();
                        let reason = e.lines().last().unwrap_or_default().trim().to_owned();
                        format!("{source:?} is not a valid cron expression: {reason}")
                    },
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let expr = CronExpr { source, schedules };
        // A day that never comes (30 February) would leave a schedule silent
        // forever; a leap day (29 February) comes within 8 years.
        let start = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
        if expr.next_after(&start).is_none() {
            return Err(format!(
                "{:?} never fires: no month has that day",
                expr.source
            ));
        }
        Ok(expr)
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

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// One field of minutes, hours, days or months: `*`, `?` (day fields), `n`,
/// `a-b`, each optionally `/step`, in a comma-separated list; names for months.
fn check_field(field: &str, lo: u32, hi: u32, names: &[&str]) -> Result<(), String> {
    let value = |v: &str| -> Result<u32, String> {
        let n = match v.parse::<u32>() {
            Ok(n) => n,
            Err(_) => match names.iter().position(|m| v.eq_ignore_ascii_case(m)) {
                Some(i) => u32::try_from(i).expect("12 names") + 1,
                None if names.is_empty() => {
                    return Err(format!(
                        "{v:?} is not a number (use {lo}-{hi}, a range like 1-5, a step like */15)"
                    ));
                }
                None => {
                    return Err(format!(
                        "{v:?} is not a number {lo}-{hi} or a name like jan"
                    ));
                }
            },
        };
        if (lo..=hi).contains(&n) {
            Ok(n)
        } else {
            Err(format!("{n} is out of range ({lo}-{hi})"))
        }
    };
    items(field, (lo, hi), value).map(|_| ())
}

/// Crontab weekdays (0–7, names, ranges, steps, lists) → the crate's 1–7 list.
fn translate_weekdays(field: &str) -> Result<String, String> {
    if field == "*" || field == "?" {
        return Ok("*".into());
    }
    let mut days = [false; 7];
    for (lo, hi, step) in items(field, (0, 7), weekday)? {
        for d in (lo..=hi).step_by(step as usize) {
            days[d as usize % 7] = true;
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

/// The items of a comma-separated field as `(first, last, step)`: `*` and `?`
/// span `full`, and `n/step` runs from n to the end, as in Vixie cron.
fn items(
    field: &str,
    full: (u32, u32),
    value: impl Fn(&str) -> Result<u32, String>,
) -> Result<Vec<(u32, u32, u32)>, String> {
    field
        .split(',')
        .map(|item| {
            let (range, step) = match item.split_once('/') {
                Some((r, s)) => match s.parse::<u32>() {
                    Ok(0) => return Err("a step of 0 never advances".to_owned()),
                    Ok(n) => (r, Some(n)),
                    Err(_) => return Err(format!("step {s:?} is not a number")),
                },
                None => (item, None),
            };
            let (lo, hi) = match range {
                "*" | "?" => full,
                r => match r.split_once('-') {
                    Some((a, b)) => (value(a)?, value(b)?),
                    None if step.is_some() => (value(r)?, full.1),
                    None => {
                        let n = value(r)?;
                        (n, n)
                    }
                },
            };
            if lo > hi {
                return Err(format!("range {range:?} runs backwards"));
            }
            Ok((lo, hi, step.unwrap_or(1)))
        })
        .collect()
}

/// 0–7 or a name; returns 0–7 (7 stays 7 so that `5-7` is a valid range).
fn weekday(s: &str) -> Result<u32, String> {
    if let Ok(n) = s.parse::<u32>() {
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
        .map(|d| u32::try_from(d).expect("7 names"))
        .ok_or_else(|| format!("{s:?} is not a weekday (0-7 or sun..sat)"))
}

