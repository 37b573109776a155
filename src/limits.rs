//! How many runs may go at once: `--jobs` in all, and each handler's
//! `concurrency`, shared by every engine of one process.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::config::Config;

/// How many runs may go at once: `--jobs` in all, and each handler's
/// `concurrency`. One value outlives config reloads, so that a limit holds
/// across them: a reload that built fresh counters let a `concurrency = 1`
/// handler run twice at once (one run per generation).
pub struct Limits {
    jobs: Arc<Semaphore>,
    per_handler: std::sync::Mutex<HashMap<String, HandlerLimit>>,
}

struct HandlerLimit {
    /// The permits the semaphore is meant to hold (its configured limit).
    size: usize,
    semaphore: Arc<Semaphore>,
}

/// The slots one run holds; released on drop.
pub struct Slots {
    _handler: Option<tokio::sync::OwnedSemaphorePermit>,
    _job: tokio::sync::OwnedSemaphorePermit,
}

impl Limits {
    pub fn new(jobs: usize, config: &Config) -> Limits {
        let limits = Limits {
            jobs: Arc::new(Semaphore::new(jobs.max(1))),
            per_handler: std::sync::Mutex::default(),
        };
        limits.reconfigure(config);
        limits
    }

    /// Fits the per-handler limits to `config`. A limit that grows gets its
    /// extra permits at once; one that shrinks takes permits out as running
    /// pairs give them back, so no new run starts until the handler is under
    /// its new limit. A handler that lost its limit keeps the old semaphore
    /// until its runs end and then goes unlimited.
    pub fn reconfigure(&self, config: &Config) {
        let mut map = self.per_handler.lock().expect("limits lock");
        map.retain(|name, _| {
            config
                .handler(name)
                .is_some_and(|h| h.concurrency.is_some())
        });
        for h in &config.handlers {
            let Some(size) = h.concurrency else { continue };
            match map.get_mut(&h.name) {
                None => {
                    map.insert(
                        h.name.clone(),
                        HandlerLimit {
                            size,
                            semaphore: Arc::new(Semaphore::new(size)),
                        },
                    );
                }
                Some(l) if size > l.size => {
                    l.semaphore.add_permits(size - l.size);
                    l.size = size;
                }
                Some(l) if size < l.size => {
                    let (semaphore, surplus) = (Arc::clone(&l.semaphore), l.size - size);
                    l.size = size;
                    // Permits held by running pairs come back one by one:
                    // take them out of circulation as they do.
                    tokio::spawn(async move {
                        if let Ok(p) = semaphore.acquire_many_owned(surplus as u32).await {
                            p.forget();
                        }
                    });
                }
                Some(_) => {}
            }
        }
    }

    pub async fn acquire(&self, handler: &str) -> Slots {
        let semaphore = self
            .per_handler
            .lock()
            .expect("limits lock")
            .get(handler)
            .map(|l| Arc::clone(&l.semaphore));
        let handler = match semaphore {
            Some(s) => Some(s.acquire_owned().await.expect("semaphore never closes")),
            None => None,
        };
        let job = Arc::clone(&self.jobs)
            .acquire_owned()
            .await
            .expect("semaphore never closes");
        Slots {
            _handler: handler,
            _job: job,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(concurrency: usize) -> Config {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let text = format!("[handlers.h]\non = [\"x\"]\nconcurrency = {concurrency}\n");
        Config::parse(&root, &root.join("autod.toml"), &text).unwrap()
    }

    fn available(limits: &Limits) -> usize {
        limits.per_handler.lock().unwrap()["h"]
            .semaphore
            .available_permits()
    }

    #[tokio::test]
    async fn a_limit_that_shrinks_takes_effect_as_runs_end_and_one_that_grows_at_once() {
        let limits = Limits::new(8, &config(2));
        let a = limits.acquire("h").await;
        let b = limits.acquire("h").await;
        limits.reconfigure(&config(1));
        tokio::task::yield_now().await;
        drop(a);
        // The surplus permit is taken out of circulation, not handed on.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(available(&limits), 0);
        drop(b);
        assert_eq!(available(&limits), 1);
        limits.reconfigure(&config(3));
        assert_eq!(available(&limits), 3);
    }
}
