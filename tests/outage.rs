//! The database goes away and comes back: requests that need it get 503 (never 401, never a
//! panic), and service resumes without a restart.

mod common;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use portcullis::source::Bearer;
use portcullis::store::{NewUser, PostgresStore};
use portcullis::token::TokenFormat;
use portcullis::{ApiKeys, Auth, AuthLayer, CurrentUser, NewApiKey};
use tower::ServiceExt;

async fn status(router: &Router, key: &str) -> (StatusCode, Option<String>, String) {
    let request = Request::get("/me")
        .header("authorization", format!("Bearer {key}"))
        .body(Body::empty())
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .unwrap();
    (
        status,
        retry_after,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_down_is_503_and_recovery_needs_no_restart() {
    let Some(server) = common::postgres_url() else {
        return;
    };
    let schema = common::PgSchema::create(&server).await;
    let proxy = common::Proxy::start(common::host_port(&server)).await;
    let store = PostgresStore::connect(&proxy.url(&schema.url))
        .await
        .unwrap();
    let auth = Auth::builder(store).build();
    let api_keys = ApiKeys::new(&auth, TokenFormat::new("pc_").unwrap());
    let ada = auth
        .users()
        .create_user(NewUser::new("ada"), auth.now())
        .await
        .unwrap();
    let cached = api_keys
        .create(&ada, NewApiKey::named("cached"))
        .await
        .unwrap()
        .secret
        .into_exposed();
    let cold = api_keys
        .create(&ada, NewApiKey::named("cold"))
        .await
        .unwrap()
        .secret
        .into_exposed();
    let router: Router = Router::new()
        .route(
            "/me",
            get(|user: CurrentUser| async move { user.username.clone() }),
        )
        .layer(AuthLayer::builder().source(Bearer::new(api_keys)).build());
    assert_eq!(status(&router, &cached).await.0, StatusCode::OK);

    proxy.cut();
    let (code, retry_after, body) = status(&router, &cold).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(
        body,
        r#"{"detail":"Authentication service temporarily unavailable"}"#
    );
    assert_eq!(retry_after.as_deref(), Some("1"));
    // A credential already in the cache keeps working through the outage.
    assert_eq!(status(&router, &cached).await.0, StatusCode::OK);

    proxy.restore();
    let started = std::time::Instant::now();
    loop {
        match status(&router, &cold).await.0 {
            StatusCode::OK => break,
            StatusCode::SERVICE_UNAVAILABLE if started.elapsed().as_secs() < 10 => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            other => panic!("expected recovery, got {other}"),
        }
    }
    println!(
        "recovered {:?} after the database came back",
        started.elapsed()
    );
}
