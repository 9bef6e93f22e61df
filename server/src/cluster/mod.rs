//! Several `musketeer-server` instances on one PostgreSQL database, behind any HTTP load
//! balancer: the one holding the database's lock is *active* (it holds the state in memory, as a
//! lone server does); the others are *standbys* that forward every request to it and wait for
//! the lock, taking over when the active one dies. This gives availability and one consistent
//! view (rate limits, counters, long polls and the dashboard all live on the active one), not
//! more throughput (docs/decisions/0008-postgresql-store.md).
//!
//! - [`takeover`]: becoming active (claim the epoch, load the state) and waiting for the lock.
//! - [`forward`]: the standby's reverse proxy to the active one.
//! - [`active_row`]: the forwarding secret and the client address a standby passes on.

mod active_row;
mod forward;
mod takeover;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::http::header::RETRY_AFTER;
use axum::response::{IntoResponse as _, Response};
use musketeer_protocol::{HealthStatus, paths};
use tokio::sync::watch;
use tower::ServiceExt as _;

use crate::Sweeps;
use crate::api::error::ApiError;
use crate::state::{AppState, ServeOptions};
use crate::store::{Store, StoreError};
use forward::Forwarder;

/// Why a server of a cluster could not start or take over.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The store failed (connecting, claiming the active row, loading the state).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The HTTP client that forwards requests could not be made.
    #[error("cannot make the HTTP client that forwards requests to the active server: {0}")]
    Forwarder(#[from] reqwest::Error),
}

/// What a server of a cluster needs to know.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// The PostgreSQL store (`--store`).
    pub store_url: String,
    /// Where the other servers reach this one (`--advertise-url`), e.g. `http://10.0.0.5:8080`.
    pub advertise_url: String,
    /// The settings of the state, once active.
    pub serve: ServeOptions,
}

/// What a server of a cluster is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Role {
    /// It holds the state and answers requests itself.
    Active,
    /// It forwards requests to the active server (or is taking over from it).
    Standby,
}

impl Role {
    /// `"active"` or `"standby"`, as `/healthz` says.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Active => "active",
            Role::Standby => "standby",
        }
    }
}

/// How serving ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stopped {
    /// The shutdown signal came.
    Shutdown,
    /// Another server became the active one (this one's lock was lost): it stopped committing.
    Superseded,
}

#[derive(Clone)]
enum Mode {
    Standby,
    /// Holding the lock, loading the state: requests get 503 until it is loaded.
    Loading,
    Active(Active),
}

#[derive(Clone)]
struct Active {
    state: AppState,
    app: Router,
    /// The secret this server's standbys show with the client address they forward.
    secret: Arc<str>,
    /// The epoch it claimed.
    epoch: u64,
}

/// A server of a cluster; cheap to clone.
#[derive(Clone)]
pub struct Node(Arc<Inner>);

struct Inner {
    options: ClusterOptions,
    mode: RwLock<Mode>,
    forwarder: Forwarder,
    sweeps: Mutex<Option<Sweeps>>,
    shutting_down: watch::Sender<bool>,
    superseded: watch::Sender<bool>,
}

impl Node {
    /// Join the servers on the database: become the active one if none holds the lock (its
    /// state loaded when this returns), else a standby that waits for it in the background.
    pub async fn start(options: ClusterOptions) -> Result<Node, ClusterError> {
        let node = Node(Arc::new(Inner {
            forwarder: Forwarder::new(&options.store_url, &options.advertise_url)?,
            options,
            mode: RwLock::new(Mode::Standby),
            sweeps: Mutex::new(None),
            shutting_down: watch::Sender::new(false),
            superseded: watch::Sender::new(false),
        }));
        let url = node.0.options.store_url.clone();
        match takeover::blocking(move || Store::open_postgres_if_free(&url)).await? {
            Some(store) => takeover::become_active(&node, store).await?,
            None => {
                tracing::info!("another server is active on this database: standing by");
                tokio::spawn(takeover::wait_and_take_over(node.clone()));
            }
        }
        Ok(node)
    }

    /// Active or standby, now.
    pub fn role(&self) -> Role {
        match &*self.0.mode.read().unwrap_or_else(PoisonError::into_inner) {
            Mode::Active(_) => Role::Active,
            Mode::Standby | Mode::Loading => Role::Standby,
        }
    }

    fn mode(&self) -> Mode {
        self.0
            .mode
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_mode(&self, mode: Mode) {
        *self.0.mode.write().unwrap_or_else(PoisonError::into_inner) = mode;
    }

    fn is_shutting_down(&self) -> bool {
        *self.0.shutting_down.borrow()
    }

    fn begin_shutdown(&self) {
        self.0.shutting_down.send_replace(true);
        if let Mode::Active(active) = self.mode() {
            active.state.begin_shutdown();
        }
    }

    /// Stop the sweeps and make every queued write durable (on shutdown).
    async fn close(&self) {
        let sweeps = self
            .0
            .sweeps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(sweeps) = sweeps {
            sweeps.stop().await;
        }
        if let Mode::Active(active) = self.mode() {
            crate::close(active.state).await;
        }
    }
}

/// Serve `node` on `listener` (HTTPS with `tls`) until `shutdown` resolves or another server
/// supersedes this one; then finish in-flight requests and make every queued write durable.
pub async fn run(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    node: Node,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<Stopped> {
    let router = Router::new().fallback(dispatch).with_state(node.clone());
    let graceful = {
        let node = node.clone();
        async move {
            let mut superseded = node.0.superseded.subscribe();
            tokio::select! {
                () = shutdown => tracing::info!("shutting down"),
                _ = superseded.wait_for(|superseded| *superseded) => tracing::error!(
                    "another server became the active one on this database (this one's lock \
                     was lost); stopping: this one commits nothing more"
                ),
            }
            node.begin_shutdown();
        }
    };
    let served = match tls {
        Some(tls) => {
            let listener = crate::tls::TlsListener::new(listener, tls)?;
            axum::serve(listener, crate::tls::WithPeerAddress(router))
                .with_graceful_shutdown(graceful)
                .await
        }
        None => {
            let service = router.into_make_service_with_connect_info::<SocketAddr>();
            axum::serve(listener, service)
                .with_graceful_shutdown(graceful)
                .await
        }
    };
    node.close().await;
    served?;
    Ok(if *node.0.superseded.borrow() {
        Stopped::Superseded
    } else {
        Stopped::Shutdown
    })
}

/// Every request: answered by the state if active, forwarded if standby, 503 while loading.
/// The probes are answered here, saying which the server is.
async fn dispatch(State(node): State<Node>, mut request: Request) -> Response {
    let path = request.uri().path();
    let probe = (path == paths::HEALTHZ, path == paths::READYZ);
    let mode = node.mode();
    match (mode, probe) {
        (_, (true, _)) => Json(HealthStatus::ok_as(node.role().as_str())).into_response(),
        (Mode::Active(active), (_, true)) => match active.state.readiness() {
            Ok(()) => Json(HealthStatus::ok_as(Role::Active.as_str())).into_response(),
            Err(reason) => unavailable(reason.to_string()),
        },
        (Mode::Standby, (_, true)) if node.is_shutting_down() => {
            unavailable(crate::state::NotReady::ShuttingDown.to_string())
        }
        (Mode::Standby, (_, true)) => match node.0.forwarder.active_is_ready().await {
            Ok(()) => Json(HealthStatus::ok_as(Role::Standby.as_str())).into_response(),
            Err(reason) => unavailable(reason),
        },
        (Mode::Loading, _) => unavailable(
            "this server is taking over as the active one (loading the state); retry in a moment",
        ),
        (Mode::Active(active), _) => {
            let forwarded = active_row::take_forwarded_client(&mut request, &active.secret);
            let Ok(mut response) = active.app.oneshot(request).await;
            if forwarded {
                response
                    .headers_mut()
                    .insert(active_row::ACTIVE_EPOCH, HeaderValue::from(active.epoch));
            }
            response
        }
        (Mode::Standby, _) => node.0.forwarder.forward(request).await,
    }
}

/// 503 with `Retry-After: 1`: the request may succeed in a moment (through this server or
/// another).
fn unavailable(message: impl Into<String>) -> Response {
    let mut response = ApiError::unavailable(message).into_response();
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    response
}
