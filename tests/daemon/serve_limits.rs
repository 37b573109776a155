//! The HTTP intake's limits and its bad input (SPEC 11, issue 14): each
//! attack gets its status, nothing of it is accepted, the server does not
//! panic, and its memory stays bounded, measured as the peak resident set
//! (`VmHWM` in /proc/<pid>/status) after the attack, not as a timing.
//!
//! Every wait is on a signal: a response, a connection closing, a log or
//! readiness line, a file. The heavy ones (10,000 connections, 1,000 POSTs,
//! 100,000 events) have LIMIT-based deadlines only.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rustix::process::{Resource, Rlimit, Signal, getrlimit, setrlimit};
use serde_json::{Value, json};

use crate::helper::{LIMIT, Project, event, wait_until};
use crate::http::{Client, JSON, Serve, response, response_text};

/// The peak resident set an attack may leave the server at.
const MEMORY_BOUND_KIB: u64 = 200 * 1024;

fn project(serve: &str) -> Project {
    Project::new()
        .open_schema("job.due")
        .config(&format!(
            r#"
            [serve]
            {serve}
            [handlers.worker]
            on = ["job.due"]
            "#
        ))
        .handler("worker", r#"echo "$AUTOD_EVENT_ID" >> ran.txt"#)
}

/// A field of /proc/<pid>/status in KiB (`VmHWM`, `VmRSS`).
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

fn assert_memory_bounded(pid: u32, after: &str) {
    let peak = status_kib(pid, "VmHWM");
    eprintln!("after {after}: the server's peak resident set is {peak} KiB");
    assert!(
        peak < MEMORY_BOUND_KIB,
        "after {after}, the server's peak resident set is {peak} KiB, over {MEMORY_BOUND_KIB} KiB"
    );
}

/// Open descriptors of a process.
fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// This test process's soft open-file limit raised to the hard one.
fn raise_own_open_file_limit() -> u64 {
    let limit = getrlimit(Resource::Nofile);
    let max = limit.maximum.unwrap_or(1 << 20);
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(max),
            maximum: limit.maximum,
        },
    );
    getrlimit(Resource::Nofile).current.unwrap_or(max)
}

/// Whether the server closed `s`: EOF (or a reset) on read, whatever came first.
fn wait_closed(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(LIMIT)).unwrap();
    let mut got = Vec::new();
    match s.read_to_end(&mut got) {
        Ok(_) => got,
        Err(e) if e.kind() == ErrorKind::ConnectionReset => got,
        Err(e) => panic!("the connection was not closed within {LIMIT:?}: {e}"),
    }
}

/// Request head only (the body follows, or not).
fn head(content_type: &str, length: usize) -> String {
    format!(
        "POST /events HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n"
    )
}

/// A POST of event `id` sent but for its body's last bytes, once the server
/// logs that it is reading that body (so it holds a slot): the connection,
/// and the bytes that finish the request.
fn half_sent(client: &Client, stderr: impl Fn() -> String, id: &str) -> (TcpStream, Vec<u8>) {
    let body = event("job.due", id).to_string();
    let (first, rest) = body.as_bytes().split_at(10);
    let mut s = client.connect();
    s.write_all(head(JSON, body.len()).as_bytes()).unwrap();
    s.write_all(first).unwrap();
    wait_until(
        LIMIT,
        &format!("the server to be reading {id}'s body"),
        || stderr().contains("POST /events: reading the body"),
    );
    (s, rest.to_vec())
}

fn no_panic(stderr: &str) {
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn ten_thousand_idle_connections_neither_exhaust_files_nor_stop_a_real_client() {
    let limit = raise_own_open_file_limit();
    if limit < 10_200 {
        eprintln!("skipped: this process may open only {limit} files");
        return;
    }
    // Idle ones cannot time out during the test: what serves the real client
    // is the connection cap, not a timer.
    let p = project(r#"request_timeout = "10m""#);
    let serve = Serve::start(&p, &["--listen", "127.0.0.1:0"]);
    let pid = serve.child.id();
    let idle: Vec<TcpStream> = (0..10_000)
        .map(|i| {
            TcpStream::connect(("127.0.0.1", serve.port))
                .unwrap_or_else(|e| panic!("idle connection {i}: {e}"))
        })
        .collect();
    // The real client, past the default cap (half of the server's open-file
    // limit, at most 10,000): the longest idle connection makes room.
    let (status, body) = serve.post(JSON, &event("job.due", "real1"));
    assert_eq!((status, body), (202, json!({"eventIds": ["real1"]})));
    assert_eq!(serve.request("GET", "/healthz", &[], b"").0, 200);
    assert!(
        open_files(pid) <= 10_000 + 64,
        "the server holds {} files",
        open_files(pid)
    );
    assert_memory_bounded(pid, "10,000 idle connections");
    assert_eq!(p.inbox(), ["real1.json"]);
    drop(idle);
    no_panic(&serve.stderr());
}

#[test]
fn past_max_connections_the_longest_idle_connection_closes_for_a_new_one() {
    let p = project(
        r#"max_connections = 20
        request_timeout = "10m""#,
    );
    let serve = Serve::start(&p, &["--listen", "127.0.0.1:0", "-v"]);
    // A request in progress holds its connection through any number of idle ones.
    let (mut busy, rest) = half_sent(&serve, || serve.stderr(), "busy1");
    // 19 idle ones fill the cap (the first two mid-head, as a slowloris is);
    // each of the next 30 closes the oldest idle.
    let mut idle: Vec<TcpStream> = (0..19).map(|_| serve.connect()).collect();
    for s in &mut idle[..2] {
        s.write_all(b"POST /events HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .unwrap();
    }
    for i in 0..30 {
        idle.push(serve.connect());
        let got = wait_closed(&mut idle[i]);
        assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    }
    let (status, _) = serve.post(JSON, &event("job.due", "real1"));
    assert_eq!(status, 202);
    busy.write_all(&rest).unwrap();
    assert_eq!(response(&mut busy).0, 202, "the busy connection was kept");
    assert!(open_files(serve.child.id()) <= 20 + 32);
    assert_eq!(p.inbox(), ["busy1.json", "real1.json"]);
}

#[test]
fn a_request_past_max_concurrent_waits_queue_timeout_then_is_a_503_with_retry_after() {
    let p = project(
        r#"max_concurrent = 1
        queue_timeout = "0s""#,
    );
    let serve = Serve::start(&p, &["--listen", "127.0.0.1:0", "-v"]);
    let (mut slow, rest) = half_sent(&serve, || serve.stderr(), "slow1");
    let mut s = serve.connect();
    let flood = event("job.due", "flood1").to_string();
    s.write_all(head(JSON, flood.len()).as_bytes()).unwrap();
    s.write_all(flood.as_bytes()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 503"), "{raw}");
    assert!(
        raw.to_ascii_lowercase().contains("\r\nretry-after: 1\r\n"),
        "{raw}"
    );
    let answer: Value = serde_json::from_str(raw.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(answer["error"], "busy", "{answer}");
    assert!(p.inbox().is_empty(), "the 503 queued nothing");
    // Liveness is not behind the cap; the slot's holder finishes.
    assert_eq!(serve.request("GET", "/healthz", &[], b"").0, 200);
    slow.write_all(&rest).unwrap();
    assert_eq!(response(&mut slow).0, 202);
    assert_eq!(serve.post(JSON, &event("job.due", "after1")).0, 202);
    assert_eq!(p.inbox(), ["after1.json", "slow1.json"]);
}

#[test]
fn a_flood_past_max_concurrent_does_not_queue_for_ever() {
    let p = project(
        r#"max_concurrent = 1
        queue_timeout = "1s""#,
    );
    let serve = Serve::start(&p, &["--listen", "127.0.0.1:0", "-v"]);
    let (mut slow, rest) = half_sent(&serve, || serve.stderr(), "slow1");
    // 50 at once, while the slot stays held: each is answered (the wait has
    // a bound), none is queued.
    let client = Arc::new(Client { port: serve.port });
    let flood: Vec<_> = (0..50)
        .map(|i| {
            let client = Arc::clone(&client);
            std::thread::spawn(move || client.post(JSON, &event("job.due", &format!("f{i}"))))
        })
        .collect();
    for f in flood {
        let (status, body) = f.join().unwrap();
        assert_eq!((status, &body["error"]), (503, &json!("busy")), "{body}");
    }
    assert!(p.inbox().is_empty());
    slow.write_all(&rest).unwrap();
    assert_eq!(response(&mut slow).0, 202);
}

#[test]
fn a_head_of_a_megabyte_is_a_431_and_memory_stays_bounded() {
    let p = project("");
    let serve = Serve::start(&p, &["--listen", "127.0.0.1:0"]);
    for shape in ["one header", "many headers"] {
        let mut s = serve.connect();
        let mut writer = s.try_clone().unwrap();
        let sent = std::thread::spawn(move || {
            let mut sent = 0usize;
            let _ = writer.write_all(b"POST /events HTTP/1.1\r\nHost: x\r\n");
            let line = if shape == "one header" {
                format!("X-Big: {}", "a".repeat(1024 * 1024))
            } else {
                (0..20_000).map(|i| format!("X-{i}: v\r\n")).collect()
            };
            for piece in line.as_bytes().chunks(16 * 1024) {
                if writer.write_all(piece).is_err() {
                    break;
                }
                sent += piece.len();
            }
            let _ = writer.write_all(b"\r\n\r\n");
            sent
        });
        let (status, _) = response_text(&mut s);
        assert_eq!(status, 431, "{shape}");
        let _ = sent.join().unwrap();
    }
    assert!(p.inbox().is_empty());
    assert_memory_bounded(serve.child.id(), "heads of 1 MB");
    no_panic(&serve.stderr());
}

#[test]
fn a_two_gigabyte_body_is_refused_by_its_length_and_chunked_at_the_cap() {
    let p = project("");
    let serve = Serve::start(&p, &["--listen", "127.0.0.1:0"]);
    // Announced: answered from the length alone.
    let mut s = serve.connect();
    s.write_all(head(JSON, 2 << 30).as_bytes()).unwrap();
    s.write_all(b"[").unwrap();
    let (status, body) = response(&mut s);
    assert_eq!(status, 413, "{body}");
    // Chunked, no length, 2 GB on its way: read to just past the batch cap
    // (16 MiB by default), then answered; the sender is cut off there.
    let mut s = serve.connect();
    s.write_all(b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
    let mut writer = s.try_clone().unwrap();
    let written = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&written);
    let sender = std::thread::spawn(move || {
        let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "x".repeat(64 * 1024));
        for _ in 0..(2u64 << 30) / (64 * 1024) {
            if writer.write_all(chunk.as_bytes()).is_err() {
                return;
            }
            counted.fetch_add(chunk.len() as u64, Ordering::SeqCst);
        }
    });
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 413"), "{text:?}");
    drop(s);
    sender.join().unwrap();
    let sent = written.load(Ordering::SeqCst);
    assert!(sent < 200 << 20, "{sent} bytes were taken before the cut");
    assert!(p.inbox().is_empty());
    assert_memory_bounded(serve.child.id(), "2 GB bodies");
    no_panic(&serve.stderr());
}

#[test]
fn a_slowloris_is_cut_at_the_header_timeout_while_others_are_served() {
    let p = project(r#"request_timeout = "2s""#);
    let serve = Serve::start(&p, &["--listen", "127.0.0.1:0"]);
    let mut slow = serve.connect();
    let mut trickle = slow.try_clone().unwrap();
    // One byte of head every 50 ms, for ever: only the deadline on the whole
    // head (from its first byte) stops it.
    let trickler = std::thread::spawn(move || {
        let head = b"POST /events HTTP/1.1\r\nHost: x\r\n";
        let endless = head
            .iter()
            .copied()
            .chain(b"X-a: b\r\n".iter().copied().cycle());
        let mut sent = 0;
        for b in endless {
            if trickle.write_all(&[b]).is_err() {
                return sent;
            }
            sent += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
        sent
    });
    for i in 0..5 {
        let (status, _) = serve.post(JSON, &event("job.due", &format!("ok{i}")));
        assert_eq!(status, 202, "served beside the slowloris");
    }
    let got = wait_closed(&mut slow);
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text:?}"
    );
    let sent = trickler.join().unwrap();
    assert!(sent > 0);
    assert_eq!(p.inbox().len(), 5);
}

#[test]
fn bad_input_gets_its_status_and_nothing_is_accepted() {
    let p = project("");
    let serve = Serve::start(&p, &["--listen", "127.0.0.1:0"]);
    let post =
        |headers: &[(&str, &str)], body: &[u8]| serve.request("POST", "/events", headers, body);
    let json = [("Content-Type", JSON)];
    // Malformed JSON, every mode.
    for body in [
        &b"{\"eventType\":"[..],
        b"\xff\xfe{}",
        b"[1,",
        b"{} {}",
        b"nul",
    ] {
        let (status, answer) = post(&json, body);
        assert_eq!(status, 400, "{:?}: {answer}", String::from_utf8_lossy(body));
    }
    for ct in [
        "application/cloudevents+json",
        "application/cloudevents-batch+json",
    ] {
        assert_eq!(post(&[("Content-Type", ct)], b"{\"id\":").0, 400, "{ct}");
    }
    // CloudEvents without specversion, or with one not supported.
    let ce = |specversion: Option<&str>| {
        let mut ce = json!({"type": "job.due", "id": "ce1", "source": "s", "data": {}});
        if let Some(v) = specversion {
            ce["specversion"] = json!(v);
        }
        ce
    };
    for v in [None, Some("2.0"), Some("0.3"), Some("")] {
        let (status, answer) = serve.post("application/cloudevents+json", &ce(v));
        assert_eq!(status, 400, "specversion {v:?}: {answer}");
    }
    let (status, answer) = serve.post(
        "application/cloudevents-batch+json",
        &json!([ce(Some("1.0")), ce(Some("2.0"))]),
    );
    assert_eq!(status, 400, "{answer}");
    let binary = |specversion: &str, id: &str| {
        post(
            &[
                ("ce-specversion", specversion),
                ("ce-id", id),
                ("ce-type", "job.due"),
                ("ce-source", "s"),
                ("Content-Type", JSON),
            ],
            b"{}",
        )
    };
    let (status, answer) = binary("2.0", "bin1");
    assert_eq!(status, 400, "{answer}");
    assert!(answer.to_string().contains("specversion"), "{answer}");
    // A ce-id that breaks the id charset, as sent and percent-encoded.
    for id in ["../etc", "a/b", "%2e%2e%2fetc", "a%00b", "x y", "%FF"] {
        let (status, answer) = binary("1.0", id);
        assert_eq!(status, 400, "ce-id {id:?}: {answer}");
    }
    // 100,000 tiny events: refused as a whole, counted without being built.
    let tiny: Vec<Value> = (0..100_000)
        .map(|i| event("job.due", &format!("t{i}")))
        .collect();
    let (status, answer) = serve.post(JSON, &json!(tiny));
    assert_eq!(status, 413, "{answer}");
    assert_eq!(answer["error"], "batch-too-long");
    // 16 MiB of `0,`: eight million elements, the worst case for a parser
    // that builds values first.
    let mut zeros = Vec::with_capacity(16 << 20);
    zeros.push(b'[');
    while zeros.len() < (16 << 20) - 4 {
        zeros.extend_from_slice(b"0,");
    }
    zeros.extend_from_slice(b"0]");
    let (status, answer) = post(&json, &zeros);
    assert_eq!(status, 413, "{answer}");
    assert!(p.inbox().is_empty(), "{:?}", p.inbox());
    assert_memory_bounded(serve.child.id(), "bad input");
    no_panic(&serve.stderr());
}

#[test]
fn a_thousand_concurrent_posts_run_every_accepted_event_exactly_once() {
    let p = project(
        r#"listen = "127.0.0.1:0"
        queue_timeout = "10m""#,
    );
    let daemon = p.start(&[]);
    let client = Arc::new(Client::of_daemon(&daemon));
    // 1,000 POSTs from 20 threads; ids repeat (700 distinct), as a sender's
    // retries do.
    let threads: Vec<_> = (0..20)
        .map(|t| {
            let client = Arc::clone(&client);
            std::thread::spawn(move || {
                (0..50)
                    .map(|i| {
                        let id = format!("c{}", (t * 50 + i) % 700);
                        let (status, body) = client.post(JSON, &event("job.due", &id));
                        (id, status, body)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut accepted = BTreeSet::new();
    for t in threads {
        for (id, status, body) in t.join().unwrap() {
            assert_eq!(status, 202, "{id}: {body}");
            assert_eq!(body, json!({"eventIds": [id]}));
            accepted.insert(id);
        }
    }
    assert_eq!(accepted.len(), 700);
    wait_until(LIMIT * 6, "every accepted event to run", || {
        p.lines("ran.txt").len() >= accepted.len() && p.drained()
    });
    let mut runs: BTreeMap<String, usize> = BTreeMap::new();
    for id in p.lines("ran.txt") {
        *runs.entry(id).or_default() += 1;
    }
    let twice: Vec<_> = runs.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "ran more than once: {twice:?}");
    assert_eq!(runs.keys().cloned().collect::<BTreeSet<_>>(), accepted);
    no_panic(&daemon.stderr());
}

#[test]
fn sigkill_right_after_a_202_and_the_event_still_runs_after_restart() {
    let p = project(r#"listen = "127.0.0.1:0""#);
    let mut accepted = Vec::new();
    for round in 0..5 {
        let mut daemon = p.start(&[]);
        let client = Client::of_daemon(&daemon);
        let id = format!("k{round}");
        assert_eq!(client.post(JSON, &event("job.due", &id)).0, 202);
        daemon.kill();
        accepted.push(id);
    }
    let _daemon = p.start(&[]);
    wait_until(LIMIT, "every accepted event to run", || {
        accepted.iter().all(|id| p.done(id, "worker")) && p.drained()
    });
    let mut ran = p.lines("ran.txt");
    ran.sort();
    ran.dedup();
    assert_eq!(
        ran, accepted,
        "each ran (at least once; once recorded, never again)"
    );
}

#[test]
fn sighup_rereads_the_tokens_and_moves_to_a_changed_listen() {
    let config = |port: u16| {
        format!(
            r#"
            [serve]
            listen = "127.0.0.1:{port}"
            token_file = "token"
            [handlers.worker]
            on = ["job.due"]
            "#
        )
    };
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let p = project("");
    p.write("token", "old-token\n");
    p.set_config(&config(0));
    let mut daemon = p.start(&[]);
    let client = Client::of_daemon(&daemon);
    let post = |client: &Client, token: &str, id: &str| {
        let body = event("job.due", id).to_string();
        let auth = format!("Bearer {token}");
        client
            .request(
                "POST",
                "/events",
                &[("Content-Type", JSON), ("Authorization", &auth)],
                body.as_bytes(),
            )
            .0
    };
    assert_eq!(post(&client, "old-token", "a1"), 202);
    assert_eq!(post(&client, "new-token", "a2"), 401);
    // Rotation without a restart: the file rewritten, then SIGHUP.
    p.write("token", "new-token\n");
    daemon.signal(Signal::HUP);
    wait_until(LIMIT, "the reload to be logged", || {
        daemon.stderr().contains("reloaded autod.toml")
    });
    assert!(daemon.stderr().contains("serve: tokens read again (1)"));
    assert_eq!(post(&client, "old-token", "a3"), 401);
    assert_eq!(post(&client, "new-token", "a4"), 202);
    // A changed listen: bound, announced, and the old port closed. (A port
    // found free can be taken before the daemon binds it, by another test's
    // connection: then another is tried.)
    let port = (0..5)
        .find_map(|_| {
            let port = free_port();
            p.set_config(&config(port));
            daemon.signal(Signal::HUP);
            let moved = format!("autod serve: listening on http://127.0.0.1:{port}");
            let failed = format!("cannot listen on 127.0.0.1:{port}");
            wait_until(LIMIT, "the new address to be announced", || {
                let e = daemon.stderr();
                e.contains(&moved) || e.contains(&failed)
            });
            daemon.stderr().contains(&moved).then_some(port)
        })
        .expect("a free port in 5 tries");
    let new = Client { port };
    assert_eq!(post(&new, "new-token", "a5"), 202);
    wait_until(LIMIT, "the old port to close", || {
        TcpStream::connect(("127.0.0.1", client.port)).is_err()
    });
    // An address that cannot be bound keeps the current one.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    p.set_config(&config(taken.local_addr().unwrap().port()));
    daemon.signal(Signal::HUP);
    wait_until(LIMIT, "the failed move to be logged", || {
        daemon.stderr().contains("still listening on 127.0.0.1:")
    });
    assert_eq!(post(&new, "new-token", "a6"), 202);
    wait_until(LIMIT, "the accepted events to run", || {
        p.lines("ran.txt").len() == 4
    });
    daemon.terminate();
    assert!(daemon.wait(LIMIT).success(), "{}", daemon.stderr());
}

#[test]
fn autod_run_finishes_a_request_in_flight_at_sigterm_and_refuses_new_ones() {
    let p = project(r#"listen = "127.0.0.1:0""#);
    let mut daemon = p.start(&["-v"]);
    let client = Client::of_daemon(&daemon);
    let (mut s, rest) = half_sent(&client, || daemon.stderr(), "late1");
    daemon.terminate();
    wait_until(LIMIT, "new connections to be refused", || {
        TcpStream::connect(("127.0.0.1", client.port)).is_err()
    });
    s.write_all(&rest).unwrap();
    assert_eq!(
        response(&mut s),
        (202, json!({"eventIds": ["late1"]})),
        "{}",
        daemon.stderr()
    );
    assert!(daemon.wait(LIMIT).success(), "{}", daemon.stderr());
    // Accepted is durable: it runs (now or at the next start), once.
    let _again = p.start(&[]);
    wait_until(LIMIT, "late1 to run", || {
        p.done("late1", "worker") && p.drained()
    });
    assert_eq!(p.lines("ran.txt"), ["late1"]);
}

#[test]
fn sighup_rotates_the_tokens_of_a_standalone_autod_serve() {
    let p = project(r#"token_file = "token""#);
    p.write("token", "old-token\n");
    let serve = Serve::start(&p, &["--listen", "127.0.0.1:0"]);
    let post = |token: &str, id: &str| {
        let body = event("job.due", id).to_string();
        let auth = format!("Bearer {token}");
        serve
            .request(
                "POST",
                "/events",
                &[("Content-Type", JSON), ("Authorization", &auth)],
                body.as_bytes(),
            )
            .0
    };
    assert_eq!(post("old-token", "a1"), 202);
    p.write("token", "new-token\n");
    let pid = rustix::process::Pid::from_raw(i32::try_from(serve.child.id()).unwrap()).unwrap();
    rustix::process::kill_process(pid, Signal::HUP).unwrap();
    wait_until(LIMIT, "the reload to be logged", || {
        serve.stderr().contains("reloaded autod.toml")
    });
    assert_eq!(post("old-token", "a2"), 401);
    assert_eq!(post("new-token", "a3"), 202);
    // `--listen` stays: the port did not move.
    assert!(!serve.stderr().contains("moved from"), "{}", serve.stderr());
    assert_eq!(p.inbox(), ["a1.json", "a3.json"]);
}
