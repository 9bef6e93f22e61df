//! Integration tests of the sandbox and the `musketeer` CLI, on real task modules.

mod cache;
mod determinism;
mod hostile;
mod support;
mod tamper;
