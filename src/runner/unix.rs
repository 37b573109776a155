//! The Unix parts of running a handler: process groups and signal names.

use rustix::process::{Pid, Signal, kill_process_group, test_kill_process_group};

/// Sends `signal` to every process in the group led by `pid` (the handler and
/// anything it started). A group that is already gone is not an error.
fn signal_group(pid: u32, signal: Signal) {
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return;
    };
    let _ = kill_process_group(pid, signal);
}

pub fn terminate_group(pid: u32) {
    signal_group(pid, Signal::TERM);
}

pub fn kill_group(pid: u32) {
    signal_group(pid, Signal::KILL);
}

/// Whether a running process is left in the group led by `pid`.
pub fn group_alive(pid: u32) -> bool {
    let exists = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .is_some_and(|pgid| test_kill_process_group(pgid).is_ok());
    // kill(-pgid, 0) counts zombies too, and a PID 1 that does not reap orphans
    // (a container without an init) keeps them for ever; on Linux, look closer.
    #[cfg(target_os = "linux")]
    if exists && let Ok(procs) = std::fs::read_dir("/proc") {
        let pgid = pid.to_string();
        return procs.flatten().any(|p| {
            let numeric = p
                .file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
            numeric
                && std::fs::read_to_string(p.path().join("stat")).is_ok_and(|stat| {
                    // "pid (comm) state ppid pgrp …"; comm may hold spaces and parens.
                    let mut fields = stat
                        .rsplit_once(')')
                        .map_or("", |(_, rest)| rest)
                        .split_whitespace();
                    let state = fields.next().unwrap_or("Z");
                    fields.nth(1) == Some(pgid.as_str()) && !matches!(state, "Z" | "X")
                })
        });
    }
    exists
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
