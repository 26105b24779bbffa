//! An app on PostgreSQL: the token store and the app's own users table in
//! one database, the users read with sqlx through [`UserDirectory`].
//!
//! ```sh
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//! JWT_SECRET_KEY=an-example-secret-that-is-at-least-32-bytes \
//!   cargo run -p fastcore-security --features postgres --example postgres
//! curl -s localhost:3000/auth/login -d username=ada -d password=correct-horse
//! ```
//!
//! `BIND` changes the address (default `127.0.0.1:3000`; `BIND=127.0.0.1:0`
//! picks a free port); the example prints where it listens.
//!
//! [`setup_security`] connects to `DATABASE_URL` and applies the token
//! store's migrations (its tables are named `fastcore_*`). The example
//! then creates its own `app_users` table if missing and adds `ada`
//! (password `correct-horse`) once; a real app has its own migrations.
//! Every instance started with the same `DATABASE_URL` and
//! `JWT_SECRET_KEY` accepts the others' tokens and sees their logouts.

use std::sync::Arc;

use axum::{Json, Router, routing::get};
use fastcore_security::{
    AuthState, CurrentUser, Error, PasswordAuthenticator, Result, SecurityConfig, StoreError,
    TokenData, UserDirectory, auth_router, get_password_hash, setup_security,
};
use serde::Serialize;
use sqlx::PgPool;

/// A row of `app_users`; `Serialize` decides what `/auth/me` shows.
#[derive(Clone, Serialize, sqlx::FromRow)]
pub(crate) struct User {
    id: i64,
    name: String,
    #[serde(skip)]
    password_hash: String,
    active: bool,
}

/// The app's users table, read through its own pool.
pub(crate) struct PgUsers(PgPool);

/// The pool's errors become a 503 with `Retry-After` (never a 401 that
/// logs users out); the driver's message goes to the log only.
fn unavailable(err: sqlx::Error) -> Error {
    StoreError::new("app_users", err).into()
}

#[async_trait::async_trait]
impl UserDirectory for PgUsers {
    type User = User;

    async fn find_by_username(&self, username: &str) -> Result<Option<User>> {
        sqlx::query_as("SELECT id, name, password_hash, active FROM app_users WHERE name = $1")
            .bind(username)
            .fetch_optional(&self.0)
            .await
            .map_err(unavailable)
    }

    async fn find_by_id(&self, user_id: &str) -> Result<Option<User>> {
        let Ok(id) = user_id.parse::<i64>() else {
            return Ok(None);
        };
        sqlx::query_as("SELECT id, name, password_hash, active FROM app_users WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.0)
            .await
            .map_err(unavailable)
    }

    fn user_id(&self, user: &User) -> String {
        user.id.to_string()
    }

    fn password_hash(&self, user: &User) -> String {
        user.password_hash.clone()
    }

    fn is_active(&self, user: &User) -> bool {
        user.active
    }

    /// Logins with an old bcrypt hash (or weaker argon2 parameters) store
    /// the new hash here.
    async fn update_password_hash(&self, user: &User, new_hash: &str) -> Result<()> {
        sqlx::query("UPDATE app_users SET password_hash = $1 WHERE id = $2")
            .bind(new_hash)
            .bind(user.id)
            .execute(&self.0)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }
}

type Auth = PasswordAuthenticator<PgUsers>;

/// Needs the current user: one `app_users` lookup per request.
async fn hello(current: CurrentUser<Auth>) -> String {
    format!("hello, {}\n", current.user.name)
}

/// Needs only the validated token: no user lookup.
async fn claims(TokenData(claims): TokenData) -> Json<fastcore_security::Claims> {
    Json(claims)
}

/// The app on the database of `config`'s URL: the token store, the users
/// table (created, with `ada`, if missing), two routes and the auth router.
pub(crate) async fn app(config: SecurityConfig) -> Result<Router> {
    let url = config
        .database_url()
        .ok_or_else(|| Error::Config("set DATABASE_URL to a postgres:// URL".into()))?
        .to_owned();
    let security = setup_security(config).await?;
    let pool = PgPool::connect(&url).await.map_err(unavailable)?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS app_users (
            id BIGSERIAL PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            password_hash TEXT NOT NULL,
            active BOOLEAN NOT NULL DEFAULT TRUE
        )",
    )
    .execute(&pool)
    .await
    .map_err(unavailable)?;
    sqlx::query(
        "INSERT INTO app_users (name, password_hash) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind("ada")
    .bind(get_password_hash("correct-horse").await?)
    .execute(&pool)
    .await
    .map_err(unavailable)?;

    let auth = Arc::new(PasswordAuthenticator::new(
        PgUsers(pool),
        security.passwords().clone(),
    ));
    let state = AuthState::new(security, auth);
    Ok(Router::new()
        .route("/hello", get(hello))
        .route("/claims", get(claims))
        .with_state(state.clone())
        .merge(auth_router(state)))
}

/// Where `main` listens when `BIND` is not set.
pub(crate) const DEFAULT_BIND: &str = "127.0.0.1:3000";

/// Listens on `bind` (`main` passes `BIND`; port 0 picks a free one), or
/// on [`DEFAULT_BIND`].
pub(crate) async fn listen(bind: Option<&str>) -> Result<tokio::net::TcpListener> {
    let bind = bind.unwrap_or(DEFAULT_BIND);
    tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| Error::Config(format!("cannot listen on {bind}: {e}")))
}

#[allow(dead_code)] // tests/examples.rs includes this file and calls `app` and `listen` only.
#[tokio::main]
async fn main() -> Result<()> {
    // JWT_SECRET_KEY, DATABASE_URL and the other variables of the README.
    let config = SecurityConfig::from_env()?;
    let app = app(config).await?;
    let listener = listen(std::env::var("BIND").ok().as_deref()).await?;
    if let Ok(addr) = listener.local_addr() {
        println!("listening on http://{addr} (user ada / correct-horse)");
    }
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .await
        .map_err(|e| Error::Internal(e.to_string()))
}
