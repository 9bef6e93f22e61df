//! Safe wrappers over the `musketeer:task/host` imports.

use core::fmt;

/// A completed HTTP exchange. Any status counts as completed, including 4xx and 5xx.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    /// The HTTP status code of the final response (after redirects the host followed).
    pub status: u16,
    /// Response headers in the order received; names as sent by the server.
    pub headers: Vec<(String, String)>,
    /// The response body, at most the manifest's per-response cap.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// True for a 2xx status.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first header with this name, compared ASCII case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str, core::str::Utf8Error> {
        core::str::from_utf8(&self.body)
    }
}

/// Why the host did not complete an HTTP GET.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpError {
    /// The URL, or an address it resolved to, is not allowed by the manifest.
    Denied(String),
    /// The request did not complete within the host's per-request timeout.
    Timeout,
    /// The response body exceeded the host's per-response cap (bytes).
    TooLarge(u64),
    /// The per-run request budget is used up.
    TooManyRequests,
    /// Transport failure (DNS, connection, TLS, protocol), or no host at all (native build).
    Failed(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Denied(reason) => write!(f, "request denied by the host: {reason}"),
            Self::Timeout => f.write_str("request timed out"),
            Self::TooLarge(cap) => write!(f, "response larger than the {cap}-byte cap"),
            Self::TooManyRequests => f.write_str("request budget for this run used up"),
            Self::Failed(reason) => write!(f, "request failed: {reason}"),
        }
    }
}

impl std::error::Error for HttpError {}

/// GETs `url` through the host with the given request headers.
///
/// The host allows only URLs on the manifest's allowlist, follows redirects (re-checking each
/// hop), and enforces a per-request timeout, a response size cap and a per-run request budget.
/// On a non-`wasm32` build there is no host and every call returns [`HttpError::Failed`].
pub fn http_get(url: &str, headers: &[(&str, &str)]) -> Result<HttpResponse, HttpError> {
    imp::http_get(url, headers)
}

/// Reports progress as a fraction in `[0, 1]`. The host may ignore out-of-range values.
pub fn progress(fraction: f64) {
    imp::progress(fraction);
}

/// Adds one line to the run's log (the host caps the log's size).
pub fn log(line: &str) {
    imp::log(line);
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::{HttpError, HttpResponse};
    use crate::__private::bindings::musketeer::task::host as wit;

    pub fn http_get(url: &str, headers: &[(&str, &str)]) -> Result<HttpResponse, HttpError> {
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        match wit::http_get(url, &headers) {
            Ok(r) => Ok(HttpResponse {
                status: r.status,
                headers: r.headers,
                body: r.body,
            }),
            Err(wit::HttpError::Denied(reason)) => Err(HttpError::Denied(reason)),
            Err(wit::HttpError::Timeout) => Err(HttpError::Timeout),
            Err(wit::HttpError::TooLarge(cap)) => Err(HttpError::TooLarge(cap)),
            Err(wit::HttpError::TooManyRequests) => Err(HttpError::TooManyRequests),
            Err(wit::HttpError::Failed(reason)) => Err(HttpError::Failed(reason)),
        }
    }

    pub fn progress(fraction: f64) {
        wit::progress(fraction);
    }

    pub fn log(line: &str) {
        wit::log(line);
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::{HttpError, HttpResponse};

    pub fn http_get(_url: &str, _headers: &[(&str, &str)]) -> Result<HttpResponse, HttpError> {
        Err(HttpError::Failed(
            "no musketeer host: http_get works only inside the wasm32-wasip2 sandbox".to_owned(),
        ))
    }

    pub fn progress(_fraction: f64) {}

    // Native builds run in tests: keep the line visible there.
    pub fn log(line: &str) {
        eprintln!("[task log] {line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lookup_ignores_case() {
        let r = HttpResponse {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: b"{}".to_vec(),
        };
        assert!(r.is_success());
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("x-missing"), None);
        assert_eq!(r.text(), Ok("{}"));
    }

    #[test]
    fn native_build_has_no_host() {
        let err = http_get("https://example.org/", &[]).unwrap_err();
        assert!(matches!(err, HttpError::Failed(_)));
        assert!(
            err.to_string()
                .starts_with("request failed: no musketeer host")
        );
    }
}
