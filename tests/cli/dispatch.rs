//! `autod dispatch`: what a handler receives, fan-out, routing, dry runs.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::common::{Project, RECORD, event};

/// A handler that writes down everything it was given, in the root.
const INSPECT: &str = r#"
    cat > stdin.json
    pwd -P > cwd.txt
    cp "$AUTOD_EVENT_FILE" event-file.json
    {
      echo "AUTOD_EVENT_ID=$AUTOD_EVENT_ID"
      echo "AUTOD_EVENT_TYPE=$AUTOD_EVENT_TYPE"
      echo "AUTOD_EVENT_SOURCE=$AUTOD_EVENT_SOURCE"
      echo "AUTOD_HANDLER=$AUTOD_HANDLER"
      echo "AUTOD_ATTEMPT=$AUTOD_ATTEMPT"
      echo "AUTOD_EVENT_FILE=$AUTOD_EVENT_FILE"
      echo "AUTOD_OUTPUT_DIR=$AUTOD_OUTPUT_DIR"
      echo "AUTOD_CORRELATION_ID=$AUTOD_CORRELATION_ID"
      echo "GREETING=$GREETING"
    } > env.txt
    if [ -d "$AUTOD_OUTPUT_DIR" ]; then echo artifact > "$AUTOD_OUTPUT_DIR/artifact.txt"; fi
"#;

fn inspect_project() -> Project {
    Project::new()
        .open_schema("note.saved")
        .config(
            r#"
            [handlers.archiver]
            on = ["note.saved"]
            env = { GREETING = "hello from autod.toml" }
            "#,
        )
        .handler("archiver", INSPECT)
}

fn env_file(p: &Project) -> HashMap<String, String> {
    p.lines("env.txt")
        .iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

#[test]
fn handler_gets_the_event_on_stdin_and_its_environment() {
    let p = inspect_project().event(
        "e.json",
        json!({"eventType": "note.saved", "eventId": "ev-1", "source": "cli",
               "payload": {"title": "hi"}, "extra": {"kept": true}}),
    );
    p.autod(["dispatch", "e.json"]).run().code(0);

    let stdin: serde_json::Value = serde_json::from_str(&p.read("stdin.json")).unwrap();
    assert_eq!(stdin["eventId"], "ev-1");
    assert_eq!(stdin["payload"], json!({"title": "hi"}));
    assert_eq!(
        stdin["extra"],
        json!({"kept": true}),
        "unknown fields pass through"
    );
    assert!(stdin["ts"].is_string(), "ts is filled in: {stdin}");
    let file: serde_json::Value = serde_json::from_str(&p.read("event-file.json")).unwrap();
    assert_eq!(file, stdin, "AUTOD_EVENT_FILE holds the event");

    let root = p.root().display().to_string();
    assert_eq!(
        p.read("cwd.txt").trim(),
        root,
        "the handler runs in the root"
    );
    let env = env_file(&p);
    let expected = [
        ("AUTOD_EVENT_ID", "ev-1".to_owned()),
        ("AUTOD_EVENT_TYPE", "note.saved".to_owned()),
        ("AUTOD_EVENT_SOURCE", "cli".to_owned()),
        ("AUTOD_HANDLER", "archiver".to_owned()),
        ("AUTOD_ATTEMPT", "1".to_owned()),
        (
            "AUTOD_EVENT_FILE",
            format!("{root}/.autod/archive/{}/ev-1.json", crate::common::today()),
        ),
        (
            "AUTOD_OUTPUT_DIR",
            format!("{root}/.autod/out/ev-1/archiver"),
        ),
        ("AUTOD_CORRELATION_ID", "ev-1".to_owned()),
        ("GREETING", "hello from autod.toml".to_owned()),
    ];
    for (key, want) in expected {
        assert_eq!(env.get(key), Some(&want), "{key} in {env:#?}");
    }
    assert_eq!(
        p.read(".autod/out/ev-1/archiver/artifact.txt"),
        "artifact\n"
    );
    assert!(p.done("ev-1", "archiver"));
}

#[test]
fn correlation_id_of_the_event_is_passed_on() {
    let mut ev = event("note.saved", "ev-2", json!({}));
    ev["correlationId"] = json!("chain-7");
    let p = inspect_project().event("e.json", ev);
    p.autod(["dispatch", "e.json"]).run().code(0);
    assert_eq!(env_file(&p)["AUTOD_CORRELATION_ID"], "chain-7");
}

#[test]
fn event_without_id_gets_one() {
    let p = inspect_project().event(
        "e.json",
        json!({"eventType": "note.saved", "source": "cli", "payload": {}}),
    );
    p.autod(["dispatch", "e.json"]).run().code(0);
    let id = env_file(&p)["AUTOD_EVENT_ID"].clone();
    assert!(id.len() >= 32, "a UUID: {id}");
    assert!(p.done(&id, "archiver"));
}

#[test]
fn run_log_line_starts_with_ts_event_handler_result() {
    let p = inspect_project().event("e.json", event("note.saved", "ev-1", json!({})));
    p.autod(["dispatch", "e.json"]).run().code(0);
    let raw = p.log_raw();
    assert_eq!(raw.len(), 1, "{raw:#?}");
    let line: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&raw[0]).unwrap();
    let keys: Vec<&str> = line.keys().map(String::as_str).take(4).collect();
    assert_eq!(keys, ["ts", "eventId", "handler", "result"], "{}", raw[0]);
    assert!(raw[0].starts_with(r#"{"ts":""#), "{}", raw[0]);
    assert_eq!(line["eventId"], "ev-1");
    assert_eq!(line["handler"], "archiver");
    assert_eq!(line["result"], "ok");
    assert_eq!(line["eventType"], "note.saved");
    assert_eq!(line["attempt"], 1);
    assert_eq!(line["exitCode"], 0);
    assert!(
        line["ts"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .is_ok()
    );
}

#[test]
fn fan_out_one_failing_handler_does_not_stop_the_others() {
    let p = Project::new()
        .open_schema("note.saved")
        .config(
            r#"
            [handlers.a-fails]
            on = ["note.saved"]
            [handlers.b-works]
            on = ["note.saved"]
            [handlers.c-works]
            on = ["note.*"]
            "#,
        )
        .handler("a-fails", "echo 'a is broken' >&2; exit 1")
        .handler("b-works", RECORD)
        .handler("c-works", RECORD)
        .event("e.json", event("note.saved", "ev-1", json!({})));
    p.autod(["dispatch", "e.json"])
        .run()
        .code(1)
        .stderr_has("a is broken");
    assert_eq!(
        p.runs(),
        ["b-works note.saved ev-1 1", "c-works note.saved ev-1 1"]
    );
    assert!(p.done("ev-1", "b-works") && p.done("ev-1", "c-works"));
    assert!(!p.done("ev-1", "a-fails"));
    assert_eq!(p.dead_letter("a-fails", "ev-1")["state"], "waiting");
    assert_eq!(
        p.logged("ok"),
        [
            ("b-works".into(), "ev-1".into()),
            ("c-works".into(), "ev-1".into())
        ]
    );
    assert_eq!(p.logged("failed"), [("a-fails".into(), "ev-1".into())]);
}

#[test]
fn star_matches_one_segment_and_double_star_any_depth() {
    let p = Project::new()
        .config(
            r#"
            [validation]
            require_schema = false
            [handlers.exact]
            on = ["note.saved"]
            [handlers.one-level]
            on = ["note.*"]
            [handlers.any-depth]
            on = ["note.**"]
            [handlers.suffix]
            on = ["*.saved"]
            "#,
        )
        .handler("exact", RECORD)
        .handler("one-level", RECORD)
        .handler("any-depth", RECORD)
        .handler("suffix", RECORD)
        .event("1.json", event("note.saved", "e1", json!({})))
        .event("2.json", event("note.saved.v2", "e2", json!({})))
        .event("3.json", event("note.deleted", "e3", json!({})))
        .event("4.json", event("photo.saved", "e4", json!({})));
    p.autod(["dispatch", "1.json", "2.json", "3.json", "4.json"])
        .run()
        .code(0);
    assert_eq!(
        p.runs(),
        [
            "any-depth note.deleted e3 1",
            "any-depth note.saved e1 1",
            "any-depth note.saved.v2 e2 1",
            "exact note.saved e1 1",
            "one-level note.deleted e3 1",
            "one-level note.saved e1 1",
            "suffix note.saved e1 1",
            "suffix photo.saved e4 1",
        ]
    );
}

#[test]
fn unrouted_event_is_rejected() {
    let p = Project::new()
        .open_schema("note.saved")
        .open_schema("orphan.event")
        .config(
            r#"
            [handlers.indexer]
            on = ["note.saved"]
            "#,
        )
        .handler("indexer", RECORD)
        .event("orphan.json", event("orphan.event", "ev-1", json!({})));
    p.autod(["dispatch", "orphan.json"])
        .run()
        .code(3)
        .stderr_has("orphan.json")
        .stderr_has("no handler");
    assert!(p.runs().is_empty());
    assert_eq!(p.logged("rejected"), [("-".into(), "ev-1".into())]);
}

#[test]
fn unrouted_event_is_accepted_when_ignored() {
    let p = Project::new()
        .open_schema("note.saved")
        .open_schema("orphan.event")
        .config(
            r#"
            [routing]
            unrouted = "ignore"
            [handlers.indexer]
            on = ["note.saved"]
            "#,
        )
        .handler("indexer", RECORD)
        .event("orphan.json", event("orphan.event", "ev-1", json!({})));
    p.autod(["dispatch", "orphan.json"]).run().code(0);
    assert!(p.runs().is_empty());
    assert!(p.logged("rejected").is_empty());
}

fn recorder_project() -> Project {
    Project::new()
        .open_schema("note.saved")
        .config(
            r#"
            [handlers.indexer]
            on = ["note.saved"]
            [handlers.mailer]
            on = ["note.*"]
            "#,
        )
        .handler("indexer", RECORD)
        .handler("mailer", RECORD)
        .event("e.json", event("note.saved", "ev-1", json!({})))
}

#[test]
fn dry_run_prints_the_route_and_runs_nothing() {
    let p = recorder_project();
    p.autod(["dispatch", "--dry-run", "e.json"])
        .run()
        .code(0)
        .stdout_has("ev-1")
        .stdout_has("indexer")
        .stdout_has("mailer");
    assert!(p.runs().is_empty());
    assert!(!p.exists(".autod/done"), "a dry run records nothing");
    assert!(p.log().is_empty());
}

#[test]
fn dry_run_json_says_which_pairs_already_succeeded() {
    let p = recorder_project();
    p.autod(["dispatch", "--handler", "indexer", "e.json"])
        .run()
        .code(0);
    let out = p.autod(["dispatch", "--dry-run", "--json", "e.json"]).run();
    out.code(0);
    let lines = out.json_lines();
    assert_eq!(lines.len(), 1, "{out}");
    assert_eq!(lines[0]["status"], "dry-run");
    assert_eq!(
        lines[0]["route"],
        json!([
            {"handler": "indexer", "pattern": "note.saved", "command": ["handlers/indexer/main.sh"],
             "commandProblem": null, "alreadySucceeded": true},
            {"handler": "mailer", "pattern": "note.*", "command": ["handlers/mailer/main.sh"],
             "commandProblem": null, "alreadySucceeded": false},
        ])
    );
    assert_eq!(p.runs(), ["indexer note.saved ev-1 1"]);
}

#[test]
fn dry_run_shows_the_command_each_handler_would_run() {
    let p = Project::new()
        .open_schema("note.saved")
        .config(
            r#"
            [handlers.indexer]
            on = ["note.saved"]
            [handlers.pinger]
            on = ["note.saved"]
            command = ["curl", "-d", "it's done", "https://example.test/hook"]
            [handlers.ghost]
            on = ["note.saved"]
            "#,
        )
        .handler("indexer", RECORD)
        .event("e.json", event("note.saved", "ev-1", json!({})));
    let out = p.autod(["dispatch", "--dry-run", "e.json"]).run();
    out.code(0);
    let lines: Vec<&str> = out.stdout.lines().map(str::trim).collect();
    assert!(lines.contains(&"runs: handlers/indexer/main.sh"), "{out}");
    assert!(
        lines.contains(&r"runs: curl -d 'it'\''s done' https://example.test/hook"),
        "words are quoted so the line can be pasted into a shell: {out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("would fail:") && l.contains("ghost")),
        "{out}"
    );
    assert!(
        !out.stdout.contains(&p.root().display().to_string()),
        "no machine paths: {out}"
    );
    assert!(p.runs().is_empty());

    let json = p.autod(["dispatch", "--dry-run", "--json", "e.json"]).run();
    let route = &json.json_lines()[0]["route"];
    let ghost = route
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["handler"] == "ghost")
        .unwrap();
    assert_eq!(ghost["command"], Value::Null);
    assert!(
        ghost["commandProblem"].as_str().unwrap().contains("ghost"),
        "{ghost}"
    );
    let pinger = route
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["handler"] == "pinger")
        .unwrap();
    assert_eq!(
        pinger["command"],
        json!(["curl", "-d", "it's done", "https://example.test/hook"])
    );
}

#[test]
fn handler_flag_runs_only_that_handler() {
    let p = recorder_project();
    p.autod(["dispatch", "--handler", "mailer", "e.json"])
        .run()
        .code(0);
    assert_eq!(p.runs(), ["mailer note.saved ev-1 1"]);
    p.autod(["dispatch", "--handler", "nobody", "e.json"])
        .run()
        .code(2)
        .stderr_has("nobody");
    assert_eq!(p.runs(), ["mailer note.saved ev-1 1"]);
}

#[test]
fn json_output_has_one_line_per_input() {
    let p = recorder_project();
    let out = p.autod(["dispatch", "--json", "e.json"]).run();
    out.code(0);
    let lines = out.json_lines();
    assert_eq!(lines.len(), 1, "{out}");
    assert_eq!(lines[0]["eventId"], "ev-1");
    assert_eq!(lines[0]["status"], "accepted");
    let results: Vec<_> = lines[0]["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["handler"].as_str().unwrap(),
                r["result"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(results, [("indexer", "ok"), ("mailer", "ok")]);
}

#[test]
fn with_several_inputs_the_highest_exit_code_wins_and_all_run() {
    let p = Project::new()
        .open_schema("note.saved")
        .config(
            r#"
            [handlers.picky]
            on = ["note.saved"]
            "#,
        )
        .handler(
            "picky",
            r#"
            echo "$AUTOD_EVENT_ID" >> runs.log
            [ "$AUTOD_EVENT_ID" != bad ] || exit 1
            "#,
        )
        .event("good.json", event("note.saved", "good", json!({})))
        .event("bad.json", event("note.saved", "bad", json!({})))
        .file("broken.json", "{");
    p.autod(["dispatch", "good.json", "bad.json"]).run().code(1);
    p.autod([
        "dispatch",
        "--force",
        "good.json",
        "broken.json",
        "bad.json",
    ])
    .run()
    .code(3)
    .stderr_has("broken.json");
    assert_eq!(p.runs(), ["bad", "bad", "good", "good"]);
}

#[test]
fn quiet_prints_nothing_when_all_is_well() {
    let p = recorder_project();
    let out = p.autod(["-q", "dispatch", "e.json"]).run();
    out.code(0);
    assert_eq!(out.stderr, "", "{out}");
    assert_eq!(p.runs().len(), 2);
}

#[test]
fn log_format_json_makes_stderr_json() {
    let p = recorder_project();
    let out = p
        .autod(["--log-format", "json", "dispatch", "e.json"])
        .run();
    out.code(0);
    let lines: Vec<serde_json::Value> = out
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}\n{out}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["result"] == "ok" && l["handler"] == "indexer"),
        "{out}"
    );
}

#[test]
fn event_file_is_the_event_of_this_run_on_a_second_attempt() {
    // No ts in the file: each dispatch fills in its own.
    let p = Project::new()
        .open_schema("note.saved")
        .config(
            r#"
            [handlers.h]
            on = ["note.saved"]
            "#,
        )
        .handler(
            "h",
            r#"
            cat > "stdin.$AUTOD_ATTEMPT.json"
            cp "$AUTOD_EVENT_FILE" "file.$AUTOD_ATTEMPT.json"
            [ "$AUTOD_ATTEMPT" -ge 2 ]
            "#,
        )
        .event(
            "e.json",
            json!({"eventType": "note.saved", "eventId": "ev-1", "source": "cli", "payload": {"v": 1}}),
        );
    p.autod(["dispatch", "e.json"]).run().code(1);
    let p = p.event(
        "e.json",
        json!({"eventType": "note.saved", "eventId": "ev-1", "source": "cli", "payload": {"v": 2}}),
    );
    p.autod(["dispatch", "e.json"]).run().code(0);
    for attempt in [1, 2] {
        let stdin: serde_json::Value =
            serde_json::from_str(&p.read(&format!("stdin.{attempt}.json"))).unwrap();
        let file: serde_json::Value =
            serde_json::from_str(&p.read(&format!("file.{attempt}.json"))).unwrap();
        assert_eq!(
            stdin, file,
            "attempt {attempt}: AUTOD_EVENT_FILE is not the event on stdin"
        );
    }
}

#[test]
fn cloudevents_structured_mode_is_accepted() {
    let p = inspect_project().event(
        "ce.json",
        json!({"specversion": "1.0", "type": "note.saved", "id": "ce-1",
               "source": "webhook:github", "data": {"title": "hi"}, "subject": "kept"}),
    );
    p.autod(["dispatch", "ce.json"]).run().code(0);
    let stdin: serde_json::Value = serde_json::from_str(&p.read("stdin.json")).unwrap();
    assert_eq!(stdin["eventType"], "note.saved");
    assert_eq!(stdin["eventId"], "ce-1");
    assert_eq!(stdin["source"], "webhook:github");
    assert_eq!(stdin["payload"], json!({"title": "hi"}));
    assert_eq!(stdin["subject"], "kept");
    assert_eq!(env_file(&p)["AUTOD_EVENT_SOURCE"], "webhook:github");
}

#[test]
fn handler_that_does_not_read_a_large_event_is_fine() {
    let p = Project::new()
        .open_schema("note.saved")
        .config(
            r#"
            [handlers.h]
            on = ["note.saved"]
            "#,
        )
        .handler("h", "exit 0")
        .event(
            "e.json",
            event(
                "note.saved",
                "ev-1",
                json!({"body": "x".repeat(1000 * 1000)}),
            ),
        );
    p.autod(["dispatch", "e.json"]).run().code(0);
    assert!(p.done("ev-1", "h"));
}

/// A handler body that fails if another run of a handler is in progress.
const EXCLUSIVE: &str = r#"
    mkdir running 2>/dev/null || echo "overlap $AUTOD_EVENT_ID" >> overlaps.log
    echo "$AUTOD_EVENT_ID" >> order.log
    sleep 0.3
    rmdir running 2>/dev/null
    exit 0
"#;

#[test]
fn handler_concurrency_1_runs_one_at_a_time() {
    let p = Project::new()
        .open_schema("note.saved")
        .config(
            r#"
            [handlers.h]
            on = ["note.saved"]
            concurrency = 1
            "#,
        )
        .handler("h", EXCLUSIVE)
        .event("1.json", event("note.saved", "ev-1", json!({})))
        .event("2.json", event("note.saved", "ev-2", json!({})))
        .event("3.json", event("note.saved", "ev-3", json!({})));
    p.autod(["dispatch", "--jobs", "4", "1.json", "2.json", "3.json"])
        .run()
        .code(0);
    assert_eq!(p.lines("order.log").len(), 3);
    assert_eq!(p.lines("overlaps.log"), Vec::<String>::new());
}

#[test]
fn events_with_the_same_key_run_in_order_one_at_a_time() {
    let keyed = |id: &str| {
        let mut e = event("note.saved", id, json!({}));
        e["key"] = json!("customer-42");
        e
    };
    let p = Project::new()
        .open_schema("note.saved")
        .config(
            r#"
            [handlers.h]
            on = ["note.saved"]
            "#,
        )
        .handler("h", EXCLUSIVE)
        .event("1.json", keyed("ev-1"))
        .event("2.json", keyed("ev-2"))
        .event("3.json", keyed("ev-3"));
    p.autod(["dispatch", "--jobs", "4", "1.json", "2.json", "3.json"])
        .run()
        .code(0);
    assert_eq!(p.lines("order.log"), ["ev-1", "ev-2", "ev-3"]);
    assert_eq!(p.lines("overlaps.log"), Vec::<String>::new());
}

#[test]
fn jobs_zero_is_a_usage_error() {
    let p = recorder_project();
    p.autod(["dispatch", "--jobs", "0", "e.json"]).run().code(2);
    assert!(p.runs().is_empty());
}

#[test]
fn a_dry_run_records_nothing_not_even_a_rejection() {
    let p = Project::new()
        .schema("job.due", json!({"type": "object", "required": ["n"]}))
        .config("[handlers.h]\non = [\"job.due\"]\n")
        .handler("h", "true")
        .event("bad.json", event("job.due", "b1", json!({})));
    p.autod(["dispatch", "--dry-run", "bad.json"])
        .run()
        .code(3)
        .stderr_has("rejected");
    assert!(p.log_raw().is_empty(), "{:?}", p.log_raw());
    assert!(!p.exists(".autod"), "a dry run writes no state at all");
}
