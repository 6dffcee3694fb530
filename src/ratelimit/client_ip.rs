//! The client's IP address: the socket peer, or — only behind configured trusted proxies — the
//! rightmost untrusted address in the one forwarding header those proxies write.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use http::request::Parts;
use http::{HeaderMap, HeaderName};
use ipnet::IpNet;

/// Reads the peer's socket address from a request (the server puts it there; with axum,
/// `into_make_service_with_connect_info::<SocketAddr>()` stores a `ConnectInfo<SocketAddr>`).
pub type PeerAddress = Arc<dyn Fn(&Parts) -> Option<SocketAddr> + Send + Sync>;

/// The header your trusted proxies write the client's address into. Only this header is read;
/// any other forwarding header is the client's own writing and is ignored.
///
/// What common proxies write (check your configuration; each can be changed):
///
/// | proxy | writes | choose |
/// |---|---|---|
/// | nginx, `proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for` | appends the peer to `X-Forwarded-For` | [`XForwardedFor`](Self::XForwardedFor) |
/// | nginx, `proxy_set_header X-Real-IP $remote_addr` | replaces `X-Real-IP` with the peer | [`Named("x-real-ip")`](Self::Named) |
/// | HAProxy, `option forwardfor` | appends an `X-Forwarded-For` line | [`XForwardedFor`](Self::XForwardedFor) |
/// | HAProxy ≥ 2.8, `option forwarded` | appends a `Forwarded: for=…` element | [`Forwarded`](Self::Forwarded) |
/// | Caddy, `reverse_proxy` | appends to `X-Forwarded-For` (only from its own `trusted_proxies`) | [`XForwardedFor`](Self::XForwardedFor) |
/// | AWS ALB, Google Cloud and Azure load balancers | append to `X-Forwarded-For` (Google appends the client and then its own address: trust its ranges) | [`XForwardedFor`](Self::XForwardedFor) |
/// | Cloudflare | sets `CF-Connecting-IP` (and appends to `X-Forwarded-For`) | [`Named("cf-connecting-ip")`](Self::Named) |
///
/// None of them removes a `Forwarded` header a client sent, which is why reading it when your
/// proxy writes `X-Forwarded-For` would let every client choose its own address.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (the default).
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239).
    Forwarded,
    /// Another header in the `X-Forwarded-For` syntax, usually holding the one address a proxy
    /// set: `X-Real-IP`, `CF-Connecting-IP`, `True-Client-IP`, `Fly-Client-IP`.
    Named(HeaderName),
}

impl ForwardedHeader {
    /// The hops this header lists, left to right; `None` for a hop that is not an address
    /// (obfuscated, `unknown`, garbage). Several header lines form one list, in order.
    pub fn hops(&self, headers: &HeaderMap) -> Vec<Option<IpAddr>> {
        let lines = |name: &HeaderName| {
            headers
                .get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap_or("\u{0}"))
                .flat_map(|line| line.split(','))
                .collect::<Vec<_>>()
        };
        match self {
            Self::Forwarded => lines(&http::header::FORWARDED)
                .into_iter()
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
                .collect(),
            Self::XForwardedFor => lines(&X_FORWARDED_FOR)
                .into_iter()
                .map(|hop| parse_node(hop.trim()))
                .collect(),
            Self::Named(name) => lines(name)
                .into_iter()
                .map(|hop| parse_node(hop.trim()))
                .collect(),
        }
    }
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The default IPv6 prefix length clients are keyed by: one /64 is one subscriber's network
/// (RFC 6177 assigns at least a /64 to every site), so a client can change its address
/// within it at will.
pub const DEFAULT_IPV6_PREFIX: u8 = 64;

/// The network `address` stands for when counting requests: IPv4 addresses as they are,
/// IPv6 addresses cut to their first `ipv6_prefix` bits (at most 128).
///
/// ```
/// use std::net::IpAddr;
/// use portcullis::ratelimit::client_network;
///
/// let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
/// let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
/// assert_eq!(client_network(a, 64), client_network(b, 64));
/// assert_eq!(client_network("192.0.2.1".parse().unwrap(), 64), "192.0.2.1".parse::<IpAddr>().unwrap());
/// ```
pub fn client_network(address: IpAddr, ipv6_prefix: u8) -> IpAddr {
    match canonical(address) {
        IpAddr::V6(v6) => {
            let prefix = u32::from(ipv6_prefix.min(128));
            let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
        v4 => v4,
    }
}

/// Finds a request's client address.
///
/// Forwarding headers are attacker-controlled unless a proxy you run wrote them, so one
/// header (see [`ForwardedHeader`], `X-Forwarded-For` by default) is read, only when the
/// socket peer is a trusted proxy, and then from the right: each trusted hop is skipped and
/// the first untrusted address is the client (an attacker can prepend anything, but not
/// append past your proxy). Nothing is trusted by default.
///
/// Rate limits count IPv6 clients per /64 ([`ipv6_prefix`](Self::ipv6_prefix)).
///
/// ```
/// use std::net::SocketAddr;
/// use portcullis::ratelimit::ClientIp;
///
/// let client_ip = ClientIp::new(|parts| parts.extensions.get::<SocketAddr>().copied())
///     .trust_proxies(["10.0.0.0/8"])?;
///
/// let request = http::Request::get("/")
///     .header("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.0.0.7")
///     .header("forwarded", "for=6.6.6.6"); // written by the client: ignored
/// let (mut parts, ()) = request.body(()).unwrap().into_parts();
/// parts.extensions.insert("10.0.0.1:4000".parse::<SocketAddr>().unwrap());
/// assert_eq!(client_ip.of(&parts), Some("203.0.113.9".parse().unwrap()));
/// # Ok::<(), portcullis::ratelimit::InvalidProxy>(())
/// ```
#[derive(Clone)]
pub struct ClientIp {
    peer: PeerAddress,
    trusted: Vec<IpNet>,
    header: ForwardedHeader,
    ipv6_prefix: u8,
}

impl std::fmt::Debug for ClientIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIp")
            .field("trusted", &self.trusted)
            .field("header", &self.header)
            .field("ipv6_prefix", &self.ipv6_prefix)
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
            header: ForwardedHeader::default(),
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
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

    /// The header the trusted proxies write (default `X-Forwarded-For`); no other is read.
    #[must_use]
    pub fn header(mut self, header: ForwardedHeader) -> Self {
        self.header = header;
        self
    }

    /// Counts IPv6 clients per network of this prefix length (default 64; 128 counts every
    /// address on its own, which lets one subscriber use 2^64 buckets).
    #[must_use]
    pub fn ipv6_prefix(mut self, bits: u8) -> Self {
        self.ipv6_prefix = bits.min(128);
        self
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
        for hop in self.header.hops(&request.headers).into_iter().rev() {
            match hop {
                Some(address) if self.is_trusted(address) => client = address,
                Some(address) => return Some(address),
                // A hop we cannot read: stop at the last address we could vouch for.
                None => return Some(client),
            }
        }
        Some(client)
    }

    /// The network the client is counted as: [`of`](Self::of) cut to the IPv6 prefix (see
    /// [`client_network`]).
    pub fn network_of(&self, request: &Parts) -> Option<IpAddr> {
        self.of(request)
            .map(|address| client_network(address, self.ipv6_prefix))
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) are the IPv4 address.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
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
            "ClientIp { trusted: [10.0.0.0/8], header: XForwardedFor, ipv6_prefix: 64, .. }"
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
    fn only_the_configured_header_is_read() {
        let headers = [
            ("forwarded", "for=6.6.6.6"),
            ("x-forwarded-for", "7.7.7.7"),
            ("x-real-ip", "8.8.8.8"),
        ];
        let request = parts("10.0.0.2:80", &headers);
        let trusted = || client_ip().trust_proxies(["10.0.0.0/8"]).unwrap();
        assert_eq!(
            trusted().of(&request),
            ip("7.7.7.7"),
            "X-Forwarded-For by default"
        );
        assert_eq!(
            trusted().header(ForwardedHeader::Forwarded).of(&request),
            ip("6.6.6.6")
        );
        let real_ip = ForwardedHeader::Named(HeaderName::from_static("x-real-ip"));
        assert_eq!(trusted().header(real_ip).of(&request), ip("8.8.8.8"));
        // The configured header absent: the proxy itself, never another header.
        let only_forwarded = parts("10.0.0.2:80", &[("forwarded", "for=6.6.6.6")]);
        assert_eq!(trusted().of(&only_forwarded), ip("10.0.0.2"));
    }

    #[test]
    fn rfc7239_forwarded_allows_ports_and_ipv6() {
        let trusted = client_ip()
            .trust_proxies(["10.0.0.0/8"])
            .unwrap()
            .header(ForwardedHeader::Forwarded);
        let request = parts(
            "10.0.0.2:80",
            &[(
                "forwarded",
                "for=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\";proto=https",
            )],
        );
        assert_eq!(trusted.of(&request), ip("2001:db8:cafe::17"));
        let ported = parts("10.0.0.2:80", &[("forwarded", "For=\"192.0.2.43:47011\"")]);
        assert_eq!(trusted.of(&ported), ip("192.0.2.43"));
    }

    #[test]
    fn ipv6_clients_are_counted_per_network_of_the_configured_prefix() {
        let request = parts("[2001:db8:1:2:3:4:5:6]:80", &[]);
        assert_eq!(client_ip().of(&request), ip("2001:db8:1:2:3:4:5:6"));
        assert_eq!(client_ip().network_of(&request), ip("2001:db8:1:2::"));
        assert_eq!(
            client_ip().ipv6_prefix(48).network_of(&request),
            ip("2001:db8:1::")
        );
        assert_eq!(
            client_ip().ipv6_prefix(200).network_of(&request),
            ip("2001:db8:1:2:3:4:5:6"),
            "capped at 128"
        );
        assert_eq!(client_network("::1".parse().unwrap(), 0), ip("::").unwrap());
        let v4 = parts("192.0.2.9:80", &[]);
        assert_eq!(client_ip().ipv6_prefix(8).network_of(&v4), ip("192.0.2.9"));
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
                let _ = ForwardedHeader::Forwarded.hops(&headers);
                headers.clear();
                headers.insert("x-forwarded-for", header);
                let _ = ForwardedHeader::XForwardedFor.hops(&headers);
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
