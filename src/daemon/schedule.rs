//! Cron schedules: each fire becomes an event with source `cron:<name>`.
//!
//! A fire's eventId is derived from the schedule name and the fire time
//! (`cron:<name>:<UTC time>`), so a fire delivered twice is one event, and a
//! restart never runs a slot twice. The last fire is kept in
//! `.autod/schedules/<name>.json`; fires missed while autod was down are caught
//! up per `catch_up`: `none`, `last` (the default: the most recent one) or `all`
//! (at most [`MAX_CATCH_UP`]).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Map, Value, json};

use super::Daemon;
use crate::config::ScheduleConfig;
use crate::cron::CronExpr;
use crate::time::{self, Timestamp};

pub const MAX_CATCH_UP: usize = 100;

/// The zone a schedule's fields are read in.
#[derive(Debug, Clone, Copy)]
pub enum Zone {
    Local,
    Named(chrono_tz::Tz),
}

impl Zone {
    pub fn parse(name: Option<&str>) -> Result<Zone, String> {
        match name {
            None => Ok(Zone::Local),
            Some(n) => n.parse::<chrono_tz::Tz>().map(Zone::Named).map_err(|_| {
                format!("unknown timezone {n:?}; use an IANA name like \"Europe/Berlin\"")
            }),
        }
    }

    /// The first fire of `expr` strictly after `t`, read in this zone.
    pub fn next_after(self, expr: &CronExpr, t: Timestamp) -> Option<Timestamp> {
        fn next<Z: TimeZone>(expr: &CronExpr, t: DateTime<Z>) -> Option<Timestamp> {
            expr.next_after(&t).map(|n| n.with_timezone(&Utc))
        }
        match self {
            Zone::Local => next(expr, t.with_timezone(&chrono::Local)),
            Zone::Named(tz) => next(expr, t.with_timezone(&tz)),
        }
    }
}

/// The fires in `(after, until]`, oldest first, at most `cap` of the newest.
pub fn fires_between(
    expr: &CronExpr,
    zone: Zone,
    after: Timestamp,
    until: Timestamp,
    cap: usize,
) -> Vec<Timestamp> {
    let mut out = std::collections::VecDeque::new();
    let mut t = after;
    while let Some(n) = zone.next_after(expr, t) {
        if n > until {
            break;
        }
        out.push_back(n);
        if out.len() > cap {
            out.pop_front();
        }
        t = n;
    }
    out.into()
}

pub fn event_id(name: &str, fire: Timestamp) -> String {
    format!("cron:{name}:{}", fire.format("%Y%m%dT%H%M%SZ"))
}

pub async fn run(daemon: Arc<Daemon>, s: ScheduleConfig) {
    let origin = format!("cron:{}", s.name);
    let expr = match CronExpr::parse(&s.cron) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!("{origin}: {e}; this schedule is off");
            return;
        }
    };
    let zone = match Zone::parse(s.timezone.as_deref()) {
        Ok(z) => z,
        Err(e) => {
            tracing::error!("{origin}: {e}; this schedule is off");
            return;
        }
    };
    let payload = s.payload.as_ref().map_or(Value::Object(Map::new()), |p| {
        serde_json::to_value(p).unwrap_or(Value::Null)
    });
    let now = time::now();
    let mut last = match daemon.state.schedule_last_fire(&s.name) {
        Some(last) => {
            let missed = fires_between(&expr, zone, last, now, MAX_CATCH_UP);
            let catch_up: &[Timestamp] = match s.catch_up.as_deref().unwrap_or("last") {
                "none" => &[],
                "all" => &missed,
                _ => missed.last().map(std::slice::from_ref).unwrap_or(&[]),
            };
            if !catch_up.is_empty() {
                tracing::info!("{origin}: catching up {} missed fire(s)", catch_up.len());
            }
            for fire in catch_up {
                fire_once(&daemon, &s, &origin, &payload, *fire);
            }
            missed.last().copied().unwrap_or(last).max(last)
        }
        // First start: begin from now, nothing to catch up.
        None => now,
    };
    if let Err(e) = daemon.state.schedule_set_last_fire(&s.name, last.max(now)) {
        tracing::error!("{origin}: {e}");
    }
    last = last.max(now);
    loop {
        let Some(next) = zone.next_after(&expr, last) else {
            tracing::info!("{origin}: no more fires");
            return;
        };
        // Sleep in bounded steps and re-read the wall clock, so a clock jump
        // (suspend, NTP) neither fires early nor loses a fire.
        loop {
            let left = (next - time::now()).to_std().unwrap_or(Duration::ZERO);
            if left.is_zero() {
                break;
            }
            tokio::time::sleep(left.min(Duration::from_secs(3600))).await;
        }
        fire_once(&daemon, &s, &origin, &payload, next);
        if let Err(e) = daemon.state.schedule_set_last_fire(&s.name, next) {
            tracing::error!("{origin}: {e}");
        }
        last = next;
    }
}

fn fire_once(daemon: &Daemon, s: &ScheduleConfig, origin: &str, payload: &Value, fire: Timestamp) {
    let Value::Object(obj) = json!({
        "eventType": s.event_type,
        "source": origin,
        "eventId": event_id(&s.name, fire),
        "ts": time::format(fire),
        "payload": payload,
    }) else {
        unreachable!("a json! object")
    };
    super::submit(daemon, obj, origin);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        time::parse(s).unwrap()
    }

    #[test]
    fn fire_ids_are_stable() {
        assert_eq!(
            event_id("daily", at("2026-11-24T09:00:00Z")),
            "cron:daily:20261124T090000Z"
        );
        assert!(crate::event::valid_id(&event_id(
            "daily-digest",
            at("2026-11-24T09:00:00Z")
        )));
    }

    #[test]
    fn timezones_move_the_fire() {
        let expr = CronExpr::parse("0 9 * * *").unwrap();
        let berlin = Zone::parse(Some("Europe/Berlin")).unwrap();
        // 09:00 in Berlin in winter is 08:00 UTC.
        assert_eq!(
            berlin.next_after(&expr, at("2026-11-24T00:00:00Z")),
            Some(at("2026-11-24T08:00:00Z"))
        );
        assert!(Zone::parse(Some("Mars/Olympus")).is_err());
    }

    #[test]
    fn catch_up_is_capped_to_the_newest() {
        let expr = CronExpr::parse("@hourly").unwrap();
        let z = Zone::Named(chrono_tz::UTC);
        let f = fires_between(
            &expr,
            z,
            at("2026-11-24T00:30:00Z"),
            at("2026-11-24T05:00:00Z"),
            2,
        );
        assert_eq!(
            f,
            vec![at("2026-11-24T04:00:00Z"), at("2026-11-24T05:00:00Z")]
        );
        let all = fires_between(
            &expr,
            z,
            at("2026-11-24T00:30:00Z"),
            at("2026-11-24T05:00:00Z"),
            100,
        );
        assert_eq!(all.len(), 5);
    }
}
