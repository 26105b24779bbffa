//! Interop with the seed (the Python module): tokens minted by PyJWT with the
//! same secret, audience and issuer validate here once their `jti` is on
//! record, and tokens minted here have the seed's claim layout, readable by
//! any HS256 JWT library.
//!
//! Vectors: `tests/fixtures/python_vectors.json` (see the README next to it).

// Test helpers may panic: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::*;
use fastcore_security::{
    Algorithm, Audience, Claims, Error, InvalidTokenReason, MemoryTokenStore, Security,
    SecurityConfig, TokenRecord, TokenType,
};
use serde_json::{Value, json};

/// A service configured like the Python one that made the vectors.
fn seed_like(secret_field: &str, algorithm: Algorithm) -> Security {
    let v = python_vectors();
    let config = SecurityConfig::builder()
        .secret(str_of(&v, secret_field))
        .algorithm(algorithm)
        .audience(str_of(&v, "audience"))
        .issuer(str_of(&v, "issuer"))
        .build()
        .unwrap();
    Security::new(config, Arc::new(MemoryTokenStore::new())).unwrap()
}

/// Records a vector's `jti` as the seed's token table would hold it.
async fn put_on_record(security: &Security, claims: &Value) {
    security
        .store()
        .insert(&TokenRecord::new(
            str_of(claims, "jti"),
            str_of(claims, "type").parse().unwrap(),
            str_of(claims, "sub"),
            None,
            claims["iat"].as_i64().unwrap(),
            claims["exp"].as_i64().unwrap(),
        ))
        .await
        .unwrap();
}

fn expect_claims(claims: &Claims, vector: &Value) {
    assert_eq!(claims.sub, str_of(vector, "sub"));
    assert_eq!(claims.jti, str_of(vector, "jti"));
    assert_eq!(claims.token_type.as_str(), str_of(vector, "type"));
    assert_eq!(claims.iat, vector["iat"].as_i64().unwrap());
    assert_eq!(claims.exp, vector["exp"].as_i64().unwrap());
    assert_eq!(
        claims.aud,
        Some(Audience::One(str_of(vector, "aud").into()))
    );
    assert_eq!(claims.iss.as_deref(), Some(str_of(vector, "iss")));
    assert_eq!(claims.sid, None, "the seed has no sessions");
    assert!(claims.extra.is_empty(), "{:?}", claims.extra);
}

#[tokio::test]
async fn pyjwt_access_token_validates_once_its_jti_is_on_record() {
    let v = python_vectors();
    let security = seed_like("secret", Algorithm::HS256);
    let token = str_of(&v, "pyjwt_access");

    // Signature and claims are fine, but the store has never heard of it.
    expect_claims(
        &security
            .validate_jwt_stateless(token, Some(TokenType::Access))
            .unwrap(),
        &v["pyjwt_access_claims"],
    );
    assert!(matches!(
        security.validate_token(token, None).await,
        Err(Error::InvalidToken(InvalidTokenReason::UnknownToken))
    ));

    put_on_record(&security, &v["pyjwt_access_claims"]).await;
    let claims = security
        .validate_token(token, Some(TokenType::Access))
        .await
        .unwrap();
    expect_claims(&claims, &v["pyjwt_access_claims"]);
    assert!(matches!(
        security
            .validate_token(token, Some(TokenType::Refresh))
            .await,
        Err(Error::InvalidToken(InvalidTokenReason::WrongType))
    ));

    // Revocation works on the seed's tokens like on ours.
    security.revoke_token(token).await.unwrap();
    assert!(matches!(
        security.validate_token(token, None).await,
        Err(Error::RevokedToken)
    ));
}

#[tokio::test]
async fn pyjwt_refresh_token_refreshes_and_logs_out() {
    let v = python_vectors();
    let security = seed_like("secret", Algorithm::HS256);
    let refresh = str_of(&v, "pyjwt_refresh");
    put_on_record(&security, &v["pyjwt_refresh_claims"]).await;
    expect_claims(
        &security
            .validate_token(refresh, Some(TokenType::Refresh))
            .await
            .unwrap(),
        &v["pyjwt_refresh_claims"],
    );

    let fresh = security.refresh_access_token(refresh).await.unwrap();
    let claims = security
        .validate_token(&fresh.access_token, Some(TokenType::Access))
        .await
        .unwrap();
    assert_eq!(claims.sub, "42");
    // The seed's token had no session; its rotation starts one, so the
    // new tokens can be ended together.
    let sid = claims.sid.expect("rotation gives the session an id");
    let rotated = security
        .validate_token(&fresh.refresh_token, Some(TokenType::Refresh))
        .await
        .unwrap();
    assert_eq!(rotated.sid.as_deref(), Some(sid.as_str()));

    // A seed token has no session: logout revokes exactly the token shown.
    assert_eq!(security.logout(refresh).await.unwrap(), 1);
    assert!(matches!(
        security.refresh_access_token(refresh).await,
        Err(Error::RevokedToken)
    ));
    security
        .validate_token(&fresh.access_token, None)
        .await
        .unwrap();
}

#[tokio::test]
async fn pyjwt_expired_token_is_expired() {
    let v = python_vectors();
    let security = seed_like("secret", Algorithm::HS256);
    let token = str_of(&v, "pyjwt_expired");
    put_on_record(&security, &v["pyjwt_expired_claims"]).await;
    assert!(matches!(
        security.validate_token(token, None).await,
        Err(Error::ExpiredToken)
    ));
    assert!(matches!(
        security.validate_jwt_stateless(token, None),
        Err(Error::ExpiredToken)
    ));
    // decode_token still reads it (for logout of an expired session).
    expect_claims(
        &security.decode_token(token).unwrap(),
        &v["pyjwt_expired_claims"],
    );
}

#[tokio::test]
async fn pyjwt_token_signed_with_another_secret_has_a_bad_signature() {
    let v = python_vectors();
    let security = seed_like("secret", Algorithm::HS256);
    let token = str_of(&v, "pyjwt_wrong_secret");
    put_on_record(&security, &v["pyjwt_wrong_secret_claims"]).await;
    assert!(matches!(
        security.validate_token(token, None).await,
        Err(Error::InvalidToken(InvalidTokenReason::BadSignature))
    ));
    assert!(matches!(
        security.revoke_token(token).await,
        Err(Error::InvalidToken(InvalidTokenReason::BadSignature))
    ));

    // With the secret it was signed with, it is fine.
    let other = seed_like("wrong_secret", Algorithm::HS256);
    put_on_record(&other, &v["pyjwt_wrong_secret_claims"]).await;
    other.validate_token(token, None).await.unwrap();
}

#[tokio::test]
async fn pyjwt_hs512_token_validates_with_the_hs512_config_only() {
    let v = python_vectors();
    let token = str_of(&v, "pyjwt_hs512");
    assert_eq!(header_json(token)["alg"], "HS512");

    let hs512 = seed_like("secret_hs512", Algorithm::HS512);
    put_on_record(&hs512, &v["pyjwt_hs512_claims"]).await;
    expect_claims(
        &hs512
            .validate_token(token, Some(TokenType::Access))
            .await
            .unwrap(),
        &v["pyjwt_hs512_claims"],
    );

    // An HS256 service with the same secret refuses the algorithm.
    let hs256 = memory_security_with(
        SecurityConfig::builder()
            .secret(str_of(&v, "secret_hs512"))
            .audience(str_of(&v, "audience"))
            .issuer(str_of(&v, "issuer"))
            .build()
            .unwrap(),
    );
    put_on_record(&hs256, &v["pyjwt_hs512_claims"]).await;
    assert!(matches!(
        hs256.validate_token(token, None).await,
        Err(Error::InvalidToken(InvalidTokenReason::DisallowedAlgorithm))
    ));
    // And the HS256 vectors are refused by the HS512 service.
    put_on_record(&hs512, &v["pyjwt_access_claims"]).await;
    assert!(matches!(
        hs512.validate_token(str_of(&v, "pyjwt_access"), None).await,
        Err(Error::InvalidToken(InvalidTokenReason::DisallowedAlgorithm))
    ));
}

#[tokio::test]
async fn pyjwt_tokens_are_refused_by_a_service_with_another_audience_or_issuer() {
    let v = python_vectors();
    let token = str_of(&v, "pyjwt_access");
    for (aud, iss, reason) in [
        ("other-api", "fastcore-auth", InvalidTokenReason::Audience),
        ("fastcore-api", "other-auth", InvalidTokenReason::Issuer),
    ] {
        let security = memory_security_with(
            SecurityConfig::builder()
                .secret(str_of(&v, "secret"))
                .audience(aud)
                .issuer(iss)
                .build()
                .unwrap(),
        );
        put_on_record(&security, &v["pyjwt_access_claims"]).await;
        match security.validate_token(token, None).await {
            Err(Error::InvalidToken(r)) => assert_eq!(r, reason),
            other => panic!("{aud}/{iss}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn tokens_minted_here_have_the_seed_layout() {
    let v = python_vectors();
    let security = seed_like("secret", Algorithm::HS256);
    let user_id: i64 = 42;
    let pair = security
        .create_token_pair(&user_id.to_string(), None)
        .await
        .unwrap();

    for (token, kind) in [
        (&pair.access_token, "access"),
        (&pair.refresh_token, "refresh"),
    ] {
        assert_eq!(header_json(token), json!({"alg": "HS256", "typ": "JWT"}));
        let payload = payload_json(token);
        let object = payload.as_object().unwrap();
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort_unstable();
        // The seed's claims, plus `sid` (the login session; PyJWT ignores it).
        assert_eq!(
            keys,
            ["aud", "exp", "iat", "iss", "jti", "sid", "sub", "type"]
        );
        assert_eq!(
            payload["sub"],
            json!("42"),
            "sub is a string, never a number"
        );
        assert_eq!(payload["type"], kind);
        assert_eq!(payload["aud"], v["audience"]);
        assert_eq!(payload["iss"], v["issuer"]);
        assert!(payload["iat"].is_i64() && payload["exp"].is_i64());
        assert!(uuid::Uuid::parse_str(payload["jti"].as_str().unwrap()).is_ok());

        // What PyJWT's jwt.decode(token, secret, algorithms=["HS256"],
        // audience=..., issuer=...) does, with an independent decoder.
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_audience(&[str_of(&v, "audience")]);
        validation.set_issuer(&[str_of(&v, "issuer")]);
        let key = jsonwebtoken::DecodingKey::from_secret(str_of(&v, "secret").as_bytes()).unwrap();
        let decoded = jsonwebtoken::decode::<Value>(token, &key, &validation).unwrap();
        assert_eq!(decoded.claims, payload);
    }
}

#[tokio::test]
async fn integer_subjects_from_the_seed_are_refused_not_coerced() {
    // The seed's README passes an integer `sub`; PyJWT >= 2.10 refuses such
    // tokens, and so does this library (RFC 7519: `sub` is a string).
    let v = python_vectors();
    let security = seed_like("secret", Algorithm::HS256);
    let mut claims = v["pyjwt_access_claims"].clone();
    claims["sub"] = json!(42);
    claims["jti"] = json!("int-sub");
    let token = security.encode_jwt(&claims).unwrap();
    assert!(matches!(
        security.validate_jwt_stateless(&token, None),
        Err(Error::InvalidToken(InvalidTokenReason::Malformed))
    ));
}
