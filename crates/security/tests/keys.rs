//! Several keys at once, through the public API: every algorithm signs and
//! verifies; rotation through a key file; algorithm confusion, `alg: none`
//! and hostile `kid`s are refused with the right reason; the JWK Set holds
//! public parameters only and verifies real tokens; bad key files fail at
//! configuration time without a word of key material.
//!
//! The keys are the test-only fixtures in `tests/fixtures/keys/`.

// Test code: a failed assumption fails the test.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::{assert_invalid, assert_refused, b64url};
use fastcore_security::{
    Algorithm, Error, InvalidTokenReason, Jwk, KeyFile, KeySet, MemoryTokenStore, Security,
    SecurityConfig, SecurityConfigBuilder, SigningKey, TokenStore, TokenType, jwks_router,
};
use http_body_util::BodyExt as _;
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};
use tower::ServiceExt as _;

const AUDIENCE: &str = "keys-api";
const ISSUER: &str = "keys-auth";

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("fixtures/keys/", $name))
    };
}

const RSA_A: &str = fixture!("rsa-a.pem");
const RSA_A_PUB: &str = fixture!("rsa-a.pub.pem");
const RSA_A_PKCS1: &str = fixture!("rsa-a.pkcs1.pem");
const RSA_B: &str = fixture!("rsa-b.pem");
const RSA_B_PUB: &str = fixture!("rsa-b.pub.pem");
const RSA_1024: &str = fixture!("rsa-1024.pem");
const P256_A: &str = fixture!("p256-a.pem");
const P256_A_PUB: &str = fixture!("p256-a.pub.pem");
const P256_B: &str = fixture!("p256-b.pem");
const P384: &str = fixture!("p384.pem");
const P384_PUB: &str = fixture!("p384.pub.pem");
const ED_A: &str = fixture!("ed25519-a.pem");
const ED_A_PUB: &str = fixture!("ed25519-a.pub.pem");
const ED_B: &str = fixture!("ed25519-b.pem");
const ED_B_PUB: &str = fixture!("ed25519-b.pub.pem");

// ------------------------------------------------------------------ helpers

fn builder() -> SecurityConfigBuilder {
    SecurityConfig::builder().audience(AUDIENCE).issuer(ISSUER)
}

fn security_on(config: SecurityConfig, store: &Arc<MemoryTokenStore>) -> Security {
    let store: Arc<dyn TokenStore> = Arc::clone(store) as Arc<dyn TokenStore>;
    Security::new(config, store).unwrap()
}

fn security_with(keys: Vec<SigningKey>) -> Security {
    let config = builder()
        .key_set(KeySet::new(keys).unwrap())
        .build()
        .unwrap();
    security_on(config, &Arc::new(MemoryTokenStore::new()))
}

fn private(kid: &str, alg: Algorithm, pem: &str) -> SigningKey {
    SigningKey::from_private_pem(kid, alg, pem.as_bytes())
        .unwrap_or_else(|e| panic!("{kid} ({alg:?}): {e}"))
}

fn public(kid: &str, alg: Algorithm, pem: &str) -> SigningKey {
    SigningKey::from_public_pem(kid, alg, pem.as_bytes())
        .unwrap_or_else(|e| panic!("{kid} ({alg:?}): {e}"))
}

fn hmac(kid: &str, alg: Algorithm, byte: u8) -> SigningKey {
    SigningKey::hmac(Some(kid.to_owned()), alg, &[byte; 64]).unwrap()
}

fn segment(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn header_of(token: &str) -> Value {
    segment(token, 0)
}

/// `token` with its header replaced (the payload and signature kept).
fn with_header(token: &str, header: &Value) -> String {
    let mut parts = token.splitn(3, '.');
    let _ = parts.next();
    let payload = parts.next().unwrap();
    let signature = parts.next().unwrap();
    format!(
        "{}.{payload}.{signature}",
        b64url(&serde_json::to_vec(header).unwrap())
    )
}

/// Issues an access token (recorded in the store) and returns it.
async fn issue(security: &Security) -> String {
    security
        .create_access_token("42", None)
        .await
        .unwrap()
        .token
}

fn temp_key_file(dir: &tempfile::TempDir, name: &str, keys: &[Value]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(
        &path,
        serde_json::to_vec_pretty(&json!({ "keys": keys })).unwrap(),
    )
    .unwrap();
    path
}

fn entry(kid: &str, alg: &str, status: &str, field: &str, value: &str) -> Value {
    json!({ "kid": kid, "alg": alg, "status": status, field: value })
}

// --------------------------------------------------- every algorithm works

#[tokio::test]
async fn every_algorithm_signs_and_verifies() {
    let cases: Vec<(Algorithm, SigningKey, Option<&str>)> = vec![
        (Algorithm::HS256, hmac("hs256", Algorithm::HS256, 1), None),
        (Algorithm::HS384, hmac("hs384", Algorithm::HS384, 2), None),
        (Algorithm::HS512, hmac("hs512", Algorithm::HS512, 3), None),
        (
            Algorithm::RS256,
            private("rs256", Algorithm::RS256, RSA_A),
            Some(RSA_A_PUB),
        ),
        (
            Algorithm::RS384,
            private("rs384", Algorithm::RS384, RSA_A),
            Some(RSA_A_PUB),
        ),
        (
            Algorithm::RS512,
            private("rs512", Algorithm::RS512, RSA_A),
            Some(RSA_A_PUB),
        ),
        (
            Algorithm::PS256,
            private("ps256", Algorithm::PS256, RSA_B),
            Some(RSA_B_PUB),
        ),
        (
            Algorithm::PS384,
            private("ps384", Algorithm::PS384, RSA_B),
            Some(RSA_B_PUB),
        ),
        (
            Algorithm::PS512,
            private("ps512", Algorithm::PS512, RSA_B),
            Some(RSA_B_PUB),
        ),
        (
            Algorithm::ES256,
            private("es256", Algorithm::ES256, P256_A),
            Some(P256_A_PUB),
        ),
        (
            Algorithm::ES384,
            private("es384", Algorithm::ES384, P384),
            Some(P384_PUB),
        ),
        (
            Algorithm::EdDSA,
            private("eddsa", Algorithm::EdDSA, ED_A),
            Some(ED_A_PUB),
        ),
    ];
    for (alg, key, public_pem) in cases {
        let kid = key.kid().unwrap().to_owned();
        assert_eq!(key.algorithm(), alg);
        assert!(key.can_sign());
        let security = security_with(vec![key]);
        assert_eq!(security.config().algorithm(), alg);

        let token = issue(&security).await;
        let header = header_of(&token);
        assert_eq!(header["alg"], format!("{alg:?}"), "{alg:?}");
        assert_eq!(header["kid"], kid.as_str(), "{alg:?}");
        let claims = security
            .validate_token(&token, Some(TokenType::Access))
            .await
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(claims.sub, "42");

        // A pair and a refresh work too.
        let pair = security.create_token_pair("42", None).await.unwrap();
        let refreshed = security
            .refresh_access_token(&pair.refresh_token)
            .await
            .unwrap();
        assert!(
            security
                .validate_token(&refreshed.access_token, None)
                .await
                .is_ok()
        );

        // A tampered signature is a bad signature.
        let mut tampered = token.clone().into_bytes();
        let at = tampered.len() - 5;
        tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
        assert_invalid(
            security.validate_jwt_stateless(std::str::from_utf8(&tampered).unwrap(), None),
            InvalidTokenReason::BadSignature,
        );

        // A service holding only the public key verifies it (stateless).
        if let Some(pem) = public_pem {
            let verifier = security_with(vec![
                hmac("other", Algorithm::HS256, 9),
                public(&kid, alg, pem),
            ]);
            assert!(
                verifier.validate_jwt_stateless(&token, None).is_ok(),
                "{alg:?}"
            );
        }
    }
}

#[tokio::test]
async fn pkcs1_rsa_and_pkcs8_v2_ed25519_private_keys_are_accepted() {
    let key = private("rs-pkcs1", Algorithm::RS256, RSA_A_PKCS1);
    let security = security_with(vec![key]);
    let token = issue(&security).await;
    let verifier = security_with(vec![
        hmac("x", Algorithm::HS256, 1),
        public("rs-pkcs1", Algorithm::RS256, RSA_A_PUB),
    ]);
    assert!(verifier.validate_jwt_stateless(&token, None).is_ok());

    // The Ed25519 key as a PKCS#8 v2 document (seed and public key), as
    // some tools write it.
    let der = |pem: &str| {
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        STANDARD.decode(body).unwrap()
    };
    let v1 = der(ED_A);
    let public_key = der(ED_A_PUB);
    assert_eq!(v1.len(), 48);
    let mut v2 = vec![0x30, 0x51, 0x02, 0x01, 0x01];
    v2.extend_from_slice(&v1[5..]);
    v2.extend_from_slice(&[0x81, 0x21, 0x00]);
    v2.extend_from_slice(&public_key[public_key.len() - 32..]);
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        STANDARD.encode(&v2)
    );
    let key = private("ed-v2", Algorithm::EdDSA, &pem);
    let from_v1 = private("ed-v2", Algorithm::EdDSA, ED_A);
    assert_eq!(key.public_jwk(), from_v1.public_jwk());
}

// ------------------------------------------------------------------ rotation

#[tokio::test]
async fn rotation_through_the_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryTokenStore::new());
    let load = |path: &Path| security_on(builder().keys_file(path).build().unwrap(), &store);

    // Day 1: one key.
    let v1 = temp_key_file(
        &dir,
        "v1.json",
        &[entry(
            "2026-01",
            "ES256",
            "active",
            "private_key_pem",
            P256_A,
        )],
    );
    let day1 = load(&v1);
    let old = issue(&day1).await;
    assert_eq!(header_of(&old)["kid"], "2026-01");
    assert!(day1.validate_token(&old, None).await.is_ok());

    // Day 2: a new active key; the old one only verifies.
    let v2 = temp_key_file(
        &dir,
        "v2.json",
        &[
            entry("2026-02", "EdDSA", "active", "private_key_pem", ED_A),
            entry("2026-01", "ES256", "verify", "private_key_pem", P256_A),
        ],
    );
    let day2 = load(&v2);
    let new = issue(&day2).await;
    assert_eq!(header_of(&new)["kid"], "2026-02");
    assert_eq!(header_of(&new)["alg"], "EdDSA");
    assert!(
        day2.validate_token(&old, None).await.is_ok(),
        "old tokens still verify"
    );
    assert!(day2.validate_token(&new, None).await.is_ok());
    assert_eq!(day2.config().algorithm(), Algorithm::EdDSA);
    assert_eq!(day2.codec().keys().active().kid(), Some("2026-02"));

    // The old key may also be kept as its public half only.
    let v2_public = temp_key_file(
        &dir,
        "v2-public.json",
        &[
            entry("2026-02", "EdDSA", "active", "private_key_pem", ED_A),
            entry("2026-01", "ES256", "verify", "public_key_pem", P256_A_PUB),
        ],
    );
    assert!(load(&v2_public).validate_token(&old, None).await.is_ok());

    // Day 3: the old key is retired; its tokens are signed by an unknown key.
    let v3 = temp_key_file(
        &dir,
        "v3.json",
        &[
            entry("2026-02", "EdDSA", "active", "private_key_pem", ED_A),
            entry("2026-01", "ES256", "retired", "private_key_pem", P256_A),
        ],
    );
    let day3 = load(&v3);
    assert_refused(&day3, &old, InvalidTokenReason::UnknownKey).await;
    assert_invalid(day3.decode_token(&old), InvalidTokenReason::UnknownKey);
    assert!(day3.validate_token(&new, None).await.is_ok());
    assert_eq!(day3.jwks().keys.len(), 1, "retired keys are not published");
}

// -------------------------------------------------------- refused tokens

#[tokio::test]
async fn an_hs256_token_keyed_with_a_public_key_is_refused() {
    // The classic confusion: a verifier that lets the header pick HMAC
    // would check this "signature" with the public key bytes as the secret.
    for (kid, alg, private_pem, public_pem) in [
        ("rsa", Algorithm::RS256, RSA_A, RSA_A_PUB),
        ("ec", Algorithm::ES256, P256_A, P256_A_PUB),
        ("ed", Algorithm::EdDSA, ED_A, ED_A_PUB),
    ] {
        let security = security_with(vec![private(kid, alg, private_pem)]);
        let genuine = issue(&security).await;
        let claims = segment(&genuine, 1);
        for header_kid in [Some(kid), None] {
            let mut header = Header::new(Algorithm::HS256);
            header.kid = header_kid.map(str::to_owned);
            let forged = jsonwebtoken::encode(
                &header,
                &claims,
                &EncodingKey::from_secret(public_pem.as_bytes()).unwrap(),
            )
            .unwrap();
            let expected = Err::<(), _>(InvalidTokenReason::DisallowedAlgorithm);
            let got = security.validate_token(&forged, None).await.map(|_| ());
            assert_eq!(
                got.map_err(|e| match e {
                    Error::InvalidToken(r) => r,
                    other => panic!("{other:?}"),
                }),
                expected,
                "{alg:?} with kid {header_kid:?}"
            );
            assert_invalid(
                security.decode_token(&forged),
                InvalidTokenReason::DisallowedAlgorithm,
            );
        }
    }

    // The same RSA key pinned to PS256 refuses an RS256 signature by it.
    let rs = security_with(vec![private("k", Algorithm::RS256, RSA_A)]);
    let ps = security_with(vec![private("k", Algorithm::PS256, RSA_A)]);
    let token = issue(&rs).await;
    assert_invalid(
        ps.validate_jwt_stateless(&token, None),
        InvalidTokenReason::DisallowedAlgorithm,
    );
}

#[tokio::test]
async fn alg_none_is_refused_in_every_casing_as_an_invalid_token() {
    let security = security_with(vec![private("ec", Algorithm::ES256, P256_A)]);
    let token = issue(&security).await;
    for alg in ["none", "None", "NONE", "nOnE"] {
        for kid in [Some("ec"), None] {
            let mut header = json!({ "alg": alg, "typ": "JWT" });
            if let Some(kid) = kid {
                header["kid"] = json!(kid);
            }
            let forged = with_header(&token, &header);
            let unsigned = format!("{}.", forged.rsplit_once('.').unwrap().0);
            for candidate in [&forged, &unsigned] {
                let err = security.validate_token(candidate, None).await.unwrap_err();
                assert!(err.is_token_error(), "{alg}: {err:?}");
                assert_eq!(err.code(), "invalid_token");
                assert_invalid::<()>(Err(err), InvalidTokenReason::Malformed);
            }
        }
    }
}

#[tokio::test]
async fn unknown_and_hostile_kids_name_no_key() {
    let security = security_with(vec![
        private("2026-a", Algorithm::ES256, P256_A),
        private("2026-b", Algorithm::ES256, P256_B),
    ]);
    let token = issue(&security).await;
    assert!(security.validate_token(&token, None).await.is_ok());
    let long = "k".repeat(300);
    for kid in [
        "2026-c",
        "",
        "2026-A",
        "../../../../etc/passwd",
        "/dev/null",
        "file:///etc/shadow",
        "' OR '1'='1' --",
        "2026-a'; DROP TABLE tokens; --",
        "2026-a\u{0000}",
        "2026-a\n",
        "\u{202e}a-6202",
        long.as_str(),
    ] {
        let forged = with_header(&token, &json!({ "alg": "ES256", "typ": "JWT", "kid": kid }));
        assert_refused(&security, &forged, InvalidTokenReason::UnknownKey).await;
    }
    // A kid that is not a string at all is a malformed header.
    let forged = with_header(&token, &json!({ "alg": "ES256", "kid": 7 }));
    assert_refused(&security, &forged, InvalidTokenReason::Malformed).await;
}

#[tokio::test]
async fn a_token_without_kid_is_accepted_only_when_one_key_could_match() {
    let store = Arc::new(MemoryTokenStore::new());
    let with_keys = |keys| {
        security_on(
            builder()
                .key_set(KeySet::new(keys).unwrap())
                .build()
                .unwrap(),
            &store,
        )
    };
    // One key: a token without a kid (as the seed's) verifies.
    let single = with_keys(vec![private("only", Algorithm::ES256, P256_A)]);
    let token = issue(&single).await;
    // The same claims signed by the same key, without a kid in the header.
    let bare = jsonwebtoken::encode(
        &Header::new(Algorithm::ES256),
        &segment(&token, 1),
        &EncodingKey::from_ec_pem(P256_A.as_bytes()).unwrap(),
    )
    .unwrap();
    assert!(header_of(&bare).get("kid").is_none());
    assert!(single.validate_token(&bare, None).await.is_ok());

    // Two keys: it is refused, even though one of them did sign it.
    let double = with_keys(vec![
        private("only", Algorithm::ES256, P256_A),
        private("other", Algorithm::EdDSA, ED_B),
    ]);
    assert!(
        double.validate_token(&token, None).await.is_ok(),
        "with its kid it verifies"
    );
    assert_refused(&double, &bare, InvalidTokenReason::UnknownKey).await;

    // The single-secret configuration keeps issuing and accepting tokens
    // without a kid, exactly as before.
    let config = builder()
        .secret("a-single-secret-of-at-least-thirty-two-bytes")
        .build()
        .unwrap();
    assert!(config.key_set().is_none());
    let seed_like = security_on(config, &Arc::new(MemoryTokenStore::new()));
    let token = issue(&seed_like).await;
    assert_eq!(header_of(&token), json!({ "alg": "HS256", "typ": "JWT" }));
    assert!(seed_like.validate_token(&token, None).await.is_ok());
    assert!(seed_like.jwks().keys.is_empty());
}

// ----------------------------------------------------------------- the JWKS

fn mixed_key_file(dir: &tempfile::TempDir) -> PathBuf {
    temp_key_file(
        dir,
        "mixed.json",
        &[
            entry("es-new", "ES256", "active", "private_key_pem", P256_A),
            entry("rs-old", "RS256", "verify", "private_key_pem", RSA_A),
            entry("ed-partner", "EdDSA", "verify", "public_key_pem", ED_B_PUB),
            entry(
                "hs-legacy",
                "HS256",
                "verify",
                "secret_base64",
                &STANDARD.encode([5u8; 32]),
            ),
            entry("es-gone", "ES256", "retired", "private_key_pem", P256_B),
        ],
    )
}

#[tokio::test]
async fn the_jwks_lists_public_parameters_of_verifying_asymmetric_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = mixed_key_file(&dir);
    let security = security_on(
        builder().keys_file(&path).build().unwrap(),
        &Arc::new(MemoryTokenStore::new()),
    );
    let jwks = serde_json::to_value(security.jwks()).unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    let kids: Vec<&str> = keys.iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids, ["es-new", "rs-old", "ed-partner"], "{jwks}");

    let fields = |k: &Value| {
        let mut names: Vec<String> = k.as_object().unwrap().keys().cloned().collect();
        names.sort();
        names
    };
    assert_eq!(
        fields(&keys[0]),
        ["alg", "crv", "kid", "kty", "use", "x", "y"]
    );
    assert_eq!(fields(&keys[1]), ["alg", "e", "kid", "kty", "n", "use"]);
    assert_eq!(fields(&keys[2]), ["alg", "crv", "kid", "kty", "use", "x"]);
    assert_eq!(keys[0]["kty"], "EC");
    assert_eq!(keys[0]["crv"], "P-256");
    assert_eq!(keys[0]["alg"], "ES256");
    assert_eq!(keys[1]["kty"], "RSA");
    assert_eq!(keys[1]["alg"], "RS256");
    assert_eq!(keys[1]["e"], "AQAB");
    assert_eq!(keys[2]["kty"], "OKP");
    assert_eq!(keys[2]["crv"], "Ed25519");
    assert_eq!(keys[2]["alg"], "EdDSA");
    for key in keys {
        assert_eq!(key["use"], "sig");
    }
    let text = jwks.to_string();
    for private_param in [
        "\"d\"", "\"p\"", "\"q\"", "\"dp\"", "\"dq\"", "\"qi\"", "\"k\"",
    ] {
        assert!(!text.contains(private_param), "{private_param} in {text}");
    }

    // A verifier that only has the JWK Set checks a token with it.
    let token = issue(&security).await;
    let jwk_set: fastcore_security::JwkSet = serde_json::from_value(jwks.clone()).unwrap();
    let kid = header_of(&token)["kid"].as_str().unwrap().to_owned();
    let jwk = jwk_set.find(&kid).unwrap();
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[AUDIENCE]);
    validation.set_issuer(&[ISSUER]);
    let data =
        jsonwebtoken::decode::<Value>(&token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
            .unwrap();
    assert_eq!(data.claims["sub"], "42");
    // ... and another service can verify with it too.
    let jwk: Jwk = jwk.clone();
    let partner = security_with(vec![
        hmac("x", Algorithm::HS256, 1),
        SigningKey::from_public_jwk(kid.as_str(), Algorithm::ES256, &jwk).unwrap(),
    ]);
    assert!(partner.validate_jwt_stateless(&token, None).is_ok());
}

#[tokio::test]
async fn the_jwks_route_serves_the_set_with_cache_headers() {
    let dir = tempfile::tempdir().unwrap();
    let security = security_on(
        builder().keys_file(mixed_key_file(&dir)).build().unwrap(),
        &Arc::new(MemoryTokenStore::new()),
    );
    let response = jwks_router(security.clone())
        .oneshot(
            Request::get("/.well-known/jwks.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    assert_eq!(
        response.headers()[header::CACHE_CONTROL],
        "public, max-age=300"
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let served: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(served, serde_json::to_value(security.jwks()).unwrap());
    assert_eq!(served["keys"].as_array().unwrap().len(), 3);

    // A secret-only service serves an empty set, never its secret.
    let hs = security_with(vec![hmac("hs", Algorithm::HS256, 0x41)]);
    let response = jwks_router(hs)
        .oneshot(
            Request::get("/.well-known/jwks.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], br#"{"keys":[]}"#);
}

// ---------------------------------------------------------- configuration

/// Pieces of every fixture key and secret used below: none may appear in
/// an error message.
fn assert_no_material(message: &str) {
    for pem in [
        RSA_A, RSA_A_PUB, RSA_1024, P256_A, P256_A_PUB, P384, ED_A, ED_A_PUB,
    ] {
        for line in pem.lines().filter(|l| !l.starts_with("-----")) {
            assert!(
                !message.contains(&line[..line.len().min(16)]),
                "key material in: {message}"
            );
        }
    }
    for fragment in ["MII", "MC4C", "c2hvcnQ", "QUFB"] {
        assert!(!message.contains(fragment), "{fragment} in: {message}");
    }
}

fn config_error(path: &Path) -> String {
    match builder().keys_file(path).build() {
        Err(Error::Config(message)) => message,
        other => panic!(
            "expected a configuration error for {}, got {other:?}",
            path.display()
        ),
    }
}

#[test]
fn bad_key_files_are_configuration_errors_without_key_material() {
    let dir = tempfile::tempdir().unwrap();
    let secret32 = STANDARD.encode([b'A'; 32]);
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "duplicate",
            json!({"keys": [
                entry("k", "ES256", "active", "private_key_pem", P256_A),
                entry("k", "RS256", "verify", "private_key_pem", RSA_A),
            ]}),
            "same kid",
        ),
        (
            "no-active",
            json!({"keys": [entry("k", "ES256", "verify", "private_key_pem", P256_A)]}),
            "no key is active",
        ),
        (
            "two-active",
            json!({"keys": [
                entry("a", "ES256", "active", "private_key_pem", P256_A),
                entry("b", "EdDSA", "active", "private_key_pem", ED_A),
            ]}),
            "2 keys are active (\"a\", \"b\")",
        ),
        (
            "active-public",
            json!({"keys": [entry("pub", "ES256", "active", "public_key_pem", P256_A_PUB)]}),
            "the active key must be able to sign",
        ),
        (
            "no-kid",
            json!({"keys": [{"alg": "ES256", "status": "active", "private_key_pem": P256_A}]}),
            "key #1: needs a \"kid\"",
        ),
        (
            "bad-alg",
            json!({"keys": [entry("k", "none", "active", "private_key_pem", P256_A)]}),
            "\"alg\" must be one of",
        ),
        (
            "pem-in-alg",
            json!({"keys": [entry("k", P256_A, "active", "private_key_pem", P256_A)]}),
            "\"alg\" must be one of",
        ),
        (
            "bad-status",
            json!({"keys": [entry("k", "ES256", "enabled", "private_key_pem", P256_A)]}),
            "\"status\" must be",
        ),
        (
            "two-materials",
            json!({"keys": [{"kid": "k", "alg": "ES256", "status": "active",
                "private_key_pem": P256_A, "public_key_pem": P256_A_PUB}]}),
            "exactly one of",
        ),
        (
            "unknown-field",
            json!({"keys": [{"kid": "k", "alg": "ES256", "status": "active",
                "private_key_pem": P256_A, "stauts": "x"}]}),
            "unknown field \"stauts\"",
        ),
        (
            "pem-as-field-name",
            json!({"keys": [{"kid": "k", "alg": "ES256", "status": "active",
                "private_key_pem": P256_A, ED_A: 1}]}),
            "unknown field (a field name that is not shown)",
        ),
        (
            "rsa-key-for-es256",
            json!({"keys": [entry("k-rsa", "ES256", "active", "private_key_pem", RSA_A)]}),
            "key \"k-rsa\": the private key is not an unencrypted PKCS#8 PEM EC P-256 private key",
        ),
        (
            "ec-key-for-rs256",
            json!({"keys": [entry("k-ec", "RS256", "active", "private_key_pem", P256_A)]}),
            "key \"k-ec\": the private key is not an unencrypted PKCS#8 PEM RSA private key",
        ),
        (
            "p384-for-es256",
            json!({"keys": [entry("k-384", "ES256", "active", "private_key_pem", P384)]}),
            "key \"k-384\": the key cannot sign with ES256",
        ),
        (
            "ed-public-for-es256",
            json!({"keys": [
                entry("a", "ES256", "active", "private_key_pem", P256_A),
                entry("k-ed", "ES256", "verify", "public_key_pem", ED_A_PUB),
            ]}),
            "key \"k-ed\": the public key is not a PEM EC P-256 public key",
        ),
        (
            "rsa-1024",
            json!({"keys": [entry("k-small", "RS256", "active", "private_key_pem", RSA_1024)]}),
            "key \"k-small\": the RSA key has 1024 bits; at least 2048 are required",
        ),
        (
            "short-secret",
            json!({"keys": [entry("k-hs", "HS512", "active", "secret_base64", &secret32)]}),
            "key \"k-hs\": the HS512 secret is 32 bytes long; it needs at least 64",
        ),
        (
            "short-secret-hs256",
            json!({"keys": [entry("k-hs", "HS256", "active", "secret_base64", "c2hvcnQ=")]}),
            "the HS256 secret is 5 bytes long; it needs at least 32",
        ),
        (
            "secret-for-es256",
            json!({"keys": [entry("k", "ES256", "active", "secret_base64", &secret32)]}),
            "secret_base64 is for HS256, HS384 and HS512 keys",
        ),
        (
            "pem-for-hs256",
            json!({"keys": [entry("k", "HS256", "active", "private_key_pem", P256_A)]}),
            "give it as secret_base64",
        ),
        (
            "garbage-pem",
            json!({"keys": [entry("k", "EdDSA", "active", "private_key_pem",
                "-----BEGIN PRIVATE KEY-----\nQUFBQUFBQUFBQUFB\n-----END PRIVATE KEY-----\n")]}),
            "key \"k\": the private key is not an unencrypted PKCS#8 PEM Ed25519 private key",
        ),
        (
            "not-an-object",
            json!(["keys"]),
            "must be a JSON object with a \"keys\" array",
        ),
        (
            "keys-not-array",
            json!({"keys": P256_A}),
            "must be a JSON object with a \"keys\" array",
        ),
        ("empty", json!({"keys": []}), "no key is active"),
    ];
    for (name, document, expected) in cases {
        let path = dir.path().join(format!("{name}.json"));
        std::fs::write(&path, serde_json::to_vec(&document).unwrap()).unwrap();
        let message = config_error(&path);
        assert!(
            message.starts_with(&format!("key file {}: ", path.display())),
            "{name}: {message}"
        );
        assert!(message.contains(expected), "{name}: {message}");
        assert_no_material(&message);
    }

    // A PEM pasted with real line breaks is not JSON; the message says
    // where and how to fix it, not what it read.
    let path = dir.path().join("raw-newlines.json");
    std::fs::write(
        &path,
        format!("{{\"keys\": [{{\"kid\": \"k\", \"alg\": \"ES256\", \"status\": \"active\", \"private_key_pem\": \"{P256_A}\"}}]}}"),
    )
    .unwrap();
    let message = config_error(&path);
    assert!(
        message.contains("not valid JSON (line 2, column 0)"),
        "{message}"
    );
    assert!(message.contains("\\n for line breaks"), "{message}");
    assert_no_material(&message);

    // A missing file and a directory.
    let missing = dir.path().join("missing.json");
    let message = config_error(&missing);
    assert!(
        message.contains("missing.json: cannot be read"),
        "{message}"
    );
    let message = config_error(dir.path());
    assert!(message.contains("is not a regular file"), "{message}");
}

#[test]
fn keys_that_do_not_fit_their_algorithm_are_refused_naming_the_kid() {
    let expect = |result: fastcore_security::Result<SigningKey>, text: &str| match result {
        Err(Error::Config(message)) => {
            assert!(message.contains(text), "{message}");
            assert_no_material(&message);
        }
        other => panic!("expected a configuration error, got {other:?}"),
    };
    expect(
        SigningKey::from_private_pem("k1", Algorithm::HS256, P256_A.as_bytes()),
        "key \"k1\": HS256 is an HMAC algorithm",
    );
    expect(
        SigningKey::from_private_pem("k2", Algorithm::EdDSA, RSA_A.as_bytes()),
        "key \"k2\": the private key is not an unencrypted PKCS#8 PEM Ed25519",
    );
    expect(
        SigningKey::from_private_pem("k3", Algorithm::ES384, P256_A.as_bytes()),
        "key \"k3\": the key cannot sign with ES384",
    );
    expect(
        SigningKey::from_public_pem("k4", Algorithm::RS256, P256_A_PUB.as_bytes()),
        "key \"k4\": the public key is not a PEM RSA public key",
    );
    expect(
        SigningKey::from_public_pem("k5", Algorithm::ES256, P256_A.as_bytes()),
        "key \"k5\": the public key is not a PEM EC P-256 public key",
    );
    expect(
        SigningKey::from_public_pem("k6", Algorithm::ES384, P256_A_PUB.as_bytes()),
        "key \"k6\": the key is not a usable EC P-384 key for ES384",
    );
    expect(
        SigningKey::from_private_pem("bad kid", Algorithm::ES256, P256_A.as_bytes()),
        "a key id (kid) must be 1 to 128 printable ASCII characters",
    );
    expect(
        SigningKey::hmac(Some("k7".into()), Algorithm::ES256, &[1; 64]),
        "key \"k7\": ES256 is not an HMAC algorithm",
    );
    // A JWK whose alg or kid disagrees, or meant for encryption.
    let jwk: Jwk = serde_json::from_value(
        serde_json::to_value(
            private("k8", Algorithm::ES256, P256_A)
                .public_jwk()
                .unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    expect(
        SigningKey::from_public_jwk("k8", Algorithm::ES384, &jwk),
        "the JWK says alg ES256",
    );
    expect(
        SigningKey::from_public_jwk("k9", Algorithm::ES256, &jwk),
        "the JWK has another kid",
    );
    let mut enc = serde_json::to_value(&jwk).unwrap();
    enc["use"] = json!("enc");
    expect(
        SigningKey::from_public_jwk(
            "k8",
            Algorithm::ES256,
            &serde_json::from_value(enc).unwrap(),
        ),
        "not meant for signatures",
    );
    // A point that is not on the curve.
    let mut off_curve = serde_json::to_value(&jwk).unwrap();
    off_curve["y"] = json!(b64url(&[7u8; 32]));
    expect(
        SigningKey::from_public_jwk(
            "k8",
            Algorithm::ES256,
            &serde_json::from_value(off_curve).unwrap(),
        ),
        "key \"k8\": the key is not a usable EC P-256 key for ES256",
    );
    // A short Ed25519 key is refused, not a panic in the backend.
    let short: Jwk = serde_json::from_value(json!({
        "kty": "OKP", "crv": "Ed25519", "x": b64url(&[1u8; 16])
    }))
    .unwrap();
    expect(
        SigningKey::from_public_jwk("k10", Algorithm::EdDSA, &short),
        "key \"k10\": the key is not a usable Ed25519 key for EdDSA",
    );

    // Key sets: the active key signs; several keys all have distinct kids.
    let set = |keys| match KeySet::new(keys) {
        Err(Error::Config(message)) => message,
        other => panic!("expected a configuration error, got {other:?}"),
    };
    assert!(set(vec![]).contains("at least one signing key"));
    assert!(
        set(vec![public("p", Algorithm::EdDSA, ED_A_PUB)])
            .contains("the active key must be able to sign")
    );
    assert!(
        set(vec![
            SigningKey::hmac(None, Algorithm::HS256, &[1; 32]).unwrap(),
            hmac("b", Algorithm::HS256, 2)
        ])
        .contains("every key needs a kid")
    );
    assert!(
        set(vec![
            hmac("a", Algorithm::HS256, 1),
            private("a", Algorithm::EdDSA, ED_A)
        ])
        .contains("key \"a\": two keys have this kid")
    );
}

#[test]
fn jwt_keys_file_replaces_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = mixed_key_file(&dir);
    let path_text = path.display().to_string();
    let lookup = |pairs: Vec<(&'static str, String)>| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        }
    };

    let config =
        SecurityConfig::builder_from_lookup(lookup(vec![("JWT_KEYS_FILE", path_text.clone())]))
            .unwrap()
            .build()
            .unwrap();
    assert_eq!(config.algorithm(), Algorithm::ES256);
    assert_eq!(config.keys_file(), Some(path.as_path()));
    let keys = config.key_set().unwrap();
    assert_eq!(keys.active().kid(), Some("es-new"));
    let kids: Vec<_> = keys.keys().iter().map(|k| k.kid().unwrap()).collect();
    assert_eq!(kids, ["es-new", "rs-old", "ed-partner", "hs-legacy"]);
    let debug = format!("{config:?}");
    assert!(debug.contains("es-new"), "{debug}");
    assert_no_material(&debug);
    assert!(!debug.contains(&STANDARD.encode([5u8; 32])), "{debug}");

    // Not together with JWT_SECRET_KEY or JWT_ALGORITHM.
    for (name, value) in [
        (
            "JWT_SECRET_KEY",
            "a-secret-that-is-long-enough-for-hs256-000",
        ),
        ("JWT_ALGORITHM", "HS256"),
    ] {
        let err = SecurityConfig::builder_from_lookup(lookup(vec![
            ("JWT_KEYS_FILE", path_text.clone()),
            (name, value.to_owned()),
        ]))
        .unwrap()
        .build()
        .unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err:?}");
        assert!(err.to_string().contains(name), "{err}");
        assert!(!err.to_string().contains("a-secret-that"), "{err}");
    }

    // A generated development secret never replaces configured keys.
    let config = builder()
        .keys_file(&path)
        .generate_development_secret(true)
        .build()
        .unwrap();
    assert!(!config.uses_generated_secret());

    // Without either, the error says both names.
    let err = SecurityConfig::builder().build().unwrap_err().to_string();
    assert!(
        err.contains("JWT_SECRET_KEY is not set") && err.contains("JWT_KEYS_FILE"),
        "{err}"
    );

    // A key file that parses can be written back unchanged.
    let file = KeyFile::load(&path).unwrap();
    assert_eq!(file.keys.len(), 5);
    assert_eq!(file.active().unwrap().kid, "es-new");
    let again = KeyFile::parse(&file.to_json().unwrap()).unwrap();
    assert_eq!(
        format!("{:?}", again.key_set().unwrap()),
        format!("{:?}", file.key_set().unwrap())
    );
}
