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
    assert_eq!(p.results("e1", "stuck"), ["ok"]);
}
