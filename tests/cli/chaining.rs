//! Chaining (SPEC 8) through `dispatch` and `retry`: follow-ups written to
//! AUTOD_EMIT become events of their own, run in the same invocation.

use serde_json::{Value, json};

use crate::common::{Project, event};

/// Records each run as `<handler> <eventId> <source> <correlationId>` in runs.log.
const TRACE: &str = r#"echo "$AUTOD_HANDLER $AUTOD_EVENT_ID $AUTOD_EVENT_SOURCE $AUTOD_CORRELATION_ID" >> runs.log"#;

/// ingest → (two) enrich → act; `enrich` fails on its first attempt when the
/// file `flaky` exists.
fn pipeline() -> Project {
    Project::new()
        .open_schema("signal.raw")
        .schema(
            "signal.clean",
            json!({"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}),
        )
        .open_schema("signal.rich")
        .config(
            r#"
            [handlers.ingest]
            on = ["signal.raw"]
            [handlers.enrich]
            on = ["signal.clean"]
            retry = { initial = "1h", max = "1h" }
            [handlers.act]
            on = ["signal.rich"]
            "#,
        )
        .handler(
            "ingest",
            &format!(
                "cat >/dev/null\n{TRACE}\n\
                 echo '{{\"eventType\":\"signal.clean\",\"payload\":{{\"n\":1}}}}' >> \"$AUTOD_EMIT\"\n\
                 echo '{{\"eventType\":\"signal.clean\",\"payload\":{{\"n\":2}},\"eventId\":\"mine\",\"source\":\"spoofed\"}}' >> \"$AUTOD_EMIT\""
            ),
        )
        .handler(
            "enrich",
            &format!(
                "cat > \"$AUTOD_OUTPUT_DIR/in.json\"\n\
                 if [ -e flaky ] && [ \"$AUTOD_ATTEMPT\" = 1 ]; then echo 'upstream down' >&2; exit 1; fi\n\
                 {TRACE}\n\
                 echo '{{\"eventType\":\"signal.rich\",\"payload\":{{}}}}' >> \"$AUTOD_EMIT\""
            ),
        )
        .handler("act", &format!("cat > \"$AUTOD_OUTPUT_DIR/in.json\"\n{TRACE}"))
        .event("root.json", event("signal.raw", "root-1", json!({})))
}

fn runs_of(p: &Project, handler: &str) -> Vec<Vec<String>> {
    p.runs()
        .iter()
        .map(|l| l.split(' ').map(str::to_owned).collect::<Vec<_>>())
        .filter(|w| w[0] == handler)
        .collect()
}

#[test]
fn dispatch_runs_the_whole_chain_with_derived_ids_and_causation() {
    let p = pipeline();
    let out = p.autod(["dispatch", "--json", "root.json"]).run();
    out.code(0);
    let ingest = runs_of(&p, "ingest");
    let enrich = runs_of(&p, "enrich");
    let act = runs_of(&p, "act");
    assert_eq!((ingest.len(), enrich.len(), act.len()), (1, 2, 2), "{out}");
    for run in enrich.iter().chain(&act) {
        assert_eq!(
            run[3], "root-1",
            "the correlation id is the root's: {run:?}"
        );
    }
    assert!(
        enrich.iter().all(|r| r[2] == "handler:ingest"),
        "{enrich:?}"
    );
    assert!(act.iter().all(|r| r[2] == "handler:enrich"), "{act:?}");
    assert!(
        enrich.iter().all(|r| r[1] != "mine"),
        "an eventId the handler wrote is replaced by the derived one"
    );

    // The event a stage receives says where it came from.
    let child_id = &act[0][1];
    let got: Value =
        serde_json::from_str(&p.read(&format!(".autod/out/{child_id}/act/in.json"))).unwrap();
    assert_eq!(got["source"], "handler:enrich");
    assert_eq!(got["correlationId"], "root-1");
    assert_eq!(got["chainDepth"], 2);
    let parent = got["causationId"].as_str().unwrap();
    assert!(
        enrich.iter().any(|r| r[1] == parent),
        "{parent} is an enrich event"
    );

    // Every event of the chain is reported, and nothing is left in processing/.
    let lines = out.json_lines();
    assert_eq!(lines.len(), 5, "{out}");
    assert_eq!(
        lines[0]["runs"][0]["followUps"].as_array().unwrap().len(),
        2
    );
    assert!(
        std::fs::read_dir(p.path(".autod/processing"))
            .unwrap()
            .next()
            .is_none()
    );
    let log = p.log();
    let act_lines: Vec<&Value> = log.iter().filter(|l| l["handler"] == "act").collect();
    assert!(
        act_lines
            .iter()
            .all(|l| l["correlationId"] == "root-1" && l["causationId"].is_string())
    );

    // Dispatched again, or forced: the children have the same ids, and they
    // already succeeded, so nothing below the root runs again.
    p.autod(["dispatch", "root.json"]).run().code(0);
    p.autod(["dispatch", "--force", "root.json"]).run().code(0);
    assert_eq!(runs_of(&p, "ingest").len(), 2);
    assert_eq!(runs_of(&p, "enrich").len(), 2);
    assert_eq!(runs_of(&p, "act").len(), 2);
}

#[test]
fn a_failing_middle_stage_is_retried_without_duplicate_children() {
    let p = pipeline().file("flaky", "");
    p.autod(["dispatch", "root.json"])
        .run()
        .code(1)
        .stderr_has("upstream down");
    assert_eq!(runs_of(&p, "enrich").len(), 0);
    assert_eq!(runs_of(&p, "act").len(), 0);
    assert_eq!(
        p.autod(["dead", "list", "--json"]).run().json_lines().len(),
        1
    );

    let out = p.autod(["retry", "--all", "--json"]).run();
    out.code(0);
    assert_eq!(runs_of(&p, "enrich").len(), 2);
    assert_eq!(
        runs_of(&p, "act").len(),
        2,
        "the retried stage's chain ran on: {out}"
    );
    let retried = &out.json_lines()[0]["retried"];
    let follow_ups: usize = retried
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["followUps"].as_array().unwrap().len())
        .sum();
    assert_eq!(follow_ups, 2, "{out}");

    // Nothing left to do: the root and every stage are done.
    p.autod(["retry", "--all"]).run().code(0);
    p.autod(["dispatch", "root.json"]).run().code(0);
    assert_eq!(runs_of(&p, "act").len(), 2);
    assert_eq!(runs_of(&p, "ingest").len(), 1);
}

/// A project whose `bad` handler writes `emit` (a shell snippet) into AUTOD_EMIT.
fn emitting(emit: &str, extra_config: &str) -> Project {
    Project::new()
        .schema(
            "job.next",
            json!({"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}),
        )
        .open_schema("job.start")
        .config(&format!(
            "{extra_config}\n[handlers.bad]\non = [\"job.start\"]\nretry = {{ initial = \"1h\", max = \"1h\" }}\n[handlers.next]\non = [\"job.next\"]\n"
        ))
        .handler("bad", &format!("cat >/dev/null\n{emit}"))
        .handler("next", TRACE)
        .event("e.json", event("job.start", "ev-1", json!({})))
}

#[track_caller]
fn fails_the_parent(p: &Project, why: &str) {
    let out = p.autod(["dispatch", "e.json"]).run();
    out.code(1).stderr_has(why);
    assert!(runs_of(p, "next").is_empty(), "no follow-up ran: {out}");
    let letter = p.dead_letter("bad", "ev-1");
    assert_eq!(letter["state"], "waiting", "retryable: {letter}");
    assert!(
        letter["lastError"].as_str().unwrap().contains(why),
        "{letter}"
    );
    assert!(!p.done("ev-1", "bad"));
    let processing = p.path(".autod/processing");
    assert!(
        !processing.exists() || std::fs::read_dir(processing).unwrap().next().is_none(),
        "nothing half-accepted"
    );
}

#[test]
fn one_invalid_follow_up_accepts_none_and_names_the_line_and_the_violation() {
    let p = emitting(
        r#"echo '{"eventType":"job.next","payload":{"n":1}}' >> "$AUTOD_EMIT"
           echo '{"eventType":"job.next","payload":{"n":"two"}}' >> "$AUTOD_EMIT""#,
        "",
    );
    fails_the_parent(&p, "AUTOD_EMIT line 2");
    let letter = p.dead_letter("bad", "ev-1");
    assert!(
        letter["lastError"].as_str().unwrap().contains("/payload/n"),
        "{letter}"
    );
}

#[test]
fn follow_ups_that_are_not_events_fail_the_parent() {
    for (emit, why) in [
        (r#"echo 'not json' >> "$AUTOD_EMIT""#, "line 1: not JSON"),
        (
            r#"echo '[1,2]' >> "$AUTOD_EMIT""#,
            "line 1: a follow-up is one JSON object",
        ),
        (
            r#"echo '{"eventType":"nobody.wants","payload":{}}' >> "$AUTOD_EMIT""#,
            "AUTOD_EMIT line 1",
        ),
        (
            r#"echo '{"eventType":"bad id!","payload":{}}' >> "$AUTOD_EMIT""#,
            "/eventType",
        ),
        (
            r#"echo '{"specversion":"1.0","type":"job.next","id":"x","source":"s","data":{"n":1}}' >> "$AUTOD_EMIT""#,
            "not a CloudEvent",
        ),
        (r#"mkfifo "$AUTOD_EMIT""#, "is a FIFO"),
        (r#"ln -s /etc/passwd "$AUTOD_EMIT""#, "is a symbolic link"),
    ] {
        let p = emitting(emit, "[validation]\nrequire_schema = false");
        fails_the_parent(&p, why);
    }
}

#[test]
fn follow_ups_are_bounded_in_number_and_size() {
    let p = emitting(
        r#"for i in 1 2 3; do echo '{"eventType":"job.next","payload":{"n":1}}' >> "$AUTOD_EMIT"; done"#,
        "[chaining]\nmax_follow_ups = 2",
    );
    fails_the_parent(&p, "more than 2 follow-ups");

    // 100 MB in one line: refused at max_event_bytes, without reading it all.
    let p = emitting(
        r#"head -c 100000000 /dev/zero | tr '\0' x >> "$AUTOD_EMIT""#,
        "[validation]\nmax_event_bytes = 1024",
    );
    fails_the_parent(&p, "longer than max_event_bytes (1024 bytes)");
}

#[test]
fn a_chain_that_loops_is_cut_at_depth_16_with_a_rejected_line() {
    let p = Project::new()
        .open_schema("loop.tick")
        .config("[handlers.again]\non = [\"loop.tick\"]\n")
        .handler(
            "again",
            &format!(
                "cat >/dev/null\n{TRACE}\necho '{{\"eventType\":\"loop.tick\",\"payload\":{{}}}}' >> \"$AUTOD_EMIT\""
            ),
        )
        .event("e.json", event("loop.tick", "tick-0", json!({})));
    let out = p.autod(["dispatch", "e.json"]).run();
    out.code(3).stderr_has("cut at depth 16");
    assert_eq!(
        runs_of(&p, "again").len(),
        17,
        "the root and 16 follow-ups: {out}"
    );
    let rejected = p.logged("rejected");
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    let line = p
        .log()
        .into_iter()
        .find(|l| l["result"] == "rejected")
        .unwrap();
    assert_eq!(line["correlationId"], "tick-0");
    assert!(
        line["error"].as_str().unwrap().contains("chain tick-0"),
        "{line}"
    );

    // The trace goes 16 follow-ups deep and ends in the cut.
    let v = &p.autod(["trace", "tick-0", "--json"]).run().json_lines()[0];
    let mut node = &v["roots"][0];
    for _ in 0..16 {
        assert_eq!(node["runs"][0]["result"], "ok", "{node}");
        node = &node["runs"][0]["followUps"][0];
    }
    assert_eq!(node["runs"][0]["handler"], "again");
    let cut = &node["runs"][0]["followUps"][0];
    assert_eq!(cut["runs"][0]["result"], "rejected", "{cut}");
    assert!(
        cut["runs"][0]["error"]
            .as_str()
            .unwrap()
            .contains("cut at depth 16")
    );
}

#[test]
fn a_follow_up_cannot_claim_a_depth_of_its_own() {
    let p = Project::new()
        .open_schema("x.y")
        .config("[handlers.h]\non = [\"x.y\"]\n")
        .handler("h", TRACE)
        .file(
            "e.json",
            r#"{"eventType":"x.y","source":"cli","payload":{},"chainDepth":-1}"#,
        );
    p.autod(["dispatch", "e.json"])
        .run()
        .code(3)
        .stderr_has("/chainDepth");
}

#[test]
fn a_follow_up_whose_dispatch_was_killed_is_finished_by_autod_retry() {
    // The second stage kills its own autod (SIGKILL) on the first try: the
    // root is done, its follow-up durable in processing/, and nobody left to
    // run it. The `autod retry` that cron runs every few minutes finishes it.
    let p = Project::new()
        .open_schema("a.one")
        .open_schema("a.two")
        .config("[handlers.first]\non = [\"a.one\"]\n[handlers.second]\non = [\"a.two\"]\n")
        .handler(
            "first",
            &format!("cat >/dev/null\n{TRACE}\necho '{{\"eventType\":\"a.two\",\"payload\":{{}}}}' >> \"$AUTOD_EMIT\""),
        )
        .handler(
            "second",
            &format!("cat >/dev/null\nif [ ! -e killed ]; then touch killed; kill -9 $PPID; exit 1; fi\n{TRACE}"),
        )
        .event("e.json", event("a.one", "k-1", json!({})));
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_autod"))
        .args([
            "--root",
            &p.root().display().to_string(),
            "dispatch",
            "e.json",
        ])
        .current_dir(p.root())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "the handler killed its dispatch"
    );
    assert!(p.done("k-1", "first"));
    let left: Vec<_> = std::fs::read_dir(p.path(".autod/processing"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(left.len(), 1, "the follow-up is durable: {left:?}");

    // Re-dispatching the root does not lose or duplicate it: the root is done.
    p.autod(["dispatch", "e.json"]).run().code(0);
    let status = p.autod(["status", "--json"]).run();
    assert_eq!(status.json_lines()[0]["processing"], 1, "{status}");

    let out = p.autod(["retry", "--json"]).run();
    out.code(0);
    assert_eq!(runs_of(&p, "second").len(), 1, "{out}");
    assert_eq!(
        out.json_lines()[0]["recovered"].as_array().unwrap().len(),
        1,
        "{out}"
    );
    let processing: Vec<_> = std::fs::read_dir(p.path(".autod/processing"))
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(processing.is_empty(), "{processing:?}");
    p.autod(["retry"]).run().code(0);
    assert_eq!(runs_of(&p, "second").len(), 1);
    assert_eq!(runs_of(&p, "first").len(), 1);
}

/// `bad` fails (exit `code`); `pager` handles the on_dead notices and
/// records each one's payload.
fn paging(code: i32, pager_exit: i32) -> Project {
    Project::new()
        .open_schema("job.run")
        .schema(
            "autod.dead",
            json!({"type": "object", "required": ["handler", "eventId", "state", "attempts"]}),
        )
        .config(
            r#"
            [notify]
            on_dead = "autod.dead"
            [handlers.bad]
            on = ["job.run"]
            retry = { max_attempts = 2, initial = "1h", max = "1h" }
            [handlers.pager]
            on = ["autod.dead"]
            "#,
        )
        .handler(
            "bad",
            &format!("cat >/dev/null; echo 'the disk is gone' >&2; exit {code}"),
        )
        .handler(
            "pager",
            &format!("cat >> pages.jsonl; echo >> pages.jsonl; {TRACE}; exit {pager_exit}"),
        )
        .event("e.json", event("job.run", "job-1", json!({})))
}

fn pages(p: &Project) -> Vec<Value> {
    if !p.exists("pages.jsonl") {
        return Vec::new();
    }
    p.read("pages.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_pair_given_up_pages_through_the_on_dead_event() {
    let p = paging(65, 0);
    p.autod(["dispatch", "e.json"]).run().code(1);
    let pages = pages(&p);
    assert_eq!(pages.len(), 1, "one notice, delivered in the same dispatch");
    let notice = &pages[0];
    assert_eq!(notice["eventType"], "autod.dead");
    assert_eq!(notice["source"], "autod");
    assert_eq!(notice["causationId"], "job-1");
    assert_eq!(notice["correlationId"], "job-1");
    let payload = &notice["payload"];
    assert_eq!(payload["handler"], "bad");
    assert_eq!(payload["eventId"], "job-1");
    assert_eq!(payload["eventType"], "job.run");
    assert_eq!(payload["state"], "permanent");
    assert_eq!(payload["attempts"], 1);
    assert!(
        payload["stderrTail"]
            .as_str()
            .unwrap()
            .contains("the disk is gone")
    );
    assert_eq!(p.dead_letter("bad", "job-1")["state"], "permanent");

    // Given up again (retried by hand): the same notice id, already handled.
    p.autod(["retry", "--all"]).run().code(1);
    assert_eq!(runs_of(&p, "pager").len(), 1);
}

#[test]
fn exhausting_the_retries_pages_once_and_a_failing_pager_pages_nobody() {
    let p = paging(1, 65);
    p.autod(["dispatch", "e.json"]).run().code(1);
    assert!(pages(&p).is_empty(), "still waiting: no notice yet");
    p.autod(["retry", "--all"]).run().code(1);
    let got = pages(&p);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["payload"]["state"], "exhausted");
    assert_eq!(got[0]["payload"]["attempts"], 2);
    // The pager itself failed permanently: its pair is given up, and a
    // notice about a notice is never made.
    let notice_id = got[0]["eventId"].as_str().unwrap();
    assert_eq!(p.dead_letter("pager", notice_id)["state"], "permanent");
    assert_eq!(runs_of(&p, "pager").len(), 1);
}

#[test]
fn a_notice_that_cannot_be_accepted_is_told_and_the_pair_is_still_given_up() {
    let p = paging(65, 0);
    std::fs::remove_file(p.path("schemas/autod.dead.json")).unwrap();
    p.autod(["dispatch", "e.json"])
        .run()
        .code(1)
        .stderr_has("[notify] on_dead: the autod.dead event about bad for job-1 was not accepted");
    assert_eq!(p.dead_letter("bad", "job-1")["state"], "permanent");
    assert!(pages(&p).is_empty());
}

#[test]
fn on_dead_must_be_an_event_type() {
    let p = Project::new().config("[notify]\non_dead = \"not a type\"\n");
    p.autod(["dispatch", "x.json"])
        .run()
        .code(2)
        .stderr_has("notify.on_dead = \"not a type\" is not an eventType");
}

#[test]
fn trace_shows_the_whole_chain_from_any_of_its_events() {
    let p = pipeline().file("flaky", "");
    p.autod(["dispatch", "root.json"]).run().code(1);
    p.autod(["retry", "--all"]).run().code(0);
    let leaf = runs_of(&p, "act")[0][1].clone();

    let from_leaf = p.autod(["trace", &leaf, "--json"]).run();
    from_leaf.code(0);
    let from_root = p.autod(["trace", "root-1", "--json"]).run();
    assert_eq!(
        from_leaf.stdout, from_root.stdout,
        "any event of the chain gives the same tree"
    );
    let v = &from_leaf.json_lines()[0];
    assert_eq!(v["correlationId"], "root-1");
    let roots = v["roots"].as_array().unwrap();
    assert_eq!(roots.len(), 1);
    let root = &roots[0];
    assert_eq!(root["eventId"], "root-1");
    assert_eq!(root["eventType"], "signal.raw");
    let ingest = &root["runs"][0];
    assert_eq!(
        (ingest["handler"].as_str(), ingest["result"].as_str()),
        (Some("ingest"), Some("ok"))
    );
    let stage2 = ingest["followUps"].as_array().unwrap();
    assert_eq!(stage2.len(), 2);
    for child in stage2 {
        assert_eq!(child["source"], "handler:ingest");
        assert_eq!(child["causationId"], "root-1");
        let runs = child["runs"].as_array().unwrap();
        // The failed first attempt, with its stderr line, then the retry.
        assert_eq!(runs.len(), 2, "{child}");
        assert_eq!(runs[0]["result"], "failed");
        assert_eq!(runs[0]["exitCode"], 1);
        assert!(runs[0]["error"].as_str().unwrap().contains("upstream down"));
        assert_eq!(runs[0]["followUps"], json!([]));
        assert_eq!(runs[1]["result"], "ok");
        assert_eq!(runs[1]["attempt"], 2);
        let stage3 = runs[1]["followUps"].as_array().unwrap();
        assert_eq!(stage3.len(), 1);
        assert_eq!(stage3[0]["runs"][0]["handler"], "act");
    }

    let text = p.autod(["trace", &leaf]).run();
    text.code(0);
    let lines: Vec<&str> = text.stdout.lines().collect();
    assert!(lines[0].starts_with("signal.raw root-1"), "{text}");
    assert!(
        lines.iter().any(|l| l.contains("enrich failed")
            && l.contains("exit 1")
            && l.contains("upstream down")),
        "{text}"
    );
    assert!(lines.iter().any(|l| l.contains(&leaf)), "{text}");
    assert_eq!(lines.len(), 1 + 1 + 2 * (1 + 2 + 1 + 1), "{text}");
}

#[test]
fn trace_of_an_unknown_event_says_so() {
    let p = pipeline();
    p.autod(["trace", "nobody"])
        .run()
        .code(2)
        .stderr_has("no run-log line names eventId nobody");
}

#[test]
fn trace_shows_a_cut_chain_and_a_page() {
    let p = paging(65, 0);
    p.autod(["dispatch", "e.json"]).run().code(1);
    let v = &p.autod(["trace", "job-1", "--json"]).run().json_lines()[0];
    let root = &v["roots"][0];
    assert_eq!(root["runs"][0]["result"], "failed");
    let notices = root["followUps"].as_array().unwrap();
    assert_eq!(notices.len(), 1, "{root}");
    assert_eq!(notices[0]["eventType"], "autod.dead");
    assert_eq!(notices[0]["source"], "autod");
}

/// Undoes `chattr +i` on drop, so a failing test still leaves a removable
/// temp dir.
struct Mutable(std::path::PathBuf);

impl Drop for Mutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn follow_ups_written_but_no_parent_marker_are_the_same_follow_ups_next_time() {
    // The window between the follow-ups' write and the parent's done marker,
    // made to last: the handler makes .autod/done/ immutable (even root cannot
    // rename in it then), so autod persists the follow-ups and cannot record
    // the parent's success. That is what a SIGKILL at that point leaves.
    let p = Project::new()
        .open_schema("b.one")
        .open_schema("b.two")
        .config("[handlers.first]\non = [\"b.one\"]\n[handlers.second]\non = [\"b.two\"]\n")
        .handler(
            "first",
            &format!(
                "cat >/dev/null\n{TRACE}\n\
                 echo '{{\"eventType\":\"b.two\",\"payload\":{{\"n\":1}}}}' >> \"$AUTOD_EMIT\"\n\
                 echo '{{\"eventType\":\"b.two\",\"payload\":{{\"n\":2}}}}' >> \"$AUTOD_EMIT\"\n\
                 [ -e frozen-once ] || {{ touch frozen-once; chattr +i .autod/done; }}"
            ),
        )
        .handler("second", TRACE)
        .event("e.json", event("b.one", "w-1", json!({})));
    let _undo = Mutable(p.path(".autod/done"));
    p.autod(["dispatch", "e.json"])
        .run()
        .code(2)
        .stderr_has("could not be recorded");
    assert!(p.exists("frozen-once"), "the handler froze done/");
    assert!(!p.done("w-1", "first"));
    assert!(
        runs_of(&p, "second").is_empty(),
        "no outcome, so no follow-up was run"
    );
    let mut left: Vec<String> = std::fs::read_dir(p.path(".autod/processing"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    left.sort();
    assert_eq!(left.len(), 2, "both follow-ups are durable: {left:?}");

    let status = std::process::Command::new("chattr")
        .arg("-i")
        .arg(p.path(".autod/done"))
        .status()
        .expect("chattr runs");
    assert!(status.success());
    p.autod(["dispatch", "e.json"]).run().code(0);
    assert_eq!(
        runs_of(&p, "first").len(),
        2,
        "the parent runs again: it had no outcome"
    );
    let mut second: Vec<String> = runs_of(&p, "second")
        .into_iter()
        .map(|r| format!("{}.json", r[1]))
        .collect();
    second.sort();
    assert_eq!(second, left, "the same two follow-ups, each run once");
    assert!(
        std::fs::read_dir(p.path(".autod/processing"))
            .unwrap()
            .flatten()
            .all(|e| e.file_name().to_string_lossy().starts_with('.')),
        "nothing left in processing/"
    );
}
