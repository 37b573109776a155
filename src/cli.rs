//! The command line, as clap derive types and nothing else. Turning these into a
//! validated project and settings happens in `project.rs` and the command modules.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Turn side-project scripts into a small event-driven system: validate events
/// against JSON Schemas, route them by eventType to handler executables, log every
/// run, and dead-letter every failure for retry.
#[derive(Debug, Parser)]
#[command(
    name = "autod",
    version,
    propagate_version = true,
    max_term_width = 100,
    after_help = "\
Examples:
  autod dispatch fixtures/note.saved/ideas.json     run an event's handlers now
  echo '{\"eventType\":\"digest.due\",\"source\":\"cli\",\"payload\":{\"kind\":\"daily\"}}' | autod dispatch -
  autod dead list                                   what failed, and when it retries
  autod retry                                       retry the dead letters that are due

From cron, point autod at the project (cron runs in $HOME):
  */5 * * * * AUTOD_ROOT=$HOME/proj autod retry -q"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Project root (default: nearest ancestor directory holding autod.toml)
    #[arg(long, global = true, env = "AUTOD_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Print data as JSON for scripts
    #[arg(long, global = true)]
    pub json: bool,
    /// Only print warnings and errors on stderr
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// More diagnostics on stderr (-vv for trace)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Format of the human lines on stderr
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "AUTOD_LOG_FORMAT")]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate events and run their handlers now, in this process
    #[command(after_help = "\
Each FILE holds one JSON event; `-` reads one event, or one event per line, from stdin.
Exit codes: 0 all ran (already-succeeded pairs are skipped), 1 a handler failed and was
dead-lettered, 2 usage or config error, 3 an event was rejected and nothing ran for it.

Examples:
  autod dispatch fixtures/screenshot.taken/*.json
  autod dispatch --dry-run event.json          show the route, run nothing
  autod dispatch --handler note-indexer ev.json")]
    Dispatch(DispatchArgs),

    /// Validate events and hand them to the running daemon (the inbox); print their eventIds
    #[command(after_help = "\
Returns as soon as each event is durably in .autod/inbox/; `autod run` delivers it.
Exit codes: 0 queued, 1 could not be stored (disk full, read-only), 2 usage error,
3 rejected (invalid or unroutable).

Examples:
  autod send event.json
  echo '{\"eventType\":\"digest.due\",\"source\":\"cli\",\"payload\":{\"kind\":\"daily\"}}' | autod send -")]
    Send(SendArgs),

    /// The daemon: inbox, watched folders, cron schedules, automatic retries
    #[command(after_help = "\
One daemon per root. SIGINT/SIGTERM stop intake and give running handlers --grace to
finish; SIGHUP reloads autod.toml (a bad config keeps the old one).

Examples:
  autod run
  autod run --jobs 4 --grace 1m")]
    Run(RunArgs),

    /// The HTTP intake: POST /events and POST /hooks/<name> queue events in the inbox for `autod run`
    #[command(after_help = "\
Listens on [serve] listen in autod.toml (default 127.0.0.1:8080), or --listen. Beyond
loopback a bearer token is required ([serve] token_env / token_file) for /events, and
every [webhooks.<name>] must check a signature. Answers 202 with the eventIds once every
event is fsynced in .autod/inbox/; `autod run` delivers them.
Prints `autod serve: listening on http://ADDR` on stderr once it accepts connections.
SIGINT/SIGTERM stop accepting and let requests in flight finish (--grace). SIGHUP reads
the tokens, [webhooks.*] and their secrets again, and moves to a changed [serve] listen.

Examples:
  autod serve
  autod serve --listen 127.0.0.1:0          any free port; read it from the stderr line
  curl -H 'Content-Type: application/json' -d @event.json http://127.0.0.1:8080/events")]
    Serve(ServeArgs),

    /// Retry dead-lettered (event, handler) pairs now
    #[command(after_help = "\
By default only the waiting records whose next attempt is due are retried.
With [queue] backend = \"nats\", a record of the dead-letter stream (any host's failure)
is queued for the workers instead of run here; `autod dead list` shows how it went.
Examples:
  autod retry                      the due ones
  autod retry --all                every record, due or not, exhausted and permanent included
  autod retry 01JD0M3V --handler note-indexer
  autod retry --handler deploy --since 2h --all   bulk: what one handler failed lately")]
    Retry(RetryArgs),

    /// Deliver archived events again, with their own eventIds
    #[command(after_help = "\
Events come from .autod/archive/ (see `autod archive`), oldest first, and are validated
again against today's schemas and routes: one that no longer passes is reported, not run.
A pair that already succeeded is skipped unless --force. With a daemon running, events
go through its inbox (say --direct to run them here); --force, --handler and --failed
need --direct then, since the daemon delivers whole events.
Exit codes: 0 all ran or were skipped, 1 a handler failed, 2 usage error, 3 an archived
event no longer validates.

Examples:
  autod replay --since 7d --handler new-indexer      run a new handler over last week
  autod replay --since 2026-11-30T00:00:00Z --until 2026-11-30T12:00:00Z --type 'photo.*'
  autod replay --since 1d --failed                   rerun the pairs that did not end ok
  autod replay --since 1h --dry-run --json           what would run, recording nothing")]
    Replay(ReplayArgs),

    /// The archive of accepted events: apply the retention, compact finished days
    #[command(
        subcommand,
        after_help = "\
Each accepted event is kept under .autod/archive/ by the UTC day of its ts; a finished
day is compacted into one YYYY-MM-DD.jsonl. [archive] retention (default 30d) says how
long days are kept; `autod run` prunes at start and daily.

Examples:
  autod archive prune --dry-run     what would be removed and compacted
  autod archive prune --json"
    )]
    Archive(ArchiveCommand),

    /// Inspect and discard dead-letter records
    #[command(
        subcommand,
        after_help = "\
One record per failed (event, handler) pair, in .autod/dead/<handler>/<eventId>.json;
with [queue] backend = \"nats\" also every host's, in the dead-letter stream <stream>_DEAD.

Examples:
  autod dead list                             every record: state, attempts, next attempt
  autod dead list --handler note-indexer --json
  autod dead show 01JD0M3V                    the event, the last error, stderr
  autod dead show 01JD0M3V --handler deploy   when the event failed in several handlers
  autod dead drop 01JD0M3V --handler deploy   give up on it (the event stays archived)"
    )]
    Dead(DeadCommand),

    /// Inspect inbox files the daemon rejected, and queue them again after a fix
    #[command(
        subcommand,
        after_help = "\
The daemon moves an inbox file whose own content is invalid to .autod/rejected/, beside
NAME.error.json saying why. (An event the *project* cannot take, because its schema is
broken or no handler routes its type, is never rejected: it is held in processing/ and
runs once the project is fixed; `autod status` lists it.)

Examples:
  autod rejected list
  autod rejected show 01JD0M3V.json
  autod rejected requeue 01JD0M3V.json        after fixing the file or its schema
  autod rejected requeue --all"
    )]
    Rejected(RejectedCommand),

    /// Query the run log (.autod/log/autod.log)
    #[command(after_help = "\
Examples:
  autod log --since 1h --result failed
  autod log --event 01JD0M3V --output   with what each run printed
  autod log -n 20                   the last 20 lines
  autod log -f                      the last 10 lines, then new ones as they come
  autod log --host worker-b         with [queue] backend = \"nats\": one host's lines

With [queue] backend = \"nats\" every line has a `host` (the machine's name, or AUTOD_HOST),
shown after the time. Each host writes its own run log: to see every host's runs, run
`autod log` on each, or merge their files (lines start with their UTC time):
  LC_ALL=C sort -m a/autod.log b/autod.log | jq -c 'select(.result != \"ok\")'

Each run's stdout and stderr (the last 64 KiB of each) are kept in
.autod/out/EVENTID/HANDLER/ as .stdout.N and .stderr.N for attempt N.")]
    Log(LogArgs),

    /// Show an event's chain as a tree: from its root cause down, every event, run and follow-up
    #[command(after_help = "\
Any event of a chain will do: its root cause is found from the run log's correlationId.
Each event shows its type, id, source and when it was first seen; each run its result,
attempt, duration, exit code and, for a failure, the error (the last line of stderr);
under a run, the follow-ups it emitted.

Examples:
  autod trace root-1
  autod trace 84438a67-2a26-5737-9cf9-722be59fe33c      from a leaf, the whole chain
  autod trace root-1 --json | jq '.roots[0].runs'
  autod trace root-1 --host worker-b         only the runs of one host

With [queue] backend = \"nats\" each run shows the host that ran it (`on NAME`); each host
reads its own run log, so a chain whose pairs ran on several hosts is traced on each.")]
    Trace(TraceArgs),

    /// The NATS JetStream queue of [queue] backend = "nats": create it, or see how it is doing
    #[command(
        subcommand,
        after_help = "\
Examples:
  autod queue init               create or update the stream, consumers and buckets (idempotent)
  autod queue status             stream depth, lag and dead letters per handler
  autod queue status --json | jq '.handlers[] | {handler, lag}'"
    )]
    Queue(QueueCommand),

    /// Inbox depth, in-flight runs, dead letters, last failures, daemon pid
    #[command(after_help = "\
Examples:
  autod status
  autod status --json | jq .dead.waiting")]
    Status,

    /// List the schedules with their next fire times, or fire one now
    #[command(after_help = "\
Times are shown in each schedule's zone and in UTC. Clock changes follow cronie: a fixed
time in a skipped hour runs right after the jump, a repeated hour runs a fixed time once and
wildcard jobs (minute or hour field starting with *) by the real clock.

Examples:
  autod schedules                          the next 5 fires of every schedule
  autod schedules -n 20 --json             the next 20, for scripts
  autod schedules --after 2026-10-24T22:00:00Z      what happens around a clock change
  autod schedules fire daily-digest        queue one fire now, as the daemon would")]
    Schedules(SchedulesArgs),

    /// Check schemas, fixtures, autod.toml and HANDLERS.md (the CI job)
    #[command(after_help = "\
Exit codes: 0 clean, 1 errors found (or warnings, with --strict), 2 usage error.

Examples:
  autod lint
  autod lint --strict --format github       in a GitHub Actions workflow
  autod lint --against origin/main          also report breaking schema changes")]
    Lint(LintArgs),

    /// Generated documentation
    #[command(
        subcommand,
        after_help = "\
Examples:
  autod handlers doc            write the table into HANDLERS.md (between its marker lines)
  autod handlers doc --check    in CI: exit 1 if HANDLERS.md is out of date"
    )]
    Handlers(HandlersCommand),

    /// Create autod.toml and the project folders in the current (or --root) directory
    #[command(after_help = "\
Examples:
  autod init
  autod --root ~/side-project init")]
    Init,

    /// Scaffold a handler or an event type
    #[command(
        subcommand,
        after_help = "\
Examples:
  autod new event photo.added            schemas/photo.added.json and two fixtures
  autod new handler thumbnailer --on photo.added
  autod new handler archiver --on 'photo.*' --on 'video.*'"
    )]
    New(NewCommand),

    /// Print a shell completion script
    #[command(
        after_help = "Example: autod completions bash > ~/.local/share/bash-completion/completions/autod\n\nTo complete --handler and eventTypes from the project at hand, let the shell ask autod instead:\n  echo 'source <(AUTOD_COMPLETE=bash autod)' >> ~/.bashrc      # zsh: AUTOD_COMPLETE=zsh, in ~/.zshrc\n  echo 'AUTOD_COMPLETE=fish autod | source' >> ~/.config/fish/completions/autod.fish"
    )]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct DispatchArgs {
    /// Event files; `-` for stdin
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Run only this handler
    #[arg(long, value_name = "NAME", add = handler_names())]
    pub handler: Option<String>,
    /// Validate and print the route; run nothing and record nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Rerun pairs that already succeeded for this eventId
    #[arg(long)]
    pub force: bool,
    /// Handler runs at once [default: the number of CPUs]
    #[arg(long, short, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Events whose ts is at or after this: a duration back from now (7d, 2h) or an RFC 3339 time
    #[arg(long, value_name = "WHEN", required = true)]
    pub since: String,
    /// Events whose ts is at or before this (same forms as --since) [default: now]
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,
    /// Only events whose eventType matches, as a handler's `on` (`photo.*`)
    #[arg(long = "type", value_name = "PATTERN", add = event_types())]
    pub event_type: Option<String>,
    /// Run only this handler
    #[arg(long, value_name = "NAME", add = handler_names())]
    pub handler: Option<String>,
    /// Only pairs whose last result in the run log was not ok
    #[arg(long)]
    pub failed: bool,
    /// Rerun pairs that already succeeded
    #[arg(long)]
    pub force: bool,
    /// List what would run; run nothing and record nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Run here even when a daemon is running (default: through its inbox)
    #[arg(long)]
    pub direct: bool,
    /// Handler runs at once [default: the number of CPUs]
    #[arg(long, short, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
}

#[derive(Debug, Subcommand)]
pub enum ArchiveCommand {
    /// Remove days past [archive] retention and compact finished days
    #[command(after_help = "\
Examples:
  autod archive prune
  autod archive prune --dry-run --json")]
    Prune {
        /// Say what would be done; change nothing
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Event files; `-` for stdin
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Handler runs at once [default: the number of CPUs]
    #[arg(long, short, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
    /// How long running handlers may finish after SIGINT/SIGTERM before their groups are stopped
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub grace: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on, instead of [serve] listen (port 0: any free port)
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// How long requests in flight may finish after SIGINT/SIGTERM
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub grace: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct LintArgs {
    /// Output format
    #[arg(long, value_enum, default_value = "text")]
    pub format: crate::lint::Format,
    /// Treat warnings as errors
    #[arg(long)]
    pub strict: bool,
    /// Report schema changes since this git revision that break producers or consumers
    #[arg(long, value_name = "REV")]
    pub against: Option<String>,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SchedulesArgs {
    #[command(subcommand)]
    pub action: Option<SchedulesCommand>,
    /// How many fire times to show for each schedule
    #[arg(short = 'n', value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub count: u16,
    /// Show the fires after this RFC 3339 time instead of after now
    #[arg(long, value_name = "TIME")]
    pub after: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum SchedulesCommand {
    /// Queue one fire of a schedule now, the event the daemon would send
    #[command(after_help = "\
The event has the schedule's eventType, source cron:NAME and payload; its eventId is
cron:NAME:manual-<uuid>, never the id of a real fire, so the next real fire still runs.
Without a running `autod run` it waits in .autod/inbox/ until one starts.

Example:
  autod schedules fire daily-digest")]
    Fire {
        /// The schedule's name in autod.toml
        #[arg(value_name = "NAME")]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Create or update the events stream, a consumer per handler, the dead-letter stream and the done-marker bucket
    #[command(after_help = "\
Safe to run again: what exists is updated to match autod.toml, what matches is left alone,
and the consumer of a handler removed from autod.toml is deleted (its interest would keep
every matching message in the stream for ever). Run it after changing a handler's `on` or
`concurrency`.")]
    Init,
    /// Stream depth, each handler's lag (pending + unacked), redeliveries and dead letters
    Status,
}

#[derive(Debug, Subcommand)]
pub enum HandlersCommand {
    /// Write the HANDLERS.md table from autod.toml (prose around it is kept)
    Doc {
        /// Do not write; exit 1 if HANDLERS.md is out of date
        #[arg(long)]
        check: bool,
    },
}

#[derive(Debug, Args)]
pub struct TraceArgs {
    /// Any eventId of the chain (as `autod log` shows it)
    #[arg(value_name = "EVENT_ID")]
    pub event_id: String,
    /// Only the runs of this host (the `host` of run-log lines, [queue] backend = "nats")
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    /// Only these eventIds
    #[arg(value_name = "EVENT_ID")]
    pub event_ids: Vec<String>,
    /// Only this handler's records
    #[arg(long, value_name = "NAME", add = handler_names())]
    pub handler: Option<String>,
    /// Retry every matching record now, including exhausted and permanent ones
    #[arg(long)]
    pub all: bool,
    /// Only records whose last failure is newer than this (e.g. 2h, 1day) or an RFC 3339 time
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Handler runs at once [default: the number of CPUs]
    #[arg(long, short, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
}

#[derive(Debug, Subcommand)]
pub enum DeadCommand {
    /// One line per dead-letter record
    List {
        /// Only this handler's records
        #[arg(long, value_name = "NAME", add = handler_names())]
        handler: Option<String>,
    },
    /// A record in full: the event, the last error and stderr
    Show {
        /// The eventId of the failed pair (as `autod dead list` shows it)
        #[arg(value_name = "EVENT_ID")]
        event_id: String,
        /// The handler, when the event failed in more than one
        #[arg(long, value_name = "NAME", add = handler_names())]
        handler: Option<String>,
    },
    /// Discard records (the event stays in the archive)
    Drop {
        /// The eventIds whose records to discard
        #[arg(value_name = "EVENT_ID", required = true)]
        event_ids: Vec<String>,
        /// Only this handler's record of each
        #[arg(long, value_name = "NAME", add = handler_names())]
        handler: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RejectedCommand {
    /// One line per rejected file: name, when, first error
    List,
    /// A rejected file in full: its content and every error
    Show {
        /// The file's name in .autod/rejected/ (as `list` shows it)
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Validate rejected files again and put those that pass back into the inbox
    Requeue {
        #[arg(value_name = "NAME", required_unless_present = "all")]
        names: Vec<String>,
        /// Every rejected file
        #[arg(long, conflicts_with = "names")]
        all: bool,
    },
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// Only this eventId
    #[arg(long = "event", value_name = "ID")]
    pub event_id: Option<String>,
    /// Only this handler
    #[arg(long, value_name = "NAME", add = handler_names())]
    pub handler: Option<String>,
    /// Only this result: ok, failed, timeout, skipped, rejected, dead, held, interrupted
    #[arg(long, value_name = "RESULT")]
    pub result: Option<String>,
    /// Only lines of this host (their `host`, written with [queue] backend = "nats")
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// Only lines newer than this (e.g. 30m, 2h, 1day) or an RFC 3339 time
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Keep printing new lines as they are written (after the last 10, or -n)
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N matching lines
    #[arg(short = 'n', long = "lines", value_name = "N")]
    pub lines: Option<usize>,
    /// Show what each run printed on stdout and stderr under its line
    #[arg(short = 'o', long)]
    pub output: bool,
}

#[derive(Debug, Subcommand)]
pub enum NewCommand {
    /// handlers/NAME/main.sh and its [handlers.NAME] section in autod.toml
    Handler {
        name: String,
        /// eventType patterns it handles
        #[arg(long, required = true, value_name = "TYPE", add = event_types())]
        on: Vec<String>,
    },
    /// schemas/TYPE.json plus a valid and an invalid fixture
    #[command(
        after_help = "Examples:\n  autod new event note.saved\n  autod new event photo.added --watch    # for a [[watches]] event_type"
    )]
    Event {
        #[arg(value_name = "TYPE")]
        event_type: String,
        /// Write the schema of a watch's payload {path, relPath, kind, size, mtime}
        /// (for a [[watches]] table's event_type) instead of a placeholder
        #[arg(long)]
        watch: bool,
    },
}

/// Shell completion of a handler name from the project (see `completion.rs`).
fn handler_names() -> clap_complete::ArgValueCompleter {
    clap_complete::ArgValueCompleter::new(crate::completion::handlers)
}

/// Shell completion of an eventType from the project's schemas.
fn event_types() -> clap_complete::ArgValueCompleter {
    clap_complete::ArgValueCompleter::new(crate::completion::event_types)
}

/// `--jobs`, or the number of CPUs. Resolved only when used: asking the
/// system (cgroup files) costs start-up time on every command otherwise.
pub fn jobs(flag: Option<u16>) -> usize {
    flag.map_or_else(
        || std::thread::available_parallelism().map_or(2, usize::from),
        usize::from,
    )
}
