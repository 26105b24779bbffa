//! The JWT attack suite: hostile tokens against the ready router, as data.
//!
//! Every case is a token that an attacker could send, built from a valid
//! token with one defect (RFC 8725's list and the classic JWT attacks). The
//! tokens whose signature is valid have their `jti` on record, so a check
//! that is skipped would let the token through: each case passes only if
//! its own check refuses it. Each must get `401` with the expected code and
//! `error_description`, never a `5xx` and never a `200`.
// Test helpers may panic: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{TestDirectory, TestResponse, auth_state, now, send};
use fastcore_security::{
    Algorithm, KeySet, MemoryTokenStore, Security, SecurityConfig, SigningKey, TokenRecord,
    TokenType, auth_router,
};
use jsonwebtoken::EncodingKey;
use serde_json::{Value, json};

const EC_A: &str = include_str!("fixtures/keys/p256-a.pem");
const EC_A_PUB: &str = include_str!("fixtures/keys/p256-a.pub.pem");
const EC_B: &str = include_str!("fixtures/keys/p256-b.pem");
const RSA_A: &str = include_str!("fixtures/keys/rsa-a.pem");
const RSA_A_PUB: &str = include_str!("fixtures/keys/rsa-a.pub.pem");
const HS_SECRET: &str = "attack-suite-hmac-secret-0123456789abcdef";
const AUDIENCE: &str = "attack-api";
const ISSUER: &str = "attack-auth";

/// What a case must answer: the problem `code` and the challenge's
/// `error_description`.
const MALFORMED: (&str, &str) = ("invalid_token", "the token is malformed");
const BAD_SIGNATURE: (&str, &str) = ("invalid_token", "the token signature is invalid");
const ALGORITHM: (&str, &str) = ("invalid_token", "the token algorithm is not accepted");
const UNKNOWN_KEY: (&str, &str) = ("invalid_token", "the token was signed with an unknown key");
const WRONG_TYPE: (&str, &str) = ("invalid_token", "the token is of the wrong type");
const AUDIENCE_REFUSED: (&str, &str) = ("invalid_token", "the token audience is not accepted");
const ISSUER_REFUSED: (&str, &str) = ("invalid_token", "the token issuer is not accepted");
const NOT_YET: (&str, &str) = ("invalid_token", "the token is not valid yet");
const MISSING: (&str, &str) = ("invalid_token", "the token lacks a required claim");
const INVALID_CLAIM: (&str, &str) = ("invalid_token", "a claim of the token has an invalid value");
const UNKNOWN_TOKEN: (&str, &str) = ("invalid_token", "the token is not known to this service");
const TOO_LARGE: (&str, &str) = ("invalid_token", "the token is too large");
const EXPIRED: (&str, &str) = ("token_expired", "token has expired");

/// The service under attack: an ES256 active key (`ec-a`), an RS256 key
/// (`rsa-a`) and an HS256 key (`hs-a`) that still verify.
struct Target {
    security: Security,
    router: Router,
    _directory: TestDirectory,
}

fn config_with(keys: KeySet) -> SecurityConfig {
    SecurityConfig::builder()
        .key_set(keys)
        .audience(AUDIENCE)
        .issuer(ISSUER)
        .build()
        .unwrap()
}

fn target_with(keys: KeySet) -> Target {
    let security = Security::new(config_with(keys), Arc::new(MemoryTokenStore::new())).unwrap();
    let directory = TestDirectory::default();
    directory.add(
        "1",
        "ada",
        "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$invalidinvalidinvalidinvalidinvalidinvalid",
    );
    let router = auth_router(auth_state(security.clone(), &directory));
    Target {
        security,
        router,
        _directory: directory,
    }
}

fn three_keys() -> KeySet {
    KeySet::new(vec![
        SigningKey::from_private_pem("ec-a", Algorithm::ES256, EC_A.as_bytes()).unwrap(),
        SigningKey::from_private_pem("rsa-a", Algorithm::RS256, RSA_A.as_bytes()).unwrap(),
        SigningKey::hmac(Some("hs-a".into()), Algorithm::HS256, HS_SECRET.as_bytes()).unwrap(),
    ])
    .unwrap()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Valid access claims for user `1`, with a fresh `jti`.
fn base_claims() -> Value {
    let now = now();
    json!({
        "sub": "1",
        "jti": uuid::Uuid::new_v4().to_string(),
        "type": "access",
        "exp": now + 600,
        "iat": now,
        "aud": AUDIENCE,
        "iss": ISSUER,
    })
}

/// Signs `payload` (any JSON, or raw bytes) with `header` and `key`.
fn sign_raw(header: &Value, payload: &[u8], alg: Algorithm, key: &EncodingKey) -> String {
    let message = format!("{}.{}", b64(header.to_string().as_bytes()), b64(payload));
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).unwrap();
    format!("{message}.{signature}")
}

fn ec_a() -> EncodingKey {
    EncodingKey::from_ec_pem(EC_A.as_bytes()).unwrap()
}

fn header(alg: &str, kid: Option<&str>) -> Value {
    let mut h = json!({"alg": alg, "typ": "JWT"});
    if let Some(kid) = kid {
        h["kid"] = json!(kid);
    }
    h
}

/// A token signed by the real active key over `claims`, with its `jti` on
/// record (when the claims have a usable one), so only the defect can
/// refuse it.
async fn signed_and_recorded(t: &Target, claims: &Value) -> String {
    let token = sign_raw(
        &header("ES256", Some("ec-a")),
        claims.to_string().as_bytes(),
        Algorithm::ES256,
        &ec_a(),
    );
    record(t, claims).await;
    token
}

async fn record(t: &Target, claims: &Value) {
    let (Some(jti), Some(sub)) = (claims["jti"].as_str(), claims["sub"].as_str()) else {
        return;
    };
    let token_type = match claims["type"].as_str() {
        Some("refresh") => TokenType::Refresh,
        _ => TokenType::Access,
    };
    let exp = claims["exp"].as_i64().unwrap_or(now() + 600);
    let iat = claims["iat"].as_i64().unwrap_or(now());
    let sid = claims["sid"].as_str().map(str::to_owned);
    let _ = t
        .security
        .store()
        .insert(&TokenRecord::new(jti, token_type, sub, sid, iat, exp))
        .await;
}

fn with(mut claims: Value, field: &str, value: Value) -> Value {
    claims[field] = value;
    claims
}

fn without(mut claims: Value, field: &str) -> Value {
    claims.as_object_mut().unwrap().remove(field);
    claims
}

async fn me(t: &Target, token: &str) -> TestResponse {
    let request = Request::get("/auth/me")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    send(&t.router, request).await
}

async fn refresh(t: &Target, token: &str) -> TestResponse {
    let request = Request::post("/auth/refresh")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({"refresh_token": token}).to_string()))
        .unwrap();
    send(&t.router, request).await
}

fn assert_refused(case: &str, res: &TestResponse, (code, description): (&str, &str)) {
    assert!(
        !res.status.is_server_error(),
        "{case}: a 5xx ({}) for a hostile token",
        res.status
    );
    assert_eq!(
        res.status,
        StatusCode::UNAUTHORIZED,
        "{case}: {}",
        res.text()
    );
    let body = res.json();
    assert_eq!(body["code"], code, "{case}: {body}");
    assert_eq!(body["detail"], description, "{case}: {body}");
    let challenge = res.header(header::WWW_AUTHENTICATE).unwrap_or_default();
    assert!(
        challenge.contains(&format!("error_description=\"{description}\"")),
        "{case}: {challenge}"
    );
}

/// The baseline: the suite's own valid token is accepted, so every refusal
/// below is the defect's doing.
#[tokio::test]
async fn the_untouched_token_is_accepted() {
    let t = target_with(three_keys());
    let token = signed_and_recorded(&t, &base_claims()).await;
    let res = me(&t, &token).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
}

#[tokio::test]
async fn alg_none_in_every_casing_is_refused() {
    let t = target_with(three_keys());
    for alg in ["none", "None", "NONE", "nOnE", "", "none "] {
        for kid in [None, Some("ec-a"), Some("hs-a")] {
            let claims = base_claims();
            record(&t, &claims).await;
            let h = b64(header(alg, kid).to_string().as_bytes());
            let p = b64(claims.to_string().as_bytes());
            for token in [format!("{h}.{p}."), format!("{h}.{p}.c2ln")] {
                let res = me(&t, &token).await;
                let case = format!("alg {alg:?} kid {kid:?}");
                assert!(
                    res.status == StatusCode::UNAUTHORIZED,
                    "{case}: {} {}",
                    res.status,
                    res.text()
                );
                assert_eq!(res.json()["code"], "invalid_token", "{case}");
            }
        }
    }
}

#[tokio::test]
async fn hmac_signed_with_a_public_key_is_refused() {
    // The classic confusion: the attacker signs HS256 using the server's
    // public key (which is public) as the HMAC secret.
    let t = target_with(three_keys());
    for (kid, public_pem) in [
        (Some("rsa-a"), RSA_A_PUB),
        (Some("ec-a"), EC_A_PUB),
        (None, RSA_A_PUB),
    ] {
        for alg in [("HS256", Algorithm::HS256), ("HS384", Algorithm::HS384)] {
            let claims = base_claims();
            let token = sign_raw(
                &header(alg.0, kid),
                claims.to_string().as_bytes(),
                alg.1,
                &EncodingKey::from_secret(public_pem.as_bytes()).unwrap(),
            );
            record(&t, &claims).await;
            let expected = if kid.is_some() {
                ALGORITHM
            } else {
                UNKNOWN_KEY
            };
            assert_refused(
                &format!("{} with {kid:?}'s public key", alg.0),
                &me(&t, &token).await,
                expected,
            );
        }
    }
    // With a single RS256 key no kid is needed, and still the HS256 token
    // made from its public key is refused.
    let single = target_with(
        KeySet::new(vec![
            SigningKey::from_private_pem("only", Algorithm::RS256, RSA_A.as_bytes()).unwrap(),
        ])
        .unwrap(),
    );
    let claims = base_claims();
    record(&single, &claims).await;
    let token = sign_raw(
        &header("HS256", None),
        claims.to_string().as_bytes(),
        Algorithm::HS256,
        &EncodingKey::from_secret(RSA_A_PUB.as_bytes()).unwrap(),
    );
    assert_refused(
        "HS256 with the lone RSA key's public PEM",
        &me(&single, &token).await,
        ALGORITHM,
    );
}

#[tokio::test]
async fn hostile_kids_are_unknown_keys() {
    let t = target_with(three_keys());
    let long = "k".repeat(10_000);
    for kid in [
        "../../../../etc/passwd",
        "/dev/null",
        "' OR '1'='1",
        "x'; DROP TABLE fastcore_tokens; --",
        "nope",
        "",
        "ec-a\u{0}",
        "EC-A",
        long.as_str(),
    ] {
        let claims = base_claims();
        let token = sign_raw(
            &header("ES256", Some(kid)),
            claims.to_string().as_bytes(),
            Algorithm::ES256,
            &ec_a(),
        );
        record(&t, &claims).await;
        let res = me(&t, &token).await;
        let case = format!("kid {:?}", kid.chars().take(40).collect::<String>());
        if kid.len() > 8 * 1024 {
            assert_refused(&case, &res, TOO_LARGE);
        } else {
            assert_refused(&case, &res, UNKNOWN_KEY);
        }
    }
    // A kid naming one key with a header alg of another type.
    let claims = base_claims();
    record(&t, &claims).await;
    let token = sign_raw(
        &header("RS256", Some("ec-a")),
        claims.to_string().as_bytes(),
        Algorithm::RS256,
        &EncodingKey::from_rsa_pem(RSA_A.as_bytes()).unwrap(),
    );
    assert_refused(
        "RS256 under the EC key's kid",
        &me(&t, &token).await,
        ALGORITHM,
    );
    // The right kid, signed by another key of the same type (and an
    // attacker's public key embedded in the header changes nothing).
    let claims = base_claims();
    record(&t, &claims).await;
    let mut h = header("ES256", Some("ec-a"));
    h["jwk"] = json!({"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"});
    h["jku"] = json!("https://attacker.example/jwks.json");
    let token = sign_raw(
        &h,
        claims.to_string().as_bytes(),
        Algorithm::ES256,
        &EncodingKey::from_ec_pem(EC_B.as_bytes()).unwrap(),
    );
    assert_refused(
        "another EC key under ec-a",
        &me(&t, &token).await,
        BAD_SIGNATURE,
    );
}

#[tokio::test]
async fn time_claims_of_the_wrong_type_or_range_are_refused() {
    let t = target_with(three_keys());
    let now = now();
    let cases: Vec<(&str, Value, (&str, &str))> = vec![
        (
            "exp as a string",
            with(base_claims(), "exp", json!((now + 600).to_string())),
            MALFORMED,
        ),
        (
            "exp as a float",
            with(base_claims(), "exp", json!(now as f64 + 600.5)),
            MALFORMED,
        ),
        (
            "exp huge",
            with(base_claims(), "exp", json!(1e300)),
            MALFORMED,
        ),
        (
            "exp beyond i64",
            with(base_claims(), "exp", json!(u64::MAX)),
            MALFORMED,
        ),
        // Time claims are unsigned NumericDates to the verifier: a negative
        // one is present but not a valid `exp` (it is not missing).
        (
            "exp negative",
            with(base_claims(), "exp", json!(-1)),
            INVALID_CLAIM,
        ),
        (
            "exp far negative",
            with(base_claims(), "exp", json!(i64::MIN)),
            INVALID_CLAIM,
        ),
        (
            "nbf negative",
            with(base_claims(), "nbf", json!(-1)),
            INVALID_CLAIM,
        ),
        (
            "exp an hour ago",
            with(base_claims(), "exp", json!(now - 3600)),
            EXPIRED,
        ),
        ("exp null", with(base_claims(), "exp", Value::Null), MISSING),
        ("exp missing", without(base_claims(), "exp"), MISSING),
        (
            "exp as an object",
            with(base_claims(), "exp", json!({"$gt": 0})),
            MALFORMED,
        ),
        (
            "nbf as a string",
            with(base_claims(), "nbf", json!(now.to_string())),
            MALFORMED,
        ),
        (
            "nbf as a float",
            with(base_claims(), "nbf", json!(now as f64 - 0.5)),
            MALFORMED,
        ),
        (
            "nbf in the future",
            with(base_claims(), "nbf", json!(now + 3600)),
            NOT_YET,
        ),
        (
            "nbf huge",
            with(base_claims(), "nbf", json!(i64::MAX)),
            NOT_YET,
        ),
        (
            "iat as a string",
            with(base_claims(), "iat", json!(now.to_string())),
            MALFORMED,
        ),
        (
            "iat as a float",
            with(base_claims(), "iat", json!(now as f64)),
            MALFORMED,
        ),
        (
            "iat in the future",
            with(base_claims(), "iat", json!(now + 3600)),
            NOT_YET,
        ),
        (
            "iat huge",
            with(base_claims(), "iat", json!(i64::MAX)),
            NOT_YET,
        ),
        ("iat missing", without(base_claims(), "iat"), MISSING),
    ];
    for (case, claims, expected) in cases {
        let token = signed_and_recorded(&t, &claims).await;
        assert_refused(case, &me(&t, &token).await, expected);
    }
}

#[tokio::test]
async fn wrong_issuer_audience_type_and_unknown_tokens_are_refused() {
    let t = target_with(three_keys());
    let cases: Vec<(&str, Value, (&str, &str))> = vec![
        (
            "another issuer",
            with(base_claims(), "iss", json!("evil-auth")),
            ISSUER_REFUSED,
        ),
        ("no issuer", without(base_claims(), "iss"), MISSING),
        (
            "another audience",
            with(base_claims(), "aud", json!("other-api")),
            AUDIENCE_REFUSED,
        ),
        (
            "audience list without ours",
            with(base_claims(), "aud", json!(["a", "b"])),
            AUDIENCE_REFUSED,
        ),
        ("no audience", without(base_claims(), "aud"), MISSING),
        (
            "a refresh token on a protected route",
            with(base_claims(), "type", json!("refresh")),
            WRONG_TYPE,
        ),
        (
            "an unknown type",
            with(base_claims(), "type", json!("admin")),
            WRONG_TYPE,
        ),
        ("no type", without(base_claims(), "type"), MISSING),
        (
            "empty subject",
            with(base_claims(), "sub", json!("")),
            MISSING,
        ),
        (
            "subject as a number",
            with(base_claims(), "sub", json!(1)),
            MALFORMED,
        ),
        ("no jti", without(base_claims(), "jti"), MISSING),
    ];
    for (case, claims, expected) in cases {
        let token = signed_and_recorded(&t, &claims).await;
        assert_refused(case, &me(&t, &token).await, expected);
    }

    // A valid signature over a jti this service never issued.
    let claims = base_claims();
    let token = sign_raw(
        &header("ES256", Some("ec-a")),
        claims.to_string().as_bytes(),
        Algorithm::ES256,
        &ec_a(),
    );
    assert_refused("a jti never issued", &me(&t, &token).await, UNKNOWN_TOKEN);

    // An access token on the refresh endpoint.
    let pair = t.security.create_token_pair("1", None).await.unwrap();
    assert_refused(
        "an access token on /auth/refresh",
        &refresh(&t, &pair.access_token).await,
        WRONG_TYPE,
    );
    // And the refresh token on a protected route.
    assert_refused(
        "a refresh token on /auth/me",
        &me(&t, &pair.refresh_token).await,
        WRONG_TYPE,
    );
}

#[tokio::test]
async fn mangled_tokens_are_malformed() {
    let t = target_with(three_keys());
    let token = signed_and_recorded(&t, &base_claims()).await;
    let parts: Vec<&str> = token.split('.').collect();
    let (h, p, s) = (parts[0], parts[1], parts[2]);
    let cases: Vec<(String, String, (&str, &str))> = vec![
        (
            "truncated signature".into(),
            format!("{h}.{p}.{}", &s[..s.len() - 10]),
            BAD_SIGNATURE,
        ),
        ("no signature".into(), format!("{h}.{p}."), BAD_SIGNATURE),
        ("two segments".into(), format!("{h}.{p}"), MALFORMED),
        ("four segments".into(), format!("{token}.{s}"), MALFORMED),
        (
            "truncated mid-payload".into(),
            token[..h.len() + 10].to_owned(),
            MALFORMED,
        ),
        (
            "bad base64 in the header".into(),
            format!("{}!.{p}.{s}", &h[..h.len() - 1]),
            MALFORMED,
        ),
        // The signature is checked over the segments as sent, before the
        // payload is decoded: a changed payload fails there.
        (
            "bad base64 in the payload".into(),
            format!("{h}.{}*.{s}", &p[..p.len() - 1]),
            BAD_SIGNATURE,
        ),
        (
            "bad base64 in the signature".into(),
            format!("{h}.{p}.{}$", &s[..s.len() - 1]),
            MALFORMED,
        ),
        ("padded base64".into(), format!("{h}==.{p}.{s}"), MALFORMED),
        (
            "header not JSON".into(),
            format!("{}.{p}.{s}", b64(b"not json")),
            MALFORMED,
        ),
        (
            "header a JSON array".into(),
            format!("{}.{p}.{s}", b64(b"[1,2]")),
            MALFORMED,
        ),
        ("empty".into(), "..".into(), MALFORMED),
    ];
    for (case, token, expected) in cases {
        assert_refused(&case, &me(&t, &token).await, expected);
    }
}

#[tokio::test]
async fn oversized_nested_and_duplicated_payloads_are_refused() {
    let t = target_with(three_keys());
    let megabyte = "A".repeat(1024 * 1024);
    // A 1 MB header and a 1 MB payload: refused unread.
    let big_header = json!({"alg": "ES256", "kid": "ec-a", "pad": megabyte});
    let token = sign_raw(
        &big_header,
        base_claims().to_string().as_bytes(),
        Algorithm::ES256,
        &ec_a(),
    );
    assert_refused("1 MB header", &me(&t, &token).await, TOO_LARGE);
    let token = signed_and_recorded(&t, &with(base_claims(), "pad", json!(megabyte))).await;
    assert_refused("1 MB payload", &me(&t, &token).await, TOO_LARGE);

    // Deeply nested JSON, small enough to get past the size check.
    let depth = 2000;
    let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let claims = base_claims();
    let mut text = claims.to_string();
    text.insert_str(text.len() - 1, &format!(",\"deep\":{nested}"));
    record(&t, &claims).await;
    let token = sign_raw(
        &header("ES256", Some("ec-a")),
        text.as_bytes(),
        Algorithm::ES256,
        &ec_a(),
    );
    assert_refused("deeply nested payload", &me(&t, &token).await, MALFORMED);
    let nested_header = format!("{{\"alg\":\"ES256\",\"kid\":\"ec-a\",\"x\":{nested}}}");
    let token = format!(
        "{}.{}.{}",
        b64(nested_header.as_bytes()),
        b64(base_claims().to_string().as_bytes()),
        "c2ln"
    );
    assert_refused("deeply nested header", &me(&t, &token).await, MALFORMED);

    // Duplicate claims: which one a parser keeps differs between libraries,
    // so a token with two `sub`s (or two of any claim the checks read) is
    // refused outright.
    for field in ["sub", "exp", "type", "aud", "iss", "jti"] {
        let claims = base_claims();
        record(&t, &claims).await;
        let mut text = claims.to_string();
        let duplicate = match field {
            "sub" => json!("2"),
            "exp" => json!(now() + 999_999),
            "type" => json!("refresh"),
            "aud" => json!("other-api"),
            "iss" => json!("evil-auth"),
            _ => json!("another-jti"),
        };
        text.insert_str(text.len() - 1, &format!(",\"{field}\":{duplicate}"));
        let token = sign_raw(
            &header("ES256", Some("ec-a")),
            text.as_bytes(),
            Algorithm::ES256,
            &ec_a(),
        );
        assert_refused(
            &format!("duplicate {field}"),
            &me(&t, &token).await,
            MALFORMED,
        );
    }
}

#[tokio::test]
async fn the_refresh_endpoint_refuses_the_same_attacks() {
    let t = target_with(three_keys());
    let refresh_claims = || with(base_claims(), "type", json!("refresh"));
    // Untouched, it works (its session is its own).
    let ok = signed_and_recorded(&t, &with(refresh_claims(), "sid", json!("s-1"))).await;
    let res = refresh(&t, &ok).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());

    let claims = refresh_claims();
    record(&t, &claims).await;
    let h = b64(header("none", None).to_string().as_bytes());
    let none = format!("{h}.{}.", b64(claims.to_string().as_bytes()));
    assert_eq!(refresh(&t, &none).await.status, StatusCode::UNAUTHORIZED);
    let cases: Vec<(&str, Value, (&str, &str))> = vec![
        (
            "another issuer",
            with(refresh_claims(), "iss", json!("evil-auth")),
            ISSUER_REFUSED,
        ),
        (
            "exp as a string",
            with(refresh_claims(), "exp", json!("9999999999")),
            MALFORMED,
        ),
        (
            "iat in the future",
            with(refresh_claims(), "iat", json!(now() + 3600)),
            NOT_YET,
        ),
    ];
    for (case, claims, expected) in cases {
        let token = signed_and_recorded(&t, &claims).await;
        assert_refused(case, &refresh(&t, &token).await, expected);
    }
    let unknown = sign_raw(
        &header("ES256", Some("ec-a")),
        refresh_claims().to_string().as_bytes(),
        Algorithm::ES256,
        &ec_a(),
    );
    assert_refused(
        "a refresh jti never issued",
        &refresh(&t, &unknown).await,
        UNKNOWN_TOKEN,
    );
}
