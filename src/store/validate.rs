//! Input checks every store applies, so that all stores accept and refuse the same values.
//!
//! The only rule today: no text may contain U+0000. PostgreSQL cannot store it, and a
//! username or key name with a NUL in it is an attack, never a real name. Third-party stores
//! should call these before writing.

use super::{NewSecret, NewToken, NewUser, SecretSubject, StoreError, UserUpdate};

/// Whether every store can keep `value`. A lookup by a value no store can keep finds nothing:
/// stores answer it with `None` rather than an error (PostgreSQL would refuse the query).
pub fn storable(value: &str) -> bool {
    !value.contains('\0')
}

fn text(field: &'static str, value: &str) -> Result<(), StoreError> {
    if !storable(value) {
        Err(StoreError::InvalidInput(field))
    } else {
        Ok(())
    }
}

fn texts<'a>(
    field: &'static str,
    values: impl IntoIterator<Item = &'a String>,
) -> Result<(), StoreError> {
    values.into_iter().try_for_each(|value| text(field, value))
}

/// Checks a user to create.
pub fn new_user(user: &NewUser) -> Result<(), StoreError> {
    text("username", &user.username)?;
    texts("email", &user.email)?;
    texts("full_name", &user.full_name)?;
    texts("password_hash", &user.password_hash)?;
    texts("roles", user.roles.iter().chain(&user.first_user_roles))
}

/// Checks a user update.
pub fn user_update(update: &UserUpdate) -> Result<(), StoreError> {
    texts("email", update.email.iter().flatten())?;
    texts("full_name", update.full_name.iter().flatten())?;
    texts("password_hash", update.password_hash.iter().flatten())?;
    texts("roles", update.roles.iter().flatten())
}

/// Checks a token to store.
pub fn new_token(token: &NewToken) -> Result<(), StoreError> {
    texts("name", &token.name)?;
    text("hint", &token.hint)?;
    text("family", token.family.as_ref().map_or("", |f| f.as_str()))?;
    texts("scopes", token.scopes.iter().flatten())
}

/// Checks a one-time secret: its subject (see [`subject`]) and its payload (at most
/// [`MAX_SECRET_PAYLOAD`](super::MAX_SECRET_PAYLOAD) bytes).
pub fn new_secret(secret: &NewSecret) -> Result<(), StoreError> {
    subject(&secret.subject)?;
    match &secret.payload {
        Some(payload) if payload.len() > super::MAX_SECRET_PAYLOAD => {
            Err(StoreError::InvalidInput("payload"))
        }
        payload => texts("payload", payload),
    }
}

/// Checks a one-time secret's subject: an email address of at most 320 bytes (RFC 5321's
/// 64-byte local part and 255-byte domain) without NUL.
pub fn subject(subject: &SecretSubject) -> Result<(), StoreError> {
    match subject {
        SecretSubject::Email(address) if address.len() > 320 => {
            Err(StoreError::InvalidInput("subject"))
        }
        SecretSubject::Email(address) => text("subject", address),
        _ => Ok(()),
    }
}

/// The key a subject's secrets are looked up by ([`SecretSubject::key`]), or `None` when there
/// is nothing to find: [`SecretSubject::Nobody`], or a subject [`subject`] refuses.
pub fn subject_key(secret_subject: &SecretSubject) -> Option<String> {
    subject(secret_subject).ok()?;
    secret_subject.key()
}

/// Checks a counter key: 1 to 256 bytes, no NUL.
pub fn counter_key(key: &str) -> Result<(), StoreError> {
    if key.is_empty() || key.len() > 256 {
        return Err(StoreError::InvalidInput("counter key"));
    }
    text("counter key", key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_bytes_are_refused_in_every_text_field() {
        assert!(new_user(&NewUser::new("ada")).is_ok());
        assert!(matches!(
            new_user(&NewUser::new("a\0da")),
            Err(StoreError::InvalidInput("username"))
        ));
        assert!(matches!(
            new_user(&NewUser::new("ada").roles(["x\0"])),
            Err(StoreError::InvalidInput("roles"))
        ));
        assert!(matches!(
            user_update(&UserUpdate::default().full_name(Some("\0".into()))),
            Err(StoreError::InvalidInput("full_name"))
        ));
    }
}
