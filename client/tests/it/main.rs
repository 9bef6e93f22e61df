//! Integration tests of the sandbox and the `musketeer` CLI, on real task modules.

mod cache;
mod determinism;
mod cli;
mod hostile;
mod stock_day;
mod support;
mod tamper;
