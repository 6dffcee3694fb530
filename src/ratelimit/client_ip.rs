//! The client's IP address: the socket peer, or — only behind configured trusted proxies — the
//! rightmost untrusted address in `X-Forwarded-For` / `Forwarded`.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use http::HeaderMap;
use http::request::Parts;
use ipnet::IpNet;

/// Reads the peer's socket address from a request (the server puts it there; with axum,
/// `into_make_service_with_connect_info::<SocketAddr>()` stores a `ConnectInfo<SocketAddr>`).
pub type PeerAddress = Arc<dyn Fn(&Parts) -> Option<SocketAddr> + Send + Sync>;

/// Finds a request's client address.
///
/// Forwarding headers are attacker-controlled unless a proxy you run wrote them, so they are
/// read only when the socket peer is a trusted proxy, and then from the right: each trusted
/// hop is skipped and the first untrusted address is the client (an attacker can prepend
/// anything, but not append past your proxy). Nothing is trusted by default.
///
/// ```
/// use std::net::SocketAddr;
/// use portcullis::ratelimit::ClientIp;
///
/// let client_ip = ClientIp::new(|parts| parts.extensions.get::<SocketAddr>().copied())
///     .trust_proxies(["10.0.0.0/8"])?;
///
/// let mut request = http::Request::get("/").header("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.0.0.7");
/// let (mut parts, ()) = request.body(()).unwrap().into_parts();
/// parts.extensions.insert("10.0.0.1:4000".parse::<SocketAddr>().unwrap());
/// assert_eq!(client_ip.of(&parts), Some("203.0.113.9".parse().unwrap()));
/// # Ok::<(), portcullis::ratelimit::InvalidProxy>(())
/// ```
#[derive(Clone)]
pub struct ClientIp {
    peer: PeerAddress,
    trusted: Vec<IpNet>,
}

impl std::fmt::Debug for ClientIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIp")
            .field("trusted", &self.trusted)
            .finish_non_exhaustive()
    }
}

/// A trusted-proxy entry that is neither an IP address nor a CIDR block.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not an IP address or CIDR block: {0:?}")]
pub struct InvalidProxy(pub String);

impl ClientIp {
    /// The socket peer, as read by `peer`; no proxy trusted.
    pub fn new(peer: impl Fn(&Parts) -> Option<SocketAddr> + Send + Sync + 'static) -> Self {
        Self {
            peer: Arc::new(peer),
            trusted: Vec::new(),
        }
    }

    /// Trusts the proxies at these addresses or CIDR blocks to append the address they saw.
    pub fn trust_proxies<I, S>(mut self, proxies: I) -> Result<Self, InvalidProxy>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for proxy in proxies {
            let text = proxy.as_ref().trim();
            let net = IpNet::from_str(text)
                .or_else(|_| IpAddr::from_str(text).map(IpNet::from))
                .map_err(|_| InvalidProxy(text.to_owned()))?;
            self.trusted.push(net);
        }
        Ok(self)
    }

    fn is_trusted(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.trusted.iter().any(|net| net.contains(&address))
    }

    /// The client's address, or `None` when the server did not record the peer.
    pub fn of(&self, request: &Parts) -> Option<IpAddr> {
        let peer = canonical((self.peer)(request)?.ip());
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        // Walk the hops right to left; the first one not in our proxy chain is the client.
        let mut client = peer;
        for hop in forwarded_for(&request.headers).into_iter().rev() {
            match hop {
                Some(address) if self.is_trusted(address) => client = address,
                Some(address) => return Some(address),
                // A hop we cannot read: stop at the last address we could vouch for.
                None => return Some(client),
            }
        }
        Some(client)
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) are the IPv4 address.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

/// The hops of `Forwarded` (RFC 7239), or else `X-Forwarded-For`, left to right; `None` for a
/// hop that is not an address (obfuscated, `unknown`, garbage). Several header lines form
/// one list, in order.
pub fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let forwarded: Vec<&str> = headers
        .get_all(http::header::FORWARDED)
        .iter()
        .map(|v| v.to_str().unwrap_or("\u{0}"))
        .collect();
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .flat_map(|line| line.split(','))
            .map(|element| {
                element
                    .split(';')
                    .find_map(|pair| {
                        let (name, value) = pair.trim().split_once('=')?;
                        name.trim()
                            .eq_ignore_ascii_case("for")
                            .then_some(value.trim())
                    })
                    .and_then(parse_forwarded_node)
            })
            .collect();
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().unwrap_or("\u{0}"))
        .flat_map(|line| line.split(','))
        .map(|hop| parse_node(hop.trim()))
        .collect()
}

/// A `for=` node: `192.0.2.43`, `"192.0.2.43:47011"`, `"[2001:db8:cafe::17]:4711"`.
fn parse_forwarded_node(value: &str) -> Option<IpAddr> {
    parse_node(value.trim_matches('"'))
}

/// An address, optionally with a port, IPv6 optionally in brackets.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(address) = IpAddr::from_str(node) {
        return Some(canonical(address));
    }
    if let Ok(socket) = SocketAddr::from_str(node) {
        return Some(canonical(socket.ip()));
    }
    let inner = node.strip_prefix('[')?.split(']').next()?;
    IpAddr::from_str(inner).ok().map(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parts(peer: &str, headers: &[(&str, &str)]) -> Parts {
        let mut builder = http::Request::get("/");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let (mut parts, ()) = builder.body(()).unwrap().into_parts();
        parts.extensions.insert(peer.parse::<SocketAddr>().unwrap());
        parts
    }

    fn client_ip() -> ClientIp {
        ClientIp::new(|parts| parts.extensions.get::<SocketAddr>().copied())
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn debug_output_names_the_trusted_proxies() {
        let trusted = client_ip().trust_proxies(["10.0.0.0/8"]).unwrap();
        assert_eq!(
            format!("{trusted:?}"),
            "ClientIp { trusted: [10.0.0.0/8], .. }"
        );
    }

    #[test]
    fn forwarding_headers_are_ignored_unless_the_peer_is_trusted() {
        let request = parts("198.51.100.7:1234", &[("x-forwarded-for", "1.1.1.1")]);
        assert_eq!(client_ip().of(&request), ip("198.51.100.7"));
        let trusting_others = client_ip().trust_proxies(["10.0.0.0/8"]).unwrap();
        assert_eq!(trusting_others.of(&request), ip("198.51.100.7"));
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let trusted = client_ip()
            .trust_proxies(["10.0.0.0/8", "192.168.1.1"])
            .unwrap();
        // The attacker sent "X-Forwarded-For: 6.6.6.6"; the edge proxy appended the real peer.
        let request = parts(
            "10.0.0.2:80",
            &[("x-forwarded-for", "6.6.6.6, 203.0.113.5, 192.168.1.1")],
        );
        assert_eq!(trusted.of(&request), ip("203.0.113.5"));
        // Every hop trusted: the leftmost one is the client.
        let internal = parts("10.0.0.2:80", &[("x-forwarded-for", "10.1.1.1, 10.2.2.2")]);
        assert_eq!(trusted.of(&internal), ip("10.1.1.1"));
        // No header at all: the proxy itself.
        assert_eq!(trusted.of(&parts("10.0.0.2:80", &[])), ip("10.0.0.2"));
    }

    #[test]
    fn rfc7239_forwarded_takes_precedence_and_allows_ports_and_ipv6() {
        let trusted = client_ip().trust_proxies(["10.0.0.0/8"]).unwrap();
        let request = parts(
            "10.0.0.2:80",
            &[
                (
                    "forwarded",
                    "for=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\";proto=https",
                ),
                ("x-forwarded-for", "7.7.7.7"),
            ],
        );
        assert_eq!(trusted.of(&request), ip("2001:db8:cafe::17"));
        let ported = parts("10.0.0.2:80", &[("forwarded", "For=\"192.0.2.43:47011\"")]);
        assert_eq!(trusted.of(&ported), ip("192.0.2.43"));
    }

    #[test]
    fn an_unreadable_hop_stops_the_walk_at_the_last_trusted_address() {
        let trusted = client_ip().trust_proxies(["10.0.0.0/8"]).unwrap();
        for header in [
            "1.2.3.4, garbage",
            "1.2.3.4, unknown",
            "1.2.3.4, _hidden",
            "",
        ] {
            let request = parts("10.0.0.2:80", &[("x-forwarded-for", header)]);
            assert_eq!(trusted.of(&request), ip("10.0.0.2"), "{header:?}");
        }
    }

    #[test]
    fn ipv4_mapped_ipv6_peers_match_ipv4_proxies() {
        let trusted = client_ip().trust_proxies(["127.0.0.1"]).unwrap();
        let request = parts(
            "[::ffff:127.0.0.1]:80",
            &[("x-forwarded-for", "203.0.113.1")],
        );
        assert_eq!(trusted.of(&request), ip("203.0.113.1"));
    }

    #[test]
    fn bad_proxy_entries_are_refused() {
        assert!(client_ip().trust_proxies(["10.0.0.0/33"]).is_err());
        assert!(client_ip().trust_proxies(["example.com"]).is_err());
    }

    #[test]
    fn no_recorded_peer_means_no_address() {
        let (parts, ()) = http::Request::get("/").body(()).unwrap().into_parts();
        assert_eq!(client_ip().of(&parts), None);
    }

    proptest! {
        #[test]
        fn forwarded_header_parsing_never_panics(value in "[ -~]{0,200}") {
            if let Ok(header) = http::HeaderValue::from_str(&value) {
                let mut headers = HeaderMap::new();
                headers.insert(http::header::FORWARDED, header.clone());
                let _ = forwarded_for(&headers);
                headers.clear();
                headers.insert("x-forwarded-for", header);
                let _ = forwarded_for(&headers);
            }
        }

        #[test]
        fn an_untrusted_peer_is_always_the_answer(a in any::<[u8; 4]>(), header in "[0-9., ]{0,60}") {
            let peer = format!("{}.{}.{}.{}:1", a[0], a[1], a[2], a[3]);
            prop_assume!(a[0] != 10);
            let request = parts(&peer, &[("x-forwarded-for", &header)]);
            let trusted = client_ip().trust_proxies(["10.0.0.0/8"]).unwrap();
            prop_assert_eq!(trusted.of(&request), Some(IpAddr::from(a)));
        }
    }
}
