//! Becoming the active server: claim the active row (a new epoch, this server's address, a
//! fresh forwarding secret), load the state, swap the router from forwarding to the
//! application. A standby waits for the database's lock in the background, which PostgreSQL
//! frees when the active server's session ends (it stopped, died, or lost its connection).

use std::time::Duration;

use super::{Active, ClusterError, Mode, Node, active_row};
use crate::Sweeps;
use crate::state::{AppState, NotReady};
use crate::store::{Store, StoreError};

/// How long a standby waits before trying again after a failed takeover (say, PostgreSQL
/// restarting).
const RETRY: Duration = Duration::from_secs(1);

/// How often the active server looks whether its writer found it superseded.
const SUPERSEDED_CHECK: Duration = Duration::from_millis(100);

/// Run `job` on a thread of its own: the sync PostgreSQL client must not run on a thread that
/// drives async tasks, and waiting for the lock may block for as long as the active one lives.
pub(super) async fn blocking<T: Send + 'static>(
    job: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let (answer, answered) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("cluster-store".into())
        .spawn(move || {
            let _ = answer.send(job());
        })
        .map_err(|error| StoreError::Thread { error })?;
    answered.await.map_err(|_| StoreError::PostgresGone)?
}

/// With the database's lock in `store`: claim the active row and load the state. Requests get
/// 503 meanwhile; once this returns they go to the application.
pub(super) async fn become_active(node: &Node, store: Store) -> Result<(), ClusterError> {
    node.set_mode(Mode::Loading);
    let secret = active_row::new_secret();
    let url = node.0.options.advertise_url.clone();
    let (claiming, claimed_secret) = (store.clone(), secret.clone());
    // Waits for a commit of the previous active server in flight, so the load below sees it.
    let epoch = blocking(move || claiming.claim_active(url, claimed_secret)).await?;
    let options = node.0.options.serve.clone();
    let state = blocking(move || AppState::load(store, options)).await?;
    tracing::info!(epoch, url = %node.0.options.advertise_url, "this server is the active one");
    *node
        .0
        .sweeps
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Sweeps::start(&state));
    tokio::spawn(watch_superseded(node.clone(), state.clone()));
    let app = crate::app(state.clone());
    node.set_mode(Mode::Active(Active {
        state,
        app,
        secret: secret.into(),
        epoch,
    }));
    Ok(())
}

/// As a standby: wait for the database's lock, then become the active server.
pub(super) async fn wait_and_take_over(node: Node) {
    loop {
        let url = node.0.options.store_url.clone();
        let opened = blocking(move || Store::open_postgres_waiting(&url)).await;
        if node.is_shutting_down() {
            // Dropping the store releases the lock for another server.
            return;
        }
        tracing::info!("the active server is gone: taking over");
        let taken = match opened {
            Ok(store) => become_active(&node, store).await,
            Err(error) => Err(error.into()),
        };
        match taken {
            Ok(()) => return,
            Err(error) => {
                node.set_mode(Mode::Standby);
                tracing::warn!(%error, "cannot take over as the active server; trying again");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

/// Tell [`super::run`] to stop once the writer found that another server became active.
async fn watch_superseded(node: Node, state: AppState) {
    let mut tick = tokio::time::interval(SUPERSEDED_CHECK);
    loop {
        tick.tick().await;
        if node.is_shutting_down() {
            return;
        }
        if state.readiness() == Err(NotReady::Superseded) {
            node.0.superseded.send_replace(true);
            return;
        }
    }
}
