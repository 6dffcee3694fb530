//! [`LoginRedirect`]: a browser that opens a page it may not see is sent to the login page.

use axum_core::response::{IntoResponse, Response};
use http::header::{ACCEPT, AUTHORIZATION, CACHE_CONTROL, LOCATION, VARY};
use http::{HeaderValue, Method, StatusCode};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use crate::error::{AuthError, ErrorRenderer, JsonErrors, RequestHead};

/// An [`ErrorRenderer`] that answers a browser *navigation* refused for want of a sign-in
/// (any `401`: no credential, an expired session, a sign-in too old or too weak for the page)
/// with `303 See Other` to the login page, carrying the page in `next`; everything else —
/// API calls, `fetch`, form posts, `403`s, `429`s — is rendered by the inner renderer
/// ([`JsonErrors`] by default), so API clients keep their JSON and `WWW-Authenticate`.
///
/// A navigation is a `GET` or `HEAD` without an `Authorization` header whose
/// `Sec-Fetch-Mode` is `navigate`, or, from a browser too old to send that header, whose
/// `Accept` names `text/html`. The `next` it writes is the request's own path and query, so
/// the login handler's [`LocalRedirect`](crate::redirect::LocalRedirect) accepts it.
///
/// ```
/// use portcullis::{AuthLayer, JsonErrors};
/// use portcullis::redirect::LoginRedirect;
///
/// let layer = AuthLayer::builder()
///     .renderer(LoginRedirect::new("/login", JsonErrors::new("khoj")))
///     .build();
/// # let _ = layer;
/// ```
#[derive(Clone, Debug)]
pub struct LoginRedirect<R = JsonErrors> {
    login_path: String,
    inner: R,
}

impl<R: ErrorRenderer> LoginRedirect<R> {
    /// Sends refused navigations to `login_path` (a path on this site, such as `/login`) and
    /// renders everything else with `inner`.
    ///
    /// # Panics
    ///
    /// When `login_path` is not a path on this site (see
    /// [`LocalRedirect::parse`](crate::redirect::LocalRedirect::parse)) or already has a query.
    pub fn new(login_path: &str, inner: R) -> Self {
        let parsed = crate::redirect::LocalRedirect::parse(login_path);
        assert!(
            parsed.is_ok() && !login_path.contains(['?', '#']),
            "the login page is a path on this site, without a query: {login_path:?}"
        );
        Self {
            login_path: login_path.to_owned(),
            inner,
        }
    }

    /// Where a refused navigation of `request` is sent: the login page with the request's
    /// path and query as `next`.
    fn location(&self, request: &RequestHead<'_>) -> String {
        let page = request
            .uri()
            .path_and_query()
            .map_or("/", |target| target.as_str());
        let next = utf8_percent_encode(page, NON_ALPHANUMERIC);
        format!("{}?next={next}", self.login_path)
    }
}

/// Whether `request` is a browser loading a page (not a script, not a form post).
fn is_navigation(request: &RequestHead<'_>) -> bool {
    let headers = request.headers();
    if !matches!(*request.method(), Method::GET | Method::HEAD)
        || headers.contains_key(AUTHORIZATION)
    {
        return false;
    }
    match headers.get("sec-fetch-mode") {
        Some(mode) => mode.as_bytes().eq_ignore_ascii_case(b"navigate"),
        None => headers
            .get_all(ACCEPT)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|item| {
                let media = item.split(';').next().unwrap_or("").trim();
                media.eq_ignore_ascii_case("text/html")
            }),
    }
}

impl<R: ErrorRenderer> ErrorRenderer for LoginRedirect<R> {
    fn render(&self, error: &AuthError) -> Response {
        self.inner.render(error)
    }

    fn render_for(&self, request: &RequestHead<'_>, error: &AuthError) -> Response {
        if error.status() != StatusCode::UNAUTHORIZED || !is_navigation(request) {
            let mut response = self.inner.render_for(request, error);
            // The answer to the same URL depends on these: no cache may hand a browser the
            // JSON an API client was given, or the other way round.
            for name in ["accept", "sec-fetch-mode"] {
                response
                    .headers_mut()
                    .append(VARY, HeaderValue::from_static(name));
            }
            return response;
        }
        let location = HeaderValue::try_from(self.location(request))
            .unwrap_or_else(|_| HeaderValue::from_static("/"));
        (
            StatusCode::SEE_OTHER,
            [
                (LOCATION, location),
                (CACHE_CONTROL, HeaderValue::from_static("no-store")),
                (VARY, HeaderValue::from_static("accept, sec-fetch-mode")),
            ],
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, Uri};

    use super::*;
    use crate::InvalidToken;

    fn answer(method: Method, uri: &str, headers: &[(&str, &str)], error: AuthError) -> Response {
        let uri: Uri = uri.parse().unwrap();
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        LoginRedirect::new("/login", JsonErrors::default())
            .render_for(&RequestHead::new(&method, &uri, &map), &error)
    }

    fn location(response: &Response) -> &str {
        response.headers()[LOCATION].to_str().unwrap()
    }

    #[test]
    fn a_refused_navigation_goes_to_the_login_page_with_the_page_as_next() {
        let navigate = [("sec-fetch-mode", "navigate"), ("accept", "text/html")];
        let response = answer(
            Method::GET,
            "/settings?tab=keys",
            &navigate,
            AuthError::MissingCredentials,
        );
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&response), "/login?next=%2Fsettings%3Ftab%3Dkeys");
        let next = location(&response).split_once("next=").unwrap().1;
        let decoded = percent_encoding::percent_decode_str(next)
            .decode_utf8()
            .unwrap();
        assert!(crate::redirect::LocalRedirect::parse(&decoded).is_ok());

        let expired = answer(
            Method::GET,
            "/",
            &[("accept", "text/html,application/xhtml+xml;q=0.9")],
            InvalidToken::Expired.into(),
        );
        assert_eq!(location(&expired), "/login?next=%2F");
    }

    #[test]
    fn api_calls_scripts_posts_and_other_refusals_keep_the_inner_answer() {
        let cases = [
            (
                Method::GET,
                vec![("accept", "application/json")],
                AuthError::MissingCredentials,
            ),
            (
                Method::GET,
                vec![("sec-fetch-mode", "cors"), ("accept", "text/html")],
                AuthError::MissingCredentials,
            ),
            (
                Method::GET,
                vec![("accept", "text/html"), ("authorization", "Bearer x")],
                InvalidToken::Malformed.into(),
            ),
            (
                Method::POST,
                vec![("sec-fetch-mode", "navigate")],
                AuthError::MissingCredentials,
            ),
            (
                Method::GET,
                vec![("sec-fetch-mode", "navigate")],
                AuthError::Forbidden { scope: None },
            ),
            (Method::GET, vec![], AuthError::MissingCredentials),
        ];
        for (method, headers, error) in cases {
            let status = error.status();
            let response = answer(method.clone(), "/settings", &headers, error);
            assert_eq!(response.status(), status, "{method} {headers:?}");
            assert!(!response.headers().contains_key(LOCATION));
            assert!(
                response
                    .headers()
                    .get_all(VARY)
                    .iter()
                    .any(|v| v == "accept")
            );
        }
    }

    #[test]
    #[should_panic(expected = "a path on this site")]
    fn the_login_page_must_be_on_this_site() {
        let _ = LoginRedirect::new("https://evil.example/login", JsonErrors::default());
    }
}
