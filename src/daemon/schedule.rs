//! Cron schedules: each fire becomes an event with source `cron:<name>`.
//!
//! A fire's eventId is derived from the schedule name and the fire time
//! (`cron:<name>:<UTC time>`), so a fire delivered twice is one event, and a
//! restart never runs a slot twice. The last fire is kept in
//! `.autod/schedules/<name>.json`; fires missed while autod was down are caught
//! up per `catch_up`: `none`, `last` (the default: the most recent one) or `all`
//! (at most [`MAX_CATCH_UP`]). Fire times, clock changes included, come from
//! [`CronExpr::next_after`]; `autod schedules` lists them with the same
//! functions, and its `fire` builds the event with [`fire_event`].

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::Daemon;
use crate::config::ScheduleConfig;
use crate::cron::CronExpr;
use crate::time::{self, Timestamp};
use crate::zone::Zone;

pub const MAX_CATCH_UP: usize = 100;

/// The first fire of `expr` strictly after `t`, read in `zone` (cronie's
/// rules for clock changes, see [`CronExpr::next_after`]).
pub fn next_after(expr: &CronExpr, zone: &Zone, t: Timestamp) -> Option<Timestamp> {
    next_in(expr, &zone.rules(), t)
}

/// The zone's rules looked up once, for a walk over many fires.
fn next_in(expr: &CronExpr, tz: &jiff::tz::TimeZone, t: Timestamp) -> Option<Timestamp> {
    // Fires are whole seconds, so the sub-second part of `t` only matters
    // through `>`: a `t` of 09:00:00.5 is after a 09:00:00 fire.
    let secs = time::from_unix_seconds(time::unix_seconds(t))?;
    expr.next_after(tz, secs)
}

/// The fires in `(after, until]`, oldest first, at most `cap` of the newest.
///
/// Only the newest `cap` are wanted, so it looks back from `until` in
/// doubling windows instead of walking every fire since `after`: a machine
/// whose clock read 1970 at boot (no RTC) until NTP stepped it would
/// otherwise walk 29 million minutes before the daemon starts.
pub fn fires_between(
    expr: &CronExpr,
    zone: &Zone,
    after: Timestamp,
    until: Timestamp,
    cap: usize,
) -> Vec<Timestamp> {
    let mut window = Duration::from_secs(3600);
    loop {
        // A window reaching back past year 1 covers everything since `after`.
        let start = match time::sub(until, window) {
            s if s == time::earliest() => after,
            s => s.max(after),
        };
        let fires = walk(expr, zone, start, until, cap);
        if fires.len() >= cap || start <= after {
            return fires;
        }
        window = window.saturating_mul(2);
    }
}

/// Every fire in `(after, until]`, keeping the newest `cap`.
fn walk(
    expr: &CronExpr,
    zone: &Zone,
    after: Timestamp,
    until: Timestamp,
    cap: usize,
) -> Vec<Timestamp> {
    let rules = zone.rules();
    let mut out = std::collections::VecDeque::new();
    let mut t = after;
    while let Some(n) = next_in(expr, &rules, t) {
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
    format!("cron:{name}:{}", time::format_basic(fire))
}

/// The eventId of a fire asked for by hand (`autod schedules fire`):
/// `cron:<name>:manual-<uuid v7>`. A real fire's last part is a UTC time of
/// digits, `T` and `Z`, and a schedule name has no `:`, so the two never meet;
/// each manual fire is a new event.
pub fn manual_event_id(name: &str) -> String {
    format!("cron:{name}:manual-{}", uuid::Uuid::now_v7().simple())
}

/// The schedule's expression and zone, or what is wrong with them.
pub fn parse(s: &ScheduleConfig) -> Result<(CronExpr, Zone), String> {
    let expr = CronExpr::parse(&s.cron).map_err(|e| e.to_string())?;
    let zone = Zone::parse(s.timezone.as_deref())?;
    Ok((expr, zone))
}

/// The next `n` fires strictly after `after`, oldest first (fewer if the
/// schedule ends, as past year 9999).
pub fn next_fires(expr: &CronExpr, zone: &Zone, after: Timestamp, n: usize) -> Vec<Timestamp> {
    let rules = zone.rules();
    let mut out = Vec::with_capacity(n);
    let mut t = after;
    while out.len() < n
        && let Some(next) = next_in(expr, &rules, t)
    {
        out.push(next);
        t = next;
    }
    out
}

/// The event a fire submits, the same for the daemon and a fire by hand.
pub fn fire_event(s: &ScheduleConfig, event_id: String, ts: Timestamp) -> Map<String, Value> {
    let payload = s.payload.as_ref().map_or(Value::Object(Map::new()), |p| {
        serde_json::to_value(p).unwrap_or(Value::Null)
    });
    let Value::Object(obj) = json!({
        "eventType": s.event_type,
        "source": format!("cron:{}", s.name),
        "eventId": event_id,
        "ts": time::format(ts),
        "payload": payload,
    }) else {
        unreachable!("a json! object")
    };
    obj
}

pub(super) async fn run(daemon: Arc<Daemon>, s: ScheduleConfig) {
    let origin = format!("cron:{}", s.name);
    let (expr, zone) = match parse(&s) {
        Ok(parsed) => parsed,
        Err(e) => {
            tracing::error!("{origin}: {e}; this schedule is off");
            return;
        }
    };
    let now = time::now();
    let stored = daemon
        .state
        .schedule_last_fire(&s.name)
        .map(|last| resume_from(&origin, last, now));
    let mut last = match stored {
        Some(last) => {
            let missed = fires_between(&expr, &zone, last, now, MAX_CATCH_UP);
            let catch_up: &[Timestamp] = match s.catch_up.as_deref().unwrap_or("last") {
                "none" => &[],
                "all" => &missed,
                _ => missed.last().map(std::slice::from_ref).unwrap_or(&[]),
            };
            if !catch_up.is_empty() {
                tracing::info!("{origin}: catching up {} missed fire(s)", catch_up.len());
            }
            for fire in catch_up {
                fire_until_queued(&daemon, &s, &origin, *fire).await;
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
        let Some(next) = next_after(&expr, &zone, last) else {
            tracing::info!("{origin}: no more fires");
            return;
        };
        // Sleep in bounded steps and re-read the wall clock, so a clock jump
        // (suspend, NTP) neither fires early nor loses a fire, and a clock set
        // back (the last fire is now in the future) resumes from now instead
        // of waiting out the step.
        let mut stepped_back = false;
        loop {
            let now = time::now();
            if stepped_back_from(last, now) {
                last = resume_from(&origin, last, now);
                stepped_back = true;
                break;
            }
            let left = time::since(now, next).unwrap_or(Duration::ZERO);
            if left.is_zero() {
                break;
            }
            tokio::time::sleep(left.min(CLOCK_CHECK)).await;
        }
        if stepped_back {
            if let Err(e) = daemon.state.schedule_set_last_fire(&s.name, last) {
                tracing::error!("{origin}: {e}");
            }
            continue;
        }
        fire_until_queued(&daemon, &s, &origin, next).await;
        if let Err(e) = daemon.state.schedule_set_last_fire(&s.name, next) {
            tracing::error!("{origin}: {e}");
        }
        last = next;
    }
}

/// How often a sleeping schedule re-reads the wall clock: the longest it
/// takes to notice that the clock was set back.
const CLOCK_CHECK: Duration = Duration::from_secs(60);

/// A clock a little behind the last fire is NTP's ordinary correction:
/// resuming from now would fire that slot again. Beyond this it is a step.
const STEP_TOLERANCE: Duration = Duration::from_secs(2);

fn stepped_back_from(last: Timestamp, now: Timestamp) -> bool {
    time::add(now, STEP_TOLERANCE) < last
}

/// A stored last fire later than now means the clock was ahead when it fired
/// (or is behind now): resuming from it would keep the schedule silent for
/// the length of the step. It is read as now, and said so.
fn resume_from(origin: &str, last: Timestamp, now: Timestamp) -> Timestamp {
    if !stepped_back_from(last, now) {
        return last;
    }
    tracing::warn!(
        "{origin}: its last fire ({}) is later than now ({}): the clock was probably set back; firing from now on, the next fire is the next slot after {}",
        time::format(last),
        time::format(now),
        time::format(now)
    );
    now
}

/// Queues one fire, trying again (1 s, 2 s, … up to 30 s apart) while the
/// queue cannot take it (a full disk, the NATS server down): the last fire is
/// stored only once it is queued, so such a fault delays a fire instead of
/// dropping it. A fire's eventId is derived from its time, so trying again
/// can never queue it twice.
async fn fire_until_queued(daemon: &Daemon, s: &ScheduleConfig, origin: &str, fire: Timestamp) {
    let mut wait = Duration::from_secs(1);
    while !super::submit(daemon, fire_event(s, event_id(&s.name, fire), fire), origin).await {
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(30));
    }
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
            next_after(&expr, &berlin, at("2026-11-24T00:00:00Z")),
            Some(at("2026-11-24T08:00:00Z"))
        );
        assert!(Zone::parse(Some("Mars/Olympus")).is_err());
    }

    /// Daylight saving in Berlin, 2026: 02:00–03:00 does not exist on 29 March
    /// and happens twice on 25 October. cronie's rules (src/cron.rs).
    #[test]
    fn daylight_saving_gap_and_fold() {
        let berlin = Zone::parse(Some("Europe/Berlin")).unwrap();
        let expr = CronExpr::parse("30 2 * * *").unwrap();
        let fires = |from, to| fires_between(&expr, &berlin, at(from), at(to), 100);
        // The skipped 02:30 runs right after the jump, at 03:00 CEST.
        assert_eq!(
            fires("2026-03-27T12:00:00Z", "2026-03-30T12:00:00Z"),
            vec![
                at("2026-03-28T01:30:00Z"),
                at("2026-03-29T01:00:00Z"),
                at("2026-03-30T00:30:00Z")
            ]
        );
        // The repeated hour fires a fixed time once, at the first 02:30.
        assert_eq!(
            fires("2026-10-24T12:00:00Z", "2026-10-26T12:00:00Z"),
            vec![at("2026-10-25T00:30:00Z"), at("2026-10-26T01:30:00Z")]
        );
        // A daemon started inside the repeated hour neither fires nor
        // stores a slot before its start.
        assert_eq!(
            next_after(&expr, &berlin, at("2026-10-25T01:10:00Z")),
            Some(at("2026-10-26T01:30:00Z"))
        );
        let hourly = CronExpr::parse("0 * * * *").unwrap();
        let n = fires_between(
            &hourly,
            &berlin,
            at("2026-10-24T22:00:00Z"),
            at("2026-10-25T04:00:00Z"),
            100,
        );
        // A wildcard job runs by the real clock: six real hours, six fires,
        // 02:00 twice (CEST, then CET).
        assert_eq!(
            n,
            [
                "2026-10-24T23:00:00Z",
                "2026-10-25T00:00:00Z",
                "2026-10-25T01:00:00Z",
                "2026-10-25T02:00:00Z",
                "2026-10-25T03:00:00Z",
                "2026-10-25T04:00:00Z"
            ]
            .map(at)
        );
    }

    /// A Raspberry Pi without a real-time clock boots in 1970; a schedule
    /// that fired then is caught up from there once NTP steps the clock.
    #[test]
    fn catch_up_from_decades_back_looks_only_at_the_newest_fires() {
        let expr = CronExpr::parse("* * * * *").unwrap();
        let z = Zone::utc();
        let started = std::time::Instant::now();
        let f = fires_between(
            &expr,
            &z,
            at("1970-01-01T00:00:30Z"),
            at("2026-11-24T05:00:30Z"),
            100,
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        assert_eq!(f.len(), 100);
        assert_eq!(f[0], at("2026-11-24T03:21:00Z"));
        assert_eq!(f[99], at("2026-11-24T05:00:00Z"));
        // Fewer than the cap since `after`: all of them, exactly.
        let yearly = CronExpr::parse("0 0 1 1 *").unwrap();
        let f = fires_between(
            &yearly,
            &z,
            at("1970-06-01T00:00:00Z"),
            at("2026-11-24T05:00:30Z"),
            100,
        );
        assert_eq!(f.len(), 56);
        assert_eq!(f[0], at("1971-01-01T00:00:00Z"));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            /// The windowed look-back finds exactly what walking every fire does.
            #[test]
            fn windowed_catch_up_equals_the_full_walk(
                after in 1_700_000_000i64..1_800_000_000,
                span in 0i64..400_000,
                cap in 1usize..120,
                cron in prop::sample::select(vec!["*/7 * * * *", "0 * * * *", "0 9 * * 1-5", "*/13 * * * * *", "0 0 29 2 *"]),
            ) {
                let expr = CronExpr::parse(cron).unwrap();
                let z = Zone::parse(Some("Europe/Berlin")).unwrap();
                let a = time::from_unix_seconds(after).unwrap();
                let u = time::from_unix_seconds(after + span).unwrap();
                prop_assert_eq!(fires_between(&expr, &z, a, u, cap), walk(&expr, &z, a, u, cap));
            }
        }
    }

    #[test]
    fn catch_up_is_capped_to_the_newest() {
        let expr = CronExpr::parse("@hourly").unwrap();
        let z = Zone::utc();
        let f = fires_between(
            &expr,
            &z,
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
            &z,
            at("2026-11-24T00:30:00Z"),
            at("2026-11-24T05:00:00Z"),
            100,
        );
        assert_eq!(all.len(), 5);
    }
}
