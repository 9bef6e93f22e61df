//! End-to-end tests: a real `musketeer-server` and real `musketeer join` processes on loopback.
//! See `support.rs` for how the server binary is built and how processes are cleaned up;
//! `browser.rs` reads the dashboard of such a run in headless Chromium.

mod browser;
mod cli_habits;
mod cluster;
mod collusion;
mod control;
mod cross_arch;
mod demo;
mod failing;
mod js_task;
mod kills;
mod lines;
mod newcomer;
mod operations;
#[path = "../../../server/tests/it/pg_support.rs"]
mod pg_support;
mod poison;
mod projects;
mod python_task;
mod quorum;
mod refusals;
mod resources;
mod rotation;
mod submit_wait;
mod support;
mod tls;
