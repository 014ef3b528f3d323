//! The SSRF guard: which addresses may be connected to, and a DNS resolver that enforces it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use hookline_core::transport::BoxError;
use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether `ip` is a publicly routable unicast address.
///
/// This is the default rule of the SSRF guard: an address for which this returns `false` is never
/// connected to unless it lies inside one of [`HttpConfig::allow_networks`](crate::HttpConfig).
///
/// Not public (IPv4): `0.0.0.0/8` (this network, unspecified), `10/8`, `100.64/10` (CGNAT),
/// `127/8` (loopback), `169.254/16` (link-local), `172.16/12`, `192.0.0/24` (IETF protocol
/// assignments), `192.0.2/24`, `198.51.100/24`, `203.0.113/24` (documentation), `192.88.99/24`
/// (6to4 relay anycast), `192.168/16`, `198.18/15` (benchmarking), `224/4` (multicast) and
/// `240/4` (reserved, including the broadcast address).
///
/// IPv6: only global unicast `2000::/3` can be public, minus `2001::/23` (IETF protocol
/// assignments, Teredo), `2001:db8::/32` and `3fff::/20` (documentation). Addresses that embed
/// an IPv4 address — IPv4-mapped `::ffff:0:0/96`, NAT64 `64:ff9b::/96` and 6to4 `2002::/16` — are
/// public exactly when the embedded IPv4 address is. Everything else (`::`, `::1`, `fc00::/7`,
/// `fe80::/10`, `fec0::/10`, `ff00::/8`, IPv4-compatible `::/96`, `100::/64`, …) is not.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !matches!(
        (a, b, c),
        (0, _, _)                           // "this network", unspecified
            | (10, _, _)                    // private
            | (100, 64..=127, _)            // CGNAT shared address space
            | (127, _, _)                   // loopback
            | (169, 254, _)                 // link-local
            | (172, 16..=31, _)             // private
            | (192, 0, 0)                   // IETF protocol assignments
            | (192, 0, 2)                   // TEST-NET-1
            | (192, 88, 99)                 // 6to4 relay anycast (deprecated)
            | (192, 168, _)                 // private
            | (198, 18..=19, _)             // benchmarking
            | (198, 51, 100)                // TEST-NET-2
            | (203, 0, 113)                 // TEST-NET-3
            | (224..=239, _, _)             // multicast
            | (240..=255, _, _) // reserved, broadcast
    )
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    // Only global unicast 2000::/3 is routable on the internet.
    if s[0] & 0xe000 != 0x2000 {
        return false;
    }
    !matches!(
        (s[0], s[1]),
        (0x2001, 0x0000..=0x01ff)   // 2001::/23 IETF protocol assignments (Teredo, ORCHID, …)
            | (0x2001, 0x0db8)      // 2001:db8::/32 documentation
            | (0x3fff, 0x0000..=0x0fff) // 3fff::/20 documentation (RFC 9637)
    )
}

/// The IPv4 address inside an IPv4-mapped, NAT64 (well-known prefix) or 6to4 address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let o = ip.octets();
    let tail = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    match s {
        // ::ffff:a.b.c.d
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(tail),
        // 64:ff9b::a.b.c.d
        [0x0064, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail),
        // 2002:aabb:ccdd::/48
        [0x2002, ..] => Some(Ipv4Addr::new(o[2], o[3], o[4], o[5])),
        _ => None,
    }
}

/// The rule the transport applies: public, or inside an allowed network.
#[derive(Debug, Clone, Default)]
pub(crate) struct AddressPolicy {
    allow: Arc<[IpNet]>,
}

impl AddressPolicy {
    pub(crate) fn new(allow: &[IpNet]) -> Self {
        Self {
            allow: allow.iter().map(IpNet::trunc).collect(),
        }
    }

    pub(crate) fn permits(&self, ip: IpAddr) -> bool {
        if is_public(ip) {
            return true;
        }
        let mapped = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.allow
            .iter()
            .any(|net| net.contains(&ip) || mapped.is_some_and(|m| net.contains(&m)))
    }
}

/// The resolver's error when a name resolves only to addresses the policy forbids.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves only to non-public addresses")]
pub(crate) struct BlockedHost {
    pub(crate) host: String,
}

/// A `reqwest` DNS resolver that resolves with tokio and drops every forbidden address, so the
/// check applies to the very addresses the connector dials (no DNS-rebinding gap).
#[derive(Debug, Clone)]
pub(crate) struct GuardedResolver {
    pub(crate) policy: AddressPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(resolve_guarded(
            self.policy.clone(),
            name.as_str().to_owned(),
        ))
    }
}

async fn resolve_guarded(policy: AddressPolicy, host: String) -> Result<Addrs, BoxError> {
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
    let total = resolved.len();
    let allowed: Vec<SocketAddr> = resolved
        .into_iter()
        .filter(|addr| policy.permits(addr.ip()))
        .collect();
    if allowed.is_empty() {
        tracing::warn!(%host, resolved = total, "ssrf guard: no permitted address");
        return Err(Box::new(BlockedHost { host }));
    }
    if allowed.len() < total {
        tracing::debug!(
            %host,
            resolved = total,
            permitted = allowed.len(),
            "ssrf guard: dropped forbidden addresses"
        );
    }
    Ok(Box::new(allowed.into_iter()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_public_table() {
        let cases: &[(&str, bool)] = &[
            // IPv4 public
            ("8.8.8.8", true),
            ("1.1.1.1", true),
            ("93.184.216.34", true),
            ("100.63.255.255", true),
            ("100.128.0.0", true),
            ("172.15.255.255", true),
            ("172.32.0.0", true),
            ("192.0.1.1", true),
            ("192.169.0.1", true),
            ("198.17.255.255", true),
            ("198.20.0.0", true),
            ("223.255.255.255", true),
            ("11.0.0.1", true),
            ("126.255.255.255", true),
            ("128.0.0.1", true),
            // IPv4 not public
            ("0.0.0.0", false),
            ("0.1.2.3", false),
            ("10.0.0.1", false),
            ("10.255.255.255", false),
            ("100.64.0.1", false),
            ("100.127.255.255", false),
            ("127.0.0.1", false),
            ("127.255.255.254", false),
            ("169.254.169.254", false),
            ("172.16.0.1", false),
            ("172.31.255.255", false),
            ("192.0.0.8", false),
            ("192.0.2.1", false),
            ("192.88.99.1", false),
            ("192.168.1.1", false),
            ("198.18.0.1", false),
            ("198.19.255.255", false),
            ("198.51.100.7", false),
            ("203.0.113.9", false),
            ("224.0.0.1", false),
            ("239.255.255.250", false),
            ("240.0.0.1", false),
            ("255.255.255.255", false),
            // IPv6 public
            ("2606:4700:4700::1111", true),
            ("2001:4860:4860::8888", true),
            ("2a00:1450:4001::1", true),
            ("3ffe::1", true),
            // IPv6 not public
            ("::", false),
            ("::1", false),
            ("::7f00:1", false),
            ("100::1", false),
            ("fc00::1", false),
            ("fd12:3456::1", false),
            ("fe80::1", false),
            ("febf::1", false),
            ("fec0::1", false),
            ("ff02::1", false),
            ("ff0e::1", false),
            ("2001::1", false),
            ("2001:1ff::1", false),
            ("2001:db8::1", false),
            ("3fff::1", false),
            ("5f00::1", false),
            ("64:ff9b:1::1", false),
            ("::ffff:0:7f00:1", false),
            // IPv4 embedded in IPv6
            ("::ffff:127.0.0.1", false),
            ("::ffff:10.1.2.3", false),
            ("::ffff:169.254.169.254", false),
            ("::ffff:8.8.8.8", true),
            ("64:ff9b::10.0.0.1", false),
            ("64:ff9b::8.8.8.8", true),
            ("2002:7f00:1::1", false),
            ("2002:a00:1::1", false),
            ("2002:808:808::1", true),
        ];
        for &(ip, want) in cases {
            let parsed: IpAddr = ip.parse().unwrap();
            assert_eq!(is_public(parsed), want, "is_public({ip})");
        }
    }

    #[test]
    fn policy_allows_listed_networks_only() {
        let policy =
            AddressPolicy::new(&["127.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()]);
        let cases: &[(&str, bool)] = &[
            ("127.0.0.1", true),
            ("::ffff:127.0.0.1", true),
            ("fd00::5", true),
            ("8.8.8.8", true),
            ("::1", false),
            ("10.0.0.1", false),
            ("192.168.0.1", false),
            ("fe80::1", false),
        ];
        for &(ip, want) in cases {
            assert_eq!(policy.permits(ip.parse().unwrap()), want, "permits({ip})");
        }
        assert!(!AddressPolicy::default().permits("127.0.0.1".parse().unwrap()));
    }

    #[tokio::test]
    async fn resolver_blocks_localhost() {
        let resolver = GuardedResolver {
            policy: AddressPolicy::default(),
        };
        let err = match resolver.resolve("localhost".parse().unwrap()).await {
            Ok(addrs) => panic!("expected blocked, got {:?}", addrs.collect::<Vec<_>>()),
            Err(e) => e,
        };
        let blocked = err.downcast_ref::<BlockedHost>().expect("BlockedHost");
        assert_eq!(blocked.host, "localhost");
    }

    #[tokio::test]
    async fn resolver_keeps_allowed_addresses_only() {
        let resolver = GuardedResolver {
            policy: AddressPolicy::new(&["127.0.0.0/8".parse().unwrap()]),
        };
        let addrs: Vec<SocketAddr> = match resolver.resolve("localhost".parse().unwrap()).await {
            Ok(addrs) => addrs.collect(),
            Err(e) => panic!("resolve failed: {e}"),
        };
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.is_ipv4()));
    }
}
