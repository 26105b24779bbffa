//! Over HTTP: the library's `auth_router` merged with an application's own
//! routes that use the `TokenData`, `CurrentUser<A>` and `RefreshTokenData`
//! extractors, driven with `tower::ServiceExt::oneshot`.
//!
//! Every refusal is checked for its exact status, RFC 6750 challenge and
//! RFC 9457 body code.

// Test helpers and doubles may panic: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing;
use axum::{Json, Router};
use common::*;
use fastcore_security::{
    CurrentUser, RefreshTokenData, Security, SqliteTokenStore, StoreError, TokenData, TokenRecord,
    TokenStore, TokenType, auth_router,
};
use serde_json::{Value, json};

struct App {
    router: Router,
    security: Security,
    directory: TestDirectory,
}

async fn claims_route(TokenData(claims): TokenData) -> Json<Value> {
    Json(json!({"sub": claims.sub, "sid": claims.sid, "type": claims.token_type}))
}

async fn user_route(current: CurrentUser<TestAuth>) -> Json<Value> {
    Json(json!({"user": current.user, "sub": current.claims.sub}))
}

async fn refresh_claims_route(data: RefreshTokenData) -> Json<Value> {
    Json(json!({
        "sub": data.claims.sub,
        "type": data.claims.token_type,
        "same_token": !data.token.is_empty(),
    }))
}

/// The application: its own routes next to the library's router.
fn router_for(security: Security, directory: &TestDirectory) -> Router {
    let state = auth_state(security, directory);
    Router::new()
        .route("/app/claims", routing::get(claims_route))
        .route("/app/user", routing::get(user_route))
        .route("/app/refresh-claims", routing::post(refresh_claims_route))
        .with_state(state.clone())
        .merge(auth_router(state))
}

/// Users: ada (id 1) and bob (id 2), both with [`PASSWORD`].
fn app_with(security: Security) -> App {
    let directory = TestDirectory::default();
    directory.add("1", "ada", &password_hash());
    directory.add("2", "bob", &password_hash());
    App {
        router: router_for(security.clone(), &directory),
        security,
        directory,
    }
}

fn app() -> App {
    app_with(memory_security())
}

impl App {
    /// `GET /auth/me` with `access` as the bearer token.
    async fn me(&self, access: &str) -> TestResponse {
        send(&self.router, get("/auth/me", Some(access))).await
    }

    /// `POST /auth/refresh` with `refresh` in a JSON body.
    async fn refresh(&self, refresh: &str) -> TestResponse {
        send(
            &self.router,
            post_json("/auth/refresh", &json!({"refresh_token": refresh}), None),
        )
        .await
    }
}

fn login_form(username: &str, password: &str) -> Request<Body> {
    // Exactly what FastAPI's OAuth2PasswordRequestForm clients send.
    post_form(
        "/auth/login",
        &[
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
            ("scope", ""),
            ("client_id", ""),
            ("client_secret", ""),
        ],
    )
}

/// Logs in and returns the token response.
async fn login(app: &App, username: &str) -> Value {
    let res = send(&app.router, login_form(username, PASSWORD)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    res.json()
}

fn token(v: &Value, field: &str) -> String {
    v[field].as_str().unwrap().to_owned()
}

fn assert_problem(res: &TestResponse, status: StatusCode, code: &str) {
    assert_eq!(res.status, status, "{}", res.text());
    assert_eq!(
        res.header(header::CONTENT_TYPE),
        Some("application/problem+json")
    );
    let body = res.json();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status.as_u16(), "{body}");
}

fn assert_bare_challenge(res: &TestResponse, code: &str) {
    assert_problem(res, StatusCode::UNAUTHORIZED, code);
    assert_eq!(res.header(header::WWW_AUTHENTICATE), Some("Bearer"));
}

// --------------------------------------------------------------------- login

#[tokio::test]
async fn login_with_the_oauth2_form_and_with_json() {
    let app = app();
    for request in [
        login_form("ada", PASSWORD),
        post_json(
            "/auth/login",
            &json!({"username": "ada", "password": PASSWORD}),
            None,
        ),
    ] {
        let res = send(&app.router, request).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        assert_eq!(res.header(header::CONTENT_TYPE), Some("application/json"));
        assert_eq!(res.header(header::CACHE_CONTROL), Some("no-store"));
        assert_eq!(res.header(header::PRAGMA), Some("no-cache"));
        let body = res.json();
        assert_eq!(body["token_type"], "bearer");
        assert_eq!(body["expires_in"], 1800);
        assert_eq!(body["refresh_expires_in"], 7 * 86_400);

        let me = app.me(&token(&body, "access_token")).await;
        assert_eq!(me.status, StatusCode::OK, "{}", me.text());
        assert_eq!(
            me.json(),
            json!({"id": "1", "username": "ada", "active": true})
        );
        assert!(!me.text().contains("argon2"), "no hash in the user body");
    }
    assert_eq!(app.security.list_user_tokens("1").await.unwrap().len(), 4);
}

#[tokio::test]
async fn wrong_password_unknown_user_and_disabled_user_look_the_same() {
    let app = app();
    app.directory.set_active("bob", false);
    let wrong = send(&app.router, login_form("ada", "not the password")).await;
    let unknown = send(&app.router, login_form("nobody", PASSWORD)).await;
    let disabled = send(&app.router, login_form("bob", PASSWORD)).await;
    let json_unknown = send(
        &app.router,
        post_json(
            "/auth/login",
            &json!({"username": "nobody", "password": "x"}),
            None,
        ),
    )
    .await;

    assert_bare_challenge(&wrong, "invalid_credentials");
    assert_eq!(wrong.json()["detail"], "invalid username or password");
    for other in [&unknown, &disabled, &json_unknown] {
        assert_eq!(other.status, wrong.status);
        assert_eq!(other.headers, wrong.headers);
        assert_eq!(other.body, wrong.body);
    }
    assert!(app.security.list_user_tokens("1").await.unwrap().is_empty());
    assert!(app.security.list_user_tokens("2").await.unwrap().is_empty());
}

#[tokio::test]
async fn login_refuses_malformed_requests_without_echoing_them() {
    let app = app();
    let secret_pw = "pw-that-must-not-be-echoed";
    let cases = [
        post_form(
            "/auth/login",
            &[
                ("grant_type", "client_credentials"),
                ("username", "ada"),
                ("password", secret_pw),
            ],
        ),
        post_form("/auth/login", &[("username", "ada")]),
        post_json("/auth/login", &json!({"username": "ada"}), None),
        post_json(
            "/auth/login",
            &json!({"user": "ada", "pw": secret_pw}),
            None,
        ),
        Request::post(format!("/auth/login?username=ada&password={secret_pw}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("username=ada&password={secret_pw}")))
            .unwrap(),
        Request::post("/auth/login")
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from(format!("username=ada&password={secret_pw}")))
            .unwrap(),
        Request::post("/auth/login")
            .body(Body::from(format!("username=ada&password={secret_pw}")))
            .unwrap(),
        Request::post("/auth/login")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(format!(
                "{{\"username\": \"ada\", \"password\": \"{secret_pw}\""
            )))
            .unwrap(),
    ];
    for request in cases {
        let uri = request.uri().to_string();
        let res = send(&app.router, request).await;
        assert_problem(&res, StatusCode::BAD_REQUEST, "invalid_request");
        assert!(!res.text().contains(secret_pw), "{uri}: {}", res.text());
        assert_eq!(res.header(header::WWW_AUTHENTICATE), None);
    }
    assert!(app.security.list_user_tokens("1").await.unwrap().is_empty());
}

// ---------------------------------------------------- protected routes

#[tokio::test]
async fn missing_credentials_get_a_bare_bearer_challenge() {
    let app = app();
    for uri in ["/app/claims", "/app/user", "/auth/me"] {
        let res = send(&app.router, get(uri, None)).await;
        assert_bare_challenge(&res, "missing_token");
        assert_eq!(res.header(header::CACHE_CONTROL), Some("no-store"));

        // Another scheme is not a bearer token.
        let basic = Request::get(uri)
            .header(header::AUTHORIZATION, "Basic YWRhOnB3")
            .body(Body::empty())
            .unwrap();
        assert_bare_challenge(&send(&app.router, basic).await, "missing_token");
    }
    let res = send(
        &app.router,
        Request::post("/auth/logout").body(Body::empty()).unwrap(),
    )
    .await;
    assert_bare_challenge(&res, "missing_token");
}

#[tokio::test]
async fn a_valid_access_token_passes_every_extractor() {
    let app = app();
    let tokens = login(&app, "ada").await;
    let access = token(&tokens, "access_token");
    let sid = app.security.decode_token(&access).unwrap().sid.unwrap();

    let res = send(&app.router, get("/app/claims", Some(&access))).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(
        res.json(),
        json!({"sub": "1", "sid": sid, "type": "access"})
    );

    let res = send(&app.router, get("/app/user", Some(&access))).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(
        res.json(),
        json!({"user": {"id": "1", "username": "ada", "active": true}, "sub": "1"})
    );

    // The scheme is case-insensitive (RFC 7235).
    let lower = Request::get("/app/claims")
        .header(header::AUTHORIZATION, format!("bearer {access}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app.router, lower).await.status, StatusCode::OK);
}

#[tokio::test]
async fn expired_revoked_tampered_and_unknown_tokens_get_invalid_token_challenges() {
    let app = app();
    let tokens = login(&app, "ada").await;
    let access = token(&tokens, "access_token");
    let refresh = token(&tokens, "refresh_token");

    let expired = expired_token(&app.security, "1", TokenType::Access, None).await;
    let revoked = app
        .security
        .create_access_token("1", None)
        .await
        .unwrap()
        .token;
    app.security.revoke_token(&revoked).await.unwrap();
    let unknown = app
        .security
        .encode_jwt(&claims_for(&app.security, "1", TokenType::Access, 600))
        .unwrap();

    let cases = [
        (expired.as_str(), "token_expired", "token has expired"),
        (revoked.as_str(), "token_revoked", "token has been revoked"),
        (
            &tamper_signature(&access),
            "invalid_token",
            "the token signature is invalid",
        ),
        (
            unknown.as_str(),
            "invalid_token",
            "the token is not known to this service",
        ),
        (
            refresh.as_str(),
            "invalid_token",
            "the token is of the wrong type",
        ),
        ("not-a-jwt", "invalid_token", "the token is malformed"),
    ];
    for (bad, code, description) in cases {
        for uri in ["/app/claims", "/app/user", "/auth/me"] {
            let res = send(&app.router, get(uri, Some(bad))).await;
            assert_token_refusal(&res, code, description);
            assert!(!res.text().contains(bad), "the token is not echoed");
        }
        let res = send(&app.router, post_bearer("/auth/logout-all", bad)).await;
        assert_token_refusal(&res, code, description);
    }
    // None of that hurt the good token.
    assert_eq!(
        send(&app.router, get("/app/claims", Some(&access)))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn malformed_authorization_headers() {
    let app = app();
    let access = token(&login(&app, "ada").await, "access_token");
    for value in ["Bearer", "Bearer ", "Bearer a b"] {
        let req = Request::get("/app/claims")
            .header(header::AUTHORIZATION, value)
            .body(Body::empty())
            .unwrap();
        assert_token_refusal(
            &send(&app.router, req).await,
            "invalid_token",
            "the token is malformed",
        );
    }
    let two = Request::get("/app/claims")
        .header(header::AUTHORIZATION, format!("Bearer {access}"))
        .header(header::AUTHORIZATION, format!("Bearer {access}"))
        .body(Body::empty())
        .unwrap();
    assert_problem(
        &send(&app.router, two).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
}

// ------------------------------------------------------------------- refresh

#[tokio::test]
async fn refresh_via_json_form_and_bearer_header() {
    let app = app();
    let tokens = login(&app, "ada").await;
    let refresh = token(&tokens, "refresh_token");
    let sid = app.security.decode_token(&refresh).unwrap().sid.unwrap();

    // Each refresh rotates: the next request uses the token it returned.
    let mut refresh = refresh;
    let requests: [fn(&str) -> Request<Body>; 4] = [
        |t| post_json("/auth/refresh", &json!({"refresh_token": t}), None),
        |t| {
            post_form(
                "/auth/refresh",
                &[("grant_type", "refresh_token"), ("refresh_token", t)],
            )
        },
        |t| post_form("/auth/refresh", &[("refresh_token", t)]),
        |t| post_bearer("/auth/refresh", t),
    ];
    for request in requests {
        let res = send(&app.router, request(&refresh)).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        assert_eq!(res.header(header::CACHE_CONTROL), Some("no-store"));
        let body = res.json();
        assert_token_response_fields(&body);
        let next = token(&body, "refresh_token");
        assert_ne!(next, refresh);
        assert_eq!(app.security.decode_token(&next).unwrap().sid.unwrap(), sid);
        refresh = next;
        assert_eq!(body["token_type"], "bearer");
        assert_eq!(body["expires_in"], 1800);
        let fresh = token(&body, "access_token");
        let res = send(&app.router, get("/app/claims", Some(&fresh))).await;
        assert_eq!(
            res.json(),
            json!({"sub": "1", "sid": sid, "type": "access"})
        );
    }
}

#[tokio::test]
async fn refresh_refusals() {
    let app = app();
    let tokens = login(&app, "ada").await;
    let access = token(&tokens, "access_token");
    let refresh = token(&tokens, "refresh_token");
    let before = app.security.list_user_tokens("1").await.unwrap().len();

    // In the query string: refused even though the body is fine, and unused.
    for uri in [
        format!("/auth/refresh?refresh_token={refresh}"),
        format!("/auth/refresh?token={refresh}"),
    ] {
        let req = Request::post(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(json!({"refresh_token": refresh}).to_string()))
            .unwrap();
        let res = send(&app.router, req).await;
        assert_problem(&res, StatusCode::BAD_REQUEST, "invalid_request");
        assert!(!res.text().contains(&refresh));
    }
    let res = send(
        &app.router,
        Request::post(format!("/auth/refresh?refresh_token={refresh}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_problem(&res, StatusCode::BAD_REQUEST, "invalid_request");

    // Malformed bodies.
    for req in [
        post_json("/auth/refresh", &json!({}), None),
        post_json("/auth/refresh", &json!({"refresh_token": 5}), None),
        post_form(
            "/auth/refresh",
            &[("grant_type", "password"), ("refresh_token", &refresh)],
        ),
        Request::post("/auth/refresh").body(Body::empty()).unwrap(),
    ] {
        assert_problem(
            &send(&app.router, req).await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        );
    }

    // An access token is not a refresh token.
    let res = app.refresh(&access).await;
    assert_token_refusal(&res, "invalid_token", "the token is of the wrong type");
    let res = send(&app.router, post_bearer("/auth/refresh", &access)).await;
    assert_token_refusal(&res, "invalid_token", "the token is of the wrong type");

    // Expired and tampered refresh tokens.
    let expired = expired_token(&app.security, "1", TokenType::Refresh, Some("s")).await;
    let res = app.refresh(&expired).await;
    assert_token_refusal(&res, "token_expired", "token has expired");
    let res = app.refresh(&tamper_signature(&refresh)).await;
    assert_token_refusal(&res, "invalid_token", "the token signature is invalid");

    assert_eq!(
        app.security.list_user_tokens("1").await.unwrap().len(),
        before,
        "no refusal minted a token"
    );
}

#[tokio::test]
async fn refresh_token_data_extractor_on_an_app_route() {
    let app = app();
    let tokens = login(&app, "ada").await;
    let refresh = token(&tokens, "refresh_token");
    let res = send(
        &app.router,
        post_json(
            "/app/refresh-claims",
            &json!({"refresh_token": refresh}),
            None,
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(
        res.json(),
        json!({"sub": "1", "type": "refresh", "same_token": true})
    );

    let res = send(
        &app.router,
        post_json(
            "/app/refresh-claims",
            &json!({"refresh_token": token(&tokens, "access_token")}),
            None,
        ),
    )
    .await;
    assert_token_refusal(&res, "invalid_token", "the token is of the wrong type");
    let res = send(
        &app.router,
        Request::post(format!("/app/refresh-claims?refresh_token={refresh}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_problem(&res, StatusCode::BAD_REQUEST, "invalid_request");
}

// -------------------------------------------------------------------- logout

#[tokio::test]
async fn logout_ends_the_whole_login() {
    let app = app();
    let tokens = login(&app, "ada").await;
    let access = token(&tokens, "access_token");
    let refresh = token(&tokens, "refresh_token");
    let minted = app.refresh(&refresh).await;
    let minted = token(&minted.json(), "access_token");
    let other_login = login(&app, "ada").await;

    let res = send(&app.router, post_bearer("/auth/logout", &access)).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    assert!(res.body.is_empty());

    for dead in [&access, &minted] {
        let res = app.me(dead).await;
        assert_token_refusal(&res, "token_revoked", "token has been revoked");
    }
    let res = app.refresh(&refresh).await;
    assert_token_refusal(&res, "token_revoked", "token has been revoked");

    // The other login is untouched, and logging out twice is fine.
    let res = app.me(&token(&other_login, "access_token")).await;
    assert_eq!(res.status, StatusCode::OK);
    let res = send(&app.router, post_bearer("/auth/logout", &access)).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);

    // A forged token cannot log anyone out.
    let res = send(
        &app.router,
        post_bearer(
            "/auth/logout",
            &tamper_signature(&token(&other_login, "access_token")),
        ),
    )
    .await;
    assert_token_refusal(&res, "invalid_token", "the token signature is invalid");
}

#[tokio::test]
async fn logout_with_an_expired_access_token_still_ends_its_session() {
    let app = app();
    let tokens = login(&app, "ada").await;
    let refresh = token(&tokens, "refresh_token");
    let sid = app.security.decode_token(&refresh).unwrap().sid.unwrap();
    let expired = expired_token(&app.security, "1", TokenType::Access, Some(&sid)).await;

    let res = send(&app.router, post_bearer("/auth/logout", &expired)).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    let res = app.refresh(&refresh).await;
    assert_token_refusal(&res, "token_revoked", "token has been revoked");
    assert!(app.security.list_user_tokens("1").await.unwrap().is_empty());
}

#[tokio::test]
async fn logout_all_ends_every_login_of_the_user_only() {
    let app = app();
    let first = login(&app, "ada").await;
    let second = login(&app, "ada").await;
    let bob = login(&app, "bob").await;

    let res = send(
        &app.router,
        post_bearer("/auth/logout-all", &token(&first, "access_token")),
    )
    .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text());
    for dead in [&first, &second] {
        let res = app.me(&token(dead, "access_token")).await;
        assert_token_refusal(&res, "token_revoked", "token has been revoked");
        let res = app.refresh(&token(dead, "refresh_token")).await;
        assert_token_refusal(&res, "token_revoked", "token has been revoked");
    }
    let res = app.me(&token(&bob, "access_token")).await;
    assert_eq!(res.status, StatusCode::OK);

    // A refresh token cannot be used for it.
    let res = send(
        &app.router,
        post_bearer("/auth/logout-all", &token(&bob, "refresh_token")),
    )
    .await;
    assert_token_refusal(&res, "invalid_token", "the token is of the wrong type");
}

// --------------------------------------------------------------------- users

#[tokio::test]
async fn a_disabled_or_deleted_user_is_refused_by_current_user() {
    let app = app();
    let ada = token(&login(&app, "ada").await, "access_token");
    let bob = token(&login(&app, "bob").await, "access_token");
    app.directory.set_active("ada", false);
    app.directory.remove("bob");

    for (access, description) in [
        (&ada, "authentication failed: the token's user is disabled"),
        (
            &bob,
            "authentication failed: the token's user does not exist",
        ),
    ] {
        for uri in ["/app/user", "/auth/me"] {
            let res = send(&app.router, get(uri, Some(access))).await;
            assert_token_refusal(&res, "authentication_failed", description);
        }
        // TokenData checks the token only, not the user (documented).
        let res = send(&app.router, get("/app/claims", Some(access))).await;
        assert_eq!(res.status, StatusCode::OK);
    }
    let res = send(&app.router, login_form("ada", PASSWORD)).await;
    assert_bare_challenge(&res, "invalid_credentials");
}

#[tokio::test]
async fn a_disabled_or_deleted_user_cannot_refresh() {
    let app = app();
    let ada = token(&login(&app, "ada").await, "refresh_token");
    let bob = token(&login(&app, "bob").await, "refresh_token");
    app.directory.set_active("ada", false);
    app.directory.remove("bob");
    for refresh in [&ada, &bob] {
        let res = app.refresh(refresh).await;
        assert_token_refusal(
            &res,
            "authentication_failed",
            "authentication failed: the token's user is disabled or unknown",
        );
    }
    // Re-enabled, the same refresh token works again: nothing was revoked.
    app.directory.set_active("ada", true);
    let res = app.refresh(&ada).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
}

// -------------------------------------------------------------------- health

#[tokio::test]
async fn health_reports_ok() {
    let app = app();
    let res = send(&app.router, get("/health", None)).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.header(header::CONTENT_TYPE), Some("application/json"));
    let body = res.json();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["initialized"], true);
    assert_eq!(body["store_backend"], "memory");
    assert_eq!(body["store_reachable"], true);
    assert_eq!(body["algorithm"], "HS256");
    assert_eq!(body["development_secret"], false);
    assert!(!res.text().contains(TEST_SECRET));

    let (sqlite, _dir) = sqlite_security().await;
    let app = app_with(sqlite);
    let res = send(&app.router, get("/health", None)).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json()["store_backend"], "sqlite");
}

// ------------------------------------------------------------- store outage

/// What a driver might put in an error: must never reach a client.
const INTERNALS: &str = "SELECT jti FROM fastcore_tokens WHERE user_id='hunter2'";

/// A test double of the store trait whose every call fails, as a store
/// behind a dead network link would.
struct UnreachableStore;

fn down(operation: &'static str) -> StoreError {
    StoreError::new(
        operation,
        std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            format!("connection refused while running {INTERNALS}"),
        ),
    )
}

#[async_trait]
impl TokenStore for UnreachableStore {
    fn backend(&self) -> &'static str {
        "unreachable"
    }
    async fn insert(&self, _: &TokenRecord) -> Result<(), StoreError> {
        Err(down("insert"))
    }
    async fn get(&self, _: &str) -> Result<Option<TokenRecord>, StoreError> {
        Err(down("get"))
    }
    async fn revoke(&self, _: &str, _: i64) -> Result<bool, StoreError> {
        Err(down("revoke"))
    }
    async fn rotate(
        &self,
        _: &str,
        _: &TokenRecord,
        _: i64,
    ) -> Result<fastcore_security::Rotation, StoreError> {
        Err(down("rotate"))
    }
    async fn cut_off_user(&self, _: &str, _: i64) -> Result<(), StoreError> {
        Err(down("cut_off_user"))
    }
    async fn revoke_family(&self, _: &str, _: i64) -> Result<u64, StoreError> {
        Err(down("revoke_family"))
    }
    async fn revoke_user(&self, _: &str, _: Option<&str>, _: i64) -> Result<u64, StoreError> {
        Err(down("revoke_user"))
    }
    async fn list_live(&self, _: &str, _: i64) -> Result<Vec<TokenRecord>, StoreError> {
        Err(down("list_live"))
    }
    async fn purge_expired(&self, _: i64, _: u32) -> Result<u64, StoreError> {
        Err(down("purge_expired"))
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Err(down("ping"))
    }
}

fn assert_unavailable(res: &TestResponse, tokens: &[&str]) {
    assert_problem(res, StatusCode::SERVICE_UNAVAILABLE, "store_unavailable");
    assert_eq!(res.header(header::RETRY_AFTER), Some("5"));
    assert_eq!(
        res.header(header::WWW_AUTHENTICATE),
        None,
        "an outage must not look like a bad token"
    );
    let text = res.text();
    for leak in [
        "SELECT",
        "fastcore_tokens",
        "hunter2",
        "connection refused",
        "sqlite",
    ] {
        assert!(!text.contains(leak), "{leak} leaked: {text}");
    }
    for token in tokens {
        assert!(!text.contains(token));
    }
}

/// Requests that need the store, with a token pair minted while it was up.
async fn outage_requests(app: &App, access: &str, refresh: &str) {
    for uri in ["/app/claims", "/app/user", "/auth/me"] {
        let res = send(&app.router, get(uri, Some(access))).await;
        assert_unavailable(&res, &[access]);
    }
    let res = app.refresh(refresh).await;
    assert_unavailable(&res, &[refresh]);
    let res = send(&app.router, post_bearer("/auth/logout", access)).await;
    assert_unavailable(&res, &[access]);
    let res = send(&app.router, post_bearer("/auth/logout-all", access)).await;
    assert_unavailable(&res, &[access]);
    let res = send(&app.router, login_form("ada", PASSWORD)).await;
    assert_unavailable(&res, &[]);

    let res = send(&app.router, get("/health", None)).await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.header(header::RETRY_AFTER), Some("5"));
    let body = res.json();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["initialized"], true);
    assert_eq!(body["store_reachable"], false);
    assert!(!res.text().contains("SELECT") && !res.text().contains("hunter2"));
}

#[tokio::test]
async fn an_unreachable_store_gives_503_with_retry_after_and_no_internals() {
    // Tokens minted by a healthy instance with the same configuration.
    let healthy = memory_security();
    let pair = healthy.create_token_pair("1", None).await.unwrap();
    let app = app_with(Security::new(config(), Arc::new(UnreachableStore)).unwrap());
    outage_requests(&app, &pair.access_token, &pair.refresh_token).await;
}

#[tokio::test]
async fn a_closed_sqlite_pool_gives_503_too() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteTokenStore::connect(&sqlite_url(&dir)).await.unwrap();
    store.migrate().await.unwrap();
    let security = Security::new(config(), Arc::new(store.clone())).unwrap();
    let app = app_with(security);
    let tokens = login(&app, "ada").await;
    let (access, refresh) = (
        token(&tokens, "access_token"),
        token(&tokens, "refresh_token"),
    );
    assert_eq!(
        send(&app.router, get("/app/claims", Some(&access)))
            .await
            .status,
        StatusCode::OK
    );

    store.pool().close().await;
    outage_requests(&app, &access, &refresh).await;
}

// ---------------------------------------------------------------- body limit

#[tokio::test]
async fn bodies_over_16_kib_are_refused_with_413() {
    const LIMIT: usize = 16 * 1024;
    let app = app();
    let refresh = token(&login(&app, "ada").await, "refresh_token");

    // A JSON login body of exactly `len` bytes.
    let login_body = |len: usize| {
        let skeleton = json!({"username": "ada", "password": ""}).to_string();
        let body =
            json!({"username": "ada", "password": "p".repeat(len - skeleton.len())}).to_string();
        assert_eq!(body.len(), len);
        Request::post("/auth/login")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap()
    };
    let res = send(&app.router, login_body(LIMIT)).await;
    assert_bare_challenge(&res, "invalid_credentials");
    let res = send(&app.router, login_body(LIMIT + 1)).await;
    assert_problem(&res, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    let res = send(&app.router, login_body(1024 * 1024)).await;
    assert_problem(&res, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");

    let padded = format!(
        "{{\"refresh_token\": \"{refresh}\", \"pad\": \"{}\"}}",
        "x".repeat(LIMIT)
    );
    let req = Request::post("/auth/refresh")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(padded))
        .unwrap();
    let res = send(&app.router, req).await;
    assert_problem(&res, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");

    let form = format!("refresh_token={refresh}&pad={}", "x".repeat(LIMIT));
    let req = Request::post("/app/refresh-claims")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form))
        .unwrap();
    let res = send(&app.router, req).await;
    assert_problem(&res, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
}

/// A body that breaks off (a malformed chunk, a client that hangs up
/// before `Content-Length` bytes came) is a bad request, not a large one;
/// a streamed body over the limit is still 413.
#[tokio::test]
async fn a_body_that_cannot_be_read_is_a_bad_request() {
    let app = app();
    for uri in ["/auth/login", "/auth/refresh"] {
        let chunks: Vec<Result<&'static [u8], std::io::Error>> = vec![
            Ok(b"{\"username\": \"ada\", "),
            Err(std::io::Error::other("connection reset")),
        ];
        let req = Request::post(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from_stream(futures_util::stream::iter(chunks)))
            .unwrap();
        let res = send(&app.router, req).await;
        assert_problem(&res, StatusCode::BAD_REQUEST, "invalid_request");
        assert!(!res.text().contains("connection reset"), "{}", res.text());

        let big: Vec<Result<Vec<u8>, std::io::Error>> =
            (0..20).map(|_| Ok(vec![b'x'; 1024])).collect();
        let req = Request::post(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from_stream(futures_util::stream::iter(big)))
            .unwrap();
        let res = send(&app.router, req).await;
        assert_problem(&res, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    }
}

/// A body whose `Content-Length` is over the limit is refused at once, not
/// after waiting (until the server's body timeout) for bytes it would
/// refuse anyway.
#[tokio::test]
async fn a_declared_oversize_body_is_refused_without_waiting_for_it() {
    let app = app();
    for uri in ["/auth/login", "/auth/refresh"] {
        // Declares 20 000 bytes and never sends one.
        let never = futures_util::stream::pending::<Result<Vec<u8>, std::io::Error>>();
        let req = Request::post(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_LENGTH, "20000")
            .body(Body::from_stream(never))
            .unwrap();
        // Not a speed figure: only a bound that turns a hang into a failure.
        let res = tokio::time::timeout(std::time::Duration::from_secs(30), send(&app.router, req))
            .await
            .unwrap_or_else(|_| panic!("{uri}: still waiting for the body"));
        assert_problem(&res, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    }
    // Exactly the limit, declared and streamed: read and checked as usual.
    let skeleton = json!({"username": "ada", "password": ""}).to_string();
    let body =
        json!({"username": "ada", "password": "p".repeat(16 * 1024 - skeleton.len())}).to_string();
    assert_eq!(body.len(), 16 * 1024);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = body
        .into_bytes()
        .chunks(1000)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let req = Request::post("/auth/login")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, (16 * 1024).to_string())
        .body(Body::from_stream(futures_util::stream::iter(chunks)))
        .unwrap();
    let res = send(&app.router, req).await;
    assert_bare_challenge(&res, "invalid_credentials");
}

// ------------------------------------------------- rotation and sessions

fn delete(uri: &str, bearer: &str) -> Request<Body> {
    Request::delete(uri)
        .header(header::AUTHORIZATION, format!("Bearer {bearer}"))
        .body(Body::empty())
        .unwrap()
}

async fn refresh_over_http(app: &App, refresh: &str) -> TestResponse {
    app.refresh(refresh).await
}

#[tokio::test]
async fn a_replayed_refresh_token_ends_the_session_with_refresh_token_reused() {
    let app = app_with(memory_security_with(
        config_builder()
            .refresh_reuse_grace(std::time::Duration::ZERO)
            .build()
            .unwrap(),
    ));
    let tokens = login(&app, "ada").await;
    let first = token(&tokens, "refresh_token");
    let res = refresh_over_http(&app, &first).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let rotated = res.json();

    let res = refresh_over_http(&app, &first).await;
    assert_token_refusal(
        &res,
        "refresh_token_reused",
        "the refresh token was already used; its session has been ended",
    );
    assert!(!res.text().contains(&first), "the token is not echoed");
    for dead in [
        token(&tokens, "access_token"),
        token(&rotated, "access_token"),
    ] {
        let res = app.me(&dead).await;
        assert_token_refusal(&res, "token_revoked", "token has been revoked");
    }
    let res = refresh_over_http(&app, &token(&rotated, "refresh_token")).await;
    assert_token_refusal(&res, "token_revoked", "token has been revoked");
}

#[tokio::test]
async fn sessions_can_be_listed_and_ended_over_http() {
    let app = app();
    let phone = send(&app.router, {
        let mut req = login_form("ada", PASSWORD);
        req.headers_mut()
            .insert(header::USER_AGENT, "Phone/2.0".parse().unwrap());
        req
    })
    .await
    .json();
    let laptop = login(&app, "ada").await;
    let bob = login(&app, "bob").await;
    let phone_access = token(&phone, "access_token");
    let phone_sid = app
        .security
        .decode_token(&phone_access)
        .unwrap()
        .sid
        .unwrap();
    let laptop_sid = app
        .security
        .decode_token(&token(&laptop, "access_token"))
        .unwrap()
        .sid
        .unwrap();
    let bob_sid = app
        .security
        .decode_token(&token(&bob, "access_token"))
        .unwrap()
        .sid
        .unwrap();

    let res = send(&app.router, get("/auth/sessions", Some(&phone_access))).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.header(header::CACHE_CONTROL), Some("no-store"));
    let sessions = res.json()["sessions"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 2);
    let mine = sessions.iter().find(|s| s["id"] == phone_sid).unwrap();
    assert_eq!(mine["current"], true);
    assert_eq!(mine["user_agent"], "Phone/2.0");
    for field in ["created_at", "last_used_at", "expires_at"] {
        assert!(mine[field].is_i64(), "{field}");
    }
    let text = res.text();
    for secret in [&phone_access, &token(&phone, "refresh_token")] {
        assert!(!text.contains(secret.as_str()), "no token in the list");
    }

    let res = send(
        &app.router,
        get("/auth/sessions?exclude_current=true", Some(&phone_access)),
    )
    .await;
    let ids: Vec<_> = res.json()["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, std::slice::from_ref(&laptop_sid));
    let res = send(
        &app.router,
        get("/auth/sessions?exclude_current=maybe", Some(&phone_access)),
    )
    .await;
    assert_problem(&res, StatusCode::BAD_REQUEST, "invalid_request");

    // Bob's session is not Ada's to end: 404, and it lives on.
    let res = send(
        &app.router,
        delete(&format!("/auth/sessions/{bob_sid}"), &phone_access),
    )
    .await;
    assert_problem(&res, StatusCode::NOT_FOUND, "not_found");
    let res = app.me(&token(&bob, "access_token")).await;
    assert_eq!(res.status, StatusCode::OK);

    // Ada ends her laptop session from her phone.
    let res = send(
        &app.router,
        delete(&format!("/auth/sessions/{laptop_sid}"), &phone_access),
    )
    .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text());
    let res = app.me(&token(&laptop, "access_token")).await;
    assert_token_refusal(&res, "token_revoked", "token has been revoked");
    let res = refresh_over_http(&app, &token(&laptop, "refresh_token")).await;
    assert_token_refusal(&res, "token_revoked", "token has been revoked");
    let res = app.me(&phone_access).await;
    assert_eq!(res.status, StatusCode::OK);

    // Without a token: 401; with a refresh token: refused as the wrong type.
    let res = send(&app.router, get("/auth/sessions", None)).await;
    assert_problem(&res, StatusCode::UNAUTHORIZED, "missing_token");
    let res = send(
        &app.router,
        get("/auth/sessions", Some(&token(&phone, "refresh_token"))),
    )
    .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logout_others_keeps_only_the_current_session() {
    let app = app();
    let here = login(&app, "ada").await;
    let there = login(&app, "ada").await;
    // Two more sessions, one of them refreshed (more tokens, one session).
    login(&app, "ada").await;
    let refreshed = login(&app, "ada").await;
    let res = refresh_over_http(&app, &token(&refreshed, "refresh_token")).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let res = send(
        &app.router,
        post_bearer("/auth/logout-others", &token(&here, "access_token")),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    // Sessions, not tokens.
    assert_eq!(res.json(), json!({"revoked": 3}));
    let res = send(
        &app.router,
        post_bearer("/auth/logout-others", &token(&here, "access_token")),
    )
    .await;
    assert_eq!(res.json(), json!({"revoked": 0}));
    let res = app.me(&token(&here, "access_token")).await;
    assert_eq!(res.status, StatusCode::OK);
    let res = app.me(&token(&there, "access_token")).await;
    assert_token_refusal(&res, "token_revoked", "token has been revoked");
    let res = refresh_over_http(&app, &token(&here, "refresh_token")).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
}

#[tokio::test]
async fn logout_is_idempotent_for_revoked_and_expired_tokens() {
    let app = app();
    let tokens = login(&app, "ada").await;
    let access = token(&tokens, "access_token");
    for _ in 0..3 {
        let res = send(&app.router, post_bearer("/auth/logout", &access)).await;
        assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text());
    }
    // After logout-all too, and with the (now revoked) refresh token.
    let other = login(&app, "ada").await;
    let res = send(
        &app.router,
        post_bearer("/auth/logout-all", &token(&other, "access_token")),
    )
    .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    for t in [
        token(&other, "access_token"),
        token(&other, "refresh_token"),
    ] {
        let res = send(&app.router, post_bearer("/auth/logout", &t)).await;
        assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text());
    }
    let expired = expired_token(&app.security, "1", TokenType::Access, None).await;
    let res = send(&app.router, post_bearer("/auth/logout", &expired)).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    // A forged token still cannot log anyone out.
    let res = send(
        &app.router,
        post_bearer("/auth/logout", &tamper_signature(&access)),
    )
    .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
}
