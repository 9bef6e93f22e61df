//! The musketeer server: hands out signed task modules and work units to volunteer hosts,
//! validates their results by replication, and keeps everything durable in one redb file.
//!
//! [`api::app`] is the HTTP application (tests drive it without a socket); [`run`] serves it on a
//! listener with lease expiry and graceful shutdown. The work-unit lifecycle and every other
//! decision live in [`domain`], free of HTTP and storage; [`store`] is the only module that
//! touches redb.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use musketeer_server::{run, state::{AppState, ServeOptions}, store::Store};
//!
//! let store = Store::open(std::path::Path::new("/var/lib/musketeer"))?;
//! let state = AppState::load(store, ServeOptions::default())?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! run(listener, state, std::future::pending()).await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod api;
pub mod dashboard;
pub mod domain;
pub mod sim;
pub mod state;
pub mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

pub use api::app;
use state::AppState;

/// How often expired leases are looked for.
const EXPIRY_TICK: Duration = Duration::from_millis(250);

/// Serve `state` on `listener` until `shutdown` resolves, then finish in-flight requests, end
/// long polls, and make every queued write durable.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let expiry = tokio::spawn(expire_leases(state.clone()));
    let sampler = tokio::spawn(dashboard::sample_status(state.clone()));
    let graceful = {
        let state = state.clone();
        async move {
            shutdown.await;
            tracing::info!("shutting down");
            state.begin_shutdown();
        }
    };
    let served = axum::serve(
        listener,
        app(state.clone()).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(graceful)
    .await;
    expiry.abort();
    sampler.abort();
    let closing = state.clone();
    // Joining the writer blocks until its queue is durable.
    let _ = tokio::task::spawn_blocking(move || closing.close()).await;
    served
}

async fn expire_leases(state: AppState) {
    let mut tick = tokio::time::interval(EXPIRY_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(error) = state.expire_leases().await {
            tracing::warn!(message = %error.message, "lease expiry failed");
        }
    }
}
