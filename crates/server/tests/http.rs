//! The server's HTTP behaviour, in-process over a real listener on
//! 127.0.0.1:0, each test with its own SQLite file.

// Test code: a failed assumption fails the test.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{PASSWORD, TestOptions, TestServer};
use fastcore_security::TokenType;
use fastcore_security::ValidationMode;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use serde_json::Value;
use std::time::Duration;

fn challenge(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn the_readme_walk_through_works_end_to_end() {
    let server = TestServer::start().await;
    let ada = server.add_user("ada", PASSWORD).await;

    // Login with the OAuth2 password form, as FastAPI's OAuth2PasswordRequestForm sends it.
    let response = server.login_form("ada", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let pair: Value = response.json().await.unwrap();
    assert_eq!(pair["token_type"], "bearer");
    assert!(pair["expires_in"].as_u64().unwrap() > 0);
    assert!(pair["refresh_expires_in"].as_u64().unwrap() > 0);
    let access = pair["access_token"].as_str().unwrap();
    let refresh = pair["refresh_token"].as_str().unwrap();

    // /auth/me shows the user, without the password hash.
    let response = server.me(access).await;
    assert_eq!(response.status(), StatusCode::OK);
    let me: Value = response.json().await.unwrap();
    assert_eq!(me["id"], ada.id.as_str());
    assert_eq!(me["username"], "ada");
    assert_eq!(me["is_active"], true);
    assert_eq!(me["created_at"], ada.created_at.as_str());
    assert_eq!(
        me.as_object().unwrap().len(),
        4,
        "only id, username, is_active, created_at: {me}"
    );
    assert!(!me.to_string().contains("argon2"), "{me}");

    // Refresh with a JSON body and with the OAuth2 form.
    let response = server.refresh_json(refresh).await;
    assert_eq!(response.status(), StatusCode::OK);
    let refreshed: Value = response.json().await.unwrap();
    let access_from_json = refreshed["access_token"].as_str().unwrap().to_owned();
    assert_eq!(server.me(&access_from_json).await.status(), StatusCode::OK);

    let response = server
        .client
        .post(server.url("/auth/refresh"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let refreshed: Value = response.json().await.unwrap();
    let access_from_form = refreshed["access_token"].as_str().unwrap().to_owned();
    assert_eq!(server.me(&access_from_form).await.status(), StatusCode::OK);

    // Logout ends the whole login.
    let response = server
        .client
        .post(server.url("/auth/logout"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    for token in [access, &access_from_json, &access_from_form] {
        let response = server.me(token).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(
            challenge(&response).starts_with("Bearer error=\"invalid_token\""),
            "{}",
            challenge(&response)
        );
    }
    let response = server.refresh_json(refresh).await;
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "the login's refresh token must die with the logout"
    );
    assert!(challenge(&response).contains("invalid_token"));
}

#[tokio::test]
async fn login_accepts_json_too() {
    let server = TestServer::start().await;
    server.add_user("ada", PASSWORD).await;
    let response = server
        .client
        .post(server.url("/auth/login"))
        .json(&serde_json::json!({ "username": "ada", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let pair: Value = response.json().await.unwrap();
    let claims = server
        .security
        .validate_token(
            pair["access_token"].as_str().unwrap(),
            Some(TokenType::Access),
        )
        .await
        .unwrap();
    let ada = server
        .db
        .users()
        .find_by_username("ada")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claims.sub, ada.id, "sub is the user's id");
}

#[tokio::test]
async fn usernames_are_case_insensitive() {
    let server = TestServer::start().await;
    server.add_user("Ada", PASSWORD).await;
    assert_eq!(
        server.login_form("ada", PASSWORD).await.status(),
        StatusCode::OK
    );
    let err = server
        .db
        .users()
        .create("ADA", "$argon2id$whatever")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
}

#[tokio::test]
async fn usernames_that_look_the_same_are_one_user_and_any_form_logs_in() {
    let server = TestServer::start().await;
    // Created from the decomposed form: stored composed (NFKC).
    let zoe = server.add_user("Zoe\u{0308}", PASSWORD).await;
    assert_eq!(zoe.username, "Zo\u{00EB}");
    for variant in [
        "Zo\u{00EB}",
        "ZO\u{00CB}",
        "zoe\u{0308}",
        "ZOE\u{0308}",
        "\u{FF3A}o\u{00EB}",
    ] {
        let err = server
            .db
            .users()
            .create(variant, "$argon2id$whatever")
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("already exists"),
            "{variant:?}: {err}"
        );
        let (access, _) = server.tokens(variant, PASSWORD).await;
        let me: Value = server.me(&access).await.json().await.unwrap();
        assert_eq!(me["id"], zoe.id.as_str(), "{variant:?}");
        assert_eq!(me["username"], "Zo\u{00EB}");
    }
    assert_eq!(server.db.users().count().await.unwrap(), 1);
    // A different name is still a different name.
    assert_eq!(
        server.login_form("Zoe", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn wrong_password_and_unknown_user_look_the_same() {
    let server = TestServer::start().await;
    server.add_user("ada", PASSWORD).await;

    let wrong = server.login_form("ada", "not the password").await;
    let unknown = server.login_form("nobody", PASSWORD).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.status(), unknown.status());
    assert_eq!(challenge(&wrong), challenge(&unknown));
    assert!(challenge(&wrong).starts_with("Bearer"));
    assert_eq!(
        wrong.headers().get(CONTENT_TYPE),
        unknown.headers().get(CONTENT_TYPE)
    );
    let wrong = wrong.text().await.unwrap();
    let unknown = unknown.text().await.unwrap();
    assert_eq!(wrong, unknown);
    assert!(
        !wrong.contains("nobody") && !wrong.contains("ada"),
        "{wrong}"
    );
}

#[tokio::test]
async fn a_disabled_user_cannot_log_in_and_loses_their_tokens() {
    let server = TestServer::start().await;
    server.add_user("ada", PASSWORD).await;
    let (access, refresh) = server.tokens("ada", PASSWORD).await;
    let wrong_password = server.login_form("ada", "not the password").await;
    let wrong_password = (
        challenge(&wrong_password),
        wrong_password.text().await.unwrap(),
    );

    // Disabling through the database flag alone is enough for /auth/me.
    server.db.users().set_active("ada", false).await.unwrap();
    let response = server.me(&access).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&response).contains("invalid_token"));

    // And login is refused exactly like a wrong password.
    let response = server.login_form("ada", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        (challenge(&response), response.text().await.unwrap()),
        wrong_password
    );

    // Nor can the disabled user mint new access tokens with the refresh token.
    assert_eq!(
        server.refresh_json(&refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // `users disable` also revokes the tokens, so re-enabling does not revive them.
    server.db.users().set_active("ada", true).await.unwrap();
    assert_eq!(server.refresh_json(&refresh).await.status(), StatusCode::OK);
    fastcore_security_server::commands::users::disable(&server.db, "ada")
        .await
        .unwrap();
    assert_eq!(
        server.refresh_json(&refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // Enabled again, the user logs in; the old tokens stay dead.
    fastcore_security_server::commands::users::enable(&server.db, "ada")
        .await
        .unwrap();
    let (fresh, _) = server.tokens("ada", PASSWORD).await;
    assert_eq!(server.me(&fresh).await.status(), StatusCode::OK);
    assert_eq!(server.me(&access).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logout_all_ends_every_session_of_the_user() {
    let server = TestServer::start().await;
    server.add_user("ada", PASSWORD).await;
    let (laptop, laptop_refresh) = server.tokens("ada", PASSWORD).await;
    let (phone, _) = server.tokens("ada", PASSWORD).await;
    let response = server
        .client
        .post(server.url("/auth/logout-all"))
        .bearer_auth(&phone)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(server.me(&laptop).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(server.me(&phone).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        server.refresh_json(&laptop_refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_refresh_token_in_the_query_string_is_refused() {
    let server = TestServer::start().await;
    server.add_user("ada", PASSWORD).await;
    let (_, refresh) = server.tokens("ada", PASSWORD).await;
    let response = server
        .client
        .post(server.url(&format!("/auth/refresh?refresh_token={refresh}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = response.text().await.unwrap();
    assert!(!body.contains(&refresh), "{body}");

    // Even alongside a proper body.
    let response = server
        .client
        .post(server.url(&format!("/auth/refresh?refresh_token={refresh}")))
        .json(&serde_json::json!({ "refresh_token": refresh }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // Passwords in the login URL too.
    let response = server
        .client
        .post(server.url(&format!("/auth/login?username=ada&password={}", "x")))
        .form(&[("username", "ada"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let server = TestServer::start().await;
    server.add_user("ada", PASSWORD).await;
    // Over the auth endpoints' own 16 KiB cap, under the server's 64 KiB.
    let medium = format!("username=ada&password={}", "x".repeat(20 * 1024));
    // Over the server-wide 64 KiB cap.
    let large = format!("username=ada&password={}", "x".repeat(100 * 1024));
    for body in [medium, large] {
        for path in ["/auth/login", "/auth/refresh"] {
            let response = server
                .client
                .post(server.url(path))
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::PAYLOAD_TOO_LARGE,
                "{path} with {} bytes",
                body.len()
            );
        }
    }

    // The server-wide cap holds for routes that never read the body: the
    // logout handler does not run (the token stays valid).
    let (access, _) = server.tokens("ada", PASSWORD).await;
    let response = server
        .client
        .post(server.url("/auth/logout"))
        .bearer_auth(&access)
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(vec![0u8; 100 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_problem(response, 413, "body_too_large").await;
    assert_eq!(server.me(&access).await.status(), StatusCode::OK);
}

/// Checks that `response` is a problem+json body in the library's shape.
async fn assert_problem(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status);
    assert_eq!(
        response.headers()[CONTENT_TYPE].to_str().unwrap(),
        "application/problem+json",
        "{code}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["type"], "about:blank", "{body}");
    assert!(body["title"].is_string(), "{body}");
    assert!(body["detail"].is_string(), "{body}");
    body
}

#[tokio::test]
async fn every_over_limit_body_gets_a_problem_body() {
    let server = TestServer::start().await;
    let large = format!("username=ada&password={}", "x".repeat(100 * 1024));
    // Refused by the server-wide limit before any handler reads it.
    for path in ["/auth/login", "/auth/refresh", "/auth/logout", "/nowhere"] {
        let response = server
            .client
            .post(server.url(path))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(large.clone())
            .send()
            .await
            .unwrap();
        assert_problem(response, 413, "body_too_large").await;
    }
}

#[tokio::test]
async fn a_wrong_method_gets_a_problem_body_and_keeps_allow() {
    let server = TestServer::start().await;
    for (method, path) in [
        (reqwest::Method::GET, "/auth/login"),
        (reqwest::Method::DELETE, "/auth/me"),
        (reqwest::Method::PUT, "/health"),
    ] {
        let response = server
            .client
            .request(method.clone(), server.url(path))
            .send()
            .await
            .unwrap();
        let allow = response
            .headers()
            .get(reqwest::header::ALLOW)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        assert!(!allow.is_empty(), "{method} {path}: Allow is kept");
        assert!(!allow.contains(method.as_str()), "{allow}");
        let body = assert_problem(response, 405, "method_not_allowed").await;
        assert!(
            body["detail"].as_str().unwrap().contains(method.as_str()),
            "{body}"
        );
    }
}

#[tokio::test]
async fn a_stalled_body_gets_408_with_a_problem_body() {
    use tokio::io::AsyncWriteExt as _;
    let server = TestServer::start_with_body_timeout(Duration::from_secs(1)).await;
    server.add_user("ada", PASSWORD).await;
    let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    stream
        .write_all(
            b"POST /auth/login HTTP/1.1\r\nHost: test\r\n\
              Content-Type: application/x-www-form-urlencoded\r\n\
              Content-Length: 100\r\n\r\nusername=ada&pass",
        )
        .await
        .unwrap();
    // ... and nothing more.
    let response = common::read_response(&mut stream).await;
    assert_eq!(response.status, 408, "{response:?}");
    assert_eq!(
        response.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(response.header("connection"), Some("close"));
    let body = response.json();
    assert_eq!(body["code"], "request_timeout", "{body}");
    assert_eq!(body["status"], 408, "{body}");
}

#[tokio::test]
async fn malformed_json_gets_400_without_echoing_the_password() {
    let server = TestServer::start().await;
    server.add_user("ada", PASSWORD).await;
    let secret = "s3cr3t-do-not-echo";
    for body in [
        format!(r#"{{"username": "ada", "password": "{secret}""#),
        format!(r#"{{"username": 42, "password": "{secret}"}}"#),
        format!(r#"{{"user": "ada", "password": "{secret}"}}"#),
    ] {
        let response = server
            .client
            .post(server.url("/auth/login"))
            .header(CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let text = response.text().await.unwrap();
        assert!(!text.contains(secret), "{text}");
        let problem: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(problem["code"], "invalid_request");
    }
}

#[tokio::test]
async fn health_reports_json() {
    let server = TestServer::start().await;
    let response = server.get("/health").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let status: Value = response.json().await.unwrap();
    assert_eq!(status["status"], "ok");
    assert_eq!(status["store_backend"], "sqlite");
    assert_eq!(status["store_reachable"], true);
    assert_eq!(status["development_secret"], false);
}

#[tokio::test]
async fn unknown_routes_get_a_json_404() {
    let server = TestServer::start().await;
    let response = server.get("/no/such/route?token=abc").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        response.headers()[CONTENT_TYPE].to_str().unwrap(),
        "application/problem+json"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "not_found");
    assert_eq!(body["status"], 404);
}

#[tokio::test]
async fn me_without_a_token_gets_a_bare_challenge() {
    let server = TestServer::start().await;
    let response = server.get("/auth/me").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenge(&response), "Bearer");
}

#[tokio::test]
async fn a_bcrypt_hash_from_the_python_service_is_upgraded_at_login() {
    // A passlib bcrypt hash (crates/security/tests/fixtures/python_vectors.json).
    const BCRYPT: &str = "$2b$04$fastcoreFixtureSalt01e24QEn.e6IFELT0Qfmhizr253tsRxGA.";
    let server = TestServer::start().await;
    let user = server.db.users().create("legacy", BCRYPT).await.unwrap();

    assert_eq!(
        server.login_form("legacy", "wrong").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let stored = server
        .db
        .users()
        .find_by_id(&user.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.password_hash(),
        BCRYPT,
        "a failed login changes nothing"
    );

    assert_eq!(
        server.login_form("legacy", PASSWORD).await.status(),
        StatusCode::OK
    );
    let stored = server
        .db
        .users()
        .find_by_id(&user.id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        stored.password_hash().starts_with("$argon2id$"),
        "upgraded: {}",
        stored.password_hash()
    );
    assert!(fastcore_security::verify_password(PASSWORD, stored.password_hash()).await);
    assert_eq!(
        server.login_form("legacy", PASSWORD).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_access_token_cannot_refresh_and_a_refresh_token_cannot_authenticate() {
    let server = TestServer::start().await;
    server.add_user("ada", PASSWORD).await;
    let (access, refresh) = server.tokens("ada", PASSWORD).await;
    assert_eq!(
        server.refresh_json(&access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(server.me(&refresh).await.status(), StatusCode::UNAUTHORIZED);
}

/// `serve --validation-mode synced`: the log-out through an instance is
/// refused by it at once; another instance on the same database (synced,
/// polling every 50 ms here) refuses it within a deadline; `/health` tells
/// the mode and the view's state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synced_mode_refuses_logged_out_tokens_on_every_instance() {
    let synced = TestOptions {
        validation_mode: ValidationMode::Synced,
        ..TestOptions::default()
    };
    let one = TestServer::start_with(synced).await;
    let url = one.temp.as_ref().unwrap().url();
    let two = TestServer::start_on_with(&url, &Default::default(), synced).await;
    one.add_user("ada", PASSWORD).await;
    for server in [&one, &two] {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let health: Value = server.get("/health").await.json().await.unwrap();
            assert_eq!(health["validation_mode"], "synced");
            if health["revocation_view"] == "synced" {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{health}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let (access, _) = one.tokens("ada", PASSWORD).await;
    for server in [&one, &two, &one, &two] {
        assert_eq!(server.me(&access).await.status(), StatusCode::OK);
    }
    assert!(one.logout(&access).await.status().is_success());
    assert_eq!(one.me(&access).await.status(), StatusCode::UNAUTHORIZED);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while two.me(&access).await.status() != StatusCode::UNAUTHORIZED {
        assert!(
            std::time::Instant::now() < deadline,
            "not refused by instance two"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
