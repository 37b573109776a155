//! The Unix parts of running a handler: process groups and signal names.

use rustix::process::{Pid, Signal, kill_process_group};

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
