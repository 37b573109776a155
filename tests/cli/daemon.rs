//! `autod send` and `autod run`: the daemon started for real, waited for by
//! polling, and stopped at the end even when the test fails.

use std::time::Duration;

use serde_json::json;

use crate::common::{Project, RECORD, Running, event, wait_until};

const LIMIT: Duration = Duration::from_secs(20);

fn project() -> Project {
    Project::new()
        .open_schema("job.due")
        .config(
            r#"
            [handlers.worker]
            on = ["job.due"]
            "#,
        )
        .handler("worker", RECORD)
        .event("e.json", event("job.due", "ev-1", json!({})))
}

/// Starts `autod run` and waits until `autod status` sees it.
fn start(p: &Project) -> Running {
    let daemon = p.autod(["run", "--grace", "2s"]).spawn();
    let pid = daemon.id();
    wait_until(LIMIT, "the daemon to come up", || {
        let out = p.autod(["status", "--json"]).run();
        out.code(0);
        out.json()["daemon"]["pid"] == pid
    });
    daemon
}

#[test]
fn send_hands_the_event_to_the_running_daemon() {
    let p = project();
    let daemon = start(&p);
    p.autod(["send", "e.json"]).run().code(0).stdout_has("ev-1");
    wait_until(LIMIT, "the handler to run", || !p.runs().is_empty());
    wait_until(LIMIT, "the run to be recorded", || p.done("ev-1", "worker"));
    assert_eq!(p.runs(), ["worker job.due ev-1 1"]);
    daemon.terminate();
    daemon.wait().code(0);
    let out = p.autod(["status", "--json"]).run();
    assert!(out.json()["daemon"].is_null(), "{out}");
}

#[test]
fn a_second_daemon_on_the_same_root_refuses() {
    let p = project();
    let daemon = start(&p);
    p.autod(["run"])
        .run()
        .code(2)
        .stderr_has(&daemon.id().to_string())
        .stderr_has("already runs");
    daemon.terminate();
    daemon.wait().code(0);
}

#[test]
fn send_rejects_an_invalid_event_and_queues_nothing() {
    let p = project().file("bad.json", r#"{"eventType": "job.due"}"#);
    p.autod(["send", "bad.json"])
        .run()
        .code(3)
        .stderr_has("bad.json");
    let queued = std::fs::read_dir(p.path(".autod/inbox"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(queued, 0);
}
