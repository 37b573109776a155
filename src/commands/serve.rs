//! `autod serve`: the HTTP intake on its own (SPEC 11); `autod run` delivers
//! what it queues.

use anyhow::Result;
use tokio::signal::unix::{SignalKind, signal};

use crate::cli::ServeArgs;
use crate::exit::Code;
use crate::project::Project;
use crate::serve::Server;

pub fn run(project: &Project, args: &ServeArgs) -> Result<Code> {
    let cfg = project.config.serve.clone().unwrap_or_default();
    let listen = args.listen.as_deref().unwrap_or(&cfg.listen);
    let addr = cfg.check_listen(listen).map_err(anyhow::Error::msg)?;
    // Several threads: a slow fsync of one request must not hold the others.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let server = Server::bind(&project.root, &project.config, &project.state, addr).await?;
        // The one line a supervisor (or a test) waits for: the real address,
        // so `--listen 127.0.0.1:0` tells which port it got.
        eprintln!("autod serve: listening on http://{}", server.local_addr()?);
        if project.state.daemon_running().is_none() {
            tracing::warn!(
                "no `autod run` is running for {}; accepted events wait in .autod/inbox/ until one starts",
                project.root.display()
            );
        }
        let shutdown = async move {
            let name = tokio::select! {
                _ = terminate.recv() => "SIGTERM",
                _ = interrupt.recv() => "SIGINT",
            };
            tracing::info!("{name}: no new connections; finishing requests in flight");
        };
        server.run(shutdown, args.grace).await;
        Ok(Code::Success)
    })
}
