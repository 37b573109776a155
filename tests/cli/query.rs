//! `autod log` and `autod status`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Project, RECORD, event};

/// Two events through `good` (ok) and `bad` (failed), and one rejected event.
fn history() -> Project {
    let p = Project::new()
        .open_schema("note.saved")
        .config(
            r#"
            [handlers.good]
            on = ["note.saved"]
            [handlers.bad]
            on = ["note.saved"]
            retry = { initial = "1h", max = "1h" }
            "#,
        )
        .handler("good", RECORD)
        .handler("bad", "echo 'disk full' >&2; exit 1")
        .event("1.json", event("note.saved", "ev-1", json!({})))
        .event("2.json", event("note.saved", "ev-2", json!({})))
        .file("broken.json", "{");
    p.autod(["dispatch", "1.json", "2.json", "broken.json"])
        .run()
        .code(3);
    p
}

fn pairs(lines: &[Value]) -> Vec<(String, String, String)> {
    let mut out: Vec<_> = lines
        .iter()
        .map(|l| {
            (
                l["handler"].as_str().unwrap().to_owned(),
                l["eventId"].as_str().unwrap().to_owned(),
                l["result"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

fn t(h: &str, e: &str, r: &str) -> (String, String, String) {
    (h.into(), e.into(), r.into())
}

#[test]
fn log_json_prints_every_line_verbatim() {
    let p = history();
    let out = p.autod(["log", "--json"]).run();
    out.code(0);
    assert_eq!(out.stdout.lines().collect::<Vec<_>>(), p.log_raw());
    assert_eq!(
        pairs(&out.json_lines()),
        [
            t("-", "-", "rejected"),
            t("bad", "ev-1", "failed"),
            t("bad", "ev-2", "failed"),
            t("good", "ev-1", "ok"),
            t("good", "ev-2", "ok"),
        ]
    );
}

#[test]
fn log_filters_by_handler() {
    let p = history();
    let out = p.autod(["log", "--json", "--handler", "good"]).run();
    out.code(0);
    assert_eq!(
        pairs(&out.json_lines()),
        [t("good", "ev-1", "ok"), t("good", "ev-2", "ok")]
    );
}

#[test]
fn log_filters_by_result() {
    let p = history();
    let out = p.autod(["log", "--json", "--result", "failed"]).run();
    out.code(0);
    assert_eq!(
        pairs(&out.json_lines()),
        [t("bad", "ev-1", "failed"), t("bad", "ev-2", "failed")]
    );
    p.autod(["log", "--result", "exploded"])
        .run()
        .code(2)
        .stderr_has("exploded");
}

#[test]
fn log_filters_by_event_and_combines_filters() {
    let p = history();
    let out = p.autod(["log", "--json", "--event", "ev-2"]).run();
    assert_eq!(
        pairs(&out.json_lines()),
        [t("bad", "ev-2", "failed"), t("good", "ev-2", "ok")]
    );
    let out = p
        .autod(["log", "--json", "--event", "ev-2", "--handler", "bad"])
        .run();
    assert_eq!(pairs(&out.json_lines()), [t("bad", "ev-2", "failed")]);
}

#[test]
fn log_filters_by_time() {
    let p = history();
    let recent = p.autod(["log", "--json", "--since", "1h"]).run();
    assert_eq!(recent.json_lines().len(), 5, "{recent}");
    let future = p
        .autod(["log", "--json", "--since", "2999-01-01T00:00:00Z"])
        .run();
    future.code(0);
    assert_eq!(future.stdout, "");
    p.autod(["log", "--since", "a while ago"]).run().code(2);
}

#[test]
fn log_text_is_one_line_per_run() {
    let p = history();
    let out = p.autod(["log", "--handler", "bad"]).run();
    out.code(0);
    let lines: Vec<_> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    for l in lines {
        assert!(
            l.contains("failed") && l.contains("bad") && l.contains("disk full"),
            "{l}"
        );
    }
}

#[test]
fn log_follow_prints_new_lines_as_they_come() {
    let p = history();
    let follow = p
        .autod(["log", "-f", "--json", "--handler", "good"])
        .spawn_lines();
    follow.wait_for(Duration::from_secs(20), |l| l.contains("ev-2"));
    let p = p.event("3.json", event("note.saved", "ev-3", json!({})));
    p.autod(["dispatch", "3.json"]).run().code(1);
    let seen = follow.wait_for(Duration::from_secs(20), |l| l.contains("ev-3"));
    let line: Value = serde_json::from_str(seen.last().unwrap()).unwrap();
    assert_eq!(line["handler"], "good");
    assert_eq!(line["result"], "ok");
    assert!(
        seen.iter().all(|l| !l.contains("\"bad\"")),
        "the filter applies while following: {seen:#?}"
    );
}

#[test]
fn status_json_counts_dead_letters_by_state() {
    let p = Project::new()
        .open_schema("job.due")
        .config(
            r#"
            [handlers.waits]
            on = ["job.due"]
            retry = { initial = "1h", max = "1h" }
            [handlers.gives-up]
            on = ["job.due"]
            retry = { max_attempts = 1 }
            [handlers.refuses]
            on = ["job.due"]
            "#,
        )
        .handler("waits", "exit 1")
        .handler("gives-up", "exit 1")
        .handler("refuses", "exit 65")
        .event("1.json", event("job.due", "ev-1", json!({})))
        .event("2.json", event("job.due", "ev-2", json!({})));
    p.autod(["dispatch", "1.json", "2.json"]).run().code(1);
    let out = p.autod(["status", "--json"]).run();
    out.code(0);
    let status = out.json();
    assert_eq!(
        status["dead"],
        json!({"waiting": 2, "exhausted": 2, "permanent": 2, "unreadable": 0})
    );
    assert_eq!(status["root"], p.root().display().to_string());
    assert!(status["daemon"].is_null());
    assert_eq!(status["lastFailures"].as_array().unwrap().len(), 5);
    p.autod(["status"])
        .run()
        .code(0)
        .stdout_has("2 waiting, 2 exhausted, 2 permanent");
}

#[test]
fn status_of_a_fresh_project() {
    let p = Project::new();
    let out = p.autod(["status", "--json"]).run();
    out.code(0);
    assert_eq!(
        out.json()["dead"],
        json!({"waiting": 0, "exhausted": 0, "permanent": 0, "unreadable": 0})
    );
}

#[test]
fn log_reads_across_rotated_files() {
    let p = Project::new()
        .open_schema("note.saved")
        .config(
            r#"
            [log]
            max_bytes = 1000
            keep = 20
            [handlers.good]
            on = ["note.saved"]
            "#,
        )
        .handler("good", "exit 0");
    let stdin: Vec<String> = (0..30)
        .map(|i| event("note.saved", &format!("ev-{i}"), json!({})).to_string())
        .collect();
    p.autod(["dispatch", "-"])
        .stdin(stdin.join("\n"))
        .run()
        .code(0);
    assert!(p.exists(".autod/log/autod.log.1"), "the log was rotated");
    let out = p.autod(["log", "--json", "--result", "ok"]).run();
    out.code(0);
    let mut ids: Vec<String> = out
        .json_lines()
        .iter()
        .map(|l| l["eventId"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 30, "{out}");
}

#[test]
fn status_lists_no_failure_of_a_pair_that_later_succeeded() {
    let p = Project::new()
        .open_schema("job.due")
        .config("[handlers.h]\non = [\"job.due\"]\nretry = { max_attempts = 5, initial = \"1h\", max = \"1h\" }\n")
        .handler("h", "[ -f fixed ] || exit 1")
        .event("1.json", event("job.due", "ev-1", json!({})))
        .event("2.json", event("job.due", "ev-2", json!({})));
    p.autod(["dispatch", "1.json", "2.json"]).run().code(1);
    std::fs::write(p.path("fixed"), "").unwrap();
    p.autod(["retry", "ev-1"]).run().code(0);
    let status = p.autod(["status", "--json"]).run().json();
    let failures: Vec<&str> = status["lastFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["eventId"].as_str().unwrap())
        .collect();
    assert_eq!(failures, ["ev-2"], "{status}");
}
