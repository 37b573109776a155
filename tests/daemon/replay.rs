//! `autod replay` while a daemon runs: the events go through its inbox, so
//! the replay and the daemon never compete for the same pairs.

use crate::helper::{LIMIT, Project, event, wait_until};

fn stderr(out: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&out.get_output().stderr).into_owned()
}

#[test]
fn replay_goes_through_the_running_daemons_inbox() {
    // `worker` failed once, before the daemon started; its retry is far off.
    let p = Project::new()
        .open_schema("job.due")
        .config(
            r#"
            [handlers.worker]
            on = ["job.due"]
            retry = { initial = "1h", max = "1h" }
            "#,
        )
        .handler(
            "worker",
            r#"[ -e broken ] && exit 1
            echo "$AUTOD_EVENT_ID" >> ran.txt"#,
        );
    p.write("broken", "");
    p.write("a.json", event("job.due", "a").to_string());
    p.write("b.json", event("job.due", "b").to_string());
    p.autod(["dispatch", "a.json"]).assert().code(1);
    std::fs::remove_file(p.path("broken")).unwrap();
    p.autod(["dispatch", "b.json"]).assert().success();
    let daemon = p.start(&[]);

    // What the daemon cannot honour per event is refused, saying what to do.
    let refused = p
        .autod(["replay", "--since", "1h", "--force"])
        .assert()
        .code(2);
    let text = stderr(&refused);
    assert!(text.contains(&format!("pid {}", daemon.pid())), "{text}");
    assert!(
        text.contains("--force") && text.contains("--direct"),
        "{text}"
    );

    let out = p.autod(["replay", "--since", "1h"]).assert().success();
    let text = stderr(&out);
    assert!(text.contains("through the running daemon"), "{text}");
    assert!(
        text.contains("replayed 2 events through the daemon: 2 queued, 0 no longer valid"),
        "{text}"
    );
    wait_until(LIMIT, "the daemon to run the failed pair", || {
        p.done("a", "worker")
    });
    wait_until(LIMIT, "inbox/ and processing/ to empty", || p.drained());
    // b had succeeded: the daemon skipped it.
    let mut ran = p.lines("ran.txt");
    ran.sort();
    assert_eq!(ran, ["a", "b"]);
    assert_eq!(p.results("b", "worker"), ["ok", "skipped"]);
    // The daemon knows them for a replay (by their inbox name) and says so.
    let replayed: Vec<_> = p
        .log()
        .into_iter()
        .filter(|l| l["replay"] == true)
        .collect();
    assert_eq!(replayed.len(), 2, "{replayed:?}");
    assert!(
        replayed
            .iter()
            .any(|l| l["eventId"] == "a" && l["result"] == "ok")
    );

    // --direct runs here, beside the daemon, under the same pair locks.
    let out = p
        .autod(["replay", "--since", "1h", "--direct", "--force"])
        .assert()
        .success();
    let text = stderr(&out);
    assert!(
        text.contains("replayed 2 events: 2 ok, 0 skipped, 0 failed"),
        "{text}"
    );
    assert_eq!(p.lines("ran.txt").len(), 4);
    let replayed = p.log().iter().filter(|l| l["replay"] == true).count();
    assert_eq!(replayed, 4);
}

#[test]
fn the_daemon_prunes_the_archive_at_start() {
    let p = Project::new()
        .open_schema("job.due")
        .config(
            r#"
            [archive]
            retention = "7d"
            [handlers.worker]
            on = ["job.due"]
            "#,
        )
        .handler("worker", "true");
    let old = format!(
        "{:.3}",
        jiff::Timestamp::now() - jiff::SignedDuration::from_hours(9 * 24)
    );
    let mut e = event("job.due", "old");
    e["ts"] = serde_json::json!(old);
    p.write("old.json", e.to_string());
    p.autod(["dispatch", "old.json"]).assert().success();
    let day = format!(".autod/archive/{}", &old[..10]);
    // Written long enough ago that no handler can still be reading it.
    std::fs::File::options()
        .write(true)
        .open(p.path(&format!("{day}/old.json")))
        .unwrap()
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3 * 3600))
        .unwrap();
    let daemon = p.start(&[]);
    wait_until(LIMIT, "the day past retention to be removed", || {
        !p.exists(&day)
    });
    wait_until(LIMIT, "the daemon to say so", || {
        daemon.stderr().contains("archive: removed")
    });
}
