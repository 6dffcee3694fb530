//! Sign-in with an OpenID Connect provider (Google, or any issuer found by discovery): the
//! authorization code flow with PKCE (S256), `state` and `nonce`, kept as a one-time secret
//! bound to the browser by a short-lived cookie; the ID token checked; the person's account
//! found by `(issuer, subject)`, linked by a verified email, or created.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use http::header::HeaderValue;
use openidconnect::core::{
    CoreClient, CoreIdToken, CoreIdTokenClaims, CoreProviderMetadata, CoreResponseType,
};
use openidconnect::{
    AsyncHttpClient, AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, HttpRequest, HttpResponse, IssuerUrl, Nonce,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use serde::{Deserialize, Serialize};

use crate::assurance::Factor;
use crate::auth::Auth;
use crate::one_time::{IssueSecretError, OneTimeSecrets, RedeemError, SecretRequest};
use crate::redirect::LocalRedirect;
use crate::secret::Secret;
use crate::sign_in::{Authenticated, SignIn, SignInError, SignInOutcome};
use crate::store::{ExternalIdentity, NewUser, SecretKind, StoreError, User};
use crate::token::{TokenDigest, TokenFormat};

/// How long a sign-in may take at the provider: the `state` and its cookie live this long.
pub const OIDC_SIGN_IN_LIFETIME: Duration = Duration::from_secs(10 * 60);

/// The longest ID token accepted from a browser.
const MAX_ID_TOKEN_LEN: usize = 16 * 1024;

/// The largest answer read from the provider (discovery, keys, tokens).
const MAX_PROVIDER_RESPONSE: usize = 256 * 1024;

/// The client type discovery gives: an authorization endpoint, and a token endpoint when the
/// provider names one.
type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// What to do when a provider's verified email belongs to an account that has never signed
/// in with that provider.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum EmailLinking {
    /// Link the identity to the account (the default): the provider vouches that the person
    /// controls the address, as a magic link would. An account whose address was never
    /// verified here is taken over as [`MagicLinks`](super::MagicLinks) takes it over: its
    /// password and credentials end.
    #[default]
    Link,
    /// Refuse ([`OidcError::AccountExists`]): the person signs in another way and links the
    /// provider from their account.
    Refuse,
    /// Create a separate account for the identity, without the address.
    SeparateAccount,
}

/// Where and as whom to sign in at the provider.
#[derive(Clone, Debug)]
pub struct OidcConfig {
    /// The issuer identifier, discovered at `<issuer>/.well-known/openid-configuration`
    /// (`https://accounts.google.com` for Google).
    pub issuer: String,
    /// The client id the provider gave this application.
    pub client_id: String,
    /// Its client secret, if the provider issued one.
    pub client_secret: Option<Secret>,
    /// This application's callback, registered at the provider (an absolute URL).
    pub redirect_url: String,
}

impl OidcConfig {
    /// The provider `issuer`, as client `client_id` with `client_secret`, called back at
    /// `redirect_url`.
    pub fn new(
        issuer: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: Option<Secret>,
        redirect_url: impl Into<String>,
    ) -> Self {
        Self {
            issuer: issuer.into(),
            client_id: client_id.into(),
            client_secret,
            redirect_url: redirect_url.into(),
        }
    }
}

/// Why an OpenID Connect sign-in did not complete. None of them signs anyone in; each
/// carries a short code for a `/login?error=` page ([`code`](Self::code)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OidcError {
    /// The configuration cannot work (an issuer or redirect URL that is not a URL).
    #[error("invalid OpenID Connect configuration: {0}")]
    Config(String),
    /// The provider could not be reached or answered what a provider must not.
    #[error("the identity provider failed: {0}")]
    Provider(String),
    /// The callback's `state` is missing, unknown, expired or used, or was started in another
    /// browser (its cookie does not match): a forged, replayed or stale callback.
    #[error("the sign-in callback does not belong to a sign-in begun in this browser")]
    StateInvalid,
    /// The provider answered the callback with an error (the person declined, say).
    #[error("the identity provider refused the sign-in: {0}")]
    Denied(String),
    /// The ID token is missing or fails its checks (signature, issuer, audience, expiry,
    /// nonce).
    #[error("the ID token is invalid: {0}")]
    InvalidIdToken(String),
    /// The provider's address belongs to an account here, and the linking policy refuses to
    /// link it (or the provider did not verify the address).
    #[error("an account with this email address exists; sign in to it another way")]
    AccountExists,
    /// No account is linked and creating one is turned off.
    #[error("no account is linked to this identity")]
    NoAccount,
    /// No randomness was available.
    #[error(transparent)]
    Randomness(#[from] crate::token::RandomnessUnavailable),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl OidcError {
    /// A short, stable code for the login page (Khoj's `/login?error=…`): never a detail an
    /// attacker could learn from.
    pub fn code(&self) -> &'static str {
        match self {
            Self::StateInvalid => "invalid_state",
            Self::Denied(_) => "access_denied",
            Self::InvalidIdToken(_) => "invalid_token",
            Self::AccountExists => "account_exists",
            Self::NoAccount => "no_account",
            Self::Config(_) | Self::Provider(_) | Self::Randomness(_) | Self::Store(_) => {
                "unavailable"
            }
        }
    }
}

impl From<SignInError> for OidcError {
    fn from(error: SignInError) -> Self {
        match error {
            SignInError::Store(error) => Self::Store(error),
            other => Self::Store(StoreError::unavailable(other)),
        }
    }
}

/// The redirect that starts a sign-in: send the browser to `url` with `cookie` set.
#[derive(Debug)]
pub struct Authorization {
    /// The provider's authorization URL, with `state`, `nonce` and the PKCE challenge.
    pub url: String,
    /// The `Set-Cookie` header binding the sign-in to this browser.
    pub cookie: HeaderValue,
}

/// A completed callback.
#[derive(Debug)]
pub struct Completed {
    /// Signed in (hand it to [`Sessions::start`](crate::session::Sessions::start)), a
    /// second factor to prove, or refused (an inactive account).
    pub outcome: SignInOutcome,
    /// Where the sign-in was begun to go on to.
    pub next: LocalRedirect,
}

/// The parameters the provider sends the browser back with.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Callback {
    /// The authorization code.
    pub code: Option<String>,
    /// The `state` the sign-in began with.
    pub state: Option<String>,
    /// The provider's error code, when it refused.
    pub error: Option<String>,
}

/// What the one-time secret behind a `state` holds.
#[derive(Serialize, Deserialize)]
struct Pending {
    verifier: String,
    nonce: String,
    next: String,
    /// The digest of the browser-binding cookie's value.
    binding: String,
}

/// reqwest as the provider's HTTP client: no redirects followed (OAuth 2.0 Security BCP,
/// RFC 9700 §4.11: a redirect could point the token request elsewhere), bounded answers.
#[derive(Clone, Debug)]
struct ProviderHttp(reqwest::Client);

/// A failed call to the provider.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct ProviderHttpError(String);

impl<'c> AsyncHttpClient<'c> for ProviderHttp {
    type Error = ProviderHttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Self::Error>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let failed = |error: &dyn std::fmt::Display| ProviderHttpError(error.to_string());
            let request = reqwest::Request::try_from(request).map_err(|e| failed(&e))?;
            let mut response = self.0.execute(request).await.map_err(|e| failed(&e))?;
            let mut answer = http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                answer = answer.header(name, value);
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| failed(&e))? {
                if body.len() + chunk.len() > MAX_PROVIDER_RESPONSE {
                    return Err(ProviderHttpError(
                        "the provider's answer is too large".into(),
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            answer.body(body).map_err(|e| failed(&e))
        })
    }
}

/// Sign-in with one OpenID Connect provider (Google, or any issuer found by discovery).
///
/// * [`begin`](Self::begin) makes the authorization URL: PKCE S256, a random `state` and
///   `nonce`, kept as a one-time secret ([`SecretKind::OIDC_STATE`], ten minutes) together with
///   `next`, and bound to this browser by a `__Host-` cookie holding a random value whose
///   digest the secret keeps (RFC 9700 §4.7: the callback must come from the browser that
///   began).
/// * [`finish`](Self::finish) spends the `state` (a replayed callback finds nothing), checks
///   the cookie, exchanges the code with the PKCE verifier, and checks the ID token's
///   signature, issuer, audience, expiry and nonce.
/// * The account: the one linked to `(issuer, subject)`; else, when the provider says the
///   email is verified, the account with that address, as [`EmailLinking`] says; else a new
///   account ([`create_users`](Self::create_users), on by default) with the identity linked.
///   The sign-in ends in the [pipeline](crate::sign_in) with [`Factor::Federated`].
///
/// ```no_run
/// # async fn example(
/// #     auth: portcullis::Auth,
/// #     secrets: portcullis::OneTimeSecrets,
/// #     sessions: portcullis::session::Sessions,
/// #     headers: http::HeaderMap,
/// #     callback: portcullis::flows::Callback,
/// # ) -> Result<(), Box<dyn std::error::Error>> {
/// use portcullis::Secret;
/// use portcullis::flows::{OidcConfig, OidcSignIn};
/// use portcullis::sign_in::SignInOutcome;
///
/// let config = OidcConfig::new(
///     "https://accounts.google.com",
///     "1234.apps.googleusercontent.com",
///     Some(Secret::new("the client secret")),
///     "https://app.example.com/auth/redirect",
/// );
/// let google = OidcSignIn::discover(&auth, &secrets, config).await?;
/// // GET /auth/login: send the browser to `begun.url`, setting `begun.cookie`.
/// let begun = google.begin(None).await?;
/// # let _ = begun;
/// // GET /auth/redirect: the provider's callback.
/// let completed = google.finish(&headers, &callback).await?;
/// if let SignInOutcome::SignedIn(signed_in) = completed.outcome {
///     let started = sessions.start(&signed_in, &headers).await?;
///     // Answer with `started.cookie` and `google.removal_cookie()`, on to `completed.next`.
/// #   let _ = started;
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct OidcSignIn {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    auth: Auth,
    secrets: OneTimeSecrets,
    client: Client,
    http: ProviderHttp,
    issuer: String,
    client_id: String,
    linking: EmailLinking,
    create_users: bool,
    pipeline: SignIn,
    secure_cookie: bool,
    binding_format: TokenFormat,
}

impl std::fmt::Debug for OidcSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcSignIn")
            .field("issuer", &self.inner.issuer)
            .field("client_id", &self.inner.client_id)
            .field("linking", &self.inner.linking)
            .field("create_users", &self.inner.create_users)
            .finish_non_exhaustive()
    }
}

/// The cookie binding a sign-in to the browser that began it.
const SECURE_COOKIE: &str = "__Host-portcullis-oidc";
/// Its name over plain HTTP (development), where a `__Host-` cookie cannot be set.
const PLAIN_COOKIE: &str = "portcullis_oidc";

impl OidcSignIn {
    /// Discovers `config.issuer`'s endpoints and keys and signs in over `auth`, keeping each
    /// sign-in's state in `secrets`.
    pub async fn discover(
        auth: &Auth,
        secrets: &OneTimeSecrets,
        config: OidcConfig,
    ) -> Result<Self, OidcError> {
        let invalid = |what: &str, error: &dyn std::fmt::Display| {
            OidcError::Config(format!("{what}: {error}"))
        };
        let issuer = IssuerUrl::new(config.issuer.clone()).map_err(|e| invalid("issuer", &e))?;
        let redirect = RedirectUrl::new(config.redirect_url.clone())
            .map_err(|e| invalid("redirect URL", &e))?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map(ProviderHttp)
            .map_err(|e| OidcError::Provider(e.to_string()))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &http)
            .await
            .map_err(|e| OidcError::Provider(format!("discovery: {e}")))?;
        let secret = config
            .client_secret
            .map(|secret| ClientSecret::new(secret.into_exposed()));
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(config.client_id.clone()),
            secret,
        )
        .set_redirect_uri(redirect);
        Ok(Self {
            inner: Arc::new(Inner {
                auth: auth.clone(),
                secrets: secrets.clone(),
                client,
                http,
                issuer: config.issuer,
                client_id: config.client_id,
                linking: EmailLinking::default(),
                create_users: true,
                pipeline: SignIn::new(auth),
                secure_cookie: config.redirect_url.starts_with("https://"),
                binding_format: TokenFormat::new("oidcb_").expect("a valid prefix"),
            }),
        })
    }

    fn inner_mut(&mut self) -> &mut Inner {
        Arc::make_mut(&mut self.inner)
    }

    /// What to do when the provider's verified email belongs to an unlinked account
    /// (default [`EmailLinking::Link`]).
    #[must_use]
    pub fn linking(mut self, linking: EmailLinking) -> Self {
        self.inner_mut().linking = linking;
        self
    }

    /// Whether an identity without an account gets one (default `true`).
    #[must_use]
    pub fn create_users(mut self, create: bool) -> Self {
        self.inner_mut().create_users = create;
        self
    }

    /// Sends successful sign-ins through `pipeline` (its second factors).
    #[must_use]
    pub fn pipeline(mut self, pipeline: SignIn) -> Self {
        self.inner_mut().pipeline = pipeline;
        self
    }

    /// The provider's issuer identifier.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// This application's client id at the provider.
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    fn cookie_name(&self) -> &'static str {
        if self.inner.secure_cookie {
            SECURE_COOKIE
        } else {
            PLAIN_COOKIE
        }
    }

    fn cookie(&self, value: &str, max_age: Duration) -> HeaderValue {
        let secure = if self.inner.secure_cookie {
            "; Secure"
        } else {
            ""
        };
        let cookie = format!(
            "{}={value}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
            self.cookie_name(),
            max_age.as_secs()
        );
        HeaderValue::try_from(cookie).expect("token characters only")
    }

    /// The `Set-Cookie` header that removes the binding cookie: send it with every answer
    /// to the callback.
    pub fn removal_cookie(&self) -> HeaderValue {
        self.cookie("", Duration::ZERO)
    }

    /// Begins a sign-in that goes on to `next` once done.
    pub async fn begin(&self, next: Option<&LocalRedirect>) -> Result<Authorization, OidcError> {
        let inner = &self.inner;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let binding = inner.binding_format.generate()?;
        let nonce = Nonce::new_random();
        let pending = Pending {
            verifier: verifier.secret().clone(),
            nonce: nonce.secret().clone(),
            next: next.map_or("/", LocalRedirect::as_str).to_owned(),
            binding: binding.digest().to_hex(),
        };
        let request = SecretRequest::new(SecretKind::OIDC_STATE, OIDC_SIGN_IN_LIFETIME)
            .payload(&pending)
            .map_err(|_| OidcError::Config("the next page's address is too long".into()))?;
        let state = inner
            .secrets
            .issue_link(request)
            .await
            .map_err(|error| match error {
                IssueSecretError::Randomness(error) => OidcError::Randomness(error),
                IssueSecretError::Store(error) => OidcError::Store(error),
                other => OidcError::Store(StoreError::unavailable(other)),
            })?
            .secret;
        let state = state.into_exposed();
        let (url, _, _) = inner
            .client
            .authorize_url(
                AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                move || CsrfToken::new(state),
                move || nonce,
            )
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(challenge)
            .url();
        Ok(Authorization {
            url: url.to_string(),
            cookie: self.cookie(binding.secret().expose(), OIDC_SIGN_IN_LIFETIME),
        })
    }

    /// Completes the sign-in the provider sent the browser back from with `callback`;
    /// `request` is the callback request's headers (the binding cookie).
    pub async fn finish(
        &self,
        request: &HeaderMap,
        callback: &Callback,
    ) -> Result<Completed, OidcError> {
        let inner = &self.inner;
        let state = callback.state.as_deref().ok_or(OidcError::StateInvalid)?;
        // Spent before anything else: a callback replayed, or raced, finds nothing.
        let record = match inner
            .secrets
            .redeem_link(SecretKind::OIDC_STATE, state)
            .await
        {
            Ok(record) => record,
            Err(RedeemError::Store(error)) => return Err(error.into()),
            Err(_) => return Err(OidcError::StateInvalid),
        };
        let pending: Pending = match record.payload_as() {
            Some(Ok(pending)) => pending,
            _ => return Err(StoreError::Corrupt("OpenID Connect state".into()).into()),
        };
        let presented =
            crate::session::session_cookie(request, self.cookie_name()).map(TokenDigest::of);
        let expected = TokenDigest::from_hex(&pending.binding);
        if presented.is_none() || presented != expected {
            return Err(OidcError::StateInvalid);
        }
        if let Some(error) = &callback.error {
            return Err(OidcError::Denied(error.chars().take(64).collect()));
        }
        let code = callback
            .code
            .clone()
            .ok_or_else(|| OidcError::Denied("no authorization code".into()))?;
        let tokens = inner
            .client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| OidcError::Provider(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier))
            .request_async(&inner.http)
            .await
            .map_err(|e| OidcError::Provider(format!("token request: {e}")))?;
        let id_token = tokens
            .id_token()
            .ok_or_else(|| OidcError::InvalidIdToken("the provider sent none".into()))?;
        let claims = id_token
            .claims(
                &inner.client.id_token_verifier(),
                &Nonce::new(pending.nonce),
            )
            .map_err(|e| OidcError::InvalidIdToken(e.to_string()))?;
        let outcome = self.sign_in(Person::of(claims)).await?;
        let next = LocalRedirect::next_or_root(Some(&pending.next));
        Ok(Completed { outcome, next })
    }

    /// Signs in with an ID token the provider handed the browser directly (Google One Tap's
    /// `credential`), checked as [`finish`](Self::finish) checks one: signature, issuer,
    /// audience, expiry. No sign-in was begun here, so there is no `nonce` to hold it to: the
    /// route that takes it must refuse cross-site posts (One Tap's `g_csrf_token`
    /// double-submit cookie), and [`begin`](Self::begin) / [`finish`](Self::finish) are the
    /// stronger choice where the client is yours.
    pub async fn finish_id_token(&self, id_token: &str) -> Result<SignInOutcome, OidcError> {
        let inner = &self.inner;
        if id_token.len() > MAX_ID_TOKEN_LEN {
            return Err(OidcError::InvalidIdToken("longer than any ID token".into()));
        }
        let token: CoreIdToken = id_token
            .parse()
            .map_err(|e: serde_json::Error| OidcError::InvalidIdToken(e.to_string()))?;
        let any_nonce = |_: Option<&Nonce>| Ok(());
        let claims = token
            .claims(&inner.client.id_token_verifier(), any_nonce)
            .map_err(|e| OidcError::InvalidIdToken(e.to_string()))?;
        self.sign_in(Person::of(claims)).await
    }

    /// Signs in the account of the person the provider vouched for, through the pipeline.
    async fn sign_in(&self, person: Person) -> Result<SignInOutcome, OidcError> {
        let inner = &self.inner;
        let user = self.account(person).await?;
        let proof = Authenticated::new(user, Factor::Federated, inner.auth.now());
        Ok(inner.pipeline.begin(proof).await?)
    }

    /// The account of the person the provider vouched for.
    async fn account(&self, person: Person) -> Result<User, OidcError> {
        let inner = &self.inner;
        let users = inner.auth.users();
        let issuer = inner.issuer.as_str();
        if let Some(user) = users.user_by_identity(issuer, &person.subject).await? {
            return Ok(user);
        }
        let holder = match &person.email {
            Some(email) => users.user_by_email(email).await?,
            None => None,
        };
        let user = match holder {
            Some(user) if person.email_verified && inner.linking == EmailLinking::Link => {
                super::claimed_by_mailbox_owner(&inner.auth, user)
                    .await?
                    .ok_or(OidcError::NoAccount)?
            }
            Some(_) if inner.linking == EmailLinking::SeparateAccount && inner.create_users => {
                self.create(&person, false).await?
            }
            Some(_) => return Err(OidcError::AccountExists),
            None if inner.create_users => self.create(&person, true).await?,
            None => return Err(OidcError::NoAccount),
        };
        let identity = ExternalIdentity::new(issuer, &person.subject, inner.auth.now());
        match users.link_identity(user.id, identity).await {
            Ok(_) => Ok(user),
            // Linked by a racing callback for the same person: theirs is the account.
            Err(StoreError::Conflict(_)) => users
                .user_by_identity(issuer, &person.subject)
                .await?
                .ok_or(OidcError::NoAccount),
            Err(error) => Err(error.into()),
        }
    }

    /// A new account for `person`, with their address when `with_email`.
    async fn create(&self, person: &Person, with_email: bool) -> Result<User, OidcError> {
        let auth = &self.inner.auth;
        let email = person.email.as_deref().filter(|_| with_email);
        let username = match email {
            Some(email) => email.to_owned(),
            None => format!(
                "oidc-{}",
                &TokenDigest::of(&format!("{}\n{}", self.inner.issuer, person.subject)).to_hex()
                    [..16]
            ),
        };
        let mut plain = NewUser::new(username);
        if let Some(email) = email {
            plain = plain.email(email).email_verified(person.email_verified);
        }
        let mut full = plain.clone();
        if let Some(name) = &person.name {
            full = full.full_name(name.chars().take(200).collect::<String>());
        }
        if let Some(picture) = &person.picture {
            full = full.photo_url(picture);
        }
        match auth.users().create_user(full, auth.now()).await {
            Ok(user) => Ok(user),
            // A picture the store refuses (not http(s), too long) is dropped, not fatal.
            Err(StoreError::InvalidInput("photo_url")) => {
                Ok(auth.users().create_user(plain, auth.now()).await?)
            }
            Err(error) => Err(error.into()),
        }
    }
}

/// What the ID token says of the person.
struct Person {
    subject: String,
    email: Option<String>,
    email_verified: bool,
    name: Option<String>,
    picture: Option<String>,
}

impl Person {
    fn of(claims: &CoreIdTokenClaims) -> Self {
        Self {
            subject: claims.subject().as_str().to_owned(),
            email: claims
                .email()
                .map(|email| email.as_str().to_ascii_lowercase()),
            email_verified: claims.email_verified().unwrap_or(false),
            name: claims
                .name()
                .and_then(|name| name.get(None))
                .map(|name| name.as_str().to_owned()),
            picture: claims
                .picture()
                .and_then(|picture| picture.get(None))
                .map(|picture| picture.as_str().to_owned()),
        }
    }
}
