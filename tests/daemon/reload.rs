//! SIGHUP reloads autod.toml; a config that does not load keeps the old one.

use rustix::process::Signal;

use crate::helper::{LIMIT, Project, event, wait_until};

const ONE: &str = r#"
    [handlers.one]
    on = ["job.due"]
    "#;

const ONE_AND_TWO: &str = r#"
    [handlers.one]
    on = ["job.due"]

    [handlers.two]
    on = ["job.due"]
    "#;

fn project() -> Project {
    Project::new()
        .open_schema("job.due")
        .config(ONE)
        .handler("one", r#"echo "one $AUTOD_EVENT_ID" >> ran.txt"#)
        .handler("two", r#"echo "two $AUTOD_EVENT_ID" >> ran.txt"#)
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn sighup_picks_up_a_new_handler() {
    let p = project();
    let mut daemon = p.start(&[]);
    p.inbox_put("e1.json", &event("job.due", "e1"));
    wait_until(LIMIT, "e1 to be delivered", || p.done("e1", "one"));

    p.set_config(ONE_AND_TWO);
    daemon.signal(Signal::HUP);
    wait_until(LIMIT, "the reload to be logged", || {
        daemon.stderr().contains("reloaded autod.toml")
    });
    p.inbox_put("e2.json", &event("job.due", "e2"));
    wait_until(LIMIT, "e2 to reach both handlers", || {
        p.done("e2", "one") && p.done("e2", "two")
    });
    wait_until(LIMIT, "inbox/ and processing/ to empty", || p.drained());
    assert_eq!(sorted(p.lines("ran.txt")), ["one e1", "one e2", "two e2"]);
    assert!(daemon.running());
}

#[test]
fn sighup_with_a_broken_config_keeps_the_old_one() {
    let p = project().config(ONE_AND_TWO);
    let mut daemon = p.start(&[]);

    p.set_config("[handlers.one\non = [\"job.due\"]\n");
    daemon.signal(Signal::HUP);
    wait_until(LIMIT, "the refusal to be logged", || {
        daemon.stderr().contains("kept the old config")
    });
    let stderr = daemon.stderr();
    assert!(stderr.contains("invalid"), "{stderr}");
    assert!(daemon.running(), "a bad config does not stop the daemon");

    p.inbox_put("e1.json", &event("job.due", "e1"));
    wait_until(LIMIT, "e1 to reach both handlers", || {
        p.done("e1", "one") && p.done("e1", "two")
    });
    assert_eq!(sorted(p.lines("ran.txt")), ["one e1", "two e1"]);

    // An invalid-but-parseable config (a handler with a bad retry) is refused too.
    p.set_config(
        r#"
        [handlers.one]
        on = ["job.due"]
        retry = { max_attempts = 0 }
        "#,
    );
    daemon.signal(Signal::HUP);
    wait_until(LIMIT, "the second refusal to be logged", || {
        daemon.stderr().matches("kept the old config").count() == 2
    });
    p.inbox_put("e2.json", &event("job.due", "e2"));
    wait_until(LIMIT, "e2 to reach both handlers", || {
        p.done("e2", "one") && p.done("e2", "two")
    });
    assert!(daemon.running());
}
