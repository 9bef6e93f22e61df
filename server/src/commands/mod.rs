//! One module per subcommand.

pub mod compact;
pub mod export;
pub mod import;
pub mod init;
pub mod migrate;
pub mod rotate_key;
pub mod serve;
pub mod token;
