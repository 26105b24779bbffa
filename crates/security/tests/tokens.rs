//! Token life cycle through the public API: every token export of the seed
//! (create, validate, refresh, revoke, decode, encode, stateless validation,
//! the store, `TokenType`, setup and status), and the refusals a careful
//! user expects (expired, revoked, wrong type, tampered, unknown, wrong
//! audience or issuer, `alg: none`, oversized).

// Test helpers and doubles may panic: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use fastcore_security::{
    Algorithm, Audience, Error, InvalidTokenReason, MAX_SUBJECT_BYTES, MemoryTokenStore,
    RESERVED_CLAIMS, Security, SecurityConfig, TokenStore, TokenType, connect_store,
    get_security_status, setup_security,
};
use serde_json::json;

// ------------------------------------------------------------------ creation

#[tokio::test]
async fn create_access_token_is_recorded_and_validates() {
    let security = memory_security();
    let issued = security
        .create_access_token("42", Some(extra(&[("role", json!("admin"))])))
        .await
        .unwrap();
    assert_eq!(issued.expires_in, 30 * 60);
    assert_eq!(issued.claims.token_type, TokenType::Access);
    assert_eq!(issued.claims.sub, "42");
    assert_eq!(
        issued.claims.sid, None,
        "a lone access token starts no session"
    );
    assert_eq!(issued.claims.exp - issued.claims.iat, 30 * 60);
    assert_eq!(issued.claims.aud, Some(Audience::One(AUDIENCE.into())));
    assert_eq!(issued.claims.iss.as_deref(), Some(ISSUER));

    let record = security
        .store()
        .get(&issued.claims.jti)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record, record_of(&issued.claims));

    let claims = security
        .validate_token(&issued.token, Some(TokenType::Access))
        .await
        .unwrap();
    assert_eq!(claims, issued.claims);
    assert_eq!(claims.extra["role"], "admin");
}

#[tokio::test]
async fn create_refresh_token_starts_a_session() {
    let security = memory_security();
    let issued = security.create_refresh_token("42", None).await.unwrap();
    assert_eq!(issued.expires_in, 7 * 86_400);
    assert_eq!(issued.claims.token_type, TokenType::Refresh);
    let sid = issued
        .claims
        .sid
        .clone()
        .expect("refresh tokens carry a sid");
    let record = security
        .store()
        .get(&issued.claims.jti)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.family_id.as_deref(), Some(sid.as_str()));
    assert_eq!(record.token_type, TokenType::Refresh);

    let other = security.create_refresh_token("42", None).await.unwrap();
    assert_ne!(other.claims.sid.as_deref(), Some(sid.as_str()));
    assert_ne!(other.claims.jti, issued.claims.jti);
}

#[tokio::test]
async fn create_token_pair_is_an_oauth2_token_response_of_one_session() {
    let security = memory_security_with(
        config_builder()
            .access_token_ttl(Duration::from_secs(15 * 60))
            .refresh_token_ttl(Duration::from_secs(2 * 86_400))
            .build()
            .unwrap(),
    );
    let pair = security.create_token_pair("42", None).await.unwrap();
    assert_eq!(pair.token_type, "bearer");
    assert_eq!(pair.expires_in, 15 * 60);
    assert_eq!(pair.refresh_expires_in, 2 * 86_400);

    let (access, refresh) = validate_pair(&security, &pair).await;
    assert!(access.sid.is_some());
    assert_eq!(access.sid, refresh.sid, "both tokens belong to one session");
    assert_ne!(access.jti, refresh.jti);
    assert_eq!(refresh.exp - refresh.iat, 2 * 86_400);

    let json = serde_json::to_value(&pair).unwrap();
    assert_token_response_fields(&json);
}

#[tokio::test]
async fn reserved_extra_claims_are_refused_and_nothing_is_recorded() {
    let security = memory_security();
    for name in RESERVED_CLAIMS {
        let err = security
            .create_access_token("42", Some(extra(&[(name, json!("x"))])))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{name}: {err:?}");
        assert!(err.to_string().contains(name), "{err}");
        let err = security
            .create_token_pair("42", Some(extra(&[(name, json!(1))])))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{name}: {err:?}");
    }
    assert!(security.list_user_tokens("42").await.unwrap().is_empty());
}

#[tokio::test]
async fn subjects_integer_like_unicode_and_limits() {
    let security = memory_security();
    // An integer user id travels as the string "42" (RFC 7519 `sub`).
    let id: u64 = 42;
    let issued = security
        .create_access_token(&id.to_string(), None)
        .await
        .unwrap();
    assert_eq!(payload_json(&issued.token)["sub"], json!("42"));

    for sub in ["用户-ünïcode-🙂", "a b\tc", "0", "-1", "user@example.com"] {
        let pair = security.create_token_pair(sub, None).await.unwrap();
        let claims = security
            .validate_token(&pair.access_token, Some(TokenType::Access))
            .await
            .unwrap();
        assert_eq!(claims.sub, sub);
        assert_eq!(security.list_user_tokens(sub).await.unwrap().len(), 2);
    }

    let longest = "é".repeat(MAX_SUBJECT_BYTES / 2);
    assert_eq!(longest.len(), MAX_SUBJECT_BYTES);
    let issued = security.create_access_token(&longest, None).await.unwrap();
    assert_eq!(
        security
            .validate_token(&issued.token, None)
            .await
            .unwrap()
            .sub,
        longest
    );
    for bad in [String::new(), "x".repeat(MAX_SUBJECT_BYTES + 1)] {
        let err = security.create_access_token(&bad, None).await.unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    }
}

// ---------------------------------------------------------------- validation

#[tokio::test]
async fn validate_token_without_expected_type_accepts_both() {
    let security = memory_security();
    let pair = security.create_token_pair("7", None).await.unwrap();
    let a = security
        .validate_token(&pair.access_token, None)
        .await
        .unwrap();
    let r = security
        .validate_token(&pair.refresh_token, None)
        .await
        .unwrap();
    assert_eq!(a.token_type, TokenType::Access);
    assert_eq!(r.token_type, TokenType::Refresh);
}

#[tokio::test]
async fn expired_token_is_expired_even_with_its_record_on_file() {
    let security = memory_security();
    let token = expired_token(&security, "42", TokenType::Access, None).await;
    assert!(matches!(
        security
            .validate_token(&token, Some(TokenType::Access))
            .await,
        Err(Error::ExpiredToken)
    ));
    assert!(matches!(
        security.validate_jwt_stateless(&token, None),
        Err(Error::ExpiredToken)
    ));
    assert_eq!(Error::ExpiredToken.code(), "token_expired");
}

#[tokio::test]
async fn expiry_within_the_leeway_is_accepted_and_outside_it_is_not() {
    // exp a minute ago: inside a 300 s leeway (with minutes of margin, so a
    // slow machine cannot flip it), outside the default 5 s and a 0 s one.
    let mut claims = claims_for(&memory_security(), "42", TokenType::Access, -60);
    let lenient = memory_security_with(
        config_builder()
            .leeway(Duration::from_secs(300))
            .build()
            .unwrap(),
    );
    let token = encode_and_record(&lenient, &claims).await;
    lenient.validate_token(&token, None).await.unwrap();

    for leeway in [None, Some(Duration::ZERO)] {
        let builder = match leeway {
            Some(l) => config_builder().leeway(l),
            None => config_builder(),
        };
        let strict = memory_security_with(builder.build().unwrap());
        claims.jti = uuid::Uuid::new_v4().to_string();
        let token = encode_and_record(&strict, &claims).await;
        assert!(matches!(
            strict.validate_token(&token, None).await,
            Err(Error::ExpiredToken)
        ));
    }
}

#[tokio::test]
async fn revoked_token_is_revoked() {
    let security = memory_security();
    let pair = security.create_token_pair("42", None).await.unwrap();
    security.revoke_token(&pair.access_token).await.unwrap();
    assert!(matches!(
        security.validate_token(&pair.access_token, None).await,
        Err(Error::RevokedToken)
    ));
    // Only that token: its refresh token lives on.
    security
        .validate_token(&pair.refresh_token, Some(TokenType::Refresh))
        .await
        .unwrap();
}

#[tokio::test]
async fn wrong_token_type_is_refused_both_ways() {
    let security = memory_security();
    let pair = security.create_token_pair("42", None).await.unwrap();
    assert_invalid(
        security
            .validate_token(&pair.refresh_token, Some(TokenType::Access))
            .await,
        InvalidTokenReason::WrongType,
    );
    assert_invalid(
        security
            .validate_token(&pair.access_token, Some(TokenType::Refresh))
            .await,
        InvalidTokenReason::WrongType,
    );
    assert_invalid(
        security.refresh_access_token(&pair.access_token).await,
        InvalidTokenReason::WrongType,
    );
}

#[tokio::test]
async fn tampered_tokens_are_refused() {
    let security = memory_security();
    let issued = security.create_access_token("42", None).await.unwrap();

    let bad_sig = tamper_signature(&issued.token);
    assert_refused(&security, &bad_sig, InvalidTokenReason::BadSignature).await;

    // A payload claiming another user, with the original signature.
    let mut payload = payload_json(&issued.token);
    payload["sub"] = json!("1");
    let parts: Vec<&str> = issued.token.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64url(&serde_json::to_vec(&payload).unwrap()),
        parts[2]
    );
    assert_refused(&security, &forged, InvalidTokenReason::BadSignature).await;

    // Signed by another secret.
    let other = memory_security_with(
        config_builder()
            .secret("a-completely-different-secret-of-enough-bytes-000")
            .build()
            .unwrap(),
    );
    let foreign = other.create_access_token("42", None).await.unwrap();
    assert_invalid(
        security.validate_token(&foreign.token, None).await,
        InvalidTokenReason::BadSignature,
    );

    for garbage in ["", "abc", "a.b", "a.b.c", "a.b.c.d", "....", "Bearer x.y.z"] {
        assert_invalid(
            security.validate_token(garbage, None).await,
            InvalidTokenReason::Malformed,
        );
    }
}

#[tokio::test]
async fn unknown_jti_with_a_valid_signature_is_refused() {
    let security = memory_security();
    let claims = claims_for(&security, "42", TokenType::Access, 600);
    let token = security.encode_jwt(&claims).unwrap();
    assert_refused(&security, &token, InvalidTokenReason::UnknownToken).await;
    // ...though its signature and claims are fine.
    assert_eq!(
        security.validate_jwt_stateless(&token, None).unwrap(),
        claims
    );
}

#[tokio::test]
async fn a_record_of_another_user_or_type_is_a_mismatch() {
    let security = memory_security();
    let claims = claims_for(&security, "42", TokenType::Access, 600);
    let token = security.encode_jwt(&claims).unwrap();
    let mut record = record_of(&claims);
    record.user_id = "43".into();
    security.store().insert(&record).await.unwrap();
    assert_refused(&security, &token, InvalidTokenReason::RecordMismatch).await;

    let claims = claims_for(&security, "42", TokenType::Access, 600);
    let token = security.encode_jwt(&claims).unwrap();
    let mut record = record_of(&claims);
    record.token_type = TokenType::Refresh;
    security.store().insert(&record).await.unwrap();
    assert_refused(&security, &token, InvalidTokenReason::RecordMismatch).await;
}

#[tokio::test]
async fn wrong_audience_and_issuer_are_refused() {
    let security = memory_security();

    let other_aud = memory_security_with(config_builder().audience("other-api").build().unwrap());
    let t = other_aud.create_access_token("42", None).await.unwrap();
    security
        .store()
        .insert(&record_of(&t.claims))
        .await
        .unwrap();
    assert_invalid(
        security.validate_token(&t.token, None).await,
        InvalidTokenReason::Audience,
    );

    let other_iss = memory_security_with(config_builder().issuer("someone-else").build().unwrap());
    let t = other_iss.create_access_token("42", None).await.unwrap();
    security
        .store()
        .insert(&record_of(&t.claims))
        .await
        .unwrap();
    assert_invalid(
        security.validate_token(&t.token, None).await,
        InvalidTokenReason::Issuer,
    );

    // A token without aud/iss where both are required.
    let bare = memory_security_with(
        SecurityConfig::builder()
            .secret(TEST_SECRET)
            .build()
            .unwrap(),
    );
    let t = bare.create_access_token("42", None).await.unwrap();
    assert!(payload_json(&t.token).get("aud").is_none());
    security
        .store()
        .insert(&record_of(&t.claims))
        .await
        .unwrap();
    assert_invalid(
        security.validate_token(&t.token, None).await,
        InvalidTokenReason::MissingClaim,
    );

    // A service with no audience refuses tokens meant for one.
    let t = security.create_access_token("42", None).await.unwrap();
    bare.store().insert(&record_of(&t.claims)).await.unwrap();
    assert_invalid(
        bare.validate_token(&t.token, None).await,
        InvalidTokenReason::Audience,
    );
}

#[tokio::test]
async fn allowed_audiences_accept_any_listed_audience_and_arrays() {
    let security = memory_security_with(
        config_builder()
            .allowed_audiences(["fastcore-api".to_owned(), "admin-api".to_owned()])
            .build()
            .unwrap(),
    );
    for aud in [
        Audience::One("admin-api".into()),
        Audience::Many(vec!["x".into(), "fastcore-api".into()]),
    ] {
        let mut claims = claims_for(&security, "42", TokenType::Access, 600);
        claims.aud = Some(aud);
        let token = encode_and_record(&security, &claims).await;
        security.validate_token(&token, None).await.unwrap();
    }
    let mut claims = claims_for(&security, "42", TokenType::Access, 600);
    claims.aud = Some(Audience::Many(vec!["x".into(), "y".into()]));
    let token = encode_and_record(&security, &claims).await;
    assert_refused(&security, &token, InvalidTokenReason::Audience).await;
}

#[tokio::test]
async fn missing_claims_are_named_as_missing() {
    let security = memory_security();
    let now = now();
    for drop in ["sub", "jti", "type", "exp", "iat"] {
        let mut claims = json!({
            "sub": "42", "jti": uuid::Uuid::new_v4().to_string(), "type": "access",
            "iat": now, "exp": now + 600, "aud": AUDIENCE, "iss": ISSUER,
        });
        claims.as_object_mut().unwrap().remove(drop);
        let token = security.encode_jwt(&claims).unwrap();
        assert_refused(&security, &token, InvalidTokenReason::MissingClaim).await;
    }
    // Empty strings count as missing.
    let token = security
        .encode_jwt(&json!({
            "sub": "", "jti": "j", "type": "access", "iat": now, "exp": now + 600,
            "aud": AUDIENCE, "iss": ISSUER,
        }))
        .unwrap();
    assert_refused(&security, &token, InvalidTokenReason::MissingClaim).await;
    // An unknown token type is the wrong type.
    let token = security
        .encode_jwt(&json!({
            "sub": "42", "jti": "j", "type": "id", "iat": now, "exp": now + 600,
            "aud": AUDIENCE, "iss": ISSUER,
        }))
        .unwrap();
    assert_refused(&security, &token, InvalidTokenReason::WrongType).await;
}

#[tokio::test]
async fn exp_of_the_wrong_json_type_is_refused() {
    // CVE-2026-25537: a string `exp` must not be treated as absent.
    let security = memory_security();
    let now = now();
    let token = security
        .encode_jwt(&json!({
            "sub": "42", "jti": "j", "type": "access", "iat": now,
            "exp": (now + 600).to_string(), "aud": AUDIENCE, "iss": ISSUER,
        }))
        .unwrap();
    assert!(matches!(
        security.validate_jwt_stateless(&token, None),
        Err(Error::InvalidToken(_))
    ));
    let token = security
        .encode_jwt(&json!({
            "sub": "42", "jti": "j", "type": "access", "iat": now,
            "exp": "1700000000", "aud": AUDIENCE, "iss": ISSUER,
        }))
        .unwrap();
    assert!(matches!(
        security.validate_jwt_stateless(&token, None),
        Err(Error::InvalidToken(_))
    ));
}

#[tokio::test]
async fn not_before_in_the_future_is_not_yet_valid() {
    let security = memory_security();
    let mut claims = claims_for(&security, "42", TokenType::Access, 7200);
    claims.nbf = Some(now() + 3600);
    let token = encode_and_record(&security, &claims).await;
    assert_refused(&security, &token, InvalidTokenReason::NotYetValid).await;
}

#[tokio::test]
async fn issued_in_the_future_is_not_yet_valid() {
    let security = memory_security();
    let mut claims = claims_for(&security, "42", TokenType::Access, 7200);
    claims.iat = now() + 3600;
    let token = encode_and_record(&security, &claims).await;
    assert_refused(&security, &token, InvalidTokenReason::NotYetValid).await;
    // Within the leeway (5 s by default) a skewed clock is tolerated.
    let mut claims = claims_for(&security, "42", TokenType::Access, 7200);
    claims.iat = now() + 2;
    let token = encode_and_record(&security, &claims).await;
    assert!(security.validate_token(&token, None).await.is_ok());
}

#[tokio::test]
async fn alg_none_and_algorithm_switches_are_refused() {
    let security = memory_security();
    let claims = claims_for(&security, "42", TokenType::Access, 600);
    security.store().insert(&record_of(&claims)).await.unwrap();
    let payload = b64url(&serde_json::to_vec(&claims).unwrap());

    // `alg: none`, with and without a signature segment: jsonwebtoken has no
    // such algorithm, so the header does not even parse.
    for header in [
        json!({"alg": "none", "typ": "JWT"}),
        json!({"alg": "None", "typ": "JWT"}),
        json!({"alg": "NONE"}),
    ] {
        let h = b64url(&serde_json::to_vec(&header).unwrap());
        for token in [format!("{h}.{payload}."), format!("{h}.{payload}.c2ln")] {
            assert_refused(&security, &token, InvalidTokenReason::Malformed).await;
            assert_invalid(security.decode_token(&token), InvalidTokenReason::Malformed);
        }
    }

    // A known algorithm that is not the key's: refused before any crypto.
    for alg in ["RS256", "ES256", "HS384", "EdDSA"] {
        let h = b64url(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#).as_bytes());
        assert_invalid(
            security
                .validate_token(&format!("{h}.{payload}.c2ln"), None)
                .await,
            InvalidTokenReason::DisallowedAlgorithm,
        );
    }

    // The service's own secret used with HS512 by someone who picks the header.
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS512),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(TEST_SECRET.as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(header_json(&token)["alg"], "HS512");
    assert_refused(&security, &token, InvalidTokenReason::DisallowedAlgorithm).await;

    // A `kid` no key has.
    let h = b64url(br#"{"alg":"HS256","typ":"JWT","kid":"rotated-away"}"#);
    let token = format!("{h}.{payload}.c2ln");
    assert_refused(&security, &token, InvalidTokenReason::UnknownKey).await;
}

#[tokio::test]
async fn oversized_tokens_are_refused_before_parsing() {
    let security = memory_security();
    let max = security.config().max_token_bytes();
    assert_eq!(max, 8 * 1024);
    let big = format!("{}.{}.{}", "a".repeat(max), "b", "c");
    assert_refused(&security, &big, InvalidTokenReason::TooLarge).await;
    assert_invalid(security.decode_token(&big), InvalidTokenReason::TooLarge);

    // A genuine token with a huge extra claim, from a service with a larger
    // limit and the same secret: signed fine, on record, refused as too large.
    let generous =
        memory_security_with(config_builder().max_token_bytes(64 * 1024).build().unwrap());
    let issued = generous
        .create_access_token("42", Some(extra(&[("blob", json!("x".repeat(max)))])))
        .await
        .unwrap();
    assert!(issued.token.len() > max);
    security
        .store()
        .insert(&record_of(&issued.claims))
        .await
        .unwrap();
    assert_invalid(
        security.validate_token(&issued.token, None).await,
        InvalidTokenReason::TooLarge,
    );
    // This service would not have issued it (see tests/config.rs).
    assert!(matches!(
        security
            .create_access_token("42", Some(extra(&[("blob", json!("x".repeat(max)))])))
            .await,
        Err(Error::InvalidInput(_))
    ));
}

// -------------------------------------------------------------------- refresh

#[tokio::test]
async fn refresh_access_token_rotates_into_a_new_pair_of_the_same_session() {
    let security = memory_security();
    let pair = security
        .create_token_pair(
            "42",
            Some(extra(&[("role", json!("admin")), ("tenant", json!(7))])),
        )
        .await
        .unwrap();
    let original = security
        .validate_token(&pair.access_token, None)
        .await
        .unwrap();
    let original_refresh = security
        .validate_token(&pair.refresh_token, None)
        .await
        .unwrap();

    let fresh = security
        .refresh_access_token(&pair.refresh_token)
        .await
        .unwrap();
    assert_eq!(fresh.token_type, "bearer");
    assert_eq!(fresh.expires_in, 30 * 60);
    assert_eq!(fresh.refresh_expires_in, 7 * 86_400);
    let claims = security
        .validate_token(&fresh.access_token, Some(TokenType::Access))
        .await
        .unwrap();
    assert_ne!(claims.jti, original.jti);
    assert_eq!(claims.sub, "42");
    assert_eq!(claims.sid, original.sid);
    assert_eq!(claims.extra, original.extra);
    assert_eq!(claims.extra["tenant"], 7);
    let refresh = security
        .validate_token(&fresh.refresh_token, Some(TokenType::Refresh))
        .await
        .unwrap();
    assert_ne!(refresh.jti, original_refresh.jti);
    assert_eq!(refresh.sid, original.sid);
    assert_eq!(refresh.extra, original.extra);

    // The old refresh token is spent; the old access token is untouched
    // (revoking or rotating one token never ends an unrelated one).
    assert!(matches!(
        security
            .validate_token(&pair.refresh_token, Some(TokenType::Refresh))
            .await,
        Err(Error::RevokedToken)
    ));
    security
        .validate_token(&pair.access_token, None)
        .await
        .unwrap();
}

#[tokio::test]
async fn refresh_with_a_dead_refresh_token_fails() {
    let security = memory_security();
    let pair = security.create_token_pair("42", None).await.unwrap();
    security.revoke_token(&pair.refresh_token).await.unwrap();
    assert!(matches!(
        security.refresh_access_token(&pair.refresh_token).await,
        Err(Error::RevokedToken)
    ));

    let expired = expired_token(&security, "42", TokenType::Refresh, Some("s")).await;
    assert!(matches!(
        security.refresh_access_token(&expired).await,
        Err(Error::ExpiredToken)
    ));
    assert_invalid(
        security
            .refresh_access_token(&tamper_signature(&pair.refresh_token))
            .await,
        InvalidTokenReason::BadSignature,
    );
    assert_eq!(
        security.list_user_tokens("42").await.unwrap().len(),
        1,
        "no token was minted by the failed refreshes"
    );
}

// ------------------------------------------------------------------ revocation

#[tokio::test]
async fn revoke_token_is_idempotent_and_accepts_expired_tokens() {
    let security = memory_security();
    let issued = security.create_access_token("42", None).await.unwrap();
    security.revoke_token(&issued.token).await.unwrap();
    security.revoke_token(&issued.token).await.unwrap();
    let record = security
        .store()
        .get(&issued.claims.jti)
        .await
        .unwrap()
        .unwrap();
    assert!(record.revoked_at.is_some());

    let expired = expired_token(&security, "42", TokenType::Access, None).await;
    security.revoke_token(&expired).await.unwrap();
    let jti = payload_json(&expired)["jti"].as_str().unwrap().to_owned();
    assert!(
        security
            .store()
            .get(&jti)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );

    // A bad signature cannot revoke anything.
    assert_invalid(
        security
            .revoke_token(&tamper_signature(&issued.token))
            .await,
        InvalidTokenReason::BadSignature,
    );
}

#[tokio::test]
async fn revoke_jti_reports_whether_a_live_token_changed() {
    let security = memory_security();
    let issued = security.create_access_token("42", None).await.unwrap();
    assert!(security.revoke_jti(&issued.claims.jti).await.unwrap());
    assert!(!security.revoke_jti(&issued.claims.jti).await.unwrap());
    assert!(!security.revoke_jti("no-such-jti").await.unwrap());
}

#[tokio::test]
async fn revoke_other_sessions_and_revoke_all_user_tokens() {
    let security = memory_security();
    let kept = security.create_token_pair("42", None).await.unwrap();
    let other = security.create_token_pair("42", None).await.unwrap();
    let lone = security.create_access_token("42", None).await.unwrap();
    let bystander = security.create_token_pair("43", None).await.unwrap();

    let keep_sid = security
        .validate_token(&kept.access_token, None)
        .await
        .unwrap()
        .sid
        .unwrap();
    let n = security
        .revoke_other_sessions("42", &keep_sid)
        .await
        .unwrap();
    assert_eq!(
        n, 1,
        "one other session (the session-less token is revoked, not counted)"
    );
    security
        .validate_token(&kept.access_token, None)
        .await
        .unwrap();
    security
        .validate_token(&kept.refresh_token, None)
        .await
        .unwrap();
    for dead in [&other.access_token, &other.refresh_token, &lone.token] {
        assert!(matches!(
            security.validate_token(dead, None).await,
            Err(Error::RevokedToken)
        ));
    }

    security.revoke_all_user_tokens("42").await.unwrap();
    for dead in [&kept.access_token, &kept.refresh_token] {
        assert!(matches!(
            security.validate_token(dead, None).await,
            Err(Error::RevokedToken)
        ));
    }
    assert!(security.list_user_tokens("42").await.unwrap().is_empty());
    // Idempotent, and a login afterwards (even within the same second) works.
    security.revoke_all_user_tokens("42").await.unwrap();
    let again = security.create_token_pair("42", None).await.unwrap();
    security
        .validate_token(&again.access_token, None)
        .await
        .unwrap();
    security
        .validate_token(&bystander.access_token, None)
        .await
        .unwrap();
}

#[tokio::test]
async fn logout_ends_the_whole_session() {
    let security = memory_security();
    let pair = security.create_token_pair("42", None).await.unwrap();
    let minted = security
        .refresh_access_token(&pair.refresh_token)
        .await
        .unwrap();
    let other_session = security.create_token_pair("42", None).await.unwrap();

    let n = security.logout(&pair.access_token).await.unwrap();
    assert_eq!(
        n, 4,
        "access, the consumed refresh, and the pair rotated from it"
    );
    for dead in [
        &pair.access_token,
        &pair.refresh_token,
        &minted.access_token,
        &minted.refresh_token,
    ] {
        assert!(matches!(
            security.validate_token(dead, None).await,
            Err(Error::RevokedToken)
        ));
    }
    assert!(matches!(
        security.refresh_access_token(&pair.refresh_token).await,
        Err(Error::RevokedToken)
    ));
    security
        .validate_token(&other_session.access_token, None)
        .await
        .unwrap();
    // Logging out again is fine and changes nothing.
    assert_eq!(security.logout(&pair.access_token).await.unwrap(), 0);
}

#[tokio::test]
async fn logout_with_the_refresh_token_or_an_expired_token_works_too() {
    let security = memory_security();
    let pair = security.create_token_pair("42", None).await.unwrap();
    assert_eq!(security.logout(&pair.refresh_token).await.unwrap(), 2);
    assert!(matches!(
        security.validate_token(&pair.access_token, None).await,
        Err(Error::RevokedToken)
    ));

    let pair = security.create_token_pair("42", None).await.unwrap();
    let sid = security
        .validate_token(&pair.refresh_token, None)
        .await
        .unwrap()
        .sid
        .unwrap();
    let expired = expired_token(&security, "42", TokenType::Access, Some(&sid)).await;
    assert_eq!(security.logout(&expired).await.unwrap(), 3);
    assert!(matches!(
        security.validate_token(&pair.refresh_token, None).await,
        Err(Error::RevokedToken)
    ));

    // A lone access token (no session) is revoked alone.
    let lone = security.create_access_token("42", None).await.unwrap();
    let keep = security.create_token_pair("42", None).await.unwrap();
    assert_eq!(security.logout(&lone.token).await.unwrap(), 1);
    security
        .validate_token(&keep.access_token, None)
        .await
        .unwrap();
}

/// A store that lets a logout land between the rotation of the refresh
/// token and the insert of the new access token, deterministically: right
/// after the watched refresh `jti` is rotated, it revokes the whole
/// session, as a concurrent logout on another instance would.
struct LogoutDuringRefresh {
    inner: MemoryTokenStore,
    watch: std::sync::Mutex<Option<(String, String)>>,
}

#[async_trait::async_trait]
impl TokenStore for LogoutDuringRefresh {
    fn backend(&self) -> &'static str {
        "racing"
    }
    async fn insert(
        &self,
        record: &fastcore_security::TokenRecord,
    ) -> Result<(), fastcore_security::StoreError> {
        self.inner.insert(record).await
    }
    async fn get(
        &self,
        jti: &str,
    ) -> Result<Option<fastcore_security::TokenRecord>, fastcore_security::StoreError> {
        self.inner.get(jti).await
    }
    async fn rotate(
        &self,
        parent: &str,
        child: &fastcore_security::TokenRecord,
        at: i64,
    ) -> Result<fastcore_security::Rotation, fastcore_security::StoreError> {
        let rotation = self.inner.rotate(parent, child, at).await?;
        let hit = {
            let mut watch = self.watch.lock().unwrap();
            match watch.as_ref() {
                Some((j, _)) if j == parent => watch.take(),
                _ => None,
            }
        };
        if let Some((_, sid)) = hit {
            self.inner.revoke_family(&sid, 1).await?;
        }
        Ok(rotation)
    }
    async fn cut_off_user(
        &self,
        user_id: &str,
        at: i64,
    ) -> Result<(), fastcore_security::StoreError> {
        self.inner.cut_off_user(user_id, at).await
    }
    async fn revoke(&self, jti: &str, at: i64) -> Result<bool, fastcore_security::StoreError> {
        self.inner.revoke(jti, at).await
    }
    async fn revoke_family(
        &self,
        family_id: &str,
        at: i64,
    ) -> Result<u64, fastcore_security::StoreError> {
        self.inner.revoke_family(family_id, at).await
    }
    async fn revoke_user(
        &self,
        user_id: &str,
        except_family: Option<&str>,
        at: i64,
    ) -> Result<u64, fastcore_security::StoreError> {
        self.inner.revoke_user(user_id, except_family, at).await
    }
    async fn list_live(
        &self,
        user_id: &str,
        now: i64,
    ) -> Result<Vec<fastcore_security::TokenRecord>, fastcore_security::StoreError> {
        self.inner.list_live(user_id, now).await
    }
    async fn purge_expired(
        &self,
        before: i64,
        batch: u32,
    ) -> Result<u64, fastcore_security::StoreError> {
        self.inner.purge_expired(before, batch).await
    }
    async fn ping(&self) -> Result<(), fastcore_security::StoreError> {
        self.inner.ping().await
    }
}

#[tokio::test]
async fn a_logout_racing_a_refresh_leaves_no_live_token_behind() {
    let store = Arc::new(LogoutDuringRefresh {
        inner: MemoryTokenStore::new(),
        watch: std::sync::Mutex::new(None),
    });
    let security = Security::new(config(), store.clone()).unwrap();
    let pair = security.create_token_pair("42", None).await.unwrap();
    let refresh = security
        .validate_token(&pair.refresh_token, None)
        .await
        .unwrap();
    *store.watch.lock().unwrap() = Some((refresh.jti.clone(), refresh.sid.clone().unwrap()));

    // The refresh passed its check before the logout landed; whatever it
    // returns, no token of the ended session may stay usable.
    let outcome = security.refresh_access_token(&pair.refresh_token).await;
    assert!(
        store.watch.lock().unwrap().is_none(),
        "the logout was injected"
    );
    if let Ok(fresh) = &outcome {
        assert!(
            security
                .validate_token(&fresh.access_token, None)
                .await
                .is_err(),
            "an access token minted across a logout is still valid"
        );
    }
    assert!(matches!(outcome, Err(Error::RevokedToken)), "{outcome:?}");
    assert!(security.list_user_tokens("42").await.unwrap().is_empty());
}

// ------------------------------------------------------ stateless helpers

#[tokio::test]
async fn decode_token_checks_the_signature_but_not_expiry() {
    let security = memory_security();
    let expired = expired_token(&security, "42", TokenType::Access, None).await;
    let claims = security.decode_token(&expired).unwrap();
    assert_eq!(claims.sub, "42");
    assert!(claims.exp < now());
    assert_invalid(
        security.decode_token(&tamper_signature(&expired)),
        InvalidTokenReason::BadSignature,
    );
    // The audience is still checked.
    let other = memory_security_with(config_builder().audience("other-api").build().unwrap());
    let t = other.create_access_token("42", None).await.unwrap();
    assert_invalid(
        security.decode_token(&t.token),
        InvalidTokenReason::Audience,
    );
}

#[tokio::test]
async fn encode_jwt_signs_arbitrary_claims_without_recording_them() {
    let security = memory_security();
    let token = security
        .encode_jwt(&json!({"hello": "world", "n": 1}))
        .unwrap();
    assert_eq!(header_json(&token), json!({"alg": "HS256", "typ": "JWT"}));
    assert_eq!(payload_json(&token), json!({"hello": "world", "n": 1}));
    assert!(security.validate_token(&token, None).await.is_err());

    let claims = claims_for(&security, "42", TokenType::Refresh, 600);
    let token = security.encode_jwt(&claims).unwrap();
    assert_eq!(security.decode_token(&token).unwrap(), claims);
}

#[tokio::test]
async fn validate_jwt_stateless_passes_a_revoked_token_as_documented() {
    let security = memory_security();
    let pair = security.create_token_pair("42", None).await.unwrap();
    security.logout(&pair.access_token).await.unwrap();
    let claims = security
        .validate_jwt_stateless(&pair.access_token, Some(TokenType::Access))
        .unwrap();
    assert_eq!(claims.sub, "42");
    assert_invalid(
        security.validate_jwt_stateless(&pair.access_token, Some(TokenType::Refresh)),
        InvalidTokenReason::WrongType,
    );
    assert_invalid(
        security.validate_jwt_stateless(&tamper_signature(&pair.access_token), None),
        InvalidTokenReason::BadSignature,
    );
}

#[test]
fn token_type_strings_and_serde() {
    assert_eq!(TokenType::Access.as_str(), "access");
    assert_eq!(TokenType::Refresh.to_string(), "refresh");
    assert_eq!("access".parse::<TokenType>().unwrap(), TokenType::Access);
    assert_eq!("refresh".parse::<TokenType>().unwrap(), TokenType::Refresh);
    for bad in ["Access", "REFRESH", "", "id"] {
        assert!(matches!(
            bad.parse::<TokenType>(),
            Err(Error::InvalidToken(InvalidTokenReason::WrongType))
        ));
    }
    assert_eq!(
        serde_json::to_value(TokenType::Refresh).unwrap(),
        json!("refresh")
    );
    assert_eq!(
        serde_json::from_value::<TokenType>(json!("access")).unwrap(),
        TokenType::Access
    );
}

#[test]
fn error_codes_are_stable() {
    assert_eq!(
        Error::InvalidToken(InvalidTokenReason::BadSignature).code(),
        "invalid_token"
    );
    assert_eq!(Error::ExpiredToken.code(), "token_expired");
    assert_eq!(Error::RevokedToken.code(), "token_revoked");
    assert_eq!(Error::InvalidCredentials.code(), "invalid_credentials");
    assert_eq!(
        Error::TooManyAttempts {
            retry_after: std::time::Duration::from_secs(1)
        }
        .code(),
        "too_many_attempts"
    );
    assert_eq!(
        Error::Authentication("x".into()).code(),
        "authentication_failed"
    );
    assert!(Error::RevokedToken.is_token_error());
    assert!(!Error::InvalidCredentials.is_token_error());
}

// ------------------------------------------------------------- store access

#[tokio::test]
async fn the_token_store_is_reachable_as_a_trait_object() {
    let security = memory_security();
    let store: &Arc<dyn TokenStore> = security.store();
    assert_eq!(store.backend(), "memory");
    let issued = security.create_refresh_token("42", None).await.unwrap();
    let record = store.get(&issued.claims.jti).await.unwrap().unwrap();
    assert_eq!(record.token_type, TokenType::Refresh);
    assert_eq!(record.user_id, "42");
    assert_eq!(record.issued_at, issued.claims.iat);
    assert_eq!(record.expires_at, issued.claims.exp);
    assert!(record.is_live(now()));
    assert!(store.revoke(&record.jti, now()).await.unwrap());
    assert!(matches!(
        security.validate_token(&issued.token, None).await,
        Err(Error::RevokedToken)
    ));
}

#[tokio::test]
async fn list_user_tokens_shows_live_tokens_only() {
    let security = memory_security();
    let pair = security.create_token_pair("42", None).await.unwrap();
    let lone = security.create_access_token("42", None).await.unwrap();
    expired_token(&security, "42", TokenType::Access, None).await;
    security.create_access_token("43", None).await.unwrap();
    security.revoke_token(&lone.token).await.unwrap();

    let live = security.list_user_tokens("42").await.unwrap();
    let jtis: Vec<_> = live.iter().map(|r| r.jti.clone()).collect();
    let access = security.decode_token(&pair.access_token).unwrap();
    let refresh = security.decode_token(&pair.refresh_token).unwrap();
    assert_eq!(live.len(), 2, "{live:?}");
    assert!(jtis.contains(&access.jti) && jtis.contains(&refresh.jti));
    assert!(
        security
            .list_user_tokens("nobody")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn purge_expired_tokens_removes_expired_records_only() {
    for (security, _dir) in [(memory_security(), None), {
        let (s, d) = sqlite_security().await;
        (s, Some(d))
    }] {
        let live = security.create_token_pair("42", None).await.unwrap();
        let mut expired = Vec::new();
        for _ in 0..7 {
            let t = expired_token(&security, "42", TokenType::Access, None).await;
            expired.push(payload_json(&t)["jti"].as_str().unwrap().to_owned());
        }
        assert_eq!(security.purge_expired_tokens(3).await.unwrap(), 7);
        for jti in &expired {
            assert!(security.store().get(jti).await.unwrap().is_none());
        }
        security
            .validate_token(&live.access_token, None)
            .await
            .unwrap();
        security
            .validate_token(&live.refresh_token, None)
            .await
            .unwrap();
        assert_eq!(security.purge_expired_tokens(3).await.unwrap(), 0);
        // A batch of 0 is treated as 1, not as an endless loop.
        expired_token(&security, "42", TokenType::Access, None).await;
        assert_eq!(security.purge_expired_tokens(0).await.unwrap(), 1);
    }
}

// ------------------------------------------------------------ setup, status

#[tokio::test]
async fn setup_security_on_a_sqlite_file_persists_across_handles() {
    let (security, dir) = sqlite_security().await;
    assert_eq!(security.store().backend(), "sqlite");
    let pair = security.create_token_pair("42", None).await.unwrap();
    drop(security);

    // A second handle on the same file (a restart) sees the same records,
    // and running the migrations again is harmless.
    let again = setup_security(
        config_builder()
            .database_url(sqlite_url(&dir))
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    again
        .validate_token(&pair.access_token, None)
        .await
        .unwrap();
    again.logout(&pair.access_token).await.unwrap();
    assert!(matches!(
        again.validate_token(&pair.refresh_token, None).await,
        Err(Error::RevokedToken)
    ));
}

#[tokio::test]
async fn setup_security_accepts_memory_urls_and_needs_a_url() {
    for url in ["memory:", "sqlite::memory:"] {
        let security = setup_security(config_builder().database_url(url).build().unwrap())
            .await
            .unwrap();
        let pair = security.create_token_pair("42", None).await.unwrap();
        security
            .validate_token(&pair.access_token, None)
            .await
            .unwrap();
    }
    let err = setup_security(config()).await.unwrap_err();
    assert!(
        matches!(&err, Error::Config(m) if m.contains("DATABASE_URL")),
        "{err:?}"
    );
}

#[tokio::test]
async fn get_security_status_reports_initialisation_and_the_store() {
    let none = get_security_status(None).await;
    assert!(!none.initialized && !none.store_reachable && !none.healthy());
    assert_eq!(none.status, "unavailable");
    assert_eq!(none.store_backend, None);

    let (security, _dir) = sqlite_security().await;
    let status = get_security_status(Some(&security)).await;
    assert!(status.healthy());
    assert_eq!(status.status, "ok");
    assert_eq!(status.store_backend, Some("sqlite"));
    assert_eq!(status.algorithm.as_deref(), Some("HS256"));
    assert!(!status.development_secret);
    assert!(status.store_latency_ms.is_some());

    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["status"], "ok");
    assert_eq!(json["initialized"], true);
    assert!(!json.to_string().contains(TEST_SECRET));

    let memory = get_security_status(Some(&memory_security())).await;
    assert_eq!(memory.store_backend, Some("memory"));
    assert!(memory.healthy());
}

#[tokio::test]
async fn connect_store_names_the_missing_feature() {
    for (url, feature, compiled_in) in [
        (
            "postgres://app:hunter2@db/prod",
            "postgres",
            cfg!(feature = "postgres"),
        ),
        (
            "postgresql://db/prod",
            "postgres",
            cfg!(feature = "postgres"),
        ),
        ("mysql://db/prod", "mysql", cfg!(feature = "mysql")),
        ("redis://127.0.0.1:6379", "redis", cfg!(feature = "redis")),
    ] {
        if compiled_in {
            continue; // tests/backends.rs connects to it.
        }
        let err = match connect_store(url).await {
            Ok(_) => panic!("{url} connected without its feature"),
            Err(err) => err,
        };
        let Error::Config(msg) = &err else {
            panic!("{url}: {err:?}")
        };
        assert!(msg.contains(&format!("`{feature}` feature")), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
    }
    let err = match connect_store("ftp://x").await {
        Ok(_) => panic!("ftp connected"),
        Err(err) => err,
    };
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert_eq!(connect_store("memory:").await.unwrap().backend(), "memory");
}

#[tokio::test]
async fn a_subject_with_nul_is_refused_on_every_backend() {
    let security = memory_security();
    assert!(matches!(
        security.create_token_pair("a\0b", None).await,
        Err(Error::InvalidInput(_))
    ));
    assert!(security.list_user_tokens("a\0b").await.unwrap().is_empty());
}

/// A store whose calls never complete: a connection whose network died
/// mid-query.
struct HangingStore;

#[async_trait::async_trait]
impl TokenStore for HangingStore {
    fn backend(&self) -> &'static str {
        "hanging"
    }
    async fn insert(
        &self,
        _: &fastcore_security::TokenRecord,
    ) -> Result<(), fastcore_security::StoreError> {
        std::future::pending().await
    }
    async fn get(
        &self,
        _: &str,
    ) -> Result<Option<fastcore_security::TokenRecord>, fastcore_security::StoreError> {
        std::future::pending().await
    }
    async fn revoke(&self, _: &str, _: i64) -> Result<bool, fastcore_security::StoreError> {
        std::future::pending().await
    }
    async fn rotate(
        &self,
        _: &str,
        _: &fastcore_security::TokenRecord,
        _: i64,
    ) -> Result<fastcore_security::Rotation, fastcore_security::StoreError> {
        std::future::pending().await
    }
    async fn cut_off_user(&self, _: &str, _: i64) -> Result<(), fastcore_security::StoreError> {
        std::future::pending().await
    }
    async fn revoke_family(&self, _: &str, _: i64) -> Result<u64, fastcore_security::StoreError> {
        std::future::pending().await
    }
    async fn revoke_user(
        &self,
        _: &str,
        _: Option<&str>,
        _: i64,
    ) -> Result<u64, fastcore_security::StoreError> {
        std::future::pending().await
    }
    async fn list_live(
        &self,
        _: &str,
        _: i64,
    ) -> Result<Vec<fastcore_security::TokenRecord>, fastcore_security::StoreError> {
        std::future::pending().await
    }
    async fn purge_expired(&self, _: i64, _: u32) -> Result<u64, fastcore_security::StoreError> {
        std::future::pending().await
    }
    async fn ping(&self) -> Result<(), fastcore_security::StoreError> {
        std::future::pending().await
    }
}

#[tokio::test]
async fn a_store_call_that_hangs_becomes_store_unavailable() {
    let config = config_builder()
        .store_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let healthy = memory_security_with(config.clone());
    let pair = healthy.create_token_pair("42", None).await.unwrap();
    let hanging = Security::new(config, Arc::new(HangingStore)).unwrap();
    // The outer deadline only turns a regression (a hang) into a failure.
    let outcome = tokio::time::timeout(Duration::from_secs(30), async {
        (
            hanging.validate_token(&pair.access_token, None).await,
            hanging.create_token_pair("42", None).await,
            hanging.logout(&pair.access_token).await,
            get_security_status(Some(&hanging)).await,
        )
    })
    .await
    .expect("store calls must not hang");
    assert!(
        matches!(outcome.0, Err(Error::StoreUnavailable(_))),
        "{:?}",
        outcome.0
    );
    assert!(matches!(outcome.1, Err(Error::StoreUnavailable(_))));
    assert!(matches!(outcome.2, Err(Error::StoreUnavailable(_))));
    assert!(!outcome.3.store_reachable);
}

/// A health check answers before a load balancer's probe gives up, even
/// with a long store timeout for requests: the ping has 2 seconds of its
/// own.
#[tokio::test]
async fn a_health_check_does_not_wait_the_whole_store_timeout() {
    let config = config_builder()
        .store_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let hanging = Security::new(config, Arc::new(HangingStore)).unwrap();
    let started = std::time::Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(20), get_security_status(Some(&hanging)))
        .await
        .expect("the health check waited for the store timeout");
    assert!(!status.store_reachable);
    assert!(!status.healthy());
    assert!(started.elapsed() >= Duration::from_secs(2), "gave up early");
}
