//! Stateful JWT authentication for axum applications.
//!
//! Every token carries a `jti` whose record lives in a [`TokenStore`]
//! (SQLite by default); validation checks the signature and claims *and*
//! that the record exists and is not revoked. That makes logout, admin
//! revocation and refresh real, unlike purely stateless JWTs.
//!
//! This crate is the Rust counterpart of a Python/FastAPI security module;
//! every export of that module has an equivalent here (see the README's
//! "seed name -> Rust name" table).
//!
//! # From zero to a protected route
//!
//! ```no_run
//! use std::sync::Arc;
//! use axum::{Router, routing::get};
//! use fastcore_security::{
//!     AuthState, CurrentUser, Credentials, Result, SecurityConfig, UserAuthentication,
//!     auth_router, setup_security,
//! };
//!
//! #[derive(Clone, serde::Serialize)]
//! struct User { id: u64, name: String }
//!
//! struct Users;
//!
//! #[async_trait::async_trait]
//! impl UserAuthentication for Users {
//!     type User = User;
//!     async fn authenticate(&self, c: &Credentials) -> Result<Option<User>> {
//!         // Look the user up and check the password with
//!         // fastcore_security::verify_password (or use PasswordAuthenticator).
//!         Ok(None)
//!     }
//!     async fn get_user_by_id(&self, id: &str) -> Result<Option<User>> {
//!         Ok(id.parse().ok().map(|id| User { id, name: "ada".into() }))
//!     }
//!     fn get_user_id(&self, user: &User) -> String { user.id.to_string() }
//! }
//!
//! async fn hello(user: CurrentUser<Users>) -> String {
//!     format!("hello {}", user.user.name)
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<()> {
//!     let security = setup_security(SecurityConfig::from_env()?).await?;
//!     let state = AuthState::new(security, Arc::new(Users));
//!     let app = Router::new()
//!         .route("/hello", get(hello))
//!         .with_state(state.clone())
//!         .merge(auth_router(state));
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await.unwrap();
//!     // With connect info, session lists show each login's address.
//!     let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
//!     axum::serve(listener, app).await.unwrap();
//!     Ok(())
//! }
//! ```
//!
//! # Token lifecycle
//!
//! - A login ([`Security::create_session`]) is a session: its access and
//!   refresh tokens share a `sid`.
//! - A refresh ([`Security::refresh_session`]) rotates: the refresh token is
//!   consumed atomically in the store and a new pair of the same session is
//!   returned. A spent refresh token presented again revokes its whole
//!   session ([`Error::RefreshTokenReused`]), except within a short grace
//!   for the client that rotated it (two tabs refreshing at once).
//! - [`Security::logout`] ends a session; [`Security::revoke_session`] ends
//!   one by id for its owner; [`Security::revoke_other_sessions`] keeps only
//!   the caller's; [`Security::revoke_all_user_tokens`] revokes every token
//!   of a user with one write (a per-user cut-off).
//! - Keys: one HMAC secret, or a [`KeySet`] of several keys with `kid`s
//!   (HS*, RS*, PS*, ES256/384, EdDSA; each pinned to its algorithm), loaded
//!   from a key file for rotation; the public ones are served as JWKS.
//!
//! # Login throttling
//!
//! Failed logins are limited per account (default 5) and per client
//! address (default 20, an IPv6 client by its /64) in a fixed window
//! (default 15 minutes) that starts at the first failure and simply ends,
//! so nobody can be locked out for good (the OWASP Authentication Cheat
//! Sheet's throttling, not a permanent lockout). Every attempt is counted
//! atomically *before* its password is checked ([`Security::begin_login`],
//! which [`auth_router`]'s login calls), so a refused login costs no
//! hashing, is the same for every username, and concurrent attempts cannot
//! slip past a limit together; a success clears its account's count and
//! does not count against its address. Refusals are
//! [`Error::TooManyAttempts`] (429 with `Retry-After`). The counts live in
//! the store's own [`LoginThrottle`] ([`TokenStore::login_throttle`]: SQL
//! table or Redis keys, shared by every instance), or in a bounded
//! [`MemoryLoginThrottle`]; a throttle store that fails refuses logins with
//! [`Error::StoreUnavailable`] (503) rather than let them through
//! uncounted. Usernames and addresses are only ever stored and logged as
//! hashed [`ThrottleKey`]s. Settings: [`SecurityConfigBuilder::login_max_failures_per_account`]
//! and its neighbours, or the `LOGIN_*` variables of [`SecurityConfig::from_env`].
//!
//! # Browser apps
//!
//! [`AuthState::with_cookies`] puts the refresh token in an `HttpOnly`,
//! `Secure`, `SameSite=Strict` cookie scoped to `/auth` instead of the
//! token response's body; refresh and logout accept it from the cookie
//! after a cross-site request check (`Sec-Fetch-Site`, then `Origin`
//! against an allow-list; 403 `csrf_check_failed`). See [`CookieConfig`]
//! and `examples/cookies.rs`.
#![deny(missing_docs)]

mod config;
mod error;
mod manager;
mod password;
mod throttle;
mod tokens;
mod users;

#[cfg(feature = "axum")]
pub mod http;

pub use config::{Environment, SecurityConfig, SecurityConfigBuilder, redact_url};
pub use error::{Error, InvalidTokenReason, Result, StoreError};
pub use manager::{SecurityStatus, get_security_status, setup_security};
pub use password::{
    PasswordHasher, PasswordPolicy, PasswordVerification, get_password_hash, verify_password,
};
pub use throttle::{LoginAttempt, LoginThrottle, MemoryLoginThrottle, ThrottleKey, ThrottleWindow};
pub use tokens::claims::{Audience, Claims, RESERVED_CLAIMS, TokenType};
pub use tokens::jwt::JwtCodec;
pub use tokens::key_file::{KeyFile, KeyFileEntry, KeyMaterial, KeyStatus};
pub use tokens::keys::{KeySet, MAX_KID_BYTES, SigningKey};
pub use tokens::service::{
    ClientInfo, IssuedToken, MAX_SUBJECT_BYTES, Security, Session, TokenPair,
};
#[cfg(feature = "mysql")]
pub use tokens::store::MySqlTokenStore;
#[cfg(feature = "postgres")]
pub use tokens::store::PostgresTokenStore;
#[cfg(feature = "redis")]
pub use tokens::store::RedisTokenStore;
#[cfg(feature = "sqlite")]
pub use tokens::store::SqliteTokenStore;
pub use tokens::store::{
    MAX_IP_BYTES, MAX_USER_AGENT_BYTES, MemoryTokenStore, Rotation, SessionMeta, TokenRecord,
    TokenStore, connect_store,
};
pub use users::{Credentials, PasswordAuthenticator, UserAuthentication, UserDirectory};

#[cfg(feature = "axum")]
pub use http::{
    AuthRejection, AuthState, ClientIp, CookieConfig, CookieConfigBuilder, CookieSameSite,
    CurrentUser, RefreshTokenData, TokenData, auth_router, jwks_router,
};

/// The JWT signing algorithms (re-exported from `jsonwebtoken`).
pub use jsonwebtoken::Algorithm;
/// A JSON Web Key and a JWK Set (RFC 7517), re-exported from `jsonwebtoken`:
/// what [`Security::jwks`] returns and [`SigningKey::from_public_jwk`] takes.
pub use jsonwebtoken::jwk::{Jwk, JwkSet};
