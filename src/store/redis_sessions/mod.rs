//! [`RedisSessions`]: browser sessions and one-time secrets in Redis, everything else in
//! another store.

mod secrets;

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use redis::Value;
use redis::aio::ConnectionManager;
use time::OffsetDateTime;

use super::{
    FamilyId, NewToken, RevokeReason, Rotation, StoreError, TokenId, TokenKind, TokenRecord,
    TokenSelector, TokenStore, TokenUse, UserId, UserStore, validate,
};
use crate::assurance::Factors;
use crate::clock::{from_micros, to_micros};
use crate::token::TokenDigest;

const PRELUDE: &str = include_str!("prelude.lua");

fn script(body: &str) -> redis::Script {
    redis::Script::new(&format!("{PRELUDE}\n{body}"))
}

/// A [`TokenStore`] that keeps session ids ([`TokenKind::Session`]) in Redis and delegates every
/// other token kind to `inner` (e.g. a [`PostgresStore`](super::PostgresStore), whose users
/// a session must belong to), and a
/// [`SecretStore`](super::SecretStore) that keeps one-time secrets in Redis. Users, counters and
/// events stay in the application's main store (see [`Stores`](super::Stores)).
///
/// Sessions are read on every browser request and written on every login; keeping them in
/// Redis takes that load off the database. Each session is a hash with an expiry (kept one
/// day past the session's own expiry, so that a late presentation is answered *expired*, not
/// *unknown*); per-user and per-family sets index them. Every multi-step operation (the
/// per-user limit, rotation, revocation) is one Lua script, so it is atomic on the server.
/// All keys share the hash tag of the prefix (default `{portcullis}:`), so the store also
/// works on a Redis cluster.
///
/// Session token ids are negative, so they never collide with `inner`'s ids.
///
/// ```no_run
/// use portcullis::store::{MemoryStore, RedisSessions};
///
/// let store = RedisSessions::new(MemoryStore::new(), "redis://127.0.0.1:6379")?;
/// # let _ = store;
/// # Ok::<(), portcullis::store::StoreError>(())
/// ```
pub struct RedisSessions<S> {
    inner: S,
    client: redis::Client,
    connection: tokio::sync::OnceCell<ConnectionManager>,
    prefix: String,
    retain: Duration,
    scripts: Scripts,
}

struct Scripts {
    insert: redis::Script,
    rotate: redis::Script,
    revoke: redis::Script,
    query: redis::Script,
    purge: redis::Script,
    secrets: redis::Script,
}

impl<S> std::fmt::Debug for RedisSessions<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSessions")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn unavailable(error: redis::RedisError) -> StoreError {
    StoreError::unavailable(error)
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("redis session: {what}"))
}

impl<S> RedisSessions<S> {
    /// Sessions in the Redis server at `url`; nothing connects until the store is used.
    pub fn new(inner: S, url: &str) -> Result<Self, StoreError> {
        Ok(Self {
            inner,
            client: redis::Client::open(url).map_err(unavailable)?,
            connection: tokio::sync::OnceCell::new(),
            prefix: "{portcullis}:".to_owned(),
            retain: Duration::from_secs(86_400),
            scripts: Scripts {
                insert: script(include_str!("insert.lua")),
                rotate: script(include_str!("rotate.lua")),
                revoke: script(include_str!("revoke.lua")),
                query: script(include_str!("query.lua")),
                purge: script(include_str!("purge.lua")),
                secrets: script(include_str!("secrets.lua")),
            },
        })
    }

    /// Prefixes every key (default `{portcullis}:`); keep a `{hash tag}` in it on a cluster.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The store that holds every token but sessions.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    async fn connection(&self) -> Result<ConnectionManager, StoreError> {
        self.connection
            .get_or_try_init(|| ConnectionManager::new(self.client.clone()))
            .await
            .cloned()
            .map_err(unavailable)
    }

    async fn run(&self, script: &redis::Script, args: &[String]) -> Result<Value, StoreError> {
        let mut invocation = script.prepare_invoke();
        invocation.arg(&self.prefix);
        for arg in args {
            invocation.arg(arg);
        }
        let mut connection = self.connection().await?;
        invocation
            .invoke_async(&mut connection)
            .await
            .map_err(unavailable)
    }

    /// Walks the keys under the prefix that match `pattern` with `SCAN`, in small steps so
    /// that Redis keeps serving meanwhile, and runs `script` with `leading` arguments and each
    /// batch of keys (atomic per batch); returns the sum of the counts the script answers.
    async fn purge_matching(
        &self,
        pattern: &str,
        script: &redis::Script,
        leading: &[String],
    ) -> Result<u64, StoreError> {
        let pattern = format!("{}{pattern}", glob_escape(&self.prefix));
        let mut connection = self.connection().await?;
        let (mut cursor, mut deleted) = (0u64, 0u64);
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(500)
                .query_async(&mut connection)
                .await
                .map_err(unavailable)?;
            if !keys.is_empty() {
                let args: Vec<String> = leading.iter().cloned().chain(keys).collect();
                match self.run(script, &args).await? {
                    Value::Int(n) => deleted += n.unsigned_abs(),
                    other => return Err(corrupt(format!("purge answered {other:?}"))),
                }
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }

    fn retain_seconds(&self) -> String {
        self.retain.as_secs().to_string()
    }
}

/// The optional fields of a new session, as field/value pairs for the scripts.
fn fields(token: &NewToken) -> Result<Vec<String>, StoreError> {
    let mut fields = vec![
        "hint".to_owned(),
        token.hint.clone(),
        "created_at".to_owned(),
        to_micros(token.created_at).to_string(),
    ];
    let mut push = |name: &str, value: String| {
        fields.push(name.to_owned());
        fields.push(value);
    };
    if let Some(name) = &token.name {
        push("name", name.clone());
    }
    if let Some(family) = &token.family {
        push("family", family.as_str().to_owned());
    }
    if let Some(scopes) = &token.scopes {
        push("scopes", serde_json::to_string(scopes).map_err(corrupt)?);
    }
    if let Some(expires) = token.expires_at {
        push("expires_at", to_micros(expires).to_string());
    }
    if let Some(auth_time) = token.auth_time {
        push("auth_time", to_micros(auth_time).to_string());
    }
    if !token.factors.is_empty() {
        push("amr", token.factors.bits().to_string());
    }
    Ok(fields)
}

/// A session record from an `HGETALL` reply.
fn record(value: &Value) -> Result<TokenRecord, StoreError> {
    let Value::Array(items) = value else {
        return Err(corrupt("record is not an array"));
    };
    let mut map = HashMap::new();
    for pair in items.chunks_exact(2) {
        map.insert(text(&pair[0])?, text(&pair[1])?);
    }
    let get = |name: &str| {
        map.get(name)
            .ok_or_else(|| corrupt(format!("missing {name}")))
    };
    let number = |name: &str| -> Result<i64, StoreError> {
        get(name)?
            .parse()
            .map_err(|_| corrupt(format!("bad {name}")))
    };
    let time = |name: &str| -> Result<Option<OffsetDateTime>, StoreError> {
        map.get(name)
            .map(|v| {
                v.parse()
                    .map(from_micros)
                    .map_err(|_| corrupt(format!("bad {name}")))
            })
            .transpose()
    };
    Ok(TokenRecord {
        id: TokenId(number("id")?),
        kind: TokenKind::Session,
        digest: TokenDigest::from_hex(get("digest")?).ok_or_else(|| corrupt("bad digest"))?,
        user_id: UserId(number("user_id")?),
        name: map.get("name").cloned(),
        hint: get("hint")?.clone(),
        family: map.get("family").cloned().map(FamilyId::new),
        scopes: map
            .get("scopes")
            .map(|s| serde_json::from_str(s).map_err(corrupt))
            .transpose()?,
        created_at: from_micros(number("created_at")?),
        expires_at: time("expires_at")?,
        revoked_at: time("revoked_at")?,
        revoke_reason: map
            .get("revoke_reason")
            .map(|r| RevokeReason::from_str(r).map_err(corrupt))
            .transpose()?,
        last_used_at: time("last_used_at")?,
        auth_time: time("auth_time")?,
        factors: map
            .get("amr")
            .map(|bits| bits.parse().map(Factors::from_bits).map_err(corrupt))
            .transpose()?
            .unwrap_or_default(),
    })
}

fn text(value: &Value) -> Result<String, StoreError> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).map_err(corrupt),
        Value::SimpleString(s) => Ok(s.clone()),
        Value::Int(n) => Ok(n.to_string()),
        other => Err(corrupt(format!("unexpected reply {other:?}"))),
    }
}

/// Records of a reply, oldest first (session ids count down from -1).
fn records(value: &Value) -> Result<Vec<TokenRecord>, StoreError> {
    let Value::Array(items) = value else {
        return Err(corrupt("reply is not an array"));
    };
    let mut records = items.iter().map(record).collect::<Result<Vec<_>, _>>()?;
    records.sort_by_key(|record| std::cmp::Reverse(record.id));
    Ok(records)
}

/// The status word and payload of an insert or rotate reply.
fn status(value: &Value) -> Result<(String, &[Value]), StoreError> {
    let Value::Array(items) = value else {
        return Err(corrupt("reply is not an array"));
    };
    let (first, rest) = items.split_first().ok_or_else(|| corrupt("empty reply"))?;
    Ok((text(first)?, rest))
}

fn is_session(kind: TokenKind) -> bool {
    kind == TokenKind::Session
}

/// `text` matched literally by a Redis glob pattern.
fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

fn is_session_id(id: TokenId) -> bool {
    id.0 < 0
}

impl<S: TokenStore + UserStore> RedisSessions<S> {
    async fn insert_session(&self, token: NewToken) -> Result<TokenRecord, StoreError> {
        let mut args = vec![
            token.digest.to_hex(),
            token.user_id.to_string(),
            token.max_active.map_or(-1, i64::from).to_string(),
            to_micros(token.created_at).to_string(),
            self.retain_seconds(),
        ];
        args.extend(fields(&token)?);
        let reply = self.run(&self.scripts.insert, &args).await?;
        match status(&reply)? {
            (word, [record_value]) if word == "ok" => record(record_value),
            (word, _) if word == "conflict" => Err(StoreError::Conflict("digest")),
            (word, _) if word == "limit" => Err(StoreError::LimitReached {
                limit: token.max_active.unwrap_or_default(),
            }),
            (word, _) => Err(corrupt(format!("unexpected insert reply {word}"))),
        }
    }

    async fn revoke_sessions(
        &self,
        mode: &str,
        value: String,
        owner: Option<UserId>,
        reason: RevokeReason,
        now: OffsetDateTime,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        let args = [
            mode.to_owned(),
            value,
            owner.map(|o| o.to_string()).unwrap_or_default(),
            to_micros(now).to_string(),
            reason.as_str().to_owned(),
        ];
        let reply = self.run(&self.scripts.revoke, &args).await?;
        records(&reply)
    }
}

#[async_trait]
impl<S: TokenStore + UserStore> TokenStore for RedisSessions<S> {
    async fn insert_token(&self, token: NewToken) -> Result<TokenRecord, StoreError> {
        if !is_session(token.kind) {
            return self.inner.insert_token(token).await;
        }
        validate::new_token(&token)?;
        // Sessions belong to users the inner store knows.
        if self.inner.user_by_id(token.user_id).await?.is_none() {
            return Err(StoreError::Corrupt("token owner does not exist".into()));
        }
        self.insert_session(token).await
    }

    async fn token_by_digest(
        &self,
        kind: TokenKind,
        digest: &TokenDigest,
    ) -> Result<Option<TokenRecord>, StoreError> {
        if !is_session(kind) {
            return self.inner.token_by_digest(kind, digest).await;
        }
        let reply = self
            .run(&self.scripts.query, &["digest".to_owned(), digest.to_hex()])
            .await?;
        Ok(records(&reply)?.into_iter().next())
    }

    async fn tokens_of_user(
        &self,
        user: UserId,
        kind: TokenKind,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        if !is_session(kind) {
            return self.inner.tokens_of_user(user, kind).await;
        }
        let reply = self
            .run(&self.scripts.query, &["user".to_owned(), user.to_string()])
            .await?;
        records(&reply)
    }

    async fn rotate_token(
        &self,
        kind: TokenKind,
        presented: &TokenDigest,
        replacement: NewToken,
        now: OffsetDateTime,
    ) -> Result<Rotation, StoreError> {
        if !is_session(kind) {
            return self
                .inner
                .rotate_token(kind, presented, replacement, now)
                .await;
        }
        validate::new_token(&replacement)?;
        let mut args = vec![
            presented.to_hex(),
            to_micros(now).to_string(),
            self.retain_seconds(),
            replacement.digest.to_hex(),
            replacement.user_id.to_string(),
        ];
        args.extend(fields(&replacement)?);
        let reply = self.run(&self.scripts.rotate, &args).await?;
        match status(&reply)? {
            (word, _) if word == "missing" => Ok(Rotation::Rejected(None)),
            (word, [current]) if word == "rejected" => {
                Ok(Rotation::Rejected(Some(Box::new(record(current)?))))
            }
            (word, [previous, stored]) if word == "rotated" => Ok(Rotation::Rotated {
                previous: Box::new(record(previous)?),
                replacement: Box::new(record(stored)?),
            }),
            (word, _) if word == "conflict" => Err(StoreError::Conflict("digest")),
            (word, _) => Err(corrupt(format!("unexpected rotate reply {word}"))),
        }
    }

    async fn revoke_tokens(
        &self,
        selector: TokenSelector,
        reason: RevokeReason,
        now: OffsetDateTime,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        let mut revoked = match &selector {
            TokenSelector::Owned { id, owner } if is_session_id(*id) => {
                return self
                    .revoke_sessions("id", id.to_string(), Some(*owner), reason, now)
                    .await;
            }
            TokenSelector::Digest { kind, digest } if is_session(*kind) => {
                return self
                    .revoke_sessions("digest", digest.to_hex(), None, reason, now)
                    .await;
            }
            TokenSelector::User {
                user,
                kind: Some(kind),
            } if is_session(*kind) => {
                return self
                    .revoke_sessions("user", user.to_string(), None, reason, now)
                    .await;
            }
            TokenSelector::Family(family) => {
                self.revoke_sessions("family", family.as_str().to_owned(), None, reason, now)
                    .await?
            }
            TokenSelector::User { user, kind: None } => {
                self.revoke_sessions("user", user.to_string(), None, reason, now)
                    .await?
            }
            _ => Vec::new(),
        };
        // Sessions first, then the rest, each oldest first.
        revoked.extend(self.inner.revoke_tokens(selector, reason, now).await?);
        Ok(revoked)
    }

    async fn family_is_active(
        &self,
        family: &FamilyId,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        if self.inner.family_is_active(family, now).await? {
            return Ok(true);
        }
        let args = [
            "family_active".to_owned(),
            family.as_str().to_owned(),
            to_micros(now).to_string(),
        ];
        Ok(matches!(
            self.run(&self.scripts.query, &args).await?,
            Value::Int(1)
        ))
    }

    async fn purge_tokens(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let deleted = self.inner.purge_tokens(before).await?;
        // Sessions expire from Redis on their own a day after their expiry; this removes the
        // revoked and expired ones sooner.
        let leading = [to_micros(before).to_string()];
        let sessions = self
            .purge_matching("session:*", &self.scripts.purge, &leading)
            .await?;
        Ok(deleted + sessions)
    }

    async fn record_token_use(&self, uses: &[TokenUse]) -> Result<(), StoreError> {
        let (sessions, others): (Vec<TokenUse>, Vec<TokenUse>) =
            uses.iter().partition(|usage| is_session_id(usage.id));
        if !others.is_empty() {
            self.inner.record_token_use(&others).await?;
        }
        if !sessions.is_empty() {
            let mut args = vec!["touch".to_owned()];
            for usage in sessions {
                args.push(usage.id.to_string());
                args.push(to_micros(usage.at).to_string());
            }
            self.run(&self.scripts.query, &args).await?;
        }
        Ok(())
    }
}
