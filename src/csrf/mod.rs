//! [`CrossOrigin`]: refuses cross-site requests that would act with a browser's cookies.
//!
//! A browser attaches cookies to requests that another site makes it send (a form posting to
//! your `/settings`, say); that is cross-site request forgery. Modern browsers say where a
//! request comes from, so no token needs to be planted in every form (OWASP CSRF Prevention
//! Cheat Sheet, "Fetch Metadata headers"; the same algorithm as Go's
//! `net/http.CrossOriginProtection`):
//!
//! 1. Safe methods (`GET`, `HEAD`, `OPTIONS`) change nothing and pass, except a WebSocket
//!    handshake: it is a `GET` that opens a two-way channel acting with the cookie, so another
//!    site opening one is cross-site WebSocket hijacking (OWASP WebSocket Security Cheat
//!    Sheet) and it is checked like an unsafe method.
//! 2. `Sec-Fetch-Site: same-origin` or `none` (typed in the address bar) passes; any other value
//!    (`same-site`, `cross-site`) is refused unless its `Origin` is trusted.
//! 3. Without `Sec-Fetch-Site` (browsers before 2023), an `Origin` must name this host (the
//!    `Host` header) or a trusted origin.
//! 4. With neither header the request did not come from a browser, which would have sent one
//!    of them, so there is no cookie to abuse: it passes.
//!
//! `same-site` is refused by default because a sibling subdomain is often someone else's
//! (`alice.example.io` and `bob.example.io`). Bearer-authenticated requests need none of this:
//! a browser never adds an `Authorization` header on its own.
//!
//! The [`SessionCookie`](crate::source::SessionCookie) source applies the check to requests
//! its cookie authenticates. [`CrossOrigin`] is also a tower layer ([`CrossOriginService`])
//! for routes a browser posts to before it has a session, such as a login form.

mod service;

pub use service::CrossOriginService;

use http::header::{HOST, ORIGIN};
use http::request::Parts;
use http::{HeaderMap, Method};

const SEC_FETCH_SITE: &str = "sec-fetch-site";

/// The cross-site check for cookie-authenticated requests (see the [module docs](self)).
///
/// ```
/// use portcullis::csrf::CrossOrigin;
///
/// let check = CrossOrigin::new().trust_origin("https://admin.example.com")?;
///
/// let forged = http::Request::post("https://app.example.com/settings")
///     .header("host", "app.example.com")
///     .header("sec-fetch-site", "cross-site")
///     .header("origin", "https://evil.example")
///     .body(())?;
/// assert!(check.check(&forged.into_parts().0).is_err());
///
/// let own_form = http::Request::post("https://app.example.com/settings")
///     .header("host", "app.example.com")
///     .header("sec-fetch-site", "same-origin")
///     .body(())?;
/// assert!(check.check(&own_form.into_parts().0).is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct CrossOrigin {
    /// Serialized origins (`scheme://host[:port]`, lowercase) allowed to send unsafe requests.
    trusted: Vec<String>,
}

/// A cross-site request that the [`CrossOrigin`] check refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cross-site request refused")]
pub struct CrossSiteRequest;

/// A trusted origin that is not of the form `scheme://host[:port]`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not an origin (scheme://host[:port]): {0:?}")]
pub struct InvalidOrigin(String);

impl CrossOrigin {
    /// The check with no trusted origins: only same-origin browser requests may use cookies
    /// for unsafe methods.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also accepts unsafe requests from `origin` (e.g. `https://admin.example.com`), which
    /// must be exactly a scheme, a host and an optional port.
    pub fn trust_origin(mut self, origin: &str) -> Result<Self, InvalidOrigin> {
        let uri: http::Uri = origin
            .parse()
            .map_err(|_| InvalidOrigin(origin.to_owned()))?;
        let well_formed = matches!(uri.scheme_str(), Some("http" | "https"))
            && uri.authority().is_some_and(|a| !a.as_str().contains('@'))
            && uri.path_and_query().is_none_or(|p| p.as_str() == "/")
            && !origin.ends_with('/');
        if !well_formed {
            return Err(InvalidOrigin(origin.to_owned()));
        }
        self.trusted.push(origin.to_ascii_lowercase());
        Ok(self)
    }

    /// Whether a request with these parts may act with the browser's cookies.
    pub fn check(&self, parts: &Parts) -> Result<(), CrossSiteRequest> {
        self.check_headers(&parts.method, &parts.headers, parts.uri.authority())
    }

    pub(crate) fn check_headers(
        &self,
        method: &Method,
        headers: &HeaderMap,
        authority: Option<&http::uri::Authority>,
    ) -> Result<(), CrossSiteRequest> {
        if is_safe(method) && !is_websocket_handshake(headers) {
            return Ok(());
        }
        let origin = single(headers, ORIGIN);
        match single(headers, SEC_FETCH_SITE) {
            Some(Ok(b"same-origin" | b"none")) => Ok(()),
            Some(_) => self.trusted_origin(origin),
            None => match origin {
                None => Ok(()),
                Some(Ok(origin)) if names_this_host(origin, headers, authority) => Ok(()),
                Some(_) => self.trusted_origin(origin),
            },
        }
    }

    fn trusted_origin(&self, origin: Option<Result<&[u8], ()>>) -> Result<(), CrossSiteRequest> {
        match origin {
            Some(Ok(origin))
                if self
                    .trusted
                    .iter()
                    .any(|trusted| trusted.as_bytes().eq_ignore_ascii_case(origin)) =>
            {
                Ok(())
            }
            _ => Err(CrossSiteRequest),
        }
    }
}

/// RFC 9110 §9.2.1: methods that are defined not to change anything.
fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// RFC 6455 §4.1: the opening handshake asks to upgrade to `websocket` (RFC 8441 carries it
/// over HTTP/2 as an extended CONNECT, which is not a safe method anyway).
fn is_websocket_handshake(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::UPGRADE)
        .iter()
        .any(|value| value.as_bytes().eq_ignore_ascii_case(b"websocket"))
}

/// The value of a header that must appear at most once: `None` when absent, `Err` when repeated
/// (a request no browser sends, refused rather than guessed at).
fn single(headers: &HeaderMap, name: impl http::header::AsHeaderName) -> Option<Result<&[u8], ()>> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    Some(match values.next() {
        None => Ok(first.as_bytes()),
        Some(_) => Err(()),
    })
}

/// Whether `origin` (`scheme://host[:port]`) names the host the request was sent to.
fn names_this_host(
    origin: &[u8],
    headers: &HeaderMap,
    authority: Option<&http::uri::Authority>,
) -> bool {
    let Some(host) = origin
        .strip_prefix(b"https://")
        .or_else(|| origin.strip_prefix(b"http://"))
    else {
        return false; // includes the opaque origin `null`
    };
    let target = match single(headers, HOST) {
        Some(Ok(target)) => target,
        Some(Err(())) => return false,
        // HTTP/2 carries the host in the `:authority` pseudo-header.
        None => match authority {
            Some(authority) => authority.as_str().as_bytes(),
            None => return false,
        },
    };
    !host.is_empty() && host.eq_ignore_ascii_case(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, headers: &[(&str, &str)]) -> Parts {
        let mut request = http::Request::builder()
            .method(method)
            .uri("/settings")
            .header("host", "app.example.com");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap().into_parts().0
    }

    fn allows(check: &CrossOrigin, method: &str, headers: &[(&str, &str)]) -> bool {
        check.check(&parts(method, headers)).is_ok()
    }

    #[test]
    fn safe_methods_pass_whatever_their_origin() {
        let check = CrossOrigin::new();
        for method in ["GET", "HEAD", "OPTIONS"] {
            assert!(allows(&check, method, &[("sec-fetch-site", "cross-site")]));
        }
    }

    #[test]
    fn owasp_websocket_a_cross_site_handshake_is_checked_like_a_post() {
        let check = CrossOrigin::new();
        let hijack = [
            ("upgrade", "WebSocket"),
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://evil.example"),
        ];
        assert!(!allows(&check, "GET", &hijack));
        let old_browser = [("upgrade", "websocket"), ("origin", "https://evil.example")];
        assert!(!allows(&check, "GET", &old_browser));
        let own = [
            ("upgrade", "websocket"),
            ("origin", "https://app.example.com"),
        ];
        assert!(allows(&check, "GET", &own));
    }

    #[test]
    fn fetch_metadata_same_origin_and_user_initiated_pass() {
        let check = CrossOrigin::new();
        assert!(allows(&check, "POST", &[("sec-fetch-site", "same-origin")]));
        assert!(allows(&check, "DELETE", &[("sec-fetch-site", "none")]));
    }

    #[test]
    fn fetch_metadata_cross_site_and_same_site_are_refused() {
        let check = CrossOrigin::new();
        for site in ["cross-site", "same-site", "bogus", ""] {
            assert!(
                !allows(
                    &check,
                    "POST",
                    &[
                        ("sec-fetch-site", site),
                        ("origin", "https://app.example.com")
                    ]
                ),
                "{site}"
            );
        }
    }

    #[test]
    fn a_trusted_origin_may_post_cross_site() {
        let check = CrossOrigin::new()
            .trust_origin("https://Admin.example.com")
            .unwrap();
        let headers = [
            ("sec-fetch-site", "same-site"),
            ("origin", "https://admin.example.com"),
        ];
        assert!(allows(&check, "PUT", &headers));
        let other = [
            ("sec-fetch-site", "same-site"),
            ("origin", "https://admin.example.com:8443"),
        ];
        assert!(!allows(&check, "PUT", &other));
    }

    #[test]
    fn without_fetch_metadata_the_origin_must_name_this_host() {
        let check = CrossOrigin::new();
        assert!(allows(
            &check,
            "POST",
            &[("origin", "https://APP.example.com")]
        ));
        assert!(!allows(
            &check,
            "POST",
            &[("origin", "https://evil.example")]
        ));
        assert!(!allows(&check, "POST", &[("origin", "null")]));
        assert!(!allows(
            &check,
            "POST",
            &[("origin", "https://app.example.com.evil.example")]
        ));
    }

    #[test]
    fn without_either_header_the_request_is_not_from_a_browser() {
        assert!(allows(&CrossOrigin::new(), "POST", &[]));
    }

    #[test]
    fn repeated_headers_are_refused() {
        let check = CrossOrigin::new();
        let headers = [
            ("sec-fetch-site", "same-origin"),
            ("sec-fetch-site", "cross-site"),
        ];
        assert!(!allows(&check, "POST", &headers));
        let origins = [
            ("origin", "https://app.example.com"),
            ("origin", "https://evil.example"),
        ];
        assert!(!allows(&check, "POST", &origins));
    }

    #[test]
    fn trusted_origins_must_be_bare_origins() {
        for bad in [
            "admin.example.com",
            "https://admin.example.com/",
            "https://admin.example.com/path",
            "https://user@admin.example.com",
            "ftp://admin.example.com",
            "https://",
        ] {
            assert!(CrossOrigin::new().trust_origin(bad).is_err(), "{bad}");
        }
        assert!(
            CrossOrigin::new()
                .trust_origin("http://127.0.0.1:3000")
                .is_ok()
        );
    }
}
