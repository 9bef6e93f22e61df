//! The client address a standby passes on, and the secret that makes the active server trust
//! it. Each server that becomes active makes a fresh secret and stores it in the active row
//! (`musketeer_active`), where only its standbys (which read the database) find it; a header a
//! client sets itself is never trusted, nor is the plain `X-Forwarded-For`.

use std::net::IpAddr;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use subtle::ConstantTimeEq as _;

use crate::api::extract::ForwardedClient;

/// The address of the client a standby forwards a request for.
pub(super) const FORWARDED_FOR: HeaderName = HeaderName::from_static("x-musketeer-forwarded-for");

/// The active server's current forwarding secret, shown by a standby with [`FORWARDED_FOR`].
pub(super) const FORWARD_SECRET: HeaderName = HeaderName::from_static("x-musketeer-forward-secret");

/// The active server's epoch, on its answers to forwarded requests: a standby that sees another
/// epoch than the row it read reads the row again (the active server was replaced at the same
/// address, with a new secret).
pub(super) const ACTIVE_EPOCH: HeaderName = HeaderName::from_static("x-musketeer-active-epoch");

/// A fresh forwarding secret (256 random bits).
pub(super) fn new_secret() -> String {
    crate::domain::tokens::generate("mkf_")
}

/// On a standby: replace whatever forwarding headers the client sent with the client's own
/// address and the active server's `secret`.
pub(super) fn add_forwarded_client(headers: &mut HeaderMap, client: Option<IpAddr>, secret: &str) {
    headers.remove(FORWARDED_FOR);
    headers.remove(FORWARD_SECRET);
    let Some(client) = client else {
        return;
    };
    let (Ok(address), Ok(secret)) = (
        HeaderValue::from_str(&client.to_string()),
        HeaderValue::from_str(secret),
    ) else {
        return;
    };
    headers.insert(FORWARDED_FOR, address);
    headers.insert(FORWARD_SECRET, secret);
}

/// On the active server: take the forwarding headers off `request` and, if they show the
/// current `secret`, record the client address they name for [`crate::api::extract::ClientIp`]
/// (rate limits, network-distinct placement). Without the secret they are dropped unread.
/// Returns whether the request came through a standby (it showed a secret, current or not).
pub(super) fn take_forwarded_client(request: &mut Request, secret: &str) -> bool {
    let headers = request.headers_mut();
    let claimed = headers.remove(FORWARDED_FOR);
    let Some(shown) = headers.remove(FORWARD_SECRET) else {
        return false;
    };
    let Some(claimed) = claimed else {
        return true;
    };
    if !bool::from(shown.as_bytes().ct_eq(secret.as_bytes())) {
        tracing::debug!("a forwarded client address without the current secret: ignored");
        return true;
    }
    if let Some(client) = claimed
        .to_str()
        .ok()
        .and_then(|text| text.trim().parse::<IpAddr>().ok())
    {
        request.extensions_mut().insert(ForwardedClient(client));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&HeaderName, &str)]) -> Request {
        let mut request = Request::new(axum::body::Body::empty());
        for (name, value) in headers {
            request
                .headers_mut()
                .insert(*name, HeaderValue::from_str(value).unwrap());
        }
        request
    }

    #[test]
    fn only_the_current_secret_makes_the_forwarded_address_trusted() {
        let secret = new_secret();
        let cases = [
            (
                secret.as_str(),
                Some("203.0.113.7".parse::<IpAddr>().unwrap()),
            ),
            ("mkf_wrong", None),
            ("", None),
        ];
        for (shown, trusted) in cases {
            let mut request = request(&[(&FORWARDED_FOR, "203.0.113.7"), (&FORWARD_SECRET, shown)]);
            assert!(take_forwarded_client(&mut request, &secret));
            assert_eq!(
                request.extensions().get::<ForwardedClient>().map(|f| f.0),
                trusted,
                "secret shown: {shown:?}"
            );
            assert!(request.headers().get(&FORWARDED_FOR).is_none());
            assert!(request.headers().get(&FORWARD_SECRET).is_none());
        }
        let mut unparsable = request(&[
            (&FORWARDED_FOR, "not an address"),
            (&FORWARD_SECRET, &secret),
        ]);
        assert!(take_forwarded_client(&mut unparsable, &secret));
        let mut direct = request(&[(&FORWARDED_FOR, "203.0.113.7")]);
        assert!(!take_forwarded_client(&mut direct, &secret));
        assert!(direct.extensions().get::<ForwardedClient>().is_none());
        assert!(direct.headers().get(&FORWARDED_FOR).is_none());
        assert!(unparsable.extensions().get::<ForwardedClient>().is_none());
    }

    #[test]
    fn a_standby_replaces_forged_forwarding_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(FORWARDED_FOR, HeaderValue::from_static("198.51.100.1"));
        headers.insert(FORWARD_SECRET, HeaderValue::from_static("mkf_forged"));
        add_forwarded_client(&mut headers, Some("192.0.2.9".parse().unwrap()), "mkf_real");
        assert_eq!(headers[&FORWARDED_FOR], "192.0.2.9");
        assert_eq!(headers[&FORWARD_SECRET], "mkf_real");
        add_forwarded_client(&mut headers, None, "mkf_real");
        assert!(headers.get(&FORWARDED_FOR).is_none());
    }
}
