//! Where replicas of one unit may go: to hosts of different networks and different owners, as
//! the server sees them, so that one party running many hosts from one place cannot collect
//! every copy of a unit and agree with itself.

use std::net::IpAddr;

use musketeer_protocol::{HostId, TokenId, UnitId};
use serde::{Deserialize, Serialize};

/// How hosts are grouped into networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkRule {
    /// Leading bits of an IPv4 address that name its network (0: IPv4 hosts are not grouped).
    pub ipv4_prefix: u8,
    /// Leading bits of an IPv6 address that name its network (0: IPv6 hosts are not grouped).
    pub ipv6_prefix: u8,
}

impl Default for NetworkRule {
    /// A /24 in IPv4 and a /48 in IPv6: what one household or small site usually gets.
    fn default() -> Self {
        Self {
            ipv4_prefix: 24,
            ipv6_prefix: 48,
        }
    }
}

impl NetworkRule {
    /// The network a peer address belongs to, or `None` when it is not grouped: loopback peers
    /// (a local cluster, the tests) all share one address, and the rule would leave them no
    /// pair of hosts to replicate with.
    pub fn network_of(&self, ip: IpAddr) -> Option<String> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if ip.is_loopback() || ip.is_unspecified() {
            return None;
        }
        match ip {
            IpAddr::V4(v4) if self.ipv4_prefix > 0 => {
                let bits = u32::from(self.ipv4_prefix.min(32));
                let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                let network = std::net::Ipv4Addr::from(u32::from(v4) & mask);
                Some(format!("{network}/{bits}"))
            }
            IpAddr::V6(v6) if self.ipv6_prefix > 0 => {
                let bits = u32::from(self.ipv6_prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                let network = std::net::Ipv6Addr::from(u128::from(v6) & mask);
                Some(format!("{network}/{bits}"))
            }
            _ => None,
        }
    }
}

/// Who a host belongs to and where it connects from, as far as the server can tell.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Origin {
    /// The network of its last address (see [`NetworkRule::network_of`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// The user token it registered with, if any: hosts register openly, so this is the only
    /// owner the server can vouch for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<TokenId>,
}

impl Origin {
    /// Whether replicas of one unit must not go to both hosts.
    pub fn conflicts_with(&self, other: &Origin) -> bool {
        let same_network = self.network.is_some() && self.network == other.network;
        let same_owner = self.owner.is_some() && self.owner == other.owner;
        same_network || same_owner
    }
}

/// A pseudo-random sort key of `unit` for one fetch of `host` at `now_ms` (SplitMix64 of the
/// three): deterministic, so a world replays the same way, and different for each host.
pub fn scatter(host: HostId, now_ms: u64, unit: UnitId) -> u64 {
    let mut z = host.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ now_ms.rotate_left(21)
        ^ unit.0.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_group_by_prefix_and_loopback_is_never_grouped() {
        let rule = NetworkRule::default();
        let net = |s: &str| rule.network_of(s.parse().unwrap());
        assert_eq!(net("203.0.113.7"), Some("203.0.113.0/24".into()));
        assert_eq!(net("203.0.113.7"), net("203.0.113.200"));
        assert_ne!(net("203.0.113.7"), net("203.0.114.7"));
        assert_eq!(net("2001:db8:1:2::5"), Some("2001:db8:1::/48".into()));
        assert_eq!(net("::ffff:203.0.113.9"), net("203.0.113.7"));
        assert_eq!(net("127.0.0.1"), None);
        assert_eq!(net("::1"), None);
        let off = NetworkRule {
            ipv4_prefix: 0,
            ipv6_prefix: 0,
        };
        assert_eq!(off.network_of("203.0.113.7".parse().unwrap()), None);
    }

    #[test]
    fn origins_conflict_on_a_shared_network_or_owner_only() {
        let a = Origin {
            network: Some("n1".into()),
            owner: Some(TokenId(1)),
        };
        let same_net = Origin {
            network: Some("n1".into()),
            owner: None,
        };
        let same_owner = Origin {
            network: Some("n2".into()),
            owner: Some(TokenId(1)),
        };
        assert!(a.conflicts_with(&same_net));
        assert!(a.conflicts_with(&same_owner));
        assert!(!a.conflicts_with(&Origin::default()));
        assert!(!Origin::default().conflicts_with(&Origin::default()));
    }
}
