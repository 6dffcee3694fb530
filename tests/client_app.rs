//! `ClientApplication` and `SingleUser` through the public API, over a real SQLite file: the
//! answers a client application gets for each half of its credentials, and a single-user
//! server ignoring credentials altogether.

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode, header};
use portcullis::source::{ClientApplication, MemoryClients, RegisteredClient, SingleUser};
use portcullis::store::{NewUser, SqliteStore};
use portcullis::token::TokenFormat;
use portcullis::{Auth, AuthLayer, AuthMethod, Identity};
use tower::ServiceExt;

async fn sqlite_auth() -> (Auth, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("auth.db").display());
    let store = SqliteStore::connect(&url).await.unwrap();
    (Auth::builder(store).build(), dir)
}

/// Answers with how the caller authenticated: `client:user`.
async fn whoami(identity: Identity) -> String {
    match identity.method() {
        AuthMethod::ClientApp { client } => format!("{client}:{}", identity.name()),
        AuthMethod::SingleUser => format!("single:{}", identity.name()),
        other => format!("{other:?}"),
    }
}

async fn call(app: &Router, uri: &str, secret: Option<&str>) -> (StatusCode, String) {
    let mut request = Request::get(uri);
    if let Some(secret) = secret {
        request = request.header(header::AUTHORIZATION, format!("Bearer {secret}"));
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn a_client_application_is_401_for_a_bad_secret_and_400_for_a_missing_number() {
    let (auth, _dir) = sqlite_auth().await;
    let ada = NewUser::new("ada")
        .phone("+15551234567")
        .phone_verified(true);
    auth.users().create_user(ada, auth.now()).await.unwrap();
    let unverified = NewUser::new("eve").phone("+15550000000");
    auth.users()
        .create_user(unverified, auth.now())
        .await
        .unwrap();
    let clients = MemoryClients::new();
    let (whatsapp, secret) =
        RegisteredClient::generate("whatsapp", &TokenFormat::new("kcs_").unwrap()).unwrap();
    let id = whatsapp.client_id.clone();
    clients.register(whatsapp);
    let secret = secret.secret().expose().to_owned();
    let app = Router::new().route("/me", get(whoami)).layer(
        AuthLayer::builder()
            .source(ClientApplication::new(&auth, clients).create_users(true))
            .build(),
    );
    let me = |query: &str| format!("/me?client_id={id}{query}");

    let (status, body) = call(&app, &me("&phone_number=15551234567"), Some(&secret)).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "whatsapp:ada"));
    let (status, _) = call(&app, &me("&phone_number=15551234567"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(&app, &me("&phone_number=15551234567"), Some("kcs_guess")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let long_id = format!("/me?client_id={}&phone_number=1555", "x".repeat(4096));
    assert_eq!(
        call(&app, &long_id, Some(&secret)).await.0,
        StatusCode::UNAUTHORIZED
    );
    let nul_id = "/me?client_id=a%00b&phone_number=15551234567";
    assert_eq!(
        call(&app, nul_id, Some(&secret)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&app, &me(""), Some(&secret)).await.0,
        StatusCode::BAD_REQUEST
    );
    let repeated = me("&client_id=other&phone_number=15551234567");
    assert_eq!(
        call(&app, &repeated, Some(&secret)).await.0,
        StatusCode::BAD_REQUEST
    );
    // An unverified number is not the client's to use, nor to take over by creation.
    let (status, _) = call(&app, &me("&phone_number=15550000000"), Some(&secret)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let take_over = me("&phone_number=15550000000&create_if_not_exists=true");
    assert_eq!(
        call(&app, &take_over, Some(&secret)).await.0,
        StatusCode::UNAUTHORIZED
    );
    // A new number with creation asked for: a new account with that verified number.
    let (status, body) = call(
        &app,
        &me("&phone_number=4930123456&create_if_not_exists=true"),
        Some(&secret),
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "whatsapp:+4930123456")
    );
    let created = auth
        .users()
        .user_by_verified_phone("+4930123456")
        .await
        .unwrap();
    assert!(created.is_some());
    // Without a client_id the source stands aside: no credential at all.
    assert_eq!(
        call(&app, "/me?phone_number=1555", None).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_single_user_server_answers_every_request_as_its_user() {
    let (auth, _dir) = sqlite_auth().await;
    let user = auth
        .users()
        .create_user(NewUser::new("default"), auth.now())
        .await
        .unwrap();
    let source = SingleUser::new(user);
    assert!(!source.identity().is_signed_in());
    let app = Router::new()
        .route("/me", get(whoami))
        .layer(AuthLayer::builder().source(source).build());
    for secret in [None, Some("kk-anything"), Some("not a token")] {
        let (status, body) = call(&app, "/me", secret).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "single:default"));
    }
}
