//! The human stream on stderr: `tracing` events formatted like cargo's
//! (`error: …`, `warning: …`, plain lines for progress), or as JSON objects
//! with `--log-format json`. The run log file is a separate, fixed-format
//! product output (`log.rs`).

use std::fmt;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::cli::{GlobalArgs, LogFormat};

static JSON: AtomicBool = AtomicBool::new(false);

/// Whether stderr carries JSON (so run lines are written there verbatim).
pub fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

pub fn init(g: &GlobalArgs) {
    let level = match (g.quiet, g.verbose) {
        (true, _) => "warn,async_nats=off",
        // The NATS client's own lines are its diagnostics, not the user's:
        // what goes wrong reaches autod as an error or a connection event,
        // which autod reports with what to do about it (`-v` shows them).
        (false, 0) => "info,async_nats=off",
        (false, 1) => "debug,async_nats=info",
        (false, _) => "trace",
    };
    // AUTOD_LOG takes a full tracing filter, for debugging autod itself.
    let filter = EnvFilter::try_from_env("AUTOD_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match g.log_format {
        LogFormat::Json => {
            JSON.store(true, Ordering::Relaxed);
            builder.json().flatten_event(true).with_target(false).init();
        }
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .event_format(Plain)
            .init(),
    }
}

/// `error: message` / `warning: message` / `message`, nothing else.
struct Plain;

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let (prefix, color) = match *event.metadata().level() {
            Level::ERROR => ("error: ", "\x1b[1;31m"),
            Level::WARN => ("warning: ", "\x1b[1;33m"),
            Level::INFO => ("", ""),
            Level::DEBUG => ("debug: ", "\x1b[2m"),
            Level::TRACE => ("trace: ", "\x1b[2m"),
        };
        if writer.has_ansi_escapes() && !color.is_empty() {
            write!(writer, "{color}{prefix}\x1b[0m")?;
        } else {
            write!(writer, "{prefix}")?;
        }
        ctx.format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
