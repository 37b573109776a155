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
fn log_lines_keeps_only_the_last_n_matching() {
    let p = history();
    let all: Vec<String> = p.log_raw();
    let out = p.autod(["log", "--json", "-n", "2"]).run();
    out.code(0);
    assert_eq!(out.stdout.lines().collect::<Vec<_>>(), all[all.len() - 2..]);
    let out = p
        .autod(["log", "--json", "--handler", "good", "--lines", "1"])
        .run();
    let lines = out.json_lines();
    assert_eq!(lines.len(), 1, "{out}");
    // Runs of one dispatch finish in any order: the log's last `good` line.
    let last_good = p
        .log()
        .into_iter()
        .rfind(|l| l["handler"] == "good")
        .unwrap();
    assert_eq!(lines[0]["eventId"], last_good["eventId"]);
    p.autod(["log", "-n", "0"]).run().code(0);
    assert_eq!(p.autod(["log", "-n", "0"]).run().stdout, "");
    p.autod(["log", "-n", "many"])
        .run()
        .code(2)
        .stderr_has("invalid value 'many'");
}

#[test]
fn log_follow_starts_from_the_last_ten_lines_like_tail() {
    let p = Project::new()
        .open_schema("note.saved")
        .config("[handlers.good]\non = [\"note.saved\"]\n")
        .handler("good", RECORD);
    let files: Vec<String> = (1..=12).map(|i| format!("{i}.json")).collect();
    let p = (1..=12).fold(p, |p, i| {
        p.event(
            &format!("{i}.json"),
            event("note.saved", &format!("ev-{i}"), json!({})),
        )
    });
    p.autod(
        ["dispatch"]
            .into_iter()
            .chain(files.iter().map(String::as_str)),
    )
    .run()
    .code(0);
    // The runs of one dispatch finish in any order: the log's own order counts.
    let logged: Vec<String> = p
        .log()
        .iter()
        .map(|l| l["eventId"].as_str().unwrap().to_owned())
        .collect();
    let follow = p.autod(["log", "-f", "--json"]).spawn_lines();
    let p = p.event("13.json", event("note.saved", "ev-13", json!({})));
    p.autod(["dispatch", "13.json"]).run().code(0);
    let seen = follow.wait_for(Duration::from_secs(20), |l| l.contains("\"ev-13\""));
    let ids: Vec<String> = seen
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["eventId"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let mut want: Vec<String> = logged[logged.len() - 10..].to_vec();
    want.push("ev-13".to_owned());
    assert_eq!(ids, want, "the last 10 lines, then the new one, each once");

    let follow = p.autod(["log", "-f", "--json", "-n", "1"]).spawn_lines();
    let seen = follow.wait_for(Duration::from_secs(20), |l| l.contains("\"ev-13\""));
    assert_eq!(seen.len(), 1, "{seen:#?}");
}

#[test]
fn log_output_shows_what_a_successful_run_printed() {
    let p = Project::new()
        .open_schema("note.saved")
        .config(
            "[handlers.chatty]\non = [\"note.saved\"]\n[handlers.quiet]\non = [\"note.saved\"]\n",
        )
        .handler(
            "chatty",
            "cat >/dev/null; echo 'wrote 3 notes'; echo 'slow disk' >&2",
        )
        .handler("quiet", "cat >/dev/null")
        .event("1.json", event("note.saved", "ev-1", json!({})));
    p.autod(["dispatch", "1.json"]).run().code(0);
    assert_eq!(
        p.read(".autod/out/ev-1/chatty/.stdout.1"),
        "wrote 3 notes\n"
    );
    assert_eq!(p.read(".autod/out/ev-1/chatty/.stderr.1"), "slow disk\n");
    assert!(
        !p.exists(".autod/out/ev-1/quiet/.stdout.1")
            && !p.exists(".autod/out/ev-1/quiet/.stderr.1"),
        "a quiet handler leaves no output files"
    );

    let plain = p.autod(["log"]).run();
    assert!(!plain.stdout.contains("wrote 3 notes"), "{plain}");
    let out = p.autod(["log", "--output", "--handler", "chatty"]).run();
    out.code(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].contains("ok") && lines[0].contains("chatty"),
        "{out}"
    );
    assert_eq!(lines[1].trim(), "stdout| wrote 3 notes");
    assert_eq!(lines[2].trim(), "stderr| slow disk");

    let json = p
        .autod(["log", "-o", "--json", "--handler", "chatty"])
        .run();
    let line = &json.json_lines()[0];
    assert_eq!(line["stdout"], "wrote 3 notes\n");
    assert_eq!(line["stderr"], "slow disk\n");
}

#[test]
fn kept_output_is_per_attempt_and_bounded() {
    // 100 KiB on stdout: the runner keeps the last 64 KiB, and so does the file.
    let p = Project::new()
        .open_schema("note.saved")
        .config("[handlers.flaky]\non = [\"note.saved\"]\nretry = { initial = \"1s\", max = \"1s\" }\n")
        .handler(
            "flaky",
            "cat >/dev/null; head -c 102400 /dev/zero | tr '\\0' x; echo; echo \"attempt $AUTOD_ATTEMPT\" >&2; [ \"$AUTOD_ATTEMPT\" = 2 ]",
        )
        .event("1.json", event("note.saved", "ev-1", json!({})));
    p.autod(["dispatch", "1.json"]).run().code(1);
    p.autod(["retry", "ev-1"]).run().code(0);
    assert_eq!(p.read(".autod/out/ev-1/flaky/.stderr.1"), "attempt 1\n");
    assert_eq!(p.read(".autod/out/ev-1/flaky/.stderr.2"), "attempt 2\n");
    let kept = std::fs::metadata(p.path(".autod/out/ev-1/flaky/.stdout.2"))
        .unwrap()
        .len();
    assert_eq!(kept, 64 * 1024);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(p.path(".autod/out/ev-1/flaky/.stdout.2"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "kept output is private");
    let out = p.autod(["log", "--output", "--result", "failed"]).run();
    assert!(
        out.stdout.contains("stderr| attempt 1") && !out.stdout.contains("attempt 2"),
        "{out}"
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

#[test]
fn status_shows_schedules_with_next_and_last_fire_and_watches() {
    let p = Project::new()
        .open_schema("job.due")
        .config(
            r#"
            [handlers.h]
            on = ["job.due"]
            [[schedules]]
            name = "new-year"
            cron = "0 0 1 1 *"
            timezone = "Asia/Kathmandu"
            event_type = "job.due"
            [[watches]]
            name = "drops"
            path = "drop"
            glob = "*.md"
            event_type = "job.due"
            [[watches]]
            name = "gone"
            path = "nowhere"
            event_type = "job.due"
            "#,
        )
        .handler("h", RECORD)
        .file("drop/.keep", "")
        .file(
            ".autod/schedules/new-year.json",
            r#"{"version":1,"lastFire":"2025-12-31T18:15:00.000Z"}"#,
        );
    let out = p.autod(["status", "--json"]).run();
    out.code(0);
    let v = &out.json_lines()[0];
    let s = &v["schedules"][0];
    assert_eq!(s["name"], "new-year");
    assert_eq!(s["timezone"], "Asia/Kathmandu");
    assert_eq!(s["last"], "2025-12-31T18:15:00.000Z");
    // Midnight on 1 January in Kathmandu (+05:45) is 18:15 UTC the day before.
    let local = regex::Regex::new(r"^(\d{4})-01-01T00:00:00\+05:45$").unwrap();
    let utc = regex::Regex::new(r"^(\d{4})-12-31T18:15:00\.000Z$").unwrap();
    let year: u32 = local
        .captures(s["nextLocal"].as_str().unwrap())
        .expect("local next")[1]
        .parse()
        .unwrap();
    let utc_year: u32 = utc.captures(s["next"].as_str().unwrap()).expect("UTC next")[1]
        .parse()
        .unwrap();
    assert_eq!(utc_year + 1, year, "{s}");
    assert_eq!(
        v["watches"],
        json!([
            {"name": "drops", "path": "drop", "glob": "*.md", "eventType": "job.due", "exists": true},
            {"name": "gone", "path": "nowhere", "glob": null, "eventType": "job.due", "exists": false},
        ])
    );

    let text = p.autod(["status"]).run();
    text.code(0);
    assert!(
        text.stdout.lines().any(|l| l.contains("new-year")
            && l.contains("+05:45")
            && l.contains("last 2025-12-31T18:15:00.000Z")
            && l.contains("job.due")),
        "{text}"
    );
    assert!(
        text.stdout
            .lines()
            .any(|l| l.contains("gone") && l.contains("folder missing")),
        "{text}"
    );
    assert!(
        text.stdout
            .lines()
            .any(|l| l.contains("drops") && l.contains("(*.md)")),
        "{text}"
    );
}
