//! Integration tests of the sandbox and the `musketeer` CLI, on real task modules.

mod cache;
mod cli;
mod components;
mod containment;
mod determinism;
mod hostile;
mod js_task;
mod network_reads;
mod pausing;
mod peak_rss;
mod pooling;
mod python_random;
mod python_task;
mod stock_day;
mod support;
mod tamper;
