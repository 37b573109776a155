//! Which host this autod is (SPEC 10): the `host` of its run-log lines with
//! `[queue] backend = "nats"`, and the name of its NATS connection, so that
//! the lines of many hosts can be merged and told apart, and the server's
//! connection list says who is who.
//!
//! The machine's node name (`uname -n`), unless `AUTOD_HOST` says otherwise:
//! two roots on one machine (two workers, or a test's "two hosts") share a
//! node name. An environment variable, not a key of autod.toml, because that
//! file is the same on every host.

use crate::config::{Config, QueueConfig};

/// Overrides the node name.
pub const ENV: &str = "AUTOD_HOST";
const MAX_LEN: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(
        "{ENV}={0:?}: not a host name; use 1-64 characters of A-Z a-z 0-9 . _ - (or unset it to use this machine's name, {1:?})"
    )]
    Invalid(String, String),
}

/// This host's name: `AUTOD_HOST` when set (and valid), else the node name.
pub fn name() -> Result<String, HostError> {
    match std::env::var_os(ENV) {
        Some(v) => {
            let v = v.to_string_lossy().into_owned();
            if valid(&v) {
                Ok(v)
            } else {
                Err(HostError::Invalid(v, node_name()))
            }
        }
        None => Ok(node_name()),
    }
}

/// The `host` of this project's run-log lines: only with the NATS backend,
/// where lines of many hosts meet. The folder backend's lines stay as they
/// were: one machine, nothing to tell apart.
pub fn for_log(config: &Config) -> Result<Option<String>, HostError> {
    match config.queue {
        QueueConfig::Folder => Ok(None),
        QueueConfig::Nats(_) => name().map(Some),
    }
}

fn node_name() -> String {
    let node = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    // A node name is whatever the admin set; an empty one still has to
    // name something in a merged log.
    if node.is_empty() {
        "localhost".to_owned()
    } else {
        node
    }
}

fn valid(name: &str) -> bool {
    (1..=MAX_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::valid;

    #[test]
    fn host_names_are_short_and_plain() {
        for ok in ["a", "worker-1", "home.lan", "A_b.9", &"x".repeat(64)] {
            assert!(valid(ok), "{ok}");
        }
        for bad in ["", "two words", "a/b", "é", "a\nb", &"x".repeat(65)] {
            assert!(!valid(bad), "{bad:?}");
        }
    }
}
