//! The SSRF guard: webhooks may call public addresses only, unless their host is
//! explicitly allowed. Checked before a call (so a refusal is a clear, permanent failure)
//! and again inside the HTTP client's resolver (so a host that resolves differently at
//! connect time, DNS rebinding, is refused too). Redirects are not followed.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

/// Which hosts webhooks may call.
#[derive(Debug, Clone, Default)]
pub struct SsrfGuard {
    allowed: Arc<BTreeSet<String>>,
}

/// Why a URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refused to call {host}: {reason} (allow the host explicitly to call it)")]
pub struct Refused {
    /// The URL's host.
    pub host: String,
    /// What is wrong.
    pub reason: String,
}

/// Whether `ip` is a public unicast address: not loopback, private, link-local,
/// unique-local, shared (CGNAT), documentation, benchmarking, multicast, broadcast or
/// unspecified.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_unspecified()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first == 0x2001 && ip.segments()[1] == 0x0db8)
        || first == 0x0064)
}

impl SsrfGuard {
    /// A guard that lets webhooks call `allowed` hosts (exact host names or IP literals as
    /// written in URLs) whatever they resolve to.
    pub fn new(allowed: impl IntoIterator<Item = String>) -> SsrfGuard {
        SsrfGuard { allowed: Arc::new(allowed.into_iter().map(|h| h.to_ascii_lowercase()).collect()) }
    }

    fn allows(&self, host: &str) -> bool {
        self.allowed.contains(&host.to_ascii_lowercase())
    }

    /// Checks `url` before a call: its host must be allowed, or every address it resolves
    /// to public.
    pub async fn check(&self, url: &Url) -> Result<(), Refused> {
        let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_owned();
        let refused = |reason: String| Refused { host: host.clone(), reason };
        if self.allows(&host) {
            return Ok(());
        }
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|e| refused(format!("it does not resolve ({e})")))?
                .collect(),
        };
        match addrs.iter().find(|a| !is_public(a.ip())) {
            Some(a) => Err(refused(format!("it resolves to the non-public address {}", a.ip()))),
            None if addrs.is_empty() => Err(refused("it resolves to no address".into())),
            None => Ok(()),
        }
    }
}

impl Resolve for SsrfGuard {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if guard.allows(&host) {
                return Ok(Box::new(addrs.into_iter()) as Addrs);
            }
            if addrs.iter().any(|a| !is_public(a.ip())) || addrs.is_empty() {
                let refused = Refused { host, reason: "it resolves to a non-public address".into() };
                return Err(Box::new(refused) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_public_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip} must not be public");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(is_public(ip.parse().unwrap()), "{ip} is public");
        }
    }

    #[tokio::test]
    async fn loopback_and_metadata_urls_are_refused_unless_allowed() {
        let guard = SsrfGuard::default();
        for url in ["http://127.0.0.1:8080/x", "http://localhost/x", "http://169.254.169.254/latest/meta-data", "http://[::1]/x"]
        {
            let err = guard.check(&Url::parse(url).unwrap()).await.unwrap_err();
            assert!(err.reason.contains("non-public") || err.reason.contains("resolve"), "{url}: {err}");
        }
        let allowed = SsrfGuard::new(["127.0.0.1".to_owned()]);
        allowed.check(&Url::parse("http://127.0.0.1:8080/x").unwrap()).await.unwrap();
        assert!(allowed.check(&Url::parse("http://10.0.0.1/x").unwrap()).await.is_err());
    }
}
