//! Login throttling over HTTP, through `auth_router`: failed logins are
//! limited per account and per client address, refused with 429 and
//! `Retry-After` before any password is checked, the same for every
//! username; a success clears its account's count; instances sharing a
//! store share the counts; a throttle whose store fails refuses logins
//! (503) rather than let them through uncounted.
//!
//! The client address comes from `ConnectInfo`, as a server built with
//! `into_make_service_with_connect_info` records it, or from `ClientIp`.
//! Shared-store tests use the local PostgreSQL, MariaDB and Redis servers
//! (a schema, database or key prefix per test); without a server they
//! are skipped, except under `CI`.

// Test helpers and doubles may panic: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use common::*;
use fastcore_security::{
    AuthState, ClientIp, Credentials, Security, SecurityConfig, SqliteTokenStore, ThrottleKey,
    TokenStore, UserAuthentication, auth_router,
};
use serde_json::Value;

/// The test users, counting how often a password is checked: a throttled
/// login must not get that far.
struct CountingAuth {
    inner: TestAuth,
    checks: AtomicUsize,
}

#[async_trait]
impl UserAuthentication for CountingAuth {
    type User = TestUser;

    async fn authenticate(
        &self,
        credentials: &Credentials,
    ) -> fastcore_security::Result<Option<TestUser>> {
        self.checks.fetch_add(1, Ordering::SeqCst);
        self.inner.authenticate(credentials).await
    }

    async fn get_user_by_id(&self, id: &str) -> fastcore_security::Result<Option<TestUser>> {
        self.inner.get_user_by_id(id).await
    }

    fn get_user_id(&self, user: &TestUser) -> String {
        self.inner.get_user_id(user)
    }

    fn is_active(&self, user: &TestUser) -> bool {
        self.inner.is_active(user)
    }
}

struct App {
    router: Router,
    auth: Arc<CountingAuth>,
}

impl App {
    fn checks(&self) -> usize {
        self.auth.checks.load(Ordering::SeqCst)
    }
}

/// The auth router over `security`, with users ada and bob ([`PASSWORD`]).
fn app_on(security: Security) -> App {
    let directory = TestDirectory::default();
    directory.add("1", "ada", &password_hash());
    directory.add("2", "bob", &password_hash());
    let auth = Arc::new(CountingAuth {
        inner: authenticator(&directory),
        checks: AtomicUsize::new(0),
    });
    App {
        router: auth_router(AuthState::new(security, Arc::clone(&auth))),
        auth,
    }
}

/// A memory-store app with these limits and window.
fn app(per_account: u32, per_address: u32, window: Duration) -> App {
    app_on(memory_security_with(limits(
        per_account,
        per_address,
        window,
    )))
}

/// These limits and window; the failure floor off (these tests are about
/// counts, and make many failed logins; `login_floor.rs` tests the floor).
fn limits(per_account: u32, per_address: u32, window: Duration) -> SecurityConfig {
    config_builder()
        .login_max_failures_per_account(per_account)
        .login_max_failures_per_address(per_address)
        .login_throttle_window(window)
        .login_failure_floor(Duration::ZERO)
        .build()
        .unwrap()
}

const WINDOW: Duration = Duration::from_secs(900);

/// A login form from the client at `ip`.
fn login_from(ip: &str, username: &str, password: &str) -> Request<Body> {
    let mut request = post_form(
        "/auth/login",
        &[("username", username), ("password", password)],
    );
    let ip: IpAddr = ip.parse().unwrap();
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::new(ip, 40_000)));
    request
}

async fn login(app: &App, ip: &str, username: &str, password: &str) -> TestResponse {
    send(&app.router, login_from(ip, username, password)).await
}

fn assert_status(res: &TestResponse, status: StatusCode) {
    assert_eq!(res.status, status, "{}", res.text());
}

/// A 429 problem, `too_many_attempts`, with `Retry-After` in whole
/// seconds within `max`; returns it.
fn assert_throttled(res: &TestResponse, max: Duration) -> Duration {
    assert_status(res, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        res.header(header::CONTENT_TYPE),
        Some("application/problem+json")
    );
    assert_eq!(res.header(header::CACHE_CONTROL), Some("no-store"));
    assert_eq!(res.header(header::WWW_AUTHENTICATE), None);
    let body = res.json();
    assert_eq!(body["code"], "too_many_attempts", "{body}");
    assert_eq!(body["status"], 429, "{body}");
    let retry_after: u64 = res
        .header(header::RETRY_AFTER)
        .expect("Retry-After")
        .parse()
        .expect("whole seconds");
    assert!(
        (1..=max.as_secs()).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    Duration::from_secs(retry_after)
}

const WRONG: &str = "wrong password";
const IP: &str = "192.0.2.10";

// ------------------------------------------------------------- per account

#[tokio::test]
async fn the_account_limit_refuses_even_the_right_password_until_the_window_passes() {
    let window = Duration::from_secs(4);
    let app = app(3, 0, window);
    for _ in 0..3 {
        assert_status(
            &login(&app, IP, "ada", WRONG).await,
            StatusCode::UNAUTHORIZED,
        );
    }
    assert_eq!(app.checks(), 3);
    // The limit is used up: the right password is refused too, unchecked.
    let retry_after = assert_throttled(&login(&app, IP, "ada", PASSWORD).await, window);
    // From any address.
    assert_throttled(&login(&app, "198.51.100.7", "ada", PASSWORD).await, window);
    assert_throttled(&login(&app, "2001:db8::1", "ADA", WRONG).await, window);
    assert_eq!(app.checks(), 3, "a throttled login checked a password");
    // Other accounts are not affected.
    assert_status(&login(&app, IP, "bob", PASSWORD).await, StatusCode::OK);

    // Once the window is over, the right password works again.
    tokio::time::sleep(retry_after + Duration::from_secs(1)).await;
    assert_status(&login(&app, IP, "ada", PASSWORD).await, StatusCode::OK);
}

#[tokio::test]
async fn a_success_before_the_limit_clears_the_account_count() {
    let app = app(3, 0, WINDOW);
    for _ in 0..2 {
        assert_status(
            &login(&app, IP, "ada", WRONG).await,
            StatusCode::UNAUTHORIZED,
        );
    }
    assert_status(&login(&app, IP, "ada", PASSWORD).await, StatusCode::OK);
    // A full allowance again.
    for _ in 0..3 {
        assert_status(
            &login(&app, IP, "ada", WRONG).await,
            StatusCode::UNAUTHORIZED,
        );
    }
    assert_throttled(&login(&app, IP, "ada", PASSWORD).await, WINDOW);
}

#[tokio::test]
async fn successful_logins_are_never_throttled() {
    let app = app(2, 2, WINDOW);
    // Far more successes than either limit, from one address.
    for _ in 0..6 {
        assert_status(&login(&app, IP, "ada", PASSWORD).await, StatusCode::OK);
    }
    // They did not count against the address either.
    assert_status(
        &login(&app, IP, "bob", WRONG).await,
        StatusCode::UNAUTHORIZED,
    );
    assert_status(&login(&app, IP, "bob", PASSWORD).await, StatusCode::OK);
}

#[tokio::test]
async fn unknown_and_known_usernames_are_throttled_alike() {
    let app = app(2, 0, WINDOW);
    let mut answers = Vec::new();
    for name in ["ada", "nobody"] {
        let mut statuses = Vec::new();
        let mut bodies = Vec::new();
        for _ in 0..3 {
            let res = login(&app, IP, name, WRONG).await;
            statuses.push(res.status);
            bodies.push(res.json());
            if res.status == StatusCode::TOO_MANY_REQUESTS {
                assert_throttled(&res, WINDOW);
            }
        }
        answers.push((statuses, bodies));
    }
    assert_eq!(
        answers[0].0,
        [
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    // Same statuses, same bodies: nothing tells the accounts apart.
    assert_eq!(answers[0], answers[1]);
    // Two checks each; the refusals checked nothing.
    assert_eq!(app.checks(), 4);
}

/// Attempts are counted before their passwords are checked, atomically:
/// concurrent wrong logins cannot slip past the limit together.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_wrong_logins_cannot_slip_past_the_limit() {
    let app = Arc::new(app(3, 0, WINDOW));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let app = Arc::clone(&app);
        tasks.spawn(async move { login(&app, IP, "ada", WRONG).await.status });
    }
    let mut unauthorized = 0;
    let mut throttled = 0;
    while let Some(status) = tasks.join_next().await {
        match status.unwrap() {
            StatusCode::UNAUTHORIZED => unauthorized += 1,
            StatusCode::TOO_MANY_REQUESTS => throttled += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((unauthorized, throttled), (3, 9));
    assert_eq!(app.checks(), 3);
    // The refusals (final once the three failures were in) end as before:
    // ada stays throttled within the window, even with the right
    // password, and bob is untouched.
    assert_throttled(&login(&app, IP, "ada", PASSWORD).await, WINDOW);
    assert_status(&login(&app, IP, "bob", PASSWORD).await, StatusCode::OK);
}

/// A user directory whose password checks take a while, like a slow hash
/// on a busy machine: attempts stay in flight long enough to overlap.
struct SlowAuth {
    inner: TestAuth,
    delay: Duration,
}

#[async_trait]
impl UserAuthentication for SlowAuth {
    type User = TestUser;

    async fn authenticate(
        &self,
        credentials: &Credentials,
    ) -> fastcore_security::Result<Option<TestUser>> {
        tokio::time::sleep(self.delay).await;
        self.inner.authenticate(credentials).await
    }

    async fn get_user_by_id(&self, id: &str) -> fastcore_security::Result<Option<TestUser>> {
        self.inner.get_user_by_id(id).await
    }

    fn get_user_id(&self, user: &TestUser) -> String {
        self.inner.get_user_id(user)
    }
}

/// `n` logins to ada with `password`, all at once, from `ip`; their statuses.
async fn at_once(router: &Router, n: usize, ip: &str, password: &'static str) -> Vec<StatusCode> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let router = router.clone();
        let request = login_from(ip, "ada", password);
        tasks.spawn(async move { send(&router, request).await.status });
    }
    let mut statuses = Vec::new();
    while let Some(status) = tasks.join_next().await {
        statuses.push(status.unwrap());
    }
    statuses
}

/// Attempts are counted before their passwords are checked, so correct
/// logins in flight fill the account's window like failures would; one
/// refused meanwhile waits for them to be decided (a success clears the
/// count) and tries again. Successful logins are never refused, however
/// many arrive at once. With the default limits, and real hashing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_correct_logins_beyond_the_account_limit_all_succeed() {
    let config = config_builder()
        .login_failure_floor(Duration::ZERO)
        .build()
        .unwrap();
    assert_eq!(config.login_max_failures_per_account(), 5);
    let app = app_on(memory_security_with(config));
    let statuses = at_once(&app.router, 16, IP, PASSWORD).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
}

/// The same with checks slow enough that every attempt overlaps: limit 2,
/// sixteen at once, each check 60 ms; on the memory store and on SQLite.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn correct_logins_wait_for_slow_checks_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = fastcore_security::connect_store(&sqlite_url(&dir))
        .await
        .unwrap();
    let stores: [Arc<dyn TokenStore>; 2] =
        [Arc::new(fastcore_security::MemoryTokenStore::new()), sqlite];
    for store in stores {
        let backend = store.backend();
        let security = Security::new(limits(2, 20, WINDOW), store).unwrap();
        let directory = TestDirectory::default();
        directory.add("1", "ada", &password_hash());
        let auth = Arc::new(SlowAuth {
            inner: authenticator(&directory),
            delay: Duration::from_millis(60),
        });
        let router = auth_router(AuthState::new(security, auth));
        let statuses = at_once(&router, 16, IP, PASSWORD).await;
        assert!(
            statuses.iter().all(|s| *s == StatusCode::OK),
            "{backend}: {statuses:?}"
        );
        // Wrong passwords in flight still hold the line: of six at once,
        // two fail and four are refused, whatever they wait.
        let mut statuses = at_once(&router, 6, "192.0.2.99", WRONG).await;
        statuses.sort();
        assert_eq!(
            statuses,
            [
                StatusCode::UNAUTHORIZED,
                StatusCode::UNAUTHORIZED,
                StatusCode::TOO_MANY_REQUESTS,
                StatusCode::TOO_MANY_REQUESTS,
                StatusCode::TOO_MANY_REQUESTS,
                StatusCode::TOO_MANY_REQUESTS
            ],
            "{backend}"
        );
    }
}

/// Two instances on one store: an attempt refused on one cannot hear the
/// verdicts of attempts in flight on the other, so it polls the shared
/// counts for a short while (about one slow password check) before the
/// refusal is final; a burst split between them still succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn correct_logins_spread_over_instances_wait_for_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let mut routers = Vec::new();
    for _ in 0..2 {
        let store = fastcore_security::connect_store(&url).await.unwrap();
        let security = Security::new(limits(2, 0, WINDOW), store).unwrap();
        let directory = TestDirectory::default();
        directory.add("1", "ada", &password_hash());
        let auth = Arc::new(SlowAuth {
            inner: authenticator(&directory),
            delay: Duration::from_millis(30),
        });
        routers.push(auth_router(AuthState::new(security, auth)));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..6 {
        let router = routers[i % 2].clone();
        let request = login_from(IP, "ada", PASSWORD);
        tasks.spawn(async move { send(&router, request).await.status });
    }
    let mut statuses = Vec::new();
    while let Some(status) = tasks.join_next().await {
        statuses.push(status.unwrap());
    }
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
}

// ------------------------------------------------------------- per address

#[tokio::test]
async fn the_address_limit_trips_when_one_address_sprays_many_usernames() {
    let app = app(3, 5, WINDOW);
    for i in 0..5 {
        let res = login(&app, IP, &format!("user{i}"), WRONG).await;
        assert_status(&res, StatusCode::UNAUTHORIZED);
    }
    // The sixth username from that address is refused, and so is a real
    // login from it: the address is throttled for every account.
    assert_throttled(&login(&app, IP, "user5", WRONG).await, WINDOW);
    assert_throttled(&login(&app, IP, "ada", PASSWORD).await, WINDOW);
    assert_eq!(app.checks(), 5);
    // Other addresses are not affected, for the same usernames either.
    assert_status(
        &login(&app, "192.0.2.11", "user5", WRONG).await,
        StatusCode::UNAUTHORIZED,
    );
    assert_status(
        &login(&app, "192.0.2.11", "ada", PASSWORD).await,
        StatusCode::OK,
    );
}

#[tokio::test]
async fn an_ipv6_client_is_counted_by_its_64() {
    let app = app(100, 3, WINDOW);
    for i in 1..=3 {
        let ip = format!("2001:db8:0:7::{i}");
        assert_status(
            &login(&app, &ip, &format!("user{i}"), WRONG).await,
            StatusCode::UNAUTHORIZED,
        );
    }
    assert_throttled(
        &login(&app, "2001:db8:0:7::ffff", "user9", WRONG).await,
        WINDOW,
    );
    assert_status(
        &login(&app, "2001:db8:0:8::1", "user9", WRONG).await,
        StatusCode::UNAUTHORIZED,
    );
}

/// A refusal for the account does not use up the address's allowance
/// (it checked no password).
#[tokio::test]
async fn refusals_do_not_count_against_the_address() {
    let app = app(1, 3, WINDOW);
    assert_status(
        &login(&app, IP, "ada", WRONG).await,
        StatusCode::UNAUTHORIZED,
    );
    for _ in 0..5 {
        assert_throttled(&login(&app, IP, "ada", WRONG).await, WINDOW);
    }
    // One failure counted so far: two more usernames are allowed.
    for name in ["x", "y"] {
        assert_status(
            &login(&app, IP, name, WRONG).await,
            StatusCode::UNAUTHORIZED,
        );
    }
    assert_throttled(&login(&app, IP, "z", WRONG).await, WINDOW);
}

/// `ClientIp` (set by an application's trusted-proxy middleware) wins
/// over the peer address.
#[tokio::test]
async fn a_client_ip_set_by_the_application_wins_over_the_peer() {
    let app = app(100, 2, WINDOW);
    let from_proxy = |client: &str, username: &str| {
        let mut request = login_from("10.0.0.1", username, WRONG);
        request
            .extensions_mut()
            .insert(ClientIp(client.parse().unwrap()));
        request
    };
    for name in ["a", "b"] {
        let res = send(&app.router, from_proxy("203.0.113.5", name)).await;
        assert_status(&res, StatusCode::UNAUTHORIZED);
    }
    let res = send(&app.router, from_proxy("203.0.113.5", "c")).await;
    assert_throttled(&res, WINDOW);
    // Another client behind the same proxy is not affected.
    let res = send(&app.router, from_proxy("203.0.113.6", "c")).await;
    assert_status(&res, StatusCode::UNAUTHORIZED);
}

/// Without a known address only the account limit applies.
#[tokio::test]
async fn without_a_client_address_the_account_limit_still_applies() {
    let app = app(2, 1, WINDOW);
    let form = |name: &str| post_form("/auth/login", &[("username", name), ("password", WRONG)]);
    for name in ["a", "b", "c", "a"] {
        assert_status(
            &send(&app.router, form(name)).await,
            StatusCode::UNAUTHORIZED,
        );
    }
    assert_throttled(&send(&app.router, form("a")).await, WINDOW);
}

#[tokio::test]
async fn zero_turns_the_limits_off() {
    let app = app(0, 0, WINDOW);
    for _ in 0..8 {
        assert_status(
            &login(&app, IP, "ada", WRONG).await,
            StatusCode::UNAUTHORIZED,
        );
    }
    assert_status(&login(&app, IP, "ada", PASSWORD).await, StatusCode::OK);
}

// ----------------------------------------------------------- fail closed

/// A throttle whose store fails refuses logins with 503 (as the token store
/// does) and checks no password: an outage never lets attempts through
/// uncounted. Here the store is a real SQLite file whose throttle table is
/// gone.
#[tokio::test]
async fn a_failing_throttle_store_refuses_logins_with_503() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteTokenStore::connect(&sqlite_url(&dir)).await.unwrap();
    store.migrate().await.unwrap();
    sqlx::query("DROP TABLE fastcore_login_throttle")
        .execute(store.pool())
        .await
        .unwrap();
    let security = Security::new(limits(5, 20, WINDOW), Arc::new(store)).unwrap();
    assert_eq!(security.login_throttle().backend(), "sqlite");
    let app = app_on(security);
    let res = login(&app, IP, "ada", PASSWORD).await;
    assert_status(&res, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.json()["code"], "store_unavailable");
    assert_eq!(res.header(header::RETRY_AFTER), Some("5"));
    assert_eq!(app.checks(), 0);
}

// ------------------------------------------------------ shared by instances

/// Two instances, each with its own connection to one store, share the
/// counts: per account, per address, and the clearing on success.
async fn instances_share_the_counts(a: Arc<dyn TokenStore>, b: Arc<dyn TokenStore>) {
    let backend = a.backend();
    let config = || limits(3, 5, WINDOW);
    let a = app_on(Security::new(config(), a).unwrap());
    let b = app_on(Security::new(config(), b).unwrap());

    // Per account: two failures on A, one on B use up ada's three.
    assert_status(&login(&a, IP, "ada", WRONG).await, StatusCode::UNAUTHORIZED);
    assert_status(&login(&b, IP, "ada", WRONG).await, StatusCode::UNAUTHORIZED);
    assert_status(&login(&a, IP, "ada", WRONG).await, StatusCode::UNAUTHORIZED);
    assert_throttled(&login(&b, IP, "ada", PASSWORD).await, WINDOW);
    assert_throttled(&login(&a, IP, "ada", PASSWORD).await, WINDOW);

    // Per address: IP has three failures; two more, on either instance,
    // use up its five.
    assert_status(
        &login(&b, IP, "carol", WRONG).await,
        StatusCode::UNAUTHORIZED,
    );
    assert_status(
        &login(&a, IP, "dave", WRONG).await,
        StatusCode::UNAUTHORIZED,
    );
    assert_throttled(&login(&b, IP, "erin", WRONG).await, WINDOW);

    // A success on one instance clears the account on the other.
    let other = "198.51.100.20";
    for app in [&a, &a] {
        assert_status(
            &login(app, other, "bob", WRONG).await,
            StatusCode::UNAUTHORIZED,
        );
    }
    assert_status(&login(&b, other, "bob", PASSWORD).await, StatusCode::OK);
    for app in [&a, &b, &a] {
        assert_status(
            &login(app, other, "bob", WRONG).await,
            StatusCode::UNAUTHORIZED,
        );
    }
    // (From a third address: `other` has used up its five failures too.)
    assert_throttled(&login(&b, "198.51.100.21", "bob", PASSWORD).await, WINDOW);
    assert_eq!(a.checks() + b.checks(), 11, "{backend}");
}

#[tokio::test]
async fn sqlite_instances_share_the_counts() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let a = fastcore_security::connect_store(&url).await.unwrap();
    let b = fastcore_security::connect_store(&url).await.unwrap();
    instances_share_the_counts(a, b).await;
}

/// The shared store holds the keyed keys, never the unkeyed hashes anyone
/// could compute from a guessed name or address.
#[tokio::test]
async fn the_shared_store_counts_under_keyed_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = fastcore_security::connect_store(&sqlite_url(&dir))
        .await
        .unwrap();
    let security = Security::new(limits(3, 5, WINDOW), Arc::clone(&store)).unwrap();
    let app = app_on(security.clone());
    assert_status(
        &login(&app, IP, "ada", WRONG).await,
        StatusCode::UNAUTHORIZED,
    );
    assert_status(
        &login(&app, IP, "ada", WRONG).await,
        StatusCode::UNAUTHORIZED,
    );

    let throttle = store.login_throttle().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let keys = security.throttle_keys();
    // A handle counting elsewhere still counts under the same keys.
    let elsewhere =
        security.with_login_throttle(Arc::new(fastcore_security::MemoryLoginThrottle::new()));
    assert_eq!(
        elsewhere.throttle_keys().account("ada"),
        keys.account("ada")
    );
    let ip: IpAddr = IP.parse().unwrap();
    for (key, before) in [
        (keys.account("ada"), 2),
        (keys.address(ip), 2),
        (ThrottleKey::account("ada"), 0),
        (ThrottleKey::address(ip), 0),
    ] {
        let window = throttle.hit(&key, 900, now).await.unwrap();
        assert_eq!(window.attempts, before + 1, "{key}");
    }
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_instances_share_the_counts() {
    let Some(db) = common::databases::postgres().await else {
        return;
    };
    let a = fastcore_security::connect_store(db.url()).await.unwrap();
    let b = fastcore_security::connect_store(db.url()).await.unwrap();
    instances_share_the_counts(a, b).await;
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn mysql_instances_share_the_counts() {
    let Some(db) = common::databases::mysql().await else {
        return;
    };
    let a = fastcore_security::connect_store(db.url()).await.unwrap();
    let b = fastcore_security::connect_store(db.url()).await.unwrap();
    instances_share_the_counts(a, b).await;
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_instances_share_the_counts() {
    use fastcore_security::RedisTokenStore;

    let Some((a, prefix)) = common::redis_server::redis().await else {
        return;
    };
    let b =
        RedisTokenStore::connect_with_prefix(&common::redis_server::redis_url(), prefix.prefix())
            .await
            .unwrap();
    instances_share_the_counts(Arc::new(a), Arc::new(b)).await;
}

/// Instances on the memory store do not share counts (each has its own
/// memory throttle): what the shared stores are for.
#[tokio::test]
async fn memory_instances_count_apart() {
    let store: Arc<dyn TokenStore> = Arc::new(fastcore_security::MemoryTokenStore::new());
    assert!(store.login_throttle().is_none());
    let a = app_on(Security::new(limits(1, 0, WINDOW), Arc::clone(&store)).unwrap());
    let b = app_on(Security::new(limits(1, 0, WINDOW), store).unwrap());
    assert_status(&login(&a, IP, "ada", WRONG).await, StatusCode::UNAUTHORIZED);
    assert_throttled(&login(&a, IP, "ada", WRONG).await, WINDOW);
    assert_status(&login(&b, IP, "ada", PASSWORD).await, StatusCode::OK);
}

/// An administrator can clear an account's count before its window ends.
#[tokio::test]
async fn clearing_an_account_lets_it_log_in_again() {
    let security = memory_security_with(limits(1, 0, WINDOW));
    let app = app_on(security.clone());
    assert_status(
        &login(&app, IP, "ada", WRONG).await,
        StatusCode::UNAUTHORIZED,
    );
    assert_throttled(&login(&app, IP, "ada", PASSWORD).await, WINDOW);
    security.clear_login_failures("ADA").await.unwrap();
    assert_status(&login(&app, IP, "ada", PASSWORD).await, StatusCode::OK);
}

/// `Retry-After` is whole seconds, rounded up.
#[test]
fn retry_after_rounds_up() {
    use axum::response::IntoResponse;
    let response = fastcore_security::Error::TooManyAttempts {
        retry_after: Duration::from_millis(1500),
    }
    .into_response();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    // Rounded up to whole seconds.
    assert_eq!(response.headers()[header::RETRY_AFTER], "2");
}

/// The body of a 429 is a constant: no account, no limit, no count.
#[tokio::test]
async fn the_refusal_body_is_a_constant() {
    let app = app(1, 0, WINDOW);
    assert_status(
        &login(&app, IP, "ada", WRONG).await,
        StatusCode::UNAUTHORIZED,
    );
    let body = assert_throttled_body(&login(&app, IP, "ada", WRONG).await);
    assert_eq!(
        body,
        serde_json::json!({
            "type": "about:blank",
            "title": "Too Many Requests",
            "status": 429,
            "detail": "too many failed login attempts; try again later",
            "code": "too_many_attempts",
        })
    );
}

fn assert_throttled_body(res: &TestResponse) -> Value {
    assert_throttled(res, WINDOW);
    res.json()
}
