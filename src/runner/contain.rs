//! Containment: finding every process a run started, and stopping them all.
//!
//! A process group is not enough: a handler can leave it (`setpgid`, `setsid`,
//! `set -m` job control), and a SIGTERM to a group that is empty reaches
//! nothing. So a run's processes are found three ways, each checked against
//! `/proc` on every sweep:
//!
//! - the handler itself, by pid *and* start time (`/proc/<pid>/stat` field 22),
//!   so that a pid the kernel gave to someone else is never signalled;
//! - its process group, unless the group's id now names another process;
//! - every process whose environment carries the run's tag
//!   (`AUTOD_RUN_ID=<uuid>`), which every descendant inherits unless it clears
//!   its environment;
//!
//! and then every descendant of those, by parent pid. autod is a child
//! subreaper (see `unix.rs`), so a process whose parent exits is re-parented
//! to autod, not to init: while exactly one run is in flight, such an adopted
//! orphan started after the run began is counted as the run's. With several
//! runs in flight an adopted orphan without a tag cannot be attributed; it is
//! left alone and counted, and the record says so.
//!
//! Signals go through a pidfd opened before the start time is checked, so a
//! process that exits and whose pid is reused in between is not signalled.
//! Nothing here ever signals autod itself or autod's own process group.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use rustix::process::Signal;
use serde::{Deserialize, Serialize};

/// The variable that tags every process of one run.
pub const RUN_ID_VAR: &str = "AUTOD_RUN_ID";

/// What identifies one run's processes. The owner of a pair writes it into
/// the pair's lock file once the handler is spawned, so that whoever owns the
/// pair next can find the processes of a run whose autod is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunMark {
    pub version: u32,
    /// The tag in the run's environment ([`RUN_ID_VAR`]).
    pub run_id: String,
    pub pid: u32,
    /// `/proc/<pid>/stat` field 22 (clock ticks after boot); 0 if unknown.
    pub start_time: u64,
    pub pgid: u32,
    /// When its timeout was due (RFC 3339), for the record: the timeout
    /// itself runs on a monotonic clock (`Running::finish`).
    pub deadline: String,
    /// The autod process that ran it.
    pub autod_pid: u32,
    /// `/proc/sys/kernel/random/boot_id`: after a reboot nothing of the run
    /// is left, and a pid with the same start time is someone else.
    #[serde(default)]
    pub boot_id: String,
}

impl RunMark {
    /// What is known of a run before its process exists: its tag. Recorded
    /// before the spawn, it lets the next owner find the run's processes by
    /// tag even if autod dies before it can record the pid (a busy machine
    /// may run the handler well before autod's next instruction).
    pub fn before_spawn(run_id: &str, timeout: std::time::Duration) -> RunMark {
        let deadline = crate::time::add(crate::time::now(), timeout);
        RunMark {
            version: MARK_VERSION,
            run_id: run_id.to_owned(),
            pid: 0,
            start_time: 0,
            pgid: 0,
            deadline: crate::time::format(deadline),
            autod_pid: std::process::id(),
            boot_id: boot_id(),
        }
    }
}

/// This boot of the machine (empty if unknown).
pub fn boot_id() -> String {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    })
    .clone()
}

pub const MARK_VERSION: u32 = 1;

/// What a stop did, for a truthful record: only signals that were delivered
/// are counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stopped {
    /// Processes SIGTERM was delivered to.
    pub terminated: usize,
    /// Processes SIGKILL was delivered to (they outlived the grace period).
    pub killed: usize,
    /// Processes of the run still alive after SIGKILL (in uninterruptible
    /// sleep, or owned by another user).
    pub survivors: Vec<u32>,
    /// Processes adopted by autod, without the run's tag, that could not be
    /// told apart from another run's: left running.
    pub unattributed: usize,
}

impl Stopped {
    pub fn found_any(&self) -> bool {
        self.terminated > 0 || self.killed > 0 || !self.survivors.is_empty()
    }

    /// The strongest signal delivered: SIGKILL, SIGTERM, or none.
    pub fn strongest_signal(&self) -> Option<&'static str> {
        if self.killed > 0 {
            Some("SIGKILL")
        } else if self.terminated > 0 {
            Some("SIGTERM")
        } else {
            None
        }
    }

    pub fn complete(&self) -> bool {
        self.survivors.is_empty() && self.unattributed == 0
    }
}

fn processes(n: usize) -> String {
    if n == 1 {
        "1 process".to_owned()
    } else {
        format!("{n} processes")
    }
}

/// "stopped with SIGTERM, then SIGKILL (SIGTERM to 2 processes, SIGKILL to 1)", and what
/// could not be stopped, if anything.
impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.terminated, self.killed) {
            (0, 0) => write!(f, "found nothing left to stop")?,
            (t, 0) => write!(f, "stopped with SIGTERM ({})", processes(t))?,
            (0, k) => write!(f, "stopped with SIGKILL ({})", processes(k))?,
            (t, k) => write!(
                f,
                "stopped with SIGTERM, then SIGKILL (SIGTERM to {}, SIGKILL to {k})",
                processes(t)
            )?,
        }
        if !self.survivors.is_empty() {
            let pids: Vec<String> = self.survivors.iter().map(u32::to_string).collect();
            write!(
                f,
                "; {} it started could not be stopped (pid {} outlived SIGKILL)",
                processes(self.survivors.len()),
                pids.join(", ")
            )?;
        }
        if self.unattributed > 0 {
            write!(
                f,
                "; {} adopted by autod without this run's {RUN_ID_VAR} could not be told apart from another run's and {} left running",
                processes(self.unattributed),
                if self.unattributed == 1 {
                    "was"
                } else {
                    "were"
                }
            )?;
        }
        Ok(())
    }
}

/// One process as `/proc/<pid>/stat` shows it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Stat {
    pub pid: u32,
    pub ppid: u32,
    pub pgrp: u32,
    pub start: u64,
    pub zombie: bool,
}

/// Parses "pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt
/// majflt cmajflt utime stime cutime cstime priority nice threads itrealvalue
/// starttime …"; comm may hold spaces and parentheses, so split after the last `)`.
fn parse_stat(pid: u32, text: &str) -> Option<Stat> {
    let (_, rest) = text.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state), so field n is fields[n - 3].
    Some(Stat {
        pid,
        zombie: matches!(*fields.first()?, "Z" | "X"),
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

pub(super) fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(pid, &text)
}

/// Every process on the machine (that `/proc` shows us).
pub(super) fn all() -> Vec<Stat> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(stat)
        .collect()
}

/// Whether the process's environment holds `AUTOD_RUN_ID=<run_id>`. Only our
/// own user's processes can be read; that is where a handler's children are.
fn tagged(pid: u32, needle: &[u8]) -> bool {
    let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    env.split(|b| *b == 0).any(|var| var == needle)
}

fn needle(mark: &RunMark) -> Vec<u8> {
    format!("{RUN_ID_VAR}={}", mark.run_id).into_bytes()
}

/// Whose processes a sweep looks for.
pub(super) struct Scope<'a> {
    pub mark: &'a RunMark,
    /// Count adopted orphans (ppid = autod, no tag) as this run's: true when
    /// it is the only run in flight in this autod.
    pub adopt: bool,
    /// Pids of handlers autod itself is waiting for (never adopted: they
    /// belong to their own runs, and tokio reaps them).
    pub handlers: &'a std::collections::BTreeSet<u32>,
}

/// A process, by pid and start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Proc {
    pub pid: u32,
    pub start: u64,
}

/// The live processes of the run, and how many adopted orphans could not be
/// attributed to it.
pub(super) fn members(scope: &Scope<'_>) -> (Vec<Proc>, usize) {
    if !scope.mark.boot_id.is_empty() && scope.mark.boot_id != boot_id() {
        return (Vec::new(), 0);
    }
    let me = std::process::id();
    let my_group = rustix::process::getpgrp()
        .as_raw_nonzero()
        .get()
        .unsigned_abs();
    let mark = scope.mark;
    let procs: Vec<Stat> = all()
        .into_iter()
        .filter(|p| p.pid != me && !p.zombie)
        .collect();
    // A group whose id is now a process that is not the handler is someone
    // else's group (the handler and its group are long gone).
    let group_is_ours = mark.pgid != my_group
        && mark.pgid != 0
        && procs
            .iter()
            .find(|p| p.pid == mark.pgid)
            .is_none_or(|leader| {
                leader.pid == mark.pid && same_start(mark.start_time, leader.start)
            });
    let needle = needle(mark);
    let mut found: HashSet<u32> = HashSet::new();
    for p in &procs {
        // Nothing the run started can be older than the handler.
        if mark.start_time != 0 && p.start < mark.start_time {
            continue;
        }
        let is_handler = p.pid == mark.pid && same_start(mark.start_time, p.start);
        if is_handler || (group_is_ours && p.pgrp == mark.pgid) || tagged(p.pid, &needle) {
            found.insert(p.pid);
        }
    }
    let mut unattributed = 0;
    for p in &procs {
        let adopted = p.ppid == me
            && !scope.handlers.contains(&p.pid)
            && !found.contains(&p.pid)
            && (mark.start_time == 0 || p.start >= mark.start_time);
        if adopted {
            if scope.adopt {
                found.insert(p.pid);
            } else {
                unattributed += 1;
            }
        }
    }
    // Descendants, by parent pid, to a fixpoint.
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for p in &procs {
        children.entry(p.ppid).or_default().push(p.pid);
    }
    let mut queue: Vec<u32> = found.iter().copied().collect();
    while let Some(pid) = queue.pop() {
        for &c in children.get(&pid).map_or(&[][..], Vec::as_slice) {
            if c != me && found.insert(c) {
                queue.push(c);
            }
        }
    }
    let members = procs
        .iter()
        .filter(|p| found.contains(&p.pid))
        .map(|p| Proc {
            pid: p.pid,
            start: p.start,
        })
        .collect();
    (members, unattributed)
}

fn same_start(expected: u64, actual: u64) -> bool {
    expected == 0 || expected == actual
}

/// Delivers `signal` to exactly this process (not a later one with its pid);
/// `true` if it was delivered.
pub(super) fn signal(p: Proc, signal: Signal) -> bool {
    use rustix::process::{Pid, PidfdFlags, kill_process, pidfd_open, pidfd_send_signal};
    let Some(pid) = i32::try_from(p.pid).ok().and_then(Pid::from_raw) else {
        return false;
    };
    if p.pid == std::process::id() {
        return false;
    }
    let still = || stat(p.pid).is_some_and(|s| !s.zombie && s.start == p.start);
    match pidfd_open(pid, PidfdFlags::empty()) {
        // The pidfd pins the process: if the start time matches now, the
        // signal goes to the process we found, whatever happens to the pid.
        Ok(fd) => still() && pidfd_send_signal(&fd, signal).is_ok(),
        Err(rustix::io::Errno::NOSYS) => still() && kill_process(pid, signal).is_ok(),
        Err(_) => false,
    }
}

/// Every live process of the scope gets SIGTERM; what is left after `grace`
/// gets SIGKILL, sweep after sweep, until nothing is left (or what is left
/// outlives SIGKILL).
///
/// SIGTERM goes only to what exists when the stop begins: a handler that
/// cleans up on SIGTERM may start processes to do it (`rm`, a last `curl`),
/// and those must get their grace period too. Whatever is still there when
/// the grace period is over, old or new, gets SIGKILL.
pub(super) async fn stop(scope: impl Fn() -> (Vec<Proc>, usize), grace: Duration) -> Stopped {
    let mut report = Stopped::default();
    let deadline = tokio::time::Instant::now() + grace;
    let (first, unattributed) = scope();
    report.unattributed = unattributed;
    let termed = first.iter().filter(|p| signal(**p, Signal::TERM)).count();
    let mut left = first;
    while !left.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        super::unix::reap_adopted();
        let (found, unattributed) = scope();
        report.unattributed = unattributed;
        left = found;
    }
    report.terminated = termed;
    // SIGKILL, until a sweep finds nothing; a process being killed cannot
    // fork, so this ends unless something cannot be killed at all.
    let mut killed: HashSet<Proc> = HashSet::new();
    let kill_deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while !left.is_empty() {
        for p in &left {
            if signal(*p, Signal::KILL) {
                killed.insert(*p);
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        super::unix::reap_adopted();
        let (found, unattributed) = scope();
        report.unattributed = unattributed;
        left = found;
        if tokio::time::Instant::now() >= kill_deadline {
            break;
        }
    }
    report.killed = killed.len();
    report.survivors = left.iter().map(|p| p.pid).collect();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_parentheses_in_the_name() {
        let text = "42 (a) b) c) S 7 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 98765 0 0";
        let s = parse_stat(42, text).unwrap();
        assert_eq!((s.ppid, s.pgrp, s.start, s.zombie), (7, 42, 98765, false));
        let z = parse_stat(42, "42 (x) Z 1 42 42 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0").unwrap();
        assert!(z.zombie);
    }

    #[test]
    fn our_own_start_time_is_readable() {
        let me = stat(std::process::id()).expect("/proc/self/stat");
        assert!(me.start > 0);
        assert!(!me.zombie);
    }

    #[test]
    fn the_record_says_only_what_was_sent() {
        let mut s = Stopped::default();
        assert_eq!(s.to_string(), "found nothing left to stop");
        assert_eq!(s.strongest_signal(), None);
        s.terminated = 2;
        assert_eq!(s.to_string(), "stopped with SIGTERM (2 processes)");
        s.killed = 1;
        assert_eq!(
            s.to_string(),
            "stopped with SIGTERM, then SIGKILL (SIGTERM to 2 processes, SIGKILL to 1)"
        );
        assert_eq!(s.strongest_signal(), Some("SIGKILL"));
        s.unattributed = 1;
        assert!(s.to_string().ends_with("was left running"), "{s}");
        assert!(!s.complete());
    }
}
