//! One request through the bare service and through `AuthLayer` with each credential kind,
//! measured in the same run so that the overhead can be read as a difference and a ratio.
//!
//! ```sh
//! cargo bench --bench request_path
//! ```

use std::hint::black_box;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use portcullis::assurance::Factor;
use portcullis::session::{SessionCookieConfig, Sessions};
use portcullis::sign_in::Authenticated;
use portcullis::source::{
    Bearer, ClientApplication, CredentialSource, Credentials, MemoryClients, RegisteredClient,
    SessionCookie, TokenResolver, bearer_token,
};
use portcullis::store::{MemoryStore, NewUser};
use portcullis::token::jwt::{JwtKey, JwtKeys};
use portcullis::token::{TokenDigest, TokenFormat};
use portcullis::{AccessTokens, ApiKeys, Auth, AuthLayer, JwtConfig, NewApiKey};
use tower::{Service, ServiceExt};

struct Fixture {
    bare: Router,
    /// The bare router behind a layer that does nothing, so that axum's per-layer cost (each
    /// `Router::layer` boxes the route once more) is not charged to portcullis.
    noop_layer: Router,
    /// The floor for any authentication layer: insert an already-known identity, no lookup.
    insert_identity: Router,
    authenticated: Router,
    api_key: String,
    jwt: String,
    access: AccessTokens,
    api_keys: ApiKeys,
    /// The Khoj example's layer: session cookie, then `kk-` keys, then client applications.
    khoj: Router,
    /// A request of each of Khoj's credentials, as `(name, value)` headers and a query.
    khoj_session: (String, String),
    khoj_key: String,
    khoj_client: (String, String),
}

async fn fixture() -> Fixture {
    let auth = Auth::builder(MemoryStore::new()).build();
    let api_keys = ApiKeys::new(&auth, TokenFormat::new("smtk_").unwrap());
    let keys = JwtKeys::new(JwtKey::hs256(&[7; 32]).unwrap()).unwrap();
    let access = AccessTokens::new(&auth, keys, JwtConfig::new("bench", "bench-api"));
    let user = auth
        .users()
        .create_user(NewUser::new("ada"), auth.now())
        .await
        .unwrap();
    let api_key = api_keys
        .create(&user, NewApiKey::named("bench"))
        .await
        .unwrap()
        .secret
        .into_exposed();
    let jwt = access.issue(&user, None).unwrap().token.into_exposed();
    let bare = Router::new().route("/", get(|| async { "ok" }));
    let noop_layer = bare.clone().layer(tower::util::MapRequestLayer::new(
        |request: Request<Body>| request,
    ));
    let known = api_keys.resolve(&api_key).await.unwrap();
    let insert_identity = bare.clone().layer(tower::util::MapRequestLayer::new(
        move |mut request: Request<Body>| {
            request.extensions_mut().insert(known.clone());
            request
        },
    ));
    let authenticated = bare.clone().layer(
        AuthLayer::builder()
            .source(Bearer::new(api_keys.clone()))
            .source(Bearer::new(access.clone()))
            .build(),
    );
    let khoj_keys = ApiKeys::new(&auth, TokenFormat::new("kk-").unwrap());
    let khoj_key = khoj_keys
        .create(&user, NewApiKey::named("desktop"))
        .await
        .unwrap()
        .secret
        .into_exposed();
    let sessions = Sessions::new(&auth, TokenFormat::new("khs_").unwrap())
        .cookie(SessionCookieConfig::new().name("__Host-khoj").unwrap());
    let signed_in = Authenticated::new(user.clone(), Factor::Email, auth.now());
    let started = sessions
        .start(&signed_in, &http::HeaderMap::new())
        .await
        .unwrap();
    let khoj_session = (
        "cookie".to_owned(),
        format!("__Host-khoj={}", started.secret.expose()),
    );
    auth.users()
        .create_user(
            NewUser::new("+15551234567")
                .phone("+15551234567")
                .phone_verified(true),
            auth.now(),
        )
        .await
        .unwrap();
    let clients = MemoryClients::new();
    let (client, secret) =
        RegisteredClient::generate("whatsapp", &TokenFormat::new("kcs_").unwrap()).unwrap();
    let khoj_client = (
        format!(
            "/?client_id={}&phone_number=%2B15551234567",
            client.client_id
        ),
        secret.secret().expose().to_owned(),
    );
    clients.register(client);
    let khoj = bare.clone().layer(
        AuthLayer::builder()
            .source(SessionCookie::new(sessions))
            .source(Bearer::new(khoj_keys))
            .source(ClientApplication::new(&auth, clients))
            .build(),
    );
    Fixture {
        bare,
        noop_layer,
        insert_identity,
        authenticated,
        api_key,
        jwt,
        access,
        api_keys,
        khoj,
        khoj_session,
        khoj_key,
        khoj_client,
    }
}

/// Khoj's three ways to authenticate a request.
#[derive(Clone, Copy)]
enum KhojCredential {
    Session,
    ApiKey,
    ClientApp,
}

fn khoj_request(fixture: &Fixture, credential: KhojCredential) -> Request<Body> {
    let request = match credential {
        KhojCredential::Session => {
            let (name, value) = &fixture.khoj_session;
            Request::get("/").header(name, value)
        }
        KhojCredential::ApiKey => {
            Request::get("/").header("authorization", format!("Bearer {}", fixture.khoj_key))
        }
        KhojCredential::ClientApp => {
            let (uri, secret) = &fixture.khoj_client;
            Request::get(uri).header("authorization", format!("Bearer {secret}"))
        }
    };
    request.body(Body::empty()).unwrap()
}

fn request(bearer: Option<&str>) -> Request<Body> {
    let mut request = Request::get("/");
    if let Some(token) = bearer {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    request.body(Body::empty()).unwrap()
}

fn request_path(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let fixture = runtime.block_on(fixture());
    let mut group = c.benchmark_group("request");
    let cases: [(&str, &Router, Option<&str>); 6] = [
        // The baselines get the same header (unread), so a row's cost over them is what its
        // layer does rather than the cost of building a request with one more header.
        ("bare_axum", &fixture.bare, Some(&fixture.api_key)),
        ("noop_layer", &fixture.noop_layer, Some(&fixture.api_key)),
        (
            "insert_identity",
            &fixture.insert_identity,
            Some(&fixture.api_key),
        ),
        ("auth_layer_anonymous", &fixture.authenticated, None),
        (
            "api_key_cached",
            &fixture.authenticated,
            Some(&fixture.api_key),
        ),
        (
            "jwt_hs256_cached",
            &fixture.authenticated,
            Some(&fixture.jwt),
        ),
    ];
    for (name, router, bearer) in cases {
        let mut service = router.clone().into_service::<Body>();
        // Warm the credential cache so that the loop measures the hot path.
        let status = runtime.block_on(async {
            service
                .ready()
                .await
                .unwrap()
                .call(request(bearer))
                .await
                .unwrap()
                .status()
        });
        assert_eq!(status, 200, "{name}");
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter(|| {
                let mut service = service.clone();
                let request = request(bearer);
                async move { black_box(service.ready().await.unwrap().call(request).await.unwrap()) }
            })
        });
    }
    group.finish();

    // The Khoj example's request path, against the same bare router.
    let mut group = c.benchmark_group("khoj");
    for (name, credential) in [
        ("session_cached", KhojCredential::Session),
        ("kk_api_key_cached", KhojCredential::ApiKey),
        ("client_application", KhojCredential::ClientApp),
    ] {
        let mut service = fixture.khoj.clone().into_service::<Body>();
        let status = runtime.block_on(async {
            let request = khoj_request(&fixture, credential);
            service
                .ready()
                .await
                .unwrap()
                .call(request)
                .await
                .unwrap()
                .status()
        });
        assert_eq!(status, 200, "{name}");
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter(|| {
                let mut service = service.clone();
                let request = khoj_request(&fixture, credential);
                async move { black_box(service.ready().await.unwrap().call(request).await.unwrap()) }
            })
        });
    }
    group.finish();

    // The pieces of a cached request, to see where its cost over `noop_layer` goes.
    let mut group = c.benchmark_group("pieces");
    // A cache entry lives 30 s: the groups before may have outlasted the one warmed above.
    runtime
        .block_on(fixture.api_keys.resolve(&fixture.api_key))
        .unwrap();
    let api_source = Bearer::new(fixture.api_keys.clone());
    let api_request = request(Some(&fixture.api_key)).into_parts().0;
    group.bench_function("api_key_lookup", |b| {
        b.iter(|| black_box(api_source.lookup(&Credentials::new(black_box(&api_request)))))
    });
    group.bench_function("api_key_resolve_now", |b| {
        b.iter(|| black_box(fixture.api_keys.resolve_now(black_box(&fixture.api_key))))
    });
    group.bench_function("bearer_token", |b| {
        b.iter(|| black_box(bearer_token(black_box(&api_request.headers)).is_ok()))
    });
    let identity = runtime
        .block_on(fixture.api_keys.resolve(&fixture.api_key))
        .unwrap();
    group.bench_function("extensions_insert", |b| {
        b.iter(|| {
            let mut extensions = http::Extensions::new();
            extensions.insert(black_box(identity.clone()));
            black_box(extensions)
        })
    });
    group.finish();

    let mut group = c.benchmark_group("uncached");
    group.bench_function("jwt_hs256_verify", |b| {
        b.iter(|| black_box(fixture.access.verify(black_box(&fixture.jwt)).unwrap()))
    });
    let format = TokenFormat::new("smtk_").unwrap();
    group.bench_function("api_key_parse_and_digest", |b| {
        b.iter(|| black_box(format.parse(black_box(&fixture.api_key)).unwrap().digest()))
    });
    group.bench_function("sha256_digest", |b| {
        b.iter(|| black_box(TokenDigest::of(black_box(&fixture.api_key))))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .noise_threshold(0.05);
    targets = request_path
}
criterion_main!(benches);
