//! Integration tests of the musketeer server: the HTTP API in process (`tower::ServiceExt::oneshot`)
//! and over real loopback sockets, the auth matrix, bad input, the CLI, deleting batches, key rotation while serving, SIGKILL durability, what
//! a restart keeps (without HTTP), the dashboard in process, operations (backup restored under
//! load, retention), HTTPS, and upgrades from a store of the previous release. (Its browser test runs in the
//! client's e2e suite, with real clients.)

mod api;
mod archive;
mod archive_recall;
mod auth;
mod bad_input;
mod batch_wait;
mod cli;
mod cluster;
mod dashboard;
mod dashboard_views;
mod delete;
mod durability;
mod every_route;
mod export_import;
mod openapi;
mod ops;
mod pg_shared;
mod pg_store;
mod pg_support;
mod raw_inputs;
mod reputation;
mod restart;
mod results_csv;
mod rotation;
mod socket;
mod support;
mod tls;
mod upgrade;
