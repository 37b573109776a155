//! `autod run` through the real binary: the daemon started in a temp project,
//! fed through its inbox, signalled, killed and restarted.
//!
//! Every test waits by polling a condition (never a bare sleep, except where
//! idling is the point), and every daemon is killed at the end of its test even
//! when the test fails.

mod chaining;
mod helper;
mod http;

mod clock;
mod crash;
mod example;
mod hooks;
mod idle;
mod inbox;
mod keys;
mod lock;
mod metrics;
mod nats;
mod outcomes;
mod queue;
mod queue_dead;
mod queue_hosts;
mod queue_intake;
mod queue_keys;
mod queue_reload;
mod reload;
mod replay;
mod retries;
mod schedules;
mod send;
mod serve;
mod serve_limits;
mod signals;
mod status;
mod watches;
