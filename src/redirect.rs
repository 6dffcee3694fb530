//! [`LocalRedirect`]: a post-login destination (`?next=/documents`) that cannot leave this site;
//! [`LoginRedirect`]: the renderer that sends a browser refused a page to the login page with it.
//!
//! A login page that sends the user on to a `next` parameter is an open redirector if it
//! follows any URL: a phishing mail links to `https://app.example/login?next=https://evil.example`,
//! the user signs in on the real site and lands, signed in and trusting, on the attacker's copy
//! (CWE-601; RFC 9700 §4.11 for the OAuth variant). Checking "starts with `/`" is not enough,
//! because browsers resolve URLs by the WHATWG URL standard, not by RFC 3986:
//!
//! * `//evil.example` is a scheme-relative URL: another host;
//! * `/\evil.example` is the same, since a browser reads `\` as `/` in `http(s)` URLs;
//! * `/\t/evil.example` becomes `//evil.example`, since a browser deletes tabs and newlines
//!   anywhere in a URL;
//! * `/%2F/evil.example` is a path here, but becomes `//evil.example` wherever it is decoded once
//!   more (a proxy, a second redirect hop).
//!
//! So [`LocalRedirect::parse`] accepts only a path-absolute reference (RFC 3986 §4.2) built of
//! the characters a URI may hold, refuses backslashes, whitespace and control characters outright,
//! refuses a second `/` or `\` after the first even when percent-encoded, and percent-encodes
//! non-ASCII characters (`/café` → `/caf%C3%A9`) so the result is always a valid `Location`.
//! A property test and a fuzz target resolve every accepted value with a WHATWG URL parser
//! against `https://app.example/` and check that the origin never changes.

pub use crate::login_redirect::LoginRedirect;

use std::fmt;
use std::str::FromStr;

use axum_core::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, LOCATION};
use http::{HeaderValue, StatusCode};
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, percent_encode};

/// A redirect target on this site: a path, with optional query and fragment (see the
/// [module docs](self) for what is refused and why).
///
/// As a response it is `303 See Other` with the `Location` header, which makes the browser
/// follow with a `GET` after a login form's `POST`.
///
/// ```
/// use portcullis::redirect::LocalRedirect;
///
/// assert_eq!(LocalRedirect::parse("/documents?page=2")?.as_str(), "/documents?page=2");
/// assert!(LocalRedirect::parse("https://evil.example/").is_err());
/// assert!(LocalRedirect::parse("//evil.example").is_err());
/// assert!(LocalRedirect::parse("/\\evil.example").is_err());
///
/// // In a login handler: the `next` parameter, or the home page when it is absent or unsafe.
/// let next: Option<&str> = Some("https://evil.example/");
/// assert_eq!(LocalRedirect::next_or_root(next).as_str(), "/");
/// # Ok::<(), portcullis::redirect::UnsafeRedirect>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LocalRedirect(String);

/// Why a redirect target was refused by [`LocalRedirect::parse`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnsafeRedirect {
    /// The target is empty.
    #[error("the redirect target is empty")]
    Empty,
    /// The target is longer than [`LocalRedirect::MAX_LEN`] bytes.
    #[error("the redirect target is longer than {} bytes", LocalRedirect::MAX_LEN)]
    TooLong,
    /// The target does not start with `/`: an absolute URL (`https://…`, `javascript:…`) or a
    /// relative path, whose meaning depends on the page it is resolved against.
    #[error("the redirect target is not a path starting with /")]
    NotAPath,
    /// The target starts with `//` or `/\`, literally or once percent-decoded: another host.
    #[error("the redirect target names another host")]
    OtherHost,
    /// The target holds a character no URI may hold unencoded (whitespace, a control character,
    /// `\`, `"`, `<`, `>`, `[`, `]`, `^`, `` ` ``, `{`, `|`, `}`).
    #[error("the redirect target holds the character {0:?}")]
    Character(char),
    /// A `%` is not followed by two hexadecimal digits.
    #[error("the redirect target holds a malformed percent-encoding")]
    PercentEncoding,
}

impl LocalRedirect {
    /// The longest target accepted, in bytes as given (before non-ASCII is percent-encoded).
    pub const MAX_LEN: usize = 2048;

    /// Checks that `target` stays on this site; see the [module docs](self).
    ///
    /// # Errors
    ///
    /// [`UnsafeRedirect`] says what was wrong. A login handler usually ignores it and sends
    /// the user home ([`next_or_root`](Self::next_or_root)).
    pub fn parse(target: &str) -> Result<Self, UnsafeRedirect> {
        if target.is_empty() {
            return Err(UnsafeRedirect::Empty);
        }
        if target.len() > Self::MAX_LEN {
            return Err(UnsafeRedirect::TooLong);
        }
        if !target.starts_with('/') {
            return Err(UnsafeRedirect::NotAPath);
        }
        let mut checked = String::with_capacity(target.len());
        let mut rest = target.chars();
        while let Some(c) = rest.next() {
            match c {
                '%' => {
                    let (Some(high), Some(low)) = (rest.next(), rest.next()) else {
                        return Err(UnsafeRedirect::PercentEncoding);
                    };
                    if !high.is_ascii_hexdigit() || !low.is_ascii_hexdigit() {
                        return Err(UnsafeRedirect::PercentEncoding);
                    }
                    checked.extend([c, high, low]);
                }
                c if is_uri_char(c) => checked.push(c),
                c if !c.is_ascii() && !c.is_control() && !c.is_whitespace() => {
                    let mut utf8 = [0; 4];
                    let bytes = c.encode_utf8(&mut utf8).as_bytes();
                    checked.extend(percent_encode(bytes, NON_ALPHANUMERIC));
                }
                c => return Err(UnsafeRedirect::Character(c)),
            }
        }
        if names_other_host(&checked) {
            return Err(UnsafeRedirect::OtherHost);
        }
        Ok(Self(checked))
    }

    /// The site's root, `/`.
    pub fn root() -> Self {
        Self("/".to_owned())
    }

    /// `next` when it stays on this site, otherwise [`root`](Self::root): what a login handler
    /// sends the user on to. An empty `next` counts as absent (a form's hidden field submits
    /// `next=` when the page had none); a refused one is logged at `debug` level by its reason
    /// only (the value is attacker-chosen text).
    pub fn next_or_root(next: Option<&str>) -> Self {
        match next.filter(|next| !next.is_empty()).map(Self::parse) {
            Some(Ok(local)) => local,
            Some(Err(reason)) => {
                tracing::debug!(%reason, "post-login redirect refused; sending the user to /");
                Self::root()
            }
            None => Self::root(),
        }
    }

    /// The target: a path, with optional query and fragment, in URI characters only.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The characters RFC 3986 allows unencoded in a path, query and fragment (`pchar`, `/`, `?`,
/// `#`); `%` is handled by the caller.
fn is_uri_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/?#".contains(c)
}

/// Whether `path` (already checked to hold URI characters only) starts with `//` or `/\` once
/// its percent-encodings are decoded and tabs and newlines deleted, as a browser would.
fn names_other_host(path: &str) -> bool {
    let mut start = percent_decode_str(path).filter(|byte| !matches!(byte, b'\t' | b'\n' | b'\r'));
    matches!(
        (start.next(), start.next()),
        (Some(b'/'), Some(b'/' | b'\\'))
    )
}

impl FromStr for LocalRedirect {
    type Err = UnsafeRedirect;

    fn from_str(target: &str) -> Result<Self, Self::Err> {
        Self::parse(target)
    }
}

impl fmt::Display for LocalRedirect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for LocalRedirect {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl IntoResponse for LocalRedirect {
    fn into_response(self) -> Response {
        let location = match HeaderValue::try_from(self.0) {
            Ok(location) => location,
            // `parse` admits URI characters only, all of them valid in a header value.
            Err(_) => HeaderValue::from_static("/"),
        };
        (
            StatusCode::SEE_OTHER,
            [
                (LOCATION, location),
                // The redirect follows a login: no cache may replay it to someone else.
                (CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_are_kept_as_given() {
        for path in [
            "/",
            "/documents",
            "/documents/42?tab=shared&sort=-created#top",
            "/a/../b",
            "/%7Euser/file%20name",
            "/search?q=a+b&x=%2F%2F",
            "/:@!$&'()*+,;=-._~",
        ] {
            let local = LocalRedirect::parse(path).unwrap();
            assert_eq!(local.as_str(), path);
            assert_eq!(local.as_ref(), path);
            assert_eq!(local.to_string(), path);
            assert_eq!(path.parse::<LocalRedirect>(), Ok(local));
        }
    }

    #[test]
    fn non_ascii_is_percent_encoded() {
        assert_eq!(
            LocalRedirect::parse("/café?q=ｄ").unwrap().as_str(),
            "/caf%C3%A9?q=%EF%BD%84"
        );
    }

    // CWE-601: every way a browser reads a string starting with `/` as another host.
    #[test]
    fn other_hosts_are_refused_cwe_601() {
        for target in [
            "//evil.example",
            "///evil.example",
            "/%2Fevil.example",
            "/%2fevil.example",
            "/%5Cevil.example",
            "/%09/evil.example",
            "/%0A%2F/evil.example",
        ] {
            assert_eq!(
                LocalRedirect::parse(target),
                Err(UnsafeRedirect::OtherHost),
                "{target:?}"
            );
        }
        for (target, refused) in [
            ("/\\evil.example", '\\'),
            ("/\t/evil.example", '\t'),
            ("/\n/evil.example", '\n'),
            ("/\r/evil.example", '\r'),
            ("/ /evil.example", ' '),
            ("/\u{3000}/evil.example", '\u{3000}'),
            ("/a\u{0}", '\u{0}'),
            ("/\u{85}", '\u{85}'),
            ("/x<script>", '<'),
            ("/[::1]", '['),
        ] {
            assert_eq!(
                LocalRedirect::parse(target),
                Err(UnsafeRedirect::Character(refused)),
                "{target:?}"
            );
        }
    }

    #[test]
    fn absolute_and_relative_urls_are_refused() {
        for target in [
            "https://evil.example/",
            "http:evil.example",
            "javascript:alert(1)",
            "data:text/html,x",
            "evil.example",
            "documents",
            "./documents",
            "?next=//evil",
            "#x",
        ] {
            assert_eq!(
                LocalRedirect::parse(target),
                Err(UnsafeRedirect::NotAPath),
                "{target:?}"
            );
        }
        assert_eq!(LocalRedirect::parse(""), Err(UnsafeRedirect::Empty));
    }

    #[test]
    fn malformed_percent_encoding_and_oversized_targets_are_refused() {
        for target in ["/%", "/%4", "/%G0", "/%%41", "/a%é0"] {
            assert_eq!(
                LocalRedirect::parse(target),
                Err(UnsafeRedirect::PercentEncoding),
                "{target:?}"
            );
        }
        let long = format!("/{}", "a".repeat(LocalRedirect::MAX_LEN));
        assert_eq!(LocalRedirect::parse(&long), Err(UnsafeRedirect::TooLong));
        assert!(LocalRedirect::parse(&long[..LocalRedirect::MAX_LEN]).is_ok());
    }

    #[test]
    fn next_or_root_falls_back_to_the_root() {
        assert_eq!(LocalRedirect::next_or_root(None).as_str(), "/");
        assert_eq!(LocalRedirect::next_or_root(Some("")).as_str(), "/");
        assert_eq!(LocalRedirect::next_or_root(Some("//evil")).as_str(), "/");
        assert_eq!(LocalRedirect::next_or_root(Some("/docs")).as_str(), "/docs");
    }

    #[test]
    fn the_response_is_303_see_other_and_not_cached() {
        let response = LocalRedirect::parse("/caf%C3%A9").unwrap().into_response();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(response.headers()[LOCATION], "/caf%C3%A9");
        assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    }

    mod properties {
        use proptest::prelude::*;
        use url::Url;

        use super::*;

        const BASE: &str = "https://app.example/login/form";

        /// Strings built of the pieces browsers and proxies treat specially.
        fn tricky() -> impl Strategy<Value = String> {
            let piece = prop::sample::select(vec![
                "/",
                "//",
                "\\",
                "%2F",
                "%2f",
                "%5C",
                "%5c",
                "%09",
                "%0A",
                "%0d",
                "%00",
                "%25",
                "%",
                "%G",
                "\t",
                "\n",
                "\r",
                " ",
                ".",
                "..",
                ":",
                "@",
                "?",
                "#",
                "&",
                "evil.example",
                "a",
                "é",
                "％",
                "／",
                "\u{3000}",
                "\u{85}",
                "http:",
                "https://",
                "javascript:",
                "[",
                "]",
                "<",
                "|",
            ]);
            prop::collection::vec(piece, 0..10).prop_map(|pieces| pieces.concat())
        }

        fn same_origin(target: &str) -> bool {
            let base = Url::parse(BASE).expect("valid base");
            base.join(target)
                .is_ok_and(|resolved| resolved.origin() == base.origin())
        }

        /// One round of percent-decoding, as a proxy or a second redirect hop would do.
        fn percent_decoded(target: &str) -> String {
            let bytes = target.as_bytes();
            let mut decoded = Vec::with_capacity(bytes.len());
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == b'%'
                    && let Some(byte) = target
                        .get(i + 1..i + 3)
                        .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                {
                    decoded.push(byte);
                    i += 3;
                } else {
                    decoded.push(bytes[i]);
                    i += 1;
                }
            }
            String::from_utf8_lossy(&decoded).into_owned()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(20_000))]

            // CWE-601: whatever is accepted resolves, by the WHATWG URL rules browsers follow,
            // to this origin, also after one more round of percent-decoding.
            #[test]
            fn accepted_targets_stay_on_this_origin(
                target in prop_oneof![
                    tricky(),
                    tricky().prop_map(|tail| format!("/{tail}")),
                    "\\PC{0,40}",
                    "/\\PC{0,40}",
                ],
            ) {
                if let Ok(local) = LocalRedirect::parse(&target) {
                    let local = local.as_str();
                    prop_assert!(same_origin(local), "{target:?} → {local:?}");
                    prop_assert!(same_origin(&percent_decoded(local)), "{target:?} → {local:?}");
                    prop_assert!(HeaderValue::from_str(local).is_ok());
                    let reparsed = LocalRedirect::parse(local);
                    prop_assert_eq!(reparsed.as_ref().map(LocalRedirect::as_str), Ok(local));
                    if target.is_ascii() {
                        prop_assert_eq!(local, target.as_str());
                    }
                }
            }
        }
    }
}
