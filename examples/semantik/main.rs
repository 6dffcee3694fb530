//! The Semantik authentication API, rebuilt on portcullis.
//!
//! ```sh
//! cargo run --example semantik                 # SQLite in ./data/semantik, dev JWT secret generated
//! ENVIRONMENT=production JWT_SECRET=$(openssl rand -hex 32) \
//!   INTERNAL_API_KEY=$(openssl rand -hex 32) cargo run --example semantik
//! ```
//!
//! Configuration (environment): `BIND`, `DATA_DIR`, `DATABASE_URL`, `JWT_SECRET`,
//! `ACCESS_TOKEN_EXPIRE_MINUTES`, `INTERNAL_API_KEY`, `CORS_ORIGINS`, `ENVIRONMENT`, `RUST_LOG`.
//! See `app/config.rs`.

mod app;

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let config = match app::Config::from_env(|name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("semantik: {error}");
            return ExitCode::FAILURE;
        }
    };
    match app::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("semantik: {error}");
            ExitCode::FAILURE
        }
    }
}
