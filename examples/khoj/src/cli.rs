//! `khoj create-client --name NAME`: registers a client application (a messaging bridge) in
//! the configured database (the server's `DATA_DIR` / `DATABASE_URL`) and prints its
//! `client_id` and secret once. Only the secret's digest is stored.

use std::fmt;

use portcullis::source::RegisteredClient;
use portcullis::token::GeneratedToken;

use super::{Config, ConfigError, client_secret_format, db};

/// The usage line of the subcommand.
pub const USAGE: &str = "usage: khoj create-client --name NAME";

/// The arguments of `create-client`.
#[derive(Debug)]
pub struct CreateClient {
    name: String,
}

/// Why `create-client` did not register the client.
#[derive(Debug)]
pub enum CreateClientError {
    Usage(String),
    Config(ConfigError),
    Refused(String),
}

impl fmt::Display for CreateClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(why) => write!(f, "{why}\n{USAGE}"),
            Self::Config(error) => error.fmt(f),
            Self::Refused(why) => write!(f, "cannot register the client: {why}"),
        }
    }
}

impl CreateClient {
    /// Parses the arguments after `create-client`.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, CreateClientError> {
        let mut args = args.into_iter();
        let mut name = None;
        while let Some(flag) = args.next() {
            match flag.as_str() {
                "--name" => {
                    let value = args
                        .next()
                        .ok_or_else(|| CreateClientError::Usage("--name needs a value".into()))?;
                    name = Some(value);
                }
                other => {
                    return Err(CreateClientError::Usage(format!(
                        "unknown argument {other:?}"
                    )));
                }
            }
        }
        let name = name
            .map(|name| name.trim().to_owned())
            .filter(|name| {
                !name.is_empty()
                    && name.chars().count() <= 100
                    && !name.chars().any(char::is_control)
            })
            .ok_or_else(|| {
                CreateClientError::Usage("--name must be 1 to 100 printable characters".into())
            })?;
        Ok(Self { name })
    }
}

/// Registers the client; returns it and its secret, to print once.
pub async fn create_client(
    config: &Config,
    command: CreateClient,
) -> Result<(RegisteredClient, GeneratedToken), CreateClientError> {
    let connected = db::connect(&config.database_url, None, &config.redis_prefix)
        .await
        .map_err(CreateClientError::Config)?;
    let (client, secret) = RegisteredClient::generate(command.name, &client_secret_format())
        .map_err(|error| CreateClientError::Refused(error.to_string()))?;
    connected
        .database
        .insert_client(&client)
        .await
        .map_err(|error| CreateClientError::Refused(error.to_string()))?;
    Ok((client, secret))
}
