//! [`SecretStore`] for [`PostgresStore`]. Spending and guessing are single conditional
//! `UPDATE`s: under READ COMMITTED a concurrent one waits for the row and evaluates its
//! condition again on the committed version, so a secret is spent once and an attempt is
//! never taken twice. Inserts that replace a subject's earlier secrets hold an advisory lock
//! on the subject, so two concurrent requests cannot leave two live codes.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;
use time::OffsetDateTime;

use super::{PostgresStore, corrupt, store_error};
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

/// The condition for a live secret, `$1` being now.
macro_rules! live {
    () => {
        "ended_at IS NULL AND expires_at > $1 AND (attempts_left IS NULL OR attempts_left > 0)"
    };
}

/// Dead only because its time ran out (see [`Guess::Expired`]).
macro_rules! expired_unanswered {
    () => {
        "ended_at IS NULL AND expires_at <= $1 AND (attempts_left IS NULL OR attempts_left > 0)"
    };
}

/// The class of the advisory locks taken on a subject's secrets ("pcss").
const SUBJECT_LOCK_CLASS: i32 = 0x7063_7373;

fn record(kind: SecretKind, row: &PgRow) -> Result<SecretRecord, StoreError> {
    let subject: Option<String> = row.try_get("subject").map_err(corrupt)?;
    let attempts_left: Option<i32> = row.try_get("attempts_left").map_err(corrupt)?;
    let attempts_left = attempts_left
        .map(u32::try_from)
        .transpose()
        .map_err(corrupt)?;
    let record = SecretRecord::new(
        SecretId(row.try_get("id").map_err(corrupt)?),
        kind,
        row.try_get("created_at").map_err(corrupt)?,
        row.try_get("expires_at").map_err(corrupt)?,
    );
    Ok(record
        .subject(SecretSubject::from_key(subject.as_deref()).map_err(corrupt)?)
        .payload(row.try_get("payload").map_err(corrupt)?)
        .attempts_left(attempts_left))
}

fn attempts(attempts: Option<u32>) -> Option<i32> {
    attempts.map(|n| i32::try_from(n).unwrap_or(i32::MAX))
}

#[async_trait]
impl SecretStore for PostgresStore {
    async fn insert_secret(&self, secret: NewSecret) -> Result<SecretRecord, StoreError> {
        validate::new_secret(&secret)?;
        let subject = secret.subject.key();
        let mut tx = self.begin().await?;
        if let Some(subject) = subject.as_ref().filter(|_| secret.replaces_earlier) {
            sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2 || ':' || $3))")
                .bind(SUBJECT_LOCK_CLASS)
                .bind(secret.kind.as_str())
                .bind(subject)
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
            sqlx::query(concat!(
                "UPDATE portcullis_secrets SET ended_at = $1 \
                 WHERE kind = $2 AND subject = $3 AND ",
                live!()
            ))
            .bind(secret.created_at)
            .bind(secret.kind.as_str())
            .bind(subject)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO portcullis_secrets \
             (kind, digest, subject, payload, created_at, expires_at, attempts_left) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(secret.kind.as_str())
        .bind(secret.digest.as_bytes().as_slice())
        .bind(&subject)
        .bind(&secret.payload)
        .bind(secret.created_at)
        .bind(secret.expires_at)
        .bind(attempts(secret.attempts))
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
        let row = sqlx::query(concat!(
            "UPDATE portcullis_secrets SET ended_at = $1 \
             WHERE kind = $2 AND digest = $3 AND ",
            live!(),
            " RETURNING ",
            columns!()
        ))
        .bind(now)
        .bind(kind.as_str())
        .bind(digest.as_bytes().as_slice())
        .fetch_optional(self.pool())
        .await
        .map_err(store_error)?;
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
        let mut tx = self.begin().await?;
        let right = sqlx::query(concat!(
            "UPDATE portcullis_secrets SET ended_at = $1 \
             WHERE kind = $2 AND subject = $3 AND digest = $4 AND ",
            live!(),
            " RETURNING ",
            columns!()
        ))
        .bind(now)
        .bind(kind.as_str())
        .bind(&subject)
        .bind(digest.as_bytes().as_slice())
        .fetch_optional(&mut *tx)
        .await
        .map_err(store_error)?;
        let guess = match right {
            Some(row) => Guess::Right(Box::new(record(kind, &row)?)),
            None => {
                let left: Vec<Option<i32>> = sqlx::query_scalar(concat!(
                    "UPDATE portcullis_secrets SET attempts_left = attempts_left - 1 \
                     WHERE kind = $2 AND subject = $3 AND ",
                    live!(),
                    " RETURNING attempts_left"
                ))
                .bind(now)
                .bind(kind.as_str())
                .bind(&subject)
                .fetch_all(&mut *tx)
                .await
                .map_err(store_error)?;
                let left = left
                    .into_iter()
                    .map(|left| left.map(u32::try_from).transpose());
                match Guess::wrong(left.collect::<Result<Vec<_>, _>>().map_err(corrupt)?) {
                    Guess::NoSecret => {
                        let expired: Option<i32> = sqlx::query_scalar(concat!(
                            "SELECT 1 FROM portcullis_secrets WHERE kind = $2 AND subject = $3 AND ",
                            expired_unanswered!(),
                            " LIMIT 1"
                        ))
                        .bind(now)
                        .bind(kind.as_str())
                        .bind(&subject)
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
        let revoked = sqlx::query(concat!(
            "UPDATE portcullis_secrets SET ended_at = $1 WHERE kind = $2 AND subject = $3 AND ",
            live!()
        ))
        .bind(now)
        .bind(kind.as_str())
        .bind(subject)
        .execute(self.pool())
        .await
        .map_err(store_error)?
        .rows_affected();
        Ok(revoked)
    }

    async fn purge_secrets(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let deleted =
            sqlx::query("DELETE FROM portcullis_secrets WHERE expires_at < $1 OR ended_at < $1")
                .bind(before)
                .execute(self.pool())
                .await
                .map_err(store_error)?
                .rows_affected();
        Ok(deleted)
    }
}
