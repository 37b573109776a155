//! `autod lint` and `autod handlers doc` through the real binary: a clean
//! project (see `common::Project`), then one project per rule that breaks
//! exactly that rule. One test binary, so it links once.

mod common;

mod against;
mod config;
mod fixtures;
mod formats;
mod handlers_md;
mod notify;
mod scale;
mod schemas;
mod validation;
mod watches;
mod webhooks;
