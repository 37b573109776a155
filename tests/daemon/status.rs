//! `autod status --json` while the daemon works: its pid, the inbox depth,
//! what is in flight and the dead letters.

use serde_json::Value;

use crate::helper::{LIMIT, Project, event, wait_until};

fn status(p: &Project) -> Value {
    let out = p.autod(["status", "--json"]).assert().success();
    serde_json::from_slice(&out.get_output().stdout).unwrap()
}

#[test]
fn status_shows_the_daemon_the_inbox_what_runs_and_what_failed() {
    let p = Project::new()
        .open_schema("job.due")
        .open_schema("job.bad")
        .config(
            r#"
            [handlers.gated]
            on = ["job.due"]

            [handlers.failing]
            on = ["job.bad"]
            retry = { max_attempts = 3, initial = "1h", max = "2h" }
            "#,
        )
        // Runs until the test lets it finish.
        .handler(
            "gated",
            r#"
            echo "$AUTOD_EVENT_ID" >> started.txt
            while [ ! -e go ]; do sleep 0.05; done
            "#,
        )
        .handler("failing", "exit 1");
    p.inbox_put("a.json", &event("job.due", "a"));
    p.inbox_put("b.json", &event("job.due", "b"));
    let s = status(&p);
    assert!(s["daemon"].is_null(), "{s}");
    assert_eq!(s["inbox"], 2, "{s}");
    assert_eq!(s["inFlight"], 0, "{s}");

    let daemon = p.start(&["--jobs", "4"]);
    p.inbox_put("c.json", &event("job.bad", "c"));
    wait_until(LIMIT, "both gated runs to start", || {
        p.lines("started.txt").len() == 2
    });
    wait_until(LIMIT, "the failure to be dead-lettered", || {
        p.dead_letter("failing", "c").is_some()
    });
    wait_until(LIMIT, "c to leave processing/", || {
        !p.processing().contains(&"c.json".to_owned())
    });
    let s = status(&p);
    assert_eq!(s["daemon"]["pid"], daemon.pid(), "{s}");
    assert_eq!(s["inbox"], 0, "{s}");
    assert_eq!(s["inFlight"], 2, "{s}");
    assert_eq!(s["dead"]["waiting"], 1, "{s}");
    assert_eq!(s["lastFailures"][0]["eventId"], "c", "{s}");

    p.write("go", "");
    wait_until(LIMIT, "the gated runs to finish", || p.drained());
    let s = status(&p);
    assert_eq!(s["inFlight"], 0, "{s}");
    assert_eq!(s["dead"]["waiting"], 1, "{s}");
}

#[test]
fn after_a_daemon_stopped_mid_run_nothing_is_in_flight_and_what_is_left_is_named() {
    let p = Project::new()
        .open_schema("job.due")
        .config(
            r#"
            [handlers.slow]
            on = ["job.due"]
            "#,
        )
        .handler(
            "slow",
            r#"
            echo "$AUTOD_EVENT_ID" >> started.txt
            sleep 60
            "#,
        );
    let mut daemon = p.start(&["--grace", "100ms"]);
    p.inbox_put("a.json", &event("job.due", "a"));
    wait_until(LIMIT, "the run to start", || {
        p.lines("started.txt").len() == 1
    });
    daemon.terminate();
    assert!(daemon.wait(LIMIT).success());
    let s = status(&p);
    assert!(s["daemon"].is_null(), "{s}");
    assert_eq!(s["inFlight"], 0, "{s}");
    assert_eq!(s["processing"], 1, "{s}");
    let text = p.autod(["status"]).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(
            "in flight:    0 (1 left in processing/, delivered again when `autod run` starts)"
        ),
        "{text}"
    );
}
