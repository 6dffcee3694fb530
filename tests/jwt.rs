//! Access-token verification: one test per rejection RFC 8725 and the issue list, plus the
//! positive paths for every key type.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::EncodingKey;
use portcullis::clock::ManualClock;
use portcullis::store::{MemoryStore, NewUser, User};
use portcullis::token::jwt::{Algorithm, JwtKey, JwtKeys, KeyError};
use portcullis::{AccessTokens, Auth, InvalidToken, JwtConfig};
use serde_json::{Value, json};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

/// Reads a key relative to the package root, which `cargo test` makes the working directory.
///
/// Not `env!("CARGO_MANIFEST_DIR")`: cargo reuses a build cache across clones of the workspace,
/// so a path baked in at compile time can name a clone that no longer exists.
fn key_file(name: &str) -> Vec<u8> {
    let path = format!("tests/keys/{name}");
    std::fs::read(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

struct Fixture {
    auth: Auth,
    clock: std::sync::Arc<ManualClock>,
    user: User,
}

async fn fixture() -> Fixture {
    let clock = std::sync::Arc::new(ManualClock::starting_now());
    let auth = Auth::builder(MemoryStore::new())
        .shared_clock(clock.clone())
        .build();
    let user = auth
        .users()
        .create_user(NewUser::new("ada"), auth.now())
        .await
        .unwrap();
    Fixture { auth, clock, user }
}

fn tokens(f: &Fixture, keys: JwtKeys) -> AccessTokens {
    AccessTokens::new(&f.auth, keys, JwtConfig::new("issuer", "audience"))
}

fn hs256(f: &Fixture) -> AccessTokens {
    tokens(f, JwtKeys::new(JwtKey::hs256(SECRET).unwrap()).unwrap())
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// Signs arbitrary header and claims with `secret` as an HS256 key, as an attacker would.
fn forge(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let signature = jsonwebtoken::crypto::sign(
        input.as_bytes(),
        &EncodingKey::from_secret(secret),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{input}.{signature}")
}

fn claims(f: &Fixture) -> Value {
    let now = f.auth.now().unix_timestamp();
    json!({
        "iss": "issuer", "aud": "audience", "sub": f.user.id.to_string(),
        "iat": now, "exp": now + 600, "jti": "j1", "token_use": "access"
    })
}

fn header() -> Value {
    json!({"alg": "HS256", "typ": "at+jwt"})
}

fn with(mut value: Value, key: &str, new: Value) -> Value {
    value[key] = new;
    value
}

fn without(mut value: Value, key: &str) -> Value {
    value.as_object_mut().unwrap().remove(key);
    value
}

#[tokio::test]
async fn a_well_formed_token_verifies() {
    let f = fixture().await;
    let token = forge(&header(), &claims(&f), SECRET);
    assert!(hs256(&f).verify(&token).is_ok());
}

#[tokio::test]
async fn rfc8725_3_1_alg_none_is_rejected_with_or_without_a_signature() {
    let f = fixture().await;
    let tokens = hs256(&f);
    let unsigned = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "at+jwt"})),
        b64(&claims(&f))
    );
    assert!(tokens.verify(&unsigned).is_err());
    for alg in ["none", "None", "NONE", "nOnE"] {
        let token = forge(&with(header(), "alg", json!(alg)), &claims(&f), SECRET);
        assert_eq!(
            tokens.verify(&token),
            Err(InvalidToken::DisallowedAlgorithm),
            "{alg}"
        );
    }
}

#[tokio::test]
async fn rfc8725_2_1_algorithm_confusion_hs256_signed_with_the_public_key_is_rejected() {
    let f = fixture().await;
    for (alg, private, public) in [
        (Algorithm::ES256, "es256.pem", "es256.pub.pem"),
        (Algorithm::EdDSA, "ed25519.pem", "ed25519.pub.pem"),
        (Algorithm::RS256, "rs256.pem", "rs256.pub.pem"),
    ] {
        let keys = JwtKeys::new(JwtKey::private_pem(alg, &key_file(private)).unwrap()).unwrap();
        let tokens = tokens(&f, keys);
        // The attacker knows the public key and uses its bytes as an HMAC secret.
        let forged = forge(&header(), &claims(&f), &key_file(public));
        assert_eq!(
            tokens.verify(&forged),
            Err(InvalidToken::DisallowedAlgorithm),
            "{alg:?}"
        );
        // The genuine key still works.
        let issued = tokens.issue(&f.user, None).unwrap();
        assert!(tokens.verify(issued.token.expose()).is_ok(), "{alg:?}");
    }
}

#[tokio::test]
async fn a_verification_only_public_key_accepts_tokens_of_its_private_half() {
    let f = fixture().await;
    let signer = tokens(
        &f,
        JwtKeys::new(JwtKey::private_pem(Algorithm::EdDSA, &key_file("ed25519.pem")).unwrap())
            .unwrap(),
    );
    let verifier = tokens(
        &f,
        JwtKeys::verify_only(
            JwtKey::public_pem(Algorithm::EdDSA, &key_file("ed25519.pub.pem")).unwrap(),
        ),
    );
    let issued = signer.issue(&f.user, None).unwrap();
    assert!(verifier.verify(issued.token.expose()).is_ok());
    assert!(
        verifier.issue(&f.user, None).is_err(),
        "a public key cannot sign"
    );
}

#[tokio::test]
async fn unknown_kid_and_kid_injection_are_rejected() {
    let f = fixture().await;
    let keys = JwtKeys::new(JwtKey::hs256(SECRET).unwrap().kid("2026-11")).unwrap();
    let tokens = tokens(&f, keys);
    for kid in [
        "2026-10",
        "../../../../dev/null",
        "' OR '1'='1",
        "",
        "2026-11\u{0000}",
    ] {
        let token = forge(&with(header(), "kid", json!(kid)), &claims(&f), SECRET);
        assert_eq!(
            tokens.verify(&token),
            Err(InvalidToken::UnknownKey),
            "{kid:?}"
        );
    }
    let token = forge(
        &with(header(), "kid", json!("2026-11")),
        &claims(&f),
        SECRET,
    );
    assert!(tokens.verify(&token).is_ok());
}

#[tokio::test]
async fn key_rotation_verifies_old_kids_until_the_old_key_is_removed() {
    let f = fixture().await;
    let old = JwtKey::hs256(&[1; 32]).unwrap().kid("old");
    let new = JwtKey::hs256(&[2; 32]).unwrap().kid("new");
    let before = tokens(&f, JwtKeys::new(old.clone()).unwrap());
    let token = before.issue(&f.user, None).unwrap().token;

    let during = tokens(
        &f,
        JwtKeys::new(new.clone()).unwrap().also_verify(old).unwrap(),
    );
    assert!(during.verify(token.expose()).is_ok());
    let fresh = during.issue(&f.user, None).unwrap().token;
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(fresh.expose().split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], "new");

    let after = tokens(&f, JwtKeys::new(new).unwrap());
    assert_eq!(after.verify(token.expose()), Err(InvalidToken::UnknownKey));
}

#[tokio::test]
async fn key_sets_refuse_ambiguity_and_mixing() {
    let a = JwtKey::hs256(&[1; 32]).unwrap();
    let b = JwtKey::hs256(&[2; 32]).unwrap();
    assert!(matches!(
        JwtKeys::new(a.clone()).unwrap().also_verify(b.clone()),
        Err(KeyError::AmbiguousKid(_))
    ));
    let a = a.kid("x");
    assert!(matches!(
        JwtKeys::new(a.clone()).unwrap().also_verify(b.kid("x")),
        Err(KeyError::AmbiguousKid(_))
    ));
    let ed = JwtKey::public_pem(Algorithm::EdDSA, &key_file("ed25519.pub.pem"))
        .unwrap()
        .kid("ed");
    assert!(matches!(
        JwtKeys::new(a).unwrap().also_verify(ed),
        Err(KeyError::MixedKeySet)
    ));
}

#[tokio::test]
async fn weak_keys_are_refused_at_start_up() {
    assert!(matches!(
        JwtKey::hs256(&[0; 31]),
        Err(KeyError::SecretTooShort { .. })
    ));
    assert!(matches!(
        JwtKey::hmac(Algorithm::HS512, &[0; 63]),
        Err(KeyError::SecretTooShort { .. })
    ));
    assert!(JwtKey::private_pem(Algorithm::RS256, &key_file("rsa1024.pem")).is_err());
    let rsa1024 = JwtKey::public_pem(Algorithm::RS256, &key_file("rsa1024.pub.pem"));
    assert!(
        matches!(rsa1024, Err(KeyError::RsaTooSmall(1024))),
        "{rsa1024:?}"
    );
    // A P-384 key configured as ES256 fails its probe instead of failing at the first request.
    assert!(JwtKey::private_pem(Algorithm::ES256, &key_file("es384.pem")).is_err());
    assert!(JwtKey::private_pem(Algorithm::ES384, &key_file("es384.pem")).is_ok());
    assert!(JwtKey::hmac(Algorithm::ES256, &[0; 64]).is_err());
}

#[tokio::test]
async fn expired_tokens_are_rejected_after_the_leeway() {
    let f = fixture().await;
    let tokens = hs256(&f);
    let issued = tokens.issue(&f.user, None).unwrap();
    f.clock.advance(Duration::from_secs(15 * 60 + 29));
    assert!(
        tokens.verify(issued.token.expose()).is_ok(),
        "within 30 s leeway"
    );
    f.clock.advance(Duration::from_secs(2));
    assert_eq!(
        tokens.verify(issued.token.expose()),
        Err(InvalidToken::Expired)
    );
}

#[tokio::test]
async fn nbf_and_iat_in_the_future_are_rejected() {
    let f = fixture().await;
    let tokens = hs256(&f);
    let now = f.auth.now().unix_timestamp();
    let token = forge(
        &header(),
        &with(claims(&f), "nbf", json!(now + 120)),
        SECRET,
    );
    assert_eq!(tokens.verify(&token), Err(InvalidToken::NotYetValid));
    let token = forge(
        &header(),
        &with(claims(&f), "iat", json!(now + 120)),
        SECRET,
    );
    assert_eq!(tokens.verify(&token), Err(InvalidToken::IssuedInFuture));
    let token = forge(&header(), &with(claims(&f), "nbf", json!(now + 10)), SECRET);
    assert!(tokens.verify(&token).is_ok(), "within leeway");
}

#[tokio::test]
async fn wrong_issuer_and_audience_are_rejected() {
    let f = fixture().await;
    let tokens = hs256(&f);
    let token = forge(
        &header(),
        &with(claims(&f), "iss", json!("someone-else")),
        SECRET,
    );
    assert_eq!(tokens.verify(&token), Err(InvalidToken::WrongIssuer));
    let token = forge(
        &header(),
        &with(claims(&f), "aud", json!("other-api")),
        SECRET,
    );
    assert_eq!(tokens.verify(&token), Err(InvalidToken::WrongAudience));
    let token = forge(
        &header(),
        &with(claims(&f), "aud", json!(["other", "audience"])),
        SECRET,
    );
    assert!(
        tokens.verify(&token).is_ok(),
        "an array containing the audience is accepted"
    );
}

#[tokio::test]
async fn missing_exp_or_sub_and_string_typed_exp_are_rejected() {
    let f = fixture().await;
    let tokens = hs256(&f);
    for claim in ["exp", "sub", "iat", "iss", "aud", "jti"] {
        let token = forge(&header(), &without(claims(&f), claim), SECRET);
        assert_eq!(
            tokens.verify(&token),
            Err(InvalidToken::BadClaim(claim)),
            "{claim}"
        );
    }
    // CVE-2026-25537: a string `exp` must not make the expiry check disappear.
    let token = forge(
        &header(),
        &with(claims(&f), "exp", json!("99999999999")),
        SECRET,
    );
    assert_eq!(tokens.verify(&token), Err(InvalidToken::BadClaim("exp")));
}

#[tokio::test]
async fn rfc8725_3_11_a_refresh_or_id_token_cannot_pass_as_an_access_token() {
    let f = fixture().await;
    let tokens = hs256(&f);
    // Semantik's pitfall: a refresh JWT signed with the same key.
    let refresh = forge(
        &header(),
        &with(claims(&f), "token_use", json!("refresh")),
        SECRET,
    );
    assert_eq!(tokens.verify(&refresh), Err(InvalidToken::WrongType));
    let untyped = forge(&header(), &without(claims(&f), "token_use"), SECRET);
    assert_eq!(
        tokens.verify(&untyped),
        Err(InvalidToken::BadClaim("token_use"))
    );
    for typ in [json!("JWT"), json!("id+jwt"), Value::Null] {
        let token = forge(&with(header(), "typ", typ.clone()), &claims(&f), SECRET);
        assert_eq!(tokens.verify(&token), Err(InvalidToken::WrongType), "{typ}");
    }
    let token = forge(&without(header(), "typ"), &claims(&f), SECRET);
    assert_eq!(tokens.verify(&token), Err(InvalidToken::WrongType));
    let token = forge(
        &with(header(), "typ", json!("application/AT+JWT")),
        &claims(&f),
        SECRET,
    );
    assert!(
        tokens.verify(&token).is_ok(),
        "RFC 7515 §4.1.9: typ is case-insensitive"
    );
}

#[tokio::test]
async fn oversized_tokens_are_rejected_before_parsing() {
    let f = fixture().await;
    let tokens = hs256(&f);
    let padded = with(claims(&f), "pad", json!("x".repeat(9000)));
    let token = forge(&header(), &padded, SECRET);
    assert_eq!(tokens.verify(&token), Err(InvalidToken::TooLarge));
    let garbage = "a".repeat(1 << 20);
    assert_eq!(tokens.verify(&garbage), Err(InvalidToken::TooLarge));
}

#[tokio::test]
async fn rfc7515_4_1_11_crit_headers_are_rejected() {
    let f = fixture().await;
    let tokens = hs256(&f);
    for crit in [json!(["exp"]), json!([]), Value::Null, json!("b64")] {
        let token = forge(&with(header(), "crit", crit.clone()), &claims(&f), SECRET);
        assert_eq!(
            tokens.verify(&token),
            Err(InvalidToken::CriticalHeader),
            "{crit}"
        );
    }
}

#[tokio::test]
async fn bad_base64_and_bad_json_are_malformed() {
    let f = fixture().await;
    let tokens = hs256(&f);
    let good = forge(&header(), &claims(&f), SECRET);
    let parts: Vec<&str> = good.split('.').collect();
    let cases = [
        format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}", parts[0], parts[1], "!!!"),
        format!("{}.{}", parts[0], parts[1]),
        format!("{good}.extra"),
        format!("..{}", parts[2]),
        "not-a-jwt-at-all".to_owned(),
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode("{not json"),
            parts[1],
            parts[2]
        ),
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode("[1,2]"),
            parts[1],
            parts[2]
        ),
    ];
    for token in &cases {
        assert_eq!(
            tokens.verify(token),
            Err(InvalidToken::Malformed),
            "{token}"
        );
    }
    // Claims that are not JSON, behind a valid signature.
    let input = format!("{}.{}", b64(&header()), URL_SAFE_NO_PAD.encode("{\"sub\":"));
    let sig = jsonwebtoken::crypto::sign(
        input.as_bytes(),
        &EncodingKey::from_secret(SECRET),
        Algorithm::HS256,
    )
    .unwrap();
    assert_eq!(
        tokens.verify(&format!("{input}.{sig}")),
        Err(InvalidToken::Malformed)
    );
}

#[tokio::test]
async fn a_tampered_payload_fails_the_signature() {
    let f = fixture().await;
    let tokens = hs256(&f);
    let good = forge(&header(), &claims(&f), SECRET);
    let parts: Vec<&str> = good.split('.').collect();
    let admin = b64(&with(claims(&f), "sub", json!("999")));
    assert_eq!(
        tokens.verify(&format!("{}.{admin}.{}", parts[0], parts[2])),
        Err(InvalidToken::BadSignature)
    );
    let other_secret = forge(&header(), &claims(&f), b"another-secret-of-thirty-two-byte");
    assert_eq!(
        tokens.verify(&other_secret),
        Err(InvalidToken::BadSignature)
    );
}

#[tokio::test]
async fn issued_tokens_carry_the_documented_claims() {
    let f = fixture().await;
    let tokens = hs256(&f);
    let family = portcullis::store::FamilyId::new("session-1");
    let issued = tokens.issue(&f.user, Some(&family)).unwrap();
    let claims = tokens.verify(issued.token.expose()).unwrap();
    assert_eq!(claims.sub, f.user.id.to_string());
    assert_eq!(claims.sid.as_deref(), Some("session-1"));
    assert_eq!(claims.token_use, "access");
    assert_eq!(claims.exp - claims.iat, 15 * 60);
    assert_eq!(issued.expires_at.unix_timestamp(), claims.exp);
    assert_eq!(claims.jti.len(), 32);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any issued token verifies, and changing any single character of it makes it fail.
        #[test]
        fn any_single_character_change_of_an_issued_token_is_rejected(
            position in any::<prop::sample::Index>(),
            replacement in prop::sample::select(b"ABCabc012-_.=".to_vec()),
            username in "[a-z]{1,12}",
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            runtime.block_on(async {
                let f = fixture().await;
                let tokens = hs256(&f);
                let mut user = f.user.clone();
                user.username = username;
                let token = tokens.issue(&user, None).unwrap().token.into_exposed();
                prop_assert!(tokens.verify(&token).is_ok());
                let index = position.index(token.len());
                prop_assume!(token.as_bytes()[index] != replacement);
                let mut bytes = token.into_bytes();
                bytes[index] = replacement;
                let changed = String::from_utf8(bytes).unwrap();
                // Base64url has slack bits in the last character of each part; a change that
                // decodes to the same bytes is the same token, which the strict decoder refuses.
                prop_assert!(tokens.verify(&changed).is_err(), "accepted {}", changed);
                Ok(())
            })?;
        }

        /// Arbitrary claims behind a valid signature never panic the verifier, and whatever it
        /// accepts is a well-typed access token for this issuer and audience.
        #[test]
        fn arbitrary_signed_claims_are_accepted_only_when_well_typed(
            exp in prop_oneof![Just(json!(4_000_000_000i64)), Just(json!("4000000000")), Just(json!(1.5)), Just(Value::Null)],
            token_use in prop_oneof![Just(json!("access")), Just(json!("refresh")), Just(json!(1))],
            aud in prop_oneof![Just(json!("audience")), Just(json!(["x", "audience"])), Just(json!(["x"])), Just(json!(7))],
            sub in prop_oneof![Just(json!("1")), Just(json!(1)), Just(json!("not-a-number"))],
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            runtime.block_on(async {
                let f = fixture().await;
                let tokens = hs256(&f);
                let mut claims = claims(&f);
                claims["exp"] = exp.clone();
                claims["token_use"] = token_use.clone();
                claims["aud"] = aud.clone();
                claims["sub"] = sub.clone();
                let result = tokens.verify(&forge(&header(), &claims, SECRET));
                let well_typed = exp.is_i64() && token_use == "access" && sub.is_string()
                    && (aud == "audience" || aud == json!(["x", "audience"]));
                prop_assert_eq!(result.is_ok(), well_typed, "{}", claims);
                Ok(())
            })?;
        }
    }
}

/// Hardening item 9: the verified-token cache was shared by every `AccessTokens` of one `Auth`,
/// so a token one verifier had checked passed another (other keys, issuer or audience) from
/// the cache, with no signature, issuer or audience check of its own.
#[tokio::test]
async fn a_token_verified_by_one_verifier_is_checked_again_by_another() {
    use portcullis::source::TokenResolver;
    let f = fixture().await;
    let ours = hs256(&f);
    let other_audience = AccessTokens::new(
        &f.auth,
        JwtKeys::new(JwtKey::hs256(SECRET).unwrap()).unwrap(),
        JwtConfig::new("issuer", "another-audience"),
    );
    let partner = AccessTokens::new(
        &f.auth,
        JwtKeys::new(JwtKey::hs256(b"a partner's secret of 32 bytes!!").unwrap()).unwrap(),
        JwtConfig::new("issuer", "audience"),
    );
    let token = ours.issue(&f.user, None).unwrap().token.into_exposed();
    for _ in 0..2 {
        assert!(
            ours.resolve(&token).await.is_ok(),
            "its own verifier accepts it"
        );
        assert!(
            matches!(ours.resolve_now(&token), Some(Ok(_))),
            "and caches it"
        );
        for (name, verifier, reason) in [
            (
                "another audience",
                &other_audience,
                InvalidToken::WrongAudience,
            ),
            ("other keys", &partner, InvalidToken::BadSignature),
        ] {
            let cached = verifier.resolve_now(&token);
            assert!(
                !matches!(cached, Some(Ok(_))),
                "{name}: accepted from the other verifier's cache"
            );
            let resolved = verifier.resolve(&token).await;
            assert!(
                matches!(&resolved, Err(portcullis::AuthError::InvalidToken(r)) if *r == reason),
                "{name}: {resolved:?}"
            );
        }
    }
}
