//! Every producer publishes to the NATS stream (`[queue] backend = "nats"`):
//! `POST /events` and `/hooks/<name>` (of `autod serve` and of `[serve]` in
//! `autod run`), watches, the daemon's schedules, follow-ups and `on_dead`
//! notices, `autod replay` through a daemon, `autod rejected requeue`. Two
//! roots on this machine are two hosts: the event is produced on host a and
//! run by host b's worker, and a's `.autod/inbox/` stays empty. Host a never
//! runs it because it has no worker for it: standalone `autod serve`, or a
//! handler of another name (it routes the event, but has no consumer).

use std::io::{Read, Write};
use std::path::Path;

use serde_json::{Value, json};

use crate::helper::{LIMIT, Project, event, wait_until};
use crate::http::{Client, JSON, Serve};
use crate::nats::NatsServer;
use crate::queue::{json_of, on_nats, read_lines, shared_out, status, stderr_of};

/// A handler that appends `<eventId> <host>` to `$OUT/<file>`.
fn recorder(file: &str) -> String {
    format!(r#"echo "$AUTOD_EVENT_ID $HOST" >> "$OUT/{file}""#)
}

/// `[handlers.<name>]` on `on`, writing to `out` as `host`.
fn handler(name: &str, on: &str, out: &Path, host: &str) -> String {
    format!(
        "[handlers.{name}]\non = [\"{on}\"]\nenv = {{ OUT = \"{}\", HOST = \"{host}\" }}\n\n",
        out.display()
    )
}

/// One request, with the response's head (for `Retry-After`).
fn request(
    client: &Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, String, Value) {
    let mut s = client.connect();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"))
    };
    (status, head.to_ascii_lowercase(), body)
}

fn post(client: &Client, path: &str, body: &Value) -> (u16, String, Value) {
    request(client, "POST", path, JSON, body.to_string().as_bytes())
}

fn get(client: &Client, path: &str) -> (u16, String) {
    client.request_text("GET", path, &[], b"")
}

/// The value of a sample in a `/metrics` page, if it is there.
fn sample(page: &str, series: &str) -> Option<u64> {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// `autod serve` on host a publishes what it accepts (`/events`, single and
/// batch, and `/hooks/<name>`), a duplicate eventId is one message, the
/// consumer lag shows in `/metrics` while no worker runs, and host b's worker
/// runs every event once.
#[test]
fn serve_publishes_and_a_worker_on_another_host_runs_the_events() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let (_shared, out) = shared_out();
    let host = |name: &str| {
        Project::new()
            .open_schema("job.due")
            .open_schema("job.hook")
            .config(&on_nats(
                &nats,
                &format!(
                    "{}[webhooks.raw]\nevent_type = \"job.hook\"\n",
                    handler("worker", "job.*", &out, name)
                ),
                "",
            ))
            .handler("worker", &recorder("worker.txt"))
    };
    let (a, b) = (host("a"), host("b"));
    b.autod(["queue", "init"]).assert().success();
    let serve = Serve::start(&a, &["--listen", "127.0.0.1:0"]);
    assert!(
        !serve.stderr().contains("no `autod run` is running"),
        "{}",
        serve.stderr()
    );
    assert_eq!(get(&serve, "/readyz").0, 200);

    let (code, _, answer) = post(&serve, "/events", &event("job.due", "e1"));
    assert_eq!((code, &answer), (202, &json!({"eventIds": ["e1"]})));
    let batch = json!([event("job.due", "e2"), event("job.due", "e3")]);
    let (code, _, answer) = post(&serve, "/events", &batch);
    assert_eq!((code, &answer), (202, &json!({"eventIds": ["e2", "e3"]})));
    // Sent again, as a sender retrying would: accepted, and one message.
    let (code, _, _) = post(&serve, "/events", &event("job.due", "e1"));
    assert_eq!(code, 202);
    let (code, _, answer) = post(&serve, "/hooks/raw", &json!({"n": 1}));
    assert_eq!(code, 202, "{answer}");
    let hook_id = answer["eventIds"][0].as_str().unwrap().to_owned();
    assert_eq!(status(&b)["stream"]["lastSeq"], 4);

    // Nothing runs them yet: the lag is in a's /metrics, read from the server.
    let (code, page) = get(&serve, "/metrics");
    assert_eq!(code, 200);
    assert_eq!(sample(&page, "autod_queue_connected"), Some(1), "{page}");
    assert_eq!(
        sample(&page, "autod_queue_consumer_lag{handler=\"worker\"}"),
        Some(4),
        "{page}"
    );
    assert_eq!(
        sample(
            &page,
            "autod_events_accepted_total{event_type=\"job.due\",intake=\"http\"}"
        ),
        Some(4),
        "{page}"
    );

    let _db = b.start(&[]);
    wait_until(LIMIT, "host b to run the four events", || {
        read_lines(&out.join("worker.txt")).len() >= 4
    });
    wait_until(LIMIT, "the lag in a's /metrics to be 0", || {
        sample(
            &get(&serve, "/metrics").1,
            "autod_queue_consumer_lag{handler=\"worker\"}",
        ) == Some(0)
    });
    let mut ran = read_lines(&out.join("worker.txt"));
    ran.sort();
    let mut want = vec![
        "e1 b".to_owned(),
        "e2 b".to_owned(),
        "e3 b".to_owned(),
        format!("{hook_id} b"),
    ];
    want.sort();
    assert_eq!(ran, want);
    assert!(a.inbox().is_empty(), "{:?}", a.inbox());
    assert!(a.names(".autod/inbox/tmp").is_empty());
    assert!(a.log().is_empty(), "{:?}", a.log());
}

/// The server down (or the stream missing): `POST` is a `503` with
/// `Retry-After` saying what to check, `/readyz` is a `503` with the reason,
/// nothing lands in any inbox; a serve started while the server is down
/// starts all the same, and both take events again once it is back.
#[test]
fn with_the_queue_down_serve_answers_503_and_keeps_nothing() {
    let Some(mut nats) = NatsServer::start() else {
        return;
    };
    let config = on_nats(&nats, "[handlers.worker]\non = [\"job.due\"]\n", "");
    let host = || {
        Project::new()
            .open_schema("job.due")
            .config(&config)
            .handler("worker", "true")
    };
    let a = host();
    let serve = Serve::start(&a, &["--listen", "127.0.0.1:0"]);

    // No stream yet: not ready, and a POST says to run `autod queue init`.
    let (code, body) = serve.request("GET", "/readyz", &[], b"");
    assert_eq!(code, 503, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("run `autod queue init`"),
        "{body}"
    );
    let (code, head, body) = post(&serve, "/events", &event("job.due", "e0"));
    assert_eq!(code, 503, "{body}");
    assert!(head.contains("retry-after: 5"), "{head}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("run `autod queue init`"),
        "{body}"
    );
    a.autod(["queue", "init"]).assert().success();
    assert_eq!(get(&serve, "/readyz").0, 200);
    assert_eq!(post(&serve, "/events", &event("job.due", "e1")).0, 202);

    nats.stop();
    wait_until(LIMIT, "/readyz to say not ready", || {
        get(&serve, "/readyz").0 == 503
    });
    let (code, body) = serve.request("GET", "/readyz", &[], b"");
    assert_eq!(code, 503);
    assert_eq!(body["error"], "not-ready");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("cannot connect to NATS at nats://127.0.0.1:"),
        "{body}"
    );
    let batch = json!([event("job.due", "e2"), event("job.due", "e3")]);
    let (code, head, body) = post(&serve, "/events", &batch);
    assert_eq!(code, 503, "{body}");
    assert!(head.contains("retry-after: 5"), "{head}");
    assert_eq!(body["error"], "queue");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("check [queue] url"), "{message}");
    assert!(
        message.contains("nothing of this request was queued"),
        "{message}"
    );
    let (_, page) = get(&serve, "/metrics");
    assert_eq!(sample(&page, "autod_queue_connected"), Some(0), "{page}");
    assert!(!page.contains("autod_queue_consumer_lag{"), "{page}");

    // Started while the server is down: it listens, and says why not ready.
    let late = host();
    let late_serve = Serve::start(&late, &["--listen", "127.0.0.1:0"]);
    assert!(
        late_serve.stderr().contains("cannot connect to NATS"),
        "{}",
        late_serve.stderr()
    );
    assert_eq!(get(&late_serve, "/readyz").0, 503);
    assert_eq!(post(&late_serve, "/events", &event("job.due", "e4")).0, 503);
    for p in [&a, &late] {
        assert!(p.inbox().is_empty(), "{:?}", p.inbox());
        assert!(p.names(".autod/inbox/tmp").is_empty());
    }

    // Back (same store): both publish again, without a restart.
    nats.restart();
    for s in [&serve, &late_serve] {
        wait_until(LIMIT, "/readyz to be ready again", || {
            get(s, "/readyz").0 == 200
        });
    }
    assert_eq!(post(&serve, "/events", &batch).0, 202);
    assert_eq!(post(&late_serve, "/events", &event("job.due", "e4")).0, 202);
    let st = status(&a);
    assert_eq!(st["handlers"][0]["lag"], 4, "{st}");
}

/// Host a's watch, schedule and `[serve]` (inside `autod run`) publish;
/// host b runs what they made.
#[test]
fn watches_schedules_and_serve_in_the_daemon_publish() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let (_shared, out) = shared_out();
    let schemas = |p: Project| {
        p.open_schema("file.changed")
            .open_schema("tick.due")
            .open_schema("job.hook")
    };
    // b runs `watched`, `ticked` and `hooked`; a routes the same eventTypes to
    // handlers of other names, which have no consumer: a never pulls them.
    let b = schemas(Project::new())
        .config(&on_nats(
            &nats,
            &[
                handler("watched", "file.changed", &out, "b"),
                handler("ticked", "tick.due", &out, "b"),
                handler("hooked", "job.hook", &out, "b"),
            ]
            .concat(),
            "",
        ))
        .handler("watched", &recorder("watched.txt"))
        .handler("ticked", &recorder("ticked.txt"))
        .handler("hooked", &recorder("hooked.txt"));
    let a = schemas(Project::new()).config(&on_nats(
        &nats,
        &format!(
            "{}{}{}[[watches]]\nname = \"drop\"\npath = \"drop\"\nevent_type = \"file.changed\"\ndebounce = \"100ms\"\n\n[[schedules]]\nname = \"tick\"\ncron = \"*/2 * * * * *\"\ntimezone = \"UTC\"\nevent_type = \"tick.due\"\n\n[serve]\nlisten = \"127.0.0.1:0\"\n\n[webhooks.raw]\nevent_type = \"job.hook\"\n\n",
            handler("a-watched", "file.changed", &out, "a"),
            handler("a-ticked", "tick.due", &out, "a"),
            handler("a-hooked", "job.hook", &out, "a"),
        ),
        "",
    ));
    a.write("drop/.keep", "");
    b.autod(["queue", "init"]).assert().success();
    let _db = b.start(&[]);
    let da = a.start(&[]);
    a.write("drop/note.txt", "hello");
    let client = Client::of_daemon(&da);
    let (code, _, answer) = post(&client, "/hooks/raw", &json!({"n": 1}));
    assert_eq!(code, 202, "{answer}");
    let (code, _, _) = post(&client, "/events", &event("job.hook", "h2"));
    assert_eq!(code, 202);

    wait_until(LIMIT, "host b to run the watch's event", || {
        !read_lines(&out.join("watched.txt")).is_empty()
    });
    wait_until(LIMIT, "host b to run a fire of a's schedule", || {
        !read_lines(&out.join("ticked.txt")).is_empty()
    });
    wait_until(LIMIT, "host b to run both of a's HTTP events", || {
        read_lines(&out.join("hooked.txt")).len() == 2
    });
    for file in ["watched.txt", "ticked.txt", "hooked.txt"] {
        for line in read_lines(&out.join(file)) {
            assert!(line.ends_with(" b"), "{file}: {line}");
        }
    }
    assert!(
        read_lines(&out.join("ticked.txt"))[0].starts_with("cron:tick:"),
        "{:?}",
        read_lines(&out.join("ticked.txt"))
    );
    let watched = b.log();
    let line = watched
        .iter()
        .find(|l| l["handler"] == "watched")
        .expect("b logged the watch's run");
    assert_eq!(line["source"], "watch:drop", "{line}");
    assert!(a.inbox().is_empty(), "{:?}", a.inbox());
    assert!(a.processing().is_empty(), "{:?}", a.processing());
    assert!(a.logged("ok").is_empty(), "{:?}", a.log());
}

/// A follow-up, and an `[notify] on_dead` notice, of runs on host a are
/// published before the parent's outcome is recorded, and run by host b.
#[test]
fn follow_ups_and_notices_of_one_host_run_on_another() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let (_shared, out) = shared_out();
    let schemas = |p: Project| {
        p.open_schema("job.due")
            .open_schema("job.done")
            .open_schema("pair.dead")
    };
    let notify = "[notify]\non_dead = \"pair.dead\"\n\n";
    // The consumers are those of every handler that runs: a's `parent` and
    // `doomed`, b's `child` and `notice`.
    let init = schemas(Project::new()).config(&on_nats(
        &nats,
        &[
            handler("parent", "job.due", &out, "-"),
            handler("doomed", "job.due", &out, "-"),
            handler("child", "job.done", &out, "-"),
            handler("notice", "pair.dead", &out, "-"),
        ]
        .concat(),
        "",
    ));
    init.autod(["queue", "init"]).assert().success();
    let a = schemas(Project::new())
        .config(&on_nats(
            &nats,
            &format!(
                "{notify}{}{}{}{}",
                handler("parent", "job.due", &out, "a"),
                handler("doomed", "job.due", &out, "a"),
                handler("a-child", "job.done", &out, "a"),
                handler("a-notice", "pair.dead", &out, "a"),
            ),
            "",
        ))
        .handler(
            "parent",
            r#"echo "$AUTOD_EVENT_ID $HOST" >> "$OUT/parent.txt"
               echo '{"eventType":"job.done","payload":{}}' >> "$AUTOD_EMIT""#,
        )
        .handler("doomed", "exit 65");
    let b = schemas(Project::new())
        .config(&on_nats(
            &nats,
            &format!(
                "{notify}{}{}",
                handler("child", "job.done", &out, "b"),
                handler("notice", "pair.dead", &out, "b"),
            ),
            "",
        ))
        .handler(
            "child",
            r#"echo "$AUTOD_EVENT_ID $AUTOD_CORRELATION_ID $AUTOD_EVENT_SOURCE $HOST" >> "$OUT/child.txt""#,
        )
        .handler(
            "notice",
            r#"echo "$AUTOD_CORRELATION_ID $AUTOD_EVENT_SOURCE $HOST" >> "$OUT/notice.txt""#,
        );
    let _da = a.start(&[]);
    let _db = b.start(&[]);
    a.write("e1.json", event("job.due", "e1").to_string());
    a.autod(["send", "e1.json"]).assert().success();
    wait_until(LIMIT, "host b to run the follow-up", || {
        read_lines(&out.join("child.txt")).len() == 1
    });
    wait_until(LIMIT, "host b to run the notice", || {
        read_lines(&out.join("notice.txt")).len() == 1
    });
    assert_eq!(read_lines(&out.join("parent.txt")), ["e1 a"]);
    let child = &read_lines(&out.join("child.txt"))[0];
    assert!(child.ends_with(" e1 handler:parent b"), "{child}");
    assert_eq!(read_lines(&out.join("notice.txt")), ["e1 autod b"]);
    // A run's follow-ups (and a dead pair's notice) are published before its
    // line is in the run log: b may have run them first.
    wait_until(LIMIT, "host a to log its runs", || {
        a.results("e1", "parent") == ["ok"] && a.results("e1", "doomed") == ["failed", "dead"]
    });
    assert!(a.inbox().is_empty() && a.processing().is_empty());
}

/// `autod replay` through a daemon on NATS publishes the events as replays:
/// the stream's dedupe window does not drop them (the first publish is
/// seconds old), and the worker runs them as the inbox runs a replay file,
/// the replay engine skipping a pair that succeeded (logged `skipped`,
/// `replay: true`) and running one that did not.
#[test]
fn replay_through_the_daemon_publishes_replays() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let (_shared, out) = shared_out();
    let b = Project::new()
        .open_schema("job.due")
        .config(&on_nats(
            &nats,
            &format!(
                "{}{}\nretry = {{ initial = \"1h\", max = \"1h\" }}\n",
                handler("steady", "job.due", &out, "b"),
                handler("flaky", "job.due", &out, "b").trim_end(),
            ),
            "",
        ))
        .handler("steady", &recorder("steady.txt"))
        .handler(
            "flaky",
            r#"
            echo "$AUTOD_EVENT_ID $HOST" >> "$OUT/flaky.txt"
            [ -e "$OUT/failed-once" ] && exit 0
            touch "$OUT/failed-once"
            exit 1
            "#,
        );
    b.autod(["queue", "init"]).assert().success();
    let daemon = b.start(&[]);
    b.write("e1.json", event("job.due", "e1").to_string());
    b.autod(["send", "e1.json"]).assert().success();
    wait_until(LIMIT, "steady to succeed and flaky to fail", || {
        b.results("e1", "steady") == ["ok"] && b.results("e1", "flaky") == ["failed"]
    });

    let replayed = b.autod(["replay", "--since", "1h"]).assert().success();
    let text = stderr_of(&replayed);
    assert!(
        text.contains(&format!(
            "through the running daemon (autod run pid {}): queued 1 events in stream AUTOD at nats://127.0.0.1:",
            daemon.pid()
        )),
        "{text}"
    );
    assert!(b.inbox().is_empty(), "{:?}", b.inbox());
    wait_until(
        LIMIT,
        "the replay to run flaky again and skip steady",
        || {
            b.results("e1", "flaky") == ["failed", "ok"]
                && b.results("e1", "steady") == ["ok", "skipped"]
        },
    );
    let log = b.log();
    let last = |h: &str| {
        log.iter()
            .rev()
            .find(|l| l["handler"] == h)
            .unwrap()
            .clone()
    };
    assert_eq!(last("flaky")["replay"], true, "{log:?}");
    assert_eq!(last("steady")["replay"], true, "{log:?}");
    assert!(log[0].get("replay").is_none(), "{log:?}");
    assert_eq!(read_lines(&out.join("steady.txt")), ["e1 b"]);
    assert_eq!(read_lines(&out.join("flaky.txt")), ["e1 b", "e1 b"]);
}

/// `autod rejected requeue` on a host that runs nothing publishes the
/// event, removes the file once the stream has it, and host b runs it.
#[test]
fn rejected_requeue_publishes() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let (_shared, out) = shared_out();
    let a = Project::new().open_schema("job.due").config(&on_nats(
        &nats,
        &handler("a-worker", "job.due", &out, "a"),
        "",
    ));
    let b = Project::new()
        .open_schema("job.due")
        .config(&on_nats(
            &nats,
            &handler("worker", "job.due", &out, "b"),
            "",
        ))
        .handler("worker", &recorder("worker.txt"));
    b.autod(["queue", "init"]).assert().success();
    let _db = b.start(&[]);
    // As the inbox consumer leaves one: the file, and why beside it.
    a.write(
        ".autod/rejected/r1.json",
        event("job.due", "r1").to_string(),
    );
    a.write(
        ".autod/rejected/r1.json.error.json",
        json!({"file": "r1.json", "rejectedAt": "2026-01-01T00:00:00Z", "errors": []}).to_string(),
    );
    let requeued = a
        .autod(["rejected", "requeue", "--json", "r1.json"])
        .assert()
        .success();
    assert_eq!(
        json_of(&requeued),
        json!({"name": "r1.json", "status": "queued"})
    );
    assert!(
        !stderr_of(&requeued).contains("no `autod run`"),
        "{}",
        stderr_of(&requeued)
    );
    assert!(a.names(".autod/rejected").is_empty());
    assert!(a.inbox().is_empty(), "{:?}", a.inbox());
    wait_until(LIMIT, "host b to run r1", || {
        read_lines(&out.join("worker.txt")) == ["r1 b"]
    });
}

/// A batch is sent whole before its acks are awaited, so one event the
/// stream refuses (here: larger than the stream's `max_msg_size`) does not
/// stop the ones after it. The `503` names it, says how many were stored
/// and lists them; sending the request again stores nothing twice.
#[test]
fn a_batch_whose_middle_event_the_stream_refuses_keeps_the_others_and_names_it() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let config = on_nats(&nats, "[handlers.worker]\non = [\"job.due\"]\n", "");
    let a = Project::new()
        .open_schema("job.due")
        .config(&config)
        .handler("worker", "true");
    a.autod(["queue", "init"]).assert().success();
    nats.jetstream(|js| async move {
        let mut stream = js.get_stream("AUTOD").await.unwrap();
        let mut config = stream.info().await.unwrap().config.clone();
        config.max_message_size = 1024;
        js.update_stream(config).await.unwrap();
    });
    let serve = Serve::start(&a, &["--listen", "127.0.0.1:0"]);
    let mut big = event("job.due", "e2");
    big["payload"] = json!({ "pad": "x".repeat(2000) });
    let batch = json!([event("job.due", "e1"), big, event("job.due", "e3")]);
    let (code, head, body) = post(&serve, "/events", &batch);
    assert_eq!(code, 503, "{body}");
    assert!(head.contains("retry-after: 5"), "{head}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with("event e2 could not be handed to the queue")
            && message.contains("2 of its 3 events were queued"),
        "{message}"
    );
    assert_eq!(body["queued"], json!(["e1", "e3"]), "{body}");
    let st = status(&a);
    assert_eq!(st["stream"]["messages"], 2, "{st}");
    // Again: e1 and e3 are duplicates, e2 is refused again.
    let (code, _, body) = post(&serve, "/events", &batch);
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["queued"], json!(["e1", "e3"]), "{body}");
    assert_eq!(status(&a)["stream"]["messages"], 2);
}
