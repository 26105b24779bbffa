//! The examples run: each one's `app` (the file is included here) answers
//! a login, a route that needs the current user and one that reads only
//! the token's claims. The PostgreSQL one needs the local server (see
//! `common::databases`: skipped without it, unless `CI` is set).

// A panic is a failed test.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/minimal.rs"]
mod minimal;

#[cfg(feature = "postgres")]
#[allow(dead_code, unreachable_pub)]
#[path = "../examples/postgres.rs"]
mod postgres;

use axum::Router;
use axum::http::StatusCode;
use common::*;

/// Logs in as ada, then calls `/hello` and `/claims` with the access token.
async fn walk_through(app: &Router) {
    let res = send(
        app,
        post_form(
            "/auth/login",
            &[("username", "ada"), ("password", "correct-horse")],
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let access = res.json()["access_token"].as_str().unwrap().to_owned();

    let res = send(app, get("/hello", Some(&access))).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.text(), "hello, ada\n");

    let res = send(app, get("/claims", Some(&access))).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let claims = res.json();
    assert_eq!(claims["sub"], "1");
    assert_eq!(claims["type"], "access");

    let res = send(app, get("/hello", None)).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    let res = send(
        app,
        post_form("/auth/login", &[("username", "ada"), ("password", "wrong")]),
    )
    .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_minimal_example_serves_its_routes() {
    let config = config_builder()
        .database_url("sqlite::memory:")
        .build()
        .unwrap();
    walk_through(&minimal::app(config).await.unwrap()).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn the_postgres_example_serves_its_routes() {
    let Some(db) = common::databases::postgres().await else {
        return;
    };
    let config = config_builder().database_url(db.url()).build().unwrap();
    let app = postgres::app(config.clone()).await.unwrap();
    walk_through(&app).await;
    // Started again on the same database (a second instance, or a
    // restart): the users table and ada are kept, not duplicated.
    walk_through(&postgres::app(config).await.unwrap()).await;
}
