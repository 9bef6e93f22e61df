//! One module per subcommand.

pub mod compact;
pub mod init;
pub mod migrate;
pub mod rotate_key;
pub mod serve;
pub mod token;
