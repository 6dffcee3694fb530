//! The Semantik example as a process: start-up line, secret handling, refusal to start in
//! production without secrets.

#[path = "../../../tests/common/mod.rs"]
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::example::{self, start};

fn command(data_dir: &Path) -> Command {
    example::command(env!("CARGO_BIN_EXE_semantik"), data_dir)
}

fn refused(mut command: Command) -> String {
    let started = Instant::now();
    let output = command.output().unwrap();
    assert!(!output.status.success(), "must refuse to start");
    assert!(started.elapsed() < Duration::from_secs(10));
    String::from_utf8(output.stderr).unwrap()
}

async fn login_token(base: &str) -> String {
    let client = reqwest::Client::new();
    let body = serde_json::json!({"username": "ada", "email": "ada@example.com", "password": "correct horse"});
    client
        .post(format!("{base}/api/auth/register"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let reply: serde_json::Value = client
        .post(format!("{base}/api/auth/login"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    reply["access_token"].as_str().unwrap().to_owned()
}

async fn me_status(base: &str, token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{base}/api/auth/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn development_start_generates_private_secrets_that_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = start(command(&data));
    let token = login_token(&first.base).await;
    assert_eq!(me_status(&first.base, &token).await, 200);
    drop(first);

    for file in [".jwt_secret", ".internal_api_key"] {
        let metadata = std::fs::metadata(data.join(file)).unwrap();
        assert_eq!(metadata.permissions().mode() & 0o777, 0o600, "{file}");
        assert_eq!(std::fs::read_to_string(data.join(file)).unwrap().len(), 64);
    }
    assert_eq!(
        std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
        0o700
    );

    // Same secret and same database after a restart: the earlier token still works.
    let second = start(command(&data));
    assert_eq!(me_status(&second.base, &token).await, 200);
}

#[tokio::test]
async fn production_without_a_jwt_secret_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(dir.path());
    cmd.env("ENVIRONMENT", "production")
        .env("INTERNAL_API_KEY", "k".repeat(32));
    let stderr = refused(cmd);
    assert!(
        stderr.contains("JWT_SECRET must be set in production"),
        "{stderr}"
    );
    assert!(
        !dir.path().join(".jwt_secret").exists(),
        "no secret is generated in production"
    );
}

#[tokio::test]
async fn production_without_an_internal_key_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(dir.path());
    cmd.env("ENVIRONMENT", "production")
        .env("JWT_SECRET", "s".repeat(32));
    let stderr = refused(cmd);
    assert!(stderr.contains("INTERNAL_API_KEY must be set"), "{stderr}");
}

#[tokio::test]
async fn production_with_secrets_starts_and_a_short_secret_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(dir.path());
    cmd.env("ENVIRONMENT", "production")
        .env("JWT_SECRET", "s".repeat(32))
        .env("INTERNAL_API_KEY", "k".repeat(32));
    let running = start(cmd);
    assert_eq!(me_status(&running.base, "nothing").await, 401);

    let mut weak = command(dir.path());
    weak.env("JWT_SECRET", "too-short");
    let stderr = refused(weak);
    assert!(
        stderr.contains("JWT_SECRET must be at least 32 bytes"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_secret_file_readable_by_others_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join(".jwt_secret");
    std::fs::write(&secret, "x".repeat(64)).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let stderr = refused(command(dir.path()));
    assert!(stderr.contains("readable by other users"), "{stderr}");
}

#[tokio::test]
async fn invalid_settings_are_reported_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let mut minutes = command(dir.path());
    minutes.env("ACCESS_TOKEN_EXPIRE_MINUTES", "soon");
    assert!(refused(minutes).contains("ACCESS_TOKEN_EXPIRE_MINUTES"));
    let mut bind = command(dir.path());
    bind.env("BIND", "not-an-address");
    assert!(refused(bind).contains("cannot listen on not-an-address"));
    let mut database = command(dir.path());
    database.env("DATABASE_URL", "mysql://localhost/x");
    assert!(refused(database).contains("DATABASE_URL"));
}

/// Hardening item 18: on a fresh deployment whoever registers first owns the instance. The
/// server warns while it has no user, and `create-user` makes the superuser on the same data
/// directory without serving, before the port opens.
#[tokio::test]
async fn create_user_makes_the_superuser_before_the_port_opens() {
    let dir = tempfile::tempdir().unwrap();
    let empty = start(command(dir.path()));
    let warning = empty
        .wait_for_output("no user exists yet", Duration::from_secs(10))
        .expect("a warning while no user exists");
    assert!(warning.contains("create-user"), "{warning}");
    drop(empty);

    let started = Instant::now();
    let mut create = command(dir.path());
    create.args([
        "create-user",
        "--username",
        "root",
        "--email",
        "root@example.com",
    ]);
    create.args(["--password", "correct horse battery", "--superuser"]);
    let output = create.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("created superuser root"), "{stdout}");
    assert!(
        !stdout.contains("listening on"),
        "create-user must not serve: {stdout}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));

    // The same rules as /register: a taken name or a weak password is refused clearly.
    let mut again = command(dir.path());
    again.args([
        "create-user",
        "--username",
        "root",
        "--email",
        "r2@example.com",
    ]);
    again.args(["--password", "correct horse battery"]);
    assert!(refused(again).contains("Username already exists"));
    let mut weak = command(dir.path());
    weak.args([
        "create-user",
        "--username",
        "eve",
        "--email",
        "eve@example.com",
        "--password",
        "short",
    ]);
    assert!(refused(weak).contains("cannot create the user"));
    let mut usage = command(dir.path());
    usage.args(["create-user", "--username", "x"]);
    assert!(refused(usage).contains("usage: semantik create-user"));

    // Served afterwards: root signs in, and the first registrant is no superuser.
    let running = start(command(dir.path()));
    let client = reqwest::Client::new();
    let login = client
        .post(format!("{}/api/auth/login", running.base))
        .json(&serde_json::json!({"username": "root", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let mallory: serde_json::Value = client
        .post(format!("{}/api/auth/register", running.base))
        .json(&serde_json::json!({"username": "mallory", "email": "m@example.com", "password": "correct horse"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = std::fs::read_to_string(dir.path().join(".internal_api_key")).unwrap();
    let shown: serde_json::Value = client
        .get(format!(
            "{}/api/internal/users/{}",
            running.base, mallory["id"]
        ))
        .header("x-internal-api-key", key.trim())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["is_superuser"], false, "{shown}");
}
