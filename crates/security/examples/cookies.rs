//! A browser app with the refresh token in an `HttpOnly` cookie: a small
//! HTML page logs in, calls a protected route with the access token it
//! keeps in memory, refreshes through the cookie and logs out.
//!
//! ```sh
//! JWT_SECRET_KEY=an-example-secret-that-is-at-least-32-bytes \
//!   cargo run -p fastcore-security --example cookies
//! # then open http://localhost:3000/ and log in as ada / correct-horse
//! ```
//!
//! `BIND` changes the address (default `127.0.0.1:3000`). Open the page on
//! `http://localhost` (or `127.0.0.1`): browsers keep `Secure` cookies over
//! plain HTTP only there; anywhere else, serve it over HTTPS.
//!
//! What the cookie mode changes (see [`CookieConfig`]):
//! - `POST /auth/login` answers with the access token in the body and the
//!   refresh token in a `__Secure-fastcore_refresh` cookie (`HttpOnly`,
//!   `Secure`, `SameSite=Strict`, `Path=/auth`): page scripts never see it.
//! - `POST /auth/refresh` with no body uses (and rotates) the cookie;
//!   `POST /auth/logout` ends the cookie's session and deletes it.
//! - Both refuse requests from other origins (403 `csrf_check_failed`).
//!
//! The page keeps the access token in a variable, never in `localStorage`,
//! and is served with a Content-Security-Policy that allows only its own
//! script: the cookie protects the refresh token from XSS, not the page.
//! `tests/browser.rs` drives this app in headless Chromium.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use axum::{Json, Router, routing::get};
use fastcore_security::{
    AuthState, CookieConfig, CurrentUser, PasswordAuthenticator, Result, SecurityConfig,
    UserDirectory, auth_router, get_password_hash, setup_security,
};
use serde::Serialize;

/// The application's user type; `/api/me` shows it (never the hash).
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

/// A protected API route: the page calls it with `Authorization: Bearer`.
async fn api_me(current: CurrentUser<Auth>) -> Json<User> {
    Json(current.user)
}

/// Only this origin's scripts and no framing.
const CSP: &str = "default-src 'self'; frame-ancestors 'none'; form-action 'self'";

fn hardened(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

async fn page() -> Response {
    hardened(Html(PAGE).into_response())
}

async fn script() -> Response {
    hardened(
        (
            [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
            SCRIPT,
        )
            .into_response(),
    )
}

/// The app: the page, its script, a protected route, and the auth
/// router with the refresh cookie on. User `ada`, password `correct-horse`.
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
    // The page and the API share one origin, so no allowed origin is
    // needed: browsers say `Sec-Fetch-Site: same-origin`.
    let cookies = CookieConfig::builder().build()?;
    let state = AuthState::new(security, auth).with_cookies(cookies);
    Ok(Router::new()
        .route("/", get(page))
        .route("/app.js", get(script))
        .route("/api/me", get(api_me))
        .with_state(state.clone())
        .merge(auth_router(state)))
}

#[allow(dead_code)] // tests/browser.rs includes this file and calls `app` only.
#[tokio::main]
async fn main() -> Result<()> {
    let config = SecurityConfig::builder_from_env()?
        .database_url("sqlite::memory:")
        .build()?;
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&bind)
        .await
        .map_err(|e| fastcore_security::Error::Config(format!("cannot listen on {bind}: {e}")))?;
    let router = app(config).await?;
    println!("open http://localhost:{}/ (user ada / correct-horse)", {
        listener.local_addr().map(|a| a.port()).unwrap_or(3000)
    });
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
    .map_err(|e| fastcore_security::Error::Internal(e.to_string()))
}

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>fastcore-security: refresh cookie example</title>
<script src="/app.js" defer></script>
</head>
<body>
<h1>Refresh cookie example</h1>
<form id="login">
  <label>User <input name="username" autocomplete="username" value="ada"></label>
  <label>Password <input name="password" type="password" autocomplete="current-password"></label>
  <button type="submit">Log in</button>
</form>
<p>
  <button id="me" type="button">Who am I?</button>
  <button id="refresh" type="button">Refresh</button>
  <button id="logout" type="button">Log out</button>
</p>
<pre id="out" data-status=""></pre>
</body>
</html>
"#;

const SCRIPT: &str = r#"// The access token lives in this variable only: never in localStorage,
// which any injected script could read. The refresh token is in an
// HttpOnly cookie that no script can read.
let access = null;

async function call(method, path, body) {
  const headers = {};
  if (access && path.startsWith('/api/')) headers['Authorization'] = 'Bearer ' + access;
  const res = await fetch(path, { method, headers, body, credentials: 'same-origin' });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch (_) { /* 204 or not JSON */ }
  if (json && json.access_token) access = json.access_token;
  if (path === '/auth/logout' && res.ok) access = null;
  return { status: res.status, body: json };
}

const app = {
  login: (form) => call('POST', '/auth/login', new URLSearchParams(new FormData(form))),
  me: () => call('GET', '/api/me'),
  refresh: () => call('POST', '/auth/refresh'),
  logout: () => call('POST', '/auth/logout'),
  hasAccessToken: () => access !== null,
};
window.app = app;

function show(result) {
  const out = document.getElementById('out');
  out.dataset.status = String(result.status);
  // The token itself stays off the page.
  const body = result.body && result.body.access_token
    ? { ...result.body, access_token: '(kept in memory)' }
    : result.body;
  out.textContent = result.status + ' ' + JSON.stringify(body);
}

document.addEventListener('DOMContentLoaded', () => {
  document.getElementById('login').addEventListener('submit', async (e) => {
    e.preventDefault();
    show(await app.login(e.target));
  });
  document.getElementById('me').addEventListener('click', async () => show(await app.me()));
  document.getElementById('refresh').addEventListener('click', async () => show(await app.refresh()));
  document.getElementById('logout').addEventListener('click', async () => show(await app.logout()));
});
"#;
