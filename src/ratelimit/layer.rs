//! [`RateLimitLayer`], its service and its response future.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum_core::response::Response;
use http::request::Parts;
use http::{HeaderValue, Request, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::client_ip::ClientIp;
use super::headers::{PolicyHeaders, RateLimitHeaders};
use super::memory::MemoryLimits;
use super::policy::{Decision, Policy, RequestKey, request_key};
#[cfg(feature = "redis")]
use super::redis::{RedisLimits, WhenRedisDown};
use crate::error::{AuthError, Renderer, RequestHead};

/// Where the buckets live.
pub(crate) enum Backend {
    Memory(MemoryLimits),
    #[cfg(feature = "redis")]
    Redis(Box<RedisLimits>),
}

pub(crate) struct Limits {
    pub(crate) policies: Vec<Policy>,
    pub(crate) headers: PolicyHeaders,
    pub(crate) client_ip: Option<ClientIp>,
    pub(crate) backend: Backend,
}

/// Rate limits for the routes it wraps: GCRA policies keyed by client IP, user, API key, route
/// or your own key; several policies stack. Each response carries `RateLimit-Policy` and
/// `RateLimit` headers (draft-ietf-httpapi-ratelimit-headers); a refused request gets `429`
/// with `Retry-After` and `{"detail": "Too many requests"}` (rendered by the `AuthLayer`'s
/// renderer when one runs first).
///
/// Place it inside the `AuthLayer` (add it with `.layer()` *before* the `AuthLayer`) when a
/// policy keys by user or API key, so that the identity is known; place a policy that counts
/// failed authentications ([`Charge::FailedAuthentication`](super::Charge)) in front of it
/// (add it *after*), so that a bad credential is counted before it is checked.
///
/// ```
/// use std::net::SocketAddr;
/// use axum::{Router, extract::ConnectInfo, routing::post};
/// use portcullis::ratelimit::{ClientIp, KeyBy, Limit, Policy, RateLimitLayer};
///
/// let limits = RateLimitLayer::builder()
///     .policy(Policy::new("login", Limit::per_minute(10), KeyBy::ClientIp)?)
///     .client_ip(ClientIp::new(|parts| {
///         parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0)
///     }))
///     .build()?;
/// let app: Router = Router::new().route("/login", post(|| async { "ok" }).layer(limits));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct RateLimitLayer {
    limits: Arc<Limits>,
}

impl std::fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("policies", &self.limits.policies)
            .finish_non_exhaustive()
    }
}

impl RateLimitLayer {
    pub(crate) fn from_limits(limits: Limits) -> Self {
        Self {
            limits: Arc::new(limits),
        }
    }

    /// Buckets currently held in memory (0 on Redis), e.g. for a memory test or a metric.
    pub fn buckets_in_memory(&self) -> usize {
        match &self.limits.backend {
            Backend::Memory(memory) => memory.len(),
            #[cfg(feature = "redis")]
            Backend::Redis(_) => 0,
        }
    }

    /// Drops in-memory buckets that have refilled (the janitor does this every 5 s).
    pub fn retain_recent(&self) {
        #[cfg_attr(not(feature = "redis"), allow(irrefutable_let_patterns))]
        if let Backend::Memory(memory) = &self.limits.backend {
            memory.retain_recent();
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            limits: Arc::clone(&self.limits),
        }
    }
}

/// The middleware [`RateLimitLayer`] produces.
#[derive(Clone)]
pub struct RateLimitService<S> {
    inner: S,
    limits: Arc<Limits>,
}

impl<S> std::fmt::Debug for RateLimitService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitService").finish_non_exhaustive()
    }
}

/// The outcome for one request over every policy that applies.
enum Verdict {
    Allowed(RateLimitHeaders),
    Refused(RateLimitHeaders, Duration),
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    Unavailable,
}

impl Limits {
    /// Each applicable policy's index and the request's key under it, in policy order.
    fn keys<'a>(&'a self, request: &'a Parts) -> impl Iterator<Item = (usize, RequestKey)> + 'a {
        let mut client_ip = None;
        self.policies
            .iter()
            .enumerate()
            .filter_map(move |(index, policy)| {
                let ip = || {
                    *client_ip.get_or_insert_with(|| {
                        self.client_ip.as_ref().and_then(|c| c.network_of(request))
                    })
                };
                request_key(policy.key_by(), request, ip).map(|key| (index, key))
            })
    }

    /// Policies are checked in order and checking stops at the first refusal, so a request
    /// refused by a short-term limit does not also use up a long-term budget. `None` when no
    /// policy applies. The deferred policies that let the request through are returned, to be
    /// charged if the answer is a failed authentication.
    fn decide_in_memory(
        &self,
        memory: &MemoryLimits,
        request: &Parts,
    ) -> (Option<Verdict>, Deferred) {
        let mut verdict = VerdictBuilder::default();
        let mut deferred = Deferred::new();
        for (index, key) in self.keys(request) {
            let policy = &self.policies[index];
            let decision = memory.check(index, &key);
            if !verdict.add(index, policy, &decision, &mut deferred, key) {
                break;
            }
        }
        (verdict.finish(), deferred)
    }

    #[cfg(feature = "redis")]
    async fn decide_in_redis(
        &self,
        redis: &RedisLimits,
        keys: Vec<(usize, RequestKey)>,
    ) -> (Verdict, Deferred) {
        let mut verdict = VerdictBuilder::default();
        let mut deferred = Deferred::new();
        for (index, key) in keys {
            let policy = &self.policies[index];
            match redis.check(policy, &key).await {
                Some(decision) => {
                    if !verdict.add(index, policy, &decision, &mut deferred, key) {
                        break;
                    }
                }
                None if redis.when_down() == WhenRedisDown::FailOpen => {}
                None => return (Verdict::Unavailable, Deferred::new()),
            }
        }
        let verdict = verdict
            .finish()
            .unwrap_or(Verdict::Allowed(RateLimitHeaders::default()));
        (verdict, deferred)
    }

    /// Charges the deferred policies for a request answered with `response`.
    fn charge_in_memory(&self, memory: &MemoryLimits, deferred: &Deferred, response: &Response) {
        if is_failed_authentication(response) {
            for (index, key) in deferred {
                memory.charge(*index, key);
            }
        }
    }
}

/// Marks a response as a failed authentication, whatever its status, for the policies that
/// charge only those ([`Charge::FailedAuthentication`](super::Charge)).
///
/// A `401` needs no mark. Put it on answers that refuse a credential in another shape, so that
/// guessing through them costs as much as through a `401`: a WebSocket accepted only to be
/// closed with a policy-violation code (browsers see no handshake status), or a browser sent
/// to the login page with a `303`.
///
/// ```
/// use axum::response::{IntoResponse, Redirect};
/// use portcullis::ratelimit::AuthenticationFailed;
///
/// let mut response = Redirect::to("/login").into_response();
/// response.extensions_mut().insert(AuthenticationFailed);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuthenticationFailed;

fn is_failed_authentication(response: &Response) -> bool {
    response.status() == StatusCode::UNAUTHORIZED
        || response
            .extensions()
            .get::<AuthenticationFailed>()
            .is_some()
}

/// The deferred policies (and keys) a request still has to be charged to once answered.
type Deferred = Vec<(usize, RequestKey)>;

/// Collects the decisions of the policies that applied, in order.
#[derive(Default)]
struct VerdictBuilder {
    headers: Option<RateLimitHeaders>,
    retry_after: Option<Duration>,
}

impl VerdictBuilder {
    /// Adds one policy's decision; `false` when it refused (stop checking). A deferred policy
    /// that lets the request through goes to `deferred` instead: it is not charged yet, and
    /// names itself in the headers only when it refuses.
    fn add(
        &mut self,
        index: usize,
        policy: &Policy,
        decision: &Decision,
        deferred: &mut Deferred,
        key: RequestKey,
    ) -> bool {
        if policy.is_deferred() && decision.allowed {
            deferred.push((index, key));
            return true;
        }
        self.headers
            .get_or_insert_with(RateLimitHeaders::default)
            .push(index, policy, decision);
        if !decision.allowed {
            self.retry_after = Some(decision.retry_after);
        }
        decision.allowed
    }

    fn finish(self) -> Option<Verdict> {
        let headers = self.headers?;
        Some(match self.retry_after {
            Some(wait) => Verdict::Refused(headers, wait),
            None => Verdict::Allowed(headers),
        })
    }
}

fn refusal(
    limits: &Limits,
    request: &Parts,
    headers: RateLimitHeaders,
    retry_after: Duration,
) -> Response {
    let mut response = Renderer::of(&request.extensions).render(
        &RequestHead::of_parts(request),
        &AuthError::RateLimited { retry_after },
    );
    headers.apply(&limits.headers, response.headers_mut());
    response
}

fn unavailable() -> Response {
    let mut response = crate::error::json_detail(
        http::StatusCode::SERVICE_UNAVAILABLE,
        "Rate limiting temporarily unavailable",
    );
    response
        .headers_mut()
        .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

impl<S, B> Service<Request<B>> for RateLimitService<S>
where
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let (parts, body) = request.into_parts();
        match &self.limits.backend {
            Backend::Memory(memory) => match self.limits.decide_in_memory(memory, &parts) {
                (None, deferred) if deferred.is_empty() => {
                    ResponseFuture::limited(self.inner.call(Request::from_parts(parts, body)), None)
                }
                (None, deferred) => ResponseFuture::limited(
                    self.inner.call(Request::from_parts(parts, body)),
                    Some(After {
                        headers: None,
                        deferred,
                        limits: Arc::clone(&self.limits),
                    }),
                ),
                (Some(Verdict::Allowed(headers)), deferred) => ResponseFuture::limited(
                    self.inner.call(Request::from_parts(parts, body)),
                    Some(After {
                        headers: Some(headers),
                        deferred,
                        limits: Arc::clone(&self.limits),
                    }),
                ),
                (Some(Verdict::Refused(headers, wait)), _) => {
                    ResponseFuture::ready(refusal(&self.limits, &parts, headers, wait))
                }
                (Some(Verdict::Unavailable), _) => ResponseFuture::ready(unavailable()),
            },
            #[cfg(feature = "redis")]
            Backend::Redis(_) => {
                let keys: Vec<(usize, RequestKey)> = self.limits.keys(&parts).collect();
                if keys.is_empty() {
                    return ResponseFuture::limited(
                        self.inner.call(Request::from_parts(parts, body)),
                        None,
                    );
                }
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let limits = Arc::clone(&self.limits);
                ResponseFuture::boxed(async move {
                    let Backend::Redis(redis) = &limits.backend else {
                        unreachable!("matched Redis above")
                    };
                    match limits.decide_in_redis(redis, keys).await {
                        (Verdict::Allowed(headers), deferred) => {
                            let mut response = inner.call(Request::from_parts(parts, body)).await?;
                            if is_failed_authentication(&response) {
                                for (index, key) in &deferred {
                                    redis.charge(&limits.policies[*index], key).await;
                                }
                            }
                            headers.apply(&limits.headers, response.headers_mut());
                            Ok(response)
                        }
                        (Verdict::Refused(headers, wait), _) => {
                            Ok(refusal(&limits, &parts, headers, wait))
                        }
                        (Verdict::Unavailable, _) => Ok(unavailable()),
                    }
                })
            }
        }
    }
}

/// What is left to do once the inner service answered: headers to add, deferred policies to
/// charge.
struct After {
    headers: Option<RateLimitHeaders>,
    deferred: Deferred,
    limits: Arc<Limits>,
}

impl After {
    fn apply(self, response: &mut Response) {
        #[cfg_attr(not(feature = "redis"), allow(irrefutable_let_patterns))]
        if let Backend::Memory(memory) = &self.limits.backend {
            self.limits
                .charge_in_memory(memory, &self.deferred, response);
        }
        if let Some(headers) = self.headers {
            headers.apply(&self.limits.headers, response.headers_mut());
        }
    }
}

#[cfg_attr(not(feature = "redis"), allow(dead_code))]
type Boxed<E> = Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>;

pin_project! {
    /// Response future for [`RateLimitService`].
    pub struct ResponseFuture<F, E> {
        #[pin]
        state: State<F, E>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, E> {
        Limited { #[pin] future: F, after: Option<After> },
        Ready { response: Option<Response> },
        Boxed { future: Boxed<E> },
    }
}

impl<F, E> ResponseFuture<F, E> {
    fn limited(future: F, after: Option<After>) -> Self {
        Self {
            state: State::Limited { future, after },
        }
    }

    fn ready(response: Response) -> Self {
        Self {
            state: State::Ready {
                response: Some(response),
            },
        }
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    fn boxed(future: impl Future<Output = Result<Response, E>> + Send + 'static) -> Self {
        Self {
            state: State::Boxed {
                future: Box::pin(future),
            },
        }
    }
}

impl<F, E> Future for ResponseFuture<F, E>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Limited { future, after } => {
                let mut response = std::task::ready!(future.poll(cx))?;
                if let Some(after) = after.take() {
                    after.apply(&mut response);
                }
                Poll::Ready(Ok(response))
            }
            StateProj::Ready { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                None => panic!("ResponseFuture polled after completion"),
            },
            StateProj::Boxed { future } => future.as_mut().poll(cx),
        }
    }
}

impl<F, E> std::fmt::Debug for ResponseFuture<F, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
