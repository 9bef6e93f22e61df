//! The store data of one run: WASI context, the `host` interface the task imports, and the
//! resource limiter.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::determinism::{FixedWallClock, SeededRng, VirtualMonotonicClock, seed_u128};
use musketeer_protocol::guest_text;

use super::limiter::Limiter;
use crate::net::fetch::{FetchError, HttpFetcher, RequestBudget};
use crate::net::policy::Allowlist;

wasmtime::component::bindgen!({
    path: "../task-sdk/wit",
    world: "task",
    imports: { default: async },
    exports: { default: async },
});

use musketeer::task::host::{HttpError, HttpResponse};

/// Longest log line kept, and how many lines a run may keep.
const MAX_LOG_LINE: usize = 1024;
const MAX_LOG_LINES: usize = 256;

/// Receives progress reports of a run (fraction in [0, 1]).
pub type ProgressSink = Arc<dyn Fn(f64) + Send + Sync>;

/// Everything a running task can reach.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: Limiter,
    allowlist: Allowlist,
    fetcher: HttpFetcher,
    budget: RequestBudget,
    progress: Option<ProgressSink>,
    pub(crate) logs: Vec<String>,
}

/// The captured output streams of a run.
pub struct Captured {
    /// What the task wrote to stdout (at most the cap).
    pub stdout: MemoryOutputPipe,
    /// What the task wrote to stderr (at most the cap).
    pub stderr: MemoryOutputPipe,
}

/// Inputs to build a run's host state.
pub struct HostSetup<'a> {
    pub run_id: &'a str,
    pub allowlist: Allowlist,
    pub fetcher: HttpFetcher,
    pub memory_bytes: usize,
    pub stdio_cap: usize,
    pub progress: Option<ProgressSink>,
}

impl HostState {
    /// A state with no ambient authority: no preopened directories, no environment, no
    /// arguments, no sockets, deterministic clocks and randomness.
    pub fn new(setup: HostSetup<'_>) -> (Self, Captured) {
        let stdout = MemoryOutputPipe::new(setup.stdio_cap);
        let stderr = MemoryOutputPipe::new(setup.stdio_cap);
        let mut builder = WasiCtxBuilder::new();
        builder
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .wall_clock(FixedWallClock)
            .monotonic_clock(VirtualMonotonicClock::default())
            .secure_random(SeededRng::new(setup.run_id, "secure"))
            .insecure_random(SeededRng::new(setup.run_id, "insecure"))
            .insecure_random_seed(seed_u128(setup.run_id))
            .max_random_size(1024 * 1024);
        let budget = RequestBudget::new(setup.fetcher.config().max_requests_per_run);
        let state = Self {
            wasi: builder.build(),
            table: ResourceTable::new(),
            limiter: Limiter::new(setup.memory_bytes),
            allowlist: setup.allowlist,
            fetcher: setup.fetcher,
            budget,
            progress: setup.progress,
            logs: Vec::new(),
        };
        (state, Captured { stdout, stderr })
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl musketeer::task::host::Host for HostState {
    async fn http_get(
        &mut self,
        url: String,
        headers: Vec<(String, String)>,
    ) -> Result<HttpResponse, HttpError> {
        let result = self
            .fetcher
            .get(&self.allowlist, &mut self.budget, &url, &headers)
            .await;
        match result {
            Ok(done) => Ok(HttpResponse {
                status: done.status,
                headers: done.headers,
                body: done.body,
            }),
            Err(error) => {
                tracing::debug!(%url, %error, "task HTTP request refused or failed");
                Err(match error {
                    FetchError::Denied(reason) => HttpError::Denied(reason),
                    FetchError::Timeout => HttpError::Timeout,
                    FetchError::TooLarge(cap) => HttpError::TooLarge(cap),
                    FetchError::TooManyRequests => HttpError::TooManyRequests,
                    FetchError::Failed(reason) => HttpError::Failed(reason),
                })
            }
        }
    }

    async fn progress(&mut self, fraction: f64) {
        if let Some(sink) = &self.progress
            && fraction.is_finite()
        {
            sink(fraction.clamp(0.0, 1.0));
        }
    }

    async fn log(&mut self, line: String) {
        if self.logs.len() < MAX_LOG_LINES {
            // Escaped here, so that every consumer of the logs (the `run --json` report, the
            // volunteer's output) gets text that cannot forge lines or drive a terminal.
            self.logs.push(guest_text::sanitize(&line, MAX_LOG_LINE));
        }
    }
}
