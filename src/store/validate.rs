//! Input checks every store applies, so that all stores accept and refuse the same values.
//!
//! No text may contain U+0000: PostgreSQL cannot store it, and a username or key name with a
//! NUL in it is an attack, never a real name. Phone numbers are E.164, picture URLs `https`
//! or `http`, identities bounded. Third-party stores call these before writing.

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

/// Whether `phone` is an E.164 number: `+`, then 2 to 15 digits, the first not zero.
pub fn is_e164(phone: &str) -> bool {
    phone.strip_prefix('+').is_some_and(|digits| {
        (2..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
    })
}

fn phone(value: &str) -> Result<(), StoreError> {
    if is_e164(value) {
        Ok(())
    } else {
        Err(StoreError::InvalidInput("phone"))
    }
}

/// The longest picture URL a store keeps.
pub const MAX_PHOTO_URL_LEN: usize = 2048;

/// A picture URL: `https://` or `http://` (never `javascript:` or `data:`, which a page would
/// render), at most [`MAX_PHOTO_URL_LEN`] bytes, no control characters.
fn photo_url(value: &str) -> Result<(), StoreError> {
    let scheme = value
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
        || value
            .get(..7)
            .is_some_and(|s| s.eq_ignore_ascii_case("http://"));
    if scheme && value.len() <= MAX_PHOTO_URL_LEN && !value.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(StoreError::InvalidInput("photo_url"))
    }
}

/// Checks a user to create.
pub fn new_user(user: &NewUser) -> Result<(), StoreError> {
    text("username", &user.username)?;
    texts("email", &user.email)?;
    user.phone.as_deref().map_or(Ok(()), phone)?;
    texts("full_name", &user.full_name)?;
    user.photo_url.as_deref().map_or(Ok(()), photo_url)?;
    texts("password_hash", &user.password_hash)?;
    texts("roles", user.roles.iter().chain(&user.first_user_roles))
}

/// Checks a user update.
pub fn user_update(update: &UserUpdate) -> Result<(), StoreError> {
    texts("email", update.email.iter().flatten())?;
    update.phone.iter().flatten().try_for_each(|p| phone(p))?;
    texts("full_name", update.full_name.iter().flatten())?;
    update
        .photo_url
        .iter()
        .flatten()
        .try_for_each(|u| photo_url(u))?;
    texts("password_hash", update.password_hash.iter().flatten())?;
    texts("roles", update.roles.iter().flatten())
}

/// The longest issuer identifier a store keeps.
pub const MAX_ISSUER_LEN: usize = 1024;

/// The longest subject identifier a store keeps (OpenID Connect Core §2: at most 255 ASCII
/// characters).
pub const MAX_SUBJECT_LEN: usize = 255;

/// Checks an external identity: issuer of 1 to [`MAX_ISSUER_LEN`] bytes, subject of 1 to
/// [`MAX_SUBJECT_LEN`], neither with NUL.
pub fn identity(issuer: &str, subject: &str) -> Result<(), StoreError> {
    if issuer.is_empty() || issuer.len() > MAX_ISSUER_LEN || !storable(issuer) {
        return Err(StoreError::InvalidInput("issuer"));
    }
    if subject.is_empty() || subject.len() > MAX_SUBJECT_LEN || !storable(subject) {
        return Err(StoreError::InvalidInput("subject"));
    }
    Ok(())
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

    #[test]
    fn phones_are_e164_and_pictures_are_web_urls() {
        for good in ["+14155550123", "+442071838750", "+49"] {
            assert!(is_e164(good), "{good}");
        }
        for bad in [
            "",
            "+",
            "14155550123",
            "+0123",
            "+1 415 555",
            "+1234567890123456",
            "+١٢٣",
        ] {
            assert!(!is_e164(bad), "{bad}");
        }
        let photo = |url: &str| new_user(&NewUser::new("ada").photo_url(url));
        assert!(photo("https://lh3.googleusercontent.com/a/x=s96-c").is_ok());
        assert!(photo("HTTP://127.0.0.1/me.png").is_ok());
        for bad in [
            "javascript:alert(1)",
            "data:image/png;base64,AA",
            "//evil",
            "https://a\nb",
        ] {
            assert!(
                matches!(photo(bad), Err(StoreError::InvalidInput("photo_url"))),
                "{bad}"
            );
        }
        assert!(photo(&format!("https://{}", "a".repeat(MAX_PHOTO_URL_LEN))).is_err());
    }
}
