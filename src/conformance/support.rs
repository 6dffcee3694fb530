//! What the conformance tests share: fixed instants, digests, and records to store.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::store::{
    Guess, NewSecret, NewToken, NewUser, SecretKind, SecretStore, SecretSubject, StoreError,
    TokenKind, User, UserId, UserStore,
};
use crate::token::{CodeKey, TokenDigest};

/// `seconds` after a fixed instant in 2027, so that every store sees the same times.
pub(crate) fn at(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000 + seconds).unwrap()
}

/// A kind other than `kind`, for checks that kinds are kept apart.
pub(crate) fn other(kind: TokenKind) -> TokenKind {
    if kind == TokenKind::ApiKey {
        TokenKind::Refresh
    } else {
        TokenKind::ApiKey
    }
}

pub(crate) fn digest(n: u32) -> TokenDigest {
    TokenDigest::of(&format!("token-{n}"))
}

pub(crate) fn token(kind: TokenKind, user: UserId, n: u32) -> NewToken {
    NewToken::new(kind, digest(n), user, format!("pc_…{n:04}"), at(0))
        .name(format!("token {n}"))
        .expires_at(at(3600))
}

pub(crate) async fn user(store: &dyn UserStore, name: &str) -> User {
    store
        .create_user(
            NewUser::new(name).email(format!("{name}@example.com")),
            at(0),
        )
        .await
        .unwrap()
}

pub(crate) const FIVE_MINUTES: Duration = Duration::from_secs(300);

pub(crate) fn key() -> CodeKey {
    CodeKey::new(b"a conformance-test code key, 32+ bytes").unwrap()
}

pub(crate) fn ada() -> SecretSubject {
    SecretSubject::email("ada@example.com")
}

/// A six-digit code for `subject`, limited to `attempts` wrong guesses, issued at `at(0)`.
pub(crate) fn code(subject: &SecretSubject, code: &str, attempts: u32) -> NewSecret {
    let digest = key().digest(SecretKind::MAGIC_LINK, subject, code);
    NewSecret::new(SecretKind::MAGIC_LINK, digest, at(0), FIVE_MINUTES)
        .subject(subject.clone())
        .attempts(attempts)
}

pub(crate) fn digest_of(subject: &SecretSubject, code: &str) -> TokenDigest {
    key().digest(SecretKind::MAGIC_LINK, subject, code)
}

/// `subject` presents `code` for its magic-link secret at `now`.
pub(crate) async fn guess_code(
    store: &Arc<dyn SecretStore>,
    subject: &SecretSubject,
    code: &str,
    now: OffsetDateTime,
) -> Result<Guess, StoreError> {
    let digest = digest_of(subject, code);
    store
        .guess_secret(SecretKind::MAGIC_LINK, subject, &digest, now)
        .await
}

/// Awaits every task, in order, and returns their outputs; a panicked task fails the test.
pub(crate) async fn join_all<T: Send + 'static>(
    tasks: impl IntoIterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<Result<T, tokio::task::JoinError>> {
    // Spawn them all before awaiting any, so that they race.
    let tasks: Vec<_> = tasks.into_iter().collect();
    let mut outputs = Vec::with_capacity(tasks.len());
    for task in tasks {
        outputs.push(task.await);
    }
    outputs
}
