//! A ready router: login, refresh, logout, logout-all, me, health.

use std::sync::Arc;

use axum::extract::{FromRef, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::body::{parse, read_limited, refuse_secrets_in_query};
use super::extract::{CurrentUser, TokenData, bearer_token, raw_refresh_token};
use super::rejection::AuthRejection;
use crate::error::Error;
use crate::manager::get_security_status;
use crate::tokens::claims::TokenType;
use crate::tokens::service::Security;
use crate::users::{Credentials, UserAuthentication};

/// The router's state: the security handle and the application's users.
pub struct AuthState<A> {
    /// The security handle.
    pub security: Security,
    /// The application's user authentication.
    pub users: Arc<A>,
}

impl<A> AuthState<A> {
    /// Bundles a security handle and a user authentication.
    pub fn new(security: Security, users: Arc<A>) -> Self {
        Self { security, users }
    }
}

impl<A> Clone for AuthState<A> {
    fn clone(&self) -> Self {
        Self {
            security: self.security.clone(),
            users: Arc::clone(&self.users),
        }
    }
}

impl<A> FromRef<AuthState<A>> for Security {
    fn from_ref(state: &AuthState<A>) -> Self {
        state.security.clone()
    }
}

impl<A> FromRef<AuthState<A>> for Arc<A> {
    fn from_ref(state: &AuthState<A>) -> Self {
        Arc::clone(&state.users)
    }
}

/// The auth endpoints, ready to merge into an application:
///
/// | route | what it does |
/// |---|---|
/// | `POST /auth/login` | OAuth2 password form or JSON `{username, password}` -> token pair |
/// | `POST /auth/refresh` | refresh token in the body (JSON or OAuth2 form) -> new access token |
/// | `POST /auth/logout` | ends the bearer token's whole login session |
/// | `POST /auth/logout-all` | ends every session of the bearer token's user |
/// | `GET /auth/me` | the current user, as `A::User` serializes |
/// | `GET /health` | [`SecurityStatus`](crate::SecurityStatus); 503 when the store is down |
pub fn auth_router<A>(state: AuthState<A>) -> Router
where
    A: UserAuthentication,
    A::User: Serialize,
{
    Router::new()
        .route("/auth/login", post(login::<A>))
        .route("/auth/refresh", post(refresh::<A>))
        .route("/auth/logout", post(logout))
        .route("/auth/logout-all", post(logout_all))
        .route("/auth/me", get(me::<A>))
        .route("/health", get(health))
        .with_state(state)
}

/// Token responses must not be cached (RFC 6749 section 5.1).
fn no_store<T: Serialize>(body: T) -> Response {
    let mut response = Json(body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

#[derive(Deserialize)]
struct LoginBody {
    #[serde(default)]
    grant_type: Option<String>,
    username: String,
    password: secrecy::SecretString,
}

/// Longest username accepted at login, in bytes.
const MAX_USERNAME_BYTES: usize = 320;

async fn login<A>(
    State(state): State<AuthState<A>>,
    req: Request,
) -> Result<Response, AuthRejection>
where
    A: UserAuthentication,
{
    let (parts, body) = req.into_parts();
    refuse_secrets_in_query(&parts)?;
    let bytes = read_limited(body).await?;
    let body: LoginBody = parse(&parts.headers, &bytes, "username and password fields")?;
    drop(bytes);
    if body.grant_type.as_deref().is_some_and(|g| g != "password") {
        return Err(AuthRejection::InvalidRequest(
            "grant_type must be password".into(),
        ));
    }
    if body.username.is_empty() || body.username.len() > MAX_USERNAME_BYTES {
        return Err(Error::InvalidCredentials.into());
    }
    let credentials = Credentials {
        username: body.username,
        password: body.password,
    };
    let user = state.users.authenticate(&credentials).await?;
    let Some(user) = user.filter(|u| state.users.is_active(u)) else {
        tracing::info!("login refused: invalid credentials");
        return Err(Error::InvalidCredentials.into());
    };
    let user_id = state.users.get_user_id(&user);
    let pair = state.security.create_token_pair(&user_id, None).await?;
    tracing::info!(user_id = %user_id, "login succeeded");
    Ok(no_store(pair))
}

async fn refresh<A>(
    State(state): State<AuthState<A>>,
    req: Request,
) -> Result<Response, AuthRejection>
where
    A: UserAuthentication,
{
    let token = raw_refresh_token(req).await?;
    let claims = state
        .security
        .validate_token(&token, Some(TokenType::Refresh))
        .await?;
    // A user disabled or deleted since login must not keep minting tokens.
    let user = state.users.get_user_by_id(&claims.sub).await?;
    if !user.is_some_and(|u| state.users.is_active(&u)) {
        return Err(Error::Authentication("the token's user is disabled or unknown".into()).into());
    }
    let access = state.security.access_token_from_refresh(claims).await?;
    Ok(no_store(access))
}

async fn logout(
    State(security): State<Security>,
    req: Request,
) -> Result<StatusCode, AuthRejection> {
    let token = bearer_token(req.headers())?.ok_or(AuthRejection::MissingToken)?;
    let revoked = security.logout(token).await?;
    tracing::info!(revoked, "logout");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
struct Revoked {
    revoked: u64,
}

async fn logout_all(
    State(security): State<Security>,
    TokenData(claims): TokenData,
) -> Result<Response, AuthRejection> {
    let revoked = security.revoke_all_user_tokens(&claims.sub, None).await?;
    tracing::info!(user_id = %claims.sub, revoked, "logout from every session");
    Ok(Json(Revoked { revoked }).into_response())
}

async fn me<A>(current: CurrentUser<A>) -> Json<A::User>
where
    A: UserAuthentication,
    A::User: Serialize,
{
    Json(current.user)
}

async fn health(State(security): State<Security>) -> Response {
    let status = get_security_status(Some(&security)).await;
    if status.healthy() {
        return (StatusCode::OK, Json(status)).into_response();
    }
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(status)).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}
