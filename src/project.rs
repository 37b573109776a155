//! Finding the project root and opening the project in it.
//!
//! The root is found as cargo finds Cargo.toml: `--root DIR`, else `AUTOD_ROOT`
//! (clap folds both into one flag), else the nearest ancestor of the working
//! directory holding `autod.toml`. Everything relative in the config is relative
//! to the root, never to the working directory: cron runs in `$HOME`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::chain::{Place, Sink};
use crate::config::{self, Config, ConfigError};
use crate::engine::Engine;
use crate::intake::Intake;
use crate::log::RunLog;
use crate::state::StateDir;

#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("--root {0}: no such directory")]
    NoSuchRoot(PathBuf),
    #[error(
        "no autod.toml in {0} or any parent directory; run `autod init` to create a project here, or pass --root DIR (or set AUTOD_ROOT)"
    )]
    NotFound(PathBuf),
    #[error("cannot determine the current directory: {0}")]
    Cwd(std::io::Error),
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The state folder cannot be used safely (a planted symlink, say). Held
    /// as text: the error's message already says what its source would.
    #[error("{0}")]
    State(String),
    #[error(transparent)]
    Host(#[from] crate::host::HostError),
}

/// An opened project: where it is and its validated config.
#[derive(Debug)]
pub struct Project {
    pub root: PathBuf,
    pub config: Config,
    pub state: StateDir,
    /// The `host` of its run-log lines (NATS backend only).
    pub host: Option<String>,
}

impl Project {
    pub fn open(root_flag: Option<&Path>) -> Result<Project, ProjectError> {
        let root = find_root(root_flag)?;
        let config = Config::load(&root)?;
        Ok(Project {
            state: StateDir::open(&root, config.state.allow_symlink)
                .map_err(|e| ProjectError::State(e.to_string()))?,
            host: crate::host::for_log(&config)?,
            root,
            config,
        })
    }

    pub fn run_log(&self) -> RunLog {
        RunLog::new(self.state.log_dir(), self.config.log.clone()).with_host(self.host.clone())
    }

    /// The engine that runs this project's pairs, `jobs` at a time.
    /// The engine of `dispatch` and `retry`: its runs' follow-ups are
    /// validated by `intake` and put in `processing/`, for the command to
    /// deliver itself ([`Engine::deliver_follow_ups`]).
    pub fn engine(&self, jobs: usize, intake: Arc<Mutex<Intake>>) -> Engine {
        let sink = Sink::new(intake, self.state.clone(), Place::Processing);
        Engine::new(
            self.root.clone(),
            &self.config,
            self.state.clone(),
            self.run_log(),
            jobs,
        )
        .with_chain(Arc::new(sink))
    }
}

pub fn find_root(root_flag: Option<&Path>) -> Result<PathBuf, ProjectError> {
    if let Some(dir) = root_flag {
        return dir
            .canonicalize()
            .ok()
            .filter(|p| p.is_dir())
            .ok_or_else(|| ProjectError::NoSuchRoot(dir.to_owned()));
    }
    let cwd = std::env::current_dir().map_err(ProjectError::Cwd)?;
    cwd.ancestors()
        .find(|dir| dir.join(config::FILE_NAME).is_file())
        .map(Path::to_path_buf)
        .ok_or(ProjectError::NotFound(cwd))
}
