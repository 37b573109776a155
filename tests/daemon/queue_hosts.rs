//! `autod log` and `autod trace` per host (SPEC 10) with two workers on a
//! real nats-server: each host's run log has its own runs, each line names
//! its host, and `--host` picks one host's lines out of a merged log.

use serde_json::Value;

use crate::helper::{Project, event};
use crate::nats::NatsServer;
use crate::queue::{json_of, read_lines, shared_out, status, two_workers};

#[test]
fn log_and_trace_on_each_host_show_that_hosts_runs() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let (_shared, out) = shared_out();
    let (a, b) = two_workers(&nats, &out, "ran.txt");
    let _da = a.start_with_env(&[], &[("AUTOD_HOST", "host-a")]);
    let _db = b.start_with_env(&[], &[("AUTOD_HOST", "host-b")]);
    let events: String = (0..40)
        .map(|i| event("job.due", &format!("t{i:02}")).to_string() + "\n")
        .collect();
    a.autod(["send", "-"])
        .write_stdin(events)
        .assert()
        .success();
    crate::helper::wait_until(crate::helper::LIMIT, "40 runs", || {
        read_lines(&out.join("ran.txt")).len() >= 40
    });
    crate::helper::wait_until(crate::helper::LIMIT, "every pair acked", || {
        status(&a)["handlers"][0]["lag"] == 0
    });

    let log_of = |p: &Project, args: &[&str]| -> Vec<Value> {
        let out = p.autod(["log", "--json"]).args(args).assert().success();
        String::from_utf8_lossy(&out.get_output().stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let (on_a, on_b) = (log_of(&a, &[]), log_of(&b, &[]));
    assert_eq!(on_a.len() + on_b.len(), 40, "a: {on_a:?}\nb: {on_b:?}");
    assert!(on_a.iter().all(|l| l["host"] == "host-a"), "{on_a:?}");
    assert!(on_b.iter().all(|l| l["host"] == "host-b"), "{on_b:?}");
    assert_eq!(log_of(&a, &["--host", "host-a"]).len(), on_a.len());
    assert!(log_of(&a, &["--host", "host-b"]).is_empty());

    // The human line names the host after the time.
    let human = a.autod(["log", "-n", "1"]).assert().success();
    let human = String::from_utf8_lossy(&human.get_output().stdout).into_owned();
    assert!(human.contains("Z  host-a       ok"), "{human}");

    // A pair is traced on the host that ran it, with its host; the other
    // host's run log does not have it (each reads its own).
    let (ran, other, line, host_name) = match on_a.first() {
        Some(l) => (&a, &b, l, "host-a"),
        None => (&b, &a, &on_b[0], "host-b"),
    };
    let id = line["eventId"].as_str().unwrap().to_owned();
    let tree = json_of(&ran.autod(["trace", &id, "--json"]).assert().success());
    assert_eq!(tree["roots"][0]["runs"][0]["host"], host_name, "{tree}");
    let text = ran.autod(["trace", &id]).assert().success();
    let text = String::from_utf8_lossy(&text.get_output().stdout).into_owned();
    assert!(
        text.contains(&format!("worker ok  on {host_name}")),
        "{text}"
    );
    other
        .autod(["trace", &id])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(format!(
            "no run-log line names eventId {id}"
        )));
}
