//! The session cookie: how it is named and flagged, read from `Cookie` and written as
//! `Set-Cookie`.
//!
//! Both directions are written here rather than with the `cookie` crate: the value is always an
//! opaque token (base62 with a prefix of `[A-Za-z0-9_-]`), so `Set-Cookie` is one fixed format,
//! and reading needs no allocation, which the request path of every browser request pays for.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use axum_core::response::{IntoResponseParts, ResponseParts};
use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderMap, HeaderValue};

/// The `SameSite` attribute of the session cookie. `None` is not offered: it would send the
/// cookie with every cross-site request, which is what the attribute is there to stop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SameSite {
    /// Sent on top-level navigations from other sites (following a link), not on their
    /// subrequests or form posts. The default.
    #[default]
    Lax,
    /// Never sent on a request another site started, not even a followed link.
    Strict,
}

/// How the session cookie is named and flagged.
///
/// The default is `__Host-session=…; Path=/; Max-Age=<lifetime>; HttpOnly; Secure;
/// SameSite=Lax`. The `__Host-` prefix makes browsers refuse the cookie unless it is `Secure`,
/// has `Path=/` and no `Domain`, so neither a sibling subdomain nor a plain-HTTP page can
/// plant or overwrite it (RFC 6265bis §4.1.3.2; OWASP ASVS 5.0 V3.3.1); `HttpOnly` keeps it
/// from scripts (V3.3.4).
///
/// ```
/// use portcullis::session::{SameSite, SessionCookieConfig};
///
/// let config = SessionCookieConfig::new().name("__Host-khoj")?.same_site(SameSite::Strict);
/// assert_eq!(config.cookie_name(), "__Host-khoj");
///
/// // Plain HTTP on another machine (browsers treat localhost as secure already).
/// let dev = SessionCookieConfig::new().insecure_for_plain_http();
/// assert_eq!(dev.cookie_name(), "session");
/// # Ok::<(), portcullis::session::InvalidCookieName>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionCookieConfig {
    name: Cow<'static, str>,
    secure: bool,
    same_site: SameSite,
    persistent: bool,
}

/// A cookie name that is not an RFC 6265 token, or a `__Host-`/`__Secure-` name for a cookie
/// that is not `Secure`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid session cookie name {0:?}")]
pub struct InvalidCookieName(String);

const HOST_PREFIX: &str = "__Host-";
const SECURE_PREFIX: &str = "__Secure-";

impl Default for SessionCookieConfig {
    fn default() -> Self {
        Self {
            name: Cow::Borrowed("__Host-session"),
            secure: true,
            same_site: SameSite::Lax,
            persistent: true,
        }
    }
}

impl SessionCookieConfig {
    /// The secure default (see the type docs).
    pub fn new() -> Self {
        Self::default()
    }

    /// Names the cookie. The name must be an RFC 6265 token (letters, digits and
    /// ``!#$%&'*+-.^_`|~``), at most 64 bytes.
    pub fn name(mut self, name: &str) -> Result<Self, InvalidCookieName> {
        let is_token = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !is_token || (!self.secure && without_secure_prefix(name).is_some()) {
            return Err(InvalidCookieName(name.to_owned()));
        }
        self.name = Cow::Owned(name.to_owned());
        Ok(self)
    }

    /// Sets the `SameSite` attribute.
    #[must_use]
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = same_site;
        self
    }

    /// Leaves out `Max-Age`, so that the browser forgets the cookie when it closes. The server
    /// still ends the session at its idle and absolute timeouts.
    #[must_use]
    pub fn browser_session(mut self) -> Self {
        self.persistent = false;
        self
    }

    /// Leaves out `Secure`, for development over plain HTTP on a host other than `localhost`.
    /// A `__Host-` or `__Secure-` prefix requires `Secure`, so it is dropped from the name.
    /// Never use this in production: the cookie then travels in clear text.
    #[must_use]
    pub fn insecure_for_plain_http(mut self) -> Self {
        self.secure = false;
        if let Some(bare) = without_secure_prefix(&self.name) {
            self.name = Cow::Owned(bare.to_owned());
        }
        self
    }

    /// The cookie's name.
    pub fn cookie_name(&self) -> &str {
        &self.name
    }

    /// Whether the cookie is flagged `Secure`.
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// The `Set-Cookie` header that stores `value` for `max_age`.
    pub(crate) fn set(&self, value: &str, max_age: Duration) -> SetSessionCookie {
        let max_age = self.persistent.then_some(max_age.as_secs());
        SetSessionCookie(self.header(value, max_age))
    }

    /// The `Set-Cookie` header that makes the browser delete the cookie.
    pub(crate) fn removal(&self) -> SetSessionCookie {
        SetSessionCookie(self.header("", Some(0)))
    }

    fn header(&self, value: &str, max_age: Option<u64>) -> HeaderValue {
        use std::fmt::Write;
        let mut header = format!("{}={value}; Path=/", self.name);
        if let Some(seconds) = max_age {
            let _ = write!(header, "; Max-Age={seconds}");
        }
        header.push_str("; HttpOnly");
        if self.secure {
            header.push_str("; Secure");
        }
        header.push_str(match self.same_site {
            SameSite::Lax => "; SameSite=Lax",
            SameSite::Strict => "; SameSite=Strict",
        });
        // The name is a token and the value base62 (validated where they come from).
        HeaderValue::from_str(&header).expect("a session cookie is a valid header value")
    }

    /// The value of the session cookie in `headers` (see [`session_cookie`]).
    pub fn find<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        session_cookie(headers, &self.name)
    }
}

/// `name` without its `__Host-` or `__Secure-` prefix, if it has one. Browsers match the
/// prefixes ignoring ASCII case (RFC 6265bis §5.7), so this does too.
fn without_secure_prefix(name: &str) -> Option<&str> {
    [HOST_PREFIX, SECURE_PREFIX].into_iter().find_map(|prefix| {
        let start = name.get(..prefix.len())?;
        start
            .eq_ignore_ascii_case(prefix)
            .then(|| &name[prefix.len()..])
    })
}

/// The value of the cookie `name` in the request's `Cookie` headers (RFC 6265 §5.4), or `None`
/// when it is absent, empty, or present more than once.
///
/// A repeated name is refused rather than resolved: a browser sends two cookies of one name
/// only when someone else (a sibling subdomain, a plain-HTTP page) planted the second one, and
/// honouring either would let the planter choose the session (a `__Host-` name rules that
/// out in current browsers). Malformed pairs and non-ASCII headers are skipped.
///
/// ```
/// use portcullis::session::session_cookie;
///
/// let mut headers = http::HeaderMap::new();
/// headers.insert("cookie", "theme=dark; __Host-session=pcs_abc; lang=en".parse()?);
/// assert_eq!(session_cookie(&headers, "__Host-session"), Some("pcs_abc"));
/// assert_eq!(session_cookie(&headers, "missing"), None);
///
/// headers.append("cookie", "__Host-session=planted".parse()?);
/// assert_eq!(session_cookie(&headers, "__Host-session"), None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn session_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut found = None;
    for header in headers.get_all(COOKIE).iter() {
        let Ok(text) = header.to_str() else { continue };
        for pair in text.split(';') {
            let Some((key, value)) = pair.split_once('=') else {
                continue;
            };
            if key.trim_matches(is_space) != name {
                continue;
            }
            if found.is_some() {
                return None;
            }
            let value = value.trim_matches(is_space);
            // A cookie-value may be wrapped in double quotes (RFC 6265 §4.1.1).
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            found = Some(value);
        }
    }
    found.filter(|value| !value.is_empty())
}

fn is_space(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// A `Set-Cookie` header for the session cookie: add it to a response (it is
/// [`IntoResponseParts`], so a handler can return `(cookie, body)`).
///
/// Its `Debug` output hides the value, which is the session's secret.
#[derive(Clone)]
pub struct SetSessionCookie(HeaderValue);

impl SetSessionCookie {
    /// The header value.
    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }
}

impl fmt::Debug for SetSessionCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SetSessionCookie(..)")
    }
}

impl IntoResponseParts for SetSessionCookie {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        res.headers_mut().append(SET_COOKIE, self.0);
        Ok(res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(COOKIE, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn the_default_cookie_is_host_prefixed_http_only_secure_and_lax() {
        let cookie = SessionCookieConfig::new().set("pcs_x", Duration::from_secs(3600));
        assert_eq!(
            cookie.header_value(),
            "__Host-session=pcs_x; Path=/; Max-Age=3600; HttpOnly; Secure; SameSite=Lax"
        );
    }

    #[test]
    fn removal_expires_the_cookie_at_once() {
        let removal = SessionCookieConfig::new()
            .same_site(SameSite::Strict)
            .removal();
        assert_eq!(
            removal.header_value(),
            "__Host-session=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict"
        );
    }

    #[test]
    fn a_browser_session_cookie_has_no_max_age() {
        let cookie = SessionCookieConfig::new()
            .browser_session()
            .set("v", Duration::from_secs(60));
        assert!(!cookie.header_value().to_str().unwrap().contains("Max-Age"));
    }

    #[test]
    fn the_config_finds_its_own_cookie_and_says_whether_it_is_secure() {
        let config = SessionCookieConfig::new();
        assert!(config.is_secure());
        let h = headers(&["session=plain; __Host-session=pcs_x"]);
        assert_eq!(config.find(&h), Some("pcs_x"));
        let plain = config.insecure_for_plain_http();
        assert!(!plain.is_secure());
        assert_eq!(plain.find(&h), Some("plain"));
    }

    #[test]
    fn debug_output_never_shows_the_session_id() {
        let cookie = SessionCookieConfig::new().set("pcs_secret", Duration::from_secs(1));
        assert_eq!(format!("{cookie:?}"), "SetSessionCookie(..)");
    }

    #[test]
    fn plain_http_drops_secure_and_the_prefix() {
        let config = SessionCookieConfig::new().insecure_for_plain_http();
        assert_eq!(
            config.set("v", Duration::from_secs(1)).header_value(),
            "session=v; Path=/; Max-Age=1; HttpOnly; SameSite=Lax"
        );
        assert!(config.clone().name("__host-x").is_err());
        assert!(config.name("khoj_session").is_ok());
        // A prefix in another case is one to browsers too, so it is dropped as well.
        let lower = SessionCookieConfig::new().name("__secure-khoj").unwrap();
        assert_eq!(lower.insecure_for_plain_http().cookie_name(), "khoj");
    }

    #[test]
    fn names_must_be_tokens() {
        for bad in ["", "a b", "a;b", "a=b", "ä", "a,b", &"x".repeat(65)] {
            assert!(SessionCookieConfig::new().name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn finds_the_cookie_among_others_and_across_headers() {
        let h = headers(&["a=1; b=2", "session=v; c=3"]);
        assert_eq!(session_cookie(&h, "session"), Some("v"));
        assert_eq!(session_cookie(&h, "b"), Some("2"));
        assert_eq!(
            session_cookie(&headers(&["session=\"v\""]), "session"),
            Some("v")
        );
        assert_eq!(
            session_cookie(&headers(&[" \tsession = v ;"]), "session"),
            Some("v")
        );
    }

    #[test]
    fn absent_empty_or_repeated_cookies_are_none() {
        assert_eq!(session_cookie(&HeaderMap::new(), "session"), None);
        assert_eq!(session_cookie(&headers(&["session="]), "session"), None);
        assert_eq!(session_cookie(&headers(&["sessionx=1"]), "session"), None);
        assert_eq!(session_cookie(&headers(&["session"]), "session"), None);
        assert_eq!(
            session_cookie(&headers(&["session=a; session=b"]), "session"),
            None
        );
        assert_eq!(
            session_cookie(&headers(&["session=a", "session=a"]), "session"),
            None
        );
    }

    proptest::proptest! {
        /// Whatever other cookies surround it, in one header or several, the session cookie
        /// is found exactly as it was set.
        #[test]
        fn the_session_cookie_is_found_among_any_others(
            before in proptest::collection::vec(("[a-z]{1,8}", "[!#-+--:<-\\[-~]{0,12}"), 0..4),
            after in proptest::collection::vec(("[a-z]{1,8}", "[!#-+--:<-\\[-~]{0,12}"), 0..4),
            value in "pcs_[A-Za-z0-9]{1,49}",
            split in proptest::bool::ANY,
        ) {
            let pairs = |list: &[(String, String)]| {
                list.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>()
            };
            let mut all = pairs(&before);
            all.push(format!("__Host-session={value}"));
            all.extend(pairs(&after));
            let h = if split {
                headers(&all.iter().map(String::as_str).collect::<Vec<_>>())
            } else {
                headers(&[all.join("; ").as_str()])
            };
            proptest::prop_assert_eq!(session_cookie(&h, "__Host-session"), Some(value.as_str()));
        }
    }

    #[test]
    fn a_non_ascii_header_is_skipped() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_bytes(b"x=\xff").unwrap());
        h.append(COOKIE, HeaderValue::from_static("session=v"));
        assert_eq!(session_cookie(&h, "session"), Some("v"));
    }
}
