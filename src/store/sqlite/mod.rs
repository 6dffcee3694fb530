//! [`SqliteStore`]: the embedded default, one file, zero set-up.

mod secrets;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};
use time::OffsetDateTime;

use super::migrations;
use super::validate;
use super::{
    Consumption, CounterStore, EventStore, FamilyId, NewToken, RevokeReason, Rotation, StoreError,
    TokenId, TokenKind, TokenRecord, TokenSelector, TokenStore, TokenUse, User, UserId,
};
use crate::assurance::Factors;
use crate::audit::{AuditEvent, AuditKind};
use crate::clock::{from_micros, to_micros};
use crate::token::TokenDigest;

/// Every store trait in a SQLite database (sqlx, WAL mode, embedded migrations).
///
/// Its tables are prefixed `portcullis_` and its migrations are tracked in
/// `_portcullis_migrations`, so an application can keep its own tables and sqlx migrations in
/// the same file. Writes that must be atomic run in `BEGIN IMMEDIATE` transactions, which
/// serialise writers instead of failing them.
///
/// ```no_run
/// use portcullis::store::SqliteStore;
///
/// # async fn run() -> Result<(), portcullis::store::StoreError> {
/// let store = SqliteStore::connect("sqlite://data/app.db").await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
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
    if let sqlx::Error::Database(db) = &error
        && db.is_unique_violation()
    {
        let message = db.message();
        return StoreError::Conflict(if message.contains(".username") {
            "username"
        } else if message.contains(".email") {
            "email"
        } else if message.contains(".phone") {
            "phone"
        } else if message.contains("portcullis_identities.") {
            "identity"
        } else {
            "digest"
        });
    }
    if let sqlx::Error::Database(db) = &error
        && db.is_foreign_key_violation()
    {
        return StoreError::Corrupt("token owner does not exist".into());
    }
    StoreError::unavailable(error)
}

fn corrupt(error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(error.to_string())
}

fn json_list(list: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(list).map_err(corrupt)
}

fn parse_list(text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(corrupt)
}

fn user_from_row(row: &SqliteRow) -> Result<User, StoreError> {
    user_at(row, 0)
}

/// The user whose `user_columns!()` start at column `first`: read by position, so that the same
/// decoder reads a user alone and a token's owner beside the token's columns (whose `id` and
/// `created_at` would otherwise shadow the user's).
fn user_at(row: &SqliteRow, first: usize) -> Result<User, StoreError> {
    let get = |column: usize| row.try_get::<Option<i64>, _>(column).map_err(corrupt);
    let mut user = User::new(
        UserId(row.try_get(first).map_err(corrupt)?),
        row.try_get::<String, _>(first + 1).map_err(corrupt)?,
        from_micros(row.try_get(first + 12).map_err(corrupt)?),
    );
    user.email = row.try_get(first + 2).map_err(corrupt)?;
    user.email_verified = row.try_get(first + 3).map_err(corrupt)?;
    user.phone = row.try_get(first + 4).map_err(corrupt)?;
    user.phone_verified = row.try_get(first + 5).map_err(corrupt)?;
    user.full_name = row.try_get(first + 6).map_err(corrupt)?;
    user.photo_url = row.try_get(first + 7).map_err(corrupt)?;
    user.password_hash = row.try_get(first + 8).map_err(corrupt)?;
    user.roles = parse_list(row.try_get(first + 9).map_err(corrupt)?)?;
    user.daily_allowance = get(first + 10)?
        .map(u32::try_from)
        .transpose()
        .map_err(corrupt)?;
    user.is_active = row.try_get(first + 11).map_err(corrupt)?;
    user.updated_at = from_micros(row.try_get(first + 13).map_err(corrupt)?);
    user.last_login = get(first + 14)?.map(from_micros);
    Ok(user)
}

fn token_from_row(row: &SqliteRow) -> Result<TokenRecord, StoreError> {
    let digest: Vec<u8> = row.try_get("digest").map_err(corrupt)?;
    let scopes: Option<String> = row.try_get("scopes").map_err(corrupt)?;
    let reason: Option<String> = row.try_get("revoke_reason").map_err(corrupt)?;
    let kind: String = row.try_get("kind").map_err(corrupt)?;
    let family: Option<String> = row.try_get("family").map_err(corrupt)?;
    let time = |column: &str| -> Result<Option<OffsetDateTime>, StoreError> {
        Ok(row
            .try_get::<Option<i64>, _>(column)
            .map_err(corrupt)?
            .map(from_micros))
    };
    Ok(TokenRecord {
        id: TokenId(row.try_get("id").map_err(corrupt)?),
        kind: TokenKind::from_str(&kind).map_err(corrupt)?,
        digest: TokenDigest::from_slice(&digest)
            .ok_or_else(|| corrupt("digest is not 32 bytes"))?,
        user_id: UserId(row.try_get("user_id").map_err(corrupt)?),
        name: row.try_get("name").map_err(corrupt)?,
        hint: row.try_get("hint").map_err(corrupt)?,
        family: family.map(FamilyId::new),
        scopes: scopes.as_deref().map(parse_list).transpose()?,
        created_at: from_micros(row.try_get("created_at").map_err(corrupt)?),
        expires_at: time("expires_at")?,
        revoked_at: time("revoked_at")?,
        revoke_reason: reason
            .as_deref()
            .map(RevokeReason::from_str)
            .transpose()
            .map_err(corrupt)?,
        last_used_at: time("last_used_at")?,
        auth_time: time("auth_time")?,
        factors: Factors::from_bits(
            u16::try_from(row.try_get::<i64, _>("amr").map_err(corrupt)?).map_err(corrupt)?,
        ),
    })
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path/to/file.db`) and
    /// applies pending migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(StoreError::unavailable)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(StoreError::unavailable)?;
        Self::from_pool(pool).await
    }

    /// Uses an existing pool (e.g. the application's own) and applies pending migrations.
    /// The pool should enable foreign keys and a busy timeout, as [`connect`](Self::connect) does.
    pub async fn from_pool(pool: SqlitePool) -> Result<Self, StoreError> {
        migrations::migrator(MIGRATIONS)
            .run(&pool)
            .await
            .map_err(StoreError::unavailable)?;
        Ok(Self { pool })
    }

    /// The connection pool, for the application's own tables.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn immediate(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(store_error)
    }
}

async fn find_token<'c>(
    executor: impl sqlx::SqliteExecutor<'c>,
    kind: TokenKind,
    digest: &TokenDigest,
) -> Result<Option<TokenRecord>, StoreError> {
    sqlx::query(concat!(
        "SELECT ",
        token_columns!(),
        " FROM portcullis_tokens WHERE kind = ? AND digest = ?"
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

/// The user the query (selecting `user_columns!()`) finds, if any.
async fn find_user<'c>(
    executor: impl sqlx::SqliteExecutor<'c>,
    query: sqlx::query::Query<'_, Sqlite, sqlx::sqlite::SqliteArguments>,
) -> Result<Option<User>, StoreError> {
    query
        .fetch_optional(executor)
        .await
        .map_err(store_error)?
        .as_ref()
        .map(user_from_row)
        .transpose()
}

async fn insert_token(
    tx: &mut Transaction<'static, Sqlite>,
    token: NewToken,
) -> Result<TokenRecord, StoreError> {
    if let Some(limit) = token.max_active {
        let active: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM portcullis_tokens WHERE user_id = ? AND kind = ? \
             AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)",
        )
        .bind(token.user_id.0)
        .bind(token.kind.as_str())
        .bind(to_micros(token.created_at))
        .fetch_one(&mut **tx)
        .await
        .map_err(store_error)?;
        if active >= i64::from(limit) {
            return Err(StoreError::LimitReached { limit });
        }
    }
    let scopes = token.scopes.as_deref().map(json_list).transpose()?;
    let row = sqlx::query(concat!(
        "INSERT INTO portcullis_tokens \
         (kind, digest, user_id, name, hint, family, scopes, created_at, expires_at, auth_time, amr) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING ",
        token_columns!()
    ))
    .bind(token.kind.as_str())
    .bind(token.digest.as_bytes().as_slice())
    .bind(token.user_id.0)
    .bind(token.name)
    .bind(token.hint)
    .bind(token.family.as_ref().map(FamilyId::as_str))
    .bind(scopes)
    .bind(to_micros(token.created_at))
    .bind(token.expires_at.map(to_micros))
    .bind(token.auth_time.map(to_micros))
    .bind(i64::from(token.factors.bits()))
    .fetch_one(&mut **tx)
    .await
    .map_err(store_error)?;
    token_from_row(&row)
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn insert_token(&self, token: NewToken) -> Result<TokenRecord, StoreError> {
        super::validate::new_token(&token)?;
        let mut tx = self.immediate().await?;
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
             WHERE t.kind = ? AND t.digest = ?"
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
            " FROM portcullis_tokens WHERE user_id = ? AND kind = ? ORDER BY id"
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
        super::validate::new_token(&replacement)?;
        // BEGIN IMMEDIATE takes the write lock first, so concurrent rotations of one token
        // queue here and every one after the first sees it revoked.
        let mut tx = self.immediate().await?;
        let Some(current) = find_token(&mut *tx, kind, presented).await? else {
            return Ok(Rotation::Rejected(None));
        };
        if !current.is_active(now) {
            return Ok(Rotation::Rejected(Some(Box::new(current))));
        }
        let row = sqlx::query(concat!(
            "UPDATE portcullis_tokens SET revoked_at = ?, revoke_reason = ? WHERE id = ? RETURNING ",
            token_columns!()
        ))
        .bind(to_micros(now))
        .bind(RevokeReason::Rotated.as_str())
        .bind(current.id.0)
        .fetch_one(&mut *tx)
        .await
        .map_err(store_error)?;
        let previous = token_from_row(&row)?;
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
                    "UPDATE portcullis_tokens SET revoked_at = ?, revoke_reason = ? \
                     WHERE revoked_at IS NULL AND ",
                    $condition,
                    " RETURNING ",
                    token_columns!()
                ))
                .bind(to_micros(now))
                .bind(reason.as_str())
            };
        }
        let query = match &selector {
            TokenSelector::Owned { id, owner } => {
                revoke!("id = ? AND user_id = ?").bind(id.0).bind(owner.0)
            }
            TokenSelector::Digest { kind, digest } => revoke!("kind = ? AND digest = ?")
                .bind(kind.as_str())
                .bind(digest.as_bytes().to_vec()),
            TokenSelector::Family(family) => revoke!("family = ?").bind(family.as_str().to_owned()),
            TokenSelector::User { user, kind: None } => revoke!("user_id = ?").bind(user.0),
            TokenSelector::User {
                user,
                kind: Some(kind),
            } => revoke!("user_id = ? AND kind = ?")
                .bind(user.0)
                .bind(kind.as_str()),
        };
        let mut revoked = query
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?
            .iter()
            .map(token_from_row)
            .collect::<Result<Vec<_>, _>>()?;
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
            "SELECT EXISTS (SELECT 1 FROM portcullis_tokens WHERE family = ? \
             AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?))",
        )
        .bind(family.as_str())
        .bind(to_micros(now))
        .fetch_one(&self.pool)
        .await
        .map_err(store_error)
    }

    async fn purge_tokens(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let before = to_micros(before);
        let result =
            sqlx::query("DELETE FROM portcullis_tokens WHERE expires_at < ? OR revoked_at < ?")
                .bind(before)
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
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        for usage in uses {
            sqlx::query(
                "UPDATE portcullis_tokens SET last_used_at = ?1 \
                 WHERE id = ?2 AND (last_used_at IS NULL OR last_used_at < ?1)",
            )
            .bind(to_micros(usage.at))
            .bind(usage.id.0)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)
    }
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn record_event(&self, event: &AuditEvent) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO portcullis_events (at, kind, user_id, data) VALUES (?, ?, ?, ?)")
            .bind(to_micros(event.at))
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
        let rows: Vec<(i64, Option<i64>, String)> = sqlx::query_as(
            "SELECT at, user_id, data FROM portcullis_events \
             WHERE ?1 IS NULL OR user_id = ?1 ORDER BY id DESC LIMIT ?2",
        )
        .bind(user.map(|id| id.0))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.into_iter()
            .map(|(at, user_id, data)| {
                Ok(AuditEvent {
                    at: from_micros(at),
                    kind: AuditKind::from_json(&data)?,
                    user_id: user_id.map(UserId),
                })
            })
            .collect()
    }
}

#[async_trait]
impl CounterStore for SqliteStore {
    async fn consume(
        &self,
        key: &str,
        window: OffsetDateTime,
        amount: u64,
        limit: u64,
    ) -> Result<Consumption, StoreError> {
        validate::counter_key(key)?;
        let (amount, limit) = (saturate(amount), saturate(limit));
        let mut tx = self.immediate().await?;
        // Move the key to the newest window, starting that window from zero.
        let current: i64 = sqlx::query_scalar(
            "INSERT INTO portcullis_counters (key, window_start, value) VALUES (?1, ?2, 0) \
             ON CONFLICT (key) DO UPDATE SET \
               value = CASE WHEN ?2 > window_start THEN 0 ELSE value END, \
               window_start = MAX(window_start, ?2) \
             RETURNING value",
        )
        .bind(key)
        .bind(to_micros(window))
        .fetch_one(&mut *tx)
        .await
        .map_err(store_error)?;
        let Some(total) = current.checked_add(amount).filter(|total| *total <= limit) else {
            tx.commit().await.map_err(store_error)?;
            return Ok(Consumption::Exceeded {
                total: unsigned(current),
            });
        };
        sqlx::query("UPDATE portcullis_counters SET value = ?2 WHERE key = ?1")
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
            "SELECT value FROM portcullis_counters WHERE key = ? AND window_start >= ?",
        )
        .bind(key)
        .bind(to_micros(window))
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
    migrations::tests::matches_the_directory(&embedded, "src/store/sqlite/migrations").await;
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
