//! Prometheus metrics (feature `metrics`): the auth router and
//! `metrics_router` of one `Security` handle, driven over HTTP with
//! `tower::ServiceExt::oneshot`. Each counter moves with the requests that
//! should move it, and the scraped text never holds a token, a user id, a
//! username or a session id.

// Test code: a failed assumption fails the test.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use axum::Router;
use axum::http::{StatusCode, header};
use common::*;
use fastcore_security::http::{METRICS_PATH, metrics_router};
use fastcore_security::{Security, SecurityMetrics, auth_router};
use serde_json::json;

/// Distinctive, so a leak into the metrics text cannot hide.
const USER_ID: &str = "user-id-7f3a9c51";
const USERNAME: &str = "grace-hopper-4242";

fn app(security: &Security) -> Router {
    let directory = TestDirectory::default();
    directory.add(USER_ID, USERNAME, &password_hash());
    auth_router(auth_state(security.clone(), &directory)).merge(metrics_router(security.clone()))
}

/// The scraped samples, `name{labels}` -> value, and the raw text.
async fn scrape(app: &Router) -> (BTreeMap<String, f64>, String) {
    let res = send(app, get(METRICS_PATH, None)).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(
        res.header(header::CONTENT_TYPE),
        Some(SecurityMetrics::CONTENT_TYPE)
    );
    let text = res.text();
    assert!(text.ends_with("# EOF\n"), "{text}");
    let samples = text
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse::<f64>().unwrap())
        })
        .collect();
    (samples, text)
}

fn sample(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(0.0)
}

async fn login(app: &Router, password: &str) -> common::TestResponse {
    send(
        app,
        post_form(
            "/auth/login",
            &[("username", USERNAME), ("password", password)],
        ),
    )
    .await
}

#[tokio::test]
async fn counters_move_with_the_requests_and_name_no_user_or_token() {
    let security = memory_security();
    let app = app(&security);

    let (before, text) = scrape(&app).await;
    // Every login outcome is there from the start, at zero.
    for outcome in ["success", "bad_credentials", "throttled", "error"] {
        let series = format!("fastcore_security_logins_total{{outcome=\"{outcome}\"}}");
        assert_eq!(before.get(&series), Some(&0.0), "{series} in {text}");
    }

    // A failed and a successful login.
    assert_eq!(
        login(&app, "wrong password").await.status,
        StatusCode::UNAUTHORIZED
    );
    let res = login(&app, PASSWORD).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let pair = res.json();
    let access = pair["access_token"].as_str().unwrap().to_owned();
    let refresh = pair["refresh_token"].as_str().unwrap().to_owned();

    // Two validations: one valid, one of a garbage token.
    assert_eq!(
        send(&app, get("/auth/me", Some(&access))).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, get("/auth/me", Some(&tamper_signature(&access))))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    // A rotation, then the spent token again after the grace: reuse.
    let res = send(
        &app,
        post_json("/auth/refresh", &json!({"refresh_token": refresh}), None),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let second = res.json();
    let second_access = second["access_token"].as_str().unwrap().to_owned();

    // Logout of the second session's access token (a session revocation).
    assert_eq!(
        send(&app, post_bearer("/auth/logout", &second_access))
            .await
            .status,
        StatusCode::NO_CONTENT
    );

    // A purge through the handle's store counts what it deleted.
    let purged = security
        .store()
        .purge_expired(now() + 365 * 86_400, 100)
        .await
        .unwrap();
    assert!(purged > 0);

    let (after, text) = scrape(&app).await;
    let delta = |series: &str| sample(&after, series) - sample(&before, series);
    assert_eq!(
        delta(r#"fastcore_security_logins_total{outcome="success"}"#),
        1.0,
        "{text}"
    );
    assert_eq!(
        delta(r#"fastcore_security_logins_total{outcome="bad_credentials"}"#),
        1.0,
        "{text}"
    );
    assert_eq!(
        delta(
            r#"fastcore_security_token_validations_total{mode="strict",token_type="access",outcome="valid"}"#
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        delta(
            r#"fastcore_security_token_validations_total{mode="strict",token_type="access",outcome="invalid_token"}"#
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        delta(r#"fastcore_security_refreshes_total{outcome="rotated"}"#),
        1.0,
        "{text}"
    );
    assert_eq!(
        delta(r#"fastcore_security_revocations_total{kind="session"}"#),
        1.0,
        "{text}"
    );
    assert_eq!(
        delta(r#"fastcore_security_purged_records_total{kind="tokens"}"#),
        purged as f64,
        "{text}"
    );
    // Store calls were timed: every lookup is in the histogram.
    assert!(
        delta(r#"fastcore_security_store_operation_duration_seconds_count{operation="get"}"#)
            >= 1.0,
        "{text}"
    );
    assert!(
        delta(r#"fastcore_security_store_operation_duration_seconds_count{operation="insert"}"#)
            >= 2.0,
        "{text}"
    );
    assert!(
        text.contains("# UNIT fastcore_security_store_operation_duration_seconds seconds"),
        "{text}"
    );

    // Nothing about the user or their tokens.
    let claims = payload_json(&access);
    let forbidden = [
        access.as_str(),
        second_access.as_str(),
        pair["refresh_token"].as_str().unwrap(),
        USER_ID,
        USERNAME,
        claims["jti"].as_str().unwrap(),
        claims["sid"].as_str().unwrap(),
        PASSWORD,
    ];
    for secret in forbidden {
        assert!(!text.contains(secret), "the metrics show {secret:?}");
    }
}

#[tokio::test]
async fn reuse_and_throttling_are_counted() {
    let config = config_builder()
        .login_max_failures_per_account(1)
        .refresh_reuse_grace(std::time::Duration::ZERO)
        .build()
        .unwrap();
    let security = memory_security_with(config);
    let app = app(&security);

    let res = login(&app, PASSWORD).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let refresh = res.json()["refresh_token"].as_str().unwrap().to_owned();
    let body = json!({"refresh_token": refresh});
    assert_eq!(
        send(&app, post_json("/auth/refresh", &body, None))
            .await
            .status,
        StatusCode::OK
    );
    let res = send(&app, post_json("/auth/refresh", &body, None)).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.json()["code"], "refresh_token_reused");

    // One failure uses up the account's allowance; the next is throttled.
    assert_eq!(login(&app, "wrong").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        login(&app, "wrong").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );

    let (samples, text) = scrape(&app).await;
    assert_eq!(
        sample(
            &samples,
            r#"fastcore_security_refreshes_total{outcome="reused"}"#
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(&samples, "fastcore_security_refresh_reuse_detections_total"),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &samples,
            r#"fastcore_security_revocations_total{kind="reuse"}"#
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &samples,
            r#"fastcore_security_logins_total{outcome="throttled"}"#
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &samples,
            r#"fastcore_security_logins_total{outcome="success"}"#
        ),
        1.0,
        "{text}"
    );
    assert!(!text.contains(USERNAME) && !text.contains(USER_ID));
}

#[tokio::test]
async fn stateless_validations_have_their_own_mode_label() {
    let security = memory_security();
    let pair = security.create_token_pair("42", None).await.unwrap();
    security
        .validate_jwt_stateless(
            &pair.access_token,
            Some(fastcore_security::TokenType::Access),
        )
        .unwrap();
    assert!(
        security
            .validate_jwt_stateless(
                &pair.refresh_token,
                Some(fastcore_security::TokenType::Access)
            )
            .is_err()
    );
    let text = security.metrics().encode();
    assert!(text.contains(
        r#"fastcore_security_token_validations_total{mode="stateless",token_type="access",outcome="valid"} 1"#
    ), "{text}");
    assert!(text.contains(
        r#"fastcore_security_token_validations_total{mode="stateless",token_type="access",outcome="invalid_token"} 1"#
    ), "{text}");
}

/// A handle in synced mode counts its validations as `mode="synced"`, so a
/// dashboard can tell which instances skip the store.
#[tokio::test]
async fn synced_validations_have_their_own_mode_label() {
    let config = config_builder()
        .validation_mode(fastcore_security::ValidationMode::Synced)
        .build()
        .unwrap();
    let security = memory_security_with(config);
    let pair = security.create_token_pair("42", None).await.unwrap();
    security
        .validate_token(
            &pair.access_token,
            Some(fastcore_security::TokenType::Access),
        )
        .await
        .unwrap();
    let text = security.metrics().encode();
    assert!(text.contains(
        r#"fastcore_security_token_validations_total{mode="synced",token_type="access",outcome="valid"} 1"#
    ), "{text}");
    assert!(!text.contains(r#"mode="strict""#), "{text}");
}

#[tokio::test]
async fn two_handles_count_apart() {
    let one = memory_security();
    let two = memory_security();
    one.create_token_pair("1", None).await.unwrap();
    let before = two.metrics().encode();
    assert!(!before.contains(r#"operation="insert""#), "{before}");
    assert!(one.metrics().encode().contains(r#"operation="insert""#));
}

#[tokio::test]
async fn a_store_outage_is_counted_as_errors_not_as_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let store = fastcore_security::SqliteTokenStore::connect(&sqlite_url(&dir))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let security = Security::new(config(), std::sync::Arc::new(store.clone())).unwrap();
    let pair = security.create_token_pair(USER_ID, None).await.unwrap();
    let app = app(&security);
    store.pool().close().await;

    let res = send(&app, get("/auth/me", Some(&pair.access_token))).await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE);
    let res = login(&app, PASSWORD).await;
    assert_eq!(
        res.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        res.text()
    );

    let (samples, text) = scrape(&app).await;
    assert_eq!(
        sample(
            &samples,
            r#"fastcore_security_token_validations_total{mode="strict",token_type="access",outcome="store_unavailable"}"#
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &samples,
            r#"fastcore_security_logins_total{outcome="error"}"#
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &samples,
            r#"fastcore_security_logins_total{outcome="bad_credentials"}"#
        ),
        0.0,
        "{text}"
    );
    assert!(
        sample(
            &samples,
            r#"fastcore_security_store_errors_total{operation="get"}"#
        ) >= 1.0,
        "{text}"
    );
    // The error's text (SQL, the driver's message) is in no label.
    assert!(!text.contains("pool") && !text.contains("SELECT"), "{text}");
}
