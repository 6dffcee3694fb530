//! Account flows built from the library's services, independent of any web framework: the
//! examples only wire them to routes.

mod login;
mod magic_link;

pub use login::{
    ChangePasswordError, DEFAULT_MAX_USERNAME_LEN, PasswordLogin, RegisterError, Registration,
};
pub use magic_link::{Allowance, DEFAULT_MAGIC_LINK_LIFETIME, MagicLinkError, MagicLinks};
