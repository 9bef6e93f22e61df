//! The musketeer client: the wasmtime sandbox that runs signed task modules on a volunteer's
//! machine, the network policy of tasks, and the commands of the `musketeer` binary.

pub mod api_client;
pub mod cli;
pub mod commands;
pub mod exit;
pub mod fetch_answer;
pub mod net;
pub mod sandbox;
pub mod volunteer;
