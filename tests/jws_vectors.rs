//! Third-party JWS test vectors: Wycheproof and RFC 7515 Appendix A.
//!
//! Every `valid` Wycheproof case of a supported algorithm must verify and every `invalid` one
//! must be rejected, except the four cases the vectors' README documents as mislabelled.

use std::collections::BTreeMap;

use portcullis::token::jwt::{DEFAULT_MAX_TOKEN_LEN, JwtKey, JwtKeys};
use serde_json::Value;

/// Reads a vector file relative to the package root, which `cargo test` makes the working
/// directory (a compile-time `env!("CARGO_MANIFEST_DIR")` can outlive the clone it names when
/// the build cache is shared).
fn load(path: &str) -> Value {
    let path = format!("tests/vectors/{path}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// tcIds where portcullis deliberately disagrees with the label; the verifier is not loosened.
///
/// * 367, 370, 372, 373: labels contradict RFC 7515 (C2SP/wycheproof issue #236; see
///   tests/vectors/wycheproof/README.md).
/// * 346, 350: the group's JWK declares `"alg": "PS256"` but the token is `PS384`. RFC 8725
///   §3.1 binds each key to exactly one algorithm and RFC 7517 §4.4 names it in `alg`, so a
///   token in another algorithm is refused, however the signature would verify.
const DEVIATIONS: [u64; 6] = [346, 350, 367, 370, 372, 373];

/// Key algorithms jsonwebtoken cannot verify: P-521 (`ES512`, labelled `ES521` in the JWKs).
fn unsupported_group(group: &Value) -> bool {
    let alg = group["private"]["alg"].as_str().unwrap_or_default();
    alg == "ES521" || alg == "ES512"
}

#[test]
fn wycheproof_jws_every_supported_valid_case_verifies_and_every_invalid_case_fails() {
    let vectors = load("wycheproof/json_web_signature_test.json");
    let mut outcome: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for group in vectors["testGroups"].as_array().unwrap() {
        let key_json = if group["public"].is_object() {
            &group["public"]
        } else {
            &group["private"]
        };
        let key = JwtKey::from_jwk(&key_json.to_string());
        for test in group["tests"].as_array().unwrap() {
            let id = test["tcId"].as_u64().unwrap();
            let expected_valid = test["result"] == "valid";
            let Ok(key) = &key else {
                if unsupported_group(group) {
                    *outcome
                        .entry("skipped: unsupported algorithm ES512")
                        .or_default() += 1;
                } else if expected_valid {
                    failures.push(format!(
                        "tc {id}: key refused ({:?}) but case is valid",
                        key.as_ref().err()
                    ));
                } else {
                    *outcome
                        .entry("rejected: key unusable for signatures")
                        .or_default() += 1;
                }
                continue;
            };
            let keys = JwtKeys::verify_only(key.clone());
            let verified = keys
                .verify_signature(test["jws"].as_str().unwrap(), DEFAULT_MAX_TOKEN_LEN)
                .is_ok();
            if DEVIATIONS.contains(&id) {
                assert_ne!(
                    verified, expected_valid,
                    "tc {id} is a documented deviation"
                );
                *outcome.entry("documented label deviation").or_default() += 1;
            } else if verified != expected_valid {
                failures.push(format!(
                    "tc {id} ({}): expected {}, got verified={verified}",
                    test["comment"], test["result"]
                ));
            } else {
                *outcome
                    .entry(if verified {
                        "valid: verified"
                    } else {
                        "invalid: rejected"
                    })
                    .or_default() += 1;
            }
        }
    }
    println!("wycheproof JWS outcome: {outcome:#?}");
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(
        outcome.values().sum::<usize>(),
        401,
        "every case was examined"
    );
    assert!(outcome["valid: verified"] >= 40, "{outcome:?}");
}

#[test]
fn wycheproof_jwk_sets_valid_sets_verify_and_weak_or_misused_keys_are_refused() {
    // Short, empty or AES secrets, 1024-bit RSA, exponent 1, ROCA moduli, encryption keys,
    // unsupported curves, sets mixing HMAC and public keys and sets with duplicate kids must
    // be refused when the set is built or fail to verify; valid sets must verify.
    let vectors = load("wycheproof/json_web_key_test.json");
    let mut checked = 0;
    for group in vectors["testGroups"].as_array().unwrap() {
        let set = if group["public"].is_object() {
            &group["public"]
        } else {
            &group["private"]
        };
        for test in group["tests"].as_array().unwrap() {
            let jws = test["jws"].as_str().unwrap_or_default();
            let keys = set["keys"].as_array().cloned().unwrap_or_default();
            let verified =
                build_set(&keys).is_some_and(|set| set.verify_signature(jws, 8192).is_ok());
            assert_eq!(
                verified,
                test["result"] == "valid",
                "tc {} ({})",
                test["tcId"],
                test["comment"]
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 26);
}

fn build_set(keys: &[Value]) -> Option<JwtKeys> {
    let mut parsed = keys.iter().map(|k| JwtKey::from_jwk(&k.to_string()));
    let first = parsed.next()?.ok()?;
    parsed.try_fold(JwtKeys::verify_only(first), |set, key| {
        set.also_verify(key.ok()?).ok()
    })
}

#[test]
fn rfc7515_appendix_a_examples_verify_and_fail_after_any_byte_change() {
    let vectors = load("rfc7515_examples.json");
    let mut verified = 0;
    for example in vectors["examples"].as_array().unwrap() {
        let name = example["rfc_section"].as_str().unwrap_or("?").to_owned();
        let Some(compact) = example["compact"].as_str() else {
            continue;
        };
        let jwk = if example["public_jwk"].is_object() {
            &example["public_jwk"]
        } else {
            &example["jwk"]
        };
        let mut jwk = jwk.clone();
        let alg = example["alg"].as_str().unwrap_or_default().to_owned();
        if alg == "none" || alg == "ES512" {
            // A.5 (unsecured) must be refused; A.4 (P-521) is not supported by this crate.
            let any_key = JwtKeys::verify_only(JwtKey::hs256(&[0u8; 32]).unwrap());
            assert!(any_key.verify_signature(compact, 8192).is_err(), "{name}");
            continue;
        }
        jwk["alg"] = Value::String(alg.clone());
        let keys = JwtKeys::verify_only(
            JwtKey::from_jwk(&jwk.to_string()).unwrap_or_else(|e| panic!("{name}: {e}")),
        );
        assert!(
            keys.verify_signature(compact, 8192).is_ok(),
            "{name} must verify"
        );
        verified += 1;
        // Flip one bit in every byte position of the signing input and the signature.
        for position in 0..compact.len() {
            let mut bytes = compact.as_bytes().to_vec();
            if bytes[position] == b'.' {
                continue;
            }
            bytes[position] ^= 0x01;
            if let Ok(tampered) = String::from_utf8(bytes) {
                assert!(
                    keys.verify_signature(&tampered, 8192).is_err(),
                    "{name} tampered at {position}"
                );
            }
        }
    }
    assert_eq!(verified, 3, "A.1 HS256, A.2 RS256, A.3 ES256");
}
