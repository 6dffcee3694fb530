//! The API's OpenAPI 3.1 document, served at `/openapi.json`, generated from the handlers'
//! annotations; `scripts/schemathesis.sh` checks the running server against it.

use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{api, magic, oidc, session, tokens};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Khoj (portcullis example)",
        description = "Khoj's authentication API, rebuilt on portcullis."
    ),
    paths(
        magic::request,
        magic::verify,
        oidc::login,
        oidc::redirect,
        oidc::one_tap,
        session::logout,
        session::oauth_metadata,
        tokens::create,
        tokens::list,
        tokens::delete,
        api::user,
        api::health,
    ),
    modifiers(&SecuritySchemes)
)]
struct ApiDoc;

/// The ways to authenticate, in the order the `AuthLayer` asks.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("khoj_session"))),
        );
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.bearer_format = Some("kk- API key, or a client application's secret".to_owned());
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
    }
}

/// `GET /openapi.json`.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
