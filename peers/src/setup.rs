//! portcullis set up as an application would: one store, one user, an API key and access
//! tokens signed with HS256 and with Ed25519.

use portcullis::assurance::Factor;
use portcullis::guard::RequireLayer;
use portcullis::session::Sessions;
use portcullis::sign_in::Authenticated;
use portcullis::source::{Bearer, SessionCookie};
use portcullis::store::{NewUser, PostgresStore, Store, User};
use portcullis::token::TokenFormat;
use portcullis::token::jwt::{Algorithm, JwtKey, JwtKeys};
use portcullis::{AccessTokens, ApiKeys, Auth, AuthLayer, CacheConfig, JwtConfig, NewApiKey};
use tower::layer::util::Stack;

/// One portcullis installation with a user holding the `admin` role and one of each credential.
#[derive(Clone)]
pub struct Fixture {
    /// The shared core.
    pub auth: Auth,
    /// The user every credential belongs to.
    pub user: User,
    /// API keys (`smtk_…`).
    pub api_keys: ApiKeys,
    /// An API key of `user`.
    pub api_key: String,
    /// HS256 access tokens.
    pub hs256: AccessTokens,
    /// An HS256 access token of `user`.
    pub hs256_token: String,
    /// EdDSA (Ed25519) access tokens.
    pub eddsa: AccessTokens,
    /// An EdDSA access token of `user`.
    pub eddsa_token: String,
    /// Browser sessions (`pcs_…` ids in the `__Host-session` cookie).
    pub sessions: Sessions,
    /// A live session of `user`: the `Cookie` header a browser sends.
    pub session_cookie: String,
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture").finish_non_exhaustive()
    }
}

/// The library's Ed25519 test key, compiled in so the release load-test binary runs from any
/// directory.
const ED25519_PEM: &[u8] = include_bytes!("../../tests/keys/ed25519.pem");

/// Sets portcullis up over `store` with `cache`.
pub async fn fixture(store: impl Store, cache: CacheConfig) -> Fixture {
    let auth = Auth::builder(store).cache(cache).build();
    let api_keys = ApiKeys::new(&auth, TokenFormat::new("smtk_").expect("a valid prefix"));
    let config = JwtConfig::new("bench", "bench-api");
    let hs256 = AccessTokens::new(
        &auth,
        JwtKeys::new(JwtKey::hs256(&[7; 32]).expect("a long secret")).expect("a signing key"),
        config.clone(),
    );
    let ed25519 = JwtKey::private_pem(Algorithm::EdDSA, ED25519_PEM).expect("the Ed25519 test key");
    let eddsa = AccessTokens::new(&auth, JwtKeys::new(ed25519).expect("a signing key"), config);
    let user = auth
        .users()
        .create_user(NewUser::new("ada").roles(["admin"]), auth.now())
        .await
        .expect("a new user");
    let api_key = api_keys
        .create(&user, NewApiKey::named("bench"))
        .await
        .expect("a new API key")
        .secret
        .into_exposed();
    let hs256_token = hs256
        .issue(&user, None)
        .expect("a token")
        .token
        .into_exposed();
    let eddsa_token = eddsa
        .issue(&user, None)
        .expect("a token")
        .token
        .into_exposed();
    let sessions = Sessions::new(&auth, TokenFormat::new("pcs_").expect("a valid prefix"));
    let signed_in = Authenticated::new(user.clone(), Factor::Password, auth.now());
    let session = sessions
        .start(&signed_in, &http::HeaderMap::new())
        .await
        .expect("a new session");
    let session_cookie = format!(
        "{}={}",
        sessions.cookie_config().cookie_name(),
        session.secret.expose()
    );
    Fixture {
        sessions,
        session_cookie,
        auth,
        user,
        api_keys,
        api_key,
        hs256,
        hs256_token,
        eddsa,
        eddsa_token,
    }
}

impl Fixture {
    /// `AuthLayer` accepting API keys.
    pub fn api_key_auth(&self) -> AuthLayer {
        AuthLayer::builder()
            .source(Bearer::new(self.api_keys.clone()))
            .build()
    }

    /// `AuthLayer` accepting the session cookie.
    pub fn session_auth(&self) -> AuthLayer {
        AuthLayer::builder()
            .source(SessionCookie::new(self.sessions.clone()))
            .build()
    }

    /// `AuthLayer` accepting `tokens`.
    pub fn jwt_auth(&self, tokens: &AccessTokens) -> AuthLayer {
        AuthLayer::builder()
            .source(Bearer::new(tokens.clone()))
            .build()
    }

    /// `AuthLayer` accepting API keys, then `guard`, as one layer (one `Router::layer` call).
    pub fn api_key_layers(&self, guard: RequireLayer) -> Stack<RequireLayer, AuthLayer> {
        Stack::new(guard, self.api_key_auth())
    }

    /// `AuthLayer` accepting the session cookie, then `guard`, as one layer.
    pub fn session_layers(&self, guard: RequireLayer) -> Stack<RequireLayer, AuthLayer> {
        Stack::new(guard, self.session_auth())
    }

    /// `AuthLayer` accepting `tokens`, then `guard`, as one layer.
    pub fn jwt_layers(
        &self,
        tokens: &AccessTokens,
        guard: RequireLayer,
    ) -> Stack<RequireLayer, AuthLayer> {
        Stack::new(guard, self.jwt_auth(tokens))
    }
}

/// A PostgreSQL store in a fresh schema of the server at `url`.
pub async fn postgres_store(url: &str) -> PostgresStore {
    let schema = format!("bench_{}", std::process::id());
    let admin = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .expect("the PostgreSQL server");
    for statement in [
        format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
        format!("CREATE SCHEMA {schema}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&admin)
            .await
            .expect("a fresh schema");
    }
    admin.close().await;
    let separator = if url.contains('?') { '&' } else { '?' };
    PostgresStore::connect(&format!(
        "{url}{separator}options=-c%20search_path%3D{schema}"
    ))
    .await
    .expect("a PostgreSQL store")
}

/// Adds API keys to `fixture`'s store until it holds `total`, spread over 1 000 users, and
/// returns up to `hot` of them (the working set a benchmark cycles through).
pub async fn stored_keys(fixture: &Fixture, total: usize, hot: usize) -> Vec<String> {
    let users = total.clamp(1, 1_000);
    let mut owners = Vec::with_capacity(users);
    for n in 0..users {
        let user = fixture
            .auth
            .users()
            .create_user(NewUser::new(format!("owner{n}")), fixture.auth.now())
            .await
            .expect("a new user");
        owners.push(user);
    }
    let mut kept = Vec::with_capacity(hot);
    for n in 0..total {
        let key = fixture
            .api_keys
            .create(&owners[n % users], NewApiKey::named("bench"))
            .await
            .expect("a new API key")
            .secret
            .into_exposed();
        if kept.len() < hot {
            kept.push(key);
        }
    }
    kept
}
