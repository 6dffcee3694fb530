//! The Khoj authentication API, rebuilt on portcullis.
//!
//! ```sh
//! cargo run -p khoj                      # SQLite in ./data/khoj; sign-in links are logged
//! SMTP_URL=smtp://127.0.0.1:2525 KHOJ_DOMAIN=khoj.example.com cargo run -p khoj
//! KHOJ_ANONYMOUS_MODE=true cargo run -p khoj    # one user, no sign-in
//! # Register a client application (prints its client_id and secret once):
//! cargo run -p khoj -- create-client --name whatsapp
//! ```
//!
//! Configuration (environment): `BIND` (default `127.0.0.1:42110`, Khoj's port), `DATA_DIR`,
//! `DATABASE_URL`, `REDIS_URL`, `REDIS_PREFIX`, `SMTP_URL` (`smtp://` or `smtps://`),
//! `SMTP_FROM`, `GOOGLE_CLIENT_ID`, `GOOGLE_CLIENT_SECRET` (or `OIDC_ISSUER`, `OIDC_CLIENT_ID`,
//! `OIDC_CLIENT_SECRET` for another provider), `KHOJ_DOMAIN`, `KHOJ_NO_HTTPS`, `KHOJ_ANONYMOUS_MODE`,
//! `KHOJ_AUTO_CREATE_USERS`, `KHOJ_DJANGO_SECRET_KEY`, `KHOJ_CORS_ORIGINS`,
//! `KHOJ_MAGIC_LINK_REQUESTS_PER_DAY`, `KHOJ_MAGIC_LINK_VERIFICATIONS_PER_DAY`,
//! `KHOJ_AUTH_REQUESTS_PER_HOUR`, `KHOJ_MAGIC_LINK_LIFETIME_SECONDS`, `TRUSTED_PROXIES`, `ENVIRONMENT`, `RUST_LOG`. See
//! `src/config.rs`.

use khoj as app;

use std::process::ExitCode;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

#[tokio::main]
async fn main() -> ExitCode {
    // `RUST_LOG` as `level` or `target=level,...` (tracing-subscriber's `Targets`).
    let rust_log = std::env::var("RUST_LOG").ok();
    let (filter, invalid) = match rust_log.as_deref().map(str::parse::<Targets>) {
        Some(Ok(filter)) => (filter, None),
        parsed => (
            Targets::new().with_default(tracing::Level::INFO),
            parsed.and_then(Result::err),
        ),
    };
    tracing_subscriber::registry()
        // Colours for a terminal only: a log file or a pipe gets plain text.
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout())),
        )
        .with(filter)
        .init();
    if let Some(error) = invalid {
        tracing::warn!(%error, "RUST_LOG is not `level` or `target=level,...`; logging at info");
    }
    let mut args = std::env::args().skip(1);
    let create_client = match args.next().as_deref() {
        None => None,
        Some("create-client") => match app::CreateClient::parse(args) {
            Ok(command) => Some(command),
            Err(error) => return fail(error),
        },
        Some(other) => {
            eprintln!("khoj: unknown command {other:?}\n{}", app::USAGE);
            return ExitCode::FAILURE;
        }
    };
    let config = match app::Config::from_env(|name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(error) => return fail(error),
    };
    let Some(command) = create_client else {
        return match app::run(config).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => fail(error),
        };
    };
    match app::create_client(&config, command).await {
        Ok((client, secret)) => {
            println!("registered client application {}", client.name);
            println!("client_id: {}", client.client_id);
            println!("secret: {}", secret.secret().expose());
            println!("(the secret is not stored and cannot be shown again)");
            ExitCode::SUCCESS
        }
        Err(error) => fail(error),
    }
}

fn fail(error: impl std::fmt::Display) -> ExitCode {
    eprintln!("khoj: {error}");
    ExitCode::FAILURE
}
