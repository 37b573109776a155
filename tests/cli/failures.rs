//! Failed handlers: dead letters, their states, `autod retry` and `autod dead`.

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use crate::common::{Project, RECORD, event};

fn time(v: &Value) -> Timestamp {
    v.as_str()
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .parse()
        .unwrap()
}

/// One handler, `flaky`, with the given retry policy and script body.
fn flaky(retry: &str, body: &str) -> Project {
    Project::new()
        .open_schema("job.due")
        .config(&format!(
            r#"
            [handlers.flaky]
            on = ["job.due"]
            retry = {retry}
            "#
        ))
        .handler("flaky", body)
        .event("e1.json", event("job.due", "ev-1", json!({})))
        .event("e2.json", event("job.due", "ev-2", json!({})))
}

/// Fails until a file named `fixed` exists in the root.
const UNTIL_FIXED: &str = r#"
    echo "$AUTOD_HANDLER job.due $AUTOD_EVENT_ID $AUTOD_ATTEMPT" >> runs.log
    [ -f fixed ] && exit 0
    echo "not fixed yet" >&2
    exit 1
"#;

const HOUR: &str = r#"{ max_attempts = 5, initial = "1h", max = "2h" }"#;

#[test]
fn exit_1_is_dead_lettered_waiting_with_a_next_attempt() {
    let p = flaky(HOUR, UNTIL_FIXED);
    let before = Timestamp::now();
    p.autod(["dispatch", "e1.json"])
        .run()
        .code(1)
        .stderr_has("flaky")
        .stderr_has("exit 1: not fixed yet");
    let d = p.dead_letter("flaky", "ev-1");
    assert_eq!(d["eventId"], "ev-1");
    assert_eq!(d["handler"], "flaky");
    assert_eq!(d["state"], "waiting");
    assert_eq!(d["attempts"], 1);
    assert_eq!(d["maxAttempts"], 5);
    assert_eq!(d["lastResult"], "failed");
    assert_eq!(d["lastExitCode"], 1);
    assert_eq!(d["lastSignal"], Value::Null);
    assert!(d["stderrTail"].as_str().unwrap().contains("not fixed yet"));
    assert_eq!(d["event"]["eventId"], "ev-1");
    assert_eq!(d["firstFailedAt"], d["lastFailedAt"]);
    // One hour, jittered into [30m, 1h].
    let next = time(&d["nextAttemptAt"]);
    assert!(next > before + SignedDuration::from_mins(29), "{next}");
    assert!(
        next < Timestamp::now() + SignedDuration::from_mins(61),
        "{next}"
    );
    assert!(!p.done("ev-1", "flaky"));
    let log = p.log();
    assert_eq!(log.len(), 1, "{log:#?}");
    assert_eq!(log[0]["result"], "failed");
    assert_eq!(log[0]["exitCode"], 1);
}

#[test]
fn exit_65_is_permanent_and_not_retried() {
    let p = flaky(HOUR, "echo 'no such customer' >&2; exit 65");
    p.autod(["dispatch", "e1.json"]).run().code(1);
    let d = p.dead_letter("flaky", "ev-1");
    assert_eq!(d["state"], "permanent");
    assert_eq!(d["lastExitCode"], 65);
    assert_eq!(d["nextAttemptAt"], Value::Null);
    assert_eq!(p.logged("failed"), [("flaky".into(), "ev-1".into())]);
    assert_eq!(p.logged("dead"), [("flaky".into(), "ev-1".into())]);
    // Not due, ever: a plain retry leaves it alone.
    p.autod(["retry"]).run().code(0);
    assert_eq!(p.dead_letter("flaky", "ev-1")["attempts"], 1);
}

#[test]
fn reaching_max_attempts_exhausts_the_record() {
    let p = flaky(
        r#"{ max_attempts = 2, initial = "1h", max = "1h" }"#,
        UNTIL_FIXED,
    );
    p.autod(["dispatch", "e1.json"]).run().code(1);
    assert_eq!(p.dead_letter("flaky", "ev-1")["state"], "waiting");
    assert!(p.logged("dead").is_empty());
    p.autod(["retry", "--all"]).run().code(1);
    let d = p.dead_letter("flaky", "ev-1");
    assert_eq!(d["state"], "exhausted");
    assert_eq!(d["attempts"], 2);
    assert_eq!(d["nextAttemptAt"], Value::Null);
    assert_ne!(d["firstFailedAt"], Value::Null);
    assert!(time(&d["firstFailedAt"]) <= time(&d["lastFailedAt"]));
    assert_eq!(p.logged("dead"), [("flaky".into(), "ev-1".into())]);
    assert_eq!(p.runs(), ["flaky job.due ev-1 1", "flaky job.due ev-1 2"]);
}

#[test]
fn retry_does_nothing_when_nothing_is_due() {
    let p = flaky(HOUR, UNTIL_FIXED);
    p.autod(["dispatch", "e1.json"]).run().code(1);
    p.autod(["retry"]).run().code(0).stderr_has("nothing due");
    assert_eq!(p.runs(), ["flaky job.due ev-1 1"]);
    assert_eq!(p.dead_letter("flaky", "ev-1")["attempts"], 1);
}

#[test]
fn retry_runs_the_records_that_are_due() {
    let p = Project::new()
        .open_schema("job.due")
        .config(
            r#"
            [handlers.soon]
            on = ["job.due"]
            retry = { initial = "1ms", max = "1ms" }
            [handlers.later]
            on = ["job.due"]
            retry = { initial = "1h", max = "1h" }
            "#,
        )
        .handler("soon", &format!("{RECORD}\nexit 1"))
        .handler("later", &format!("{RECORD}\nexit 1"))
        .event("e1.json", event("job.due", "ev-1", json!({})));
    p.autod(["dispatch", "e1.json"]).run().code(1);
    p.autod(["retry"]).run().code(1);
    assert_eq!(
        p.runs(),
        [
            "later job.due ev-1 1",
            "soon job.due ev-1 1",
            "soon job.due ev-1 2"
        ]
    );
}

#[test]
fn retry_all_that_now_succeeds_clears_the_record() {
    let p = flaky(HOUR, UNTIL_FIXED);
    p.autod(["dispatch", "e1.json"]).run().code(1);
    std::fs::write(p.path("fixed"), "").unwrap();
    p.autod(["retry", "--all"]).run().code(0);
    assert!(!p.dead_letter_path("flaky", "ev-1").exists());
    assert!(p.done("ev-1", "flaky"));
    assert_eq!(p.runs(), ["flaky job.due ev-1 1", "flaky job.due ev-1 2"]);
    let ok: Vec<_> = p
        .log()
        .into_iter()
        .filter(|l| l["result"] == "ok")
        .collect();
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0]["attempt"], 2);
    // Done is done: dispatching it again skips it.
    p.autod(["dispatch", "e1.json"]).run().code(0);
    assert_eq!(p.runs().len(), 2);
}

#[test]
fn retry_by_event_id_runs_only_that_one() {
    let p = flaky(HOUR, UNTIL_FIXED);
    p.autod(["dispatch", "e1.json", "e2.json"]).run().code(1);
    std::fs::write(p.path("fixed"), "").unwrap();
    p.autod(["retry", "ev-2"]).run().code(0);
    assert!(p.dead_letter_path("flaky", "ev-1").exists());
    assert!(!p.dead_letter_path("flaky", "ev-2").exists());
    assert_eq!(
        p.runs(),
        [
            "flaky job.due ev-1 1",
            "flaky job.due ev-2 1",
            "flaky job.due ev-2 2"
        ]
    );
}

#[test]
fn retry_of_an_unknown_event_id_is_a_usage_error() {
    let p = flaky(HOUR, UNTIL_FIXED);
    p.autod(["retry", "ev-404"])
        .run()
        .code(2)
        .stderr_has("ev-404");
}

#[test]
fn retry_handler_flag_limits_the_records() {
    let p = Project::new()
        .open_schema("job.due")
        .config(
            r#"
            [handlers.one]
            on = ["job.due"]
            [handlers.two]
            on = ["job.due"]
            "#,
        )
        .handler("one", &format!("{RECORD}\nexit 1"))
        .handler("two", &format!("{RECORD}\nexit 1"))
        .event("e1.json", event("job.due", "ev-1", json!({})));
    p.autod(["dispatch", "e1.json"]).run().code(1);
    p.autod(["retry", "--all", "--handler", "two"])
        .run()
        .code(1);
    assert_eq!(
        p.runs(),
        [
            "one job.due ev-1 1",
            "two job.due ev-1 1",
            "two job.due ev-1 2"
        ]
    );
}

/// Two dead letters: `flaky` for ev-1 (waiting) and `strict` for ev-1 (permanent).
fn two_dead() -> Project {
    let p = Project::new()
        .open_schema("job.due")
        .config(
            r#"
            [handlers.flaky]
            on = ["job.due"]
            retry = { initial = "1h", max = "1h" }
            [handlers.strict]
            on = ["job.due"]
            "#,
        )
        .handler("flaky", "echo 'upstream timed out' >&2; exit 3")
        .handler("strict", "echo 'bad data' >&2; echo partial; exit 65")
        .event("e1.json", event("job.due", "ev-1", json!({"n": 1})));
    p.autod(["dispatch", "e1.json"]).run().code(1);
    p
}

#[test]
fn dead_list_json() {
    let p = two_dead();
    let out = p.autod(["dead", "list", "--json"]).run();
    out.code(0);
    let rows = out.json();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{out}");
    let summary: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r["handler"].as_str().unwrap(),
                r["eventId"].as_str().unwrap(),
                r["state"].as_str().unwrap(),
                r["attempts"].as_u64().unwrap(),
                r["lastExitCode"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("flaky", "ev-1", "waiting", 1, 3),
            ("strict", "ev-1", "permanent", 1, 65)
        ]
    );
    assert!(rows[0]["nextAttemptAt"].is_string());
    assert!(rows[1]["nextAttemptAt"].is_null());

    let only = p
        .autod(["dead", "list", "--json", "--handler", "strict"])
        .run();
    assert_eq!(only.json().as_array().unwrap().len(), 1);
}

#[test]
fn dead_list_text() {
    let p = two_dead();
    p.autod(["dead", "list"])
        .run()
        .code(0)
        .stdout_has("HANDLER")
        .stdout_has("flaky")
        .stdout_has("waiting")
        .stdout_has("permanent")
        .stdout_has("upstream timed out");
}

#[test]
fn dead_show_prints_the_record() {
    let p = two_dead();
    p.autod(["dead", "show", "ev-1", "--handler", "strict"])
        .run()
        .code(0)
        .stdout_has("strict for ev-1")
        .stdout_has("permanent")
        .stdout_has("bad data")
        .stdout_has("partial")
        .stdout_lacks("flaky");
    let out = p
        .autod(["dead", "show", "ev-1", "--handler", "flaky", "--json"])
        .run();
    out.code(0);
    let record = out.json();
    assert_eq!(record["handler"], "flaky");
    assert_eq!(record["event"]["payload"], json!({"n": 1}));
    assert_eq!(record, p.dead_letter("flaky", "ev-1"));
    p.autod(["dead", "show", "ev-404"])
        .run()
        .code(2)
        .stderr_has("ev-404");
}

#[test]
fn dead_drop_removes_the_record_but_not_the_event() {
    let p = two_dead();
    p.autod(["dead", "drop", "ev-1", "--handler", "flaky"])
        .run()
        .code(0);
    assert!(!p.dead_letter_path("flaky", "ev-1").exists());
    assert!(p.dead_letter_path("strict", "ev-1").exists());
    assert!(p.exists(&format!(
        ".autod/archive/{}/ev-1.json",
        crate::common::today()
    )));
    p.autod(["dead", "drop", "ev-1"]).run().code(0);
    assert!(!p.dead_letter_path("strict", "ev-1").exists());
    p.autod(["dead", "drop", "ev-1"])
        .run()
        .code(2)
        .stderr_has("ev-1");
    let out = p.autod(["dead", "list", "--json"]).run();
    assert_eq!(out.json(), json!([]));
}

#[test]
fn an_unreadable_dead_letter_hides_nothing_else() {
    let p = two_dead().file(".autod/dead/flaky/broken.json", "{ not a record");
    let out = p.autod(["dead", "list", "--json"]).run();
    out.code(1).stderr_has("broken.json");
    assert_eq!(out.json().as_array().unwrap().len(), 2);
    let status = p.autod(["status", "--json"]).run();
    status.code(0);
    assert_eq!(status.json()["dead"]["unreadable"], 1);
}

#[test]
fn retry_of_a_handler_no_longer_configured_says_how_to_drop_it() {
    let p = two_dead();
    let p = p.config(
        r#"
        [handlers.strict]
        on = ["job.due"]
        "#,
    );
    p.autod(["retry", "--all", "--handler", "flaky"])
        .run()
        .code(1)
        .stderr_has("no longer in autod.toml")
        .stderr_has("autod dead drop");
    assert!(p.dead_letter_path("flaky", "ev-1").exists());
}

#[test]
fn retry_of_an_unknown_event_says_so_once_and_exits_2() {
    let p = flaky(HOUR, UNTIL_FIXED);
    p.autod(["dispatch", "e1.json"]).run().code(1);
    p.autod(["retry", "p-65"])
        .run()
        .code(2)
        .stderr_has("no dead letter for eventId p-65")
        .stderr_lacks("nothing to retry");
}

#[test]
fn retry_with_an_unknown_handler_names_the_known_ones_and_exits_2() {
    let p = flaky(HOUR, UNTIL_FIXED);
    p.autod(["dispatch", "e1.json"]).run().code(1);
    p.autod(["retry", "--all", "--handler", "nosuch"])
        .run()
        .code(2)
        .stderr_has("--handler nosuch: no such handler in autod.toml (known: flaky)");
    assert_eq!(p.lines("runs.log").len(), 1, "nothing ran");
}

#[test]
fn retry_since_takes_only_recent_failures_of_a_handler() {
    let p = Project::new()
        .open_schema("job.due")
        .config("[handlers.deploy]\non = [\"job.due\"]\n[handlers.other]\non = [\"job.due\"]\n")
        .handler("deploy", &format!("{RECORD}\nexit 1"))
        .handler("other", &format!("{RECORD}\nexit 1"))
        .event("old.json", event("job.due", "old-1", json!({})))
        .event("new.json", event("job.due", "new-1", json!({})));
    p.autod(["dispatch", "old.json", "new.json"]).run().code(1);
    // Make one of deploy's failures a year old.
    let path = p.dead_letter_path("deploy", "old-1");
    let mut letter: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    letter["lastFailedAt"] = json!("2025-01-01T00:00:00.000Z");
    std::fs::write(&path, letter.to_string()).unwrap();

    let before = p.runs().len();
    p.autod(["retry", "--handler", "deploy", "--since", "1day", "--all"])
        .run()
        .code(1);
    let runs = p.runs();
    assert_eq!(runs.len(), before + 1, "one retried: {runs:?}");
    assert!(
        runs.contains(&"deploy job.due new-1 2".to_owned()),
        "{runs:?}"
    );
    p.autod(["retry", "--since", "yesterday-ish"])
        .run()
        .code(2)
        .stderr_has("--since");
}
