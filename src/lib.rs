//! autod: a single-binary event dispatcher for side-project automations.
//!
//! # Theory of operation
//!
//! Every event takes the same path, whatever brought it in:
//!
//! ```text
//! intake ──▶ validate ──▶ route ──▶ run ──▶ record
//! commands/   schema.rs    route.rs  runner/   log.rs, state/ (done marker, dead letter)
//! (file, stdin)  event.rs            └──── engine.rs drives one (event, handler) pair ────┘
//! ```
//!
//! - **Intake** turns bytes into candidate events and knows where they came from;
//!   nothing after it does. `dispatch` reads files and stdin; the daemon, webhooks
//!   and the queue hand events to the same [`engine::Engine`].
//! - **Validate** (`schema.rs`, `event.rs`): size limit, JSON, safe ids, envelope
//!   schema, payload schema. A rejected event runs nothing (exit 3).
//! - **Route** (`route.rs`): eventType patterns → handlers, fan-out.
//! - **Run** (`runner/`): one process per pair, own process group and run tag
//!   (`AUTOD_RUN_ID`), a timeout that stops everything the run started, output
//!   tails; the runner knows nothing of events.
//! - **Record** (`engine.rs` using `state/` and `log.rs`): success writes a done
//!   marker so the pair never runs again for that eventId; failure writes a dead
//!   letter that `autod retry` (and the daemon) pick up with backoff.
//! - **HTTP** (`serve.rs`, `autod serve` or `[serve]` in `autod run`): a
//!   request's events go through the same [`intake::Intake`] as `autod send`
//!   and are answered `202` only once fsynced in the inbox; the daemon delivers
//!   them from there, so the server runs nothing itself. A webhook
//!   (`POST /hooks/<name>`, `hooks.rs`) is checked against its signature
//!   (`signature.rs`) over the raw body, made into an event by its templates
//!   (`template.rs`), and admitted the same way. `serve_limits.rs`
//!   keeps clients from holding it: the accept loop and its connection cap,
//!   the head limits, the bounded wait for a request slot.
//! - **Metrics** (`metrics.rs`, `GET /metrics`): counted beside the decisions
//!   (the run-log write, the handler process, the doors), never deciding
//!   anything; on-disk gauges are counted from `state/` when scraped.
//! - **Queue** (`queue/`): where an accepted event is handed over durably,
//!   per `[queue]`: the inbox folder (`queue/folder.rs`, the default) or a
//!   NATS JetStream stream (`queue/nats.rs`, SPEC 10) that `autod run` on
//!   many hosts pulls from, one durable consumer per handler
//!   (`daemon/queue.rs`), into the same engine.
//! - **Archive** (`state/archive.rs`): every accepted event is also kept, by
//!   the UTC day of its `ts`, so that `autod replay` (`commands/replay.rs`) can
//!   send it down the same path again, revalidated, under its own eventId.
//!
//! # Guarantees
//!
//! - Nothing accepted is lost: an accepted event is durable before any handler
//!   runs (the caller's file for `dispatch`, the inbox/processing file for the
//!   daemon), and a pair's outcome is on disk (done marker or dead letter) before
//!   the command reports it or the daemon lets the event go.
//! - A pair that succeeded never runs again for the same eventId, even across
//!   processes: pairs are serialized by an flock and checked under it. Only
//!   autod holds that lock, never its handler; the lock file names the run, and
//!   the next owner stops what a dead autod's run left before running it again.
//! - Nothing in an event chooses what runs or where a file goes: handlers are
//!   named only by the config or `handlers/`, ids are restricted to a file-name
//!   safe charset, and no event value is ever put through a shell.
//! - `.autod/` is private (0700 folders, 0600 files).

pub mod chain;
pub mod cli;
mod commands;
mod completion;
pub mod config;
pub mod cron;
mod daemon;
mod diagnostics;
pub mod engine;
pub mod event;
pub mod exit;
pub mod hooks;
pub mod host;
pub mod intake;
pub mod limits;
pub mod lint;
pub mod log;
mod media;
pub mod metrics;
mod output;
pub mod project;
pub mod queue;
pub mod retry;
pub mod route;
pub mod runner;
pub mod schema;
pub mod serve;
pub mod serve_limits;
pub mod signature;
pub mod state;
pub mod template;
pub mod time;
pub mod zone;

use clap::Parser;

use crate::cli::Cli;
use crate::exit::Code;

/// The whole program: parse arguments, run the command, turn errors into an exit code.
pub fn main() -> std::process::ExitCode {
    // Answers the shell and exits when it is asking (`AUTOD_COMPLETE` is
    // set); otherwise returns at once, without building the command tree. Not
    // clap's default `COMPLETE`: a variable that generic, set for something
    // else in a cron or CI environment, would turn every run into a
    // completion and run nothing.
    clap_complete::CompleteEnv::with_factory(<Cli as clap::CommandFactory>::command)
        .var("AUTOD_COMPLETE")
        .complete();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    Code::Success
                }
                _ => Code::Usage,
            }
            .into();
        }
    };
    diagnostics::init(&cli.global);
    match commands::run(cli) {
        Ok(code) => code.into(),
        Err(e) => {
            eprintln!("error: {e:#}");
            Code::Usage.into()
        }
    }
}
