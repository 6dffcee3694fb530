//! [`SecretStore`] for [`RedisSessions`]: one-time secrets live in Redis, beside the sessions,
//! whatever the inner store. Each operation is one Lua script (`secrets.lua`), so it is atomic
//! on the server: a secret is spent once and attempts are taken one at a time.

use std::collections::HashMap;

use async_trait::async_trait;
use redis::Value;
use time::OffsetDateTime;

use super::{RedisSessions, corrupt, status, text};
use crate::clock::{from_micros, to_micros};
use crate::store::{
    Guess, NewSecret, SecretId, SecretKind, SecretRecord, SecretStore, SecretSubject, StoreError,
    validate,
};
use crate::token::TokenDigest;

/// A secret from an `HGETALL` reply.
fn record(kind: SecretKind, value: &Value) -> Result<SecretRecord, StoreError> {
    let Value::Array(items) = value else {
        return Err(corrupt("secret is not an array"));
    };
    let mut map = HashMap::new();
    for pair in items.chunks_exact(2) {
        map.insert(text(&pair[0])?, text(&pair[1])?);
    }
    let number = |name: &str| -> Result<i64, StoreError> {
        map.get(name)
            .ok_or_else(|| corrupt(format!("secret without {name}")))?
            .parse()
            .map_err(|_| corrupt(format!("bad secret {name}")))
    };
    let subject =
        SecretSubject::from_key(map.get("subject").map(String::as_str)).map_err(corrupt)?;
    let attempts_left = map
        .get("attempts_left")
        .map(|left| left.parse::<u32>().map_err(corrupt))
        .transpose()?;
    let record = SecretRecord::new(
        SecretId(number("id")?),
        kind,
        from_micros(number("created_at")?),
        from_micros(number("expires_at")?),
    );
    Ok(record
        .subject(subject)
        .payload(map.get("payload").cloned())
        .attempts_left(attempts_left))
}

impl<S> RedisSessions<S> {
    async fn secrets(
        &self,
        operation: &str,
        kind: SecretKind,
        args: Vec<String>,
    ) -> Result<Value, StoreError> {
        let mut all = vec![operation.to_owned(), kind.as_str().to_owned()];
        all.extend(args);
        self.run(&self.scripts.secrets, &all).await
    }
}

#[async_trait]
impl<S: Send + Sync + 'static> SecretStore for RedisSessions<S> {
    async fn insert_secret(&self, secret: NewSecret) -> Result<SecretRecord, StoreError> {
        validate::new_secret(&secret)?;
        let args = vec![
            secret.digest.to_hex(),
            secret.subject.key().unwrap_or_default(),
            if secret.replaces_earlier { "1" } else { "0" }.to_owned(),
            to_micros(secret.created_at).to_string(),
            to_micros(secret.expires_at).to_string(),
            secret.attempts.map(|n| n.to_string()).unwrap_or_default(),
            secret.payload.clone().unwrap_or_default(),
            self.retain_seconds(),
        ];
        let reply = self.secrets("insert", secret.kind, args).await?;
        match status(&reply)? {
            (word, [Value::Int(id)]) if word == "ok" => {
                Ok(SecretRecord::inserted(SecretId(*id), secret))
            }
            (word, _) if word == "conflict" => Err(StoreError::Conflict("digest")),
            (word, _) => Err(corrupt(format!("unexpected secret insert reply {word}"))),
        }
    }

    async fn consume_secret(
        &self,
        kind: SecretKind,
        digest: &TokenDigest,
        now: OffsetDateTime,
    ) -> Result<Option<SecretRecord>, StoreError> {
        let args = vec![digest.to_hex(), to_micros(now).to_string()];
        let reply = self.secrets("consume", kind, args).await?;
        match status(&reply)? {
            (word, [fields]) if word == "ok" => record(kind, fields).map(Some),
            (word, _) if word == "none" => Ok(None),
            (word, _) => Err(corrupt(format!("unexpected consume reply {word}"))),
        }
    }

    async fn guess_secret(
        &self,
        kind: SecretKind,
        subject: &SecretSubject,
        digest: &TokenDigest,
        now: OffsetDateTime,
    ) -> Result<Guess, StoreError> {
        let Some(subject) = validate::subject_key(subject) else {
            return Ok(Guess::NoSecret);
        };
        let args = vec![digest.to_hex(), subject, to_micros(now).to_string()];
        let reply = self.secrets("guess", kind, args).await?;
        match status(&reply)? {
            (word, [fields]) if word == "right" => {
                Ok(Guess::Right(Box::new(record(kind, fields)?)))
            }
            (word, left) if word == "wrong" => {
                let left = left.iter().map(|value| match value {
                    Value::Int(-1) => Ok(None),
                    Value::Int(n) => u32::try_from(*n).map(Some).map_err(corrupt),
                    other => Err(corrupt(format!("attempts left {other:?}"))),
                });
                Ok(Guess::wrong(left.collect::<Result<Vec<_>, _>>()?))
            }
            (word, _) if word == "none" => Ok(Guess::NoSecret),
            (word, _) if word == "expired" => Ok(Guess::Expired),
            (word, _) => Err(corrupt(format!("unexpected guess reply {word}"))),
        }
    }

    async fn revoke_secrets(
        &self,
        kind: SecretKind,
        subject: &SecretSubject,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let Some(subject) = validate::subject_key(subject) else {
            return Ok(0);
        };
        let args = vec![subject, to_micros(now).to_string()];
        match self.secrets("revoke", kind, args).await? {
            Value::Int(n) => Ok(n.unsigned_abs()),
            other => Err(corrupt(format!("revoke answered {other:?}"))),
        }
    }

    async fn purge_secrets(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        // Secrets expire from Redis on their own a day after their expiry; this removes the
        // spent and expired ones sooner.
        let leading = [
            "purge".to_owned(),
            String::new(),
            to_micros(before).to_string(),
        ];
        self.purge_matching("secret:*", &self.scripts.secrets, &leading)
            .await
    }
}
