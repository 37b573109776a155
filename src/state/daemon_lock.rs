//! One daemon per root: `autod run` holds an flock on `.autod/daemon.lock` for its
//! whole life, and keeps its pid and start time in `.autod/daemon.json`. The lock
//! dies with the process, so a crash never leaves a stale lock behind.

use std::fs::File;

use serde::{Deserialize, Serialize};

use super::{Context, Result, StateDir, atomic};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonInfo {
    pub pid: u32,
    pub started_at: String,
    pub version: String,
}

/// Held by the running daemon; released on drop (or when the process dies).
#[derive(Debug)]
pub struct DaemonLock {
    _file: File,
}

pub enum Acquire {
    Acquired(DaemonLock),
    /// Another process holds the root; its info, if it could be read.
    Held(Option<DaemonInfo>),
}

impl StateDir {
    pub fn daemon_lock(&self) -> Result<Acquire> {
        let dir = self.ensure("")?;
        let path = dir.join("daemon.lock");
        let file = atomic::lock_file(&path).at(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(Acquire::Held(self.daemon_info())),
            Err(std::fs::TryLockError::Error(e)) => return Err(e).at(&path),
        }
        // A previous daemon's announcement is stale from this moment on.
        let _ = std::fs::remove_file(dir.join("daemon.json"));
        Ok(Acquire::Acquired(DaemonLock { _file: file }))
    }

    /// Announces the daemon (pid, start time) in `.autod/daemon.json`. Called once
    /// it is ready, signal handlers included: whoever waits for this file may
    /// signal it at once.
    pub fn daemon_announce(&self, _lock: &DaemonLock) -> Result<()> {
        let info = DaemonInfo {
            pid: std::process::id(),
            started_at: crate::time::now_rfc3339(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        let info_path = self.path().join("daemon.json");
        atomic::write(&info_path, &serde_json::to_vec(&info).expect("serializes")).at(&info_path)
    }

    /// The running daemon's info, or `None` when no daemon holds the root.
    pub fn daemon_running(&self) -> Option<DaemonInfo> {
        let file = File::open(self.path().join("daemon.lock")).ok()?;
        match file.try_lock_shared() {
            // We could lock it: nobody holds it.
            Ok(()) => None,
            Err(_) => self.daemon_info(),
        }
    }

    fn daemon_info(&self) -> Option<DaemonInfo> {
        let bytes = std::fs::read(self.path().join("daemon.json")).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}
