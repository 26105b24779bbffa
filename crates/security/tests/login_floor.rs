//! The failed-login floor over HTTP, through `auth_router`: every login
//! that fails for its credentials (unknown user, wrong password, disabled
//! user, unusable username or password) is answered no sooner than the
//! floor; successful logins, malformed requests and store outages are not
//! held.
//!
//! Durations are compared statistically (means over several logins, run
//! concurrently so the test stays short), except the floor itself: a sleep
//! never ends early, so every failure taking at least the floor is exact.

// Test helpers and doubles may panic: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::Router;
use axum::http::StatusCode;
use common::*;
use fastcore_security::{
    AuthState, Credentials, LoginThrottle, StoreError, ThrottleKey, ThrottleWindow,
    UserAuthentication, auth_router,
};
use serde_json::json;

/// Users `ada` (active) and `off` (disabled), both with [`PASSWORD`]; the
/// throttle's limits off (this is about time, not counts).
fn router(floor: Duration) -> Router {
    let directory = TestDirectory::default();
    directory.add("1", "ada", &password_hash());
    directory.add("2", "off", &password_hash());
    directory.set_active("off", false);
    let config = config_builder()
        .login_max_failures_per_account(0)
        .login_max_failures_per_address(0)
        .login_failure_floor(floor)
        .build()
        .unwrap();
    auth_router(auth_state(memory_security_with(config), &directory))
}

fn form(username: &str, password: &str) -> axum::http::Request<axum::body::Body> {
    post_form(
        "/auth/login",
        &[("username", username), ("password", password)],
    )
}

/// Sends every request at once; returns each answer with its duration.
async fn concurrently(
    router: &Router,
    requests: Vec<axum::http::Request<axum::body::Body>>,
) -> Vec<(TestResponse, Duration)> {
    let mut tasks = Vec::new();
    for request in requests {
        let router = router.clone();
        tasks.push(tokio::spawn(async move {
            let start = Instant::now();
            let response = send(&router, request).await;
            (response, start.elapsed())
        }));
    }
    let mut done = Vec::new();
    for task in tasks {
        done.push(task.await.unwrap());
    }
    done
}

fn mean(samples: &[Duration]) -> f64 {
    samples.iter().map(Duration::as_secs_f64).sum::<f64>() / samples.len() as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_credentials_failure_is_held_to_the_floor_and_nothing_else_is() {
    let floor = Duration::from_millis(1000);
    let router = router(floor);
    let long_name = "n".repeat(321);
    let long_password = "p".repeat(2048);

    let failures = concurrently(
        &router,
        vec![
            form("nobody", "whatever it is"),
            form("ada", "not the password"),
            form("off", PASSWORD),
            form("", PASSWORD),
            form(&long_name, PASSWORD),
            form("ada", &long_password),
            post_json(
                "/auth/login",
                &json!({"username": "ada", "password": "wrong again"}),
                None,
            ),
        ],
    )
    .await;
    let mut failure_times = Vec::new();
    for (i, (res, took)) in failures.iter().enumerate() {
        assert_eq!(
            res.status,
            StatusCode::UNAUTHORIZED,
            "case {i}: {}",
            res.text()
        );
        assert_eq!(res.json()["code"], "invalid_credentials", "case {i}");
        assert!(
            *took >= floor,
            "case {i} answered after {took:?}, before the floor"
        );
        failure_times.push(*took);
    }

    // Not held: successes, and a malformed request (no credentials check).
    let others = concurrently(
        &router,
        (0..4)
            .map(|_| form("ada", PASSWORD))
            .chain((0..4).map(|_| {
                post_form(
                    "/auth/login",
                    &[
                        ("grant_type", "client_credentials"),
                        ("username", "ada"),
                        ("password", "x"),
                    ],
                )
            }))
            .collect(),
    )
    .await;
    let (successes, malformed): (Vec<_>, Vec<_>) = others
        .into_iter()
        .partition(|(res, _)| res.status == StatusCode::OK);
    assert_eq!(successes.len(), 4);
    assert!(
        malformed
            .iter()
            .all(|(res, _)| res.status == StatusCode::BAD_REQUEST)
    );
    let success_times: Vec<Duration> = successes.iter().map(|(_, t)| *t).collect();
    let malformed_times: Vec<Duration> = malformed.iter().map(|(_, t)| *t).collect();
    let (f, s, m) = (
        mean(&failure_times),
        mean(&success_times),
        mean(&malformed_times),
    );
    eprintln!(
        "mean failure {:.0} ms, success {:.0} ms, malformed {:.0} ms",
        f * 1e3,
        s * 1e3,
        m * 1e3
    );
    assert!(s < f / 2.0, "successful logins were held: {s} s vs {f} s");
    assert!(m < f / 2.0, "malformed requests were held: {m} s vs {f} s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_floor_holds_nothing() {
    let bare = router(Duration::ZERO);
    let held = router(Duration::from_millis(600));
    let bare_times: Vec<Duration> = concurrently(
        &bare,
        (0..4).map(|_| form("ada", "not the password")).collect(),
    )
    .await
    .into_iter()
    .map(|(res, t)| {
        assert_eq!(res.status, StatusCode::UNAUTHORIZED);
        t
    })
    .collect();
    let held_times: Vec<Duration> = concurrently(
        &held,
        (0..4).map(|_| form("ada", "not the password")).collect(),
    )
    .await
    .into_iter()
    .map(|(_, t)| t)
    .collect();
    assert!(held_times.iter().all(|t| *t >= Duration::from_millis(600)));
    assert!(
        mean(&bare_times) < mean(&held_times) / 2.0,
        "{bare_times:?} vs {held_times:?}"
    );
}

/// A [`UserAuthentication`] that reports every wrong login as
/// `Err(Error::InvalidCredentials)` rather than `Ok(None)`: answered,
/// counted and held like any wrong password.
struct ErrOnWrong;

#[async_trait]
impl UserAuthentication for ErrOnWrong {
    type User = TestUser;

    async fn authenticate(
        &self,
        _credentials: &Credentials,
    ) -> fastcore_security::Result<Option<TestUser>> {
        Err(fastcore_security::Error::InvalidCredentials)
    }

    async fn get_user_by_id(&self, _id: &str) -> fastcore_security::Result<Option<TestUser>> {
        Ok(None)
    }

    fn get_user_id(&self, user: &TestUser) -> String {
        user.id.clone()
    }
}

#[tokio::test]
async fn wrong_credentials_reported_as_an_error_count_and_are_held() {
    let floor = Duration::from_millis(100);
    let config = config_builder()
        .login_max_failures_per_account(2)
        .login_max_failures_per_address(0)
        .login_failure_floor(floor)
        .build()
        .unwrap();
    let router = auth_router(AuthState::new(
        memory_security_with(config),
        Arc::new(ErrOnWrong),
    ));
    for _ in 0..2 {
        let start = Instant::now();
        let res = send(&router, form("ada", "guess")).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.text());
        assert_eq!(res.json()["code"], "invalid_credentials");
        assert!(start.elapsed() >= floor);
    }
    // Both failures counted: the account's limit is used up.
    let res = send(&router, form("ada", "guess")).await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS, "{}", res.text());
}

/// A throttle whose store is down: every call fails.
struct DownThrottle;

#[async_trait]
impl LoginThrottle for DownThrottle {
    fn backend(&self) -> &'static str {
        "down"
    }
    async fn hit(
        &self,
        _key: &ThrottleKey,
        _window_secs: i64,
        _now: i64,
    ) -> Result<ThrottleWindow, StoreError> {
        Err(StoreError::new(
            "throttle_hit",
            std::io::Error::other("down"),
        ))
    }
    async fn undo(&self, _key: &ThrottleKey, _window: &ThrottleWindow) -> Result<(), StoreError> {
        Err(StoreError::new(
            "throttle_undo",
            std::io::Error::other("down"),
        ))
    }
    async fn reset(&self, _key: &ThrottleKey) -> Result<(), StoreError> {
        Err(StoreError::new(
            "throttle_reset",
            std::io::Error::other("down"),
        ))
    }
    async fn purge_expired(&self, _now: i64, _batch: u32) -> Result<u64, StoreError> {
        Err(StoreError::new(
            "throttle_purge",
            std::io::Error::other("down"),
        ))
    }
}

/// A store outage says nothing about the account: 503 at once, not held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_is_not_held() {
    let floor = Duration::from_millis(1000);
    let directory = TestDirectory::default();
    directory.add("1", "ada", &password_hash());
    let config = config_builder().login_failure_floor(floor).build().unwrap();
    let security = memory_security_with(config).with_login_throttle(Arc::new(DownThrottle));
    let router = auth_router(auth_state(security, &directory));
    let answers = concurrently(
        &router,
        (0..4).map(|_| form("ada", "not the password")).collect(),
    )
    .await;
    let times: Vec<Duration> = answers
        .iter()
        .map(|(res, t)| {
            assert_eq!(
                res.status,
                StatusCode::SERVICE_UNAVAILABLE,
                "{}",
                res.text()
            );
            *t
        })
        .collect();
    assert!(
        mean(&times) < floor.as_secs_f64() / 2.0,
        "store outages were held: {times:?}"
    );
}

/// A [`UserAuthentication`] whose every password check takes a while (a
/// slow stored hash) and fails, and which records how many checks run at
/// once, per username and in all.
#[derive(Default, Clone)]
struct SlowChecks(Arc<CheckStats>);

#[derive(Default)]
struct CheckStats {
    /// Checks running now, per username and in all.
    running: std::sync::Mutex<(std::collections::HashMap<String, usize>, usize)>,
    most_per_user: std::sync::Mutex<usize>,
    most_in_all: std::sync::Mutex<usize>,
}

#[async_trait]
impl UserAuthentication for SlowChecks {
    type User = TestUser;

    async fn authenticate(
        &self,
        credentials: &Credentials,
    ) -> fastcore_security::Result<Option<TestUser>> {
        let stats = &self.0;
        {
            let mut running = stats.running.lock().unwrap();
            let mine = running.0.entry(credentials.username.clone()).or_default();
            *mine += 1;
            let mine = *mine;
            running.1 += 1;
            let all = running.1;
            let mut most = stats.most_per_user.lock().unwrap();
            *most = (*most).max(mine);
            let mut most = stats.most_in_all.lock().unwrap();
            *most = (*most).max(all);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut running = stats.running.lock().unwrap();
        *running.0.get_mut(&credentials.username).unwrap() -= 1;
        running.1 -= 1;
        Ok(None)
    }

    async fn get_user_by_id(&self, _id: &str) -> fastcore_security::Result<Option<TestUser>> {
        Ok(None)
    }

    fn get_user_id(&self, user: &TestUser) -> String {
        user.id.clone()
    }
}

/// A burst of wrong passwords for one account is checked one at a time,
/// each failure keeping the account's turn until its answer is due: so the
/// burst takes one floor per attempt whatever a check costs (a slow legacy
/// hash cannot show through a queue of checks), while other accounts are
/// checked meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_for_one_account_takes_turns_each_held_to_the_floor() {
    const BURST: u32 = 5;
    let floor = Duration::from_millis(300);
    let checks = SlowChecks::default();
    let config = config_builder()
        .login_max_failures_per_account(BURST)
        .login_max_failures_per_address(0)
        .login_failure_floor(floor)
        .build()
        .unwrap();
    let router = auth_router(AuthState::new(
        memory_security_with(config),
        Arc::new(checks.clone()),
    ));
    let started = Instant::now();
    let answers = concurrently(
        &router,
        (0..BURST)
            .flat_map(|i| [form("ada", &format!("guess {i}")), form("grace", "guess")])
            .collect(),
    )
    .await;
    for (res, _) in &answers {
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.text());
    }
    assert_eq!(
        *checks.0.most_per_user.lock().unwrap(),
        1,
        "checks of one account ran at once"
    );
    assert!(
        *checks.0.most_in_all.lock().unwrap() >= 2,
        "the accounts waited for each other"
    );
    // Each turn lasts at least the floor (a sleep never ends early).
    assert!(
        started.elapsed() >= floor * BURST,
        "the burst took {:?}, less than {BURST} floors",
        started.elapsed()
    );
}
