//! Running one handler process (SPEC §4), and nothing else: the runner does not
//! know where the event came from or what the outcome will be recorded as.
//!
//! - explicit argv, never a shell; the event goes in on stdin, then stdin closes;
//! - its own process group, so a timeout reaches everything it started:
//!   SIGTERM to the group, then SIGKILL after the grace period;
//! - stdout and stderr read concurrently (neither pipe can fill and stall the
//!   handler), keeping the last [`TAIL_BYTES`] of each;
//! - once the handler has exited, a background grandchild still holding its
//!   pipes gets [`LEAK_GRACE`] to let go; then autod stops reading and moves on.

mod unix;

use std::ffi::OsString;
use std::io::ErrorKind;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::watch;

pub use unix::signal_name;

/// How much of each output stream is kept for the dead letter and the log.
pub const TAIL_BYTES: usize = 64 * 1024;
/// How long pipes may stay open after the handler itself has exited.
pub const LEAK_GRACE: Duration = Duration::from_millis(100);

/// Everything needed to start one handler run.
#[derive(Debug)]
pub struct RunSpec {
    pub argv: Vec<OsString>,
    pub cwd: PathBuf,
    /// Added to autod's own environment.
    pub env: Vec<(OsString, OsString)>,
    pub stdin: Vec<u8>,
    pub timeout: Duration,
    pub kill_grace: Duration,
    /// A descriptor the handler inherits and keeps open for as long as it
    /// runs: the caller's lock on what the handler works on, so that if autod
    /// dies, the lock lives on with the orphaned handler instead of letting a
    /// restarted autod run the same work beside it.
    pub inherit: Option<std::os::fd::OwnedFd>,
    /// Becomes `true` when autod is shutting down: the handler's group is
    /// stopped as on a timeout, and the run ends [`Termination::Cancelled`].
    pub cancel: Option<watch::Receiver<bool>>,
}

/// How the handler ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Termination {
    Exited(i32),
    Signaled(i32),
    /// It outran its timeout and was stopped; `killed` when SIGTERM was not enough.
    TimedOut {
        killed: bool,
    },
    /// It never started; the message says why and what to do.
    SpawnFailed(String),
    /// autod was shutting down and stopped it; nothing should be recorded.
    Cancelled,
}

#[derive(Debug, Clone)]
pub struct RunOutput {
    pub termination: Termination,
    pub duration: Duration,
    pub stdout_tail: Vec<u8>,
    pub stderr_tail: Vec<u8>,
    /// A process it left behind kept the output pipes open past [`LEAK_GRACE`].
    pub leaked: bool,
}

/// The last `cap` bytes written to it.
#[derive(Debug, Default)]
struct Tail {
    buf: Vec<u8>,
}

impl Tail {
    fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        // Trim only once the buffer is twice the cap, so trimming is amortized O(1).
        if self.buf.len() > 2 * TAIL_BYTES {
            self.buf.drain(..self.buf.len() - TAIL_BYTES);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.buf.len() > TAIL_BYTES {
            self.buf.drain(..self.buf.len() - TAIL_BYTES);
            // Cut at a character, not inside one: the tail becomes a string,
            // where a broken first character would turn into U+FFFD and push
            // the tail past the cap.
            let partial = self
                .buf
                .iter()
                .take(3)
                .take_while(|b| (0x80..0xC0).contains(*b))
                .count();
            self.buf.drain(..partial);
        }
        self.buf
    }
}

async fn read_tail(mut pipe: impl AsyncRead + Unpin, tail: Arc<Mutex<Tail>>) {
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => tail.lock().expect("tail lock").push(&chunk[..n]),
        }
    }
}

fn spawn_error(program: &OsString, e: &std::io::Error) -> String {
    let program = PathBuf::from(program).display().to_string();
    match e.kind() {
        ErrorKind::NotFound => {
            format!("command {program} not found (create it, or fix `command` in autod.toml)")
        }
        ErrorKind::PermissionDenied => format!("command {program} is not executable (chmod +x it)"),
        _ if e.raw_os_error() == Some(8) => {
            format!(
                "command {program} is not a program (a script needs a #! line such as #!/bin/sh)"
            )
        }
        _ => format!("command {program} could not be started: {e}"),
    }
}

/// Runs the handler to completion (or past its timeout) and reports how it went.
pub async fn run(spec: RunSpec) -> RunOutput {
    let started = Instant::now();
    let failed = |msg: String| RunOutput {
        termination: Termination::SpawnFailed(msg),
        duration: started.elapsed(),
        stdout_tail: Vec::new(),
        stderr_tail: Vec::new(),
        leaked: false,
    };
    let Some((program, args)) = spec.argv.split_first() else {
        return failed("empty command".into());
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(&spec.cwd)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    // Only this spawn may inherit the descriptor: it is close-on-exec again (in
    // fact closed) as soon as the child exists. The runtime spawns one process
    // at a time, so no other handler can inherit it in between.
    if let Some(fd) = &spec.inherit
        && let Err(e) = rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())
    {
        return failed(format!("cannot pass the pair lock to the handler: {e}"));
    }
    let spawned = cmd.spawn();
    drop(spec.inherit);
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => return failed(spawn_error(program, &e)),
    };
    let pid = child.id().expect("a just-spawned child has a pid");

    let mut stdin = child.stdin.take().expect("stdin is piped");
    let input = spec.stdin;
    // A handler that does not read stdin is fine: a broken pipe here is ignored.
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&input).await;
        let _ = stdin.shutdown().await;
    });
    let out_tail = Arc::new(Mutex::new(Tail::default()));
    let err_tail = Arc::new(Mutex::new(Tail::default()));
    let out_reader = tokio::spawn(read_tail(
        child.stdout.take().expect("piped"),
        out_tail.clone(),
    ));
    let err_reader = tokio::spawn(read_tail(
        child.stderr.take().expect("piped"),
        err_tail.clone(),
    ));

    let mut cancel = spec.cancel;
    let finished = tokio::time::timeout(spec.timeout, async {
        tokio::select! {
            status = child.wait() => Some(status),
            () = cancelled(&mut cancel) => None,
        }
    })
    .await;
    let (status, stopped) = match finished {
        Ok(Some(status)) => (status, None),
        Ok(None) => (
            stop_group(&mut child, pid, spec.kill_grace).await.0,
            Some(Stop::Cancelled),
        ),
        Err(_) => {
            let (status, killed) = stop_group(&mut child, pid, spec.kill_grace).await;
            (status, Some(Stop::TimedOut { killed }))
        }
    };
    let duration = started.elapsed();

    writer.abort();
    let leaked = !wait_readers(out_reader, err_reader).await;

    let termination = match (stopped, status) {
        (Some(Stop::TimedOut { killed }), _) => Termination::TimedOut { killed },
        (Some(Stop::Cancelled), _) => Termination::Cancelled,
        (None, Ok(status)) => from_status(status),
        (None, Err(e)) => {
            Termination::SpawnFailed(format!("lost track of the handler process: {e}"))
        }
    };
    let take = |t: &Arc<Mutex<Tail>>| std::mem::take(&mut *t.lock().expect("tail lock")).finish();
    RunOutput {
        termination,
        duration,
        stdout_tail: take(&out_tail),
        stderr_tail: take(&err_tail),
        leaked,
    }
}

enum Stop {
    TimedOut { killed: bool },
    Cancelled,
}

/// SIGTERM to the group, then SIGKILL after `grace` to whatever is left of it
/// (the handler, or anything it started that ignores SIGTERM); `true` when the
/// handler itself needed SIGKILL.
async fn stop_group(
    child: &mut tokio::process::Child,
    pid: u32,
    grace: Duration,
) -> (std::io::Result<ExitStatus>, bool) {
    let deadline = tokio::time::Instant::now() + grace;
    unix::terminate_group(pid);
    let status = match tokio::time::timeout_at(deadline, child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            unix::kill_group(pid);
            return (child.wait().await, true);
        }
    };
    // The handler is gone; while a process of its group is left, the group id
    // cannot be reused, so signalling it reaches only what the handler started.
    while unix::group_alive(pid) {
        if tokio::time::Instant::now() >= deadline {
            unix::kill_group(pid);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (status, false)
}

/// Resolves when the flag turns `true`; never, without a flag.
async fn cancelled(flag: &mut Option<watch::Receiver<bool>>) {
    let Some(rx) = flag else {
        return std::future::pending().await;
    };
    if rx.wait_for(|stop| *stop).await.is_err() {
        // The sender is gone: nobody can ask for a stop any more.
        std::future::pending::<()>().await;
    }
}

/// Waits up to [`LEAK_GRACE`] for both readers to see end-of-file; `false` (and
/// the readers stopped) if something still holds the pipes.
async fn wait_readers(out: tokio::task::JoinHandle<()>, err: tokio::task::JoinHandle<()>) -> bool {
    let (out_abort, err_abort) = (out.abort_handle(), err.abort_handle());
    let both = async {
        let _ = out.await;
        let _ = err.await;
    };
    if tokio::time::timeout(LEAK_GRACE, both).await.is_ok() {
        return true;
    }
    out_abort.abort();
    err_abort.abort();
    false
}

fn from_status(status: ExitStatus) -> Termination {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => Termination::Exited(code),
        (None, Some(signal)) => Termination::Signaled(signal),
        (None, None) => Termination::Exited(-1),
    }
}
