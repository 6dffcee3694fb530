//! [`QuotaLayer`]: per-user allowances counted in the store, e.g. a daily message quota.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum_core::response::Response;
use http::{HeaderValue, Request};
use time::{OffsetDateTime, UtcOffset};
use tower_layer::Layer;
use tower_service::Service;

use crate::auth::Auth;
use crate::error::{AuthError, Renderer, RequestHead};
use crate::identity::Identity;
use crate::store::Consumption;

type LimitFn = dyn Fn(&Identity) -> Option<u64> + Send + Sync;

/// A per-user allowance per day, counted in the [`UserStore`](crate::store::UserStore) so that
/// it survives restarts and is shared by every instance (AnythingLLM's daily message limit).
///
/// Each request through the layer spends one unit of the authenticated user's allowance;
/// anonymous requests are not counted (guard the route). The limit may depend on the user
/// (`None`: unlimited, e.g. for administrators). Past the limit the answer is `429` with
/// `Retry-After` until the next day starts at the configured UTC offset. Responses carry
/// `RateLimit-Policy` / `RateLimit` headers.
///
/// ```
/// use portcullis::{Auth, ratelimit::QuotaLayer, store::MemoryStore};
///
/// let auth = Auth::builder(MemoryStore::new()).build();
/// let quota = QuotaLayer::daily(&auth, "messages", |identity| {
///     if identity.has_role("admin") { None } else { Some(100) }
/// })?;
/// # Ok::<(), portcullis::ratelimit::InvalidPolicyName>(())
/// ```
#[derive(Clone)]
pub struct QuotaLayer {
    inner: Arc<Quota>,
}

struct Quota {
    auth: Auth,
    name: String,
    limit: Box<LimitFn>,
    resets_at: UtcOffset,
}

impl std::fmt::Debug for QuotaLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuotaLayer")
            .field("name", &self.inner.name)
            .field("resets_at", &self.inner.resets_at)
            .finish_non_exhaustive()
    }
}

impl QuotaLayer {
    /// A daily quota named `name` (same rules as policy names), resetting at midnight UTC.
    pub fn daily(
        auth: &Auth,
        name: impl Into<String>,
        limit: impl Fn(&Identity) -> Option<u64> + Send + Sync + 'static,
    ) -> Result<Self, super::InvalidPolicyName> {
        // The same naming rules as policies: the name appears in headers.
        let policy = super::Policy::new(name, super::Limit::per_day(1), super::KeyBy::User)?;
        Ok(Self {
            inner: Arc::new(Quota {
                auth: auth.clone(),
                name: policy.name().to_owned(),
                limit: Box::new(limit),
                resets_at: UtcOffset::UTC,
            }),
        })
    }

    /// Starts each day at midnight of this UTC offset instead.
    #[must_use]
    pub fn resets_at(mut self, offset: UtcOffset) -> Self {
        if let Some(quota) = Arc::get_mut(&mut self.inner) {
            quota.resets_at = offset;
        }
        self
    }
}

impl Quota {
    /// The start of the current day and the time until the next one.
    fn window(&self, now: OffsetDateTime) -> (OffsetDateTime, Duration) {
        let local = now.to_offset(self.resets_at);
        let start = local.replace_time(time::Time::MIDNIGHT);
        let next = start + time::Duration::DAY;
        let left = Duration::try_from(next - local).unwrap_or(Duration::ZERO);
        (start.to_offset(UtcOffset::UTC), left)
    }

    fn headers(
        &self,
        limit: u64,
        used: u64,
        reset: Duration,
    ) -> [(http::HeaderName, HeaderValue); 2] {
        let seconds = reset.as_secs() + u64::from(reset.subsec_nanos() > 0);
        let policy = format!("\"{}\";q={limit};w=86400", self.name);
        let state = format!(
            "\"{}\";r={};t={seconds}",
            self.name,
            limit.saturating_sub(used)
        );
        [
            (
                http::HeaderName::from_static("ratelimit-policy"),
                HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static("")),
            ),
            (
                http::HeaderName::from_static("ratelimit"),
                HeaderValue::from_str(&state).unwrap_or(HeaderValue::from_static("")),
            ),
        ]
    }
}

impl<S> Layer<S> for QuotaLayer {
    type Service = QuotaService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        QuotaService {
            inner,
            quota: Arc::clone(&self.inner),
        }
    }
}

/// The middleware [`QuotaLayer`] produces.
#[derive(Clone)]
pub struct QuotaService<S> {
    inner: S,
    quota: Arc<Quota>,
}

impl<S> std::fmt::Debug for QuotaService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuotaService").finish_non_exhaustive()
    }
}

impl<S, B> Service<Request<B>> for QuotaService<S>
where
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let quota = Arc::clone(&self.quota);
        Box::pin(async move {
            let identity = request.extensions().get::<Identity>().cloned();
            let (Some(identity), Some(user)) = (
                identity.as_ref(),
                identity.as_ref().and_then(Identity::user_id),
            ) else {
                return inner.call(request).await;
            };
            let Some(limit) = (quota.limit)(identity) else {
                return inner.call(request).await;
            };
            let (window, reset) = quota.window(quota.auth.now());
            let key = format!("quota:{}:user:{user}", quota.name);
            let renderer = Renderer::of(request.extensions());
            match quota.auth.counters().consume(&key, window, 1, limit).await {
                Ok(Consumption::Allowed { total }) => {
                    let mut response = inner.call(request).await?;
                    response
                        .headers_mut()
                        .extend(quota.headers(limit, total, reset));
                    Ok(response)
                }
                Ok(Consumption::Exceeded { total }) => {
                    let head = RequestHead::of(&request);
                    let mut response =
                        renderer.render(&head, &AuthError::RateLimited { retry_after: reset });
                    response
                        .headers_mut()
                        .extend(quota.headers(limit, total, reset));
                    Ok(response)
                }
                Err(error) => {
                    Ok(renderer.render(&RequestHead::of(&request), &AuthError::from(error)))
                }
            }
        })
    }
}
