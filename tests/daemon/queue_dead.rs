//! Dead letters on NATS JetStream: a failed pair's record goes to the
//! dead-letter stream (and its event is acked), comes back when due on any
//! host, and `autod dead` / `autod retry` act on it from any host.

use serde_json::Value;

use crate::helper::{LIMIT, Project, event, wait_until, waiting_record};
use crate::nats::NatsServer;
use crate::queue::{json_of, on_nats, shared_out, status};

/// One host of a group: handler `h` on `job.due` with `handler_toml` keys,
/// writing `<eventId> <host> <attempt>` to `$OUT/ran.txt`, and failing
/// while `$OUT/fail-<eventId>` exists (exit 65 when it says `permanent`).
fn host(nats: &NatsServer, out: &std::path::Path, name: &str, handler_toml: &str) -> Project {
    Project::new()
        .open_schema("job.due")
        .config(&on_nats(
            nats,
            &format!(
                "[handlers.h]\non = [\"job.due\"]\n{handler_toml}\nenv = {{ OUT = \"{}\", HOST = \"{name}\" }}\n",
                out.display()
            ),
            "",
        ))
        .handler(
            "h",
            r#"
            echo "$AUTOD_EVENT_ID $HOST $AUTOD_ATTEMPT" >> "$OUT/ran.txt"
            f="$OUT/fail-$AUTOD_EVENT_ID"
            [ -e "$f" ] || exit 0
            grep -q permanent "$f" && exit 65
            exit 1
            "#,
        )
}

fn dead_list(p: &Project) -> Vec<Value> {
    let v = json_of(&p.autod(["dead", "list", "--json"]).assert().success());
    v.as_array().cloned().unwrap_or_default()
}

fn ran(out: &std::path::Path) -> Vec<String> {
    crate::queue::read_lines(&out.join("ran.txt"))
}

fn send(p: &Project, id: &str) {
    p.write(&format!("{id}.json"), event("job.due", id).to_string());
    p.autod(["send", &format!("{id}.json")]).assert().success();
}

/// The MaxAckPending trap: with `concurrency = 1`, a nak'ed message keeps
/// the handler's one slot through its whole backoff. A failure is acked
/// into the dead-letter stream instead, so the next event runs at once.
#[test]
fn a_failure_waiting_for_its_backoff_does_not_hold_the_handlers_only_slot() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let (_shared, out) = shared_out();
    let a = host(
        &nats,
        &out,
        "a",
        "concurrency = 1\nretry = { initial = \"1h\", max = \"1h\" }",
    );
    a.autod(["queue", "init"]).assert().success();
    std::fs::write(out.join("fail-e1"), "").unwrap();
    let _d = a.start(&[]);
    send(&a, "e1");
    wait_until(LIMIT, "e1 to fail", || a.results("e1", "h") == ["failed"]);
    send(&a, "e2");
    // Before the fix this waited an hour for e1's backoff.
    wait_until(LIMIT, "e2 to run while e1 waits", || {
        a.results("e2", "h") == ["ok"]
    });
    let dead = dead_list(&a);
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["eventId"], "e1");
    assert_eq!(dead[0]["state"], "waiting");
    assert_eq!(dead[0]["attempts"], 1);
    // The event itself is acked: nothing of e1 holds the consumer.
    wait_until(LIMIT, "both events acked", || {
        status(&a)["handlers"][0]["lag"] == 0
    });
    assert_eq!(status(&a)["handlers"][0]["dead"], 1);
    // The record is the stream's, not left in this host's .autod/dead/.
    assert!(a.dead_letter("h", "e1").is_none());
}

/// The attempt count goes on across hosts: attempt 1 fails on host a, the
/// retry runs on host b as attempt 2, and its success removes the record.
#[test]
fn a_retry_runs_on_another_host_and_counts_its_attempt_on() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let (_shared, out) = shared_out();
    let handler = "retry = { initial = \"1s\", max = \"1s\" }";
    let (a, b) = (
        host(&nats, &out, "a", handler),
        host(&nats, &out, "b", handler),
    );
    a.autod(["queue", "init"]).assert().success();
    std::fs::write(out.join("fail-e1"), "").unwrap();
    let mut da = a.start(&[]);
    send(&a, "e1");
    wait_until(LIMIT, "e1 to fail on a", || {
        a.results("e1", "h") == ["failed"]
    });
    wait_until(LIMIT, "e1's record in the stream", || {
        dead_list(&b).len() == 1
    });
    da.terminate();
    da.wait(LIMIT);
    // Its own record, due at retry.max by the server's clock too, is not
    // one from a clock gone wrong.
    let stderr = da.stderr();
    assert!(!stderr.contains("further ahead than retry.max"), "{stderr}");
    std::fs::remove_file(out.join("fail-e1")).unwrap();
    let _db = b.start(&[]);
    wait_until(LIMIT, "b to run the retry", || {
        b.results("e1", "h") == ["ok"]
    });
    assert_eq!(ran(&out), ["e1 a 1", "e1 b 2"]);
    let line = b
        .log()
        .into_iter()
        .find(|l| l["eventId"] == "e1" && l["result"] == "ok")
        .unwrap();
    assert_eq!(line["attempt"], 2, "{line}");
    wait_until(LIMIT, "the record to be removed", || {
        dead_list(&b).is_empty()
    });
    assert!(dead_list(&a).is_empty());
    let st = status(&b);
    assert_eq!(st["done"], 1, "{st}");
    assert_eq!(st["handlers"][0]["lag"], 0, "{st}");
}

/// A permanent failure (exit 65) on host a is listed and shown from host b
/// (no daemon there), retried from b once the handler is fixed, and run by
/// a's worker; a second one is dropped from b and is gone for a as well.
#[test]
fn dead_letters_are_listed_shown_retried_and_dropped_from_any_host() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let (_shared, out) = shared_out();
    let (a, b) = (host(&nats, &out, "a", ""), host(&nats, &out, "b", ""));
    a.autod(["queue", "init"]).assert().success();
    for id in ["e1", "e2"] {
        std::fs::write(out.join(format!("fail-{id}")), "permanent").unwrap();
    }
    let _da = a.start(&[]);
    send(&a, "e1");
    send(&b, "e2");
    wait_until(LIMIT, "both to be given up", || {
        dead_list(&b)
            .iter()
            .filter(|r| r["state"] == "permanent")
            .count()
            == 2
    });
    let shown = json_of(&b.autod(["dead", "show", "e1", "--json"]).assert().success());
    assert_eq!(shown["handler"], "h");
    assert_eq!(shown["lastExitCode"], 65);
    assert_eq!(shown["event"]["eventId"], "e1");
    let text = b.autod(["dead", "list"]).assert().success();
    let text = String::from_utf8_lossy(&text.get_output().stdout).into_owned();
    assert!(text.contains("e1") && text.contains("permanent"), "{text}");

    // Given up: not run again by itself.
    assert_eq!(a.results("e1", "h"), ["failed", "dead"]);

    std::fs::remove_file(out.join("fail-e1")).unwrap();
    let retried = json_of(&b.autod(["retry", "e1", "--json"]).assert().success());
    assert_eq!(retried["queued"][0]["eventId"], "e1", "{retried}");
    wait_until(LIMIT, "a's worker to run the retry", || {
        a.results("e1", "h").last().map(String::as_str) == Some("ok")
    });
    wait_until(LIMIT, "e1's record to be removed", || {
        dead_list(&b).iter().all(|r| r["eventId"] != "e1")
    });

    let dropped = json_of(&b.autod(["dead", "drop", "e2", "--json"]).assert().success());
    assert_eq!(dropped[0]["eventId"], "e2", "{dropped}");
    assert!(dead_list(&a).is_empty());
    let missing = b.autod(["dead", "show", "e2"]).assert().failure();
    let stderr = String::from_utf8_lossy(&missing.get_output().stderr).into_owned();
    assert!(stderr.contains("no dead letter for eventId e2"), "{stderr}");
    // A retry of a dropped record has nothing to act on.
    b.autod(["retry", "e2"]).assert().code(2);
    assert_eq!(ran(&out).iter().filter(|l| l.starts_with("e2 ")).count(), 1);
}

/// `max_attempts` ends the retries on whatever host the last one ran.
#[test]
fn retries_stop_at_max_attempts_and_the_pair_is_given_up() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let (_shared, out) = shared_out();
    let handler = "retry = { max_attempts = 3, initial = \"1s\", max = \"1s\" }";
    let (a, b) = (
        host(&nats, &out, "a", handler),
        host(&nats, &out, "b", handler),
    );
    a.autod(["queue", "init"]).assert().success();
    std::fs::write(out.join("fail-e1"), "").unwrap();
    let _da = a.start(&[]);
    let _db = b.start(&[]);
    send(&a, "e1");
    wait_until(LIMIT, "e1 to be exhausted", || {
        dead_list(&a)
            .first()
            .is_some_and(|r| r["state"] == "exhausted")
    });
    let record = &dead_list(&b)[0];
    assert_eq!(record["attempts"], 3, "{record}");
    let attempts: Vec<String> = ran(&out)
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap().to_owned())
        .collect();
    assert_eq!(attempts, ["1", "2", "3"]);
    wait_until(LIMIT, "the event acked", || {
        status(&a)["handlers"][0]["lag"] == 0
    });
    // Nothing runs it again by itself.
    assert_eq!(ran(&out).len(), 3);
}

/// A record written by a host whose clock ran a year ahead says it is due in
/// 2099. Held by the server's clock, it waits no longer than the handler's
/// `retry.max` from when it was stored, and the log says why.
#[test]
fn a_dead_letter_due_in_2099_is_retried_within_retry_max_of_being_stored() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let (_shared, out) = shared_out();
    let a = host(
        &nats,
        &out,
        "a",
        "retry = { max_attempts = 5, initial = \"1s\", max = \"2s\" }",
    );
    a.autod(["queue", "init"]).assert().success();
    let record = waiting_record("h", event("job.due", "e1"), "2099-01-01T00:00:00.000Z");
    nats.jetstream(|js| async move {
        js.publish("AUTOD_DEAD.h.e1", record.to_string().into())
            .await
            .unwrap()
            .await
            .unwrap();
    });
    let d = a.start(&[]);
    // Before the fix the record was held until 2099.
    wait_until(LIMIT, "e1 to be retried", || a.results("e1", "h") == ["ok"]);
    assert_eq!(ran(&out), ["e1 a 2"]);
    wait_until(LIMIT, "the dead letter to go", || dead_list(&a).is_empty());
    let stderr = d.stderr();
    assert!(
        stderr.contains(
            "dead letter h e1: nextAttemptAt 2099-01-01T00:00:00.000Z is further ahead than retry.max (2s) from when it was stored"
        ),
        "{stderr}"
    );
}
