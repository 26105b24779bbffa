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
//! Four steps: configure, describe your users, add the routes, serve. The
//! example runs as it is (a doctest): it logs in over HTTP and calls the
//! protected route with the token it got, in-process.
//!
//! 1. **Configure** with [`SecurityConfig`]: [`SecurityConfig::from_env`]
//!    reads the seed's variables (`JWT_SECRET_KEY`, `DATABASE_URL`...), or
//!    build one in code. [`setup_security`] connects the [`TokenStore`]
//!    named by the database URL and runs its migrations; here it is an
//!    in-memory SQLite database.
//! 2. **Describe your users**: implement [`UserDirectory`] on your own user
//!    table (find by name, by id, give the stored hash) and wrap it in a
//!    [`PasswordAuthenticator`], which checks passwords the careful way;
//!    or implement [`UserAuthentication`] yourself.
//! 3. **Add the routes**: [`auth_router`] serves login, refresh, logout,
//!    sessions, `/auth/me`, the JWKS and health; a handler that takes
//!    [`CurrentUser`] (or just [`TokenData`]) is protected: without a valid
//!    access token it answers 401 with an RFC 6750 challenge.
//! 4. **Serve** it with `axum::serve`, with connect info so that session
//!    lists and the login throttle see each client's address.
//!
//! ```
//! use std::{collections::HashMap, net::SocketAddr, sync::Arc};
//!
//! use axum::{Router, body::Body, http::{Request, StatusCode, header}, routing::get};
//! use fastcore_security::{
//!     AuthState, CurrentUser, PasswordAuthenticator, Result, SecurityConfig, UserDirectory,
//!     auth_router, get_password_hash, setup_security,
//! };
//! use http_body_util::BodyExt as _;
//! use tower::ServiceExt as _;
//!
//! // Your user type; `Serialize` decides what `GET /auth/me` shows.
//! #[derive(Clone, serde::Serialize)]
//! struct User {
//!     id: u64,
//!     name: String,
//!     #[serde(skip)]
//!     password_hash: String,
//! }
//!
//! // Your user table (a map here; a real app queries its database).
//! struct Users(HashMap<u64, User>);
//!
//! #[async_trait::async_trait]
//! impl UserDirectory for Users {
//!     type User = User;
//!     async fn find_by_username(&self, name: &str) -> Result<Option<User>> {
//!         Ok(self.0.values().find(|u| u.name == name).cloned())
//!     }
//!     async fn find_by_id(&self, id: &str) -> Result<Option<User>> {
//!         // The token's `sub` is a string; integer ids travel as text.
//!         Ok(id.parse().ok().and_then(|id| self.0.get(&id)).cloned())
//!     }
//!     fn user_id(&self, user: &User) -> String { user.id.to_string() }
//!     fn password_hash(&self, user: &User) -> String { user.password_hash.clone() }
//! }
//!
//! type Auth = PasswordAuthenticator<Users>;
//!
//! // A protected route: it runs only for a valid, unrevoked access token.
//! async fn hello(user: CurrentUser<Auth>) -> String {
//!     format!("hello {}", user.user.name)
//! }
//!
//! async fn app() -> Result<Router> {
//!     // 1. Configure (in production: SecurityConfig::from_env()?).
//!     let config = SecurityConfig::builder()
//!         .secret("an-example-secret-that-is-at-least-32-bytes")
//!         .database_url("sqlite::memory:")
//!         .build()?;
//!     let security = setup_security(config).await?;
//!     // 2. Users.
//!     let ada = User { id: 1, name: "ada".into(), password_hash: get_password_hash("correct-horse").await? };
//!     let users = Users(HashMap::from([(1, ada)]));
//!     let auth = Arc::new(PasswordAuthenticator::new(users, security.passwords().clone()));
//!     // 3. Routes: yours, with the state, next to the auth routes.
//!     let state = AuthState::new(security, auth);
//!     Ok(Router::new()
//!         .route("/hello", get(hello))
//!         .with_state(state.clone())
//!         .merge(auth_router(state)))
//! }
//!
//! // 4. Serve (what `main` does in a real program).
//! async fn serve(app: Router) -> std::io::Result<()> {
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//!     axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<()> {
//! let app = app().await?;
//! # let _ = serve; // shown, not run: a doctest must not listen on a port
//!
//! // Without a token: 401 and a `WWW-Authenticate: Bearer` challenge.
//! let res = app.clone().oneshot(Request::get("/hello").body(Body::empty()).unwrap()).await.unwrap();
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//!
//! // Log in (the OAuth2 password form), then call the route with the token.
//! let login = Request::post("/auth/login")
//!     .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
//!     .body(Body::from("username=ada&password=correct-horse"))
//!     .unwrap();
//! let res = app.clone().oneshot(login).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! let body = res.into_body().collect().await.unwrap().to_bytes();
//! let tokens: serde_json::Value = serde_json::from_slice(&body).unwrap();
//! let access = tokens["access_token"].as_str().unwrap();
//!
//! let hello = Request::get("/hello")
//!     .header(header::AUTHORIZATION, format!("Bearer {access}"))
//!     .body(Body::empty())
//!     .unwrap();
//! let res = app.oneshot(hello).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! let body = res.into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(&body[..], b"hello ada");
//! # Ok(())
//! # }
//! ```
//!
//! `crates/security/examples/minimal.rs` is the same app as a program
//! (`cargo run -p fastcore-security --example minimal`).
//!
//! # Where things are
//!
//! | concept | items |
//! |---|---|
//! | configuration | [`SecurityConfig`], [`SecurityConfigBuilder`], [`setup_security`] |
//! | tokens | [`Security`] (create, validate, refresh, revoke, sessions), [`Claims`], [`TokenType`], [`TokenPair`], [`JwtCodec`] |
//! | keys | [`KeySet`], [`SigningKey`], [`KeyFile`], [`Security::jwks`] |
//! | stores | [`TokenStore`] and its backends, [`connect_store`], [`TokenRecord`] |
//! | passwords | [`PasswordHasher`], [`PasswordPolicy`], [`get_password_hash`], [`verify_password`] |
//! | users | [`UserAuthentication`], [`UserDirectory`], [`PasswordAuthenticator`], [`Credentials`] |
//! | login throttling | [`LoginThrottle`], [`Security::begin_login`] |
//! | HTTP (feature `axum`) | [`auth_router`], [`TokenData`], [`CurrentUser`], [`RefreshTokenData`], [`AuthRejection`], [`http`] |
//! | OpenAPI (feature `openapi`) | `openapi()`, `http::openapi_router` |
//! | metrics (feature `metrics`) | `SecurityMetrics`, `Security::metrics`, `http::metrics_router` |
//! | errors | [`Error`], [`InvalidTokenReason`], [`StoreError`] |
//! | reading a token without verifying it | [`insecure`] |
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
//! Every login that fails for its credentials is also held to a minimum
//! duration, the failure floor ([`SecurityConfigBuilder::login_failure_floor`],
//! `LOGIN_FAILURE_FLOOR_MS`, default 500 ms; [`Security::fail_login`]),
//! so that an account whose stored hash is slower than the policy's (a
//! legacy bcrypt hash) does not fail measurably slower than an unknown user;
//! and the attempts of one account take turns, each failure keeping its
//! turn until its answer is due, so that a concurrent burst of wrong
//! passwords does not tell them apart either.
//!
//! # Validation modes
//!
//! [`ValidationMode::Strict`] (the default) reads the token's record on
//! every [`Security::validate_token`]. [`ValidationMode::Synced`]
//! (`JWT_VALIDATION_MODE=synced`) keeps an in-memory view of the
//! revocations in force, loaded at start and kept current by the store's
//! [`RevocationFeed`] (PostgreSQL `LISTEN/NOTIFY`, Redis pub/sub, a polled
//! change log on SQLite and MySQL), so a request costs about what
//! [`Security::validate_jwt_stateless`] costs. A revocation made anywhere
//! is seen everywhere within the feed's delay (and at once by the instance
//! that made it); when the feed is lost the instance checks every request
//! in the store until it has reloaded the view. See the module docs of
//! [`RevocationFeed`] and the README's "Validation modes".
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
pub mod insecure;
mod manager;
mod metrics;
mod password;
mod throttle;
mod tokens;
mod users;

#[cfg(feature = "axum")]
pub mod http;

pub use config::{Environment, SecurityConfig, SecurityConfigBuilder, ValidationMode, redact_url};
pub use error::{Error, InvalidTokenReason, Result, StoreError};
pub use manager::{SecurityStatus, get_security_status, setup_security};
#[cfg(feature = "metrics")]
pub use metrics::SecurityMetrics;
pub use password::{
    PasswordHasher, PasswordPolicy, PasswordVerification, get_password_hash, verify_password,
};
pub use throttle::{
    LoginAttempt, LoginThrottle, MemoryLoginThrottle, ThrottleKey, ThrottleKeys, ThrottleWindow,
};
pub use tokens::claims::{Audience, Claims, RESERVED_CLAIMS, TokenType};
pub use tokens::feed::{Revocation, RevocationBatch, RevocationFeed};
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

#[cfg(all(feature = "metrics", feature = "axum"))]
pub use http::metrics_router;
#[cfg(feature = "openapi")]
pub use http::openapi;
#[cfg(feature = "axum")]
pub use http::{
    AuthRejection, AuthRoute, AuthState, ClientIp, CookieConfig, CookieConfigBuilder,
    CookieSameSite, CurrentUser, RefreshTokenData, TokenData, auth_router, jwks_router,
};

/// The JWT signing algorithms (re-exported from `jsonwebtoken`).
pub use jsonwebtoken::Algorithm;
/// A JSON Web Key and a JWK Set (RFC 7517), re-exported from `jsonwebtoken`:
/// what [`Security::jwks`] returns and [`SigningKey::from_public_jwk`] takes.
pub use jsonwebtoken::jwk::{Jwk, JwkSet};
