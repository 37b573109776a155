//! `[queue]` beyond what loading the config refuses (a plain token, a URL
//! with credentials in it: `config` findings with their line). Here, what
//! depends on the machine: `queue-credentials` (warning) for a `creds_file` or
//! `nkey_file` that cannot be read, or a `token_env` that is not set. A
//! warning, as for `[serve]`'s tokens: CI seldom holds production secrets,
//! and `--strict` makes it fail where it should.

use std::path::Path;

use super::Lint;
use crate::config::{self, Config, NatsAuth, QueueConfig};

pub fn check(lint: &mut Lint, root: &Path, config: &Config) {
    let QueueConfig::Nats(nats) = &config.queue else {
        return;
    };
    let path = root.join(config::FILE_NAME);
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let line = config::line_of(&text, "[queue]");
    let why = match &nats.auth {
        NatsAuth::None => None,
        NatsAuth::CredsFile(file) => {
            readable(file).map(|e| format!("queue.creds_file: cannot read {}: {e}", file.display()))
        }
        NatsAuth::NkeyFile(file) => {
            readable(file).map(|e| format!("queue.nkey_file: cannot read {}: {e}", file.display()))
        }
        NatsAuth::TokenEnv(var) => std::env::var(var)
            .map_or(true, |t| t.is_empty())
            .then(|| format!("queue.token_env: environment variable {var} is not set (or empty)")),
    };
    if let Some(why) = why {
        lint.warning(
            &path,
            "queue-credentials",
            format!("{why}: autod could not connect to the queue from here"),
        )
        .at(line, None);
    }
}

fn readable(file: &Path) -> Option<std::io::Error> {
    std::fs::File::open(file).err()
}
