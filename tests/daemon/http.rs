//! Real HTTP against autod's intake, shared by the serve, hooks and metrics
//! tests: the server is started on port 0, its port read from its readiness
//! line on stderr (waited on, never slept for), and requests are written by
//! hand on a `TcpStream`, so malformed and oversized cases are exactly what
//! is sent.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::ops::Deref;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};

use serde_json::Value;

use crate::helper::{Daemon, LIMIT, Project};

pub const JSON: &str = "application/json";

/// The readiness line both `autod serve` and `autod run` print.
const READY: &str = "autod serve: listening on http://";

/// Requests to a server on a loopback port, whoever started it.
pub struct Client {
    pub port: u16,
}

impl Client {
    /// The server inside a running `autod run` (`[serve]` configured).
    pub fn of_daemon(daemon: &Daemon) -> Client {
        let port = daemon
            .stderr()
            .lines()
            .find_map(|l| l.strip_prefix(READY))
            .and_then(|addr| addr.rsplit_once(':'))
            .and_then(|(_, port)| port.parse().ok())
            .unwrap_or_else(|| panic!("no readiness line:\n{}", daemon.stderr()));
        Client { port }
    }

    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.set_read_timeout(Some(LIMIT)).unwrap();
        s
    }

    /// One request (`Connection: close`), the status and the body as JSON.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Value) {
        let (status, text) = self.request_text(method, path, headers, body);
        (status, json_of(&text))
    }

    /// One request, the status and the body as text (`/metrics` is not JSON).
    pub fn request_text(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String) {
        let mut s = self.connect();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        response_text(&mut s)
    }

    pub fn post(&self, content_type: &str, body: &Value) -> (u16, Value) {
        self.request(
            "POST",
            "/events",
            &[("Content-Type", content_type)],
            body.to_string().as_bytes(),
        )
    }
}

/// A running `autod serve`; SIGKILLed on drop.
pub struct Serve {
    pub child: Child,
    client: Client,
    stderr: Arc<Mutex<String>>,
}

impl Deref for Serve {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Serve {
    pub fn start(p: &Project, args: &[&str]) -> Serve {
        Serve::start_with_env(p, args, &[])
    }

    pub fn start_with_env(p: &Project, args: &[&str], env: &[(&str, &str)]) -> Serve {
        let mut child = serve_command(p, args, env)
            .stderr(Stdio::piped())
            .spawn()
            .expect("autod serve starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        let all = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix(READY) {
                    let _ = tx.send(addr.to_owned());
                }
                all.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let addr = rx.recv_timeout(LIMIT).unwrap_or_else(|_| {
            panic!(
                "autod serve printed no readiness line; stderr:\n{}",
                stderr.lock().unwrap()
            )
        });
        let port = addr.rsplit_once(':').unwrap().1.parse().unwrap();
        Serve {
            child,
            client: Client { port },
            stderr,
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- stderr of autod serve ---\n{}", self.stderr());
        }
    }
}

/// `autod serve ARGS --root P`, with the caller's logging settings removed.
pub fn serve_command(p: &Project, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_autod"));
    cmd.arg("serve")
        .args(args)
        .arg("--root")
        .arg(p.root())
        .current_dir(p.root())
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    for var in ["AUTOD_ROOT", "AUTOD_LOG", "AUTOD_LOG_FORMAT"] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    cmd
}

/// Reads a whole response (the server closes after it); status and JSON body.
pub fn response(s: &mut TcpStream) -> (u16, Value) {
    let (status, body) = response_text(s);
    (status, json_of(&body))
}

/// A response body as JSON; an empty one is `null`.
fn json_of(body: &str) -> Value {
    if body.is_empty() {
        return Value::Null;
    }
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"))
}

/// Reads a whole response; status and body text.
pub fn response_text(s: &mut TcpStream) -> (u16, String) {
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the response");
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}
