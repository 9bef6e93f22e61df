//! Integration tests of the musketeer server: the HTTP API in process (`tower::ServiceExt::oneshot`)
//! and over real loopback sockets, the auth matrix, bad input, the CLI and SIGKILL durability.

mod api;
mod auth;
mod bad_input;
mod cli;
mod durability;
mod socket;
mod support;
