//! A typed HTTP client of the musketeer server API (`/api/v1`, types from `musketeer-protocol`).
//!
//! Every call returns [`ApiError`], which keeps the server's `{"error","message"}` answer apart
//! from transport failures, so callers can retry the latter and report the former.

use std::time::Duration;

use musketeer_protocol::limits::{MAX_SMALL_ANSWER_BYTES, fetch_answer_cap};
use musketeer_protocol::{
    ApiErrorBody, BanRequest, BatchId, BatchStatus, DeleteBatchResponse, ErrorCode, FetchRequest,
    HostId, HostList, HostSummary, ProjectInfo, PublishRequest, PublishResponse,
    RegisterHostRequest, RegisterHostResponse, ReportRequest, ReportResponse, ResultsFormat,
    ResultsPage, SubmitBatchRequest, SubmitBatchResponse, TokenId, TokenList, paths,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::fetch_answer::FetchAnswer;

/// Timeout of ordinary requests (long polls add their wait to it).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Time to open a TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest answer of list and dashboard views read with [`ApiClient::get_json`].
pub const MAX_VIEW_ANSWER_BYTES: usize = 64 * 1024 * 1024;
/// Largest error answer read; only its message is shown.
const MAX_ERROR_ANSWER_BYTES: usize = 64 * 1024;

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The server answered with an error status and (usually) a JSON error body.
    #[error("server refused ({status}, {code}): {message}", code = code.as_str())]
    Server {
        /// The HTTP status.
        status: u16,
        /// The machine-readable code (`Unknown` when the body was not the JSON error shape).
        code: ErrorCode,
        /// The server's explanation.
        message: String,
    },
    /// The server could not be reached, or the connection broke.
    #[error("cannot reach the server at {url}: {source}")]
    Transport {
        /// The URL requested.
        url: String,
        /// The underlying error.
        source: reqwest::Error,
    },
    /// The server answered 2xx with a body this client cannot read.
    #[error("unexpected answer from {url}: {message}")]
    Decode {
        /// The URL requested.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// The answer is larger than this client reads from that endpoint; nothing more was read.
    #[error("the answer from {url} is larger than the {max} bytes this client accepts from it")]
    TooLarge {
        /// The URL requested.
        url: String,
        /// The cap of that endpoint.
        max: u64,
    },
    /// The results could not be written where they were asked for.
    #[error("cannot write the answer from {url}: {source}")]
    Write {
        /// The URL requested.
        url: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The server URL is not a valid http(s) URL.
    #[error("invalid server URL {0:?}: expected e.g. http://127.0.0.1:8080")]
    BadUrl(String),
    /// The CA certificate to trust is not a PEM certificate.
    #[error(
        "the CA certificate is not usable ({0}); pass the project's PEM file (-----BEGIN CERTIFICATE-----)"
    )]
    BadCaCert(String),
}

impl ApiError {
    /// True when trying again later may succeed (server unreachable, overloaded, restarting).
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::Transport { .. } => true,
            ApiError::Server { status, code, .. } => {
                *status >= 500 || matches!(code, ErrorCode::RateLimited | ErrorCode::Unavailable)
            }
            ApiError::Decode { .. }
            | ApiError::TooLarge { .. }
            | ApiError::Write { .. }
            | ApiError::BadUrl(_)
            | ApiError::BadCaCert(_) => false,
        }
    }

    /// Whether the server refused the token itself (unknown, revoked or expired).
    pub fn is_unauthorized(&self) -> bool {
        matches!(
            self,
            ApiError::Server {
                code: ErrorCode::Unauthorized,
                ..
            }
        )
    }
}

/// A client of one server, optionally with a bearer token.
#[derive(Debug, Clone)]
pub struct ApiClient {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

impl ApiClient {
    /// A client of the server at `base_url` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base_url: &str, token: Option<String>) -> Result<Self, ApiError> {
        Self::trusting(base_url, token, None)
    }

    /// [`ApiClient::new`], also trusting the CA certificates in `ca_pem` (a project that signs
    /// its server's certificate with its own CA) besides the usual public roots.
    pub fn trusting(
        base_url: &str,
        token: Option<String>,
        ca_pem: Option<&[u8]>,
    ) -> Result<Self, ApiError> {
        let parsed =
            url::Url::parse(base_url).map_err(|_| ApiError::BadUrl(base_url.to_owned()))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(ApiError::BadUrl(base_url.to_owned()));
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("musketeer/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = ca_pem {
            let roots = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| ApiError::BadCaCert(e.to_string()))?;
            if roots.is_empty() {
                return Err(ApiError::BadCaCert("no certificate in it".into()));
            }
            for root in roots {
                builder = builder.add_root_certificate(root);
            }
        }
        let http = builder.build().map_err(|source| ApiError::Transport {
            url: base_url.to_owned(),
            source,
        })?;
        Ok(Self {
            base: base_url.trim_end_matches('/').to_owned(),
            http,
            token,
        })
    }

    /// The same server with another token.
    pub fn with_token(&self, token: String) -> Self {
        Self {
            token: Some(token),
            ..self.clone()
        }
    }

    /// The server's base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `GET /api/v1/project`.
    pub async fn project(&self) -> Result<ProjectInfo, ApiError> {
        self.get_capped(paths::PROJECT, MAX_SMALL_ANSWER_BYTES)
            .await
    }

    /// `POST /api/v1/hosts/register`.
    pub async fn register(
        &self,
        request: &RegisterHostRequest,
    ) -> Result<RegisterHostResponse, ApiError> {
        self.post_json(paths::HOSTS_REGISTER, request, REQUEST_TIMEOUT)
            .await
    }

    /// `POST /api/v1/work/fetch`; waits up to `request.wait_ms` for work. Each assignment is
    /// decoded on its own: one that cannot be decoded or breaks the input limits is returned as
    /// an error of that assignment, not of the whole answer.
    pub async fn fetch(&self, request: &FetchRequest) -> Result<FetchAnswer, ApiError> {
        let wait = Duration::from_millis(request.wait_ms.unwrap_or(0));
        let url = self.url(paths::WORK_FETCH);
        let response = self
            .send(
                self.http.post(&url).json(request),
                &url,
                REQUEST_TIMEOUT + wait,
            )
            .await?;
        // Sized by the slots asked for: a one-slot volunteer never buffers a 64-slot answer.
        let max = fetch_answer_cap(request.free_slots);
        let bytes = read_capped(response, &url, max).await?;
        crate::fetch_answer::decode(&bytes).map_err(|e| ApiError::Decode {
            url,
            message: e.to_string(),
        })
    }

    /// `POST /api/v1/work/report`.
    pub async fn report(&self, request: &ReportRequest) -> Result<ReportResponse, ApiError> {
        self.post_json(paths::WORK_REPORT, request, REQUEST_TIMEOUT)
            .await
    }

    /// `GET /api/v1/modules/{sha256}`: the module's bytes, refused past `max_bytes` (the size
    /// its signed manifest names).
    pub async fn module(&self, sha256: &str, max_bytes: u64) -> Result<Vec<u8>, ApiError> {
        let url = self.url(&paths::module(sha256));
        let response = self
            .send(self.http.get(&url), &url, Duration::from_secs(300))
            .await?;
        let max = usize::try_from(max_bytes).unwrap_or(usize::MAX);
        read_capped(response, &url, max).await
    }

    /// `POST /api/v1/apps`.
    pub async fn publish(&self, request: &PublishRequest) -> Result<PublishResponse, ApiError> {
        self.post_json(paths::APPS, request, Duration::from_secs(300))
            .await
    }

    /// `POST /api/v1/batches`.
    pub async fn submit(
        &self,
        request: &SubmitBatchRequest,
    ) -> Result<SubmitBatchResponse, ApiError> {
        self.post_json(paths::BATCHES, request, Duration::from_secs(300))
            .await
    }

    /// `GET /api/v1/batches/{id}`.
    pub async fn batch_status(&self, id: BatchId) -> Result<BatchStatus, ApiError> {
        self.get_json(&paths::batch(id)).await
    }

    /// `GET /api/v1/hosts`.
    pub async fn hosts(&self) -> Result<HostList, ApiError> {
        self.get_json(paths::HOSTS).await
    }

    /// `POST /api/v1/hosts/{id}/ban` (admin).
    pub async fn ban_host(&self, id: HostId, reason: &str) -> Result<HostSummary, ApiError> {
        let body = BanRequest {
            reason: reason.to_owned(),
        };
        self.post_json(&paths::host_ban(id), &body, REQUEST_TIMEOUT)
            .await
    }

    /// `POST /api/v1/hosts/{id}/unban` (admin).
    pub async fn unban_host(&self, id: HostId) -> Result<HostSummary, ApiError> {
        self.post_json(
            &paths::host_unban(id),
            &serde_json::json!({}),
            REQUEST_TIMEOUT,
        )
        .await
    }

    /// `GET /api/v1/tokens` (admin).
    pub async fn tokens(&self) -> Result<TokenList, ApiError> {
        self.get_json(paths::TOKENS).await
    }

    /// `DELETE /api/v1/tokens/{id}` (admin): answered once the revocation is durable.
    pub async fn revoke_token(&self, id: TokenId) -> Result<(), ApiError> {
        let url = self.url(&paths::token(id));
        self.send(self.http.delete(&url), &url, REQUEST_TIMEOUT)
            .await
            .map(drop)
    }

    /// `GET /api/v1/batches/{id}?wait_ms=N[&after=TAG]`: answered as soon as the batch is
    /// finished or cancelled, its progress tag differs from `after` (if given), or `wait` passes
    /// (the server may cap it).
    pub async fn wait_batch_status(
        &self,
        id: BatchId,
        wait: Duration,
        after: Option<&str>,
    ) -> Result<BatchStatus, ApiError> {
        let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        let url = self.url(&paths::batch_wait(id, wait_ms, after));
        let response = self
            .send(self.http.get(&url), &url, REQUEST_TIMEOUT + wait)
            .await?;
        decode(response, url, MAX_VIEW_ANSWER_BYTES).await
    }

    /// `GET /api/v1/batches/{id}/results?after=CURSOR&wait_ms=N`: the units finished since
    /// `cursor`, answered as soon as there is one, the batch ends, or `wait` passes.
    pub async fn results_page(
        &self,
        id: BatchId,
        cursor: &str,
        wait: Duration,
    ) -> Result<ResultsPage, ApiError> {
        let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        let url = self.url(&paths::batch_results_page(id, cursor, wait_ms));
        let response = self
            .send(self.http.get(&url), &url, REQUEST_TIMEOUT + wait)
            .await?;
        decode(response, url, MAX_VIEW_ANSWER_BYTES).await
    }

    /// `POST /api/v1/batches/{id}/cancel`.
    pub async fn cancel_batch(&self, id: BatchId) -> Result<BatchStatus, ApiError> {
        self.post_json(
            &paths::batch_cancel(id),
            &serde_json::json!({}),
            REQUEST_TIMEOUT,
        )
        .await
    }

    /// `DELETE /api/v1/batches/{id}`: a finished or cancelled batch and its units.
    pub async fn delete_batch(&self, id: BatchId) -> Result<DeleteBatchResponse, ApiError> {
        let url = self.url(&paths::batch(id));
        let response = self
            .send(self.http.delete(&url), &url, REQUEST_TIMEOUT)
            .await?;
        decode(response, url, MAX_SMALL_ANSWER_BYTES).await
    }

    /// `GET /api/v1/batches/{id}/results?format=..`, streamed into `out` as it arrives (a
    /// batch's results may be larger than memory). Returns the bytes written.
    pub async fn batch_results(
        &self,
        id: BatchId,
        format: ResultsFormat,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<u64, ApiError> {
        self.stream_into(&paths::batch_results(id, format), out)
            .await
    }

    /// `GET` `path`, streaming the answer into `out` as it arrives; the bytes written.
    async fn stream_into(
        &self,
        path: &str,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<u64, ApiError> {
        let url = self.url(path);
        let mut response = self
            .send(self.http.get(&url), &url, Duration::from_secs(600))
            .await?;
        let mut written = 0u64;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|source| ApiError::Transport {
                url: url.clone(),
                source,
            })?
        {
            out.write_all(&chunk).map_err(|source| ApiError::Write {
                url: url.clone(),
                source,
            })?;
            written += chunk.len() as u64;
        }
        Ok(written)
    }

    /// `GET /api/v1/admin/backup` (admin): the store copy streamed into `out`. Returns the
    /// bytes written.
    pub async fn backup(&self, out: &mut (dyn std::io::Write + Send)) -> Result<u64, ApiError> {
        self.stream_into(paths::ADMIN_BACKUP, out).await
    }

    /// `GET` a JSON document at an API path (also for dashboard views such as `/api/v1/hosts`),
    /// read up to [`MAX_VIEW_ANSWER_BYTES`].
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        self.get_capped(path, MAX_VIEW_ANSWER_BYTES).await
    }

    async fn get_capped<T: DeserializeOwned>(&self, path: &str, max: usize) -> Result<T, ApiError> {
        let url = self.url(path);
        let response = self
            .send(self.http.get(&url), &url, REQUEST_TIMEOUT)
            .await?;
        decode(response, url, max).await
    }

    async fn post_json<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        timeout: Duration,
    ) -> Result<T, ApiError> {
        let url = self.url(path);
        let response = self
            .send(self.http.post(&url).json(body), &url, timeout)
            .await?;
        decode(response, url, MAX_SMALL_ANSWER_BYTES).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
        timeout: Duration,
    ) -> Result<reqwest::Response, ApiError> {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response =
            request
                .timeout(timeout)
                .send()
                .await
                .map_err(|source| ApiError::Transport {
                    url: url.to_owned(),
                    source,
                })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        // A broken or oversized error body still leaves the status to report.
        let bytes = read_capped(response, url, MAX_ERROR_ANSWER_BYTES)
            .await
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        Err(match serde_json::from_str::<ApiErrorBody>(&text) {
            Ok(body) => ApiError::Server {
                status: status.as_u16(),
                code: body.error,
                message: body.message,
            },
            Err(_) => ApiError::Server {
                status: status.as_u16(),
                code: ErrorCode::Unknown,
                message: format!(
                    "{status}: {}",
                    text.chars().take(200).collect::<String>().trim()
                ),
            },
        })
    }
}

async fn decode<T: DeserializeOwned>(
    response: reqwest::Response,
    url: String,
    max: usize,
) -> Result<T, ApiError> {
    let bytes = read_capped(response, &url, max).await?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::Decode {
        url,
        message: e.to_string(),
    })
}

/// Reads a whole answer body, refusing it as soon as it is known to exceed `max` bytes: from
/// its Content-Length before reading, else while streaming.
async fn read_capped(
    mut response: reqwest::Response,
    url: &str,
    max: usize,
) -> Result<Vec<u8>, ApiError> {
    let too_large = || ApiError::TooLarge {
        url: url.to_owned(),
        max: max as u64,
    };
    let announced = response.content_length();
    if announced.is_some_and(|len| len > max as u64) {
        return Err(too_large());
    }
    // Trust the announced length only as a hint for the first allocation, never past the cap.
    let mut body = Vec::with_capacity(
        announced
            .map_or(0, |len| len as usize)
            .min(max)
            .min(1 << 20),
    );
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|source| ApiError::Transport {
            url: url.to_owned(),
            source,
        })?
    {
        if body.len() + chunk.len() > max {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_urls() {
        for bad in ["", "localhost:8080", "ftp://x", "http://"] {
            assert!(
                matches!(ApiClient::new(bad, None), Err(ApiError::BadUrl(_))),
                "{bad}"
            );
        }
        let client = ApiClient::new("http://127.0.0.1:9/", None).unwrap();
        assert_eq!(client.base_url(), "http://127.0.0.1:9");
    }

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .self_signed(&ca_key)
            .unwrap();
        let url = "https://127.0.0.1:9";
        assert!(ApiClient::trusting(url, None, Some(ca.pem().as_bytes())).is_ok());
        for bad in [&b"not a certificate"[..], ca_key.serialize_pem().as_bytes()] {
            let error = ApiClient::trusting(url, None, Some(bad)).unwrap_err();
            assert!(matches!(error, ApiError::BadCaCert(_)), "{error}");
            assert!(error.to_string().contains("BEGIN CERTIFICATE"), "{error}");
        }
    }

    #[test]
    fn retryable_errors() {
        let server = |status, code| ApiError::Server {
            status,
            code,
            message: String::new(),
        };
        assert!(server(503, ErrorCode::Unavailable).is_retryable());
        assert!(server(429, ErrorCode::RateLimited).is_retryable());
        assert!(!server(401, ErrorCode::Unauthorized).is_retryable());
        assert!(!server(400, ErrorCode::InvalidJson).is_retryable());
    }
}
