//! `/metrics` in the Prometheus text exposition format, written by hand (a few counters need no
//! client library), and the middleware that times every request.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use musketeer_protocol::Stats;

use crate::api::error::ApiError;
use crate::api::extract::Caller;
use crate::domain::views::{RowCounts, row_counts};
use crate::state::AppState;

/// Upper bounds of the latency buckets, seconds. Work fetches long-poll for up to 30 s.
pub const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

/// One latency histogram.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Observations at most each bound of [`BUCKETS`] (not cumulative).
    pub buckets: [u64; BUCKETS.len()],
    /// All observations.
    pub count: u64,
    /// Their sum, seconds.
    pub sum: f64,
}

impl Histogram {
    /// Record one observation.
    pub fn observe(&mut self, seconds: f64) {
        if let Some(idx) = BUCKETS.iter().position(|b| seconds <= *b) {
            self.buckets[idx] += 1;
        }
        self.count += 1;
        self.sum += seconds;
    }
}

/// Request latencies by method and route pattern (never by raw path, which would grow without
/// bound).
#[derive(Debug, Default)]
pub struct RequestMetrics {
    by_route: Mutex<BTreeMap<(String, String), Histogram>>,
}

impl RequestMetrics {
    /// Record one request.
    pub fn observe(&self, method: &str, route: &str, seconds: f64) {
        let mut map = self
            .by_route
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match map.get_mut(&(method.to_owned(), route.to_owned())) {
            Some(h) => h.observe(seconds),
            None => {
                let mut h = Histogram::default();
                h.observe(seconds);
                map.insert((method.to_owned(), route.to_owned()), h);
            }
        }
    }

    /// A copy of every histogram.
    pub fn snapshot(&self) -> BTreeMap<(String, String), Histogram> {
        self.by_route
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Time every request of `router` and make the metrics reachable from the `/metrics` handler.
pub fn instrument(router: Router<AppState>) -> Router<AppState> {
    let requests = Arc::new(RequestMetrics::default());
    router
        .layer(axum::middleware::from_fn_with_state(requests.clone(), time))
        .layer(Extension(requests))
}

async fn time(
    State(requests): State<Arc<RequestMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let start = Instant::now();
    let response = next.run(request).await;
    requests.observe(&method, &route, start.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`: dashboard view (any user token, or anyone with `--public-dashboard`).
pub async fn scrape(
    State(state): State<AppState>,
    Extension(requests): Extension<Arc<RequestMetrics>>,
    caller: Caller,
) -> Result<Response, ApiError> {
    caller.viewer(state.options.public_dashboard)?;
    let (stats, rows) = {
        let world = state.world();
        (world.stats(AppState::now_ms()), row_counts(&world))
    };
    let store_bytes = match &state.options.store_file {
        Some(path) => tokio::fs::metadata(path).await.ok().map(|m| m.len()),
        None => None,
    };
    let text = render(&stats, rows, store_bytes, &requests.snapshot());
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}

/// The exposition text.
pub fn render(
    stats: &Stats,
    rows: RowCounts,
    store_bytes: Option<u64>,
    requests: &BTreeMap<(String, String), Histogram>,
) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, samples: &[(&str, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    gauge(
        "musketeer_hosts_known",
        "Hosts ever registered.",
        &[("", stats.hosts_known)],
    );
    gauge(
        "musketeer_hosts_online",
        "Hosts that made contact in the last two minutes.",
        &[("", stats.hosts_online)],
    );
    gauge(
        "musketeer_slots_total",
        "Task slots of online hosts.",
        &[("", stats.slots_total)],
    );
    gauge(
        "musketeer_slots_busy",
        "Replicas running now.",
        &[("", stats.slots_busy)],
    );
    gauge(
        "musketeer_queue_depth",
        "Replicas waiting for a host.",
        &[("", stats.queue_depth)],
    );
    gauge(
        "musketeer_batches_active",
        "Batches neither finished nor cancelled.",
        &[("", stats.batches_active)],
    );
    let u = &stats.units;
    gauge(
        "musketeer_units",
        "Work units by state.",
        &[
            ("{state=\"queued\"}", u.queued),
            ("{state=\"running\"}", u.running),
            ("{state=\"done\"}", u.done),
            ("{state=\"failed\"}", u.failed),
            ("{state=\"cancelled\"}", u.cancelled),
        ],
    );
    // Results only ever move into these outcomes, so they are counters.
    let r = &stats.results;
    let _ = writeln!(
        out,
        "# HELP musketeer_results_total Returned results by validation outcome.\n\
         # TYPE musketeer_results_total counter"
    );
    for (outcome, value) in [
        ("valid", r.valid),
        ("invalid", r.invalid),
        ("error", r.errors),
        ("timed_out", r.timed_out),
    ] {
        let _ = writeln!(
            out,
            "musketeer_results_total{{outcome=\"{outcome}\"}} {value}"
        );
    }
    let mut gauge = |name: &str, help: &str, samples: &[(&str, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    gauge(
        "musketeer_store_rows",
        "Rows in the store by table.",
        &[
            ("{table=\"hosts\"}", rows.hosts),
            ("{table=\"apps\"}", rows.app_versions),
            ("{table=\"batches\"}", rows.batches),
            ("{table=\"units\"}", rows.units),
        ],
    );
    if let Some(bytes) = store_bytes {
        gauge(
            "musketeer_store_bytes",
            "Size of the store file.",
            &[("", bytes)],
        );
    }
    let name = "musketeer_http_request_duration_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} HTTP request latency by method and route.\n# TYPE {name} histogram"
    );
    for ((method, route), h) in requests {
        let labels = format!("method=\"{}\",route=\"{}\"", escape(method), escape(route));
        let mut cumulative = 0;
        for (bound, n) in BUCKETS.iter().zip(h.buckets) {
            cumulative += n;
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
    }
    out
}

/// Label values escape backslash, quote and newline.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use musketeer_protocol::{ResultCounts, UnitCounts};

    use super::*;

    fn value(text: &str, series: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
            .parse()
            .unwrap()
    }

    #[test]
    fn exposition_carries_every_counter_and_a_cumulative_histogram() {
        let stats = Stats {
            now_ms: 0,
            hosts_known: 3,
            hosts_online: 2,
            slots_total: 8,
            slots_busy: 5,
            queue_depth: 11,
            units: UnitCounts {
                queued: 1,
                running: 2,
                done: 3,
                failed: 4,
                cancelled: 5,
            },
            results: ResultCounts {
                valid: 6,
                invalid: 7,
                errors: 8,
                timed_out: 9,
            },
            batches_active: 1,
            done_per_minute: vec![0; 60],
        };
        let rows = RowCounts {
            hosts: 3,
            app_versions: 1,
            batches: 2,
            units: 15,
        };
        let requests = RequestMetrics::default();
        requests.observe("GET", "/api/v1/stats", 0.002);
        requests.observe("GET", "/api/v1/stats", 0.3);
        requests.observe("GET", "/api/v1/stats", 99.0);
        requests.observe("POST", "say \"hi\"", 0.0);
        let text = render(&stats, rows, Some(4096), &requests.snapshot());
        for (series, expected) in [
            ("musketeer_hosts_online", 2.0),
            ("musketeer_hosts_known", 3.0),
            ("musketeer_slots_total", 8.0),
            ("musketeer_slots_busy", 5.0),
            ("musketeer_queue_depth", 11.0),
            ("musketeer_units{state=\"failed\"}", 4.0),
            ("musketeer_units{state=\"cancelled\"}", 5.0),
            ("musketeer_results_total{outcome=\"invalid\"}", 7.0),
            ("musketeer_results_total{outcome=\"timed_out\"}", 9.0),
            ("musketeer_store_rows{table=\"units\"}", 15.0),
            ("musketeer_store_bytes", 4096.0),
        ] {
            assert_eq!(value(&text, series), expected, "{series}");
        }
        let stats_route =
            "musketeer_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/stats\"";
        assert_eq!(value(&text, &format!("{stats_route},le=\"0.001\"}}")), 0.0);
        assert_eq!(value(&text, &format!("{stats_route},le=\"0.0025\"}}")), 1.0);
        assert_eq!(value(&text, &format!("{stats_route},le=\"0.5\"}}")), 2.0);
        assert_eq!(value(&text, &format!("{stats_route},le=\"30\"}}")), 2.0);
        assert_eq!(value(&text, &format!("{stats_route},le=\"+Inf\"}}")), 3.0);
        assert!(text.contains("route=\"say \\\"hi\\\"\""), "{text}");
        // Every sample line is `name{labels} number`, every family has HELP and TYPE.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, number) = line.rsplit_once(' ').unwrap();
            assert!(number.parse::<f64>().is_ok(), "{line}");
        }
        assert_eq!(
            text.matches("# HELP").count(),
            text.matches("# TYPE").count()
        );
    }
}
