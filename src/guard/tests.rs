use std::convert::Infallible;

use axum_core::body::Body;
use axum_core::response::Response;
use http::{Request, StatusCode};
use proptest::prelude::{Just, Strategy, prop, prop_assert, prop_assert_eq, prop_oneof, proptest};
use tower::{ServiceExt, service_fn};
use tower_layer::Layer;

use super::*;
use crate::error::AuthError;
use crate::identity::{AuthMethod, Identity, Scopes};
use crate::store::User;

fn user(roles: &[&str], scopes: Scopes) -> Identity {
    let user = User {
        username: "ada".into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        ..User::fixture(1)
    };
    Identity::user(
        user,
        AuthMethod::Jwt {
            jti: None,
            sid: None,
        },
        scopes,
    )
}

async fn status(layer: RequireLayer, identity: Option<Identity>) -> StatusCode {
    let service = layer.layer(service_fn(|_: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::empty()))
    }));
    let mut request = Request::new(Body::empty());
    if let Some(identity) = identity {
        request.extensions_mut().insert(identity);
    }
    service.oneshot(request).await.unwrap().status()
}

#[tokio::test]
async fn unauthenticated_is_401_and_forbidden_is_403() {
    let admin_only = || RequireLayer::any_role(["admin"]);
    assert_eq!(status(admin_only(), None).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        status(admin_only(), Some(user(&["member"], Scopes::Unrestricted))).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(admin_only(), Some(user(&["admin"], Scopes::Unrestricted))).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn require_auth_admits_any_identity() {
    assert_eq!(
        status(RequireLayer::authenticated(), None).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(
            RequireLayer::authenticated(),
            Some(Identity::service("worker"))
        )
        .await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn require_role_all_needs_every_role() {
    let layer = || RequireLayer::all_roles(["a", "b"]);
    assert_eq!(
        status(layer(), Some(user(&["a"], Scopes::Unrestricted))).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(layer(), Some(user(&["b", "a"], Scopes::Unrestricted))).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn rfc6750_limited_credential_without_scope_is_403_insufficient_scope() {
    let limited = user(&[], Scopes::only(["collections:read"]));
    let service =
        RequireLayer::scope("collections:write").layer(service_fn(|_: Request<Body>| async {
            Ok::<_, Infallible>(Response::new(Body::empty()))
        }));
    let mut request = Request::new(Body::empty());
    request.extensions_mut().insert(limited);
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("scope=\"collections:write\""),
        "{challenge}"
    );
}

#[test]
fn unrestricted_credentials_allow_every_scope() {
    let identity = user(&[], Scopes::Unrestricted);
    assert!(scope("anything").is_met_by(Some(&identity)));
}

#[test]
fn service_requirement_admits_only_services() {
    assert!(service().is_met_by(Some(&Identity::service("worker"))));
    assert!(!service().is_met_by(Some(&user(&["superuser"], Scopes::Unrestricted))));
    assert!(!service().is_met_by(None));
}

#[test]
fn signed_in_admits_sessions_and_access_tokens_but_no_program_credential() {
    let with = |method| Identity::user(User::fixture(1), method, Scopes::Unrestricted);
    let people = [
        with(AuthMethod::Jwt {
            jti: None,
            sid: None,
        }),
        with(AuthMethod::Session {
            session_id: crate::store::TokenId(1),
        }),
    ];
    for identity in &people {
        assert!(signed_in().is_met_by(Some(identity)), "{identity:?}");
    }
    let programs = [
        with(AuthMethod::ApiKey {
            key_id: crate::store::TokenId(1),
        }),
        with(AuthMethod::ClientApp {
            client: "app".into(),
        }),
        Identity::service("worker"),
    ];
    for identity in &programs {
        assert!(!signed_in().is_met_by(Some(identity)), "{identity:?}");
    }
    assert!(!signed_in().is_met_by(None));
}

#[test]
fn not_authenticated_admits_only_anonymous_requests() {
    let anonymous_only = not(authenticated());
    assert!(anonymous_only.check(None).is_ok());
    let identity = user(&[], Scopes::Unrestricted);
    assert!(matches!(
        anonymous_only.check(Some(&identity)),
        Err(AuthError::Forbidden { scope: None })
    ));
}

#[test]
fn missing_scope_is_found_inside_all() {
    let identity = user(&["editor"], Scopes::only(["a"]));
    let requirement = all([role("editor"), scope("a"), scope("b")]);
    assert!(matches!(
        requirement.check(Some(&identity)),
        Err(AuthError::Forbidden { scope: Some(s) }) if s == "b"
    ));
}

#[test]
fn custom_predicates_see_the_identity_and_reject_anonymous() {
    let named_ada = custom(|identity| identity.name() == "ada");
    assert!(named_ada.is_met_by(Some(&user(&[], Scopes::Unrestricted))));
    assert!(!named_ada.is_met_by(None));
}

/// Leaves of a random requirement tree, evaluated against a random identity.
fn leaf() -> impl Strategy<Value = Requirement> {
    prop_oneof![
        Just(authenticated()),
        Just(service()),
        Just(signed_in()),
        prop::sample::select(vec!["a", "b", "c"]).prop_map(role),
        prop::sample::select(vec!["x", "y"]).prop_map(scope),
    ]
}

fn tree() -> impl Strategy<Value = Requirement> {
    leaf().prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(all),
            prop::collection::vec(inner.clone(), 0..4).prop_map(any),
            inner.prop_map(not),
        ]
    })
}

fn some_identity() -> impl Strategy<Value = Option<Identity>> {
    let roles = prop::sample::subsequence(vec!["a", "b", "c"], 0..=3);
    let scopes = prop_oneof![
        Just(Scopes::Unrestricted),
        prop::sample::subsequence(vec!["x", "y"], 0..=2).prop_map(Scopes::only),
    ];
    prop_oneof![
        Just(None),
        Just(Some(Identity::service("svc"))),
        (roles, scopes).prop_map(|(roles, scopes)| Some(user(&roles, scopes))),
    ]
}

proptest! {
    #[test]
    fn guard_combinators_obey_boolean_laws(
        p in tree(), q in tree(), r in tree(), identity in some_identity()
    ) {
        let id = identity.as_ref();
        let eval = |req: &Requirement| req.is_met_by(id);
        // Double negation, De Morgan, distributivity, identities.
        prop_assert_eq!(eval(&not(not(p.clone()))), eval(&p));
        prop_assert_eq!(eval(&not(all([p.clone(), q.clone()]))), eval(&any([not(p.clone()), not(q.clone())])));
        prop_assert_eq!(eval(&not(any([p.clone(), q.clone()]))), eval(&all([not(p.clone()), not(q.clone())])));
        prop_assert_eq!(
            eval(&all([p.clone(), any([q.clone(), r.clone()])])),
            eval(&any([all([p.clone(), q.clone()]), all([p.clone(), r.clone()])]))
        );
        prop_assert!(eval(&all([])));
        prop_assert!(!eval(&any([])));
        prop_assert_eq!(eval(&p.clone().and(q.clone())), eval(&p) && eval(&q));
        prop_assert_eq!(eval(&p.clone().or(q.clone())), eval(&p) || eval(&q));
        // A refusal is 401 exactly when the request is anonymous.
        if let Err(error) = p.check(id) {
            prop_assert_eq!(matches!(error, AuthError::MissingCredentials), id.is_none());
        }
    }
}

#[test]
fn requirements_describe_themselves_for_logs_and_debugging() {
    let requirement = all([
        authenticated(),
        any([role("admin"), scope("documents:write")]),
        not(service()),
        custom(|_| true),
    ]);
    assert_eq!(
        format!("{requirement:?}"),
        r#"all([authenticated, any([role("admin"), scope("documents:write")]), not(service), custom(..)])"#
    );
}

/// RFC 9470 §3: a signed-in identity below the level is asked to sign in again (401 with
/// the level), one whose credential carries no sign-in is simply not allowed (403).
#[test]
fn an_assurance_level_is_met_by_stronger_sign_ins_only() {
    use crate::assurance::{Assurance, Factor, Factors};
    let aal2 = assurance(Assurance::Aal2);
    let at = time::OffsetDateTime::UNIX_EPOCH;
    let password = user(&[], Scopes::Unrestricted).signed_in(at, Factor::Password.into());
    let two: Factors = [Factor::Password, Factor::Otp].into_iter().collect();
    let strong = user(&[], Scopes::Unrestricted).signed_in(at, two);
    let key = Identity::user(
        User::fixture(1),
        AuthMethod::ApiKey {
            key_id: crate::store::TokenId(1),
        },
        Scopes::Unrestricted,
    );
    assert!(aal2.check(Some(&strong)).is_ok());
    assert!(assurance(Assurance::Aal1).check(Some(&password)).is_ok());
    assert!(matches!(
        aal2.check(Some(&password)),
        Err(AuthError::InsufficientAssurance {
            required: Assurance::Aal2
        })
    ));
    assert!(matches!(
        all([authenticated(), aal2.clone()]).check(Some(&password)),
        Err(AuthError::InsufficientAssurance { .. })
    ));
    assert!(matches!(
        aal2.check(Some(&key)),
        Err(AuthError::Forbidden { .. })
    ));
    assert!(matches!(
        aal2.check(None),
        Err(AuthError::MissingCredentials)
    ));
}

#[tokio::test]
async fn every_named_constructor_enforces_its_requirement() {
    let reader = user(&["staff"], Scopes::only(["a:read"]));
    let cases: [(RequireLayer, Requirement); 6] = [
        (RequireLayer::signed_in(), signed_in()),
        (RequireLayer::role("staff"), role("staff")),
        (
            RequireLayer::all_roles(["staff", "admin"]),
            all([role("staff"), role("admin")]),
        ),
        (
            RequireLayer::all_scopes(["a:read", "a:write"]),
            all([scope("a:read"), scope("a:write")]),
        ),
        (RequireLayer::service(), service()),
        (RequireLayer::from(scope("a:read")), scope("a:read")),
    ];
    for (layer, requirement) in cases {
        for identity in [
            None,
            Some(reader.clone()),
            Some(Identity::service("worker")),
        ] {
            let expected = requirement.check(identity.as_ref()).map_err(|e| e.status());
            let got = status(layer.clone(), identity).await;
            assert_eq!(
                got,
                expected.map_or_else(|status| status, |()| StatusCode::OK),
                "{requirement:?}"
            );
        }
    }
}
