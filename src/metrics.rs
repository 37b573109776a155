//! Metrics (SPEC 11, `GET /metrics`): what this process counted, in the
//! Prometheus text exposition format 0.0.4.
//!
//! One registry per process, a `static`: a SIGHUP reload rebuilds engines and
//! intakes but not the process, so no counter starts over. Counting is a few
//! map updates under a mutex at the seams where an outcome is already
//! decided: [`run_recorded`] beside the run-log write (every run's outcome
//! goes through [`crate::log::RunLog::record`]), [`run_started`] around the
//! handler process, [`event_accepted`] / [`event_rejected`] at the intake
//! doors, [`track_http`] as a layer on the router. Gauges of what is on disk
//! (inbox, processing, dead letters) are computed when scraped, by
//! [`crate::state::census`], so they are right even for files another
//! process wrote; with `[queue] backend = "nats"`, so are the queue's
//! (connected, each handler's consumer lag), asked of the server by the
//! scrape with a short timeout (`queue/producer.rs`).
//!
//! Label values are bounded: handler names come from autod.toml, an
//! eventType is used only when the project knows it (a schema or a route,
//! else `(unknown)`), routes are the router's patterns (an unmatched path is
//! `(unmatched)`), reasons and results are fixed sets. As a last guard a
//! family takes at most [`MAX_SERIES`] label sets; later ones are counted
//! under `(other)`.
//!
//! Not done here: a scrape of another process (`autod dispatch` counts into
//! its own registry, which nobody reads), and persistence across restarts
//! (Prometheus handles a counter that resets).
//!
//! Written by hand rather than with the `prometheus-client` crate: the text
//! format is a few lines, and the crate would bring its own registry types
//! into every seam for six families.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

use crate::event::Violation;
use crate::log::{RunLine, RunResult};
use crate::schema::Invalid;
use crate::state::StateDir;
use crate::state::census::DeadCensus;

/// The `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Scrapes served at once: each lists folders, and one is enough.
pub const CONCURRENT_SCRAPES: usize = 2;

/// Label sets one family takes before new ones are counted as `(other)`.
pub const MAX_SERIES: usize = 1000;

/// The label value of an eventType the project does not know.
pub const UNKNOWN_TYPE: &str = "(unknown)";

/// The `route` of a request no route matched.
pub const UNMATCHED: &str = "(unmatched)";

/// Handlers run from milliseconds (a curl) to minutes (a build, a backup).
const RUN_BUCKETS: [f64; 15] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// Requests take under a millisecond (`/healthz`) to a batch's fsyncs.
const HTTP_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Where an event entered this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// `POST /events`.
    Http,
    /// The daemon's inbox consumer, for an event no other door of this
    /// process counted: `autod send`, a file dropped in by hand, a watch, a
    /// schedule, a follow-up, a replay, what the last run left.
    Inbox,
}

impl Door {
    fn as_str(self) -> &'static str {
        match self {
            Door::Http => "http",
            Door::Inbox => "inbox",
        }
    }
}

struct Family {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
}

const ACCEPTED: Family = Family {
    name: "autod_events_accepted_total",
    help: "Events accepted (validated, routed, durable), by eventType and the door they came in by.",
    labels: &["event_type", "intake"],
};
const REJECTED: Family = Family {
    name: "autod_events_rejected_total",
    help: "Events refused, by eventType and reason.",
    labels: &["event_type", "reason"],
};
const RUNS: Family = Family {
    name: "autod_runs_total",
    help: "Handler runs, by handler and run-log result.",
    labels: &["handler", "result"],
};
const RUN_DURATION: Family = Family {
    name: "autod_run_duration_seconds",
    help: "How long handler runs took, by handler.",
    labels: &["handler"],
};
const IN_FLIGHT: Family = Family {
    name: "autod_runs_in_flight",
    help: "Handler processes running now, by handler.",
    labels: &["handler"],
};
const HTTP_REQUESTS: Family = Family {
    name: "autod_http_requests_total",
    help: "HTTP requests answered, by route pattern and status code.",
    labels: &["route", "status"],
};
const HTTP_DURATION: Family = Family {
    name: "autod_http_request_duration_seconds",
    help: "How long HTTP requests took to answer, by route pattern.",
    labels: &["route"],
};
const DEAD: Family = Family {
    name: "autod_dead_letters",
    help: "Dead letters in .autod/dead/ now, by handler and state.",
    labels: &["handler", "state"],
};
const INBOX: Family = Family {
    name: "autod_inbox_events",
    help: "Events in .autod/inbox/ now, not claimed yet.",
    labels: &[],
};
const PROCESSING: Family = Family {
    name: "autod_processing_events",
    help: "Events in .autod/processing/ now: claimed and being delivered, waiting for a slot, or held.",
    labels: &[],
};
const QUEUE_CONNECTED: Family = Family {
    name: "autod_queue_connected",
    help: "1 while this process is connected to the NATS server of [queue], else 0.",
    labels: &[],
};
const QUEUE_LAG: Family = Family {
    name: "autod_queue_consumer_lag",
    help: "Messages of the NATS stream a handler's consumer has not acked yet (pending + unacked), by handler.",
    labels: &["handler"],
};
const BUILD: Family = Family {
    name: "autod_build_info",
    help: "Always 1; the version of the autod that serves these metrics.",
    labels: &["version"],
};

type Series<T> = BTreeMap<Vec<String>, T>;

#[derive(Debug, Clone)]
struct Histogram {
    /// Per bucket, observations at or below its bound (not cumulative yet).
    counts: Vec<u64>,
    count: u64,
    /// In microseconds, so that sums of millisecond runs stay exact.
    sum_micros: u128,
}

impl Histogram {
    fn new(buckets: usize) -> Histogram {
        Histogram {
            counts: vec![0; buckets],
            count: 0,
            sum_micros: 0,
        }
    }

    fn observe(&mut self, bounds: &[f64], d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = bounds.iter().position(|b| secs <= *b) {
            self.counts[i] += 1;
        }
        self.count += 1;
        self.sum_micros += d.as_micros();
    }
}

#[derive(Default)]
struct Counts {
    accepted: Series<u64>,
    rejected: Series<u64>,
    runs: Series<u64>,
    run_duration: Series<Histogram>,
    in_flight: Series<i64>,
    http: Series<u64>,
    http_duration: Series<Histogram>,
}

struct Registry {
    counts: Mutex<Counts>,
    /// Set by `autod run`: its inbox consumer takes the events the HTTP door
    /// wrote, and must not count them a second time.
    consumer: AtomicBool,
    /// eventIds a door of this process counted and put in the inbox, until
    /// the consumer takes them.
    counted_at_door: Mutex<HashSet<String>>,
    census: Mutex<DeadCensus>,
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| Registry {
    counts: Mutex::default(),
    consumer: AtomicBool::new(false),
    counted_at_door: Mutex::default(),
    census: Mutex::new(DeadCensus::default()),
});

/// Bounds [`Registry::counted_at_door`] should the consumer stop taking
/// events (it is stopping): past it an event is counted twice, not held.
const MAX_PENDING_IDS: usize = 100_000;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while counting leaves numbers, not broken invariants.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `labels` as the series key, or `(other)` for each when the family is full.
fn key<T>(series: &Series<T>, labels: &[&str]) -> Vec<String> {
    let k: Vec<String> = labels.iter().map(|s| (*s).to_owned()).collect();
    if series.len() >= MAX_SERIES && !series.contains_key(&k) {
        return labels.iter().map(|_| "(other)".to_owned()).collect();
    }
    k
}

fn bump(series: &mut Series<u64>, labels: &[&str]) {
    let k = key(series, labels);
    *series.entry(k).or_default() += 1;
}

fn observe(series: &mut Series<Histogram>, bounds: &[f64], labels: &[&str], d: Duration) {
    let k = key(series, labels);
    series
        .entry(k)
        .or_insert_with(|| Histogram::new(bounds.len()))
        .observe(bounds, d);
}

/// `autod run` delivers the inbox in this process.
pub fn consumer_in_process() {
    REGISTRY.consumer.store(true, Ordering::SeqCst);
}

fn event_accepted(event_type: &str, door: Door) {
    bump(
        &mut lock(&REGISTRY.counts).accepted,
        &[event_type, door.as_str()],
    );
}

/// An event a door of this process published to the NATS stream: no consumer
/// of this process takes it from the inbox, so nothing is remembered.
pub fn event_published(event_type: &str, door: Door) {
    event_accepted(event_type, door);
}

/// An event a door is about to write to the inbox; made before the write,
/// since the consumer may take the file the moment it is there. Counted as
/// accepted by [`Queueing::queued`]; dropped without it, it is forgotten.
pub struct Queueing {
    event_type: String,
    door: Door,
    event_id: Option<String>,
}

impl Queueing {
    /// `event_type` is already bounded (the eventType, or [`UNKNOWN_TYPE`]).
    pub fn new(event_type: &str, door: Door, event_id: &str) -> Queueing {
        let mut remembered = None;
        if REGISTRY.consumer.load(Ordering::SeqCst) {
            let mut ids = lock(&REGISTRY.counted_at_door);
            if ids.len() < MAX_PENDING_IDS && ids.insert(event_id.to_owned()) {
                remembered = Some(event_id.to_owned());
            }
        }
        Queueing {
            event_type: event_type.to_owned(),
            door,
            event_id: remembered,
        }
    }

    /// The event is in the inbox.
    pub fn queued(mut self) {
        event_accepted(&self.event_type, self.door);
        // Left in the set, for the consumer to find.
        self.event_id = None;
    }
}

impl Drop for Queueing {
    fn drop(&mut self) {
        if let Some(id) = &self.event_id {
            lock(&REGISTRY.counted_at_door).remove(id);
        }
    }
}

/// The daemon's consumer took an event for delivery: counted as accepted at
/// the inbox, unless a door of this process counted it already.
pub fn event_delivered(event_type: &str, event_id: &str) {
    if lock(&REGISTRY.counted_at_door).remove(event_id) {
        return;
    }
    event_accepted(event_type, Door::Inbox);
}

/// An event refused, for `reason` (see [`reason`]).
pub fn event_rejected(event_type: &str, reason: &str) {
    bump(&mut lock(&REGISTRY.counts).rejected, &[event_type, reason]);
}

/// Why an event was refused, as one of a few words: `json` (not JSON, or
/// empty), `too_large`, `envelope` (the event's own fields), `unknown_type`
/// (no schema for its eventType while one is required), `unrouted` (no
/// handler takes it), `schema` (its payload fails its schema),
/// `schema_broken` (a schema of the project cannot be used), `batch` (valid,
/// but refused with the rest of its all-or-nothing batch).
pub fn reason(invalid: &Invalid) -> &'static str {
    match invalid {
        Invalid::Schema(_) => "schema_broken",
        Invalid::Rejected(v) => violation_reason(v.first()),
    }
}

/// [`reason`] of violations: the first one decides (later ones are of the
/// same check, which stops the event at the first step that fails).
pub fn violation_reason(v: Option<&Violation>) -> &'static str {
    let Some(v) = v else {
        return "envelope";
    };
    let type_pointer = matches!(v.pointer.as_str(), "/eventType" | "/type");
    match v.keyword.as_str() {
        "json" => "json",
        "maxEventBytes" | "maxBatchBytes" => "too_large",
        "route" if type_pointer => "unrouted",
        "schema" if type_pointer => "unknown_type",
        _ if v.pointer.starts_with("/payload") || v.pointer.starts_with("/data") => "schema",
        _ => "envelope",
    }
}

/// Every run-log line: a run of a handler is counted by its result, and its
/// duration observed when it ran. Lines of events (`-`: rejected, held) are
/// counted by the doors, which know why.
pub fn run_recorded(line: &RunLine) {
    if line.handler == "-" {
        return;
    }
    let mut counts = lock(&REGISTRY.counts);
    bump(&mut counts.runs, &[&line.handler, line.result.as_str()]);
    if let Some(ms) = line.duration_ms
        && line.result != RunResult::Skipped
    {
        observe(
            &mut counts.run_duration,
            &RUN_BUCKETS,
            &[&line.handler],
            Duration::from_millis(ms),
        );
    }
}

/// A handler process is running until the guard is dropped (also when the
/// run's future is, at shutdown).
pub fn run_started(handler: &str) -> InFlight {
    let mut counts = lock(&REGISTRY.counts);
    let k = key(&counts.in_flight, &[handler]);
    *counts.in_flight.entry(k.clone()).or_default() += 1;
    InFlight(k)
}

#[must_use = "the run counts as in flight only while the guard lives"]
pub struct InFlight(Vec<String>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(n) = lock(&REGISTRY.counts).in_flight.get_mut(&self.0) {
            *n -= 1;
        }
    }
}

/// Router middleware: counts and times every answer by its route pattern
/// (`/events`, never the raw path, which a client chooses).
pub async fn track_http(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_owned(), |m| m.as_str().to_owned());
    let start = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    let mut counts = lock(&REGISTRY.counts);
    bump(&mut counts.http, &[&route, &status]);
    observe(
        &mut counts.http_duration,
        &HTTP_BUCKETS,
        &[&route],
        start.elapsed(),
    );
    response
}

/// The exposition: the counters, and the gauges of `state` as they are now.
/// Blocking (it lists folders).
pub fn render(state: &StateDir) -> String {
    render_with_queue(state, None)
}

/// [`render`], with the NATS queue's gauges when there is one (read before,
/// by the async side: see `serve.rs`).
pub fn render_with_queue(
    state: &StateDir,
    queue: Option<&crate::queue::producer::Census>,
) -> String {
    let dead = lock(&REGISTRY.census).count(state);
    let inbox = crate::state::census::inbox_depth(state);
    let processing = crate::state::census::processing_depth(state);
    let counts = lock(&REGISTRY.counts);
    let mut out = String::with_capacity(4096);
    counter(&mut out, &ACCEPTED, &counts.accepted);
    counter(&mut out, &REJECTED, &counts.rejected);
    counter(&mut out, &RUNS, &counts.runs);
    histogram(&mut out, &RUN_DURATION, &RUN_BUCKETS, &counts.run_duration);
    let in_flight: Series<u64> = counts
        .in_flight
        .iter()
        .map(|(k, v)| (k.clone(), u64::try_from(*v).unwrap_or(0)))
        .collect();
    gauge(&mut out, &IN_FLIGHT, &in_flight);
    counter(&mut out, &HTTP_REQUESTS, &counts.http);
    histogram(
        &mut out,
        &HTTP_DURATION,
        &HTTP_BUCKETS,
        &counts.http_duration,
    );
    drop(counts);
    let dead: Series<u64> = dead
        .into_iter()
        .map(|((handler, state), n)| (vec![handler, state.to_owned()], n))
        .collect();
    gauge(&mut out, &DEAD, &dead);
    gauge(&mut out, &INBOX, &BTreeMap::from([(vec![], inbox)]));
    gauge(
        &mut out,
        &PROCESSING,
        &BTreeMap::from([(vec![], processing)]),
    );
    if let Some(queue) = queue {
        gauge(
            &mut out,
            &QUEUE_CONNECTED,
            &BTreeMap::from([(vec![], u64::from(queue.connected))]),
        );
        let lag: Series<u64> = queue
            .lag
            .iter()
            .map(|(handler, n)| (vec![handler.clone()], *n))
            .collect();
        gauge(&mut out, &QUEUE_LAG, &lag);
    }
    let version = vec![env!("CARGO_PKG_VERSION").to_owned()];
    gauge(&mut out, &BUILD, &BTreeMap::from([(version, 1)]));
    out
}

fn header(out: &mut String, f: &Family, kind: &str) {
    let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(f.help));
    let _ = writeln!(out, "# TYPE {} {kind}", f.name);
}

fn counter(out: &mut String, f: &Family, series: &Series<u64>) {
    header(out, f, "counter");
    samples(out, f.name, f.labels, series);
}

fn gauge(out: &mut String, f: &Family, series: &Series<u64>) {
    header(out, f, "gauge");
    samples(out, f.name, f.labels, series);
}

fn samples(out: &mut String, name: &str, names: &[&str], series: &Series<u64>) {
    for (values, n) in series {
        let _ = writeln!(out, "{name}{} {n}", labels(names, values, None));
    }
}

fn histogram(out: &mut String, f: &Family, bounds: &[f64], series: &Series<Histogram>) {
    header(out, f, "histogram");
    for (values, h) in series {
        let mut cumulative = 0;
        for (bound, n) in bounds.iter().zip(&h.counts) {
            cumulative += n;
            let le = format!("{bound}");
            let _ = writeln!(
                out,
                "{}_bucket{} {cumulative}",
                f.name,
                labels(f.labels, values, Some(&le))
            );
        }
        let all = labels(f.labels, values, Some("+Inf"));
        let plain = labels(f.labels, values, None);
        let _ = writeln!(out, "{}_bucket{all} {}", f.name, h.count);
        let _ = writeln!(out, "{}_sum{plain} {}", f.name, seconds_text(h.sum_micros));
        let _ = writeln!(out, "{}_count{plain} {}", f.name, h.count);
    }
}

/// Microseconds as seconds, exactly (no float rounding of a sum).
fn seconds_text(micros: u128) -> String {
    let (s, frac) = (micros / 1_000_000, micros % 1_000_000);
    if frac == 0 {
        return s.to_string();
    }
    let frac = format!("{frac:06}");
    format!("{s}.{}", frac.trim_end_matches('0'))
}

/// `{a="x",b="y"}`, with `le` last for a bucket; empty without labels.
fn labels(names: &[&str], values: &[String], le: Option<&str>) -> String {
    let mut pairs: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(n, v)| format!("{n}=\"{}\"", escape_value(v)))
        .collect();
    if let Some(le) = le {
        pairs.push(format!("le=\"{le}\""));
    }
    if pairs.is_empty() {
        return String::new();
    }
    format!("{{{}}}", pairs.join(","))
}

/// A label value: backslash, double quote and newline are escaped.
fn escape_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// HELP text: backslash and newline are escaped (quotes are not).
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_value(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_value("two\nlines"), "two\\nlines");
        assert_eq!(
            labels(&["handler"], &["we\"ird\\".to_owned()], Some("+Inf")),
            r#"{handler="we\"ird\\",le="+Inf"}"#
        );
        assert_eq!(labels(&[], &[], None), "");
        assert_eq!(escape_help("a\\b\nc \"q\""), "a\\\\b\\nc \"q\"");
    }

    #[test]
    fn a_histogram_is_cumulative_with_exact_sums() {
        let mut series = Series::new();
        for ms in [3, 5, 40, 2_000, 400_000] {
            observe(&mut series, &RUN_BUCKETS, &["h"], Duration::from_millis(ms));
        }
        let mut out = String::new();
        histogram(&mut out, &RUN_DURATION, &RUN_BUCKETS, &series);
        let line = |s: &str| out.lines().any(|l| l == s);
        assert!(line("# TYPE autod_run_duration_seconds histogram"), "{out}");
        // 3 ms and 5 ms are both at or below 0.005 (the bound is inclusive).
        assert!(
            line(r#"autod_run_duration_seconds_bucket{handler="h",le="0.005"} 2"#),
            "{out}"
        );
        assert!(line(
            r#"autod_run_duration_seconds_bucket{handler="h",le="0.05"} 3"#
        ));
        assert!(line(
            r#"autod_run_duration_seconds_bucket{handler="h",le="300"} 4"#
        ));
        assert!(line(
            r#"autod_run_duration_seconds_bucket{handler="h",le="+Inf"} 5"#
        ));
        assert!(line(
            r#"autod_run_duration_seconds_sum{handler="h"} 402.048"#
        ));
        assert!(line(r#"autod_run_duration_seconds_count{handler="h"} 5"#));
    }

    #[test]
    fn sums_print_as_exact_decimals() {
        assert_eq!(seconds_text(0), "0");
        assert_eq!(seconds_text(1_000_000), "1");
        assert_eq!(seconds_text(1_500), "0.0015");
        assert_eq!(seconds_text(12_345_678), "12.345678");
    }

    #[test]
    fn a_full_family_counts_new_label_sets_as_other() {
        let mut series = Series::new();
        for i in 0..MAX_SERIES {
            bump(&mut series, &[&format!("t{i}"), "json"]);
        }
        bump(&mut series, &["t0", "json"]);
        bump(&mut series, &["new", "json"]);
        bump(&mut series, &["newer", "schema"]);
        assert_eq!(series.len(), MAX_SERIES + 1);
        assert_eq!(series[&vec!["t0".to_owned(), "json".to_owned()]], 2);
        assert_eq!(series[&vec!["(other)".to_owned(), "(other)".to_owned()]], 2);
    }

    #[test]
    fn reasons_come_from_the_first_violation() {
        let r = |p: &str, k: &str| violation_reason(Some(&Violation::new(p, k, "m")));
        assert_eq!(r("", "json"), "json");
        assert_eq!(r("", "maxEventBytes"), "too_large");
        assert_eq!(r("/eventType", "route"), "unrouted");
        assert_eq!(r("/type", "schema"), "unknown_type");
        assert_eq!(r("/payload/n", "type"), "schema");
        assert_eq!(r("/data", "required"), "schema");
        assert_eq!(r("/eventId", "pattern"), "envelope");
        assert_eq!(r("", "type"), "envelope");
        assert_eq!(violation_reason(None), "envelope");
    }

    #[test]
    fn every_family_has_help_and_type_once() {
        let d = tempfile::tempdir().unwrap();
        let state = StateDir::new(d.path());
        let text = render(&state);
        for f in [
            &ACCEPTED,
            &REJECTED,
            &RUNS,
            &RUN_DURATION,
            &IN_FLIGHT,
            &HTTP_REQUESTS,
            &HTTP_DURATION,
            &DEAD,
            &INBOX,
            &PROCESSING,
            &BUILD,
        ] {
            let help = format!("# HELP {} ", f.name);
            let kind = format!("# TYPE {} ", f.name);
            assert_eq!(text.matches(&help).count(), 1, "{}", f.name);
            assert_eq!(text.matches(&kind).count(), 1, "{}", f.name);
            assert!(f.name.starts_with("autod_"));
        }
        assert!(text.contains("\nautod_inbox_events 0\n"), "{text}");
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn the_queue_families_are_there_only_with_a_queue() {
        let d = tempfile::tempdir().unwrap();
        let state = StateDir::new(d.path());
        let folder = render(&state);
        assert!(!folder.contains("autod_queue_"), "{folder}");
        let census = crate::queue::producer::Census {
            connected: true,
            lag: BTreeMap::from([("worker".to_owned(), 3), ("audit".to_owned(), 0)]),
        };
        let nats = render_with_queue(&state, Some(&census));
        for f in [&QUEUE_CONNECTED, &QUEUE_LAG] {
            assert_eq!(nats.matches(&format!("# TYPE {} gauge", f.name)).count(), 1);
        }
        let line = |l: &str| nats.lines().any(|x| x == l);
        assert!(line("autod_queue_connected 1"), "{nats}");
        assert!(
            line(r#"autod_queue_consumer_lag{handler="worker"} 3"#),
            "{nats}"
        );
        assert!(
            line(r#"autod_queue_consumer_lag{handler="audit"} 0"#),
            "{nats}"
        );
        let down = render_with_queue(&state, Some(&crate::queue::producer::Census::default()));
        assert!(
            down.lines().any(|x| x == "autod_queue_connected 0"),
            "{down}"
        );
        assert!(!down.contains("autod_queue_consumer_lag{"), "{down}");
    }
}
