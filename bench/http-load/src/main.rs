//! `http-load`: the client side of `bench/run serve`. Each of `--clients`
//! threads keeps one HTTP/1.1 connection open and sends its share of
//! `--requests` POSTs one after another; the body is `--body` with `{id}`
//! replaced by the request's id, also sent as `X-Id`. For each request it
//! writes `id send_ns status latency_ns` to `--out` (send_ns on
//! CLOCK_REALTIME, so it joins with bench/stamp.c's handler-start times),
//! and prints one JSON summary line on stdout.
//!
//! std only: a load generator with its own async runtime would measure
//! itself as much as the servers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

struct Args {
    port: u16,
    path: String,
    clients: usize,
    requests: usize,
    body: String,
    content_type: String,
    prefix: String,
    out: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        port: 0,
        path: "/".into(),
        clients: 16,
        requests: 1000,
        body: "{}".into(),
        content_type: "application/json".into(),
        prefix: "r".into(),
        out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| die(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--port" => a.port = value().parse().unwrap_or_else(|_| die("--port: a number")),
            "--path" => a.path = value(),
            "--clients" => {
                a.clients = value()
                    .parse()
                    .unwrap_or_else(|_| die("--clients: a number"))
            }
            "--requests" => {
                a.requests = value()
                    .parse()
                    .unwrap_or_else(|_| die("--requests: a number"))
            }
            "--body" => a.body = value(),
            "--content-type" => a.content_type = value(),
            "--prefix" => a.prefix = value(),
            "--out" => a.out = Some(value()),
            _ => die(&format!(
                "unknown flag {flag}; see the top of bench/http-load/src/main.rs"
            )),
        }
    }
    if a.port == 0 {
        die("--port is required");
    }
    a
}

fn die(msg: &str) -> ! {
    eprintln!("http-load: {msg}");
    std::process::exit(2)
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

struct Sample {
    id: String,
    sent_ns: u128,
    status: u16,
    latency_ns: u128,
}

fn connect(port: u16) -> (TcpStream, BufReader<TcpStream>) {
    let s =
        TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| die(&format!("connect: {e}")));
    s.set_nodelay(true).ok();
    let r = BufReader::new(s.try_clone().unwrap());
    (s, r)
}

/// Reads one response; returns its status and whether the server closes.
fn read_response(r: &mut BufReader<TcpStream>) -> std::io::Result<(u16, bool)> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (mut length, mut close) = (0usize, false);
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            let v = v.trim();
            if k.eq_ignore_ascii_case("content-length") {
                length = v.parse().unwrap_or(0);
            } else if k.eq_ignore_ascii_case("connection") && v.eq_ignore_ascii_case("close") {
                close = true;
            }
        }
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body)?;
    Ok((status, close))
}

fn client(a: &Args, n: usize, count: usize) -> Vec<Sample> {
    let (mut w, mut r) = connect(a.port);
    let mut samples = Vec::with_capacity(count);
    for i in 0..count {
        let id = format!("{}-{n}-{i}", a.prefix);
        let body = a.body.replace("{id}", &id);
        let req = format!(
            "POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {}\r\nX-Id: {id}\r\nContent-Length: {}\r\n\r\n{body}",
            a.path,
            a.content_type,
            body.len()
        );
        let sent_ns = now_ns();
        let t = Instant::now();
        let result = w
            .write_all(req.as_bytes())
            .and_then(|()| read_response(&mut r));
        let (status, close) = result.unwrap_or_else(|e| die(&format!("request {id}: {e}")));
        samples.push(Sample {
            id,
            sent_ns,
            status,
            latency_ns: t.elapsed().as_nanos(),
        });
        if close {
            (w, r) = connect(a.port);
        }
    }
    samples
}

fn main() {
    let a = args();
    let start = Instant::now();
    let samples: Vec<Sample> = std::thread::scope(|s| {
        let a = &a;
        let threads: Vec<_> = (0..a.clients)
            .map(|n| {
                let count = a.requests / a.clients + usize::from(n < a.requests % a.clients);
                s.spawn(move || client(a, n, count))
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    });
    let elapsed = start.elapsed().as_secs_f64();
    if let Some(out) = &a.out {
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(out).unwrap_or_else(|e| die(&format!("{out}: {e}"))),
        );
        for s in &samples {
            writeln!(f, "{} {} {} {}", s.id, s.sent_ns, s.status, s.latency_ns).unwrap();
        }
    }
    let mut lat: Vec<u128> = samples.iter().map(|s| s.latency_ns).collect();
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)] as f64 / 1e6;
    let ok = samples
        .iter()
        .filter(|s| (200..300).contains(&s.status))
        .count();
    println!(
        "{{\"requests\":{},\"ok\":{ok},\"seconds\":{elapsed:.3},\"rps\":{:.1},\"p50_ms\":{:.3},\"p99_ms\":{:.3}}}",
        samples.len(),
        samples.len() as f64 / elapsed,
        pct(0.5),
        pct(0.99)
    );
}
