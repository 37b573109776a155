//! Dead letters in state `waiting` are retried by the daemon when due.

use crate::helper::{LIMIT, Project, event, wait_until};

#[test]
fn a_failed_pair_is_retried_when_due_and_its_dead_letter_goes() {
    let p = Project::new()
        .open_schema("job.due")
        .config(
            r#"
            [handlers.flaky]
            on = ["job.due"]
            retry = { max_attempts = 3, initial = "1s", max = "2s" }
            "#,
        )
        // Fails the first time, succeeds the second.
        .handler(
            "flaky",
            r#"
            n=$(cat count 2>/dev/null || echo 0)
            n=$((n + 1))
            echo "$n" > count
            if [ "$n" -eq 1 ]; then echo "first try fails" >&2; exit 1; fi
            echo "$AUTOD_EVENT_ID $AUTOD_ATTEMPT" >> ran.txt
            "#,
        );
    let _daemon = p.start(&[]);
    p.inbox_put("e1.json", &event("job.due", "e1"));
    wait_until(LIMIT, "the first attempt to fail", || {
        p.results("e1", "flaky") == ["failed"]
    });
    let dead = p.dead_letter("flaky", "e1").expect("a dead letter");
    assert_eq!(dead["state"], "waiting");
    assert_eq!(dead["attempts"], 1);
    assert!(dead["nextAttemptAt"].is_string());
    // The event's one pair has an outcome: it leaves processing/.
    wait_until(LIMIT, "inbox/ and processing/ to empty", || p.drained());

    wait_until(LIMIT, "the automatic retry to succeed", || {
        p.done("e1", "flaky")
    });
    // The run-log line comes last, after the marker and the dead letter's removal.
    wait_until(LIMIT, "the retry to be logged", || {
        p.results("e1", "flaky").len() == 2
    });
    assert!(p.dead_letter("flaky", "e1").is_none());
    assert_eq!(p.results("e1", "flaky"), ["failed", "ok"]);
    assert_eq!(p.lines("ran.txt"), ["e1 2"]);
    let ok = p.log().into_iter().find(|l| l["result"] == "ok").unwrap();
    assert_eq!(ok["attempt"], 2);
}

#[test]
fn a_pair_that_always_fails_is_exhausted_and_logged_dead() {
    let p = Project::new()
        .open_schema("job.due")
        .config(
            r#"
            [handlers.broken]
            on = ["job.due"]
            retry = { max_attempts = 2, initial = "1s", max = "2s" }
            "#,
        )
        .handler(
            "broken",
            r#"
            echo "$AUTOD_ATTEMPT" >> attempts.txt
            echo "always fails" >&2
            exit 1
            "#,
        );
    let _daemon = p.start(&[]);
    p.inbox_put("e1.json", &event("job.due", "e1"));
    wait_until(LIMIT, "the retries to be exhausted", || {
        p.dead_letter("broken", "e1")
            .is_some_and(|d| d["state"] == "exhausted")
    });
    wait_until(LIMIT, "the dead line", || {
        p.results("e1", "broken").contains(&"dead".to_owned())
    });
    assert_eq!(p.results("e1", "broken"), ["failed", "failed", "dead"]);
    assert_eq!(p.lines("attempts.txt"), ["1", "2"]);
    let dead = p.dead_letter("broken", "e1").unwrap();
    assert_eq!(dead["attempts"], 2);
    assert!(dead["nextAttemptAt"].is_null());
    assert_eq!(dead["lastExitCode"], 1);
    assert!(
        dead["stderrTail"]
            .as_str()
            .unwrap()
            .contains("always fails")
    );
    assert!(!p.done("e1", "broken"));
    assert!(p.drained());
}
