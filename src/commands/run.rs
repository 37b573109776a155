//! `autod run`: start the daemon.

use anyhow::Result;

use crate::cli::RunArgs;
use crate::daemon;
use crate::exit::Code;
use crate::project::Project;

pub fn run(project: Project, args: &RunArgs) -> Result<Code> {
    daemon::run(
        project,
        daemon::Options {
            jobs: crate::cli::jobs(args.jobs),
            grace: args.grace,
        },
    )
}
