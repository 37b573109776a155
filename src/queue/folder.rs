//! The folder backend: `.autod/inbox/` on this machine, where `autod run`
//! claims events by rename. All of it lives in `state/inbox.rs` (only
//! `state/` knows the `.autod/` layout); this is the queue's face of it.

use std::path::PathBuf;

use crate::event::Event;
use crate::state::{StateDir, StateError};

/// Durable once it returns: staged, fsync'd, linked into the inbox. An event
/// whose eventId is already there or in processing/ is success, unwritten.
pub fn put(state: &StateDir, event: &Event) -> Result<PathBuf, StateError> {
    state.inbox_put(event)
}
