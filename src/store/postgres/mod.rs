//! [`PostgresStore`]: the production store for several instances sharing one database.

mod secrets;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row, Transaction};
use time::OffsetDateTime;

use super::migrations;
use super::{
    Consumption, CounterStore, EventStore, FamilyId, NewToken, RevokeReason, Rotation, StoreError,
    TokenId, TokenKind, TokenRecord, TokenSelector, TokenStore, TokenUse, User, UserId, validate,
};
use crate::assurance::Factors;
use crate::audit::{AuditEvent, AuditKind};
use crate::token::TokenDigest;

/// Every store trait in PostgreSQL (sqlx, embedded migrations).
///
/// Its tables are prefixed `portcullis_` and its migrations tracked in
/// `_portcullis_migrations`, next to the application's own. Atomicity holds across processes:
/// first-user creation takes a transaction-scoped advisory lock, the per-user token limit locks
/// the owner's row, and a rotation is one conditional `UPDATE … RETURNING`, so that of any
/// number of concurrent rotations of one token, on any number of instances, exactly one wins.
///
/// ```no_run
/// use portcullis::store::PostgresStore;
///
/// # async fn run() -> Result<(), portcullis::store::StoreError> {
/// let store = PostgresStore::connect("postgres://app@db/app").await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct PostgresStore {
    pool: PgPool,
}

/// Serialises first-user decisions across processes (an arbitrary, fixed lock key).
const FIRST_USER_LOCK: i64 = 0x706f_7274_6375_6c6c;

/// The class of the two-key advisory locks that serialise changes to one user's tokens.
const USER_TOKENS_LOCK_CLASS: i32 = 0x7063_746b;

/// Takes the transaction-scoped lock on `user`'s tokens. Rotations and revocations of a user's
/// tokens take it first, so a revoke never runs beside a rotation of the same user: under
/// READ COMMITTED a revoke's snapshot would miss the replacement the rotation inserts, and
/// the new token would outlive "log out everywhere". One lock, always taken first and alone,
/// cannot deadlock; unrelated users whose ids fold to the same key merely wait for each other.
async fn lock_user_tokens(
    tx: &mut Transaction<'static, Postgres>,
    user: UserId,
) -> Result<(), StoreError> {
    #[allow(clippy::cast_possible_truncation)]
    let folded = (user.0 ^ (user.0 >> 32)) as i32;
    sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
        .bind(USER_TOKENS_LOCK_CLASS)
        .bind(folded)
        .execute(&mut **tx)
        .await
        .map_err(store_error)?;
    Ok(())
}

macro_rules! user_columns {
    () => {
        "id, username, email, email_verified, phone, phone_verified, full_name, photo_url, password_hash, roles, daily_allowance, is_active, created_at, updated_at, last_login"
    };
}

macro_rules! token_columns {
    () => {
        "id, kind, digest, user_id, name, hint, family, scopes, created_at, expires_at, revoked_at, revoke_reason, last_used_at, auth_time, amr"
    };
}

/// A token (`t`) beside its owner (`u`): `token_columns!()` by name, then the owner's
/// `user_columns!()` from column [`TOKEN_COLUMNS`] on, the two names the token shares renamed.
macro_rules! token_and_owner_columns {
    () => {
        "t.id, t.kind, t.digest, t.user_id, t.name, t.hint, t.family, t.scopes, t.created_at, t.expires_at, t.revoked_at, t.revoke_reason, t.last_used_at, t.auth_time, t.amr, \
         u.id AS owner_id, u.username, u.email, u.email_verified, u.phone, u.phone_verified, u.full_name, u.photo_url, u.password_hash, u.roles, u.daily_allowance, u.is_active, u.created_at AS owner_created_at, u.updated_at, u.last_login"
    };
}

/// How many columns `token_columns!()` names.
const TOKEN_COLUMNS: usize = 15;

// After the column macros, which it uses.
mod users;

/// The schema, oldest first: every file of `migrations/`.
const MIGRATIONS: &[(&str, &str)] = migrations::migrations!("migrations":
    "0001_portcullis_init.sql",
    "0002_portcullis_events.sql",
    "0003_portcullis_counters.sql",
    "0004_portcullis_auth_time.sql",
    "0005_portcullis_secrets.sql",
    "0006_portcullis_user_attributes.sql",
    "0007_portcullis_token_factors.sql",
);

fn store_error(error: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &error {
        if db.is_unique_violation() {
            return StoreError::Conflict(match db.constraint() {
                Some("portcullis_users_username") => "username",
                Some("portcullis_users_email") => "email",
                Some("portcullis_users_phone") => "phone",
                Some("portcullis_identities_pkey") => "identity",
                _ => "digest",
            });
        }
        if db.is_foreign_key_violation() {
            return StoreError::Corrupt("token owner does not exist".into());
        }
    }
    StoreError::unavailable(error)
}

fn corrupt(error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(error.to_string())
}

fn user_from_row(row: &PgRow) -> Result<User, StoreError> {
    user_at(row, 0)
}

/// The user whose `user_columns!()` start at column `first`: read by position, so that the same
/// decoder reads a user alone and a token's owner beside the token's columns (whose `id` and
/// `created_at` would otherwise shadow the user's).
fn user_at(row: &PgRow, first: usize) -> Result<User, StoreError> {
    let mut user = User::new(
        UserId(row.try_get(first).map_err(corrupt)?),
        row.try_get::<String, _>(first + 1).map_err(corrupt)?,
        row.try_get(first + 12).map_err(corrupt)?,
    );
    user.email = row.try_get(first + 2).map_err(corrupt)?;
    user.email_verified = row.try_get(first + 3).map_err(corrupt)?;
    user.phone = row.try_get(first + 4).map_err(corrupt)?;
    user.phone_verified = row.try_get(first + 5).map_err(corrupt)?;
    user.full_name = row.try_get(first + 6).map_err(corrupt)?;
    user.photo_url = row.try_get(first + 7).map_err(corrupt)?;
    user.password_hash = row.try_get(first + 8).map_err(corrupt)?;
    user.roles = row.try_get(first + 9).map_err(corrupt)?;
    user.daily_allowance = row
        .try_get::<Option<i64>, _>(first + 10)
        .map_err(corrupt)?
        .map(u32::try_from)
        .transpose()
        .map_err(corrupt)?;
    user.is_active = row.try_get(first + 11).map_err(corrupt)?;
    user.updated_at = row.try_get(first + 13).map_err(corrupt)?;
    user.last_login = row.try_get(first + 14).map_err(corrupt)?;
    Ok(user)
}

fn token_from_row(row: &PgRow) -> Result<TokenRecord, StoreError> {
    let digest: Vec<u8> = row.try_get("digest").map_err(corrupt)?;
    let kind: String = row.try_get("kind").map_err(corrupt)?;
    let reason: Option<String> = row.try_get("revoke_reason").map_err(corrupt)?;
    let family: Option<String> = row.try_get("family").map_err(corrupt)?;
    Ok(TokenRecord {
        id: TokenId(row.try_get("id").map_err(corrupt)?),
        kind: TokenKind::from_str(&kind).map_err(corrupt)?,
        digest: TokenDigest::from_slice(&digest)
            .ok_or_else(|| corrupt("digest is not 32 bytes"))?,
        user_id: UserId(row.try_get("user_id").map_err(corrupt)?),
        name: row.try_get("name").map_err(corrupt)?,
        hint: row.try_get("hint").map_err(corrupt)?,
        family: family.map(FamilyId::new),
        scopes: row.try_get("scopes").map_err(corrupt)?,
        created_at: row.try_get("created_at").map_err(corrupt)?,
        expires_at: row.try_get("expires_at").map_err(corrupt)?,
        revoked_at: row.try_get("revoked_at").map_err(corrupt)?,
        revoke_reason: reason
            .as_deref()
            .map(RevokeReason::from_str)
            .transpose()
            .map_err(corrupt)?,
        last_used_at: row.try_get("last_used_at").map_err(corrupt)?,
        auth_time: row.try_get("auth_time").map_err(corrupt)?,
        factors: Factors::from_bits(
            u16::try_from(row.try_get::<i32, _>("amr").map_err(corrupt)?).map_err(corrupt)?,
        ),
    })
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host/database`) and applies pending
    /// migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(StoreError::unavailable)?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(StoreError::unavailable)?;
        Self::from_pool(pool).await
    }

    /// Uses an existing pool (e.g. the application's own) and applies pending migrations.
    pub async fn from_pool(pool: PgPool) -> Result<Self, StoreError> {
        migrations::migrator(MIGRATIONS)
            .run(&pool)
            .await
            .map_err(StoreError::unavailable)?;
        Ok(Self { pool })
    }

    /// The connection pool, for the application's own tables.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn begin(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.pool.begin().await.map_err(store_error)
    }

    /// Who owns the tokens of `family` (all of a family's tokens have one owner).
    async fn family_owner(&self, family: &FamilyId) -> Result<Option<UserId>, StoreError> {
        let owner: Option<i64> =
            sqlx::query_scalar("SELECT user_id FROM portcullis_tokens WHERE family = $1 LIMIT 1")
                .bind(family.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(store_error)?;
        Ok(owner.map(UserId))
    }
}

async fn find_user<'c>(
    executor: impl sqlx::PgExecutor<'c>,
    query: sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments>,
) -> Result<Option<User>, StoreError> {
    query
        .fetch_optional(executor)
        .await
        .map_err(store_error)?
        .as_ref()
        .map(user_from_row)
        .transpose()
}

async fn find_token<'c>(
    executor: impl sqlx::PgExecutor<'c>,
    kind: TokenKind,
    digest: &TokenDigest,
) -> Result<Option<TokenRecord>, StoreError> {
    sqlx::query(concat!(
        "SELECT ",
        token_columns!(),
        " FROM portcullis_tokens WHERE kind = $1 AND digest = $2"
    ))
    .bind(kind.as_str())
    .bind(digest.as_bytes().as_slice())
    .fetch_optional(executor)
    .await
    .map_err(store_error)?
    .as_ref()
    .map(token_from_row)
    .transpose()
}

async fn insert_token(
    tx: &mut Transaction<'static, Postgres>,
    token: NewToken,
) -> Result<TokenRecord, StoreError> {
    if let Some(limit) = token.max_active {
        // Locking the owner's row serialises concurrent inserts for that owner.
        sqlx::query("SELECT id FROM portcullis_users WHERE id = $1 FOR UPDATE")
            .bind(token.user_id.0)
            .fetch_optional(&mut **tx)
            .await
            .map_err(store_error)?;
        let active: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM portcullis_tokens WHERE user_id = $1 AND kind = $2 \
             AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $3)",
        )
        .bind(token.user_id.0)
        .bind(token.kind.as_str())
        .bind(token.created_at)
        .fetch_one(&mut **tx)
        .await
        .map_err(store_error)?;
        if active >= i64::from(limit) {
            return Err(StoreError::LimitReached { limit });
        }
    }
    let row = sqlx::query(concat!(
        "INSERT INTO portcullis_tokens \
         (kind, digest, user_id, name, hint, family, scopes, created_at, expires_at, auth_time, amr) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING ",
        token_columns!()
    ))
    .bind(token.kind.as_str())
    .bind(token.digest.as_bytes().as_slice())
    .bind(token.user_id.0)
    .bind(token.name)
    .bind(token.hint)
    .bind(token.family.as_ref().map(FamilyId::as_str))
    .bind(token.scopes)
    .bind(token.created_at)
    .bind(token.expires_at)
    .bind(token.auth_time)
    .bind(i32::from(token.factors.bits()))
    .fetch_one(&mut **tx)
    .await
    .map_err(store_error)?;
    token_from_row(&row)
}

#[async_trait]
impl TokenStore for PostgresStore {
    async fn insert_token(&self, token: NewToken) -> Result<TokenRecord, StoreError> {
        validate::new_token(&token)?;
        let mut tx = self.begin().await?;
        let record = insert_token(&mut tx, token).await?;
        tx.commit().await.map_err(store_error)?;
        Ok(record)
    }

    async fn token_by_digest(
        &self,
        kind: TokenKind,
        digest: &TokenDigest,
    ) -> Result<Option<TokenRecord>, StoreError> {
        find_token(&self.pool, kind, digest).await
    }

    async fn token_and_owner(
        &self,
        kind: TokenKind,
        digest: &TokenDigest,
    ) -> Result<Option<(TokenRecord, Option<User>)>, StoreError> {
        let Some(row) = sqlx::query(concat!(
            "SELECT ",
            token_and_owner_columns!(),
            " FROM portcullis_tokens t LEFT JOIN portcullis_users u ON u.id = t.user_id \
             WHERE t.kind = $1 AND t.digest = $2"
        ))
        .bind(kind.as_str())
        .bind(digest.as_bytes().as_slice())
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?
        else {
            return Ok(None);
        };
        let token = token_from_row(&row)?;
        let owner_found = row
            .try_get::<Option<i64>, _>(TOKEN_COLUMNS)
            .map_err(corrupt)?
            .is_some();
        let owner = owner_found
            .then(|| user_at(&row, TOKEN_COLUMNS))
            .transpose()?;
        Ok(Some((token, owner)))
    }

    async fn tokens_of_user(
        &self,
        user: UserId,
        kind: TokenKind,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            token_columns!(),
            " FROM portcullis_tokens WHERE user_id = $1 AND kind = $2 ORDER BY id"
        ))
        .bind(user.0)
        .bind(kind.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?
        .iter()
        .map(token_from_row)
        .collect()
    }

    async fn rotate_token(
        &self,
        kind: TokenKind,
        presented: &TokenDigest,
        replacement: NewToken,
        now: OffsetDateTime,
    ) -> Result<Rotation, StoreError> {
        validate::new_token(&replacement)?;
        let mut tx = self.begin().await?;
        lock_user_tokens(&mut tx, replacement.user_id).await?;
        // A concurrent rotation of the same row waits for this one to commit, then re-checks
        // `revoked_at IS NULL` against the committed row and updates nothing.
        let rotated = sqlx::query(concat!(
            "UPDATE portcullis_tokens SET revoked_at = $3, revoke_reason = $4 \
             WHERE kind = $1 AND digest = $2 AND revoked_at IS NULL \
               AND (expires_at IS NULL OR expires_at > $3) RETURNING ",
            token_columns!()
        ))
        .bind(kind.as_str())
        .bind(presented.as_bytes().as_slice())
        .bind(now)
        .bind(RevokeReason::Rotated.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(store_error)?;
        let Some(previous) = rotated else {
            let current = find_token(&mut *tx, kind, presented).await?;
            return Ok(Rotation::Rejected(current.map(Box::new)));
        };
        let previous = token_from_row(&previous)?;
        let replacement = insert_token(&mut tx, replacement).await?;
        tx.commit().await.map_err(store_error)?;
        Ok(Rotation::Rotated {
            previous: Box::new(previous),
            replacement: Box::new(replacement),
        })
    }

    async fn revoke_tokens(
        &self,
        selector: TokenSelector,
        reason: RevokeReason,
        now: OffsetDateTime,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        macro_rules! revoke {
            ($condition:literal) => {
                sqlx::query(concat!(
                    "UPDATE portcullis_tokens SET revoked_at = $1, revoke_reason = $2 \
                     WHERE revoked_at IS NULL AND ",
                    $condition,
                    " RETURNING ",
                    token_columns!()
                ))
                .bind(now)
                .bind(reason.as_str())
            };
        }
        let query = match &selector {
            TokenSelector::Owned { id, owner } => {
                revoke!("id = $3 AND user_id = $4").bind(id.0).bind(owner.0)
            }
            TokenSelector::Digest { kind, digest } => revoke!("kind = $3 AND digest = $4")
                .bind(kind.as_str())
                .bind(digest.as_bytes().to_vec()),
            TokenSelector::Family(family) => {
                revoke!("family = $3").bind(family.as_str().to_owned())
            }
            TokenSelector::User { user, kind: None } => revoke!("user_id = $3").bind(user.0),
            TokenSelector::User {
                user,
                kind: Some(kind),
            } => revoke!("user_id = $3 AND kind = $4")
                .bind(user.0)
                .bind(kind.as_str()),
        };
        // Revokes that can reach a family's newest token wait for rotations of its owner.
        let owner = match &selector {
            TokenSelector::User { user, .. } => Some(*user),
            TokenSelector::Family(family) => self.family_owner(family).await?,
            TokenSelector::Owned { .. } | TokenSelector::Digest { .. } => None,
        };
        let mut tx = self.begin().await?;
        if let Some(owner) = owner {
            lock_user_tokens(&mut tx, owner).await?;
        }
        let mut revoked = query
            .fetch_all(&mut *tx)
            .await
            .map_err(store_error)?
            .iter()
            .map(token_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit().await.map_err(store_error)?;
        // RETURNING has no defined order; keep the stores' documented oldest-first order.
        revoked.sort_by_key(|token| token.id);
        Ok(revoked)
    }

    async fn family_is_active(
        &self,
        family: &FamilyId,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM portcullis_tokens WHERE family = $1 \
             AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2))",
        )
        .bind(family.as_str())
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(store_error)
    }

    async fn purge_tokens(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let result =
            sqlx::query("DELETE FROM portcullis_tokens WHERE expires_at < $1 OR revoked_at < $1")
                .bind(before)
                .execute(&self.pool)
                .await
                .map_err(store_error)?;
        Ok(result.rows_affected())
    }

    async fn record_token_use(&self, uses: &[TokenUse]) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = uses.iter().map(|usage| usage.id.0).collect();
        let times: Vec<OffsetDateTime> = uses.iter().map(|usage| usage.at).collect();
        sqlx::query(
            "UPDATE portcullis_tokens AS t SET last_used_at = u.at \
             FROM UNNEST($1::BIGINT[], $2::TIMESTAMPTZ[]) AS u(id, at) \
             WHERE t.id = u.id AND (t.last_used_at IS NULL OR t.last_used_at < u.at)",
        )
        .bind(ids)
        .bind(times)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }
}

#[async_trait]
impl EventStore for PostgresStore {
    async fn record_event(&self, event: &AuditEvent) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO portcullis_events (at, kind, user_id, data) VALUES ($1, $2, $3, $4)",
        )
        .bind(event.at)
        .bind(event.kind.name())
        .bind(event.user_id.map(|id| id.0))
        .bind(event.kind.to_json())
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn events(
        &self,
        user: Option<UserId>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let rows: Vec<(OffsetDateTime, Option<i64>, String)> = sqlx::query_as(
            "SELECT at, user_id, data FROM portcullis_events \
             WHERE $1::BIGINT IS NULL OR user_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(user.map(|id| id.0))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.into_iter()
            .map(|(at, user_id, data)| {
                Ok(AuditEvent {
                    at,
                    kind: AuditKind::from_json(&data)?,
                    user_id: user_id.map(UserId),
                })
            })
            .collect()
    }
}

#[async_trait]
impl CounterStore for PostgresStore {
    async fn consume(
        &self,
        key: &str,
        window: OffsetDateTime,
        amount: u64,
        limit: u64,
    ) -> Result<Consumption, StoreError> {
        validate::counter_key(key)?;
        let (amount, limit) = (saturate(amount), saturate(limit));
        let mut tx = self.begin().await?;
        // The upsert locks the row until commit, so concurrent consumers queue here.
        let current: i64 = sqlx::query_scalar(
            "INSERT INTO portcullis_counters (key, window_start, value) VALUES ($1, $2, 0) \
             ON CONFLICT (key) DO UPDATE SET \
               value = CASE WHEN $2 > portcullis_counters.window_start THEN 0 \
                            ELSE portcullis_counters.value END, \
               window_start = GREATEST(portcullis_counters.window_start, $2) \
             RETURNING value",
        )
        .bind(key)
        .bind(window)
        .fetch_one(&mut *tx)
        .await
        .map_err(store_error)?;
        let Some(total) = current.checked_add(amount).filter(|total| *total <= limit) else {
            tx.commit().await.map_err(store_error)?;
            return Ok(Consumption::Exceeded {
                total: unsigned(current),
            });
        };
        sqlx::query("UPDATE portcullis_counters SET value = $2 WHERE key = $1")
            .bind(key)
            .bind(total)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(Consumption::Allowed {
            total: unsigned(total),
        })
    }

    async fn counter(&self, key: &str, window: OffsetDateTime) -> Result<u64, StoreError> {
        if validate::counter_key(key).is_err() {
            return Ok(0);
        }
        let value: Option<i64> = sqlx::query_scalar(
            "SELECT value FROM portcullis_counters WHERE key = $1 AND window_start >= $2",
        )
        .bind(key)
        .bind(window)
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(value.map_or(0, unsigned))
    }
}

/// Counters are `u64` in the API and `BIGINT` in the database.
fn saturate(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

#[cfg(test)]
#[tokio::test]
async fn the_embedded_migrations_are_the_directory_as_sqlx_reads_it() {
    let embedded = migrations::migrator(MIGRATIONS);
    migrations::tests::matches_the_directory(&embedded, "src/store/postgres/migrations").await;
}

#[cfg(test)]
mod column_tests {
    use super::TOKEN_COLUMNS;

    #[test]
    fn the_owner_columns_start_where_the_token_columns_end() {
        let count = |columns: &str| columns.split(',').count();
        assert_eq!(count(token_columns!()), TOKEN_COLUMNS);
        assert_eq!(
            count(token_and_owner_columns!()),
            TOKEN_COLUMNS + count(user_columns!())
        );
    }
}
