//! `RateLimit-Policy` and `RateLimit` response headers (draft-ietf-httpapi-ratelimit-headers):
//! `RateLimit-Policy: "name";q=<quota>;w=<window s>` and `RateLimit: "name";r=<remaining>;t=<reset s>`,
//! one list item per policy that applied.
//!
//! The policy header never changes for a given set of policies, so it is built once per layer;
//! a request that went through every policy (the usual case) reuses it. Only `RateLimit` is
//! written per request, into one buffer.

use std::fmt::Write;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::policy::{Decision, Policy};

static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Seconds, rounded up: a client waiting the rounded-down value would be refused again.
pub(crate) fn seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// The `RateLimit-Policy` list item of one policy.
fn policy_item(policy: &Policy) -> String {
    let limit = policy.limit();
    format!(
        "\"{}\";q={};w={}",
        policy.name(),
        limit.max_burst(),
        seconds(limit.window())
    )
}

/// The layer's precomputed policy header values.
#[derive(Clone, Debug)]
pub(crate) struct PolicyHeaders {
    items: Vec<String>,
    all: Option<HeaderValue>,
}

impl PolicyHeaders {
    pub(crate) fn new(policies: &[Policy]) -> Self {
        let items: Vec<String> = policies.iter().map(policy_item).collect();
        // Policy names are restricted to header-safe characters, so this always parses.
        let all = HeaderValue::try_from(items.join(", ")).ok();
        Self { items, all }
    }
}

/// The headers for one response.
#[derive(Clone, Debug, Default)]
pub(crate) struct RateLimitHeaders {
    /// The policies that applied, one bit each (a layer has at most 64 policies).
    applied: u64,
    state: String,
}

impl RateLimitHeaders {
    pub(crate) fn push(&mut self, index: usize, policy: &Policy, decision: &Decision) {
        let separator = if self.state.is_empty() {
            self.state.reserve(48);
            ""
        } else {
            ", "
        };
        let _ = write!(
            self.state,
            "{separator}\"{}\";r={};t={}",
            policy.name(),
            decision.remaining,
            seconds(decision.reset)
        );
        self.applied |= 1 << index;
    }

    pub(crate) fn apply(self, policies: &PolicyHeaders, headers: &mut HeaderMap) {
        if self.applied == 0 {
            return;
        }
        let every_policy = self.applied.count_ones() as usize == policies.items.len();
        let policy = match (&policies.all, every_policy) {
            (Some(all), true) => Some(all.clone()),
            _ => {
                let items: Vec<&str> = (0..policies.items.len())
                    .filter(|i| self.applied & (1 << i) != 0)
                    .map(|i| policies.items[i].as_str())
                    .collect();
                HeaderValue::try_from(items.join(", ")).ok()
            }
        };
        if let (Some(policy), Ok(state)) = (policy, HeaderValue::try_from(self.state)) {
            headers.insert(RATELIMIT_POLICY.clone(), policy);
            headers.insert(RATELIMIT.clone(), state);
        }
    }
}
