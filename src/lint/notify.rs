//! `[notify] on_dead`: the eventType autod emits when it gives a pair up. A
//! type without a schema is refused at the worst moment (the give-up is
//! recorded, nobody is paged); one no handler takes pages nobody.

use std::path::Path;

use super::{Known, Lint};
use crate::config::{self, Config};
use crate::route;

pub fn check(lint: &mut Lint, root: &Path, config: &Config, known: &Known) {
    let Some(t) = &config.notify.on_dead else {
        return;
    };
    let path = root.join(config::FILE_NAME);
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let line = config::line_of(&text, "on_dead");
    if config.validation.require_schema && !known.has(t) {
        lint.error(
            &path,
            "notify-type",
            format!(
                "[notify] on_dead = {t:?} has no schemas/{t}.json, so every notice would be refused when a pair is given up; `autod new event {t}` writes one (the payload: handler, eventId, eventType, state, attempts, lastError, lastExitCode, stderrTail)"
            ),
        )
        .at(line, None);
    }
    if route::routes(&config.handlers, t).is_empty() {
        lint.warning(
            &path,
            "notify-route",
            format!(
                "[notify] on_dead = {t:?}: no handler's `on` matches it, so a pair given up pages nobody; `autod new handler pager --on {t}`"
            ),
        )
        .at(line, None);
    }
}
