//! The PostgreSQL [`UserStore`]: accounts and their external identities.

use async_trait::async_trait;
use sqlx::Row;
use time::OffsetDateTime;

use super::{FIRST_USER_LOCK, PostgresStore, corrupt, find_user, store_error, user_from_row};
use crate::store::{
    ExternalIdentity, NewUser, StoreError, User, UserId, UserStore, UserUpdate, validate,
};

#[async_trait]
impl UserStore for PostgresStore {
    async fn create_user(&self, user: NewUser, now: OffsetDateTime) -> Result<User, StoreError> {
        validate::new_user(&user)?;
        let mut tx = self.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(FIRST_USER_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM portcullis_users)")
            .fetch_one(&mut *tx)
            .await
            .map_err(store_error)?;
        let row = sqlx::query(concat!(
            "INSERT INTO portcullis_users \
             (username, email, email_verified, phone, phone_verified, full_name, photo_url, \
              password_hash, roles, daily_allowance, is_active, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) RETURNING ",
            user_columns!()
        ))
        .bind(&user.username)
        .bind(&user.email)
        .bind(user.email_verified)
        .bind(&user.phone)
        .bind(user.phone_verified)
        .bind(&user.full_name)
        .bind(&user.photo_url)
        .bind(&user.password_hash)
        .bind(user.effective_roles(!exists))
        .bind(user.daily_allowance.map(i64::from))
        .bind(user.is_active)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(store_error)?;
        let created = user_from_row(&row)?;
        tx.commit().await.map_err(store_error)?;
        Ok(created)
    }

    async fn count_users(&self) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM portcullis_users")
            .fetch_one(&self.pool)
            .await
            .map_err(store_error)?;
        u64::try_from(count).map_err(corrupt)
    }

    async fn user_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let query = concat!(
            "SELECT ",
            user_columns!(),
            " FROM portcullis_users WHERE id = $1"
        );
        find_user(&self.pool, sqlx::query(query).bind(id.0)).await
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        if !validate::storable(username) {
            return Ok(None);
        }
        let query = concat!(
            "SELECT ",
            user_columns!(),
            " FROM portcullis_users WHERE lower(username COLLATE \"C\") = lower($1 COLLATE \"C\")"
        );
        find_user(&self.pool, sqlx::query(query).bind(username)).await
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        if !validate::storable(email) {
            return Ok(None);
        }
        let query = concat!(
            "SELECT ",
            user_columns!(),
            " FROM portcullis_users WHERE lower(email COLLATE \"C\") = lower($1 COLLATE \"C\")"
        );
        find_user(&self.pool, sqlx::query(query).bind(email)).await
    }

    async fn user_by_phone(&self, phone: &str) -> Result<Option<User>, StoreError> {
        if !validate::storable(phone) {
            return Ok(None);
        }
        let query = concat!(
            "SELECT ",
            user_columns!(),
            " FROM portcullis_users WHERE phone = $1"
        );
        find_user(&self.pool, sqlx::query(query).bind(phone)).await
    }

    async fn update_user(
        &self,
        id: UserId,
        update: UserUpdate,
        now: OffsetDateTime,
    ) -> Result<Option<User>, StoreError> {
        validate::user_update(&update)?;
        // Read with the row locked, apply the rules in one place (`User::apply`), write.
        let mut tx = self.begin().await?;
        let locked = concat!(
            "SELECT ",
            user_columns!(),
            " FROM portcullis_users WHERE id = $1 FOR UPDATE"
        );
        let Some(mut user) = find_user(&mut *tx, sqlx::query(locked).bind(id.0)).await? else {
            return Ok(None);
        };
        user.apply(update, now);
        let row = sqlx::query(concat!(
            "UPDATE portcullis_users SET email = $1, email_verified = $2, phone = $3, \
             phone_verified = $4, full_name = $5, photo_url = $6, password_hash = $7, \
             roles = $8, daily_allowance = $9, is_active = $10, last_login = $11, \
             updated_at = $12 WHERE id = $13 RETURNING ",
            user_columns!()
        ))
        .bind(&user.email)
        .bind(user.email_verified)
        .bind(&user.phone)
        .bind(user.phone_verified)
        .bind(&user.full_name)
        .bind(&user.photo_url)
        .bind(&user.password_hash)
        .bind(&user.roles)
        .bind(user.daily_allowance.map(i64::from))
        .bind(user.is_active)
        .bind(user.last_login)
        .bind(user.updated_at)
        .bind(id.0)
        .fetch_one(&mut *tx)
        .await
        .map_err(store_error)?;
        let updated = user_from_row(&row)?;
        tx.commit().await.map_err(store_error)?;
        Ok(Some(updated))
    }

    async fn link_identity(
        &self,
        user: UserId,
        identity: ExternalIdentity,
    ) -> Result<bool, StoreError> {
        validate::identity(&identity.issuer, &identity.subject)?;
        // One statement: the primary key decides between concurrent links of one identity.
        let inserted = sqlx::query(
            "INSERT INTO portcullis_identities (issuer, subject, user_id, linked_at) \
             SELECT $1, $2, id, $4 FROM portcullis_users WHERE id = $3 \
             ON CONFLICT (issuer, subject) DO NOTHING",
        )
        .bind(&identity.issuer)
        .bind(&identity.subject)
        .bind(user.0)
        .bind(identity.linked_at)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        if inserted.rows_affected() > 0 {
            return Ok(true);
        }
        let owner: Option<i64> = sqlx::query_scalar(
            "SELECT user_id FROM portcullis_identities WHERE issuer = $1 AND subject = $2",
        )
        .bind(&identity.issuer)
        .bind(&identity.subject)
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        match owner {
            Some(owner) if owner == user.0 => Ok(false),
            Some(_) => Err(StoreError::Conflict("identity")),
            None => Err(StoreError::Corrupt(format!("user {user} does not exist"))),
        }
    }

    async fn user_by_identity(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<User>, StoreError> {
        if !validate::storable(issuer) || !validate::storable(subject) {
            return Ok(None);
        }
        let query = concat!(
            "SELECT ",
            user_columns!(),
            " FROM portcullis_users WHERE id = \
             (SELECT user_id FROM portcullis_identities WHERE issuer = $1 AND subject = $2)"
        );
        find_user(&self.pool, sqlx::query(query).bind(issuer).bind(subject)).await
    }

    async fn identities_of(&self, user: UserId) -> Result<Vec<ExternalIdentity>, StoreError> {
        let rows = sqlx::query(
            "SELECT issuer, subject, linked_at FROM portcullis_identities WHERE user_id = $1 \
             ORDER BY linked_at, issuer COLLATE \"C\", subject COLLATE \"C\"",
        )
        .bind(user.0)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.iter()
            .map(|row| {
                Ok(ExternalIdentity::new(
                    row.try_get::<String, _>("issuer").map_err(corrupt)?,
                    row.try_get::<String, _>("subject").map_err(corrupt)?,
                    row.try_get("linked_at").map_err(corrupt)?,
                ))
            })
            .collect()
    }

    async fn unlink_identity(
        &self,
        user: UserId,
        issuer: &str,
        subject: &str,
    ) -> Result<bool, StoreError> {
        if !validate::storable(issuer) || !validate::storable(subject) {
            return Ok(false);
        }
        let deleted = sqlx::query(
            "DELETE FROM portcullis_identities \
             WHERE user_id = $1 AND issuer = $2 AND subject = $3",
        )
        .bind(user.0)
        .bind(issuer)
        .bind(subject)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(deleted.rows_affected() > 0)
    }
}
