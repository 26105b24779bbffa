//! A complete axum app with its own user model: the seed's "User
//! Authentication Example" in Rust.
//!
//! ```sh
//! JWT_SECRET_KEY=an-example-secret-that-is-at-least-32-bytes \
//!   cargo run -p fastcore-security --example minimal
//! ACCESS=$(curl -s localhost:3000/auth/login -d username=ada -d password=correct-horse \
//!   | python3 -c 'import json,sys;print(json.load(sys.stdin)["access_token"])')
//! curl -s localhost:3000/hello -H "Authorization: Bearer $ACCESS"    # needs the user
//! curl -s localhost:3000/claims -H "Authorization: Bearer $ACCESS"   # the token's claims only
//! ```
//!
//! `BIND` changes the address (default `127.0.0.1:3000`; `BIND=127.0.0.1:0`
//! picks a free port); the example prints where it listens.
//!
//! The user model is a plain struct in a map; a real app would read its own
//! table. Implementing [`UserDirectory`] (find by name or id, give the stored
//! hash) is all it takes: [`PasswordAuthenticator`] does the password checks
//! the careful way (constant work for unknown users, hash upgrades).

use std::collections::HashMap;
use std::sync::Arc;

use axum::{Json, Router, routing::get};
use fastcore_security::{
    AuthState, CurrentUser, PasswordAuthenticator, Result, SecurityConfig, TokenData,
    UserDirectory, auth_router, get_password_hash, setup_security,
};
use serde::Serialize;

/// The application's own user type. `Serialize` decides what `/auth/me`
/// shows: never the hash.
#[derive(Clone, Serialize)]
pub(crate) struct User {
    id: u64,
    name: String,
    #[serde(skip)]
    password_hash: String,
}

/// The application's user table.
pub(crate) struct Users(HashMap<u64, User>);

#[async_trait::async_trait]
impl UserDirectory for Users {
    type User = User;

    async fn find_by_username(&self, username: &str) -> Result<Option<User>> {
        Ok(self.0.values().find(|u| u.name == username).cloned())
    }

    async fn find_by_id(&self, user_id: &str) -> Result<Option<User>> {
        // Integer ids travel as strings in `sub`.
        Ok(user_id.parse().ok().and_then(|id| self.0.get(&id)).cloned())
    }

    fn user_id(&self, user: &User) -> String {
        user.id.to_string()
    }

    fn password_hash(&self, user: &User) -> String {
        user.password_hash.clone()
    }
}

type Auth = PasswordAuthenticator<Users>;

/// Needs the current user: loads it through the app's `UserDirectory`.
async fn hello(current: CurrentUser<Auth>) -> String {
    format!("hello, {}\n", current.user.name)
}

/// Needs only the validated token claims: no user lookup.
async fn claims(TokenData(claims): TokenData) -> Json<fastcore_security::Claims> {
    Json(claims)
}

/// The app: two routes of its own and the auth router, over user `ada`
/// (password `correct-horse`).
pub(crate) async fn app(config: SecurityConfig) -> Result<Router> {
    let security = setup_security(config).await?;

    let ada = User {
        id: 1,
        name: "ada".into(),
        password_hash: get_password_hash("correct-horse").await?,
    };
    let users = Users(HashMap::from([(ada.id, ada)]));
    let auth = Arc::new(PasswordAuthenticator::new(
        users,
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
        .map_err(|e| fastcore_security::Error::Config(format!("cannot listen on {bind}: {e}")))
}

#[allow(dead_code)] // tests/examples.rs includes this file and calls `app` and `listen` only.
#[tokio::main]
async fn main() -> Result<()> {
    let config = SecurityConfig::builder_from_env()?
        .database_url("sqlite::memory:")
        .build()?;
    let app = app(config).await?;
    let listener = listen(std::env::var("BIND").ok().as_deref()).await?;
    if let Ok(addr) = listener.local_addr() {
        println!("listening on http://{addr} (user ada / correct-horse)");
    }
    // With connect info, session lists show each login's address.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .await
        .map_err(|e| fastcore_security::Error::Internal(e.to_string()))
}
