//! The HTTP GET behind the task's `http-get` import: allowlist and address checks on every hop,
//! a per-request timeout, a response size cap, and no proxies or ambient configuration.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, LOCATION};

use super::bandwidth::Bandwidth;
use super::policy::{Allowlist, Denied, is_public};

/// Limits of the HTTP import that the volunteer's client sets (not the task author).
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Deadline for one request, from connect to the last body byte (each redirect hop anew).
    pub request_timeout: Duration,
    /// Largest response body accepted.
    pub max_response_bytes: u64,
    /// Requests one run may make (redirect hops count).
    pub max_requests_per_run: u32,
    /// Redirect hops followed for one request.
    pub max_redirects: u32,
    /// The volunteer's cap on the bandwidth of all tasks' reads together (`None`: none).
    pub bandwidth: Option<Bandwidth>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            max_response_bytes: 16 * 1024 * 1024,
            max_requests_per_run: 64,
            max_redirects: 5,
            bandwidth: None,
        }
    }
}

/// Why an HTTP GET of a task did not complete; maps one-to-one onto the WIT `http-error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// Refused by the allowlist or the address rules.
    #[error("denied: {0}")]
    Denied(String),
    /// The request took longer than the per-request timeout.
    #[error("timed out")]
    Timeout,
    /// The response body is larger than the cap (bytes).
    #[error("response larger than {0} bytes")]
    TooLarge(u64),
    /// The run used up its request budget.
    #[error("request budget of the run is used up")]
    TooManyRequests,
    /// Transport or protocol failure.
    #[error("failed: {0}")]
    Failed(String),
}

impl From<Denied> for FetchError {
    fn from(denied: Denied) -> Self {
        FetchError::Denied(denied.to_string())
    }
}

/// A completed exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchResponse {
    /// HTTP status code.
    pub status: u16,
    /// Response headers, values decoded lossily.
    pub headers: Vec<(String, String)>,
    /// The whole body (at most the cap).
    pub body: Vec<u8>,
}

/// The request budget of one run.
#[derive(Debug)]
pub struct RequestBudget {
    remaining: u32,
}

impl RequestBudget {
    /// A budget of `n` requests.
    pub fn new(n: u32) -> Self {
        Self { remaining: n }
    }

    fn take(&mut self) -> Result<(), FetchError> {
        self.remaining = self
            .remaining
            .checked_sub(1)
            .ok_or(FetchError::TooManyRequests)?;
        Ok(())
    }
}

/// Shared HTTP client for all sandboxed runs of this process.
#[derive(Clone)]
pub struct HttpFetcher {
    client: reqwest::Client,
    config: HttpConfig,
}

impl std::fmt::Debug for HttpFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpFetcher")
            .field("config", &self.config)
            .finish()
    }
}

/// Request headers a task may not set: they would change framing, the target or the proxying.
const FORBIDDEN_REQUEST_HEADERS: &[&str] = &[
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "proxy-connection",
    "keep-alive",
];
const MAX_REQUEST_HEADERS: usize = 32;
const MAX_REQUEST_HEADER_BYTES: usize = 8 * 1024;

impl HttpFetcher {
    /// Builds the client: no redirects (followed here, re-checked), no proxies from the
    /// environment, and a resolver that only ever yields public addresses.
    pub fn new(config: HttpConfig) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(PublicOnlyResolver))
            .connect_timeout(config.request_timeout)
            .user_agent(concat!("musketeer/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { client, config })
    }

    /// The limits in force.
    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    /// GET `url` for a task, following redirects that stay inside the allowlist.
    pub async fn get(
        &self,
        allowlist: &Allowlist,
        budget: &mut RequestBudget,
        url: &str,
        headers: &[(String, String)],
    ) -> Result<FetchResponse, FetchError> {
        let headers = request_headers(headers)?;
        let mut target = allowlist.check(url)?;
        for _hop in 0..=self.config.max_redirects {
            budget.take()?;
            if target.literal_ip.is_none() {
                check_resolution(&target.url).await?;
            }
            let response = tokio::time::timeout(
                self.config.request_timeout,
                self.one_hop(target.url.clone(), headers.clone()),
            )
            .await
            .map_err(|_| FetchError::Timeout)??;
            match response {
                Hop::Done(done) => return Ok(done),
                Hop::Redirect(location) => {
                    let next = target
                        .url
                        .join(&location)
                        .map_err(|e| FetchError::Failed(format!("bad redirect location: {e}")))?;
                    target = allowlist.check(next.as_str())?;
                }
            }
        }
        Err(FetchError::Failed(format!(
            "more than {} redirects",
            self.config.max_redirects
        )))
    }

    async fn one_hop(&self, url: url::Url, headers: HeaderMap) -> Result<Hop, FetchError> {
        let mut response = self
            .client
            .get(url)
            .headers(headers)
            .send()
            .await
            .map_err(describe)?;
        let status = response.status();
        if status.is_redirection()
            && let Some(location) = response.headers().get(LOCATION)
        {
            let location = location
                .to_str()
                .map_err(|_| FetchError::Failed("redirect location is not ASCII".into()))?;
            return Ok(Hop::Redirect(location.to_owned()));
        }
        let cap = self.config.max_response_bytes;
        if response.content_length().is_some_and(|len| len > cap) {
            return Err(FetchError::TooLarge(cap));
        }
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(describe)? {
            if body.len() as u64 + chunk.len() as u64 > cap {
                return Err(FetchError::TooLarge(cap));
            }
            body.extend_from_slice(&chunk);
            // Bandwidth hook: past the volunteer's cap, the read waits.
            if let Some(bandwidth) = &self.config.bandwidth {
                bandwidth.take(chunk.len()).await;
            }
        }
        Ok(Hop::Done(FetchResponse {
            status: status.as_u16(),
            headers,
            body,
        }))
    }
}

enum Hop {
    Done(FetchResponse),
    Redirect(String),
}

fn request_headers(pairs: &[(String, String)]) -> Result<HeaderMap, FetchError> {
    let total: usize = pairs.iter().map(|(n, v)| n.len() + v.len()).sum();
    if pairs.len() > MAX_REQUEST_HEADERS || total > MAX_REQUEST_HEADER_BYTES {
        return Err(FetchError::Failed(
            "too many or too large request headers".into(),
        ));
    }
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| FetchError::Failed(format!("invalid header name `{name}`")))?;
        if FORBIDDEN_REQUEST_HEADERS.contains(&name.as_str()) || name.as_str().starts_with("proxy-")
        {
            return Err(FetchError::Denied(format!(
                "header `{name}` may not be set by a task"
            )));
        }
        let value = HeaderValue::from_str(value)
            .map_err(|_| FetchError::Failed(format!("invalid value for header `{name}`")))?;
        map.append(name, value);
    }
    Ok(map)
}

/// Resolves the host once up front so that a refusal is reported as `denied` with the reason;
/// the client's own resolver repeats the filter, so a rebinding answer cannot slip through.
async fn check_resolution(url: &url::Url) -> Result<(), FetchError> {
    let host = url.host_str().unwrap_or_default().to_owned();
    let port = url.port_or_known_default().unwrap_or(80);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| FetchError::Failed(format!("cannot resolve {host}: {e}")))?
        .collect();
    if let Some(bad) = addrs.iter().map(SocketAddr::ip).find(|ip| !is_public(*ip)) {
        return Err(Denied::NonPublicAddress { host, addr: bad }.into());
    }
    if addrs.is_empty() {
        return Err(FetchError::Failed(format!("{host} has no addresses")));
    }
    Ok(())
}

/// A resolver that drops every non-public address, so names can never lead to the LAN.
struct PublicOnlyResolver;

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let public: Vec<SocketAddr> = found.filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(format!("{} has no public address", name.as_str()).into());
            }
            let addrs: Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

fn describe(error: reqwest::Error) -> FetchError {
    if error.is_timeout() {
        return FetchError::Timeout;
    }
    // The chain carries the useful part (connection refused, TLS failure, ...).
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    FetchError::Failed(text)
}
