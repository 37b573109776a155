//! Running one handler process (SPEC §4), and nothing else: the runner does not
//! know where the event came from or what the outcome will be recorded as.
//!
//! - explicit argv, never a shell; the event goes in on stdin, then stdin closes;
//! - its own process group and a tag in its environment ([`RUN_ID_VAR`]), so a
//!   timeout reaches everything it started, even what left the group
//!   (`contain.rs`): SIGTERM to all of it, then SIGKILL after the grace period,
//!   and the outcome says truthfully what was sent and what could not be stopped;
//! - [`start`] hands back a [`RunMark`] as soon as the process exists, for the
//!   caller to record, so that the processes of a run whose autod died can be
//!   found and stopped later ([`stop_previous`]);
//! - stdout and stderr read concurrently (neither pipe can fill and stall the
//!   handler), keeping the last [`TAIL_BYTES`] of each;
//! - once the handler has exited, a background grandchild still holding its
//!   pipes gets [`LEAK_GRACE`] to let go; then autod stops reading and moves on.

mod contain;
mod unix;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::ErrorKind;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::watch;

pub use contain::{RUN_ID_VAR, RunMark, Stopped};
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
    /// The run's tag ([`RUN_ID_VAR`] in its environment), chosen before the
    /// spawn so that it can be recorded before the process exists.
    pub run_id: String,
    /// Becomes `true` when autod is shutting down: everything the run started
    /// is stopped as on a timeout, and the run ends [`Termination::Cancelled`].
    pub cancel: Option<watch::Receiver<bool>>,
}

/// How the handler ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Termination {
    Exited(i32),
    Signaled(i32),
    /// It outran its timeout and was stopped; what was sent, and what could
    /// not be stopped, if anything.
    TimedOut(Stopped),
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

/// Pids of the handlers this process spawned and has not reaped yet: tokio
/// reaps them, so autod's own reaping must leave them alone, and each is the
/// head of one run in flight.
static HANDLERS: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

fn handlers() -> MutexGuard<'static, BTreeSet<u32>> {
    HANDLERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A handler that has started; [`Running::finish`] waits for it.
pub struct Running {
    child: tokio::process::Child,
    mark: RunMark,
    started: Instant,
    timeout: Duration,
    kill_grace: Duration,
    cancel: Option<watch::Receiver<bool>>,
    writer: tokio::task::JoinHandle<()>,
    out_reader: tokio::task::JoinHandle<()>,
    err_reader: tokio::task::JoinHandle<()>,
    out_tail: Arc<Mutex<Tail>>,
    err_tail: Arc<Mutex<Tail>>,
}

/// Runs the handler to completion (or past its timeout) and reports how it went.
pub async fn run(spec: RunSpec) -> RunOutput {
    match start(spec) {
        Ok(running) => running.finish().await,
        Err(failed) => failed,
    }
}

/// A fresh run tag, for [`RunSpec::run_id`].
pub fn new_run_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Starts the handler; the error is the outcome of a handler that could not start.
pub fn start(spec: RunSpec) -> Result<Running, RunOutput> {
    let started = Instant::now();
    let failed = |msg: String| RunOutput {
        termination: Termination::SpawnFailed(msg),
        duration: started.elapsed(),
        stdout_tail: Vec::new(),
        stderr_tail: Vec::new(),
        leaked: false,
    };
    let Some((program, args)) = spec.argv.split_first() else {
        return Err(failed("empty command".into()));
    };
    unix::adopt_orphans();
    unix::ensure_reaper();
    let run_id = spec.run_id.clone();
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(&spec.cwd)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .env(RUN_ID_VAR, &run_id)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    let mut child = {
        // Registered before autod's reaper can see it exit.
        let mut handlers = handlers();
        match cmd.spawn() {
            Ok(c) => {
                handlers.insert(c.id().expect("a just-spawned child has a pid"));
                c
            }
            Err(e) => return Err(failed(spawn_error(program, &e))),
        }
    };
    let pid = child.id().expect("a just-spawned child has a pid");
    // A record for whoever finds the run later, not the timeout itself:
    // `finish` times the run on tokio's monotonic clock.
    let deadline = crate::time::add(crate::time::now(), spec.timeout);
    let mark = RunMark {
        version: contain::MARK_VERSION,
        run_id,
        pid,
        start_time: contain::stat(pid).map_or(0, |s| s.start),
        pgid: pid,
        deadline: crate::time::format(deadline),
        autod_pid: std::process::id(),
        boot_id: contain::boot_id(),
    };

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
    Ok(Running {
        child,
        mark,
        started,
        timeout: spec.timeout,
        kill_grace: spec.kill_grace,
        cancel: spec.cancel,
        writer,
        out_reader,
        err_reader,
        out_tail,
        err_tail,
    })
}

impl Running {
    /// What identifies this run's processes, for the caller to record.
    pub fn mark(&self) -> &RunMark {
        &self.mark
    }

    /// Waits for the handler (stopping everything it started on a timeout
    /// or a cancel) and reports how it went.
    pub async fn finish(mut self) -> RunOutput {
        let mut cancel = self.cancel.take();
        let finished = tokio::time::timeout(self.timeout, async {
            tokio::select! {
                status = self.child.wait() => Some(status),
                () = cancelled(&mut cancel) => None,
            }
        })
        .await;
        let (status, stopped) = match finished {
            Ok(Some(status)) => (status, None),
            Ok(None) => {
                let (status, _) = self.stop().await;
                (status, Some(None))
            }
            Err(_) => {
                let (status, report) = self.stop().await;
                (status, Some(Some(report)))
            }
        };
        handlers().remove(&self.mark.pid);
        let duration = self.started.elapsed();

        self.writer.abort();
        let leaked = !wait_readers(self.out_reader, self.err_reader).await;

        let termination = match (stopped, status) {
            (Some(Some(report)), _) => Termination::TimedOut(report),
            (Some(None), _) => Termination::Cancelled,
            (None, Ok(status)) => from_status(status),
            (None, Err(e)) => {
                Termination::SpawnFailed(format!("lost track of the handler process: {e}"))
            }
        };
        let take =
            |t: &Arc<Mutex<Tail>>| std::mem::take(&mut *t.lock().expect("tail lock")).finish();
        RunOutput {
            termination,
            duration,
            stdout_tail: take(&self.out_tail),
            stderr_tail: take(&self.err_tail),
            leaked,
        }
    }

    /// Stops everything the run started (see `contain.rs`), and collects the
    /// handler's exit status.
    async fn stop(&mut self) -> (std::io::Result<ExitStatus>, Stopped) {
        let mark = self.mark.clone();
        let sweep = || {
            let handlers = handlers();
            let others: BTreeSet<u32> = handlers
                .iter()
                .copied()
                .filter(|&p| p != mark.pid)
                .collect();
            // Adopted orphans are this run's when no other run is in flight.
            let adopt = others.is_empty();
            drop(handlers);
            contain::members(&contain::Scope {
                mark: &mark,
                adopt,
                handlers: &others,
            })
        };
        let child = &mut self.child;
        let mut status = None;
        // The handler is reaped (by tokio) while the sweeps go on, so that it
        // stops counting as alive as soon as it exits.
        let report = {
            let stop = contain::stop(sweep, self.kill_grace);
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    report = &mut stop => break report,
                    s = child.wait(), if status.is_none() => status = Some(s),
                }
            }
        };
        let status = match status {
            Some(s) => s,
            // Everything was signalled; if the handler itself outlived
            // SIGKILL, do not wait for ever.
            None => match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
                Ok(s) => s,
                Err(_) => Err(std::io::Error::other(format!(
                    "pid {} outlived SIGKILL",
                    self.mark.pid
                ))),
            },
        };
        (status, report)
    }
}

/// Stops what is left of a run that some other autod (or this one, earlier)
/// started and no longer supervises: SIGTERM, `grace`, then SIGKILL.
pub async fn stop_previous(mark: &RunMark, grace: Duration) -> Stopped {
    let none = BTreeSet::new();
    let sweep = || {
        contain::members(&contain::Scope {
            mark,
            adopt: false,
            handlers: &none,
        })
    };
    // Processes autod adopted belong to its own runs, not to this one.
    let mut report = contain::stop(sweep, grace).await;
    report.unattributed = 0;
    report
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
