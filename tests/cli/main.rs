//! Integration tests: the real `autod` binary against projects in temp
//! directories (see `common::Project`). One test binary, so it links once.

mod common;

mod bad_input;
mod chaining;
mod cloudevents;
mod containment;
mod crontab_conformance;
mod daemon;
mod dispatch;
mod failures;
mod hosts;
mod idempotency;
mod query;
mod replay;
mod robustness;
mod root;
mod runner;
mod scaffold;
mod schedules;
mod state;
mod unrecorded;
mod validation;
