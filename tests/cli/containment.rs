//! A pair is exclusive and live, and a handler is contained (issue 11, cases
//! 7, 8 and 10): a handler left running by a dead autod is stopped by the next
//! owner of its pair instead of blocking it; `dispatch` stops its handlers
//! when it is interrupted; two `--force` runs never overlap; a timeout stops
//! what a handler started even when it left its process group, and the
//! record says only what was really sent.
//!
//! Every test waits on files the handlers write (pid files written to a temp
//! name, then renamed), never on a fixed sleep.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{Project, Running, event, wait_until};

const LIMIT: Duration = Duration::from_secs(20);

/// One handler `h` for `job.due`, the given config lines and script, and the
/// event `e.json` (eventId `ev-1`).
fn project(config: &str, body: &str) -> Project {
    Project::new()
        .open_schema("job.due")
        .config(&format!(
            "[handlers.h]\non = [\"job.due\"]\nretry = {{ initial = \"1h\", max = \"1h\" }}\n{config}\n"
        ))
        .handler("h", body)
        .event("e.json", event("job.due", "ev-1", json!({})))
}

/// Whether a process with this pid is running (a zombie is not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with(['Z', 'X'])
    })
}

/// The pids in a file the handler wrote (space- or line-separated).
fn pids(p: &Project, rel: &str) -> Vec<u32> {
    p.read(rel)
        .split_whitespace()
        .map(|s| s.parse().unwrap_or_else(|e| panic!("{rel}: {s:?}: {e}")))
        .collect()
}

/// Waits for `rel` to appear, then returns its pids; they are SIGKILLed when
/// the value is dropped, so a failing test leaves nothing behind.
#[track_caller]
fn wait_pids(p: &Project, rel: &str) -> Pids {
    wait_until(LIMIT, rel, || p.exists(rel));
    Pids(pids(p, rel))
}

struct Pids(Vec<u32>);

impl Drop for Pids {
    fn drop(&mut self) {
        for pid in &self.0 {
            let _ = Command::new("kill")
                .arg("-9")
                .arg(pid.to_string())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

impl Pids {
    #[track_caller]
    fn assert_gone(&self, what: &str) {
        // A signal is delivered at once; give the kernel a moment to finish it.
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.0.iter().any(|&p| alive(p)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let left: Vec<u32> = self.0.iter().copied().filter(|&p| alive(p)).collect();
        assert!(left.is_empty(), "{what}: still running: {left:?}");
    }

    fn assert_alive(&self, what: &str) {
        let gone: Vec<u32> = self.0.iter().copied().filter(|&p| !alive(p)).collect();
        assert!(gone.is_empty(), "{what}: already gone: {gone:?}");
    }
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .arg(sig)
        .arg(pid.to_string())
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {sig} {pid} failed");
}

/// SIGKILL, as the OOM killer would do it, and reap.
fn sigkill(autod: Running) {
    // Dropping a Running that has not exited kills it with SIGKILL and waits.
    drop(autod);
}

// --- 7. a pair is live: nothing a dead autod left behind blocks it

/// The first run sleeps (its timeout is long); the second finishes at once.
const FIRST_SLEEPS: &str = r#"
    if [ -e first.pids ]; then echo second >> runs.log; exit 0; fi
    sleep 60 &
    echo "$$ $!" > pids.tmp && mv pids.tmp first.pids
    wait
"#;

#[test]
fn a_handler_left_by_a_sigkilled_dispatch_is_stopped_by_the_next_owner() {
    let p = project("timeout = \"60s\"\nkill_grace = \"2s\"", FIRST_SLEEPS);
    let first = p.autod(["dispatch", "e.json"]).spawn();
    let orphans = wait_pids(&p, "first.pids");
    sigkill(first);
    orphans.assert_alive("the handler runs on after its autod died");

    let out = p.autod(["dispatch", "e.json"]).run();
    out.code(0)
        .faster_than(Duration::from_secs(10))
        .stderr_has("the previous run")
        .stderr_has("left processes running unsupervised")
        .stderr_has("stopped with SIGTERM (2 processes)")
        .stderr_has(&format!("pid {}", orphans.0[0]));
    orphans.assert_gone("the orphaned run");
    assert_eq!(p.lines("runs.log"), ["second"]);
    assert!(p.done("ev-1", "h"));
}

#[test]
fn an_orphan_that_ignores_sigterm_is_killed_after_the_grace() {
    let p = project(
        "timeout = \"60s\"\nkill_grace = \"1s\"",
        r#"
        if [ -e first.pids ]; then exit 0; fi
        trap '' TERM
        echo "$$" > pids.tmp && mv pids.tmp first.pids
        while :; do sleep 1; done
        "#,
    );
    let first = p.autod(["dispatch", "e.json"]).spawn();
    let orphans = wait_pids(&p, "first.pids");
    sigkill(first);
    let out = p.autod(["dispatch", "e.json"]).run();
    out.code(0)
        .faster_than(Duration::from_secs(10))
        .stderr_has("then SIGKILL");
    orphans.assert_gone("the orphan that ignored SIGTERM");
}

#[test]
fn a_background_process_a_failed_handler_left_does_not_block_the_pair() {
    // Before: the grandchild inherited the pair's lock and held it for 30 s.
    let p = project(
        "",
        r#"
        if [ -e bg.pid ]; then echo second >> runs.log; exit 0; fi
        sleep 30 &
        echo $! > pid.tmp && mv pid.tmp bg.pid
        exit 1
        "#,
    );
    p.autod(["dispatch", "e.json"]).run().code(1);
    let bg = wait_pids(&p, "bg.pid");
    bg.assert_alive("the grandchild outlives its handler");
    p.autod(["dispatch", "e.json"])
        .run()
        .code(0)
        .faster_than(Duration::from_secs(5))
        .stderr_has("left processes running unsupervised");
    assert_eq!(p.lines("runs.log"), ["second"]);
    bg.assert_gone("what the previous run left behind");
}

#[test]
fn a_background_process_a_succeeded_handler_left_is_not_touched() {
    let p = project(
        "",
        "sleep 30 &\necho $! > pid.tmp && mv pid.tmp bg.pid\necho ran >> runs.log",
    );
    p.autod(["dispatch", "e.json"]).run().code(0);
    let bg = wait_pids(&p, "bg.pid");
    p.autod(["dispatch", "e.json"])
        .run()
        .code(0)
        .stderr_has("already succeeded")
        .stderr_lacks("left processes running");
    bg.assert_alive("a server a successful handler started on purpose");
}

/// Runs forever the first time; exits 0 once `again` exists.
const STOPPABLE: &str = r#"
    if [ -e again ]; then echo again >> runs.log; exit 0; fi
    sleep 60 &
    echo "$$ $!" > pids.tmp && mv pids.tmp run.pids
    wait
"#;

#[track_caller]
fn interrupted_dispatch(sig: &str, code: i32, name: &str) {
    let p = project("timeout = \"60s\"\nkill_grace = \"2s\"", STOPPABLE);
    let running = p.autod(["dispatch", "e.json"]).spawn();
    let handler = wait_pids(&p, "run.pids");
    let asked = Instant::now();
    signal(running.id(), sig);
    let out = running.wait();
    out.code(code).stderr_has(name);
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "took {:?} to stop\n{out}",
        asked.elapsed()
    );
    handler.assert_gone("the handler of an interrupted dispatch");
    assert!(!p.done("ev-1", "h"), "no done marker\n{out}");
    assert!(
        !p.dead_letter_path("h", "ev-1").exists(),
        "no dead letter\n{out}"
    );
    let log = p.log();
    assert_eq!(log.len(), 1, "{log:#?}");
    assert_eq!(log[0]["result"], "interrupted", "{log:#?}");
    assert!(
        log[0]["error"]
            .as_str()
            .unwrap()
            .contains("runs again next time")
    );

    // It was not recorded, so the next dispatch runs it.
    std::fs::write(p.path("again"), "").unwrap();
    p.autod(["dispatch", "e.json"]).run().code(0);
    assert_eq!(p.lines("runs.log"), ["again"]);
    assert!(p.done("ev-1", "h"));
}

#[test]
fn sigint_to_dispatch_stops_its_handler_and_the_pair_runs_again_next_time() {
    interrupted_dispatch("-INT", 130, "SIGINT");
}

#[test]
fn sigterm_to_dispatch_stops_its_handler_and_exits_143() {
    interrupted_dispatch("-TERM", 143, "SIGTERM");
}

#[test]
fn a_dispatch_waiting_for_another_owner_says_so() {
    let p = project("timeout = \"60s\"", STOPPABLE);
    let first = p.autod(["dispatch", "e.json"]).spawn();
    let _handler = wait_pids(&p, "run.pids");
    let second = p.autod(["dispatch", "e.json"]).spawn();
    // The second one waits on the lock; SIGINT ends its wait at once.
    wait_until(LIMIT, "the second dispatch to wait on the lock", || {
        waits_on_a_lock(second.id())
    });
    signal(second.id(), "-INT");
    let out = second.wait();
    out.code(130)
        .stderr_has("another autod process is running this pair; waiting")
        .faster_than(Duration::from_secs(10));
    signal(first.id(), "-INT");
    first.wait().code(130);
}

/// Whether a thread of the process sleeps in flock(2).
fn waits_on_a_lock(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|t| {
        std::fs::read_to_string(t.path().join("wchan")).is_ok_and(|w| w.contains("lock_inode_wait"))
    })
}

// --- 8. `--force` runs one pair one at a time

#[test]
fn forced_dispatches_of_one_event_never_overlap() {
    let p = project(
        "",
        r#"
        s=$(date +%s%N)
        echo "$s" >> starts
        sleep 0.5
        echo "$s $(date +%s%N)" >> intervals
        "#,
    );
    let count = |rel: &str| p.lines(rel).len();
    let a = p.autod(["dispatch", "--force", "e.json"]).spawn();
    wait_until(LIMIT, "the first run to start", || count("starts") == 1);
    // b waits on the lock file that a renames to .ok when it succeeds.
    let b = p.autod(["dispatch", "--force", "e.json"]).spawn();
    wait_until(LIMIT, "the first run to end", || count("intervals") == 1);
    wait_until(LIMIT, "the second run to start", || count("starts") == 2);
    // c comes after the rename, and finds a fresh lock file.
    let c = p.autod(["dispatch", "--force", "e.json"]).spawn();
    for (name, run) in [("a", a), ("b", b), ("c", c)] {
        let out = run.wait();
        assert_eq!(out.code, Some(0), "dispatch {name}\n{out}");
    }
    let mut intervals: Vec<(u128, u128)> = p
        .lines("intervals")
        .iter()
        .map(|l| {
            let (s, e) = l.split_once(' ').unwrap();
            (s.parse().unwrap(), e.parse().unwrap())
        })
        .collect();
    intervals.sort();
    assert_eq!(intervals.len(), 3, "{intervals:?}");
    for w in intervals.windows(2) {
        assert!(
            w[0].1 <= w[1].0,
            "two runs of the pair overlapped by {} ms: {intervals:?}",
            (w[0].1 - w[1].0) / 1_000_000
        );
    }
    assert_eq!(p.logged("ok").len(), 3, "{:#?}", p.log());
    assert!(!p.dead_letter_path("h", "ev-1").exists());
}

// --- 10. a timeout stops everything the handler started

/// Dispatches with `timeout = "1s"`, then checks that it came back within a
/// few seconds and every pid in `pids` is gone; returns the dead letter.
#[track_caller]
fn times_out_and_stops_all(body: &str, kill_grace: &str) -> serde_json::Value {
    let p = project(
        &format!("timeout = \"1s\"\nkill_grace = \"{kill_grace}\""),
        body,
    );
    let out = p.autod(["dispatch", "e.json"]).run();
    let started = Pids(pids(&p, "pids"));
    out.code(1).faster_than(Duration::from_secs(6));
    started.assert_gone("what the handler started");
    let d = p.dead_letter("h", "ev-1");
    assert_eq!(d["lastResult"], "timeout", "{d:#}");
    assert!(
        d["lastError"]
            .as_str()
            .unwrap()
            .starts_with("timed out after 1s; stopped with SIGTERM"),
        "{d:#}"
    );
    d
}

#[test]
fn a_handler_that_joins_autods_process_group_is_still_stopped() {
    // Before: SIGTERM went to the handler's old, empty group; dispatch
    // waited 20 s and then claimed a SIGKILL that never happened.
    let d = times_out_and_stops_all(
        r#"
        exec python3 -c '
        import os, time
        os.setpgid(0, os.getpgid(os.getppid()))
        child = os.fork()
        if child == 0:
            time.sleep(60)
            os._exit(0)
        open("pids.tmp", "w").write("%d %d" % (os.getpid(), child))
        os.rename("pids.tmp", "pids")
        time.sleep(60)
        '
        "#,
        "5s",
    );
    assert_eq!(d["lastSignal"], "SIGTERM", "{d:#}");
    assert!(
        !d["lastError"].as_str().unwrap().contains("SIGKILL"),
        "no SIGKILL was sent: {d:#}"
    );
}

#[test]
fn a_child_in_a_new_session_is_stopped() {
    times_out_and_stops_all(
        r#"
        setsid sleep 60 &
        echo "$$ $!" > pids.tmp && mv pids.tmp pids
        wait
        "#,
        "5s",
    );
}

#[test]
fn background_jobs_under_set_m_are_stopped() {
    times_out_and_stops_all(
        r#"
        set -m
        sleep 60 &
        a=$!
        sleep 60 &
        echo "$$ $a $!" > pids.tmp && mv pids.tmp pids
        wait
        "#,
        "5s",
    );
}

#[test]
fn a_detached_process_that_ignores_sigterm_gets_sigkill_and_the_record_says_so() {
    let d = times_out_and_stops_all(
        r#"
        setsid sh -c 'trap "" TERM; echo $$ > inner.pid; while :; do sleep 1; done' &
        while [ ! -s inner.pid ]; do sleep 0.01; done
        echo "$$ $(cat inner.pid)" > pids.tmp && mv pids.tmp pids
        wait
        "#,
        "1s",
    );
    assert_eq!(d["lastSignal"], "SIGKILL", "{d:#}");
    assert!(
        d["lastError"]
            .as_str()
            .unwrap()
            .contains("stopped with SIGTERM, then SIGKILL"),
        "{d:#}"
    );
}

#[test]
fn a_process_that_clears_its_environment_and_double_forks_is_found_as_an_orphan() {
    // No tag, another session, its parent gone: autod, the subreaper, is its
    // parent now, and with one run in flight it can only be this run's.
    times_out_and_stops_all(
        r#"
        env -i setsid sh -c 'sleep 60 & echo $! > esc.pid' &
        while [ ! -s esc.pid ]; do sleep 0.01; done
        echo "$$ $(cat esc.pid)" > pids.tmp && mv pids.tmp pids
        sleep 60
        "#,
        "5s",
    );
}

#[test]
fn an_orphan_that_cannot_be_attributed_is_reported_not_claimed() {
    // Two runs in flight: the untagged orphan could be either's, so the
    // first one to time out leaves it and says so.
    let p = Project::new()
        .open_schema("job.due")
        .config(
            r#"
            [handlers.a]
            on = ["job.due"]
            timeout = "2s"
            kill_grace = "1s"
            [handlers.b]
            on = ["job.due"]
            # Long after a's stop is over, even on a loaded machine: only then
            # is b the one run left, to which the orphan can be attributed.
            timeout = "10s"
            kill_grace = "1s"
            "#,
        )
        // The orphan must be younger than b's handler to be b's to take
        // (nothing older than a run is attributed to it), so a makes it only
        // once b has started: on a loaded machine b's spawn can trail a's.
        .handler(
            "a",
            r#"
            while [ ! -e b.started ]; do sleep 0.01; done
            env -i setsid sh -c 'sleep 60 & echo $! > esc.pid' &
            sleep 60
            "#,
        )
        .handler("b", "touch b.started; sleep 60")
        .event("e.json", event("job.due", "ev-1", json!({})));
    let out = p.autod(["dispatch", "--jobs", "2", "e.json"]).run();
    let escaped = Pids(pids(&p, "esc.pid"));
    out.code(1);
    let a = p.dead_letter("a", "ev-1");
    let error = a["lastError"].as_str().unwrap();
    assert!(
        error.contains("1 process adopted by autod without this run's AUTOD_RUN_ID")
            && error.contains("was left running"),
        "{a:#}"
    );
    // Once it is the only run left, b's timeout takes it along.
    escaped.assert_gone("the orphan, at the last run's timeout");
}

#[test]
fn every_handler_gets_its_own_run_tag() {
    let p = project("", "echo \"$AUTOD_RUN_ID\" >> tags");
    p.autod(["dispatch", "e.json"]).run().code(0);
    p.autod(["dispatch", "--force", "e.json"]).run().code(0);
    let tags = p.lines("tags");
    assert_eq!(tags.len(), 2);
    assert_ne!(tags[0], tags[1]);
    assert!(uuid_like(&tags[0]), "{tags:?}");
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

// --- the daemon: the next owner too, and the reaper of what handlers leave

/// Starts `autod run` and waits until `autod status` sees it.
fn start_daemon(p: &Project) -> Running {
    let daemon = p.autod(["run", "--grace", "2s"]).spawn();
    let pid = daemon.id();
    wait_until(LIMIT, "the daemon to come up", || {
        let out = p.autod(["status", "--json"]).run();
        out.json()["daemon"]["pid"] == pid
    });
    daemon
}

#[test]
fn the_daemon_stops_an_orphan_and_its_concurrency_slot_stays_free() {
    // Before: the orphan held the pair's lock, and the daemon's run of the
    // pair held the only `concurrency` slot while it waited, so ev-2 waited too.
    let p = project(
        "timeout = \"60s\"\nkill_grace = \"2s\"\nconcurrency = 1",
        r#"
        if [ -e "first-$AUTOD_EVENT_ID.pids" ]; then echo "$AUTOD_EVENT_ID" >> runs.log; exit 0; fi
        sleep 60 &
        echo "$$ $!" > pids.tmp && mv pids.tmp "first-$AUTOD_EVENT_ID.pids"
        wait
        "#,
    )
    .event("e2.json", event("job.due", "ev-2", json!({})))
    .file("first-ev-2.pids", "");
    let first = p.autod(["dispatch", "e.json"]).spawn();
    let orphans = wait_pids(&p, "first-ev-1.pids");
    sigkill(first);

    let daemon = start_daemon(&p);
    p.autod(["send", "e.json", "e2.json"]).run().code(0);
    wait_until(LIMIT, "both events to be done", || {
        p.done("ev-1", "h") && p.done("ev-2", "h")
    });
    orphans.assert_gone("the orphan of the SIGKILLed dispatch");
    daemon.terminate();
    let out = daemon.wait();
    out.code(0)
        .stderr_has("left processes running unsupervised");
    let mut runs = p.lines("runs.log");
    runs.sort();
    assert_eq!(runs, ["ev-1", "ev-2"]);
}

/// The parent pid of a running process.
fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[test]
fn the_daemon_adopts_what_a_handler_leaves_behind_and_reaps_it() {
    // The orphan waits for `go`, so the test can look at it while it lives.
    let p = project(
        "",
        r#"
        (while [ ! -e go ]; do sleep 0.05; done & echo $! > pid.tmp && mv pid.tmp orphan.pid)
        exit 0
        "#,
    );
    let daemon = start_daemon(&p);
    p.autod(["send", "e.json"]).run().code(0);
    let orphan = wait_pids(&p, "orphan.pid");
    let pid = orphan.0[0];
    wait_until(LIMIT, "the orphan to be re-parented", || {
        parent(pid) == Some(daemon.id())
    });
    std::fs::write(p.path("go"), "").unwrap();
    // Reaped, not a zombie: its /proc entry is gone.
    wait_until(LIMIT, "the orphan to be reaped by the daemon", || {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
    });
    daemon.terminate();
    daemon.wait().code(0);
}

#[test]
fn a_run_whose_autod_died_before_recording_its_pid_is_found_by_its_tag() {
    // autod records a run's tag before the spawn and its pid after; on a busy
    // machine the handler can fork before the second write. Such a lock says
    // only the tag: the next owner must still find and stop the run.
    let p = project(
        "kill_grace = \"1s\"",
        r#"echo "$AUTOD_EVENT_ID" >> runs.log"#,
    );
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    // Unique: a sweep by tag reaches every process on the machine that has
    // it, a concurrent run of this very test included.
    let tag = uuid::Uuid::now_v7().to_string();
    let orphan = Command::new("sh")
        .args([
            "-c",
            "sleep 60 & echo $! > orphan.tmp && mv orphan.tmp orphan.pid; wait",
        ])
        .current_dir(p.root())
        .env("AUTOD_RUN_ID", &tag)
        .spawn()
        .unwrap();
    wait_until(LIMIT, "the orphan's pid file", || p.exists("orphan.pid"));
    let orphans = Pids(vec![orphan.id(), pids(&p, "orphan.pid")[0]]);
    std::fs::create_dir_all(p.path(".autod/done")).unwrap();
    std::fs::write(
        p.path(".autod/done/ev-1.h.lock"),
        json!({
            "version": 1, "runId": tag, "pid": 0, "startTime": 0, "pgid": 0,
            "deadline": "2026-01-01T00:00:00.000Z", "autodPid": 1, "bootId": boot.trim(),
        })
        .to_string(),
    )
    .unwrap();
    p.autod(["dispatch", "e.json"])
        .run()
        .code(0)
        .stderr_has("pid not recorded")
        .stderr_has("left processes running unsupervised");
    orphans.assert_gone("the run found by its tag alone");
    assert_eq!(p.lines("runs.log"), ["ev-1"]);
    let mut orphan = orphan;
    let _ = orphan.wait();
}
