//! `GET /metrics` (SPEC 11) through real HTTP: a known sequence of events,
//! waited on until every outcome is on disk, then the exposition parsed and
//! every family checked for its exact values.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use rustix::process::Signal;
use serde_json::json;

use crate::helper::{Daemon, LIMIT, Project, event, wait_until};
use crate::http::{Client, JSON, Serve};

/// One sample: its name, labels, and value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed exposition.
struct Exposition {
    samples: Vec<Sample>,
}

impl Exposition {
    /// Parses the text format, checking as it goes that every sample's
    /// family was introduced by `# HELP` and `# TYPE` (histogram samples by
    /// their family's name), and that no family is introduced twice.
    fn parse(text: &str) -> Exposition {
        let mut helped = Vec::new();
        let mut typed: BTreeMap<String, String> = BTreeMap::new();
        let mut samples = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap().to_owned();
                assert!(!helped.contains(&name), "HELP twice for {name}");
                helped.push(name);
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(helped.iter().any(|h| h == name), "TYPE before HELP: {line}");
                assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
                assert!(typed.insert(name.to_owned(), kind.to_owned()).is_none());
                continue;
            }
            assert!(!line.starts_with('#') && !line.is_empty(), "{line:?}");
            let sample = parse_sample(line);
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    sample
                        .name
                        .strip_suffix(s)
                        .filter(|f| typed.get(*f).is_some_and(|k| k == "histogram"))
                })
                .unwrap_or(&sample.name);
            assert!(
                typed.contains_key(family),
                "sample without HELP/TYPE: {line}"
            );
            if typed[family].as_str() == "counter" {
                assert!(family.ends_with("_total"), "{family}");
            }
            samples.push(sample);
        }
        Exposition { samples }
    }

    /// The value of the sample with exactly these labels.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
    }

    /// Every sample of `name`, as (labels in order of their names, value).
    fn all(&self, name: &str) -> Vec<(Vec<String>, f64)> {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .map(|s| (s.labels.values().cloned().collect(), s.value))
            .collect()
    }

    /// A histogram's buckets rise to `+Inf`, which equals `_count`; the
    /// count of `labels`'s series.
    fn histogram_count(&self, family: &str, labels: &[(&str, &str)]) -> f64 {
        let bucket = format!("{family}_bucket");
        let buckets: Vec<(f64, f64)> = self
            .samples
            .iter()
            .filter(|s| {
                s.name == bucket
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(v))
                    && s.labels.len() == labels.len() + 1
            })
            .map(|s| {
                let le = &s.labels["le"];
                let bound = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                };
                (bound, s.value)
            })
            .collect();
        assert!(buckets.len() > 2, "{family} {labels:?}: no buckets");
        assert!(
            buckets
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
            "{family} buckets rise: {buckets:?}"
        );
        let (last_bound, last) = *buckets.last().unwrap();
        assert_eq!(last_bound, f64::INFINITY);
        let count = self.get(&format!("{family}_count"), labels).unwrap();
        assert_eq!(last, count, "+Inf is the count");
        let sum = self.get(&format!("{family}_sum"), labels).unwrap();
        assert!(sum >= 0.0 && sum.is_finite());
        count
    }
}

fn parse_sample(line: &str) -> Sample {
    let (series, value) = line.rsplit_once(' ').unwrap();
    let value = value.parse().unwrap_or_else(|_| panic!("{line}"));
    let Some((name, rest)) = series.split_once('{') else {
        return Sample {
            name: series.to_owned(),
            labels: BTreeMap::new(),
            value,
        };
    };
    let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("{line}"));
    let mut labels = BTreeMap::new();
    let mut chars = body.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        assert_eq!(chars.next(), Some('"'), "{line}");
        let mut v = String::new();
        loop {
            match chars.next().unwrap_or_else(|| panic!("{line}")) {
                '\\' => match chars.next() {
                    Some('n') => v.push('\n'),
                    Some(c @ ('\\' | '"')) => v.push(c),
                    other => panic!("bad escape {other:?} in {line}"),
                },
                '"' => break,
                c => v.push(c),
            }
        }
        assert!(labels.insert(key, v).is_none(), "{line}");
        match chars.next() {
            None | Some(',') => {}
            Some(c) => panic!("{c:?} after a label value in {line}"),
        }
    }
    Sample {
        name: name.to_owned(),
        labels,
        value,
    }
}

/// GET /metrics: the status, the Content-Type, the body.
fn scrape_raw(client: &Client, auth: Option<&str>) -> (u16, String, String) {
    let mut s = client.connect();
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{auth}\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_default();
    (status, content_type, body.to_owned())
}

fn scrape(client: &Client) -> Exposition {
    let (status, content_type, body) = scrape_raw(client, None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    Exposition::parse(&body)
}

const CONFIG: &str = r#"
    [serve]
    listen = "127.0.0.1:0"
    [handlers.worker]
    on = ["job.due"]
    [handlers.broken]
    on = ["job.fails"]
    "#;

fn project() -> Project {
    let p = Project::new()
        .open_schema("job.fails")
        .config(CONFIG)
        .handler("worker", r#"echo "$AUTOD_EVENT_ID" >> ran.txt"#)
        // 65: a permanent failure, dead-lettered at once (no retry to wait for).
        .handler("broken", "echo no >&2; exit 65")
        .handler("late", "true");
    p.write(
        "schemas/job.due.json",
        r#"{"type": "object", "required": ["n"], "properties": {"n": {"type": "number"}}}"#,
    );
    p
}

fn due(id: &str) -> serde_json::Value {
    let mut e = event("job.due", id);
    e["payload"] = json!({"n": 1});
    e
}

/// Waits until every event given to the daemon has its outcome on disk:
/// `runs` handler lines and `rejected` lines in the run log, nothing left in
/// the inbox or processing/.
fn settled(p: &Project, runs: usize, rejected: usize) {
    wait_until(LIMIT, "every outcome to be recorded", || {
        let log = p.log();
        let count =
            |pred: &dyn Fn(&serde_json::Value) -> bool| log.iter().filter(|l| pred(l)).count();
        p.drained()
            && count(&|l| l["handler"] != "-") == runs
            && count(&|l| l["result"] == "rejected") == rejected
    });
}

/// The sequence: 3 valid job.due by HTTP, 1 by hand into the inbox; 2
/// job.due without `n` by HTTP and 1 by hand (schema); 1 malformed JSON; 1
/// of a type the project does not know; 1 job.fails, which its handler
/// fails for good; 1 request to no route.
fn known_sequence(p: &Project, daemon: &Daemon) -> Client {
    let client = Client::of_daemon(daemon);
    for id in ["a1", "a2", "a3"] {
        assert_eq!(client.post(JSON, &due(id)).0, 202);
    }
    p.inbox_put("i1.json", &due("i1"));
    for id in ["s1", "s2"] {
        let (status, body) = client.post(JSON, &event("job.due", id));
        assert_eq!(status, 400, "{body}");
    }
    p.inbox_put("s3.json", &event("job.due", "s3"));
    let (status, _) = client.request(
        "POST",
        "/events",
        &[("Content-Type", JSON)],
        b"{\"eventType\": \"job.due\",",
    );
    assert_eq!(status, 400);
    assert_eq!(client.post(JSON, &event("who.knows", "u1")).0, 400);
    assert_eq!(client.post(JSON, &event("job.fails", "f1")).0, 202);
    assert_eq!(client.request("GET", "/no/such/path", &[], b"").0, 404);
    // worker: a1 a2 a3 i1 ok; broken: f1 failed, then dead; s3 rejected.
    settled(p, 6, 1);
    client
}

#[test]
fn a_known_sequence_gives_exact_values_in_every_family() {
    let p = project();
    let daemon = p.start(&[]);
    let client = known_sequence(&p, &daemon);
    assert!(p.dead_letter("broken", "f1").is_some());

    let m = scrape(&client);
    let accepted = "autod_events_accepted_total";
    assert_eq!(
        m.all(accepted),
        [
            (vec!["job.due".into(), "http".into()], 3.0),
            (vec!["job.due".into(), "inbox".into()], 1.0),
            (vec!["job.fails".into(), "http".into()], 1.0),
        ],
        "an event accepted by HTTP is not counted again when the daemon takes it from the inbox"
    );
    let rejected = "autod_events_rejected_total";
    assert_eq!(
        m.all(rejected),
        [
            (vec!["(unknown)".into(), "json".into()], 1.0),
            (vec!["(unknown)".into(), "unknown_type".into()], 1.0),
            (vec!["job.due".into(), "schema".into()], 3.0),
        ],
        "an eventType the project does not know is not a label"
    );
    let runs = "autod_runs_total";
    assert_eq!(
        m.get(runs, &[("handler", "worker"), ("result", "ok")]),
        Some(4.0)
    );
    assert_eq!(
        m.get(runs, &[("handler", "broken"), ("result", "failed")]),
        Some(1.0)
    );
    assert_eq!(
        m.get(runs, &[("handler", "broken"), ("result", "dead")]),
        Some(1.0)
    );
    assert_eq!(m.all(runs).len(), 3);
    let duration = "autod_run_duration_seconds";
    assert_eq!(m.histogram_count(duration, &[("handler", "worker")]), 4.0);
    assert_eq!(
        m.histogram_count(duration, &[("handler", "broken")]),
        1.0,
        "the dead line is no second run"
    );
    assert_eq!(
        m.get("autod_runs_in_flight", &[("handler", "worker")]),
        Some(0.0)
    );
    assert_eq!(
        m.get("autod_runs_in_flight", &[("handler", "broken")]),
        Some(0.0)
    );
    assert_eq!(
        m.all("autod_dead_letters"),
        [(vec!["broken".into(), "permanent".into()], 1.0)]
    );
    assert_eq!(m.get("autod_inbox_events", &[]), Some(0.0));
    assert_eq!(m.get("autod_processing_events", &[]), Some(0.0));
    let http = "autod_http_requests_total";
    assert_eq!(
        m.all(http),
        [
            (vec!["(unmatched)".into(), "404".into()], 1.0),
            (vec!["/events".into(), "202".into()], 4.0),
            (vec!["/events".into(), "400".into()], 4.0),
        ],
        "a scrape is counted once it is answered"
    );
    assert_eq!(
        m.histogram_count(
            "autod_http_request_duration_seconds",
            &[("route", "/events")]
        ),
        8.0
    );
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        m.get("autod_build_info", &[("version", version)]),
        Some(1.0)
    );

    let again = scrape(&client);
    assert_eq!(
        again.get(http, &[("route", "/metrics"), ("status", "200")]),
        Some(1.0)
    );
}

#[test]
fn counters_survive_a_reload() {
    let p = project();
    let daemon = p.start(&[]);
    let client = known_sequence(&p, &daemon);
    let before = scrape(&client);

    // A config that differs (`late`'s script is there already), so the
    // reload builds new engines and intakes.
    p.set_config(&format!("{CONFIG}\n[handlers.late]\non = [\"job.due\"]\n"));
    daemon.signal(Signal::HUP);
    wait_until(LIMIT, "the reload to be logged", || {
        daemon.stderr().contains("reloaded autod.toml")
    });
    let after = scrape(&client);
    for family in [
        "autod_events_accepted_total",
        "autod_events_rejected_total",
        "autod_runs_total",
        "autod_run_duration_seconds_count",
        "autod_dead_letters",
    ] {
        assert_eq!(before.all(family), after.all(family), "{family}");
    }

    assert_eq!(client.post(JSON, &due("b1")).0, 202);
    settled(&p, 8, 1);
    let m = scrape(&client);
    let runs = "autod_runs_total";
    assert_eq!(
        m.get(runs, &[("handler", "worker"), ("result", "ok")]),
        Some(5.0)
    );
    assert_eq!(
        m.get(runs, &[("handler", "late"), ("result", "ok")]),
        Some(1.0)
    );
    assert_eq!(
        m.get(
            "autod_events_accepted_total",
            &[("event_type", "job.due"), ("intake", "http")]
        ),
        Some(4.0)
    );
}

#[test]
fn standalone_serve_has_intake_metrics_and_no_runs() {
    let p = project();
    let serve = Serve::start(&p, &["--listen", "127.0.0.1:0"]);
    assert_eq!(serve.post(JSON, &due("a1")).0, 202);
    assert_eq!(serve.post(JSON, &event("job.due", "s1")).0, 400);
    // A batch is all or nothing: the valid one is refused with the other.
    let batch = json!([due("b1"), event("job.due", "b2")]);
    assert_eq!(serve.post(JSON, &batch).0, 400);
    let m = scrape(&serve);
    assert_eq!(
        m.all("autod_events_accepted_total"),
        [(vec!["job.due".into(), "http".into()], 1.0)]
    );
    assert_eq!(
        m.all("autod_events_rejected_total"),
        [
            (vec!["job.due".into(), "batch".into()], 1.0),
            (vec!["job.due".into(), "schema".into()], 2.0),
        ]
    );
    assert_eq!(
        m.get("autod_inbox_events", &[]),
        Some(1.0),
        "nobody delivers it"
    );
    assert!(m.all("autod_runs_total").is_empty());
    assert!(m.all("autod_run_duration_seconds_count").is_empty());
}

#[test]
fn metrics_need_the_token_when_one_is_set() {
    let p = Project::new()
        .open_schema("job.due")
        .config(
            r#"
            [serve]
            token_env = ["METRICS_TOKEN"]
            [handlers.worker]
            on = ["job.due"]
            "#,
        )
        .handler("worker", "true");
    let serve = Serve::start_with_env(
        &p,
        &["--listen", "127.0.0.1:0"],
        &[("METRICS_TOKEN", "s3cret")],
    );
    let (status, _, body) = scrape_raw(&serve, None);
    assert_eq!(status, 401, "{body}");
    assert!(!body.contains("autod_"), "{body}");
    let (status, _, body) = scrape_raw(&serve, Some("Bearer s3cret"));
    assert_eq!(status, 200, "{body}");
    let m = Exposition::parse(&body);
    assert_eq!(
        m.get(
            "autod_http_requests_total",
            &[("route", "/metrics"), ("status", "401")]
        ),
        Some(1.0)
    );
    // Probes stay open: an orchestrator has no token.
    assert_eq!(serve.request("GET", "/healthz", &[], b"").0, 200);
}

#[test]
fn parser_reads_escaped_label_values() {
    let s = parse_sample(r#"x_total{a="q\"b\\c\nd",le="+Inf"} 3"#);
    assert_eq!(s.labels["a"], "q\"b\\c\nd");
    assert_eq!(s.labels["le"], "+Inf");
    assert_eq!(s.value, 3.0);
}

#[test]
fn a_running_handler_is_in_flight_and_its_event_in_processing() {
    let p = Project::new()
        .open_schema("job.due")
        .config(
            r#"
            [serve]
            listen = "127.0.0.1:0"
            [handlers.slow]
            on = ["job.due"]
            "#,
        )
        // Runs until the test lets it finish: the state in between is the point.
        .handler(
            "slow",
            "touch started; while [ ! -e release ]; do sleep 0.02; done",
        );
    let daemon = p.start(&[]);
    let client = Client::of_daemon(&daemon);
    assert_eq!(client.post(JSON, &event("job.due", "r1")).0, 202);
    wait_until(LIMIT, "the handler to start", || p.exists("started"));
    let m = scrape(&client);
    assert_eq!(
        m.get("autod_runs_in_flight", &[("handler", "slow")]),
        Some(1.0)
    );
    assert_eq!(m.get("autod_processing_events", &[]), Some(1.0));
    assert_eq!(m.get("autod_inbox_events", &[]), Some(0.0));
    assert!(m.all("autod_runs_total").is_empty(), "not finished yet");
    p.write("release", "");
    settled(&p, 1, 0);
    let m = scrape(&client);
    assert_eq!(
        m.get("autod_runs_in_flight", &[("handler", "slow")]),
        Some(0.0)
    );
    assert_eq!(m.get("autod_processing_events", &[]), Some(0.0));
    assert_eq!(
        m.get("autod_runs_total", &[("handler", "slow"), ("result", "ok")]),
        Some(1.0)
    );
}
