//! axum integration: extractors, their rejections, and a ready router.
//!
//! The extractors need the [`Security`](crate::Security) handle in the
//! router state (directly or through [`FromRef`](axum::extract::FromRef));
//! [`CurrentUser`] also needs the application's [`UserAuthentication`](crate::UserAuthentication)
//! implementation as `Arc<A>`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use axum::{Router, routing::get, extract::FromRef};
//! use fastcore_security::{Security, TokenData};
//!
//! #[derive(Clone)]
//! struct AppState { security: Security }
//! impl FromRef<AppState> for Security {
//!     fn from_ref(s: &AppState) -> Security { s.security.clone() }
//! }
//!
//! async fn whoami(TokenData(claims): TokenData) -> String {
//!     format!("hello, user {}", claims.sub)
//! }
//!
//! fn app(security: Security) -> Router {
//!     Router::new().route("/whoami", get(whoami)).with_state(AppState { security })
//! }
//! ```

mod body;
mod cookie;
mod extract;
mod jwks;
#[cfg(feature = "metrics")]
mod metrics;
#[cfg(feature = "openapi")]
mod openapi;
mod rejection;
mod routes;

pub use self::cookie::{CookieConfig, CookieConfigBuilder, CookieSameSite, DEFAULT_COOKIE_PATH};
pub use extract::{CurrentUser, RefreshTokenData, TokenData, bearer_token};
pub use jwks::{JWKS_PATH, jwks_router};
#[cfg(feature = "metrics")]
pub use metrics::{METRICS_PATH, metrics_router};
#[cfg(all(feature = "openapi", feature = "metrics"))]
pub use openapi::with_metrics_route;
#[cfg(feature = "openapi")]
pub use openapi::{OPENAPI_PATH, openapi, openapi_router, problem_response, with_openapi_route};
pub use rejection::AuthRejection;
pub use routes::{AuthRoute, AuthState, ClientIp, auth_router};
