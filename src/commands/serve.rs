//! `autod serve`: the HTTP intake on its own (SPEC 11); `autod run` delivers
//! what it queues (from this machine's inbox, or with `[queue] backend =
//! "nats"` on any host, from the stream). SIGHUP reloads autod.toml into it as `autod run` does
//! ([`crate::serve::Reload`]); a `--listen` given stays.

use anyhow::Result;
use tokio::signal::unix::{SignalKind, signal};

use crate::cli::ServeArgs;
use crate::config::{Config, ServeConfig};
use crate::exit::Code;
use crate::project::Project;
use crate::queue::Producer;
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
        let mut hangup = signal(SignalKind::hangup())?;
        // With NATS: connected before the readiness line when the server
        // answers; when it does not, serve starts anyway, answers 503 (and
        // `/readyz` says why) and keeps trying.
        let producer = Producer::open(&project.state, &project.config.queue, "events cannot be published").await;
        let local = producer.is_local();
        let server = Server::bind(
            &project.root,
            &project.config,
            &project.state,
            producer,
            addr,
        )
        .await?;
        // The one line a supervisor (or a test) waits for: the real address,
        // so `--listen 127.0.0.1:0` tells which port it got.
        eprintln!("autod serve: listening on http://{}", server.local_addr()?);
        if local && project.state.daemon_running().is_none() {
            tracing::warn!(
                "no `autod run` is running for {}; accepted events wait in .autod/inbox/ until one starts",
                project.root.display()
            );
        }
        let reload = server.reload();
        let root = project.root.clone();
        let pinned = args.listen.clone();
        let shutdown = async move {
            let name = loop {
                tokio::select! {
                    _ = terminate.recv() => break "SIGTERM",
                    _ = interrupt.recv() => break "SIGINT",
                    _ = hangup.recv() => match Config::load(&root) {
                        Ok(mut config) => {
                            // Standalone, [serve] is optional; `--listen` wins over it.
                            let cfg = config.serve.get_or_insert_with(ServeConfig::default);
                            if let Some(listen) = &pinned {
                                cfg.listen.clone_from(listen);
                            }
                            reload.apply(&root, &config).await;
                            tracing::info!("SIGHUP: reloaded autod.toml");
                        }
                        Err(e) => tracing::error!(
                            "SIGHUP: kept the old config; the new one is invalid: {e:#}"
                        ),
                    },
                }
            };
            tracing::info!("{name}: no new connections; finishing requests in flight");
        };
        server.run(shutdown, args.grace).await;
        Ok(Code::Success)
    })
}
