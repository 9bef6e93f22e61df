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
pub mod cluster;
pub mod dashboard;
pub mod domain;
pub mod sim;
pub mod state;
pub mod store;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
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
    let service = app(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    serve_until(state, shutdown, |graceful| async move {
        axum::serve(listener, service)
            .with_graceful_shutdown(graceful)
            .await
    })
    .await
}

/// [`run`] over TLS: connections on `listener` are HTTPS with the certificate of `tls`
/// ([`tls::server_config`]).
pub async fn run_tls(
    listener: tokio::net::TcpListener,
    tls: std::sync::Arc<tokio_rustls::rustls::ServerConfig>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tls::TlsListener::new(listener, tls)?;
    let service = tls::WithPeerAddress(app(state.clone()));
    serve_until(state, shutdown, |graceful| async move {
        axum::serve(listener, service)
            .with_graceful_shutdown(graceful)
            .await
    })
    .await
}

/// Runs the background sweeps while `serve` serves, until `shutdown`; then makes every queued
/// write durable.
async fn serve_until<Served: Future<Output = std::io::Result<()>>>(
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
    serve: impl FnOnce(Pin<Box<dyn Future<Output = ()> + Send>>) -> Served,
) -> std::io::Result<()> {
    let sweeps = Sweeps::start(&state);
    let graceful = {
        let state = state.clone();
        Box::pin(async move {
            shutdown.await;
            tracing::info!("shutting down");
            state.begin_shutdown();
        })
    };
    let served = serve(graceful).await;
    sweeps.stop().await;
    close(state).await;
    served
}

/// Make every queued write of `state` durable and stop its writer (on shutdown).
pub(crate) async fn close(state: AppState) {
    // Joining the writer blocks until its queue is durable.
    let _ = tokio::task::spawn_blocking(move || state.close()).await;
}

/// The background tasks of a serving state: lease expiry, retention, the status sampler.
pub(crate) struct Sweeps(Vec<tokio::task::JoinHandle<()>>);

impl Sweeps {
    /// Start the sweeps of `state`.
    pub(crate) fn start(state: &AppState) -> Sweeps {
        let mut tasks = vec![
            tokio::spawn(expire_leases(state.clone())),
            tokio::spawn(dashboard::sample_status(state.clone())),
        ];
        if let Some(retain_ms) = state.options.retain_finished_ms {
            tasks.push(tokio::spawn(retain_finished(state.clone(), retain_ms)));
        }
        Sweeps(tasks)
    }

    /// Stop them; returns once each has dropped its state.
    pub(crate) async fn stop(self) {
        // Awaited after the abort: an aborted task drops its state (and with it the store) only
        // when its worker next polls it, and whoever opens the store after us must find it
        // closed.
        for sweep in self.0 {
            sweep.abort();
            let _ = sweep.await;
        }
    }
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

/// Deletes batches finished longer than `retain_ms` ago, looking a tenth of that period apart
/// (between 100 ms and a minute), so a batch outlives its retention by at most a tenth.
async fn retain_finished(state: AppState, retain_ms: u64) {
    let period = Duration::from_millis((retain_ms / 10).clamp(100, 60_000));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let cutoff = AppState::now_ms().saturating_sub(retain_ms);
        let (deleted, pending) = {
            let mut world = state.world();
            let deleted = world.delete_finished_before(cutoff);
            if deleted.is_empty() {
                continue;
            }
            (deleted, state.persist(&mut world, Vec::new()))
        };
        match pending.durable().await {
            Ok(()) => {
                for (batch, units) in deleted {
                    tracing::info!(%batch, units, "batch deleted after its retention");
                }
            }
            Err(error) => tracing::warn!(message = %error.message, "retention sweep failed"),
        }
    }
}
