//! The refresh cookie of browser apps over HTTP (`tower::ServiceExt::oneshot`):
//! its attributes, refresh and logout by cookie, rotation and reuse
//! detection through it, the cross-site request checks, and the body
//! transport left as it was when the cookie is off.

// Test helpers may panic: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::*;
use fastcore_security::{CookieConfig, CookieSameSite, Security, auth_router};
use serde_json::{Value, json};

const COOKIE: &str = "__Secure-fastcore_refresh";
const SITE: &str = "https://app.example.com";

struct App {
    router: Router,
}

/// ada (id 1); a security without the reuse grace, so a replay is theft
/// at once; the cookie on with `cookies`, off with `None`.
fn app(cookies: Option<CookieConfig>) -> App {
    let security: Security = memory_security_with(
        config_builder()
            .refresh_reuse_grace(Duration::ZERO)
            .build()
            .unwrap(),
    );
    let directory = TestDirectory::default();
    directory.add("1", "ada", &password_hash());
    let mut state = auth_state(security, &directory);
    if let Some(cookies) = cookies {
        state = state.with_cookies(cookies);
    }
    App {
        router: auth_router(state),
    }
}

fn cookie_app() -> App {
    app(Some(
        CookieConfig::builder()
            .allowed_origin(SITE)
            .build()
            .unwrap(),
    ))
}

/// A browser's same-origin POST, with the given cookie (if any).
fn browser_post(uri: &str, cookie: Option<&str>) -> axum::http::request::Builder {
    let mut b = Request::post(uri)
        .header("sec-fetch-site", "same-origin")
        .header(header::ORIGIN, SITE);
    if let Some(value) = cookie {
        b = b.header(header::COOKIE, format!("{COOKIE}={value}"));
    }
    b
}

async fn login(app: &App) -> TestResponse {
    let req = browser_post("/auth/login", None)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!(
            "username=ada&password={}",
            PASSWORD.replace(' ', "+")
        )))
        .unwrap();
    send(&app.router, req).await
}

/// The refresh token the response's `Set-Cookie` stores, and the header's
/// attributes.
fn set_cookie(res: &TestResponse) -> (String, Vec<String>) {
    let values: Vec<_> = res.headers.get_all(header::SET_COOKIE).iter().collect();
    assert_eq!(values.len(), 1, "one Set-Cookie: {values:?}");
    let value = values[0].to_str().unwrap();
    let mut parts = value.split("; ");
    let (name, token) = parts.next().unwrap().split_once('=').unwrap();
    assert_eq!(name, COOKIE);
    (token.to_owned(), parts.map(str::to_owned).collect())
}

async fn refresh_by_cookie(app: &App, token: &str) -> TestResponse {
    send(
        &app.router,
        browser_post("/auth/refresh", Some(token))
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn login_sets_a_secure_http_only_strict_cookie_and_keeps_the_access_token_in_the_body() {
    let app = cookie_app();
    let res = login(&app).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let (token, attributes) = set_cookie(&res);
    assert_eq!(token.split('.').count(), 3, "a JWT");
    for expected in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/auth",
        "Max-Age=604800",
    ] {
        assert!(
            attributes.iter().any(|a| a == expected),
            "{expected} in {attributes:?}"
        );
    }
    assert!(!attributes.iter().any(|a| a.starts_with("Domain")));
    let body = res.json();
    assert!(body["access_token"].is_string(), "{body}");
    assert_eq!(body["token_type"], "bearer");
    assert!(
        body.get("refresh_token").is_none(),
        "not in the body: {body}"
    );
    assert!(!res.text().contains(&token));
    assert_eq!(res.header(header::CACHE_CONTROL), Some("no-store"));

    let access = body["access_token"].as_str().unwrap();
    let me = send(&app.router, get("/auth/me", Some(access))).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text());
}

#[tokio::test]
async fn lax_and_root_path_settings_show_in_the_cookie() {
    let app = app(Some(
        CookieConfig::builder()
            .same_site(CookieSameSite::Lax)
            .path("/")
            .build()
            .unwrap(),
    ));
    let res = login(&app).await;
    let value = res.header(header::SET_COOKIE).unwrap();
    assert!(value.starts_with("__Host-fastcore_refresh="), "{value}");
    let parts: Vec<_> = value.split("; ").collect();
    assert!(parts.contains(&"SameSite=Lax"), "{value}");
    assert!(parts.contains(&"Path=/"), "{value}");
}

#[tokio::test]
async fn refresh_by_cookie_rotates_the_cookie() {
    let app = cookie_app();
    let (first, _) = set_cookie(&login(&app).await);
    let res = refresh_by_cookie(&app, &first).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let (second, attributes) = set_cookie(&res);
    assert_ne!(first, second, "a new refresh token");
    assert!(attributes.iter().any(|a| a == "HttpOnly"));
    let body = res.json();
    assert!(body["access_token"].is_string());
    assert!(body.get("refresh_token").is_none(), "{body}");

    // The new one works in turn.
    let res = refresh_by_cookie(&app, &second).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
}

#[tokio::test]
async fn a_replayed_cookie_ends_the_session_and_deletes_the_cookie() {
    let app = cookie_app();
    let login_res = login(&app).await;
    let (first, _) = set_cookie(&login_res);
    let access = login_res.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = refresh_by_cookie(&app, &first).await;
    let (second, _) = set_cookie(&res);

    let res = refresh_by_cookie(&app, &first).await;
    assert_token_refusal(
        &res,
        "refresh_token_reused",
        "the refresh token was already used; its session has been ended",
    );
    let (cleared, attributes) = set_cookie(&res);
    assert_eq!(cleared, "");
    assert!(
        attributes.iter().any(|a| a == "Max-Age=0"),
        "{attributes:?}"
    );

    // The whole session is gone: the rotated cookie and the access token too.
    let res = refresh_by_cookie(&app, &second).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.text());
    let res = send(&app.router, get("/auth/me", Some(&access))).await;
    assert_token_refusal(&res, "token_revoked", "token has been revoked");
}

#[tokio::test]
async fn logout_by_cookie_ends_the_session_and_deletes_the_cookie_with_the_same_attributes() {
    let app = cookie_app();
    let login_res = login(&app).await;
    let (token, set_attributes) = set_cookie(&login_res);
    let res = send(
        &app.router,
        browser_post("/auth/logout", Some(&token))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text());
    let (cleared, attributes) = set_cookie(&res);
    assert_eq!(cleared, "");
    assert!(
        attributes.iter().any(|a| a == "Max-Age=0"),
        "{attributes:?}"
    );
    for same in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/auth"] {
        assert!(set_attributes.iter().any(|a| a == same));
        assert!(
            attributes.iter().any(|a| a == same),
            "{same} in {attributes:?}"
        );
    }
    let res = refresh_by_cookie(&app, &token).await;
    assert_token_refusal(&res, "token_revoked", "token has been revoked");
}

#[tokio::test]
async fn logout_with_the_bearer_token_also_deletes_the_cookie() {
    let app = cookie_app();
    let login_res = login(&app).await;
    let (token, _) = set_cookie(&login_res);
    let access = login_res.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = send(&app.router, post_bearer("/auth/logout", &access)).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text());
    assert_eq!(set_cookie(&res).0, "");
    let res = refresh_by_cookie(&app, &token).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
}

fn assert_csrf_refusal(res: &TestResponse) {
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.text());
    assert_eq!(
        res.header(header::CONTENT_TYPE),
        Some("application/problem+json")
    );
    assert_eq!(res.json()["code"], "csrf_check_failed");
    assert!(res.header(header::SET_COOKIE).is_none());
}

#[tokio::test]
async fn cross_site_requests_cannot_use_the_cookie() {
    let app = cookie_app();
    let (token, _) = set_cookie(&login(&app).await);
    let cases: [&[(&str, &str)]; 6] = [
        &[
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://evil.example"),
        ],
        // Another subdomain or port of the site: SameSite lets the cookie through.
        &[
            ("sec-fetch-site", "same-site"),
            ("origin", "https://evil.example.com"),
        ],
        &[("sec-fetch-site", "cross-site")],
        &[("origin", "https://evil.example")],
        &[("origin", "null")],
        // Neither header.
        &[],
    ];
    for headers in cases {
        for uri in ["/auth/refresh", "/auth/logout"] {
            let mut b = Request::post(uri).header(header::COOKIE, format!("{COOKIE}={token}"));
            for (k, v) in headers {
                b = b.header(*k, *v);
            }
            let res = send(&app.router, b.body(Body::empty()).unwrap()).await;
            assert_csrf_refusal(&res);
        }
    }
    // An allowed origin without Fetch Metadata (an older browser) passes.
    let res = send(
        &app.router,
        Request::post("/auth/refresh")
            .header(header::COOKIE, format!("{COOKIE}={token}"))
            .header(header::ORIGIN, SITE)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
}

#[tokio::test]
async fn cross_site_login_is_refused_but_clients_without_browser_headers_may_log_in() {
    let app = cookie_app();
    let form = format!("username=ada&password={}", PASSWORD.replace(' ', "+"));
    let res = send(
        &app.router,
        Request::post("/auth/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("sec-fetch-site", "cross-site")
            .header(header::ORIGIN, "https://evil.example")
            .body(Body::from(form.clone()))
            .unwrap(),
    )
    .await;
    assert_csrf_refusal(&res);
    let res = send(
        &app.router,
        post_form(
            "/auth/login",
            &[("username", "ada"), ("password", PASSWORD)],
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert!(res.header(header::SET_COOKIE).is_some());
}

#[tokio::test]
async fn a_cookie_sent_twice_is_refused() {
    let app = cookie_app();
    let (token, _) = set_cookie(&login(&app).await);
    let res = send(
        &app.router,
        browser_post("/auth/refresh", None)
            .header(
                header::COOKIE,
                format!("{COOKIE}=planted; {COOKIE}={token}"),
            )
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.text());
    assert_eq!(res.json()["code"], "invalid_request");
}

#[tokio::test]
async fn no_cookie_and_no_body_is_a_bad_request() {
    let app = cookie_app();
    let res = send(
        &app.router,
        browser_post("/auth/refresh", None)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.text());
    // Logging out twice is fine.
    let res = send(
        &app.router,
        browser_post("/auth/logout", None)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text());
}

#[tokio::test]
async fn a_refresh_token_sent_in_the_body_comes_back_in_the_body_even_with_the_cookie_on() {
    let app = cookie_app();
    let (token, _) = set_cookie(&login(&app).await);
    // No browser headers needed: a token in the body is no ambient credential.
    let res = send(
        &app.router,
        post_json("/auth/refresh", &json!({"refresh_token": token}), None),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert!(res.json()["refresh_token"].is_string());
    assert!(res.header(header::SET_COOKIE).is_none());
}

#[tokio::test]
async fn with_the_cookie_off_tokens_stay_in_the_body_and_cookies_are_ignored() {
    let app = app(None);
    let res = login(&app).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert!(res.header(header::SET_COOKIE).is_none());
    let body: Value = res.json();
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let access = body["access_token"].as_str().unwrap().to_owned();

    // A cookie alone does not refresh.
    let res = refresh_by_cookie(&app, &refresh).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.text());
    let res = send(
        &app.router,
        post_json("/auth/refresh", &json!({"refresh_token": refresh}), None),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert!(res.header(header::SET_COOKIE).is_none());
    assert!(res.json()["refresh_token"].is_string());

    // Logout without a bearer token is still 401 there.
    let res = send(
        &app.router,
        browser_post("/auth/logout", Some(&refresh))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.text());
    let res = send(&app.router, post_bearer("/auth/logout", &access)).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    assert!(res.header(header::SET_COOKIE).is_none());
}
