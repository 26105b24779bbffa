//! The server of the HTTP load benchmark (`bench/http.sh`): the real
//! server's router ([`app_with_routes`]: the auth endpoints behind the same
//! layers as `fastcore-security serve`) on the same connection handling,
//! plus three routes that isolate what validation costs:
//!
//! - `GET /bench/open`: no authentication at all (the ceiling);
//! - `GET /bench/stateless`: the bearer token's signature and claims only
//!   ([`Security::validate_jwt_stateless`]);
//! - `GET /bench/token`: the [`TokenData`] extractor, i.e. full validation
//!   in the configured mode, without `/auth/me`'s user lookup.
//!
//! Configuration as the server's (`DATABASE_URL`, `JWT_SECRET_KEY`,
//! `JWT_VALIDATION_MODE`, ...), plus `BENCH_BIND` (default
//! `127.0.0.1:8099`) and `BENCH_PASSWORD`: the password of the user
//! `bench`, created if the database has no users. Logs nothing below WARN
//! (`RUST_LOG` to change), as a server under load would be run.

#![allow(missing_docs)]

use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use fastcore_security::http::bearer_token;
use fastcore_security::{Security, SecurityConfig, TokenData, TokenType};
use fastcore_security_server::connections::{ConnectionLimits, serve_connections};
use fastcore_security_server::database::{Database, OpenOptions};
use fastcore_security_server::problem::DEFAULT_BODY_TIMEOUT;
use fastcore_security_server::serve::app_with_routes;
use fastcore_security_server::users::Authenticator;

async fn stateless(
    axum::extract::State(security): axum::extract::State<Security>,
    headers: HeaderMap,
) -> StatusCode {
    match bearer_token(&headers) {
        Ok(Some(token)) => match security.validate_jwt_stateless(token, Some(TokenType::Access)) {
            Ok(_) => StatusCode::OK,
            Err(_) => StatusCode::UNAUTHORIZED,
        },
        _ => StatusCode::UNAUTHORIZED,
    }
}

async fn token(TokenData(claims): TokenData) -> String {
    claims.sub
}

fn main() -> anyhow::Result<()> {
    // As the real binary does, before any thread starts.
    fastcore_security_server::memory::return_freed_blocks();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve())
}

async fn serve() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let url = std::env::var("DATABASE_URL").context("set DATABASE_URL")?;
    let bind = std::env::var("BENCH_BIND").unwrap_or_else(|_| "127.0.0.1:8099".into());
    let password = std::env::var("BENCH_PASSWORD").context("set BENCH_PASSWORD")?;
    let db = Database::open_with(&url, &OpenOptions::default()).await?;
    let config = SecurityConfig::builder_from_env()?
        .database_url(&url)
        .build()?;
    let security = db.security(config)?;
    let users = db.users();
    if users.count().await? == 0 {
        let hash = security.passwords().hash(&password).await?;
        users.create("bench", &hash).await?;
    }
    security.passwords().warm_up().await?;
    let authenticator = Arc::new(Authenticator::new(users, security.passwords().clone()));
    let routes = Router::new()
        .route("/bench/open", get(|| async { "ok" }))
        .route("/bench/stateless", get(stateless))
        .route("/bench/token", get(token))
        .with_state(security.clone());
    let router = app_with_routes(security, authenticator, DEFAULT_BODY_TIMEOUT, None, routes);
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    println!("listening on http://{bind}");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    serve_connections(listener, router, ConnectionLimits::default(), shutdown).await;
    Ok(())
}
