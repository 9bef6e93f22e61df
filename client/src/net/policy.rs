//! Which URLs and addresses a task may reach: the manifest's allowlist, checked on parsed URLs,
//! and the rule that resolved addresses must be public unless the allowlist names the IP literal.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// Why a URL or an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Denied {
    /// The text is not an absolute URL.
    #[error("not a valid URL: {0}")]
    InvalidUrl(String),
    /// Only http and https are ever reachable.
    #[error("scheme `{0}` is not allowed")]
    Scheme(String),
    /// Userinfo (`user:pass@`) could disguise the real host, so it is refused outright.
    #[error("URLs with user info are not allowed")]
    UserInfo,
    /// No allowlist entry matches scheme, host, port and path prefix.
    #[error("{0} is not in the manifest's HTTP allowlist")]
    NotAllowed(String),
    /// The path spells a separator or a dot segment in a way servers decode differently
    /// (`%2f`, `%5c`, `%2e`, `%00`, `%25`, a backslash), so what the server serves could lie
    /// outside the prefix that was checked.
    #[error("{0} has an ambiguous path encoding (%2f, %5c, %2e, %00, %25 or \\)")]
    AmbiguousPath(String),
    /// The host resolved only to addresses that tasks may not reach.
    #[error("{host} resolves to a non-public address ({addr})")]
    NonPublicAddress {
        /// The host name as written in the URL.
        host: String,
        /// The first refused address.
        addr: IpAddr,
    },
}

/// One allowlist entry: scheme, host and port must match exactly; the path must be
/// `path_prefix` or lie below it, segment by segment.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowEntry {
    scheme: String,
    host: Host<String>,
    port: u16,
    /// The entry's path without its trailing `/` (empty for the root).
    path_prefix: String,
}

impl AllowEntry {
    /// `/a/b` covers `/a/b`, `/a/b/` and `/a/b/c`, never `/a/bc`.
    fn covers(&self, path: &str) -> bool {
        match path.strip_prefix(&self.path_prefix) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }
}

/// The HTTP allowlist of one manifest, parsed once.
#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    entries: Vec<AllowEntry>,
}

/// An allowed URL and whether its host is an IP literal that the allowlist names explicitly
/// (the only way a non-public address may be reached).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedTarget {
    /// The parsed URL.
    pub url: Url,
    /// The IP literal the allowlist names, if the URL's host is one.
    pub literal_ip: Option<IpAddr>,
}

impl Allowlist {
    /// Parses the manifest's URL prefixes; an unparsable prefix is an error (the manifest is bad).
    pub fn new(prefixes: &[String]) -> Result<Self, Denied> {
        let mut entries = Vec::with_capacity(prefixes.len());
        for prefix in prefixes {
            let url = parse_checked(prefix)?;
            check_path_encoding(prefix, &url)?;
            let Some(host) = url.host() else {
                return Err(Denied::InvalidUrl(prefix.clone()));
            };
            let port = url
                .port_or_known_default()
                .ok_or_else(|| Denied::InvalidUrl(prefix.clone()))?;
            entries.push(AllowEntry {
                scheme: url.scheme().to_owned(),
                host: host.to_owned(),
                port,
                path_prefix: url.path().trim_end_matches('/').to_owned(),
            });
        }
        Ok(Self { entries })
    }

    /// Checks a URL the task asked for. The URL is parsed with a WHATWG parser, so case, IP
    /// spellings (`0x7f.1`, `2130706433`) and dot segments are normalised before comparison;
    /// encodings a server might decode into a separator or a dot segment after that are refused.
    pub fn check(&self, raw: &str) -> Result<AllowedTarget, Denied> {
        let url = parse_checked(raw)?;
        check_path_encoding(raw, &url)?;
        let host = url
            .host()
            .ok_or_else(|| Denied::InvalidUrl(raw.to_owned()))?
            .to_owned();
        let port = url
            .port_or_known_default()
            .ok_or_else(|| Denied::InvalidUrl(raw.to_owned()))?;
        let matched = self.entries.iter().any(|entry| {
            entry.scheme == url.scheme()
                && entry.host == host
                && entry.port == port
                && entry.covers(url.path())
        });
        if !matched {
            return Err(Denied::NotAllowed(redact(&url)));
        }
        let literal_ip = match host {
            Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
            Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
            Host::Domain(_) => None,
        };
        Ok(AllowedTarget { url, literal_ip })
    }
}

fn parse_checked(raw: &str) -> Result<Url, Denied> {
    let url = Url::parse(raw).map_err(|e| Denied::InvalidUrl(format!("{raw}: {e}")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(Denied::Scheme(url.scheme().to_owned()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Denied::UserInfo);
    }
    Ok(url)
}

/// Percent-escapes of the path that a server may decode before (or without) normalising, turning
/// `/prefix/..%2fsecret` into `/secret`: separators, dots, NUL and a second round of encoding.
const AMBIGUOUS_ESCAPES: [&str; 5] = ["%2f", "%5c", "%2e", "%00", "%25"];

/// Refuses a path a server could read differently from this check (see [`AMBIGUOUS_ESCAPES`]).
/// `raw` is checked for backslashes, which the parser turns into `/` but a server might not.
fn check_path_encoding(raw: &str, url: &Url) -> Result<(), Denied> {
    let path = url.path().to_ascii_lowercase();
    let before_query = raw.split(['?', '#']).next().unwrap_or_default();
    if before_query.contains('\\') || AMBIGUOUS_ESCAPES.iter().any(|escape| path.contains(escape)) {
        return Err(Denied::AmbiguousPath(redact(url)));
    }
    Ok(())
}

/// The URL without its query, for error messages (queries may carry tokens).
fn redact(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

/// True for addresses a task may reach after resolving a host name: public unicast only.
/// Loopback, private, link-local (which holds the 169.254.169.254 metadata service), shared,
/// multicast, reserved, documentation and IPv6 forms that embed such IPv4 addresses are refused.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let forbidden = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..=127).contains(&b)) // shared address space (CGNAT, some metadata)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240; // reserved
    !forbidden
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return is_public_v4(v4);
    }
    let seg0 = ip.segments()[0];
    let forbidden = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (seg0 & 0xfe00) == 0xfc00 // unique local (holds AWS fd00:ec2::254)
        || (seg0 & 0xffc0) == 0xfe80 // link-local
        || (seg0 & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (seg0 == 0x2001 && ip.segments()[1] == 0x0db8) // documentation
        || seg0 == 0x2001 && ip.segments()[1] == 0; // Teredo tunnels
    !forbidden
}

/// IPv4 addresses hidden inside IPv6 forms: mapped, compatible, NAT64 and 6to4.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    if s[..6] == [0, 0, 0, 0, 0, 0] && !ip.is_loopback() && !ip.is_unspecified() {
        return Some(tail); // IPv4-compatible (deprecated)
    }
    if s[0] == 0x64 && s[1] == 0xff9b {
        return Some(tail); // NAT64
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(prefixes: &[&str]) -> Allowlist {
        Allowlist::new(&prefixes.iter().map(|p| p.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn exact_scheme_host_port_and_path_prefix() {
        let list = allow(&["https://www.twse.com.tw/rwd/", "http://127.0.0.1:8080/"]);
        for ok in [
            "https://www.twse.com.tw/rwd/zh/afterTrading/STOCK_DAY?date=20160501",
            "https://WWW.TWSE.COM.TW/rwd/x",
            "https://www.twse.com.tw:443/rwd/x",
            "http://127.0.0.1:8080/anything",
            "http://0x7f.0.0.1:8080/", // same IP, other spelling
            "http://2130706433:8080/",
        ] {
            assert!(list.check(ok).is_ok(), "{ok} should be allowed");
        }
        for bad in [
            "http://www.twse.com.tw/rwd/x",             // scheme
            "https://www.twse.com.tw:8443/rwd/x",       // port
            "https://www.twse.com.tw/other",            // path prefix
            "https://www.twse.com.tw/rwd/../other",     // dot segments resolved first
            "https://www.twse.com.tw/rwd/%2e%2e/other", // encoded dot segments too
            "https://www.twse.com.tw./rwd/x",           // trailing dot is another name
            "https://evil.twse.com.tw/rwd/x",
            "https://www.twse.com.tw.evil.example/rwd/x",
            "http://127.0.0.1:8081/",
            "http://[::1]:8080/",
            "http://[::ffff:127.0.0.1]:8080/",
            "http://169.254.169.254/latest/meta-data/",
            "http://localhost:8080/",
        ] {
            assert!(
                matches!(list.check(bad), Err(Denied::NotAllowed(_))),
                "{bad} should be denied"
            );
        }
    }

    #[test]
    fn prefixes_match_whole_segments() {
        let list = allow(&["http://h.example/prefix", "http://h.example/dir/"]);
        for ok in [
            "http://h.example/prefix",
            "http://h.example/prefix/",
            "http://h.example/prefix/a/b?x=%2f",
            "http://h.example/dir",
            "http://h.example/dir/x",
            "http://h.example/dir/sub/../x", // normalised to /dir/x
        ] {
            assert!(list.check(ok).is_ok(), "{ok} should be allowed");
        }
        for bad in [
            "http://h.example/prefixEVIL",
            "http://h.example/prefix.json",
            "http://h.example/directory/x",
            "http://h.example/dir/../secret",
            "http://h.example/",
        ] {
            assert!(
                matches!(list.check(bad), Err(Denied::NotAllowed(_))),
                "{bad} should be denied"
            );
        }
        let root = allow(&["http://h.example/"]);
        assert!(root.check("http://h.example/anything/at/all").is_ok());
        assert!(root.check("http://h.example").is_ok());
    }

    #[test]
    fn ambiguous_encodings_are_refused_before_matching() {
        let list = allow(&["http://h.example/prefix/"]);
        for bad in [
            "http://h.example/prefix/..%2fsecret",
            "http://h.example/prefix/..%2Fsecret",
            "http://h.example/prefix/%2e%2e%2fsecret",
            "http://h.example/prefix/%2E%2E%2Fsecret",
            "http://h.example/prefix/..%5csecret",
            "http://h.example/prefix/..%5Csecret",
            "http://h.example/prefix/..\\secret",
            "http://h.example/prefix\\..\\secret",
            "http://h.example/prefix/a%2eb",
            "http://h.example/prefix/..%252fsecret",
            "http://h.example/prefix/x%00.txt",
        ] {
            assert!(
                matches!(list.check(bad), Err(Denied::AmbiguousPath(_))),
                "{bad} should be refused as ambiguous, got {:?}",
                list.check(bad)
            );
        }
        // Whole encoded dot segments are resolved by the parser itself, like `..`.
        assert!(matches!(
            list.check("http://h.example/prefix/%2e%2e/secret"),
            Err(Denied::NotAllowed(_))
        ));
        // An entry with such an encoding is a bad manifest.
        assert!(Allowlist::new(&["http://h.example/a%2fb/".to_owned()]).is_err());
    }

    #[test]
    fn userinfo_and_other_schemes_are_refused() {
        let list = allow(&["http://127.0.0.1:8080/"]);
        assert_eq!(
            list.check("http://127.0.0.1:8080@169.254.169.254/"),
            Err(Denied::UserInfo)
        );
        assert_eq!(
            list.check("http://user@127.0.0.1:8080/"),
            Err(Denied::UserInfo)
        );
        assert_eq!(
            list.check("file:///etc/passwd"),
            Err(Denied::Scheme("file".into()))
        );
        assert!(matches!(
            list.check("not a url"),
            Err(Denied::InvalidUrl(_))
        ));
    }

    #[test]
    fn literal_ip_is_reported_only_for_ip_hosts() {
        let list = allow(&["http://127.0.0.1:8080/", "https://example.org/"]);
        let ip = list.check("http://127.0.0.1:8080/x").unwrap();
        assert_eq!(ip.literal_ip, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert_eq!(
            list.check("https://example.org/x").unwrap().literal_ip,
            None
        );
    }

    #[test]
    fn non_public_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.100.100.200",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "2002:c0a8:0101::1",
            "ff02::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip} must not be public");
        }
        for ip in [
            "8.8.8.8",
            "210.69.1.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip} is public");
        }
    }
}
