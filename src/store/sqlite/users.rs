//! The SQLite [`UserStore`]: accounts and their external identities.

use async_trait::async_trait;
use sqlx::Row;
use time::OffsetDateTime;

use super::{SqliteStore, corrupt, find_user, json_list, store_error, user_from_row};
use crate::clock::{from_micros, to_micros};
use crate::store::{
    ExternalIdentity, NewUser, StoreError, User, UserId, UserStore, UserUpdate, validate,
};

/// The user `id`, read through `executor` (the pool, or a transaction for a read-modify-write).
async fn user_with_id<'c>(
    executor: impl sqlx::SqliteExecutor<'c>,
    id: UserId,
) -> Result<Option<User>, StoreError> {
    let query = concat!(
        "SELECT ",
        user_columns!(),
        " FROM portcullis_users WHERE id = ?"
    );
    find_user(executor, sqlx::query(query).bind(id.0)).await
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn create_user(&self, user: NewUser, now: OffsetDateTime) -> Result<User, StoreError> {
        validate::new_user(&user)?;
        let mut tx = self.immediate().await?;
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM portcullis_users)")
            .fetch_one(&mut *tx)
            .await
            .map_err(store_error)?;
        let roles = json_list(&user.effective_roles(!exists))?;
        let row = sqlx::query(concat!(
            "INSERT INTO portcullis_users \
             (username, email, email_verified, phone, phone_verified, full_name, photo_url, \
              password_hash, roles, daily_allowance, is_active, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING ",
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
        .bind(roles)
        .bind(user.daily_allowance.map(i64::from))
        .bind(user.is_active)
        .bind(to_micros(now))
        .bind(to_micros(now))
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
        user_with_id(&self.pool, id).await
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        if !validate::storable(username) {
            return Ok(None);
        }
        let query = concat!(
            "SELECT ",
            user_columns!(),
            " FROM portcullis_users WHERE username = ?"
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
            " FROM portcullis_users WHERE email = ?"
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
            " FROM portcullis_users WHERE phone = ?"
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
        // Read, apply the rules in one place (`User::apply`), write: inside one immediate
        // transaction, so concurrent updates serialise.
        let mut tx = self.immediate().await?;
        let Some(mut user) = user_with_id(&mut *tx, id).await? else {
            return Ok(None);
        };
        user.apply(update, now);
        let row = sqlx::query(concat!(
            "UPDATE portcullis_users SET email = ?, email_verified = ?, phone = ?, \
             phone_verified = ?, full_name = ?, photo_url = ?, password_hash = ?, roles = ?, \
             daily_allowance = ?, is_active = ?, last_login = ?, updated_at = ? \
             WHERE id = ? RETURNING ",
            user_columns!()
        ))
        .bind(&user.email)
        .bind(user.email_verified)
        .bind(&user.phone)
        .bind(user.phone_verified)
        .bind(&user.full_name)
        .bind(&user.photo_url)
        .bind(&user.password_hash)
        .bind(json_list(&user.roles)?)
        .bind(user.daily_allowance.map(i64::from))
        .bind(user.is_active)
        .bind(user.last_login.map(to_micros))
        .bind(to_micros(user.updated_at))
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
        let mut tx = self.immediate().await?;
        if user_with_id(&mut *tx, user).await?.is_none() {
            return Err(StoreError::Corrupt(format!("user {user} does not exist")));
        }
        let owner: Option<i64> = sqlx::query_scalar(
            "SELECT user_id FROM portcullis_identities WHERE issuer = ? AND subject = ?",
        )
        .bind(&identity.issuer)
        .bind(&identity.subject)
        .fetch_optional(&mut *tx)
        .await
        .map_err(store_error)?;
        match owner {
            Some(owner) if owner == user.0 => Ok(false),
            Some(_) => Err(StoreError::Conflict("identity")),
            None => {
                sqlx::query(
                    "INSERT INTO portcullis_identities (issuer, subject, user_id, linked_at) \
                     VALUES (?, ?, ?, ?)",
                )
                .bind(&identity.issuer)
                .bind(&identity.subject)
                .bind(user.0)
                .bind(to_micros(identity.linked_at))
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
                tx.commit().await.map_err(store_error)?;
                Ok(true)
            }
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
             (SELECT user_id FROM portcullis_identities WHERE issuer = ? AND subject = ?)"
        );
        find_user(&self.pool, sqlx::query(query).bind(issuer).bind(subject)).await
    }

    async fn identities_of(&self, user: UserId) -> Result<Vec<ExternalIdentity>, StoreError> {
        let rows = sqlx::query(
            "SELECT issuer, subject, linked_at FROM portcullis_identities WHERE user_id = ? \
             ORDER BY linked_at, issuer, subject",
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
                    from_micros(row.try_get("linked_at").map_err(corrupt)?),
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
            "DELETE FROM portcullis_identities WHERE user_id = ? AND issuer = ? AND subject = ?",
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
