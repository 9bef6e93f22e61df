//! Integration tests of the musketeer server: the HTTP API in process (`tower::ServiceExt::oneshot`)
//! and over real loopback sockets, the auth matrix, bad input, the CLI, SIGKILL durability, and
//! the dashboard (in process, and in headless Chromium through ChromeDriver).

mod api;
mod auth;
mod bad_input;
mod browser;
mod cli;
mod dashboard;
mod durability;
mod socket;
mod support;
