//! [`SecondFactor`]: a method a sign-in can be asked to prove after its first factor.

use async_trait::async_trait;

use crate::assurance::Factor;
use crate::store::{StoreError, User};

/// A second-factor method (an authenticator app's one-time passwords, recovery codes...),
/// registered with [`SignIn::second_factor`](super::SignIn::second_factor).
///
/// A user who is [`enrolled`](Self::enrolled) in any registered method must prove one of
/// them before a sign-in completes. The pipeline bounds the guesses: every answer spends the
/// challenge it answers, so one challenge is checked by [`verify`](Self::verify) at most
/// once, and a wrong answer hands back a successor with one attempt fewer.
#[async_trait]
pub trait SecondFactor: Send + Sync + 'static {
    /// The method's name in challenges and answers (`"totp"`, `"recovery_code"`): letters,
    /// digits and `_`, unique among the registered methods.
    fn method(&self) -> &'static str;

    /// The factor a correct answer proves.
    fn factor(&self) -> Factor;

    /// Whether `user` has set this method up.
    async fn enrolled(&self, user: &User) -> Result<bool, StoreError>;

    /// Whether `answer` proves the method for `user`. A method whose answers are single-use
    /// (a recovery code, a TOTP step) spends the answer here, atomically.
    async fn verify(&self, user: &User, answer: &Answer<'_>) -> Result<bool, StoreError>;
}

/// A method shared with the rest of the application (its enrolment endpoints, say) registers
/// as an `Arc`.
#[async_trait]
impl<T: SecondFactor + ?Sized> SecondFactor for std::sync::Arc<T> {
    fn method(&self) -> &'static str {
        (**self).method()
    }

    fn factor(&self) -> Factor {
        (**self).factor()
    }

    async fn enrolled(&self, user: &User) -> Result<bool, StoreError> {
        (**self).enrolled(user).await
    }

    async fn verify(&self, user: &User, answer: &Answer<'_>) -> Result<bool, StoreError> {
        (**self).verify(user, answer).await
    }
}

/// What the person answered to a second-factor challenge.
#[non_exhaustive]
pub struct Answer<'a> {
    /// The response as typed or sent (a code, a recovery code).
    pub response: &'a str,
}

impl<'a> Answer<'a> {
    pub(crate) fn new(response: &'a str) -> Self {
        Self { response }
    }
}

impl std::fmt::Debug for Answer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A second factor's answer is a secret until it is spent.
        f.debug_struct("Answer").finish_non_exhaustive()
    }
}
