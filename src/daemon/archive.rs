//! The archive's upkeep while the daemon runs: retention and compaction
//! (`StateDir::archive_maintain`) at start, then daily, a little after each
//! UTC midnight, when the day before has just finished.

use std::sync::Arc;
use std::time::Duration;

use super::Daemon;
use crate::time;

/// After midnight, so that events accepted in the last moments of the day
/// are on disk before their day is compacted.
const AFTER_MIDNIGHT: Duration = Duration::from_secs(5 * 60);

pub async fn run(daemon: Arc<Daemon>) {
    let mut stopping = daemon.stopping();
    loop {
        let config = daemon.generation().config.clone();
        let state = daemon.state.clone();
        let pass = tokio::task::spawn_blocking(move || {
            state.archive_maintain(
                time::now(),
                config.archive.retention.0,
                config.longest_run(),
                false,
            )
        })
        .await;
        match pass {
            Ok(Ok(done)) => {
                for line in done.describe(false) {
                    tracing::info!("archive: {line}");
                }
            }
            // Retried at the next pass: the archive is a copy, and a day left
            // uncompacted is still read by replay.
            Ok(Err(e)) => tracing::warn!(
                "archive: {e}; retention and compaction are tried again tomorrow, or run `autod archive prune`"
            ),
            Err(e) => tracing::error!("archive: the pruning task failed: {e}"),
        }
        let wait = until_next_pass(time::now());
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stopping.wait_for(|s| *s) => return,
        }
    }
}

/// From `now` to a few minutes after the next UTC midnight.
fn until_next_pass(now: time::Timestamp) -> Duration {
    let next = time::end_of_day(time::utc_day(now))
        .map_or(Duration::from_secs(24 * 3600), |midnight| {
            time::since(now, midnight).unwrap_or_default()
        });
    next + AFTER_MIDNIGHT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_pass_is_just_after_midnight() {
        let now = time::parse("2026-12-01T23:00:00Z").unwrap();
        assert_eq!(until_next_pass(now), Duration::from_secs(3600 + 300));
        let now = time::parse("2026-12-01T00:00:00Z").unwrap();
        assert_eq!(until_next_pass(now), Duration::from_secs(24 * 3600 + 300));
    }
}
