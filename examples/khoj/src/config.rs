//! Configuration from the environment, with the names Khoj reads where it has them
//! (`KHOJ_DOMAIN`, `KHOJ_NO_HTTPS`, `KHOJ_ANONYMOUS_MODE`, `KHOJ_DJANGO_SECRET_KEY`) and the
//! examples' shared conventions for the rest (`BIND`, `DATA_DIR`, `DATABASE_URL`, `REDIS_URL`,
//! `SMTP_URL`, `ENVIRONMENT`).

use std::fmt;
use std::path::PathBuf;

use portcullis::mail::{InvalidBaseUrl, InvalidSmtpUrl, SmtpConfig};
use portcullis::server_secret::{self, Environment, ServerSecretError};

/// The service configuration.
#[derive(Clone)]
pub struct Config {
    pub bind: String,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub redis_url: Option<String>,
    /// Namespaces every Redis key and channel, for deployments sharing one Redis.
    pub redis_prefix: String,
    /// Where users reach the server: links in mail start with it, never with a request's
    /// `Host`. `None`: the listening address, once bound.
    pub public_url: Option<String>,
    /// `KHOJ_NO_HTTPS`: users reach the server over plain HTTP, whatever its host.
    pub no_https: bool,
    /// Keys the digests of sign-in codes (`KHOJ_DJANGO_SECRET_KEY`, as Khoj names its secret).
    pub secret_key: String,
    /// The relay for sign-in mail; `None` logs the mail instead (development only).
    pub smtp: Option<SmtpConfig>,
    /// Sign-in with Google (`GOOGLE_CLIENT_ID`, `GOOGLE_CLIENT_SECRET`, as Khoj reads them) or
    /// another OpenID Connect provider (`OIDC_ISSUER`, `OIDC_CLIENT_ID`, `OIDC_CLIENT_SECRET`).
    pub oidc: Option<OidcSettings>,
    /// Every request is the default user, and `/auth/*` is not served.
    pub anonymous_mode: bool,
    /// Whether a verified sign-in code for an unknown address creates its account.
    pub auto_create_users: bool,
    /// How long a sign-in code and its link work (`KHOJ_MAGIC_LINK_LIFETIME_SECONDS`, 300 as
    /// Khoj; at most 600, NIST SP 800-63B-4's limit for an out-of-band secret).
    pub magic_link_lifetime: std::time::Duration,
    pub limits: Limits,
    /// Browser origins allowed beside Khoj's clients (the configured domain's).
    pub cors_origins: Vec<String>,
    pub trusted_proxies: Vec<String>,
    pub production: bool,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field("data_dir", &self.data_dir)
            .field("public_url", &self.public_url)
            .field("smtp", &self.smtp.as_ref().map(|smtp| &smtp.host))
            .field("oidc", &self.oidc)
            .field("anonymous_mode", &self.anonymous_mode)
            .field("production", &self.production)
            .finish_non_exhaustive()
    }
}

/// The identity provider to offer ("Continue with Google").
#[derive(Clone)]
pub struct OidcSettings {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<portcullis::Secret>,
}

impl fmt::Debug for OidcSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcSettings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// The sign-in limits (each configurable; these defaults are Khoj's where it has them).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Sign-in links one address may request per day (`KHOJ_MAGIC_LINK_REQUESTS_PER_DAY`).
    pub link_requests_per_day: u32,
    /// Codes one address may try per day (`KHOJ_MAGIC_LINK_VERIFICATIONS_PER_DAY`).
    pub verifications_per_day: u32,
    /// Requests to `/auth/magic` one client address may make per hour
    /// (`KHOJ_AUTH_REQUESTS_PER_HOUR`).
    pub auth_requests_per_hour: u32,
}

/// Why the service cannot start.
#[derive(Debug)]
pub enum ConfigError {
    Secret(ServerSecretError),
    DataDir(PathBuf, String),
    Invalid(&'static str, String),
    Database(String),
    Bind(String, String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Secret(error) => error.fmt(f),
            Self::DataDir(path, why) => write!(f, "data directory {}: {why}", path.display()),
            Self::Invalid(name, why) => write!(f, "invalid {name}: {why}"),
            Self::Database(why) => write!(f, "cannot open the database: {why}"),
            Self::Bind(address, why) => write!(f, "cannot listen on {address}: {why}"),
        }
    }
}

impl std::error::Error for ConfigError {}

impl From<InvalidBaseUrl> for ConfigError {
    fn from(error: InvalidBaseUrl) -> Self {
        Self::Invalid("KHOJ_DOMAIN", error.to_string())
    }
}

impl From<InvalidSmtpUrl> for ConfigError {
    fn from(error: InvalidSmtpUrl) -> Self {
        Self::Invalid("SMTP_URL", error.to_string())
    }
}

fn flag(name: &'static str, value: Option<String>) -> Result<bool, ConfigError> {
    match value
        .as_deref()
        .map(|text| text.trim().to_ascii_lowercase())
    {
        None => Ok(false),
        Some(text) => match text.as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err(ConfigError::Invalid(
                name,
                format!("{text:?} is not true or false"),
            )),
        },
    }
}

fn list(value: Option<String>) -> Vec<String> {
    value
        .map(|list| {
            list.split(',')
                .map(|item| item.trim().to_owned())
                .filter(|item| !item.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

impl Config {
    /// Reads the configuration through `env` (the process environment, or a map in tests).
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |name: &str| env(name).filter(|value| !value.trim().is_empty());
        let production = var("ENVIRONMENT").is_some_and(|e| e.eq_ignore_ascii_case("production"));
        let environment = if production {
            Environment::Production
        } else {
            Environment::Development
        };
        let data_dir = PathBuf::from(var("DATA_DIR").unwrap_or_else(|| "./data/khoj".into()));
        let database_url = match var("DATABASE_URL") {
            Some(url)
                if ["sqlite:", "postgres:", "postgresql:"]
                    .iter()
                    .any(|scheme| url.starts_with(scheme)) =>
            {
                url
            }
            Some(_) => {
                return Err(ConfigError::Invalid(
                    "DATABASE_URL",
                    "use a sqlite:// or postgres:// URL".into(),
                ));
            }
            None => {
                server_secret::create_private_dir(&data_dir)
                    .map_err(|e| ConfigError::DataDir(data_dir.clone(), e.to_string()))?;
                format!("sqlite://{}", data_dir.join("khoj.db").display())
            }
        };
        let secret_key = server_secret::resolve(
            "KHOJ_DJANGO_SECRET_KEY",
            var("KHOJ_DJANGO_SECRET_KEY"),
            portcullis::token::MIN_CODE_KEY_LEN,
            environment,
            &data_dir.join(".secret_key"),
        )
        .map_err(ConfigError::Secret)?;
        // Khoj: `https://{KHOJ_DOMAIN}/`, or `http://` with `KHOJ_NO_HTTPS`.
        let no_https = flag("KHOJ_NO_HTTPS", var("KHOJ_NO_HTTPS"))?;
        let public_url = var("KHOJ_DOMAIN").map(|domain| {
            let domain = domain.trim().trim_end_matches('/');
            if domain.contains("://") {
                domain.to_owned()
            } else if no_https {
                format!("http://{domain}")
            } else {
                format!("https://{domain}")
            }
        });
        let from = var("SMTP_FROM").unwrap_or_else(|| "Khoj <noreply@localhost>".to_owned());
        let smtp = var("SMTP_URL")
            .map(|url| SmtpConfig::from_url(&url, from))
            .transpose()?;
        if production && smtp.is_none() {
            return Err(ConfigError::Invalid(
                "SMTP_URL",
                "required with ENVIRONMENT=production: without it sign-in codes are logged".into(),
            ));
        }
        let bounded = |name: &'static str, default: u32, max: u32| match var(name) {
            None => Ok(default),
            Some(text) => text
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| ConfigError::Invalid(name, format!("{text:?} is not 1..={max}"))),
        };
        let number = |name, default| bounded(name, default, 1_000_000);
        let oidc = match (
            var("OIDC_ISSUER"),
            var("OIDC_CLIENT_ID"),
            var("GOOGLE_CLIENT_ID"),
        ) {
            (Some(issuer), Some(client_id), _) => Some(OidcSettings {
                issuer,
                client_id,
                client_secret: var("OIDC_CLIENT_SECRET").map(portcullis::Secret::new),
            }),
            (Some(_), None, _) => {
                return Err(ConfigError::Invalid(
                    "OIDC_CLIENT_ID",
                    "required with OIDC_ISSUER".into(),
                ));
            }
            (None, _, Some(client_id)) => Some(OidcSettings {
                issuer: "https://accounts.google.com".to_owned(),
                client_id,
                client_secret: var("GOOGLE_CLIENT_SECRET").map(portcullis::Secret::new),
            }),
            (None, _, None) => None,
        };
        let auto_create_users = match var("KHOJ_AUTO_CREATE_USERS") {
            None => true,
            value => flag("KHOJ_AUTO_CREATE_USERS", value)?,
        };
        let mut cors_origins = list(var("KHOJ_CORS_ORIGINS"));
        if let Some(url) = &public_url {
            cors_origins.push(url.clone());
        }
        Ok(Self {
            bind: var("BIND").unwrap_or_else(|| "127.0.0.1:42110".into()),
            data_dir,
            database_url,
            redis_url: var("REDIS_URL"),
            redis_prefix: var("REDIS_PREFIX").unwrap_or_else(|| "{khoj}:".to_owned()),
            public_url,
            no_https,
            secret_key,
            smtp,
            oidc,
            anonymous_mode: flag("KHOJ_ANONYMOUS_MODE", var("KHOJ_ANONYMOUS_MODE"))?,
            auto_create_users,
            magic_link_lifetime: std::time::Duration::from_secs(
                bounded("KHOJ_MAGIC_LINK_LIFETIME_SECONDS", 300, 600)?.into(),
            ),
            limits: Limits {
                link_requests_per_day: number("KHOJ_MAGIC_LINK_REQUESTS_PER_DAY", 20)?,
                verifications_per_day: number("KHOJ_MAGIC_LINK_VERIFICATIONS_PER_DAY", 10)?,
                auth_requests_per_hour: number("KHOJ_AUTH_REQUESTS_PER_HOUR", 60)?,
            },
            cors_origins,
            trusted_proxies: list(var("TRUSTED_PROXIES")),
            production,
        })
    }
}
