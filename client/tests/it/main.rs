//! Integration tests of the sandbox and the `musketeer` CLI, on real task modules.

mod cache;
mod cli;
mod determinism;
mod hostile;
mod network_reads;
mod stock_day;
mod support;
mod tamper;
