//! Network access of tasks: the allowlist policy and the HTTP client behind `http-get`.

pub mod bandwidth;
pub mod fetch;
pub mod policy;
