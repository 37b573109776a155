//! `[queue] backend = "nats"` (SPEC 10) against a real nats-server: `autod
//! queue init|status` and `autod send` publishing. Each test starts its own
//! server (see `nats.rs`); without one they are skipped, loudly. The helpers
//! are shared with the other NATS test files (`queue_*.rs`).

use serde_json::Value;

use crate::helper::{Project, event};
use crate::nats::NatsServer;

pub(crate) fn project(nats: &NatsServer, handlers: &str) -> Project {
    Project::new()
        .open_schema("job.due")
        .open_schema("job.other")
        .config(&format!(
            "{handlers}\n[queue]\nbackend = \"nats\"\nurl = \"{}\"\n",
            nats.url()
        ))
        .handler("worker", r#"echo "$AUTOD_EVENT_ID" >> worker.txt"#)
        .handler("audit", r#"echo "$AUTOD_EVENT_ID" >> audit.txt"#)
}

pub(crate) const TWO_HANDLERS: &str = r#"
[handlers.worker]
on = ["job.due"]
concurrency = 2

[handlers.audit]
on = ["job.*"]
"#;

pub(crate) fn json_of(out: &assert_cmd::assert::Assert) -> Value {
    let stdout = String::from_utf8_lossy(&out.get_output().stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

pub(crate) fn stderr_of(out: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&out.get_output().stderr).into_owned()
}

pub(crate) fn consumer<'a>(report: &'a Value, handler: &str) -> &'a Value {
    report["consumers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["handler"] == handler))
        .unwrap_or_else(|| panic!("no consumer {handler} in {report}"))
}

pub(crate) fn status(p: &Project) -> Value {
    json_of(&p.autod(["queue", "status", "--json"]).assert().success())
}

#[test]
fn queue_init_is_idempotent_and_updates_a_changed_consumer() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let p = project(&nats, TWO_HANDLERS);
    let first = json_of(&p.autod(["queue", "init", "--json"]).assert().success());
    assert_eq!(first["stream"]["action"], "created", "{first}");
    assert_eq!(first["stream"]["retention"], "interest");
    assert_eq!(first["deadStream"]["action"], "created");
    assert_eq!(first["retryConsumer"]["action"], "created");
    assert_eq!(first["doneBucket"]["action"], "created");
    assert_eq!(consumer(&first, "worker")["action"], "created");
    // Its events, and its retries (which no other handler's consumer takes).
    assert_eq!(
        consumer(&first, "worker")["filterSubjects"],
        serde_json::json!([
            "AUTOD.job.due",
            "AUTOD_KEYED.*.job.due",
            "AUTOD_RETRY.worker"
        ])
    );
    assert_eq!(consumer(&first, "worker")["maxAckPending"], 2);
    assert_eq!(
        consumer(&first, "audit")["filterSubjects"],
        serde_json::json!(["AUTOD.job.*", "AUTOD_KEYED.*.job.*", "AUTOD_RETRY.audit"])
    );

    let again = json_of(&p.autod(["queue", "init", "--json"]).assert().success());
    assert_eq!(first["keysBucket"]["action"], "created");
    for what in [
        "stream",
        "deadStream",
        "retryConsumer",
        "doneBucket",
        "keysBucket",
    ] {
        assert_eq!(again[what]["action"], "unchanged", "{what}: {again}");
    }
    for h in ["worker", "audit"] {
        assert_eq!(consumer(&again, h)["action"], "unchanged", "{again}");
    }

    // A handler's `on` and concurrency change, another goes: its consumer
    // is updated in place, the other's removed (its interest would pin messages).
    p.set_config(&format!(
        "[handlers.worker]\non = [\"job.due\", \"report.**\"]\nconcurrency = 1\n\n[queue]\nbackend = \"nats\"\nurl = \"{}\"\n",
        nats.url()
    ));
    let changed = json_of(&p.autod(["queue", "init", "--json"]).assert().success());
    let worker = consumer(&changed, "worker");
    assert_eq!(worker["action"], "updated", "{changed}");
    assert_eq!(
        worker["filterSubjects"],
        serde_json::json!([
            "AUTOD.job.due",
            "AUTOD.report.>",
            "AUTOD_KEYED.*.job.due",
            "AUTOD_KEYED.*.report.>",
            "AUTOD_RETRY.worker"
        ])
    );
    assert_eq!(worker["maxAckPending"], 1);
    assert_eq!(consumer(&changed, "audit")["action"], "removed");
    let st = status(&p);
    assert_eq!(st["handlers"].as_array().unwrap().len(), 1, "{st}");
    assert_eq!(st["handlers"][0]["maxAckPending"], 1);
    assert_eq!(st["stream"]["consumers"], 1);
}

#[test]
fn send_publishes_and_the_same_event_id_twice_is_one_message() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let p = project(&nats, TWO_HANDLERS);
    p.autod(["queue", "init"]).assert().success();
    p.write("e1.json", event("job.due", "e1").to_string());
    p.write("e2.json", event("job.other", "e2").to_string());

    let first = json_of(&p.autod(["send", "--json", "e1.json"]).assert().success());
    assert_eq!(first["status"], "queued", "{first}");
    assert_eq!(first["stream"], "AUTOD");
    assert_eq!(first["duplicate"], false);
    // The same eventId again, as a retrying producer would: success, and the
    // server's dedupe keeps one message.
    let again = json_of(&p.autod(["send", "--json", "e1.json"]).assert().success());
    assert_eq!(again["duplicate"], true, "{again}");
    assert_eq!(again["sequence"], first["sequence"]);
    let out = p.autod(["send", "e2.json"]).assert().success();
    assert_eq!(
        String::from_utf8_lossy(&out.get_output().stdout).trim(),
        "e2"
    );

    let st = status(&p);
    assert_eq!(st["stream"]["messages"], 2, "{st}");
    let lag = |h: &str| {
        st["handlers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["handler"] == h)
            .map(|x| x["lag"].clone())
            .unwrap()
    };
    // worker takes job.due only; audit takes job.* (both).
    assert_eq!(lag("worker"), 1, "{st}");
    assert_eq!(lag("audit"), 2, "{st}");
    // Nothing went to the folder queue.
    assert!(p.inbox().is_empty(), "{:?}", p.inbox());
}

#[test]
fn send_with_the_server_down_exits_1_and_says_what_to_check() {
    let Some(mut nats) = NatsServer::start() else {
        return;
    };
    let p = project(&nats, TWO_HANDLERS);
    nats.stop();
    p.write("e1.json", event("job.due", "e1").to_string());
    let out = p.autod(["send", "e1.json"]).assert().code(1);
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains("cannot connect to NATS at nats://127.0.0.1:"),
        "{stderr}"
    );
    assert!(stderr.contains("check [queue] url"), "{stderr}");
    assert!(out.get_output().stdout.is_empty());
    assert!(p.inbox().is_empty() && p.names(".autod/inbox/tmp").is_empty());
    let out = p.autod(["queue", "status"]).assert().code(1);
    assert!(stderr_of(&out).contains("cannot connect to NATS"));
    // An invalid event is told as such (exit 3, which outranks 1), and the
    // server is tried once for the valid ones, not once each.
    p.write("bad.json", "{ not json");
    p.write("e2.json", event("job.due", "e2").to_string());
    let out = p
        .autod(["send", "e1.json", "bad.json", "e2.json"])
        .assert()
        .code(3);
    let stderr = stderr_of(&out);
    assert!(stderr.contains("bad.json: "), "{stderr}");
    assert_eq!(
        stderr.matches("cannot connect to NATS").count(),
        1,
        "{stderr}"
    );
    assert!(out.get_output().stdout.is_empty());
}

#[test]
fn a_missing_stream_is_an_error_naming_queue_init() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let p = project(&nats, TWO_HANDLERS);
    p.write("e1.json", event("job.due", "e1").to_string());
    let out = p.autod(["send", "e1.json"]).assert().code(1);
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains("stream AUTOD does not exist") && stderr.contains("run `autod queue init`"),
        "{stderr}"
    );
    assert!(out.get_output().stdout.is_empty());
    let out = p.autod(["queue", "status"]).assert().code(1);
    assert!(stderr_of(&out).contains("`autod queue init`"));
    // Once initialised, the same send goes through.
    p.autod(["queue", "init"]).assert().success();
    p.autod(["send", "e1.json"]).assert().success();
    assert_eq!(status(&p)["stream"]["messages"], 1);
}

/// No server needed: the config is refused before anything connects.
#[test]
fn a_plain_token_in_autod_toml_is_refused_and_lint_says_so() {
    let p = Project::new().open_schema("job.due").config(
        r#"
        [handlers.worker]
        on = ["job.due"]

        [queue]
        backend = "nats"
        url = "nats://127.0.0.1:4222"
        token = "s3cret"
        "#,
    );
    p.write("e1.json", event("job.due", "e1").to_string());
    let out = p.autod(["send", "e1.json"]).assert().code(2);
    let stderr = stderr_of(&out);
    assert!(stderr.contains("autod.toml:8: queue.token"), "{stderr}");
    assert!(stderr.contains("token_env"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");
    let out = p.autod(["lint"]).assert().code(1);
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        stdout.contains("autod.toml:8: error: queue.token"),
        "{stdout}"
    );

    // Named instead of written: lint warns when the file is not there.
    p.set_config(
        r#"
        [handlers.worker]
        on = ["job.due"]

        [queue]
        backend = "nats"
        url = "nats://127.0.0.1:4222"
        creds_file = "secrets/autod.creds"
        "#,
    );
    let out = p.autod(["lint"]).assert();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        stdout.contains("warning: queue.creds_file: cannot read")
            && stdout.contains("[queue-credentials]"),
        "{stdout}"
    );
}

#[test]
fn queue_commands_on_the_folder_backend_say_how_to_switch() {
    let p = Project::new();
    let out = p.autod(["queue", "init"]).assert().code(2);
    assert!(stderr_of(&out).contains("backend = \"nats\""));
}

/// Two roots as two hosts (`AUTOD_HOST` a and b), one server: 1,000 events
/// fanned out to two handlers, and every (event, handler) pair runs exactly
/// once in the group, seen by the handlers' side effects and by the run logs.
#[test]
fn two_hosts_share_the_work_and_each_pair_runs_once() {
    const EVENTS: usize = 1000;
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let (_shared, out) = shared_out();
    let config = format!(
        r#"
        [handlers.worker]
        on = ["job.due"]
        env = {{ OUT = "{out}" }}

        [handlers.audit]
        on = ["job.*"]
        concurrency = 2
        env = {{ OUT = "{out}" }}

        [queue]
        backend = "nats"
        url = "{url}"
        "#,
        out = out.display(),
        url = nats.url()
    );
    let host = || {
        Project::new()
            .open_schema("job.due")
            .config(&config)
            .handler("worker", r#"echo "$AUTOD_EVENT_ID" >> "$OUT/worker.txt""#)
            .handler("audit", r#"echo "$AUTOD_EVENT_ID" >> "$OUT/audit.txt""#)
    };
    let (a, b) = (host(), host());
    a.autod(["queue", "init"]).assert().success();
    let started = std::time::Instant::now();
    let _da = a.start_with_env(&[], &[("AUTOD_HOST", "a")]);
    let _db = b.start_with_env(&[], &[("AUTOD_HOST", "b")]);
    let want: Vec<String> = (0..EVENTS).map(|i| format!("e{i:04}")).collect();
    // One `send` of JSON Lines on stdin: one connection, every publish acked.
    let events: String = want
        .iter()
        .map(|id| event("job.due", id).to_string() + "\n")
        .collect();
    let sent = a
        .autod(["send", "-"])
        .timeout(crate::helper::LIMIT * 3)
        .write_stdin(events)
        .assert()
        .success();
    let sent = String::from_utf8_lossy(&sent.get_output().stdout).into_owned();
    assert_eq!(sent.lines().count(), EVENTS, "send prints each eventId");
    let sent_in = started.elapsed();

    crate::helper::wait_until(
        crate::helper::LIMIT * 6,
        "1,000 runs of each handler",
        || {
            read_lines(&out.join("worker.txt")).len() >= EVENTS
                && read_lines(&out.join("audit.txt")).len() >= EVENTS
        },
    );
    // Every message acked: nothing is left to be redelivered and run again.
    crate::helper::wait_until(crate::helper::LIMIT, "every pair acked", || {
        let st = status(&a);
        st["handlers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["lag"] == 0)
    });
    eprintln!(
        "{EVENTS} events sent in {sent_in:?}, {} pairs run and acked in {:?}",
        2 * EVENTS,
        started.elapsed()
    );
    for name in ["worker.txt", "audit.txt"] {
        let mut ran = read_lines(&out.join(name));
        ran.sort();
        assert_eq!(ran, want, "{name}: each pair exactly once");
    }
    // Both hosts logged their own runs, each line names its host, and no
    // pair is logged ok twice across the two logs.
    let mut ok_pairs = Vec::new();
    let mut ran_on = std::collections::BTreeMap::new();
    for (p, name) in [(&a, "a"), (&b, "b")] {
        let log = p.log();
        for line in &log {
            assert_eq!(line["host"], name, "a line of host {name}: {line}");
        }
        let ok: Vec<(String, String)> = log
            .iter()
            .filter(|l| l["result"] == "ok")
            .map(|l| {
                let s = |k: &str| l[k].as_str().unwrap().to_owned();
                (s("eventId"), s("handler"))
            })
            .collect();
        ran_on.insert(name, ok.len());
        ok_pairs.extend(ok);
    }
    eprintln!("host a ran {} pairs, host b {}", ran_on["a"], ran_on["b"]);
    assert!(
        ran_on.values().all(|n| *n > 0),
        "both hosts took some of the work: {ran_on:?}"
    );
    assert_eq!(ok_pairs.len(), 2 * EVENTS, "{ran_on:?}");
    ok_pairs.sort();
    ok_pairs.dedup();
    assert_eq!(ok_pairs.len(), 2 * EVENTS, "a pair logged ok twice");
    assert_eq!(status(&a)["done"], 2 * EVENTS);
}

/// Past the server's dedupe window the same event can be published again
/// (here: under another `Nats-Msg-Id`, as a window that ran out would let
/// it): the done marker host A stored makes host B skip the pair.
#[test]
fn a_pair_done_on_one_host_is_skipped_on_another_after_the_dedupe_window() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let (_shared, out) = shared_out();
    let (a, b) = two_workers(&nats, &out, "worker.txt");
    let ran = || std::fs::read_to_string(out.join("worker.txt")).unwrap_or_default();
    let acked = |p: &Project| status(p)["handlers"][0]["lag"] == 0;
    {
        let _da = a.start(&[]);
        a.write("e1.json", event("job.due", "e1").to_string());
        a.autod(["send", "e1.json"]).assert().success();
        crate::helper::wait_until(crate::helper::LIMIT, "host a to run e1", || ran() == "e1\n");
        crate::helper::wait_until(crate::helper::LIMIT, "host a to ack e1", || acked(&a));
    }
    let _db = b.start(&[]);
    nats.jetstream(|js| async move {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", "e1-after-the-window");
        let body = event("job.due", "e1").to_string();
        js.publish_with_headers("AUTOD.job.due", headers, body.into())
            .await
            .unwrap()
            .await
            .unwrap();
    });
    crate::helper::wait_until(crate::helper::LIMIT, "host b to ack the second e1", || {
        let st = status(&b);
        st["stream"]["lastSeq"] == 2 && st["handlers"][0]["lag"] == 0
    });
    assert_eq!(ran(), "e1\n", "e1 ran once across the hosts");
    assert!(b.logged("ok").is_empty(), "{:?}", b.log());
}

/// A failed run is nak'ed with the handler's backoff and runs again when the
/// server redelivers it; the host's own retry pass leaves the dead letter to
/// the queue, so the backoff costs one attempt, not two.
#[test]
fn a_failure_runs_again_after_its_backoff_and_then_succeeds() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let p = Project::new()
        .open_schema("job.due")
        .config(&format!(
            "[handlers.flaky]\non = [\"job.due\"]\nretry = {{ initial = \"1s\", max = \"1s\" }}\n\n[queue]\nbackend = \"nats\"\nurl = \"{}\"\n",
            nats.url()
        ))
        .handler(
            "flaky",
            r#"
            echo "$AUTOD_EVENT_ID" >> ran.txt
            [ -e failed-once ] && exit 0
            touch failed-once
            exit 1
            "#,
        );
    p.autod(["queue", "init"]).assert().success();
    let _d = p.start(&[]);
    p.write("e1.json", event("job.due", "e1").to_string());
    p.autod(["send", "e1.json"]).assert().success();
    crate::helper::wait_until(crate::helper::LIMIT, "e1 to fail, then succeed", || {
        p.results("e1", "flaky").last().map(String::as_str) == Some("ok")
    });
    crate::helper::wait_until(crate::helper::LIMIT, "e1 to be acked", || {
        status(&p)["handlers"][0]["lag"] == 0
    });
    assert_eq!(p.results("e1", "flaky"), ["failed", "ok"]);
    assert_eq!(p.lines("ran.txt").len(), 2);
    assert_eq!(status(&p)["done"], 1);
    assert!(p.dead_letter("flaky", "e1").is_none());
}

/// `autod schedules fire` hands its event to the same queue as `send`.
#[test]
fn a_manual_schedule_fire_is_published() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let p = Project::new().open_schema("digest.due").config(&format!(
        "[handlers.digest]\non = [\"digest.due\"]\n\n[[schedules]]\nname = \"daily\"\ncron = \"0 9 * * *\"\nevent_type = \"digest.due\"\n\n[queue]\nbackend = \"nats\"\nurl = \"{}\"\n",
        nats.url()
    ));
    p.autod(["queue", "init"]).assert().success();
    let fired = json_of(
        &p.autod(["schedules", "fire", "daily", "--json"])
            .assert()
            .success(),
    );
    assert_eq!(fired["status"], "queued", "{fired}");
    assert_eq!(status(&p)["stream"]["messages"], 1);
    assert!(p.inbox().is_empty(), "{:?}", p.inbox());
}

/// The server killed and started again mid-stream (same store): nothing it
/// acked is lost, the worker says it lost the connection and got it back,
/// and every event runs.
#[test]
fn the_server_restarted_mid_stream_loses_nothing_and_the_worker_reconnects() {
    let Some(mut nats) = NatsServer::start() else {
        return;
    };
    let p = project(&nats, "[handlers.worker]\non = [\"job.due\"]\n");
    p.autod(["queue", "init"]).assert().success();
    let daemon = p.start(&[]);
    let batch = |from: usize| -> String {
        (from..from + 50)
            .map(|i| event("job.due", &format!("e{i:03}")).to_string() + "\n")
            .collect()
    };
    p.autod(["send", "-"])
        .write_stdin(batch(0))
        .assert()
        .success();
    nats.restart();
    p.autod(["send", "-"])
        .write_stdin(batch(50))
        .assert()
        .success();
    let ran = || {
        let mut ids = p.lines("worker.txt");
        ids.sort();
        ids.dedup();
        ids
    };
    crate::helper::wait_until(crate::helper::LIMIT * 2, "all 100 events to run", || {
        ran().len() == 100
    });
    crate::helper::wait_until(
        crate::helper::LIMIT,
        "the worker to say it reconnected",
        || daemon.stderr().contains("reconnected to NATS"),
    );
    // One connection for the daemon's worker and its producers: one line.
    let stderr = daemon.stderr();
    assert_eq!(
        stderr.matches("lost the connection to NATS").count(),
        1,
        "{stderr}"
    );
}

/// A daemon started while the server is down starts all the same, says so
/// once, and pulls (and publishes) as soon as the server is there.
#[test]
fn a_daemon_started_with_the_server_down_pulls_once_it_is_up() {
    let Some(mut nats) = NatsServer::start() else {
        return;
    };
    let p = project(&nats, "[handlers.worker]\non = [\"job.due\"]\n");
    p.autod(["queue", "init"]).assert().success();
    nats.stop();
    let daemon = p.start(&[]);
    crate::helper::wait_until(
        crate::helper::LIMIT,
        "the daemon to say why it waits",
        || daemon.stderr().contains("cannot connect to NATS"),
    );
    nats.restart();
    crate::helper::wait_until(crate::helper::LIMIT, "the daemon to connect", || {
        daemon.stderr().contains("queue: connected to NATS at")
    });
    p.write("e1.json", event("job.due", "e1").to_string());
    p.autod(["send", "e1.json"]).assert().success();
    crate::helper::wait_until(crate::helper::LIMIT, "e1 to run", || {
        p.results("e1", "worker") == ["ok"]
    });
    let stderr = daemon.stderr();
    assert_eq!(
        stderr.matches("cannot connect to NATS").count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains("nothing is published or pulled until it connects"),
        "{stderr}"
    );
}

/// `concurrency = 1` is the consumer's max_ack_pending: across two hosts the
/// handler never runs twice at once.
#[test]
fn concurrency_1_holds_across_two_hosts() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let (_shared, out) = shared_out();
    let config = on_nats(
        &nats,
        &format!(
            "[handlers.single]\non = [\"job.due\"]\nconcurrency = 1\nenv = {{ OUT = \"{}\" }}\n",
            out.display()
        ),
        "",
    );
    // `mkdir` is atomic: a second run while one is inside says so. The
    // sleep is the handler's work, long enough for an overlap to show.
    let host = || {
        Project::new()
            .open_schema("job.due")
            .config(&config)
            .handler(
                "single",
                r#"
            mkdir "$OUT/running" 2>/dev/null || echo "$AUTOD_EVENT_ID" >> "$OUT/overlap.txt"
            sleep 0.05
            rmdir "$OUT/running" 2>/dev/null
            echo "$AUTOD_EVENT_ID" >> "$OUT/ran.txt"
            "#,
            )
    };
    let (a, b) = (host(), host());
    a.autod(["queue", "init"]).assert().success();
    let _da = a.start(&[]);
    let _db = b.start(&[]);
    let events: String = (0..20)
        .map(|i| event("job.due", &format!("c{i:02}")).to_string() + "\n")
        .collect();
    a.autod(["send", "-"])
        .write_stdin(events)
        .assert()
        .success();
    let count = |name: &str| {
        std::fs::read_to_string(out.join(name))
            .unwrap_or_default()
            .lines()
            .count()
    };
    crate::helper::wait_until(crate::helper::LIMIT, "20 runs", || count("ran.txt") == 20);
    assert_eq!(count("overlap.txt"), 0, "runs overlapped");
    // Which host ran what is the server's choice: said, not asserted.
    eprintln!(
        "host a ran {}, host b {}",
        a.logged("ok").len(),
        b.logged("ok").len()
    );
}

/// Two hosts whose handler, on host a only, works for `a_work` seconds;
/// the ack wait is 2s.
pub(crate) fn two_hosts_with_a_slow_a(
    nats: &NatsServer,
    out: &std::path::Path,
    a_work: &str,
) -> (Project, Project) {
    let host = |name: &str| {
        Project::new()
            .open_schema("job.due")
            .config(&on_nats(
                nats,
                &format!(
                    "[handlers.slow]\non = [\"job.due\"]\ntimeout = \"10m\"\nenv = {{ OUT = \"{}\", HOST = \"{name}\", WORK = \"{a_work}\" }}\n",
                    out.display()
                ),
                "ack_wait = \"2s\"\n",
            ))
            .handler(
                "slow",
                r#"
                echo "$AUTOD_EVENT_ID $HOST $$" >> "$OUT/started.txt"
                if [ "$HOST" = a ]; then sleep "$WORK"; fi
                echo "$AUTOD_EVENT_ID $HOST" >> "$OUT/ran.txt"
                "#,
            )
    };
    let (a, b) = (host("a"), host("b"));
    a.autod(["queue", "init"]).assert().success();
    (a, b)
}

/// The folder every host's handlers write to (their `$OUT`): the hosts are
/// two roots on this machine, so what each ran is seen in one place.
pub(crate) fn shared_out() -> (tempfile::TempDir, std::path::PathBuf) {
    let shared = tempfile::tempdir().unwrap();
    let out = shared.path().canonicalize().unwrap();
    (shared, out)
}

/// `handlers` (TOML) and a `[queue]` table on `nats`, with `queue_extra` keys.
pub(crate) fn on_nats(nats: &NatsServer, handlers: &str, queue_extra: &str) -> String {
    format!(
        "{handlers}\n[queue]\nbackend = \"nats\"\nurl = \"{}\"\n{queue_extra}",
        nats.url()
    )
}

pub(crate) fn read_lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Two hosts of one group, `queue init` done: handler `worker` on `job.due`
/// appends each eventId it runs to `$OUT/<ran>`.
pub(crate) fn two_workers(
    nats: &NatsServer,
    out: &std::path::Path,
    ran: &str,
) -> (Project, Project) {
    let config = on_nats(
        nats,
        &format!(
            "[handlers.worker]\non = [\"job.due\"]\nenv = {{ OUT = \"{}\" }}\n",
            out.display()
        ),
        "",
    );
    let host = || {
        Project::new()
            .open_schema("job.due")
            .config(&config)
            .handler(
                "worker",
                &format!(r#"echo "$AUTOD_EVENT_ID" >> "$OUT/{ran}""#),
            )
    };
    let (a, b) = (host(), host());
    a.autod(["queue", "init"]).assert().success();
    (a, b)
}

/// Host a's daemon, started, running e1 (600 s); the handler's pid.
fn slow_run_started_on_a(a: &Project, out: &std::path::Path) -> (crate::helper::Daemon, i32) {
    let da = a.start(&[]);
    a.write("e1.json", event("job.due", "e1").to_string());
    a.autod(["send", "e1.json"]).assert().success();
    crate::helper::wait_until(crate::helper::LIMIT, "host a to start e1", || {
        read_lines(&out.join("started.txt")).len() == 1
    });
    let started = read_lines(&out.join("started.txt"));
    let pid = started[0].rsplit(' ').next().unwrap().parse().unwrap();
    (da, pid)
}

/// A run longer than the ack wait keeps its message with in-progress acks:
/// the other host never starts it.
#[test]
fn a_long_run_is_not_redelivered_while_it_lives() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let (_shared, out) = shared_out();
    let (a, b) = two_hosts_with_a_slow_a(&nats, &out, "5");
    let _da = a.start(&[]);
    a.write("e1.json", event("job.due", "e1").to_string());
    a.autod(["send", "e1.json"]).assert().success();
    crate::helper::wait_until(crate::helper::LIMIT, "host a to start e1", || {
        read_lines(&out.join("started.txt")).len() == 1
    });
    let _db = b.start(&[]);
    crate::helper::wait_until(
        crate::helper::LIMIT,
        "host a to finish e1 (5s, the ack wait is 2s)",
        || read_lines(&out.join("ran.txt")) == ["e1 a"],
    );
    crate::helper::wait_until(crate::helper::LIMIT, "e1 to be acked", || {
        status(&a)["handlers"][0]["lag"] == 0
    });
    let started = read_lines(&out.join("started.txt"));
    assert_eq!(started.len(), 1, "started twice: {started:?}");
}

/// A host killed mid-run (the daemon and its handler, as a power cut would):
/// the other host runs the pair once the ack wait is over.
#[test]
fn a_pair_whose_host_died_mid_run_is_run_by_the_other_host() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let (_shared, out) = shared_out();
    let (a, b) = two_hosts_with_a_slow_a(&nats, &out, "600");
    let (mut da, pid) = slow_run_started_on_a(&a, &out);
    let _db = b.start(&[]);
    da.kill();
    // The handler leads its own process group: that, too, dies with the host.
    let _ = rustix::process::kill_process_group(
        rustix::process::Pid::from_raw(pid).unwrap(),
        rustix::process::Signal::KILL,
    );
    crate::helper::wait_until(crate::helper::LIMIT, "host b to run e1", || {
        read_lines(&out.join("ran.txt")) == ["e1 b"]
    });
    crate::helper::wait_until(crate::helper::LIMIT, "e1 to be acked", || {
        status(&b)["handlers"][0]["lag"] == 0
    });
    assert_eq!(b.results("e1", "slow"), ["ok"]);
}

/// A server that wants a token: `token_env` names the variable that holds
/// it; a wrong one is an error about credentials, not about the URL.
#[test]
fn a_token_from_token_env_is_used_and_a_wrong_one_is_told_as_such() {
    let Some(nats) = NatsServer::start_with(&["--auth", "s3cret-token"]) else {
        return;
    };
    let p = Project::new()
        .open_schema("job.due")
        .config(&on_nats(
            &nats,
            "[handlers.worker]\non = [\"job.due\"]\n",
            "token_env = \"AUTOD_TEST_NATS_TOKEN\"\n",
        ))
        .handler("worker", "exit 0");
    let wrong = p
        .autod(["queue", "init"])
        .env("AUTOD_TEST_NATS_TOKEN", "guess")
        .assert()
        .code(1);
    let stderr = stderr_of(&wrong);
    assert!(
        stderr.contains("refused autod's credentials") && stderr.contains("token_env"),
        "{stderr}"
    );
    assert!(!stderr.contains("guess"), "the token is echoed: {stderr}");
    p.autod(["queue", "init"])
        .env("AUTOD_TEST_NATS_TOKEN", "s3cret-token")
        .assert()
        .success();
    p.write("e1.json", event("job.due", "e1").to_string());
    p.autod(["send", "e1.json"])
        .env("AUTOD_TEST_NATS_TOKEN", "s3cret-token")
        .assert()
        .success();
}

/// A server whose JetStream store is full refuses the publish: `send` says
/// so and exits 1, nothing half is kept, and every event it accepted before
/// runs once the worker drains the stream; sent again, the refused one runs.
#[test]
fn a_full_server_refuses_the_publish_and_loses_nothing_it_accepted() {
    let conf = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(conf.path(), "jetstream {\n  max_file_store: 64KB\n}\n").unwrap();
    let Some(nats) = NatsServer::start_with(&["-c", conf.path().to_str().unwrap()]) else {
        return;
    };
    let p = project(&nats, "[handlers.worker]\non = [\"job.due\"]\n");
    p.autod(["queue", "init"]).assert().success();
    let pad = "x".repeat(3000);
    let mut accepted = Vec::new();
    let mut refused = None;
    for i in 0..100 {
        let id = format!("e{i}");
        let mut e = event("job.due", &id);
        e["payload"] = serde_json::json!({ "pad": pad });
        p.write(&format!("{id}.json"), e.to_string());
        let out = p.autod(["send", &format!("{id}.json")]).assert();
        if out.get_output().status.success() {
            accepted.push(id);
        } else {
            assert_eq!(out.get_output().status.code(), Some(1));
            let stderr = stderr_of(&out);
            assert!(
                stderr.contains("storage is full") && stderr.contains("max_file_store"),
                "{stderr}"
            );
            refused = Some(id);
            break;
        }
    }
    let refused = refused.expect("a 64 KB store refuses 300 KB of events");
    assert!(!accepted.is_empty());
    let _d = p.start(&[]);
    crate::helper::wait_until(crate::helper::LIMIT, "every accepted event to run", || {
        p.lines("worker.txt").len() == accepted.len()
    });
    // Two slots (`--jobs` is the CPUs): no order without a key.
    let mut ran = p.lines("worker.txt");
    ran.sort();
    accepted.sort();
    assert_eq!(ran, accepted, "each accepted event once");
    crate::helper::wait_until(crate::helper::LIMIT, "the stream to drain", || {
        status(&p)["stream"]["messages"] == 0
    });
    p.autod(["send", &format!("{refused}.json")])
        .assert()
        .success();
    crate::helper::wait_until(
        crate::helper::LIMIT,
        "the refused one, sent again, to run",
        || p.lines("worker.txt").last() == Some(&refused),
    );
}

/// A host whose autod was SIGKILLed mid-run (its handler left running, as
/// after an OOM kill of autod alone): the other host runs the pair, and the
/// first one, started again, stops the orphan instead of letting it run on
/// unsupervised.
#[test]
fn a_restarted_host_stops_the_handler_its_killed_autod_left_running() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let (_shared, out) = shared_out();
    let (a, b) = two_hosts_with_a_slow_a(&nats, &out, "600");
    let (mut da, pid) = slow_run_started_on_a(&a, &out);
    da.kill();
    let alive = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            !matches!(
                s.rsplit(')')
                    .next()
                    .and_then(|r| r.split_whitespace().next()),
                Some("Z" | "X")
            )
        })
    };
    assert!(alive(), "the handler outlives its autod");
    let _db = b.start(&[]);
    crate::helper::wait_until(crate::helper::LIMIT, "host b to run e1", || {
        read_lines(&out.join("ran.txt")) == ["e1 b"]
    });
    let da = a.start(&[]);
    crate::helper::wait_until(crate::helper::LIMIT, "host a to stop its orphan", || {
        !alive()
    });
    crate::helper::wait_until(crate::helper::LIMIT, "host a to say so", || {
        da.stderr().contains("left processes running unsupervised")
    });
    assert_eq!(read_lines(&out.join("ran.txt")), ["e1 b"]);
}
