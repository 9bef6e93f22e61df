//! Domain logic with no HTTP and no storage: the work-unit lifecycle, the scheduler's in-memory
//! world, tokens and roles, publish checks, result formatting and the dashboard's views.

pub mod lifecycle;
pub mod placement;
pub mod publish;
pub mod ratelimit;
pub mod reputation;
pub mod results;
pub mod tokens;
pub mod views;
pub mod world;
