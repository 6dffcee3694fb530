//! The API's OpenAPI 3.1 document, served at `/openapi.json`. Generated from the handlers'
//! annotations and the request and response types, so it cannot drift from them;
//! `scripts/schemathesis.sh` checks the running server against it.

use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{auth_routes, collections, internal, keys, ws};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Semantik (portcullis example)",
        description = "Semantik's documented authentication API, rebuilt on portcullis."
    ),
    paths(
        auth_routes::register,
        auth_routes::login,
        auth_routes::refresh,
        auth_routes::logout,
        auth_routes::me,
        keys::create,
        keys::list,
        keys::get_one,
        keys::update,
        collections::create,
        collections::list,
        collections::get_one,
        internal::user,
        internal::update_user,
        ws::operations,
    ),
    modifiers(&SecuritySchemes)
)]
struct ApiDoc;

/// The three ways to authenticate, as the `AuthLayer` sources accept them.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.bearer_format = Some("JWT access token or smtk_ API key".to_owned());
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        components.add_security_scheme(
            "query_token",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::new("token"))),
        );
        components.add_security_scheme(
            "internal",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Internal-Api-Key"))),
        );
    }
}

/// `GET /openapi.json`.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
