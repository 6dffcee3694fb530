//! The `Forwarded` / `X-Forwarded-For` reading behind trusted proxies: never panics, and the
//! client it names is the socket peer or a hop of the configured header; an untrusted peer is
//! always its own client, and the other header never decides, whatever the headers claim.
#![no_main]

use std::net::SocketAddr;

use http::{HeaderName, HeaderValue, Request};
use libfuzzer_sys::fuzz_target;
use portcullis::ratelimit::{ClientIp, ForwardedHeader};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    // Header lines split on NUL; the selector's bits pick each line's name and the peer.
    let mut request = Request::get("/");
    for (i, line) in rest.split(|&b| b == 0).take(4).enumerate() {
        let name = if selector >> i & 1 == 0 {
            "forwarded"
        } else {
            "x-forwarded-for"
        };
        if let Ok(value) = HeaderValue::from_bytes(line) {
            request = request.header(HeaderName::from_static(name), value);
        }
    }
    let (mut parts, ()) = request.body(()).unwrap().into_parts();
    let peer: SocketAddr = if selector & 0x80 == 0 {
        "10.0.0.1:4000".parse().unwrap()
    } else {
        "198.51.100.7:4000".parse().unwrap()
    };
    parts.extensions.insert(peer);

    let header = if selector & 0x40 == 0 {
        ForwardedHeader::XForwardedFor
    } else {
        ForwardedHeader::Forwarded
    };
    let client_ip = ClientIp::new(|parts| parts.extensions.get::<SocketAddr>().copied())
        .trust_proxies(["10.0.0.0/8", "::1"])
        .unwrap()
        .header(header.clone());
    let client = client_ip.of(&parts).expect("the peer is recorded");
    if selector & 0x80 != 0 {
        assert_eq!(client, peer.ip(), "an untrusted peer cannot be overridden");
    } else {
        let hops = header.hops(&parts.headers);
        assert!(
            client == peer.ip() || hops.contains(&Some(client)),
            "{client} is neither the peer nor a hop of {header:?}"
        );
    }
});
