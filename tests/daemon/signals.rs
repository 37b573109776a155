//! SIGTERM: intake stops, running handlers get --grace to finish, then their
//! process groups are stopped and their events wait in processing/.

use std::time::{Duration, Instant};

use crate::helper::{LIMIT, Project, alive, event, wait_until};

#[test]
fn sigterm_waits_for_a_handler_that_finishes_within_the_grace() {
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
            echo started > started.txt
            sleep 2
            echo "$AUTOD_EVENT_ID" >> ran.txt
            "#,
        );
    let mut daemon = p.start(&["--grace", "10s"]);
    p.inbox_put("e1.json", &event("job.due", "e1"));
    wait_until(LIMIT, "the handler to start", || p.exists("started.txt"));
    daemon.terminate();
    let status = daemon.wait(Duration::from_secs(10));
    assert!(status.success(), "{status:?}\n{}", daemon.stderr());
    assert_eq!(p.lines("ran.txt"), ["e1"]);
    assert!(p.done("e1", "slow"));
    assert_eq!(p.results("e1", "slow"), ["ok"]);
    assert!(p.drained(), "the finished event left processing/");
}

#[test]
fn sigterm_stops_a_handler_past_the_grace_and_the_next_start_delivers_it() {
    let p = Project::new()
        .open_schema("job.due")
        .config(
            r#"
            [handlers.stuck]
            on = ["job.due"]
            "#,
        )
        // The first run hangs (and says which processes it is); later runs finish.
        .handler(
            "stuck",
            r#"
            if [ ! -e hung-once ]; then
                : > hung-once
                sleep 60 &
                echo "$$ $!" > pids.tmp && mv pids.tmp pids
                wait $!
            fi
            echo "$AUTOD_EVENT_ID" >> ran.txt
            "#,
        );
    let mut daemon = p.start(&["--grace", "1s"]);
    p.inbox_put("e1.json", &event("job.due", "e1"));
    wait_until(LIMIT, "the handler to start", || p.exists("pids"));
    let pids: Vec<u32> = p
        .read("pids")
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    assert!(pids.iter().all(|&pid| alive(pid)));

    let asked = Instant::now();
    daemon.terminate();
    let status = daemon.wait(Duration::from_secs(10));
    assert!(status.success(), "{status:?}\n{}", daemon.stderr());
    assert!(
        asked.elapsed() < Duration::from_secs(8),
        "took {:?} to stop",
        asked.elapsed()
    );
    // The shell and the sleep it started (its process group) are gone.
    wait_until(
        Duration::from_secs(2),
        "the handler's group to be gone",
        || pids.iter().all(|&pid| !alive(pid)),
    );
    assert_eq!(
        p.processing(),
        ["e1.json"],
        "the event waits for the next start"
    );
    assert!(!p.exists("ran.txt"));
    assert!(!p.done("e1", "stuck"));
    assert!(
        p.dead_letter("stuck", "e1").is_none(),
        "a shutdown is not a failure"
    );
    assert!(!p.logged("failed").contains(&"e1".to_owned()));

    let _again = p.start(&["--grace", "1s"]);
    wait_until(LIMIT, "the recovered event to be delivered", || {
        p.done("e1", "stuck")
    });
    wait_until(LIMIT, "processing/ to empty", || p.drained());
    assert_eq!(p.lines("ran.txt"), ["e1"]);
    // The stopped run is logged as interrupted (nothing else is recorded).
    assert_eq!(p.results("e1", "stuck"), ["interrupted", "ok"]);
}

fn slow_project() -> Project {
    Project::new()
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
            sleep 1
            echo "$AUTOD_EVENT_ID" >> ran.txt
            "#,
        )
}

/// Puts `ids` into the inbox, a second apart in mtime, so they are claimed in
/// this order.
fn queue(p: &Project, ids: &[&str], key: Option<&str>) {
    let base = std::time::SystemTime::now() - Duration::from_secs(60);
    for (i, id) in ids.iter().enumerate() {
        let mut e = event("job.due", id);
        if let Some(key) = key {
            e["key"] = key.into();
        }
        let mtime = base + Duration::from_secs(u64::try_from(i).unwrap());
        p.inbox_put_at(&format!("{id}.json"), &e, Some(mtime));
    }
}

/// SIGTERM while `e1` runs and the rest wait: only `e1` finishes, nothing else
/// starts, the rest wait in processing/ and the next start delivers them.
fn stop_with_a_queue(p: &Project, run_args: &[&str]) {
    let mut daemon = p.start(run_args);
    wait_until(LIMIT, "e1 to start", || p.lines("started.txt") == ["e1"]);
    let asked = Instant::now();
    daemon.terminate();
    let status = daemon.wait(Duration::from_secs(15));
    assert!(status.success(), "{status:?}\n{}", daemon.stderr());
    assert_eq!(
        p.lines("started.txt"),
        ["e1"],
        "nothing started after SIGTERM"
    );
    assert_eq!(p.lines("ran.txt"), ["e1"], "the running handler finished");
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "stopping took {:?}",
        asked.elapsed()
    );
    assert_eq!(p.processing(), ["e2.json", "e3.json"]);

    let _again = p.start(run_args);
    wait_until(LIMIT, "the queued events to be delivered", || {
        p.done("e2", "slow") && p.done("e3", "slow")
    });
    wait_until(LIMIT, "processing/ to empty", || p.drained());
    assert_eq!(p.lines("ran.txt"), ["e1", "e2", "e3"]);
}

#[test]
fn sigterm_starts_no_event_waiting_behind_its_key() {
    let p = slow_project();
    queue(&p, &["e1", "e2", "e3"], Some("same"));
    stop_with_a_queue(&p, &["--jobs", "4", "--grace", "10s"]);
}

#[test]
fn sigterm_starts_no_event_waiting_for_a_job_slot() {
    let p = slow_project();
    queue(&p, &["e1", "e2", "e3"], None);
    stop_with_a_queue(&p, &["--jobs", "1", "--grace", "10s"]);
}

#[test]
fn sigint_stops_an_idle_daemon_like_sigterm() {
    let p = Project::new();
    let mut daemon = p.start(&[]);
    daemon.signal(rustix::process::Signal::INT);
    let status = daemon.wait(Duration::from_secs(10));
    assert!(status.success(), "{status:?}\n{}", daemon.stderr());
    assert!(daemon.stderr().contains("SIGINT"), "{}", daemon.stderr());
    let out = p.autod(["status", "--json"]).assert().success();
    let status: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert!(status["daemon"].is_null(), "{status}");
}

#[test]
fn a_handler_that_ignores_sigterm_is_killed_with_its_group_after_the_grace() {
    let p = Project::new()
        .open_schema("job.due")
        .config(
            r#"
            [handlers.stubborn]
            on = ["job.due"]
            kill_grace = "1s"
            "#,
        )
        // SIGTERM is ignored by the shell and, inherited, by its sleep.
        .handler(
            "stubborn",
            r#"
            trap '' TERM
            sleep 60 &
            echo "$$ $!" > pids.tmp && mv pids.tmp pids
            wait $!
            "#,
        );
    let mut daemon = p.start(&["--grace", "1s"]);
    p.inbox_put("e1.json", &event("job.due", "e1"));
    wait_until(LIMIT, "the handler to start", || p.exists("pids"));
    let pids: Vec<u32> = p
        .read("pids")
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    let asked = Instant::now();
    daemon.terminate();
    let status = daemon.wait(Duration::from_secs(10));
    assert!(status.success(), "{status:?}\n{}", daemon.stderr());
    assert!(
        asked.elapsed() < Duration::from_secs(6),
        "took {:?} to stop",
        asked.elapsed()
    );
    wait_until(
        Duration::from_secs(2),
        "the handler's group to be gone",
        || pids.iter().all(|&pid| !alive(pid)),
    );
    assert_eq!(p.processing(), ["e1.json"]);
    assert!(p.dead_letter("stubborn", "e1").is_none());
}
