//! The Unix parts of running a handler: orphans, reaping and signal names.
//!
//! autod makes itself a child subreaper before its first handler starts: a
//! process whose parent exits is then re-parented to autod instead of to init,
//! so it stays where a sweep (`contain.rs`) can find it. An adopted orphan
//! that exits must be reaped by autod, or it stays a zombie for as long as
//! autod runs. tokio reaps only the children it spawned, each by its own pid
//! (a pidfd, or `waitpid(pid)` on SIGCHLD; never `waitpid(-1)`), so autod reaps
//! the others the same way: by pid, only zombies whose parent is autod, and
//! never a handler's pid (that exit status is tokio's). Commands that run
//! handlers start no other child processes.

use std::sync::{Mutex, Once};

use rustix::process::{Pid, WaitId, WaitIdOptions, waitid};

/// Makes autod the reaper of its handlers' orphans; once per process.
pub fn adopt_orphans() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        #[cfg(target_os = "linux")]
        if let Err(e) = rustix::process::set_child_subreaper(Some(rustix::process::getpid())) {
            tracing::warn!(
                "cannot make autod a child subreaper ({e}): a process a handler starts and leaves behind is re-parented to init, where a timeout may not find it"
            );
        }
    });
}

/// Keeps a task on the current runtime that reaps adopted orphans as they
/// exit (on SIGCHLD), so a long-running autod collects no zombies. A runtime
/// that ends takes its task with it; the next run starts another.
pub fn ensure_reaper() {
    static REAPER: Mutex<Option<tokio::task::JoinHandle<()>>> = Mutex::new(None);
    let mut reaper = REAPER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if reaper.as_ref().is_some_and(|r| !r.is_finished()) {
        return;
    }
    let Ok(mut sigchld) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child())
    else {
        return;
    };
    *reaper = Some(tokio::spawn(async move {
        while sigchld.recv().await.is_some() {
            // Most often the child that exited is a handler tokio is about to
            // reap: look again a little later, so a scan of /proc is not on
            // the path of the event that handler was running.
            if any_waitable() {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                reap_adopted();
            }
        }
    }));
}

/// Whether any child of autod has exited and awaits reaping. WNOWAIT: it
/// looks without reaping, since the zombie may be a handler whose status
/// tokio is about to collect.
fn any_waitable() -> bool {
    let any = waitid(
        WaitId::All,
        WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT,
    );
    matches!(any, Ok(Some(_)))
}

/// Reaps every zombie autod adopted. Cheap when there is none: one syscall.
pub fn reap_adopted() {
    if !any_waitable() {
        return;
    }
    let me = std::process::id();
    let handlers = super::handlers();
    for p in super::contain::all() {
        if p.zombie
            && p.ppid == me
            && !handlers.contains(&p.pid)
            && let Some(pid) = i32::try_from(p.pid).ok().and_then(Pid::from_raw)
        {
            let _ = waitid(
                WaitId::Pid(pid),
                WaitIdOptions::EXITED | WaitIdOptions::NOHANG,
            );
        }
    }
}

/// `SIGKILL` for 9, and so on for the signals a handler is likely to die of.
pub fn signal_name(signal: i32) -> String {
    let name = match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        _ => return format!("signal {signal}"),
    };
    name.to_owned()
}
