//! [`SecretStore`] for [`SqliteStore`]: one table; every change runs in a `BEGIN IMMEDIATE`
//! transaction, which serialises writers, so a secret is spent once and guesses are counted
//! one at a time.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use time::OffsetDateTime;

use super::{SqliteStore, corrupt, store_error};
use crate::clock::{from_micros, to_micros};
use crate::store::{
    Guess, NewSecret, SecretId, SecretKind, SecretRecord, SecretStore, SecretSubject, StoreError,
    validate,
};
use crate::token::TokenDigest;

/// The columns a record is read from.
macro_rules! columns {
    () => {
        "id, subject, payload, created_at, expires_at, attempts_left"
    };
}

/// The condition for a live secret at `?` (now).
macro_rules! live {
    () => {
        "ended_at IS NULL AND expires_at > ? AND (attempts_left IS NULL OR attempts_left > 0)"
    };
}

/// Dead only because its time ran out (see [`Guess::Expired`]).
macro_rules! expired_unanswered {
    () => {
        "ended_at IS NULL AND expires_at <= ? AND (attempts_left IS NULL OR attempts_left > 0)"
    };
}

fn record(kind: SecretKind, row: &SqliteRow) -> Result<SecretRecord, StoreError> {
    let subject: Option<String> = row.try_get("subject").map_err(corrupt)?;
    let attempts_left: Option<i64> = row.try_get("attempts_left").map_err(corrupt)?;
    let attempts_left = attempts_left
        .map(u32::try_from)
        .transpose()
        .map_err(corrupt)?;
    let record = SecretRecord::new(
        SecretId(row.try_get("id").map_err(corrupt)?),
        kind,
        from_micros(row.try_get("created_at").map_err(corrupt)?),
        from_micros(row.try_get("expires_at").map_err(corrupt)?),
    );
    Ok(record
        .subject(SecretSubject::from_key(subject.as_deref()).map_err(corrupt)?)
        .payload(row.try_get("payload").map_err(corrupt)?)
        .attempts_left(attempts_left))
}

#[async_trait]
impl SecretStore for SqliteStore {
    async fn insert_secret(&self, secret: NewSecret) -> Result<SecretRecord, StoreError> {
        validate::new_secret(&secret)?;
        let subject = secret.subject.key();
        let mut tx = self.immediate().await?;
        if secret.replaces_earlier && subject.is_some() {
            sqlx::query(concat!(
                "UPDATE portcullis_secrets SET ended_at = ? \
                 WHERE kind = ? AND subject = ? AND ",
                live!()
            ))
            .bind(to_micros(secret.created_at))
            .bind(secret.kind.as_str())
            .bind(&subject)
            .bind(to_micros(secret.created_at))
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO portcullis_secrets \
             (kind, digest, subject, payload, created_at, expires_at, attempts_left) \
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(secret.kind.as_str())
        .bind(secret.digest.as_bytes().as_slice())
        .bind(&subject)
        .bind(&secret.payload)
        .bind(to_micros(secret.created_at))
        .bind(to_micros(secret.expires_at))
        .bind(secret.attempts.map(i64::from))
        .fetch_one(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(SecretRecord::inserted(SecretId(id), secret))
    }

    async fn consume_secret(
        &self,
        kind: SecretKind,
        digest: &TokenDigest,
        now: OffsetDateTime,
    ) -> Result<Option<SecretRecord>, StoreError> {
        let mut tx = self.immediate().await?;
        let row = sqlx::query(concat!(
            "UPDATE portcullis_secrets SET ended_at = ? \
             WHERE kind = ? AND digest = ? AND ",
            live!(),
            " RETURNING ",
            columns!()
        ))
        .bind(to_micros(now))
        .bind(kind.as_str())
        .bind(digest.as_bytes().as_slice())
        .bind(to_micros(now))
        .fetch_optional(&mut *tx)
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        row.map(|row| record(kind, &row)).transpose()
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
        let mut tx = self.immediate().await?;
        let right = sqlx::query(concat!(
            "UPDATE portcullis_secrets SET ended_at = ? \
             WHERE kind = ? AND subject = ? AND digest = ? AND ",
            live!(),
            " RETURNING ",
            columns!()
        ))
        .bind(to_micros(now))
        .bind(kind.as_str())
        .bind(&subject)
        .bind(digest.as_bytes().as_slice())
        .bind(to_micros(now))
        .fetch_optional(&mut *tx)
        .await
        .map_err(store_error)?;
        let guess = match right {
            Some(row) => Guess::Right(Box::new(record(kind, &row)?)),
            None => {
                let left: Vec<Option<i64>> = sqlx::query_scalar(concat!(
                    "UPDATE portcullis_secrets SET attempts_left = attempts_left - 1 \
                     WHERE kind = ? AND subject = ? AND ",
                    live!(),
                    " RETURNING attempts_left"
                ))
                .bind(kind.as_str())
                .bind(&subject)
                .bind(to_micros(now))
                .fetch_all(&mut *tx)
                .await
                .map_err(store_error)?;
                let left = left
                    .into_iter()
                    .map(|left| left.map(u32::try_from).transpose());
                match Guess::wrong(left.collect::<Result<Vec<_>, _>>().map_err(corrupt)?) {
                    Guess::NoSecret => {
                        let expired: Option<i64> = sqlx::query_scalar(concat!(
                            "SELECT 1 FROM portcullis_secrets WHERE kind = ? AND subject = ? AND ",
                            expired_unanswered!(),
                            " LIMIT 1"
                        ))
                        .bind(kind.as_str())
                        .bind(&subject)
                        .bind(to_micros(now))
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(store_error)?;
                        if expired.is_some() {
                            Guess::Expired
                        } else {
                            Guess::NoSecret
                        }
                    }
                    guess => guess,
                }
            }
        };
        tx.commit().await.map_err(store_error)?;
        Ok(guess)
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
        let mut tx = self.immediate().await?;
        let revoked = sqlx::query(concat!(
            "UPDATE portcullis_secrets SET ended_at = ? WHERE kind = ? AND subject = ? AND ",
            live!()
        ))
        .bind(to_micros(now))
        .bind(kind.as_str())
        .bind(subject)
        .bind(to_micros(now))
        .execute(&mut *tx)
        .await
        .map_err(store_error)?
        .rows_affected();
        tx.commit().await.map_err(store_error)?;
        Ok(revoked)
    }

    async fn purge_secrets(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let deleted =
            sqlx::query("DELETE FROM portcullis_secrets WHERE expires_at < ? OR ended_at < ?")
                .bind(to_micros(before))
                .bind(to_micros(before))
                .execute(self.pool())
                .await
                .map_err(store_error)?
                .rows_affected();
        Ok(deleted)
    }
}
