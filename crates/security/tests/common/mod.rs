//! Helpers shared by the integration tests: configuration with a test secret,
//! `Security` handles on the memory and SQLite stores, a tiny in-memory user
//! directory, the Python fixture file, and HTTP request helpers.
//!
//! Every integration test file includes this module and uses a part of it.
#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

pub(crate) mod databases;
pub(crate) mod redis_server;
pub(crate) mod servers;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use fastcore_security::{
    AuthState, Claims, Error, InvalidTokenReason, MemoryTokenStore, PasswordAuthenticator,
    PasswordHasher, Security, SecurityConfig, SecurityConfigBuilder, TokenPair, TokenRecord,
    TokenStore, TokenType, UserDirectory, setup_security,
};
use http_body_util::BodyExt;
use serde::Serialize;
use serde_json::{Map, Value};
use tower::ServiceExt;

/// A 48-byte secret, long enough for HS256 and HS384.
pub(crate) const TEST_SECRET: &str = "integration-test-secret-0123456789-abcdefghijklm";
pub(crate) const AUDIENCE: &str = "fastcore-api";
pub(crate) const ISSUER: &str = "fastcore-auth";

/// The builder every test starts from: the test secret, an audience, an issuer.
pub(crate) fn config_builder() -> SecurityConfigBuilder {
    SecurityConfig::builder()
        .secret(TEST_SECRET)
        .audience(AUDIENCE)
        .issuer(ISSUER)
}

pub(crate) fn config() -> SecurityConfig {
    config_builder().build().expect("test config is valid")
}

/// A `Security` on a fresh in-memory store.
pub(crate) fn memory_security() -> Security {
    memory_security_with(config())
}

pub(crate) fn memory_security_with(config: SecurityConfig) -> Security {
    Security::new(config, Arc::new(MemoryTokenStore::new())).expect("security builds")
}

/// A `Security` on a SQLite file in a temporary directory, built through
/// `setup_security` (which runs the migrations). Keep the `TempDir` alive.
pub(crate) async fn sqlite_security() -> (Security, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = sqlite_url(&dir);
    let security = setup_security(config_builder().database_url(url).build().expect("config"))
        .await
        .expect("setup_security on a SQLite file");
    (security, dir)
}

pub(crate) fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("tokens.db").display())
}

pub(crate) fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs(),
    )
    .expect("fits i64")
}

/// Claims in the library's layout for `sub`, with the security's audience
/// and issuer, valid from an hour ago for `exp_offset` seconds from now.
pub(crate) fn claims_for(
    security: &Security,
    sub: &str,
    token_type: TokenType,
    exp_offset: i64,
) -> Claims {
    let now = now();
    Claims {
        sub: sub.to_owned(),
        jti: uuid::Uuid::new_v4().to_string(),
        token_type,
        exp: now + exp_offset,
        iat: now - 3600,
        nbf: None,
        aud: security
            .config()
            .audience()
            .map(|a| fastcore_security::Audience::One(a.to_owned())),
        iss: security.config().issuer().map(str::to_owned),
        sid: None,
        extra: Map::new(),
    }
}

/// Signs `claims` and records them in the store, as `issue` would have.
pub(crate) async fn encode_and_record(security: &Security, claims: &Claims) -> String {
    let token = security.encode_jwt(claims).expect("encode");
    security
        .store()
        .insert(&record_of(claims))
        .await
        .expect("insert record");
    token
}

pub(crate) fn record_of(claims: &Claims) -> TokenRecord {
    TokenRecord {
        jti: claims.jti.clone(),
        token_type: claims.token_type,
        user_id: claims.sub.clone(),
        family_id: claims.sid.clone(),
        issued_at: claims.iat,
        expires_at: claims.exp,
        revoked_at: None,
        consumed_at: None,
        replaced_by: None,
        session: None,
    }
}

/// A token of `token_type` whose `exp` is an hour in the past (far beyond
/// the leeway), with its record on file: only expiry can refuse it.
pub(crate) async fn expired_token(
    security: &Security,
    sub: &str,
    token_type: TokenType,
    sid: Option<&str>,
) -> String {
    let mut claims = claims_for(security, sub, token_type, -3600);
    claims.sid = sid.map(str::to_owned);
    encode_and_record(security, &claims).await
}

/// Asserts that `result` is an `InvalidToken` refusal for `reason`.
#[track_caller]
pub(crate) fn assert_invalid<T: std::fmt::Debug>(
    result: fastcore_security::Result<T>,
    reason: InvalidTokenReason,
) {
    match result {
        Err(Error::InvalidToken(r)) => assert_eq!(r, reason),
        other => panic!("expected InvalidToken({reason:?}), got {other:?}"),
    }
}

/// Asserts that the stateful validation of `token` (any type) refuses it
/// for `reason`.
pub(crate) async fn assert_refused(security: &Security, token: &str, reason: InvalidTokenReason) {
    assert_invalid(security.validate_token(token, None).await, reason);
}

/// The jtis of the live tokens `list_live` lists for `user` at `now`.
pub(crate) async fn live_jtis(
    store: &(impl TokenStore + ?Sized),
    user: &str,
    now: i64,
) -> Vec<String> {
    store
        .list_live(user, now)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.jti)
        .collect()
}

/// The claims of both tokens of `pair`, each validated as its type.
pub(crate) async fn validate_pair(security: &Security, pair: &TokenPair) -> (Claims, Claims) {
    let access = security
        .validate_token(&pair.access_token, Some(TokenType::Access))
        .await
        .unwrap();
    let refresh = security
        .validate_token(&pair.refresh_token, Some(TokenType::Refresh))
        .await
        .unwrap();
    (access, refresh)
}

/// Asserts that `body` (a token response) has exactly the fields of
/// FastAPI's token response.
#[track_caller]
pub(crate) fn assert_token_response_fields(body: &Value) {
    let mut keys: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "access_token",
            "expires_in",
            "refresh_expires_in",
            "refresh_token",
            "token_type"
        ]
    );
}

/// Replaces one character in the middle of the signature segment.
pub(crate) fn tamper_signature(token: &str) -> String {
    let sig_start = token.rfind('.').expect("three segments") + 1;
    let i = sig_start + (token.len() - sig_start) / 2;
    let mut bytes = token.as_bytes().to_vec();
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).expect("ascii")
}

/// The decoded JSON of a token's payload segment, read without any check.
pub(crate) fn payload_json(token: &str) -> Value {
    segment_json(token, 1)
}

pub(crate) fn header_json(token: &str) -> Value {
    segment_json(token, 0)
}

fn segment_json(token: &str, index: usize) -> Value {
    use base64::Engine;
    let segment = token.split('.').nth(index).expect("segment");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("json")
}

pub(crate) fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn extra(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

// ------------------------------------------------------------------ fixtures

/// `tests/fixtures/python_vectors.json`, made by PyJWT, passlib and argon2-cffi.
pub(crate) fn python_vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/python_vectors.json"
    );
    let text = std::fs::read_to_string(path).expect("fixture file");
    serde_json::from_str(&text).expect("fixture json")
}

pub(crate) fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("fixture field {key} is a string"))
}

/// The password of the HTTP tests' users: it is in the fixture's argon2id
/// vectors, so their users need not be hashed at test time.
pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// The argon2id hash of [`PASSWORD`] from the argon2-cffi fixture.
pub(crate) fn password_hash() -> String {
    let v = python_vectors();
    let vector = v["passlib_argon2"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["password"] == PASSWORD)
        .unwrap()
        .clone();
    str_of(&vector, "hash").to_owned()
}

// --------------------------------------------------------------------- users

/// A user of the in-memory directory. The hash is not serialized.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct TestUser {
    pub(crate) id: String,
    pub(crate) username: String,
    #[serde(skip)]
    pub(crate) password_hash: String,
    pub(crate) active: bool,
}

/// A tiny [`UserDirectory`]: users by name, hash upgrades recorded. Clones
/// share the same users.
#[derive(Debug, Default, Clone)]
pub(crate) struct TestDirectory {
    users: Arc<Mutex<HashMap<String, TestUser>>>,
    upgrades: Arc<Mutex<Vec<(String, String)>>>,
}

impl TestDirectory {
    pub(crate) fn add(&self, id: &str, username: &str, password_hash: &str) {
        self.users.lock().expect("lock").insert(
            username.to_owned(),
            TestUser {
                id: id.to_owned(),
                username: username.to_owned(),
                password_hash: password_hash.to_owned(),
                active: true,
            },
        );
    }

    pub(crate) fn set_active(&self, username: &str, active: bool) {
        if let Some(u) = self.users.lock().expect("lock").get_mut(username) {
            u.active = active;
        }
    }

    pub(crate) fn remove(&self, username: &str) {
        self.users.lock().expect("lock").remove(username);
    }

    pub(crate) fn hash_of(&self, username: &str) -> Option<String> {
        self.users
            .lock()
            .expect("lock")
            .get(username)
            .map(|u| u.password_hash.clone())
    }

    /// `(user id, new hash)` of every `update_password_hash` call.
    pub(crate) fn upgrades(&self) -> Vec<(String, String)> {
        self.upgrades.lock().expect("lock").clone()
    }
}

#[async_trait]
impl UserDirectory for TestDirectory {
    type User = TestUser;

    async fn find_by_username(
        &self,
        username: &str,
    ) -> fastcore_security::Result<Option<TestUser>> {
        Ok(self.users.lock().expect("lock").get(username).cloned())
    }

    async fn find_by_id(&self, user_id: &str) -> fastcore_security::Result<Option<TestUser>> {
        Ok(self
            .users
            .lock()
            .expect("lock")
            .values()
            .find(|u| u.id == user_id)
            .cloned())
    }

    fn user_id(&self, user: &TestUser) -> String {
        user.id.clone()
    }

    fn password_hash(&self, user: &TestUser) -> String {
        user.password_hash.clone()
    }

    fn is_active(&self, user: &TestUser) -> bool {
        user.active
    }

    async fn update_password_hash(
        &self,
        user: &TestUser,
        new_hash: &str,
    ) -> fastcore_security::Result<()> {
        self.upgrades
            .lock()
            .expect("lock")
            .push((user.id.clone(), new_hash.to_owned()));
        if let Some(u) = self.users.lock().expect("lock").get_mut(&user.username) {
            u.password_hash = new_hash.to_owned();
        }
        Ok(())
    }
}

pub(crate) type TestAuth = PasswordAuthenticator<TestDirectory>;

/// A [`PasswordAuthenticator`] over a handle to `directory` (the test keeps
/// another handle to look at upgrades).
pub(crate) fn authenticator(directory: &TestDirectory) -> TestAuth {
    PasswordAuthenticator::new(directory.clone(), PasswordHasher::default())
}

// ---------------------------------------------------------------------- HTTP

/// A response, fully read.
#[derive(Debug)]
pub(crate) struct TestResponse {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl TestResponse {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub(crate) fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ascii header"))
    }
}

pub(crate) async fn send(app: &Router, request: Request<Body>) -> TestResponse {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes().to_vec();
    TestResponse {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

pub(crate) fn get(uri: &str, bearer: Option<&str>) -> Request<Body> {
    let mut b = Request::get(uri);
    if let Some(token) = bearer {
        b = b.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    b.body(Body::empty()).expect("request")
}

pub(crate) fn post_json(uri: &str, body: &Value, bearer: Option<&str>) -> Request<Body> {
    let mut b = Request::post(uri).header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = bearer {
        b = b.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    b.body(Body::from(serde_json::to_vec(body).expect("json")))
        .expect("request")
}

pub(crate) fn post_form(uri: &str, pairs: &[(&str, &str)]) -> Request<Body> {
    let body = serde_urlencoded::to_string(pairs).expect("form");
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .expect("request")
}

pub(crate) fn post_bearer(uri: &str, bearer: &str) -> Request<Body> {
    Request::post(uri)
        .header(header::AUTHORIZATION, format!("Bearer {bearer}"))
        .body(Body::empty())
        .expect("request")
}

/// The state for the HTTP tests' routers.
pub(crate) fn auth_state(security: Security, directory: &TestDirectory) -> AuthState<TestAuth> {
    AuthState::new(security, Arc::new(authenticator(directory)))
}

/// Asserts the RFC 6750 challenge and the RFC 9457 body of a token refusal.
pub(crate) fn assert_token_refusal(res: &TestResponse, code: &str, description: &str) {
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.text());
    assert_eq!(
        res.header(header::WWW_AUTHENTICATE),
        Some(
            format!("Bearer error=\"invalid_token\", error_description=\"{description}\"").as_str()
        )
    );
    assert_eq!(
        res.header(header::CONTENT_TYPE),
        Some("application/problem+json")
    );
    assert_eq!(res.header(header::CACHE_CONTROL), Some("no-store"));
    let body = res.json();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], 401, "{body}");
    assert_eq!(body["detail"], description, "{body}");
    assert_eq!(body["title"], "Unauthorized", "{body}");
}
