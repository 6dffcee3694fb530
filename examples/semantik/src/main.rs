//! The Semantik authentication API, rebuilt on portcullis.
//!
//! ```sh
//! cargo run -p semantik                 # SQLite in ./data/semantik, dev JWT secret generated
//! ENVIRONMENT=production JWT_SECRET=$(openssl rand -hex 32) \
//!   INTERNAL_API_KEY=$(openssl rand -hex 32) cargo run -p semantik
//! # Create the superuser before the port opens, on the same DATA_DIR / DATABASE_URL:
//! cargo run -p semantik -- create-user --username root --email root@example.com \
//!   --password '<a long password>' --superuser
//! ```
//!
//! Configuration (environment): `BIND`, `DATA_DIR`, `DATABASE_URL`, `JWT_SECRET`,
//! `ACCESS_TOKEN_EXPIRE_MINUTES`, `INTERNAL_API_KEY`, `CORS_ORIGINS`, `ENVIRONMENT`,
//! `FIRST_USER_IS_SUPERUSER`, `API_KEY_SIGN_IN_MAX_AGE_MINUTES`, `WS_RECHECK_SECONDS`,
//! `API_KEY_CREATE_RATE_LIMIT` (per hour), `API_KEY_UPDATE_RATE_LIMIT` and
//! `API_KEY_LIST_RATE_LIMIT` (per minute), `WEBUI_STATIC_DIR` (a build of Semantik's web app,
//! built yourself, to serve on `/`), `RUST_LOG`. See `src/config.rs`.

use semantik as app;

use std::process::ExitCode;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

#[tokio::main]
async fn main() -> ExitCode {
    // `RUST_LOG` as `level` or `target=level,...` (tracing-subscriber's `Targets`: the common
    // forms, without the regular-expression engine a full `EnvFilter` would build in).
    let rust_log = std::env::var("RUST_LOG").ok();
    let (filter, invalid) = match rust_log.as_deref().map(str::parse::<Targets>) {
        Some(Ok(filter)) => (filter, None),
        parsed => (
            Targets::new().with_default(tracing::Level::INFO),
            parsed.and_then(Result::err),
        ),
    };
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer())
        .with(filter)
        .init();
    if let Some(error) = invalid {
        tracing::warn!(%error, "RUST_LOG is not `level` or `target=level,...`; logging at info");
    }
    let mut args = std::env::args().skip(1);
    let command = args.next();
    let create_user = match command.as_deref() {
        None => None,
        Some("create-user") => match app::CreateUser::parse(args) {
            Ok(create_user) => Some(create_user),
            Err(error) => return fail(error),
        },
        Some(other) => {
            eprintln!("semantik: unknown command {other:?}\n{}", app::USAGE);
            return ExitCode::FAILURE;
        }
    };
    let config = match app::Config::from_env(|name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(error) => return fail(error),
    };
    let Some(create_user) = create_user else {
        return match app::run(config).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => fail(error),
        };
    };
    match app::create_user(&config, create_user).await {
        Ok(user) => {
            let role = if user.is_superuser() {
                "superuser"
            } else {
                "user"
            };
            println!("created {role} {} (id {})", user.username, user.id);
            ExitCode::SUCCESS
        }
        Err(error) => fail(error),
    }
}

fn fail(error: impl std::fmt::Display) -> ExitCode {
    eprintln!("semantik: {error}");
    ExitCode::FAILURE
}
