//! What the server publishes about itself, over a real listener on
//! 127.0.0.1:0: its OpenAPI description at `/openapi.json` (valid OpenAPI
//! 3.1, covering every route the server answers) and its Prometheus
//! metrics at `/metrics` (counters that move, and no token, user id or
//! username in them).

// Test code: a failed assumption fails the test.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;

use common::{PASSWORD, TestServer};
use fastcore_security::AuthRoute;
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde_json::Value;

/// Every route the server serves beyond the library's auth routes.
const SERVER_ROUTES: &[(&str, &str)] = &[("get", "/openapi.json"), ("get", "/metrics")];

#[tokio::test]
async fn the_server_serves_a_valid_description_of_every_route_it_answers() {
    let server = TestServer::start().await;
    let response = server.get("/openapi.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    let text = response.text().await.unwrap();
    let parsed = oas3::from_json(&text).unwrap_or_else(|e| panic!("not OpenAPI 3.1: {e}"));
    assert!(parsed.openapi.starts_with("3.1"), "{}", parsed.openapi);
    let spec: Value = serde_json::from_str(&text).unwrap();

    let mut expected: BTreeSet<(String, String)> = AuthRoute::ALL
        .iter()
        .map(|r| (r.method().as_str().to_lowercase(), r.path().to_owned()))
        .collect();
    expected.extend(
        SERVER_ROUTES
            .iter()
            .map(|(m, p)| ((*m).to_owned(), (*p).to_owned())),
    );
    let mut documented = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.clone(), path.clone()));
        }
    }
    assert_eq!(documented, expected);

    // Each documented route is really served: no 404 or 405.
    for (method, path) in &documented {
        let url = server.url(&path.replace("{id}", "some-session"));
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let status = server
            .client
            .request(method.clone(), &url)
            .send()
            .await
            .unwrap()
            .status();
        assert!(
            status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {url}: {status}"
        );
    }
    // ...and the probe does tell a missing route.
    let status = server.get("/nope").await.status();
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// What the server's own layers answer on every route is in the
/// description of every route: here, 413 `body_too_large` for a body over
/// the server's 64 KiB limit, which is refused before any handler runs,
/// whatever the route and method.
#[tokio::test]
async fn an_oversized_body_gets_a_documented_answer_on_every_route() {
    let server = TestServer::start().await;
    let spec: Value = server.get("/openapi.json").await.json().await.unwrap();
    let oversized = vec![b'x'; 70_000];
    let mut checked = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let url = server.url(&path.replace("{id}", "some-session"));
            let verb = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = server
                .client
                .request(verb, &url)
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(oversized.clone())
                .send()
                .await
                .unwrap();
            let status = response.status();
            assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{method} {path}");
            let body: Value = response.json().await.unwrap();
            let code = &body["code"];
            let documented = &operation["responses"][status.as_str()];
            assert!(
                documented.is_object(),
                "{method} {path}: {status} is not documented"
            );
            let codes = &documented["content"]["application/problem+json"]["schema"]["allOf"][1]["properties"]
                ["code"]["enum"];
            assert!(
                codes.as_array().is_some_and(|codes| codes.contains(code)),
                "{method} {path}: {status} {code} is not documented: {documented}"
            );
            checked += 1;
        }
    }
    assert!(
        checked >= AuthRoute::ALL.len() + SERVER_ROUTES.len(),
        "{checked}"
    );
}

async fn metrics(server: &TestServer) -> String {
    let response = server.get("/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),
    );
    response.text().await.unwrap()
}

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn metrics_move_with_traffic_and_name_no_user_or_token() {
    let server = TestServer::start().await;
    let user = server.add_user("metrics-user-ada", PASSWORD).await;
    let before = metrics(&server).await;

    let wrong = server
        .login_form("metrics-user-ada", "wrong password")
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let (access, refresh) = server.tokens("metrics-user-ada", PASSWORD).await;
    assert_eq!(server.me(&access).await.status(), StatusCode::OK);
    let rotated = server.refresh_json(&refresh).await;
    assert_eq!(rotated.status(), StatusCode::OK);
    let new_access = rotated.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        server.logout(&new_access).await.status(),
        StatusCode::NO_CONTENT
    );

    let after = metrics(&server).await;
    let delta = |series: &str| value(&after, series) - value(&before, series);
    assert_eq!(
        delta(r#"fastcore_security_logins_total{outcome="success"}"#),
        1.0,
        "{after}"
    );
    assert_eq!(
        delta(r#"fastcore_security_logins_total{outcome="bad_credentials"}"#),
        1.0,
        "{after}"
    );
    assert!(
        delta(
            r#"fastcore_security_token_validations_total{mode="strict",token_type="access",outcome="valid"}"#
        ) >= 1.0,
        "{after}"
    );
    assert_eq!(
        delta(r#"fastcore_security_refreshes_total{outcome="rotated"}"#),
        1.0,
        "{after}"
    );
    assert_eq!(
        delta(r#"fastcore_security_revocations_total{kind="session"}"#),
        1.0,
        "{after}"
    );
    assert!(
        delta(r#"fastcore_security_store_operation_duration_seconds_count{operation="get"}"#)
            >= 1.0,
        "{after}"
    );
    for secret in [
        access.as_str(),
        refresh.as_str(),
        new_access.as_str(),
        user.id.as_str(),
        "metrics-user-ada",
        PASSWORD,
    ] {
        assert!(!after.contains(secret), "the metrics show {secret:?}");
    }
}
