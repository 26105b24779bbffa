//! A ready router: login, refresh, logout, logout-all, sessions, me, JWKS,
//! health.

use std::sync::Arc;

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRef, Path, RawQuery, Request, State};
use axum::http::Method;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::body::{parse, read_limited, refuse_secrets_in_query};
use super::cookie::CookieConfig;
use super::extract::{CurrentUser, TokenData, bearer_token, explicit_refresh_token};
use super::rejection::AuthRejection;
use crate::error::Error;
use crate::manager::get_security_status;
use crate::tokens::claims::TokenType;
use crate::tokens::service::{ClientInfo, Security, TokenPair};
use crate::users::{Credentials, UserAuthentication};

/// The client's address as the application's trusted-proxy logic decided
/// it, as a request extension: when a request carries one, the auth
/// router uses it instead of the peer address ([`ConnectInfo`]) for the
/// per-address login limit and for session lists.
///
/// Behind a reverse proxy, every request's peer is the proxy; a middleware
/// that reads the proxy's `X-Forwarded-For` (from proxies you trust only)
/// inserts this:
///
/// ```
/// use std::net::IpAddr;
/// use axum::{extract::Request, middleware::Next, response::Response};
/// use fastcore_security::ClientIp;
///
/// async fn client_from_proxy(mut req: Request, next: Next) -> Response {
///     // Our one proxy appends the address it saw last.
///     let ip = req
///         .headers()
///         .get("x-forwarded-for")
///         .and_then(|v| v.to_str().ok())
///         .and_then(|v| v.rsplit(',').next())
///         .and_then(|v| v.trim().parse::<IpAddr>().ok());
///     if let Some(ip) = ip {
///         req.extensions_mut().insert(ClientIp(ip));
///     }
///     next.run(req).await
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// The router's state: the security handle and the application's users.
pub struct AuthState<A> {
    /// The security handle.
    pub security: Security,
    /// The application's user authentication.
    pub users: Arc<A>,
    /// The refresh cookie of browser apps, when turned on.
    cookies: Option<Arc<CookieConfig>>,
}

impl<A> AuthState<A> {
    /// Bundles a security handle and a user authentication.
    pub fn new(security: Security, users: Arc<A>) -> Self {
        Self {
            security,
            users,
            cookies: None,
        }
    }

    /// Turns on the refresh cookie for browser apps (see [`CookieConfig`]):
    /// login and refresh by cookie put the refresh token in the cookie,
    /// not the body; refresh and logout accept it from the cookie, after
    /// the cross-site request check. Clients that send the refresh token
    /// in the body keep getting it in the body.
    pub fn with_cookies(mut self, cookies: CookieConfig) -> Self {
        self.cookies = Some(Arc::new(cookies));
        self
    }

    /// The refresh cookie settings, if the cookie is on.
    pub fn cookies(&self) -> Option<&CookieConfig> {
        self.cookies.as_deref()
    }
}

impl<A> Clone for AuthState<A> {
    fn clone(&self) -> Self {
        Self {
            security: self.security.clone(),
            users: Arc::clone(&self.users),
            cookies: self.cookies.clone(),
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
/// | `POST /auth/login` | OAuth2 password form or JSON `{username, password}` -> token pair; 401 `invalid_credentials` for every credentials failure, held until the [failure floor](crate::SecurityConfigBuilder::login_failure_floor) (see [`Security::fail_login`]; the attempts of one account take turns); 429 with `Retry-After` when the account or the client address has used up its failed logins (see [`Security::begin_login`]) |
/// | `POST /auth/refresh` | refresh token in the body (JSON or OAuth2 form) -> new token pair; the old refresh token is consumed (rotation with reuse detection, see [`Security::refresh_session`]) |
/// | `POST /auth/logout` | ends the bearer token's whole login session; an expired or revoked token is fine (204) |
///
/// With [`AuthState::with_cookies`], login and refresh by cookie answer
/// with the refresh token in a cookie instead of the body; refresh and
/// logout take it from the cookie when the request sends no token itself,
/// after the cross-site check ([`CookieConfig::check_request_origin`]);
/// logout deletes the cookie.
///
/// | route | |
/// |---|---|
/// | `POST /auth/logout-all` | ends every session of the bearer token's user, on every device (204) |
/// | `POST /auth/logout-others` | ends every session but the bearer token's own -> `{"revoked": n}`, `n` the sessions ended |
/// | `GET /auth/sessions` | the user's live sessions; `?exclude_current=true` leaves out the caller's |
/// | `DELETE /auth/sessions/{id}` | ends one of the user's own sessions (204; 404 if it is not theirs) |
/// | `GET /auth/me` | the current user, as `A::User` serializes |
/// | `GET /.well-known/jwks.json` | the public keys ([`jwks_router`](super::jwks_router)); `{"keys":[]}` with HMAC keys |
/// | `GET /health` | [`SecurityStatus`](crate::SecurityStatus); 503 when the store is down |
///
/// The routes are exactly [`AuthRoute::ALL`]: the router is built from
/// that list (and the OpenAPI description, feature `openapi`, covers it).
pub fn auth_router<A>(state: AuthState<A>) -> Router
where
    A: UserAuthentication,
    A::User: Serialize,
{
    let jwks = super::jwks::jwks_handler(&state.security);
    AuthRoute::ALL
        .iter()
        .fold(Router::new(), |router, route| {
            let filter = route.method_filter();
            let handler = match route {
                AuthRoute::Login => on(filter, login::<A>),
                AuthRoute::Refresh => on(filter, refresh::<A>),
                AuthRoute::Logout => on(filter, logout::<A>),
                AuthRoute::LogoutAll => on(filter, logout_all),
                AuthRoute::LogoutOthers => on(filter, logout_others),
                AuthRoute::ListSessions => on(filter, list_sessions),
                AuthRoute::DeleteSession => on(filter, delete_session),
                AuthRoute::Me => on(filter, me::<A>),
                AuthRoute::Jwks => jwks.clone(),
                AuthRoute::Health => on(filter, health),
            };
            router.route(route.path(), handler)
        })
        .with_state(state)
}

/// One route of [`auth_router`]. [`AuthRoute::ALL`] is the one list the
/// router is built from, so tools (the OpenAPI description, a CSRF layer,
/// a rate limiter) can rely on it.
///
/// ```
/// use fastcore_security::AuthRoute;
///
/// let login = AuthRoute::ALL.iter().find(|r| r.path() == "/auth/login").unwrap();
/// assert_eq!(*login, AuthRoute::Login);
/// assert_eq!(login.method(), axum::http::Method::POST);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthRoute {
    /// `POST /auth/login`: credentials -> token pair.
    Login,
    /// `POST /auth/refresh`: refresh token -> new token pair (rotation).
    Refresh,
    /// `POST /auth/logout`: ends the bearer token's session.
    Logout,
    /// `POST /auth/logout-all`: ends every session of the user.
    LogoutAll,
    /// `POST /auth/logout-others`: ends every session but the caller's.
    LogoutOthers,
    /// `GET /auth/sessions`: the user's live sessions.
    ListSessions,
    /// `DELETE /auth/sessions/{id}`: ends one of the user's sessions.
    DeleteSession,
    /// `GET /auth/me`: the current user.
    Me,
    /// `GET /.well-known/jwks.json`: the public keys.
    Jwks,
    /// `GET /health`: whether the security layer and its store work.
    Health,
}

impl AuthRoute {
    /// Every route [`auth_router`] serves, in a stable order.
    pub const ALL: &'static [AuthRoute] = &[
        AuthRoute::Login,
        AuthRoute::Refresh,
        AuthRoute::Logout,
        AuthRoute::LogoutAll,
        AuthRoute::LogoutOthers,
        AuthRoute::ListSessions,
        AuthRoute::DeleteSession,
        AuthRoute::Me,
        AuthRoute::Jwks,
        AuthRoute::Health,
    ];

    /// The HTTP method.
    pub fn method(self) -> Method {
        match self.method_filter() {
            f if f == MethodFilter::GET => Method::GET,
            f if f == MethodFilter::DELETE => Method::DELETE,
            _ => Method::POST,
        }
    }

    fn method_filter(self) -> MethodFilter {
        match self {
            AuthRoute::Login
            | AuthRoute::Refresh
            | AuthRoute::Logout
            | AuthRoute::LogoutAll
            | AuthRoute::LogoutOthers => MethodFilter::POST,
            AuthRoute::DeleteSession => MethodFilter::DELETE,
            AuthRoute::ListSessions | AuthRoute::Me | AuthRoute::Jwks | AuthRoute::Health => {
                MethodFilter::GET
            }
        }
    }

    /// The path, in axum's (and OpenAPI's) template syntax:
    /// `/auth/sessions/{id}`.
    pub fn path(self) -> &'static str {
        match self {
            AuthRoute::Login => "/auth/login",
            AuthRoute::Refresh => "/auth/refresh",
            AuthRoute::Logout => "/auth/logout",
            AuthRoute::LogoutAll => "/auth/logout-all",
            AuthRoute::LogoutOthers => "/auth/logout-others",
            AuthRoute::ListSessions => "/auth/sessions",
            AuthRoute::DeleteSession => "/auth/sessions/{id}",
            AuthRoute::Me => "/auth/me",
            AuthRoute::Jwks => super::jwks::JWKS_PATH,
            AuthRoute::Health => "/health",
        }
    }
}

/// Token responses must not be cached (RFC 6749 section 5.1).
pub(crate) fn no_store<T: Serialize>(body: T) -> Response {
    let mut response = Json(body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// The login request: the OAuth2 password form, or the same fields as JSON.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub(crate) struct LoginRequest {
    /// `password` when given (the OAuth2 password grant).
    #[serde(default)]
    grant_type: Option<String>,
    /// The login name.
    username: String,
    /// The password.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Password))]
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
    // Every credentials failure is answered no sooner than the failure
    // floor after this instant (`Security::delay_failed_login`).
    let started = tokio::time::Instant::now();
    let (parts, body) = req.into_parts();
    refuse_secrets_in_query(&parts)?;
    if let Some(cookies) = state.cookies() {
        // Login CSRF: another site must not log the browser into its account.
        cookies.check_login_origin(&parts.headers)?;
    }
    let bytes = read_limited(&parts.headers, body).await?;
    let body: LoginRequest = parse(&parts.headers, &bytes, "username and password fields")?;
    drop(bytes);
    if body.grant_type.as_deref().is_some_and(|g| g != "password") {
        return Err(AuthRejection::InvalidRequest(
            "grant_type must be password".into(),
        ));
    }
    if body.username.is_empty() || body.username.len() > MAX_USERNAME_BYTES {
        state.security.count_refused_login();
        state.security.delay_failed_login(started).await;
        return Err(Error::InvalidCredentials.into());
    }
    let client = client_info(&parts);
    // Counted before any user lookup or hashing: a throttled attempt costs
    // nothing and says nothing about the account.
    let throttle_name = state.users.login_throttle_name(&body.username);
    let attempt = state
        .security
        .begin_login(&throttle_name, client_ip(&parts))
        .await?;
    let credentials = Credentials {
        username: body.username,
        password: body.password,
    };
    let user = match state.users.authenticate(&credentials).await {
        Ok(user) => user,
        // An authentication that reports wrong credentials as an error
        // rather than `None`: the same failure, counted and held alike.
        Err(Error::InvalidCredentials) => None,
        Err(err) => {
            attempt.abandoned().await;
            return Err(err.into());
        }
    };
    let Some(user) = user.filter(|u| state.users.is_active(u)) else {
        // The hashed key only: never the username of a failed login.
        tracing::info!(
            throttle_key = attempt.account_key().map(tracing::field::display),
            "login refused: invalid credentials"
        );
        // The count is final at once (concurrent attempts see it); the
        // answer waits for the floor, counted from the account's turn, and
        // the next attempt of the account starts its check only then.
        state.security.fail_login(attempt).await;
        return Err(Error::InvalidCredentials.into());
    };
    let user_id = state.users.get_user_id(&user);
    let pair = match state.security.create_session(&user_id, None, &client).await {
        Ok(pair) => pair,
        Err(err) => {
            attempt.abandoned().await;
            return Err(err.into());
        }
    };
    attempt.succeeded().await;
    tracing::info!(user_id = %user_id, "login succeeded");
    Ok(match state.cookies() {
        Some(cookies) => cookies.token_response(&pair),
        None => no_store(pair),
    })
}

async fn refresh<A>(
    State(state): State<AuthState<A>>,
    req: Request,
) -> Result<Response, AuthRejection>
where
    A: UserAuthentication,
{
    let (parts, body) = req.into_parts();
    let client = client_info(&parts);
    let explicit = explicit_refresh_token(&parts, body).await?;
    let cookies = match (explicit, state.cookies()) {
        // A client that holds its refresh token gets the new one back the same way.
        (Some(token), _) => return rotate(&state, &token, &client).await.map(no_store),
        (None, None) => {
            return Err(AuthRejection::InvalidRequest(
                "send the refresh token as refresh_token in the request body".into(),
            ));
        }
        (None, Some(cookies)) => cookies,
    };
    cookies.check_request_origin(&parts.headers)?;
    let Some(token) = cookies.token_from_cookies(&parts.headers)? else {
        return Err(AuthRejection::InvalidRequest(
            "send the refresh token in the refresh cookie or as refresh_token in the request body"
                .into(),
        ));
    };
    Ok(match rotate(&state, &token, &client).await {
        Ok(pair) => cookies.token_response(&pair),
        Err(rejection) => cookies.failure_response(rejection),
    })
}

/// Consumes a refresh token and issues the session's next pair.
async fn rotate<A>(
    state: &AuthState<A>,
    token: &str,
    client: &ClientInfo,
) -> Result<TokenPair, AuthRejection>
where
    A: UserAuthentication,
{
    // Signature and claims first, so a forged token costs no user lookup.
    // (The codec directly: this is part of the refresh, counted as one.)
    let claims = match state
        .security
        .codec()
        .verify(token, Some(TokenType::Refresh))
    {
        Ok(claims) => claims,
        Err(err) => {
            state.security.count_rejected_refresh();
            return Err(err.into());
        }
    };
    // A user disabled or deleted since login must not keep minting tokens.
    let user = state.users.get_user_by_id(&claims.sub).await;
    if !matches!(&user, Ok(Some(u)) if state.users.is_active(u)) {
        state.security.count_rejected_refresh();
        user?;
        return Err(Error::Authentication("the token's user is disabled or unknown".into()).into());
    }
    Ok(state.security.refresh_session(token, client).await?)
}

/// The client a request came from, for session lists: its `User-Agent`
/// and its address ([`client_ip`]), if known.
fn client_info(parts: &Parts) -> ClientInfo {
    ClientInfo {
        user_agent: user_agent(&parts.headers),
        ip: client_ip(parts).map(|ip| ip.to_string()),
    }
}

/// The client's address: a [`ClientIp`] the application set, else the peer
/// address the server recorded ([`ConnectInfo`]), if any.
fn client_ip(parts: &Parts) -> Option<IpAddr> {
    if let Some(ClientIp(ip)) = parts.extensions.get::<ClientIp>() {
        return Some(*ip);
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

fn user_agent(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::USER_AGENT)?.to_str().ok()?;
    // Printable ASCII only: it is shown back in session lists.
    let cleaned: String = value.chars().filter(|c| (' '..='~').contains(c)).collect();
    (!cleaned.trim().is_empty()).then(|| cleaned.trim().to_owned())
}

async fn logout<A>(
    State(state): State<AuthState<A>>,
    req: Request,
) -> Result<Response, AuthRejection> {
    let headers = req.headers();
    let bearer = bearer_token(headers)?;
    let Some(cookies) = state.cookies() else {
        let token = bearer.ok_or(AuthRejection::MissingToken)?;
        end_session(&state.security, token).await?;
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let ended = match bearer {
        Some(token) => end_session(&state.security, token).await,
        None => {
            cookies.check_request_origin(headers)?;
            match cookies.token_from_cookies(headers)? {
                Some(token) => end_session(&state.security, &token).await,
                // Already logged out: deleting the cookie again is harmless.
                None => Ok(()),
            }
        }
    };
    Ok(match ended {
        Ok(()) => {
            let mut response = StatusCode::NO_CONTENT.into_response();
            cookies.append_clear(response.headers_mut());
            response
        }
        Err(rejection) => cookies.failure_response(rejection),
    })
}

async fn end_session(security: &Security, token: &str) -> Result<(), AuthRejection> {
    let revoked = security.logout(token).await?;
    tracing::info!(revoked, "logout");
    Ok(())
}

/// How many of the user's other sessions a logout ended.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub(crate) struct Revoked {
    /// Sessions (logins, with their access and refresh tokens) ended;
    /// 0 when there were none.
    revoked: u64,
}

async fn logout_all(
    State(security): State<Security>,
    TokenData(claims): TokenData,
) -> Result<StatusCode, AuthRejection> {
    security.revoke_all_user_tokens(&claims.sub).await?;
    tracing::info!(user_id = %claims.sub, "logout from every session");
    Ok(StatusCode::NO_CONTENT)
}

async fn logout_others(
    State(security): State<Security>,
    TokenData(claims): TokenData,
) -> Result<Response, AuthRejection> {
    let Some(current) = claims.sid.as_deref() else {
        return Err(AuthRejection::InvalidRequest(
            "this access token belongs to no session; use /auth/logout-all".into(),
        ));
    };
    let revoked = security.revoke_other_sessions(&claims.sub, current).await?;
    tracing::info!(user_id = %claims.sub, revoked, "logout from the other sessions");
    Ok(Json(Revoked { revoked }).into_response())
}

#[derive(Deserialize)]
struct SessionsQuery {
    #[serde(default)]
    exclude_current: bool,
}

/// A session as its user sees it.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub(crate) struct SessionView {
    #[serde(flatten)]
    session: crate::tokens::service::Session,
    /// Whether this is the session of the token that asked.
    current: bool,
}

/// The user's live sessions, oldest first.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub(crate) struct SessionList {
    /// The sessions.
    sessions: Vec<SessionView>,
}

async fn list_sessions(
    State(security): State<Security>,
    TokenData(claims): TokenData,
    RawQuery(query): RawQuery,
) -> Result<Response, AuthRejection> {
    let query: SessionsQuery =
        serde_urlencoded::from_str(query.as_deref().unwrap_or("")).map_err(|_| {
            AuthRejection::InvalidRequest("exclude_current must be true or false".into())
        })?;
    let current = claims.sid.as_deref();
    let sessions = security
        .list_sessions(&claims.sub)
        .await?
        .into_iter()
        .map(|session| SessionView {
            current: Some(session.id.as_str()) == current,
            session,
        })
        .filter(|view| !(query.exclude_current && view.current))
        .collect();
    Ok(no_store(SessionList { sessions }))
}

async fn delete_session(
    State(security): State<Security>,
    TokenData(claims): TokenData,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<StatusCode, AuthRejection> {
    let Path(id) =
        id.map_err(|_| AuthRejection::InvalidRequest("the session id is not valid".into()))?;
    if security.revoke_session(&claims.sub, &id).await? {
        tracing::info!(user_id = %claims.sub, "session ended by its user");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AuthRejection::NotFound("no such session".into()))
    }
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
