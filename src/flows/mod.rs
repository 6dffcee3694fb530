//! Account flows built from the library's services, independent of any web framework: the
//! examples only wire them to routes.

mod login;
mod magic_link;
#[cfg(feature = "oidc")]
mod oidc;

pub use login::{
    ChangePasswordError, DEFAULT_MAX_USERNAME_LEN, PasswordLogin, RegisterError, Registration,
};
pub use magic_link::{Allowance, DEFAULT_MAGIC_LINK_LIFETIME, MagicLinkError, MagicLinks};
#[cfg(feature = "oidc")]
pub use oidc::{
    Authorization, Callback, Completed, EmailLinking, OIDC_SIGN_IN_LIFETIME, OidcConfig, OidcError,
    OidcSignIn,
};

/// `user`, whose address someone just proved they receive (a magic link, a provider's
/// verified email): an account that never verified the address is taken over by them — the
/// address becomes verified, the password goes and every credential ends — so that whoever
/// registered another's address in advance (account pre-hijacking) keeps nothing. `None` when
/// the account went away meanwhile.
async fn claimed_by_mailbox_owner(
    auth: &crate::Auth,
    user: crate::store::User,
) -> Result<Option<crate::store::User>, crate::store::StoreError> {
    if user.email_verified {
        return Ok(Some(user));
    }
    let update = crate::store::UserUpdate::default()
        .email_verified(true)
        .remove_password();
    let updated = auth
        .users()
        .update_user(user.id, update, auth.now())
        .await?;
    auth.end_credentials(
        user.id,
        crate::Credentials::Everything,
        crate::store::RevokeReason::PasswordChanged,
    )
    .await?;
    Ok(updated)
}
