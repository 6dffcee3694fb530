//! Interop with the Python libraries the seed applications run today: PyJWT (Semantik),
//! python-jose (SecondBrain), passlib's bcrypt (Semantik, SecondBrain) and argon2-cffi.
//!
//! Each test hands JSON to a short Python program on stdin and reads JSON back, so both sides
//! run their real code. `scripts/test.sh` installs the pinned packages; outside CI a missing
//! package skips with a loud message, with `CI=true` it fails.

use std::io::Write;
use std::process::{Command, Stdio};

use portcullis::store::{MemoryStore, NewUser, User};
use portcullis::token::jwt::{Algorithm, JwtKey, JwtKeys};
use portcullis::{AccessTokens, Auth, InvalidToken, JwtConfig};
use portcullis::{PasswordPolicy, Passwords, Verification};
use serde_json::{Value, json};

const SECRET: &str = "a-shared-hs256-secret-of-32-bytes!!";
const ISSUER: &str = "https://semantik.example";
const AUDIENCE: &str = "semantik-api";

/// Whether the Python side can run: the interpreter and every module the tests import.
fn python_ready() -> bool {
    let probe = Command::new("python3")
        .args(["-c", "import jwt, jose, passlib.hash, argon2, cryptography"])
        .output();
    match probe {
        Ok(output) if output.status.success() => true,
        _ if std::env::var("CI").as_deref() == Ok("true") => panic!(
            "python3 with PyJWT, python-jose, passlib, argon2-cffi and cryptography is missing \
             and CI=true: the interop tests must run; ./scripts/test.sh installs them"
        ),
        _ => {
            eprintln!(
                "SKIPPED: python3 with PyJWT, python-jose, passlib and argon2-cffi is missing; \
                 run ./scripts/test.sh to install them"
            );
            false
        }
    }
}

/// Runs `program` with `input` as JSON on stdin; its stdout must be one JSON value.
fn python(program: &str, input: &Value) -> Value {
    let mut child = Command::new("python3")
        .args(["-c", program])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 starts");
    child
        .stdin
        .take()
        .expect("a stdin pipe")
        .write_all(input.to_string().as_bytes())
        .expect("the input is written");
    let output = child.wait_with_output().expect("python3 finishes");
    assert!(
        output.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("python printed JSON")
}

fn key_file(name: &str) -> String {
    let path = format!("tests/keys/{name}");
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

async fn user_and_auth() -> (Auth, User) {
    let auth = Auth::builder(MemoryStore::new()).build();
    let user = auth
        .users()
        .create_user(NewUser::new("ada"), auth.now())
        .await
        .unwrap();
    (auth, user)
}

fn hs256(auth: &Auth) -> AccessTokens {
    let keys = JwtKeys::new(JwtKey::hs256(SECRET.as_bytes()).unwrap()).unwrap();
    AccessTokens::new(auth, keys, JwtConfig::new(ISSUER, AUDIENCE))
}

/// Decodes `token` with PyJWT and, when `jose` is set, with python-jose; prints both claim sets.
const DECODE: &str = r#"
import json, sys
import jwt, jose.jwt
i = json.load(sys.stdin)
opts = dict(algorithms=[i["alg"]], audience=i["aud"], issuer=i["iss"])
out = {"pyjwt": jwt.decode(i["token"], i["key"], **opts),
       "pyjwt_header": jwt.get_unverified_header(i["token"])}
if i["jose"]:
    out["jose"] = jose.jwt.decode(i["token"], i["key"], **opts)
print(json.dumps(out))
"#;

#[tokio::test]
async fn portcullis_hs256_tokens_verify_in_pyjwt_and_python_jose() {
    if !python_ready() {
        return;
    }
    let (auth, user) = user_and_auth().await;
    let tokens = hs256(&auth);
    let issued = tokens.issue(&user, None).unwrap();
    let token = issued.token.into_exposed();
    let claims = tokens.verify(&token).unwrap();

    let decoded = python(
        DECODE,
        &json!({"token": token, "key": SECRET, "alg": "HS256", "aud": AUDIENCE, "iss": ISSUER,
                "jose": true}),
    );
    for library in ["pyjwt", "jose"] {
        let theirs = &decoded[library];
        assert_eq!(theirs["sub"], user.id.to_string(), "{library}");
        assert_eq!(theirs["iss"], ISSUER, "{library}");
        assert_eq!(theirs["aud"], AUDIENCE, "{library}");
        assert_eq!(theirs["jti"], claims.jti, "{library}");
        assert_eq!(theirs["exp"], claims.exp, "{library}");
        assert_eq!(theirs["iat"], claims.iat, "{library}");
        assert_eq!(theirs["token_use"], "access", "{library}");
    }
    assert_eq!(decoded["pyjwt_header"]["alg"], "HS256");
    assert_eq!(decoded["pyjwt_header"]["typ"], "at+jwt");
}

#[tokio::test]
async fn portcullis_eddsa_tokens_verify_in_pyjwt_with_the_public_key() {
    if !python_ready() {
        return;
    }
    let (auth, user) = user_and_auth().await;
    let private = JwtKey::private_pem(Algorithm::EdDSA, key_file("ed25519.pem").as_bytes())
        .unwrap()
        .kid("ed-1");
    let tokens = AccessTokens::new(
        &auth,
        JwtKeys::new(private).unwrap(),
        JwtConfig::new(ISSUER, AUDIENCE),
    );
    let token = tokens.issue(&user, None).unwrap().token.into_exposed();

    // python-jose has no EdDSA; PyJWT (with `cryptography`) does.
    let decoded = python(
        DECODE,
        &json!({"token": token, "key": key_file("ed25519.pub.pem"), "alg": "EdDSA",
                "aud": AUDIENCE, "iss": ISSUER, "jose": false}),
    );
    assert_eq!(decoded["pyjwt"]["sub"], user.id.to_string());
    assert_eq!(decoded["pyjwt_header"]["kid"], "ed-1");
}

/// Encodes `claims` with `headers` in both libraries; prints both tokens.
const ENCODE: &str = r#"
import json, sys
import jwt, jose.jwt
i = json.load(sys.stdin)
print(json.dumps({
    "pyjwt": jwt.encode(i["claims"], i["key"], algorithm="HS256", headers=i["headers"]),
    "jose": jose.jwt.encode(i["claims"], i["key"], algorithm="HS256", headers=i["headers"]),
}))
"#;

#[tokio::test]
async fn pyjwt_and_python_jose_tokens_with_the_access_token_profile_verify_in_portcullis() {
    if !python_ready() {
        return;
    }
    let (auth, user) = user_and_auth().await;
    let tokens = hs256(&auth);
    let now = auth.now().unix_timestamp();
    let claims = json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": user.id.to_string(), "iat": now,
        "exp": now + 600, "jti": "from-python", "token_use": "access",
    });
    let encoded = python(
        ENCODE,
        &json!({"claims": claims, "key": SECRET, "headers": {"typ": "at+jwt"}}),
    );
    for library in ["pyjwt", "jose"] {
        let token = encoded[library].as_str().unwrap();
        let verified = tokens
            .verify(token)
            .unwrap_or_else(|e| panic!("{library}: {e}"));
        assert_eq!(verified.jti, "from-python", "{library}");
        assert_eq!(verified.sub, user.id.to_string(), "{library}");
    }
}

/// What Semantik's PyJWT code and SecondBrain's python-jose code issue today
/// (`{"sub": username, "type": "access", "exp": …}`) is refused, with the reason RFC 8725 gives:
/// no explicit type (§3.11); given the type, no audience (§3.9), so a token minted for another
/// service cannot pass. Deployments moving over issue new tokens at the next login.
#[tokio::test]
async fn seed_application_tokens_are_refused_for_documented_reasons() {
    if !python_ready() {
        return;
    }
    let (auth, _) = user_and_auth().await;
    let tokens = hs256(&auth);
    let exp = auth.now().unix_timestamp() + 600;
    let semantik = json!({"sub": "alice", "type": "access", "exp": exp});
    let untyped = python(
        ENCODE,
        &json!({"claims": semantik, "key": SECRET, "headers": {}}),
    );
    let typed = python(
        ENCODE,
        &json!({"claims": semantik, "key": SECRET, "headers": {"typ": "at+jwt"}}),
    );
    for library in ["pyjwt", "jose"] {
        let token = untyped[library].as_str().unwrap();
        assert_eq!(
            tokens.verify(token).unwrap_err(),
            InvalidToken::WrongType,
            "{library}"
        );
        let token = typed[library].as_str().unwrap();
        assert_eq!(
            tokens.verify(token).unwrap_err(),
            InvalidToken::BadClaim("aud"),
            "{library}"
        );
    }
}

/// Hashes `password` with passlib's bcrypt and argon2-cffi, and checks `portcullis_hash` with
/// argon2-cffi.
const HASHES: &str = r#"
import json, sys
from passlib.hash import bcrypt
import argon2
i = json.load(sys.stdin)
hasher = argon2.PasswordHasher()
try:
    ours_ok = hasher.verify(i["portcullis_hash"], i["password"])
except argon2.exceptions.VerifyMismatchError:
    ours_ok = False
try:
    ours_wrong = hasher.verify(i["portcullis_hash"], i["password"] + "!")
except argon2.exceptions.VerifyMismatchError:
    ours_wrong = False
print(json.dumps({
    "bcrypt": bcrypt.using(rounds=4).hash(i["password"]),
    "argon2": hasher.hash(i["password"]),
    "ours_ok": ours_ok,
    "ours_wrong": ours_wrong,
}))
"#;

#[tokio::test]
async fn passlib_bcrypt_and_argon2_cffi_hashes_verify_and_ours_verify_in_argon2_cffi() {
    if !python_ready() {
        return;
    }
    let passwords = Passwords::new(PasswordPolicy::default());
    let password = "correct horse battery staple";
    let ours = passwords.hash(password).await.unwrap();
    let theirs = python(
        HASHES,
        &json!({"password": password, "portcullis_hash": ours}),
    );
    assert_eq!(theirs["ours_ok"], true, "argon2-cffi accepts our hash");
    assert_eq!(
        theirs["ours_wrong"], false,
        "argon2-cffi refuses a wrong password"
    );

    let bcrypt = theirs["bcrypt"].as_str().unwrap();
    assert!(bcrypt.starts_with("$2b$04$"), "{bcrypt}");
    assert_eq!(
        passwords.verify(password, bcrypt).await.unwrap(),
        Verification::Match { needs_rehash: true },
        "a legacy bcrypt hash verifies and asks to be replaced"
    );
    assert_eq!(
        passwords.verify("wrong", bcrypt).await.unwrap(),
        Verification::Mismatch
    );

    let argon2 = theirs["argon2"].as_str().unwrap();
    assert!(matches!(
        passwords.verify(password, argon2).await.unwrap(),
        Verification::Match { .. }
    ));
    assert_eq!(
        passwords.verify("wrong", argon2).await.unwrap(),
        Verification::Mismatch
    );
}
