//! One module per command: each turns parsed arguments into work on the core
//! modules and returns the exit code (SPEC §5). Errors returned from here are
//! fatal for the command and exit 2.

mod archive;
mod dead;
mod dispatch;
mod lint;
mod logs;
mod queue;
mod rejected;
mod replay;
mod retry;
mod run;
mod scaffold;
mod schedules;
mod send;
mod serve;
mod status;
mod trace;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::exit::Code;
use crate::project::Project;

pub fn run(cli: Cli) -> Result<Code> {
    let g = &cli.global;
    match &cli.command {
        Command::Dispatch(args) => dispatch::run(&open(g)?, g, args),
        Command::Send(args) => send::run(&open(g)?, g, args),
        Command::Run(args) => run::run(open(g)?, args),
        Command::Serve(args) => serve::run(&open(g)?, args),
        Command::Retry(args) => retry::run(&open(g)?, g, args),
        Command::Replay(args) => replay::run(&open(g)?, g, args),
        Command::Archive(cmd) => archive::run(&open(g)?, g, cmd),
        Command::Dead(cmd) => dead::run(&open(g)?, g, cmd),
        Command::Rejected(cmd) => rejected::run(&open(g)?, g, cmd),
        Command::Log(args) => logs::run(&open(g)?, g, args),
        Command::Queue(cmd) => queue::run(&open(g)?, g, cmd),
        Command::Status => status::run(&open(g)?, g),
        Command::Trace(args) => trace::run(&open(g)?, g, args),
        Command::Schedules(args) => schedules::run(&open(g)?, g, args),
        Command::Lint(args) => lint::run(g, args),
        Command::Handlers(cmd) => lint::handlers(&open(g)?, cmd),
        Command::Init => scaffold::init(g),
        Command::New(cmd) => scaffold::new(&open(g)?, cmd),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "autod", &mut std::io::stdout());
            Ok(Code::Success)
        }
    }
}

/// `--handler NAME` must name a handler of autod.toml (a usage error, exit 2,
/// naming the known ones), whichever command takes it.
fn known_handler(project: &Project, name: &str) -> Result<()> {
    if project.config.handler(name).is_some() {
        return Ok(());
    }
    let known: Vec<&str> = project
        .config
        .handlers
        .iter()
        .map(|h| h.name.as_str())
        .collect();
    anyhow::bail!(
        "--handler {name}: no such handler in autod.toml (known: {})",
        if known.is_empty() {
            "none".to_owned()
        } else {
            known.join(", ")
        }
    )
}

fn open(g: &crate::cli::GlobalArgs) -> Result<Project> {
    Ok(Project::open(g.root.as_deref())?)
}

/// A tokio runtime for commands that run handlers. One thread is enough: the
/// work is waiting on child processes, and parallelism comes from them.
fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}
