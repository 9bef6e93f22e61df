//! `/metrics` in the OpenMetrics text exposition (via `prometheus-client`): the server's counters
//! read at scrape time, request latencies by route, and the process's own metrics.

use std::sync::Arc;
use std::time::Instant;

use axum::Extension;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use musketeer_protocol::Stats;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::process::ProcessCollector;
use crate::api::error::ApiError;
use crate::api::extract::Caller;
use crate::domain::views::{RowCounts, row_counts};
use crate::state::AppState;

/// Upper bounds of the latency buckets, seconds. Work fetches long-poll for up to 30 s.
pub const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

/// Content type of the exposition for scrapers that ask for OpenMetrics (Prometheus does).
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type for everyone else, as the Prometheus text format 0.0.4 reads the same lines.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Labels of one latency histogram: the method and the route pattern (never the raw path,
/// which would grow without bound).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// HTTP method.
    pub method: String,
    /// Axum route pattern, or `unmatched`.
    pub route: String,
}

/// Request latencies by method and route.
#[derive(Debug, Clone)]
pub struct RequestMetrics {
    by_route: Family<RouteLabels, Histogram, fn() -> Histogram>,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        Self {
            by_route: Family::new_with_constructor(|| Histogram::new(BUCKETS)),
        }
    }
}

impl RequestMetrics {
    /// Record one request.
    pub fn observe(&self, method: &str, route: &str, seconds: f64) {
        self.by_route
            .get_or_create(&RouteLabels {
                method: method.to_owned(),
                route: route.to_owned(),
            })
            .observe(seconds);
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
    headers: HeaderMap,
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
    let snapshot = ServerCounters {
        stats,
        rows,
        store_bytes,
    };
    let text = render(snapshot, &requests)
        .map_err(|_| ApiError::unavailable("metrics could not be encoded; retry later"))?;
    let wants_openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let content_type = if wants_openmetrics {
        OPENMETRICS
    } else {
        PROMETHEUS_TEXT
    };
    let mut response = text.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(response)
}

/// The server's counters as read at one scrape.
#[derive(Debug, Clone)]
pub struct ServerCounters {
    /// What `/api/v1/stats` answers.
    pub stats: Stats,
    /// Rows in the store by table.
    pub rows: RowCounts,
    /// Size of the store file, if there is one.
    pub store_bytes: Option<u64>,
}

/// The exposition text, ending with `# EOF`.
pub fn render(
    counters: ServerCounters,
    requests: &RequestMetrics,
) -> Result<String, std::fmt::Error> {
    // A registry per scrape: the counters are read from the world now, the histograms live on.
    let mut registry = Registry::default();
    registry.register_collector(Box::new(counters));
    // `register` ends the help with a period itself; collectors' help is written as given.
    registry.register(
        "musketeer_http_request_duration_seconds",
        "HTTP request latency by method and route",
        requests.by_route.clone(),
    );
    registry.register_collector(Box::new(ProcessCollector));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}

impl Collector for ServerCounters {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use MetricType::{Counter, Gauge};
        let (s, u, r, rows) = (
            &self.stats,
            &self.stats.units,
            &self.stats.results,
            &self.rows,
        );
        let store_bytes: Vec<(&str, u64)> = self.store_bytes.iter().map(|b| ("", *b)).collect();
        let families: [FamilyRow; 10] = [
            (
                "musketeer_hosts_known",
                "Hosts ever registered.",
                Gauge,
                "",
                &[("", s.hosts_known)],
            ),
            (
                "musketeer_hosts_online",
                "Hosts that made contact in the last two minutes.",
                Gauge,
                "",
                &[("", s.hosts_online)],
            ),
            (
                "musketeer_slots_total",
                "Task slots of online hosts.",
                Gauge,
                "",
                &[("", s.slots_total)],
            ),
            (
                "musketeer_slots_busy",
                "Replicas running now.",
                Gauge,
                "",
                &[("", s.slots_busy)],
            ),
            (
                "musketeer_queue_depth",
                "Replicas waiting for a host.",
                Gauge,
                "",
                &[("", s.queue_depth)],
            ),
            (
                "musketeer_batches_active",
                "Batches neither finished nor cancelled.",
                Gauge,
                "",
                &[("", s.batches_active)],
            ),
            (
                "musketeer_units",
                "Work units by state.",
                Gauge,
                "state",
                &[
                    ("queued", u.queued),
                    ("running", u.running),
                    ("done", u.done),
                    ("failed", u.failed),
                    ("cancelled", u.cancelled),
                ],
            ),
            // Results only ever move into their outcomes, so they are counters (`_total` added).
            (
                "musketeer_results",
                "Returned results by validation outcome.",
                Counter,
                "outcome",
                &[
                    ("valid", r.valid),
                    ("invalid", r.invalid),
                    ("error", r.errors),
                    ("timed_out", r.timed_out),
                ],
            ),
            (
                "musketeer_store_rows",
                "Rows in the store by table.",
                Gauge,
                "table",
                &[
                    ("hosts", rows.hosts),
                    ("apps", rows.app_versions),
                    ("batches", rows.batches),
                    ("units", rows.units),
                ],
            ),
            (
                "musketeer_store_bytes",
                "Size of the store file.",
                Gauge,
                "",
                &store_bytes,
            ),
        ];
        for (name, help, kind, label, samples) in families {
            // A family without samples (no store file) is left out, not written empty.
            if samples.is_empty() {
                continue;
            }
            let mut family = encoder.encode_descriptor(name, help, None, kind)?;
            match samples {
                [(_, value)] if label.is_empty() => encode_sample(kind, *value, family)?,
                _ => {
                    for (label_value, value) in samples {
                        let labels = [(label, *label_value)];
                        encode_sample(kind, *value, family.encode_family(&labels)?)?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn encode_sample(
    kind: MetricType,
    value: u64,
    sample: MetricEncoder,
) -> Result<(), std::fmt::Error> {
    match kind {
        MetricType::Counter => ConstCounter::new(value).encode(sample),
        _ => ConstGauge::new(value).encode(sample),
    }
}

/// Name, help, type, label name (empty: none) and `(label value, value)` samples.
type FamilyRow<'a> = (
    &'static str,
    &'static str,
    MetricType,
    &'static str,
    &'a [(&'static str, u64)],
);

#[cfg(test)]
mod tests {
    use musketeer_protocol::{ResultCounts, UnitCounts};
    use prometheus_parse::{Scrape, Value};

    use super::*;

    fn counters() -> ServerCounters {
        ServerCounters {
            stats: Stats {
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
            },
            rows: RowCounts {
                hosts: 3,
                app_versions: 1,
                batches: 2,
                units: 15,
            },
            store_bytes: Some(4096),
        }
    }

    fn parse(text: &str) -> Scrape {
        Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
    }

    /// The number of the one sample `name{labels}`.
    fn sample(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found = scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)));
        match found.map(|s| &s.value) {
            Some(Value::Gauge(v) | Value::Counter(v) | Value::Untyped(v)) => *v,
            other => panic!("{name}{labels:?}: {other:?}"),
        }
    }

    #[test]
    fn exposition_carries_every_counter_and_a_cumulative_histogram() {
        let requests = RequestMetrics::default();
        requests.observe("GET", "/api/v1/stats", 0.002);
        requests.observe("GET", "/api/v1/stats", 0.3);
        requests.observe("GET", "/api/v1/stats", 99.0);
        requests.observe("POST", "say \"hi\"", 0.0);
        let text = render(counters(), &requests).unwrap();
        assert!(text.ends_with("# EOF\n"), "{text}");
        for help in text.lines().filter(|l| l.starts_with("# HELP")) {
            assert!(help.ends_with('.') && !help.ends_with(".."), "{help}");
        }
        let scrape = parse(&text);
        for (name, labels, expected) in [
            ("musketeer_hosts_known", &[][..], 3.0),
            ("musketeer_hosts_online", &[], 2.0),
            ("musketeer_slots_total", &[], 8.0),
            ("musketeer_slots_busy", &[], 5.0),
            ("musketeer_queue_depth", &[], 11.0),
            ("musketeer_batches_active", &[], 1.0),
            ("musketeer_units", &[("state", "queued")], 1.0),
            ("musketeer_units", &[("state", "running")], 2.0),
            ("musketeer_units", &[("state", "done")], 3.0),
            ("musketeer_units", &[("state", "failed")], 4.0),
            ("musketeer_units", &[("state", "cancelled")], 5.0),
            ("musketeer_results_total", &[("outcome", "valid")], 6.0),
            ("musketeer_results_total", &[("outcome", "invalid")], 7.0),
            ("musketeer_results_total", &[("outcome", "error")], 8.0),
            ("musketeer_results_total", &[("outcome", "timed_out")], 9.0),
            ("musketeer_store_rows", &[("table", "hosts")], 3.0),
            ("musketeer_store_rows", &[("table", "apps")], 1.0),
            ("musketeer_store_rows", &[("table", "batches")], 2.0),
            ("musketeer_store_rows", &[("table", "units")], 15.0),
            ("musketeer_store_bytes", &[], 4096.0),
        ] {
            assert_eq!(sample(&scrape, name, labels), expected, "{name}{labels:?}");
        }
        let histogram = scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == "musketeer_http_request_duration_seconds"
                    && s.labels.get("route") == Some("/api/v1/stats")
            })
            .unwrap_or_else(|| panic!("no stats histogram in\n{text}"));
        let Value::Histogram(buckets) = &histogram.value else {
            panic!("{histogram:?}");
        };
        let count_at = |bound: f64| {
            buckets
                .iter()
                .find(|b| b.less_than == bound)
                .map(|b| b.count)
        };
        assert_eq!(count_at(0.001), Some(0.0));
        assert_eq!(count_at(0.0025), Some(1.0));
        assert_eq!(count_at(0.5), Some(2.0));
        assert_eq!(count_at(30.0), Some(2.0));
        assert_eq!(count_at(f64::INFINITY), Some(3.0));
        let count = "musketeer_http_request_duration_seconds_count";
        assert_eq!(sample(&scrape, count, &[("route", "/api/v1/stats")]), 3.0);
        // Label values are escaped, so a quote in a route cannot break the line.
        assert!(text.contains("route=\"say \\\"hi\\\"\""), "{text}");
    }

    #[test]
    fn without_a_store_file_or_requests_those_series_are_absent() {
        let mut counters = counters();
        counters.store_bytes = None;
        let text = render(counters, &RequestMetrics::default()).unwrap();
        assert!(!text.contains("musketeer_store_bytes"), "{text}");
        assert!(
            !text.contains("musketeer_http_request_duration_seconds_count"),
            "{text}"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn process_metrics_describe_this_process() {
        let scrape = parse(&render(counters(), &RequestMetrics::default()).unwrap());
        let resident = sample(&scrape, "process_resident_memory_bytes", &[]);
        // A test binary holds at least a megabyte and far less than a terabyte.
        assert!((1e6..1e12).contains(&resident), "{resident}");
        let open_fds = sample(&scrape, "process_open_fds", &[]);
        assert!(
            open_fds >= 3.0,
            "stdin, stdout and stderr at least: {open_fds}"
        );
        assert!(sample(&scrape, "process_max_fds", &[]) >= open_fds);
        // CPU time counts in clock ticks (10 ms): work until one has passed, with a deadline.
        let deadline = Instant::now() + std::time::Duration::from_secs(20);
        let mut spin = 0u64;
        let cpu = loop {
            let scrape = parse(&render(counters(), &RequestMetrics::default()).unwrap());
            let cpu = sample(&scrape, "process_cpu_seconds_total", &[]);
            if cpu > 0.0 || Instant::now() > deadline {
                break cpu;
            }
            spin = (0..100_000u64).fold(spin, |acc, i| std::hint::black_box(acc ^ i));
        };
        assert!(cpu > 0.0, "no CPU time after spinning ({spin})");
        let started = sample(&scrape, "process_start_time_seconds", &[]);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        // Started before now, and within the last day (clock ticks round it to 10 ms).
        assert!(
            started <= now + 1.0 && started > now - 86_400.0,
            "{started} vs {now}"
        );
    }
}
