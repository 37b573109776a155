//! `autod serve` (SPEC 11) through real HTTP: the server is started on port 0,
//! its port read from its readiness line on stderr (waited on, never slept
//! for), and requests are written by hand on a `TcpStream`, so the malformed
//! and oversized cases are exactly what is sent.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process};
use serde_json::{Value, json};

use crate::helper::{LIMIT, Project, event, wait_until};
use crate::http::{Client, JSON, Serve, response, serve_command};

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
fn an_event_is_accepted_into_the_inbox_and_the_daemon_runs_it() {
    let p = project();
    let serve = Serve::start(&p, &["--listen", "127.0.0.1:0"]);
    let (status, body) = serve.post(JSON, &event("job.due", "h1"));
    assert_eq!((status, body), (202, json!({"eventIds": ["h1"]})));
    assert_eq!(p.inbox(), ["h1.json"]);
    // Sent again: accepted, and it runs once.
    let (status, _) = serve.post(JSON, &event("job.due", "h1"));
    assert_eq!(status, 202);
    let _daemon = p.start(&[]);
    wait_until(LIMIT, "h1 to run", || p.lines("ran.txt") == ["h1"]);
    let (status, _) = serve.post(JSON, &event("job.due", "h1"));
    assert_eq!(status, 202);
    wait_until(LIMIT, "the daemon to drain", || p.drained());
    assert_eq!(p.lines("ran.txt"), ["h1"], "a duplicate eventId runs once");
}

#[test]
fn status_codes() {
    let p = project();
    let serve = Serve::start(&p, &["--listen", "127.0.0.1:0"]);
    // Invalid: every error, as JSON.
    let bad = json!({"eventType": "job.due", "eventId": "ok1"});
    let (status, body) = serve.post(JSON, &bad);
    assert_eq!(status, 400, "{body}");
    let errors = body["errors"].as_array().unwrap();
    assert!(
        errors.len() >= 2,
        "both the missing source and payload: {body}"
    );
    for e in errors {
        assert_eq!(e["index"], 0);
        assert!(e["pointer"].is_string() && e["keyword"].is_string() && e["message"].is_string());
    }
    // Malformed JSON.
    let (status, body) = serve.request(
        "POST",
        "/events",
        &[("Content-Type", JSON)],
        b"{\"eventType\":",
    );
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["keyword"], "json");
    // Other content types.
    let (status, _) = serve.request("POST", "/events", &[("Content-Type", "text/plain")], b"hi");
    assert_eq!(status, 415);
    let (status, _) = serve.request("POST", "/events", &[], b"{}");
    assert_eq!(status, 415);
    // Unknown path, wrong method.
    let (status, body) = serve.request("GET", "/nope", &[], b"");
    assert_eq!(
        (status, &body["error"]),
        (404, &json!("not-found")),
        "{body}"
    );
    assert_eq!(serve.request("GET", "/events", &[], b"").0, 405);
    // Health.
    assert_eq!(serve.request("GET", "/healthz", &[], b"").0, 200);
    assert_eq!(serve.request("GET", "/readyz", &[], b"").0, 200);
    assert!(p.inbox().is_empty(), "nothing was queued: {:?}", p.inbox());
}

#[test]
fn a_batch_is_all_or_nothing() {
    let p = project();
    let serve = Serve::start(&p, &["--listen", "127.0.0.1:0"]);
    let batch = json!([event("job.due", "b1"), {"eventType": "job.due", "source": "cli"}, event("job.due", "b3")]);
    let (status, body) = serve.post(JSON, &batch);
    assert_eq!(status, 400, "{body}");
    assert!(
        body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["index"] == 1),
        "{body}"
    );
    assert!(p.inbox().is_empty(), "none accepted: {:?}", p.inbox());
    let good = json!([event("job.due", "b1"), event("job.due", "b2")]);
    let (status, body) = serve.post(JSON, &good);
    assert_eq!((status, body), (202, json!({"eventIds": ["b1", "b2"]})));
    let ce = json!([
        {"specversion": "1.0", "type": "job.due", "id": "c1", "source": "ci", "data": {}},
        {"specversion": "1.0", "type": "job.due", "id": "c2", "source": "ci"},
    ]);
    let (status, body) = serve.post("application/cloudevents-batch+json", &ce);
    assert_eq!((status, body), (202, json!({"eventIds": ["c1", "c2"]})));
    assert_eq!(p.inbox(), ["b1.json", "b2.json", "c1.json", "c2.json"]);
    // Over 1000 events: refused as a whole, before any is validated.
    let long: Vec<Value> = (0..1001)
        .map(|i| event("job.due", &format!("l{i}")))
        .collect();
    let (status, body) = serve.post(JSON, &json!(long));
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"], "batch-too-long");
    assert_eq!(p.inbox().len(), 4);
}

#[test]
fn cloudevents_structured_and_binary() {
    let p = project();
    let serve = Serve::start(&p, &["--listen", "127.0.0.1:0"]);
    let ce = json!({"specversion": "1.0", "type": "job.due", "id": "s1", "source": "ci", "data": {"n": 1}});
    let (status, _) = serve.post("application/cloudevents+json; charset=utf-8", &ce);
    assert_eq!(status, 202);
    let (status, body) = serve.request(
        "POST",
        "/events",
        &[
            ("ce-specversion", "1.0"),
            ("ce-id", "bin1"),
            ("ce-type", "job.due"),
            ("ce-source", "github"),
            ("ce-time", "2026-11-30T10:00:00Z"),
            ("ce-subject", "repo/x%20%C3%A9"),
            ("Content-Type", JSON),
        ],
        br#"{"ref":"main"}"#,
    );
    assert_eq!((status, body), (202, json!({"eventIds": ["bin1"]})));
    let queued: Value = serde_json::from_str(&p.read(".autod/inbox/bin1.json")).unwrap();
    assert_eq!(queued["eventType"], "job.due");
    assert_eq!(queued["eventId"], "bin1");
    assert_eq!(queued["source"], "github");
    assert_eq!(queued["ts"], "2026-11-30T10:00:00Z");
    assert_eq!(queued["subject"], "repo/x é", "percent-decoded");
    assert_eq!(queued["payload"], json!({"ref": "main"}));
    // A binary event's errors are told in CloudEvents terms.
    let (status, body) = serve.request(
        "POST",
        "/events",
        &[
            ("ce-specversion", "1.0"),
            ("ce-id", "bin2"),
            ("ce-source", "s"),
            ("Content-Type", JSON),
        ],
        b"{}",
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("type"), "{body}");
    // Binary data that is not JSON is not supported.
    let (status, _) = serve.request(
        "POST",
        "/events",
        &[
            ("ce-specversion", "1.0"),
            ("ce-id", "bin3"),
            ("ce-type", "job.due"),
            ("ce-source", "s"),
            ("Content-Type", "text/plain"),
        ],
        b"hello",
    );
    assert_eq!(status, 415);
}

#[test]
fn an_oversized_body_is_refused_without_being_read() {
    let p = Project::new()
        .open_schema("job.due")
        .config(
            r#"
            [validation]
            max_event_bytes = 1000
            [serve]
            max_batch_bytes = 4000
            [handlers.worker]
            on = ["job.due"]
            "#,
        )
        .handler("worker", "true");
    let serve = Serve::start(&p, &["--listen", "127.0.0.1:0"]);
    // A huge Content-Length and a little of the body: answered at once.
    let mut s = serve.connect();
    s.write_all(
        b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/cloudevents+json\r\nContent-Length: 100000000\r\n\r\n{\"specversion\":",
    )
    .unwrap();
    let (status, body) = response(&mut s);
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["errors"][0]["keyword"], "maxEventBytes");
    // No length given (chunked): read only to just past the cap.
    let mut s = serve.connect();
    s.write_all(b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 5000, "x".repeat(5000));
    s.write_all(chunk.as_bytes()).unwrap();
    // ...and never the final chunk: the answer comes anyway.
    let (status, body) = response(&mut s);
    assert_eq!(status, 413);
    assert_eq!(body["errors"][0]["keyword"], "maxBatchBytes");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("[serve] max_batch_bytes"), "{message}");
    // One event over max_event_bytes, under the batch cap.
    let big = event_with_padding(2000);
    assert_eq!(serve.post(JSON, &big).0, 413);
    // The same event inside a batch is one event too large: the intake says so.
    let (status, body) = serve.post(JSON, &json!([big]));
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errors"][0]["keyword"], "maxEventBytes");
    assert!(p.inbox().is_empty());
}

fn event_with_padding(bytes: usize) -> Value {
    let mut e = event("job.due", "big");
    e["payload"] = json!({"pad": "x".repeat(bytes)});
    e
}

#[test]
fn a_token_is_required_when_set() {
    let p = Project::new()
        .open_schema("job.due")
        .config(
            r#"
            [serve]
            token_env = ["OLD_TOKEN", "NEW_TOKEN"]
            [handlers.worker]
            on = ["job.due"]
            "#,
        )
        .handler("worker", "true");
    let serve = Serve::start_with_env(
        &p,
        &["--listen", "127.0.0.1:0"],
        &[("OLD_TOKEN", "s3cret-old"), ("NEW_TOKEN", "s3cret-new")],
    );
    let body = event("job.due", "t1").to_string();
    let post = |auth: Option<&str>| {
        let mut h = vec![("Content-Type", JSON)];
        if let Some(a) = auth {
            h.push(("Authorization", a));
        }
        serve.request("POST", "/events", &h, body.as_bytes()).0
    };
    assert_eq!(post(None), 401);
    assert_eq!(post(Some("Bearer wrong")), 401);
    assert_eq!(post(Some("s3cret-new")), 401);
    assert!(p.inbox().is_empty());
    assert_eq!(post(Some("Bearer s3cret-old")), 202);
    assert_eq!(post(Some("Bearer s3cret-new")), 202);
    assert_eq!(
        post(Some("bearer s3cret-new")),
        202,
        "the scheme is case-insensitive"
    );
    assert_eq!(p.inbox(), ["t1.json"]);
}

#[test]
fn beyond_loopback_without_a_token_refuses_to_start() {
    let p = project();
    let out = serve_command(&p, &["--listen", "0.0.0.0:0"], &[])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("beyond loopback") && stderr.contains("token"),
        "{stderr}"
    );
    // The same in autod.toml is a config error.
    p.set_config(
        r#"
        [serve]
        listen = "0.0.0.0:8080"
        "#,
    );
    let out = serve_command(&p, &[], &[])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("autod.toml") && stderr.contains("beyond loopback"),
        "{stderr}"
    );
}

#[test]
fn a_broken_schema_is_a_503_not_the_senders_fault() {
    let p = project();
    p.write("schemas/job.due.json", "{ not json");
    let serve = Serve::start(&p, &["--listen", "127.0.0.1:0"]);
    let (status, body) = serve.post(JSON, &event("job.due", "x1"));
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "project");
    assert!(p.inbox().is_empty());
}

#[test]
fn sigterm_stops_it_cleanly() {
    let p = project();
    let mut serve = Serve::start(&p, &["--listen", "127.0.0.1:0"]);
    let pid = Pid::from_raw(i32::try_from(serve.child.id()).unwrap()).unwrap();
    kill_process(pid, Signal::TERM).unwrap();
    let deadline = std::time::Instant::now() + LIMIT;
    let status = loop {
        if let Some(s) = serve.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "{}", serve.stderr());
    assert!(
        TcpStream::connect(("127.0.0.1", serve.port)).is_err(),
        "new connections are refused"
    );
}

#[test]
fn a_request_in_flight_at_sigterm_finishes_and_new_ones_are_refused() {
    let p = project();
    // `-v`: the server says when it reads a request's body.
    let mut serve = Serve::start(&p, &["--listen", "127.0.0.1:0", "-v"]);
    let body = event("job.due", "late1").to_string();
    let (first, rest) = body.as_bytes().split_at(10);
    let mut s = serve.connect();
    write!(
        s,
        "POST /events HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(first).unwrap();
    wait_until(LIMIT, "the request to be in flight", || {
        serve.stderr().contains("POST /events: reading the body")
    });
    let pid = Pid::from_raw(i32::try_from(serve.child.id()).unwrap()).unwrap();
    kill_process(pid, Signal::TERM).unwrap();
    wait_until(LIMIT, "new connections to be refused", || {
        TcpStream::connect(("127.0.0.1", serve.port)).is_err()
    });
    s.write_all(rest).unwrap();
    let (status, body) = response(&mut s);
    assert_eq!((status, body), (202, json!({"eventIds": ["late1"]})));
    assert_eq!(p.inbox(), ["late1.json"]);
    wait_until(LIMIT, "autod serve to exit", || {
        serve.child.try_wait().unwrap().is_some()
    });
}

#[test]
fn headers_must_arrive_within_the_request_timeout() {
    let p = project().config(
        r#"
        [serve]
        request_timeout = "1s"
        [handlers.worker]
        on = ["job.due"]
        "#,
    );
    let serve = Serve::start(&p, &["--listen", "127.0.0.1:0"]);
    let mut s = serve.connect();
    s.write_all(b"POST /events HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    // Never the blank line: the server closes the connection by itself.
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(started.elapsed() < LIMIT, "the connection was held");
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text:?}"
    );
}

#[test]
fn autod_run_serves_when_serve_is_configured() {
    let p = project().config(
        r#"
        [serve]
        listen = "127.0.0.1:0"
        [handlers.worker]
        on = ["job.due"]
        "#,
    );
    let mut daemon = p.start(&[]);
    let serve = Client::of_daemon(&daemon);
    let port = serve.port;
    let (status, _) = serve.post(JSON, &event("job.due", "d1"));
    assert_eq!(status, 202);
    wait_until(LIMIT, "d1 to run", || p.lines("ran.txt") == ["d1"]);
    daemon.terminate();
    assert!(daemon.wait(LIMIT).success(), "{}", daemon.stderr());
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn a_changed_schema_is_used_without_a_restart() {
    let p = project();
    let serve = Serve::start(&p, &["--listen", "127.0.0.1:0"]);
    assert_eq!(serve.post(JSON, &event("job.due", "v1")).0, 202);
    p.write(
        "schemas/job.due.json",
        r#"{"type": "object", "required": ["n"]}"#,
    );
    // The watcher reloads soon after the write; until then the old schema holds.
    wait_until(LIMIT, "the new schema to reject", || {
        serve.post(JSON, &event("job.due", "v2")).0 == 400
    });
    let mut ok = event("job.due", "v3");
    ok["payload"] = json!({"n": 1});
    assert_eq!(serve.post(JSON, &ok).0, 202);
}

#[test]
fn an_idle_connection_is_closed_after_the_request_timeout() {
    let p = project().config(
        r#"
        [serve]
        request_timeout = "1s"
        [handlers.worker]
        on = ["job.due"]
        "#,
    );
    let serve = Serve::start(&p, &["--listen", "127.0.0.1:0"]);
    let mut idle = serve.connect();
    let mut buf = Vec::new();
    let _ = idle.read_to_end(&mut buf);
    assert!(buf.is_empty() || buf.starts_with(b"HTTP/1.1 408"));
    // Kept alive after a response: closed the same way (read_to_end returns).
    let mut s = serve.connect();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    assert!(
        all.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&all)
    );
}

#[test]
fn requests_past_max_concurrent_wait_for_a_slot() {
    let p = project().config(
        r#"
        [serve]
        max_concurrent = 1
        queue_timeout = "1m"
        [handlers.worker]
        on = ["job.due"]
        "#,
    );
    // `-v`: the server says when a request holds a slot (it reads its body).
    let serve = Serve::start(&p, &["--listen", "127.0.0.1:0", "-v"]);
    let holding = || {
        serve
            .stderr()
            .matches("POST /events: reading the body")
            .count()
    };
    let body = event("job.due", "slow1").to_string();
    let (first, rest) = body.as_bytes().split_at(10);
    let mut slow = serve.connect();
    write!(
        slow,
        "POST /events HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    slow.write_all(first).unwrap();
    wait_until(LIMIT, "the slow request to hold the slot", || {
        holding() == 1
    });
    // A second one waits (300 ms without an answer, and not reading its body,
    // is the evidence).
    let mut second = serve.connect();
    let body2 = event("job.due", "slow2").to_string();
    write!(
        second,
        "POST /events HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body2}",
        body2.len()
    )
    .unwrap();
    second
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut byte = [0u8; 1];
    let waited = second.read(&mut byte);
    assert!(
        waited.as_ref().is_err_and(|e| matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        )),
        "the second request was answered while the slot was held: {waited:?}"
    );
    assert_eq!(holding(), 1, "{}", serve.stderr());
    // Liveness is not behind the cap.
    assert_eq!(serve.request("GET", "/healthz", &[], b"").0, 200);
    assert!(p.inbox().is_empty());
    slow.write_all(rest).unwrap();
    assert_eq!(response(&mut slow).0, 202);
    second.set_read_timeout(Some(LIMIT)).unwrap();
    assert_eq!(response(&mut second).0, 202);
    assert_eq!(p.inbox(), ["slow1.json", "slow2.json"]);
}
