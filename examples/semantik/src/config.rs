//! Configuration from the environment, with Semantik's secret handling: in
//! development the JWT secret and internal key are generated once into `DATA_DIR` (mode 0600);
//! with `ENVIRONMENT=production` they must be given.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use portcullis::server_secret::{self, Environment, ServerSecretError};
use portcullis::token::jwt::KeyError;

/// The service configuration.
#[derive(Clone)]
pub struct Config {
    pub bind: String,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub redis_url: Option<String>,
    /// Namespaces every Redis key and channel, for deployments sharing one Redis.
    pub redis_prefix: String,
    pub jwt_secret: String,
    pub internal_api_key: String,
    pub access_token_ttl: Duration,
    pub cors_origins: Vec<String>,
    pub trusted_proxies: Vec<String>,
    /// The header the trusted proxies write the client's address into.
    pub forwarded_header: portcullis::ratelimit::ForwardedHeader,
    /// Failed authentications (401s) an address may cause per minute.
    pub auth_failures_per_minute: u32,
    pub when_redis_down: portcullis::ratelimit::WhenRedisDown,
    /// How recent a sign-in must be to create an API key.
    pub key_creation_max_auth_age: Duration,
    /// Upstream's API-key limits per user: creations per hour, updates and reads per minute.
    pub api_key_limits: ApiKeyLimits,
    /// How often an open WebSocket checks that the token that opened it is still good.
    pub ws_recheck: Duration,
    /// Whether the first account registered over `/api/auth/register` becomes superuser
    /// (Semantik's documented rule; turn it off once an operator has run `create-user`).
    pub first_user_is_superuser: bool,
    /// A build of Semantik's web app (`apps/webui-react`) to serve beside the API, if any.
    pub webui_dir: Option<PathBuf>,
    pub production: bool,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field("data_dir", &self.data_dir)
            .field("database_url", &"<hidden>")
            .field("redis_url", &self.redis_url.is_some())
            .field("access_token_ttl", &self.access_token_ttl)
            .field("cors_origins", &self.cors_origins)
            .field("production", &self.production)
            .finish_non_exhaustive()
    }
}

/// Upstream's rate limits on the API-key routes, per user (`API_KEY_CREATE_RATE_LIMIT`,
/// `API_KEY_UPDATE_RATE_LIMIT`, `API_KEY_LIST_RATE_LIMIT`, as Semantik reads them).
#[derive(Clone, Copy, Debug)]
pub struct ApiKeyLimits {
    pub creates_per_hour: u32,
    pub updates_per_minute: u32,
    pub reads_per_minute: u32,
}

/// Why the service cannot start.
#[derive(Debug)]
pub enum ConfigError {
    Secret(ServerSecretError),
    DataDir(PathBuf, String),
    Invalid(&'static str, String),
    Database(String),
    Key(KeyError),
    InternalKeyTooShort,
    Bind(String, String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Secret(error) => error.fmt(f),
            Self::DataDir(path, why) => write!(f, "data directory {}: {why}", path.display()),
            Self::Invalid(name, why) => write!(f, "invalid {name}: {why}"),
            Self::Database(why) => write!(f, "cannot open the database: {why}"),
            Self::Key(error) => write!(f, "invalid JWT key: {error}"),
            Self::InternalKeyTooShort => {
                f.write_str("INTERNAL_API_KEY must be at least 32 bytes long")
            }
            Self::Bind(address, why) => write!(f, "cannot listen on {address}: {why}"),
        }
    }
}

impl std::error::Error for ConfigError {}

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
        let data_dir = PathBuf::from(var("DATA_DIR").unwrap_or_else(|| "./data/semantik".into()));
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
                format!("sqlite://{}", data_dir.join("semantik.db").display())
            }
        };
        let jwt_secret = server_secret::resolve(
            "JWT_SECRET",
            var("JWT_SECRET").or_else(|| var("JWT_SECRET_KEY")),
            32,
            environment,
            &data_dir.join(".jwt_secret"),
        )
        .map_err(ConfigError::Secret)?;
        let internal_api_key = server_secret::resolve(
            "INTERNAL_API_KEY",
            var("INTERNAL_API_KEY"),
            portcullis::source::MIN_INTERNAL_KEY_LEN,
            environment,
            &data_dir.join(".internal_api_key"),
        )
        .map_err(ConfigError::Secret)?;
        let number = |name: &'static str, default: u64, max: u64| match var(name) {
            None => Ok(default),
            Some(text) => text
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| ConfigError::Invalid(name, format!("{text:?} is not 1..={max}"))),
        };
        let limit = |name, default| {
            number(name, default, 1_000_000).map(|n| u32::try_from(n).unwrap_or(u32::MAX))
        };
        let minutes = number("ACCESS_TOKEN_EXPIRE_MINUTES", 24 * 60, 366 * 24 * 60)?;
        let cors_origins = var("CORS_ORIGINS")
            .unwrap_or_else(|| "http://localhost:5173".into())
            .split(',')
            .map(|origin| origin.trim().to_owned())
            .filter(|origin| !origin.is_empty())
            .collect();
        Ok(Self {
            bind: var("BIND").unwrap_or_else(|| "127.0.0.1:8000".into()),
            data_dir,
            database_url,
            redis_url: var("REDIS_URL"),
            redis_prefix: var("REDIS_PREFIX").unwrap_or_else(|| "{semantik}:".to_owned()),
            jwt_secret,
            internal_api_key,
            access_token_ttl: Duration::from_secs(minutes * 60),
            cors_origins,
            trusted_proxies: var("TRUSTED_PROXIES")
                .map(|list| {
                    list.split(',')
                        .map(|proxy| proxy.trim().to_owned())
                        .filter(|proxy| !proxy.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            forwarded_header: super::limits::forwarded_header(var("FORWARDED_HEADER"))?,
            auth_failures_per_minute: u32::try_from(number(
                "AUTH_FAILURES_PER_MINUTE",
                super::limits::AUTH_FAILURES_PER_MINUTE.into(),
                u32::MAX.into(),
            )?)
            .unwrap_or(u32::MAX),
            when_redis_down: super::limits::when_redis_down(var("RATE_LIMIT_WHEN_REDIS_DOWN"))?,
            key_creation_max_auth_age: Duration::from_secs(
                60 * number("API_KEY_SIGN_IN_MAX_AGE_MINUTES", 15, 24 * 60)?,
            ),
            api_key_limits: ApiKeyLimits {
                creates_per_hour: limit("API_KEY_CREATE_RATE_LIMIT", 5)?,
                updates_per_minute: limit("API_KEY_UPDATE_RATE_LIMIT", 30)?,
                reads_per_minute: limit("API_KEY_LIST_RATE_LIMIT", 60)?,
            },
            ws_recheck: Duration::from_secs(number("WS_RECHECK_SECONDS", 5, 3600)?),
            first_user_is_superuser: match var("FIRST_USER_IS_SUPERUSER") {
                None => true,
                Some(text) => match text.trim().to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" => true,
                    "false" | "0" | "no" => false,
                    _ => {
                        return Err(ConfigError::Invalid(
                            "FIRST_USER_IS_SUPERUSER",
                            format!("{text:?} is not true or false"),
                        ));
                    }
                },
            },
            webui_dir: var("WEBUI_STATIC_DIR").map(PathBuf::from),
            production,
        })
    }
}
