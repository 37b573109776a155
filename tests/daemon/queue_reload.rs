//! SIGHUP with `[queue] backend = "nats"`: a handler added (after `autod
//! queue init` made its consumer) is pulled for without a restart; a changed
//! `[queue]` is kept as it was, and the log says to restart.

use rustix::process::Signal;

use crate::helper::{LIMIT, Project, event, wait_until};
use crate::nats::NatsServer;
use crate::queue::on_nats;

#[test]
fn a_handler_added_by_sighup_is_pulled_for_and_a_changed_queue_is_kept() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let first = "[handlers.worker]\non = [\"job.due\"]\n";
    let p = Project::new()
        .open_schema("job.due")
        .config(&on_nats(&nats, first, ""))
        .handler("worker", r#"echo "$AUTOD_EVENT_ID" >> worker.txt"#)
        .handler("audit", r#"echo "$AUTOD_EVENT_ID" >> audit.txt"#);
    p.autod(["queue", "init"]).assert().success();
    let daemon = p.start(&[]);
    p.write("e1.json", event("job.due", "e1").to_string());
    p.autod(["send", "e1.json"]).assert().success();
    wait_until(LIMIT, "worker to run e1", || {
        p.lines("worker.txt") == ["e1"]
    });

    let both = format!("{first}\n[handlers.audit]\non = [\"job.due\"]\n");
    p.set_config(&on_nats(&nats, &both, ""));
    p.autod(["queue", "init"]).assert().success();
    daemon.signal(Signal::HUP);
    wait_until(LIMIT, "the new set of handlers to be pulled for", || {
        daemon.stderr().contains("pulling for the new set")
    });
    p.write("e2.json", event("job.due", "e2").to_string());
    p.autod(["send", "e2.json"]).assert().success();
    wait_until(LIMIT, "audit, added by the reload, to run e2", || {
        p.lines("audit.txt") == ["e2"]
    });
    wait_until(LIMIT, "worker to run e2 too", || {
        p.lines("worker.txt") == ["e1", "e2"]
    });

    // Another stream: not taken over by the running daemon.
    p.set_config(&on_nats(&nats, &both, "stream = \"OTHER\"\n"));
    daemon.signal(Signal::HUP);
    wait_until(LIMIT, "the warning about [queue]", || {
        daemon.stderr().contains("[queue] changed in autod.toml")
    });
    // It still pulls from the stream it started with.
    p.set_config(&on_nats(&nats, &both, ""));
    p.write("e3.json", event("job.due", "e3").to_string());
    p.autod(["send", "e3.json"]).assert().success();
    wait_until(LIMIT, "e3 to run on the old queue", || {
        p.lines("audit.txt") == ["e2", "e3"]
    });
}

/// A daemon started before `autod queue init` says what is missing and what
/// to run, and pulls once it has been run, without a restart.
#[test]
fn a_daemon_started_before_queue_init_says_so_and_pulls_once_it_is_run() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let p = crate::queue::project(&nats, "[handlers.worker]\non = [\"job.due\"]\n");
    let daemon = p.start(&[]);
    wait_until(LIMIT, "the daemon to say what is missing", || {
        let stderr = daemon.stderr();
        stderr.contains("queue: no done-marker bucket AUTOD_DONE")
            && stderr.contains("run `autod queue init`; trying again in 2s")
    });
    p.autod(["queue", "init"]).assert().success();
    p.write("e1.json", event("job.due", "e1").to_string());
    p.autod(["send", "e1.json"]).assert().success();
    wait_until(LIMIT, "e1 to run", || p.results("e1", "worker") == ["ok"]);
}
