//! `autod send`: validated here, queued in the inbox, delivered by the daemon.

use crate::helper::{LIMIT, Project, event, wait_until};

fn project() -> Project {
    Project::new()
        .open_schema("job.due")
        .config(
            r#"
            [handlers.worker]
            on = ["job.due"]
            "#,
        )
        .handler("worker", r#"echo "$AUTOD_EVENT_ID" >> ran.txt"#)
}

#[test]
fn send_prints_the_event_id_and_the_daemon_delivers_it() {
    let p = project();
    let _daemon = p.start(&[]);
    // No eventId: send assigns one and prints it.
    let no_id = serde_json::json!({"eventType": "job.due", "source": "cli", "payload": {}});
    p.write("a.json", no_id.to_string());
    p.write("b.json", event("job.due", "given-id").to_string());
    let out = p.autod(["send", "a.json", "b.json"]).assert().success();
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let ids: Vec<&str> = stdout.lines().collect();
    assert_eq!(ids.len(), 2, "{stdout}");
    assert_eq!(ids[1], "given-id");
    let assigned = ids[0].to_owned();
    assert!(!assigned.is_empty() && assigned != "given-id");

    wait_until(LIMIT, "both events to be delivered", || {
        p.done(&assigned, "worker") && p.done("given-id", "worker")
    });
    wait_until(LIMIT, "inbox/ and processing/ to empty", || p.drained());
    let mut ran = p.lines("ran.txt");
    ran.sort();
    let mut want = vec![assigned.clone(), "given-id".to_owned()];
    want.sort();
    assert_eq!(ran, want);
    assert_eq!(p.results(&assigned, "worker"), ["ok"]);
}

#[test]
fn send_refuses_an_invalid_event_with_exit_3_and_queues_nothing() {
    let p = project();
    let _daemon = p.start(&[]);
    p.write(
        "bad.json",
        r#"{"eventType": "job.due", "eventId": "bad-1", "payload": {}}"#,
    );
    let out = p.autod(["send", "bad.json"]).assert().code(3);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("bad.json"), "{stderr}");
    assert!(out.get_output().stdout.is_empty());

    // A valid event sent after it is delivered; the invalid one never shows up.
    p.write("good.json", event("job.due", "good-1").to_string());
    p.autod(["send", "good.json"]).assert().success();
    wait_until(LIMIT, "the valid event to be delivered", || {
        p.done("good-1", "worker")
    });
    wait_until(LIMIT, "inbox/ and processing/ to empty", || p.drained());
    assert!(p.names(".autod/inbox/tmp").is_empty());
    assert!(p.names(".autod/rejected").is_empty());
    assert!(!p.done("bad-1", "worker"));
    assert_eq!(p.lines("ran.txt"), ["good-1"]);
}

/// The inbox holds a sent CloudEvent in autod's names with `specversion` kept
/// beside them; the daemon must read that back as the event, not refuse it as
/// an ambiguous CloudEvent.
#[test]
fn a_sent_cloudevent_is_delivered() {
    let p = project();
    let _daemon = p.start(&[]);
    let ce = serde_json::json!({"specversion": "1.0", "type": "job.due", "id": "ce-sent-1",
                                "source": "https://example.com", "data": {}});
    p.write("ce.json", ce.to_string());
    p.autod(["send", "ce.json"]).assert().success();
    // The run-log line is the last thing written for the pair.
    wait_until(LIMIT, "the CloudEvent's ok line", || {
        p.results("ce-sent-1", "worker") == ["ok"]
    });
    assert!(p.done("ce-sent-1", "worker"));
    assert_eq!(p.lines("ran.txt"), ["ce-sent-1"]);
    assert!(p.logged("rejected").is_empty(), "{:?}", p.log());
}
