//! The examples run: each one's `app` (the file is included here) answers
//! a login, a route that needs the current user and one that reads only
//! the token's claims, and each one's `listen` (what `main` calls with
//! `BIND`) listens where it is told. The PostgreSQL one needs the local
//! server (see `common::databases`: skipped without it, unless `CI` is set).

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

/// `GET /hello` without a token over a real connection to `addr`: the
/// status line.
async fn status_line_over_tcp(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /hello HTTP/1.1\r\nHost: example\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    response.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn the_minimal_example_listens_where_bind_says() {
    // Without BIND, the documented default.
    assert_eq!(minimal::DEFAULT_BIND, "127.0.0.1:3000");
    // BIND=127.0.0.1:0: a free port, where the app is then served.
    let listener = minimal::listen(Some("127.0.0.1:0")).await.unwrap();
    let addr = listener.local_addr().unwrap();
    assert_ne!(addr.port(), 0);
    let config = config_builder()
        .database_url("sqlite::memory:")
        .build()
        .unwrap();
    let app = minimal::app(config).await.unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    assert_eq!(
        status_line_over_tcp(addr).await,
        "HTTP/1.1 401 Unauthorized"
    );
    server.abort();
    // An address that cannot be listened on is an error naming it.
    let err = minimal::listen(Some("not-an-address")).await.unwrap_err();
    assert!(
        err.to_string().contains("cannot listen on not-an-address"),
        "{err}"
    );
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn the_postgres_example_listens_where_bind_says() {
    assert_eq!(postgres::DEFAULT_BIND, "127.0.0.1:3000");
    let listener = postgres::listen(Some("127.0.0.1:0")).await.unwrap();
    assert_ne!(listener.local_addr().unwrap().port(), 0);
    let err = postgres::listen(Some("not-an-address")).await.unwrap_err();
    assert!(
        err.to_string().contains("cannot listen on not-an-address"),
        "{err}"
    );
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
