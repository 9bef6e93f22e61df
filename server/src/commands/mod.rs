//! One module per subcommand.

pub mod init;
pub mod serve;
pub mod token;
