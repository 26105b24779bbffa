//! What failed and throttled logins write to the log: the hashed
//! throttle key, never the username or the client address; and the
//! warning when a failure outlasts the failed-login floor.
//!
//! A test binary of its own: the log is captured with a thread-local
//! subscriber, and tracing caches, per call site, whether anyone listens;
//! tests running on other threads without a subscriber would race it.

// Test helpers may panic: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::StatusCode;
use common::*;
use fastcore_security::{ThrottleKey, auth_router};

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    /// Everything logged so far.
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// Every event of this thread, at every level and without colours, goes to
/// the returned buffer while the guard lives.
fn capture_logs() -> (Buffer, tracing::subscriber::DefaultGuard) {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (buffer, tracing::subscriber::set_default(subscriber))
}

#[tokio::test(flavor = "current_thread")]
async fn failed_logins_log_a_hash_never_the_username() {
    let (buffer, _guard) = capture_logs();

    let config = config_builder()
        .login_max_failures_per_account(2)
        .login_max_failures_per_address(3)
        .login_throttle_window(Duration::from_secs(900))
        .build()
        .unwrap();
    let directory = TestDirectory::default();
    let security = memory_security_with(config);
    let router = auth_router(auth_state(security.clone(), &directory));
    let ip = "192.0.2.10";
    let login = |name: &str| {
        let mut request = post_form(
            "/auth/login",
            &[("username", name), ("password", "wrong password")],
        );
        let addr = SocketAddr::new(ip.parse().unwrap(), 40_000);
        request.extensions_mut().insert(ConnectInfo(addr));
        request
    };

    let name = "Secret-Username-4711";
    for expected in [
        StatusCode::UNAUTHORIZED,
        StatusCode::UNAUTHORIZED,
        StatusCode::TOO_MANY_REQUESTS,
    ] {
        assert_eq!(send(&router, login(name)).await.status, expected);
    }
    // The address's third failure, then its refusal.
    let res = send(&router, login("other-name-qmvx")).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    let res = send(&router, login("third-name-zkrw")).await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);

    let log = buffer.text();
    // The keys in the log are keyed: without the secret, a guessed name
    // or address cannot be confirmed against them.
    let keys = security.throttle_keys();
    assert!(keys.is_keyed());
    assert!(log.contains(keys.account(name).as_str()), "{log}");
    // Written alike on every line (unquoted), so one search finds them all.
    assert!(!log.contains("throttle_key=\""), "{log}");
    let failures = format!(
        "login refused: invalid credentials throttle_key={}",
        keys.account(name)
    );
    assert!(log.contains(&failures), "{log}");
    assert!(
        log.contains(keys.address(ip.parse().unwrap()).as_str()),
        "{log}"
    );
    for unkeyed in [
        ThrottleKey::account(name),
        ThrottleKey::address(ip.parse().unwrap()),
    ] {
        assert!(
            !log.contains(unkeyed.as_str()),
            "{unkeyed} in the log:\n{log}"
        );
    }
    assert!(log.contains("login throttle engaged"), "{log}");
    assert!(log.contains("too many failed attempts"), "{log}");
    // Letters, not digits: a timestamp in the log may hold any digits.
    for secret in ["Secret-Username", "secret-username", "qmvx", "zkrw", ip] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}

/// A failure whose own work (here an argon2id verification) outlasts the
/// failed-login floor is logged as a warning that names the setting, at
/// most once for many such failures, and never with the username, the
/// password or the hash.
#[tokio::test(flavor = "current_thread")]
async fn a_floor_shorter_than_the_work_is_reported_once() {
    let (buffer, _guard) = capture_logs();

    // A bcrypt hash of cost 8 takes milliseconds; the floor is 1 ms.
    let hash = bcrypt::hash("right password", 8).unwrap();
    let directory = TestDirectory::default();
    directory.add("1", "Floor-User-9917", &hash);
    let config = config_builder()
        .login_max_failures_per_account(0)
        .login_max_failures_per_address(0)
        .login_failure_floor(Duration::from_millis(1))
        .build()
        .unwrap();
    let security = memory_security_with(config);
    let router = auth_router(auth_state(security.clone(), &directory));
    for _ in 0..3 {
        let request = post_form(
            "/auth/login",
            &[
                ("username", "Floor-User-9917"),
                ("password", "wrong-password-5521"),
            ],
        );
        assert_eq!(
            send(&router, request).await.status,
            StatusCode::UNAUTHORIZED
        );
    }

    let log = buffer.text();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("longer than the login failure floor"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(warnings[0].contains("WARN"), "{log}");
    assert!(warnings[0].contains("LOGIN_FAILURE_FLOOR_MS"), "{log}");
    assert!(warnings[0].contains("floor_ms=1"), "{log}");
    for secret in ["Floor-User", "floor-user", "5521", &hash[..20]] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}

/// The store's queries write no SQL to the log, at any level (sqlx logs
/// every statement at `debug` and slow ones at `warn` unless told not to).
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "current_thread")]
async fn store_queries_write_no_sql_to_the_log() {
    let Some(db) = common::databases::postgres().await else {
        return;
    };
    let (buffer, _guard) = capture_logs();
    let store = fastcore_security::connect_store(db.url()).await.unwrap();
    let security =
        fastcore_security::Security::new(config_builder().build().unwrap(), store).unwrap();
    let pair = security.create_token_pair("ada", None).await.unwrap();
    security
        .validate_token(&pair.access_token, None)
        .await
        .unwrap();
    security.revoke_token(&pair.access_token).await.unwrap();
    let log = buffer.text();
    for sql in ["fastcore_tokens", "SELECT", "INSERT", "UPDATE"] {
        assert!(!log.contains(sql), "the log holds SQL ({sql}):\n{log}");
    }
}
