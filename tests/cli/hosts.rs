//! The `host` of run-log lines (SPEC 10) and `autod log|trace --host`, where
//! no server is needed: `dispatch` runs its pairs here whatever the backend,
//! and a merged run log is only a file.

use serde_json::{Value, json};

use crate::common::{Project, RECORD, event};

/// `[queue] backend = "nats"` on a port nothing listens on: nothing here
/// connects, so a test that needs a server would fail, not hang.
const ON_NATS: &str = r#"
[handlers.worker]
on = ["job.due"]

[queue]
backend = "nats"
url = "nats://127.0.0.1:9"
"#;

fn on_nats() -> Project {
    Project::new()
        .open_schema("job.due")
        .config(ON_NATS)
        .handler("worker", RECORD)
        .event("e1.json", event("job.due", "e1", json!({})))
}

fn node_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn with_nats_every_line_names_its_host_the_node_name_or_autod_host() {
    let p = on_nats().event("e2.json", event("job.due", "e2", json!({})));
    p.autod(["dispatch", "e1.json"]).run().code(0);
    p.autod(["dispatch", "e2.json"])
        .env("AUTOD_HOST", "worker-b.lan")
        .run()
        .code(0);
    let log = p.log();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0]["host"], node_name().as_str(), "{}", log[0]);
    assert_eq!(log[1]["host"], "worker-b.lan", "{}", log[1]);
    // Right after the four fixed keys, so a merged log reads by host.
    let raw = p.log_raw();
    assert!(
        raw[1].starts_with(r#"{"ts":"#)
            && raw[1].contains(r#""result":"ok","host":"worker-b.lan","#),
        "{}",
        raw[1]
    );
}

#[test]
fn the_folder_backend_writes_no_host_whatever_autod_host_says() {
    let p = Project::new()
        .open_schema("job.due")
        .config("[handlers.worker]\non = [\"job.due\"]\n")
        .handler("worker", RECORD)
        .event("e1.json", event("job.due", "e1", json!({})))
        .event("e2.json", event("job.due", "e2", json!({})));
    p.autod(["dispatch", "e1.json"])
        .env("AUTOD_HOST", "a")
        .run()
        .code(0);
    // Not read at all: one machine has nothing to tell apart.
    p.autod(["dispatch", "e2.json"])
        .env("AUTOD_HOST", "not a host/name")
        .run()
        .code(0);
    let log = p.log();
    assert_eq!(log.len(), 2, "{log:?}");
    for line in &log {
        assert!(line.get("host").is_none(), "{line}");
    }
}

#[test]
fn a_bad_autod_host_is_a_config_error_naming_the_variable() {
    let p = on_nats();
    let long = "x".repeat(65);
    for bad in ["", "two words", "a/b", "höst", long.as_str()] {
        for args in [
            &["dispatch", "e1.json"][..],
            &["send", "e1.json"],
            &["run"],
            &["log"],
        ] {
            let out = p.autod(args).env("AUTOD_HOST", bad).run();
            out.code(2)
                .stderr_has(&format!("AUTOD_HOST={bad:?}: not a host name"))
                .stderr_has("1-64 characters of A-Z a-z 0-9 . _ -")
                .stderr_has("unset it to use this machine's name");
            assert!(out.stdout.is_empty(), "{args:?}: {out}");
        }
    }
    assert!(!p.exists(".autod/log/autod.log"), "a handler ran");
    assert!(!p.exists("runs.log"), "a handler ran");
}

/// Two hosts' run logs merged into one file, as the README says to do.
fn merged() -> Project {
    let line = |ts: &str, id: &str, handler: &str, result: &str, host: &str, extra: Value| {
        let mut v = json!({"ts": ts, "eventId": id, "handler": handler, "result": result, "host": host, "eventType": "job.due"});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v.to_string() + "\n"
    };
    let text = [
        line(
            "2026-11-24T09:00:00.001Z",
            "e1",
            "worker",
            "failed",
            "a",
            json!({"attempt": 1, "error": "disk full"}),
        ),
        line(
            "2026-11-24T09:00:00.002Z",
            "e1",
            "audit",
            "ok",
            "b",
            json!({"attempt": 1}),
        ),
        line(
            "2026-11-24T09:00:01.003Z",
            "e1",
            "worker",
            "ok",
            "b",
            json!({"attempt": 2}),
        ),
        line(
            "2026-11-24T09:00:02.004Z",
            "e2",
            "worker",
            "ok",
            "a",
            json!({"attempt": 1}),
        ),
    ]
    .concat();
    Project::new()
        .config("[handlers.worker]\non = [\"job.due\"]\n[handlers.audit]\non = [\"job.due\"]\n")
        .file(".autod/log/autod.log", text)
}

#[test]
fn log_shows_the_host_after_the_time_and_filters_by_it() {
    let p = merged();
    let all = p.autod(["log"]).run();
    all.code(0);
    let lines: Vec<&str> = all.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{all}");
    assert!(
        lines[0].starts_with("2026-11-24T09:00:00.001Z  a            failed   worker"),
        "{}",
        lines[0]
    );
    let b = p.autod(["log", "--host", "b"]).run();
    b.code(0);
    let ids: Vec<&str> = b.stdout.lines().collect();
    assert_eq!(ids.len(), 2, "{b}");
    assert!(ids.iter().all(|l| l.contains("  b  ")), "{b}");
    let json = p.autod(["log", "--host", "a", "--json"]).run();
    let runs = json.json_lines();
    assert_eq!(runs.len(), 2, "{json}");
    assert!(runs.iter().all(|r| r["host"] == "a"), "{json}");
    // With the other filters, and a host no line has: nothing, not an error.
    let ok_on_a = p
        .autod(["log", "--host", "a", "--result", "ok", "--json"])
        .run();
    let runs = ok_on_a.json_lines();
    assert_eq!(runs.len(), 1, "{ok_on_a}");
    assert_eq!(runs[0]["eventId"], "e2");
    let none = p.autod(["log", "--host", "c"]).run();
    none.code(0);
    assert!(none.stdout.is_empty(), "{none}");
}

#[test]
fn trace_shows_which_host_ran_each_run_and_filters_by_it() {
    let p = merged();
    let all = p.autod(["trace", "e1"]).run();
    all.code(0);
    assert!(
        all.stdout.contains("worker failed  on a  attempt 1"),
        "{all}"
    );
    assert!(all.stdout.contains("audit ok  on b  attempt 1"), "{all}");
    assert!(all.stdout.contains("worker ok  on b  attempt 2"), "{all}");

    let v = p.autod(["trace", "e1", "--host", "b", "--json"]).run();
    v.code(0);
    let runs = v.json()["roots"][0]["runs"].clone();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 2, "{v}");
    assert!(runs.iter().all(|r| r["host"] == "b"), "{v}");

    // A host that ran nothing of the chain: said, with the hosts that did.
    p.autod(["trace", "e2", "--host", "b"])
        .run()
        .code(2)
        .stderr_has("--host b: no run-log line of the chain e2 is from b")
        .stderr_has("from a");
}
