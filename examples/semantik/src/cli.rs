//! `semantik create-user`: creates an account in the configured database (the same
//! `DATA_DIR` / `DATABASE_URL` as the server) and exits without serving, so an operator can
//! create the superuser before the port opens.

use std::fmt;

use portcullis::Secret;
use portcullis::store::{SUPERUSER_ROLE, User};

use super::{Config, auth_routes, build};

/// The usage line of the subcommand.
pub const USAGE: &str =
    "usage: semantik create-user --username U --email E --password P [--superuser]";

/// The arguments of `create-user`.
#[derive(Debug)]
pub struct CreateUser {
    username: String,
    email: String,
    password: Secret,
    superuser: bool,
}

/// Why `create-user` did not create the account.
#[derive(Debug)]
pub enum CreateUserError {
    Usage(String),
    Config(super::ConfigError),
    Refused(String),
}

impl fmt::Display for CreateUserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(why) => write!(f, "{why}\n{USAGE}"),
            Self::Config(error) => error.fmt(f),
            Self::Refused(why) => write!(f, "cannot create the user: {why}"),
        }
    }
}

impl CreateUser {
    /// Parses the arguments after `create-user`.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, CreateUserError> {
        let usage = |why: String| CreateUserError::Usage(why);
        let (mut username, mut email, mut password, mut superuser) = (None, None, None, false);
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            let slot = match flag.as_str() {
                "--superuser" => {
                    superuser = true;
                    continue;
                }
                "--username" => &mut username,
                "--email" => &mut email,
                "--password" => &mut password,
                other => return Err(usage(format!("unknown argument {other:?}"))),
            };
            let value = args
                .next()
                .ok_or_else(|| usage(format!("{flag} needs a value")))?;
            if slot.replace(value).is_some() {
                return Err(usage(format!("{flag} is given twice")));
            }
        }
        let required = |value: Option<String>, flag: &str| {
            value.ok_or_else(|| usage(format!("{flag} is required")))
        };
        Ok(Self {
            username: required(username, "--username")?,
            email: required(email, "--email")?,
            password: Secret::new(required(password, "--password")?),
            superuser,
        })
    }
}

/// Creates the account with the server's own rules (username, email and password policy);
/// `--superuser` grants the superuser role, and the first-registrant rule never applies.
pub async fn create_user(config: &Config, args: CreateUser) -> Result<User, CreateUserError> {
    let (_, state) = build(config).await.map_err(CreateUserError::Config)?;
    let refused = |error: super::api::ApiError| CreateUserError::Refused(error.detail().to_owned());
    let mut registration =
        auth_routes::registration(&args.username, &args.email, args.password.expose(), None)
            .map_err(refused)?;
    if args.superuser {
        registration = registration.roles([SUPERUSER_ROLE]);
    }
    auth_routes::register_user(&state, registration)
        .await
        .map_err(refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<CreateUser, CreateUserError> {
        CreateUser::parse(args.iter().map(|arg| (*arg).to_owned()))
    }

    #[test]
    fn every_flag_is_read_and_the_password_never_shows() {
        let args = parse(&[
            "--username",
            "root",
            "--email",
            "r@x.io",
            "--password",
            "pw",
            "--superuser",
        ]);
        let args = args.unwrap();
        assert!(args.superuser);
        assert_eq!(args.password.expose(), "pw");
        assert!(!format!("{args:?}").contains("pw\""));
    }

    #[test]
    fn missing_repeated_and_unknown_flags_are_usage_errors() {
        for args in [
            &["--username", "root", "--email", "r@x.io"][..],
            &[
                "--username",
                "a",
                "--username",
                "b",
                "--email",
                "e",
                "--password",
                "p",
            ],
            &["--username", "root", "--email", "r@x.io", "--password"],
            &["--admin"],
        ] {
            assert!(
                matches!(parse(args), Err(CreateUserError::Usage(_))),
                "{args:?}"
            );
        }
    }
}
