//! The dashboard: the web pages at `/` (HTML, JavaScript and CSS embedded in the binary, no
//! CDN), Prometheus metrics at `/metrics` and the OpenAPI document of the API. The pages read
//! the JSON API like any other client; they hold no data of their own.

pub mod assets;
pub mod metrics;
pub mod openapi;
pub mod process;

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use musketeer_protocol::paths;

use crate::state::AppState;

/// Path of the dashboard's entry page.
pub const INDEX: &str = "/";
/// Path of its embedded files.
pub const ASSET: &str = "/assets/{file}";

/// The dashboard's routes: pages, assets, metrics and the OpenAPI document.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(INDEX, get(assets::index))
        .route(ASSET, get(assets::file))
        .route(paths::METRICS, get(metrics::scrape))
        .route(paths::OPENAPI, get(openapi::serve))
}

/// How often the status page's unit states are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);

/// Sample unit states and host totals for the status page, every [`SAMPLE_EVERY`], until
/// aborted.
pub async fn sample_status(state: AppState) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let world = state.world();
        state
            .status_history
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .record(&world, AppState::now_ms());
    }
}
