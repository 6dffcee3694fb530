//! Account flows built from the library's services, independent of any web framework: the
//! examples only wire them to routes.

mod login;

pub use login::{
    ChangePasswordError, DEFAULT_MAX_USERNAME_LEN, PasswordLogin, RegisterError, Registration,
};
