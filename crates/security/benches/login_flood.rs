//! Latency of a protected route (`GET /auth/me`: bearer token, token store
//! lookup, user lookup) alone, and while a flood of logins keeps the
//! password hasher saturated: [`FLOOD`] logins in flight all the time, each
//! an argon2id verification at the default policy.
//!
//! Hashing runs on tokio's blocking pool behind a semaphore sized to the
//! cores, so the flood must not stall the runtime: the protected route
//! should slow down only by the CPU it has to share, not by the length of
//! the login queue.
//!
//! Each request is spawned onto the multi-thread runtime (not driven on the
//! benchmark's own thread), so it waits for a worker like a real request.
//! After the criterion figures, one line gives percentiles of single
//! requests measured one at a time, with and without the flood.
//!
//! Run: `cargo bench -p fastcore-security --bench login_flood` (see
//! BENCHMARKS.md at the repository root).

#![allow(missing_docs, clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use criterion::{Criterion, criterion_group, criterion_main};
use fastcore_security::{
    AuthState, MemoryTokenStore, PasswordAuthenticator, PasswordHasher, Result, Security,
    SecurityConfig, UserDirectory, auth_router,
};
use http_body_util::BodyExt;
use serde::Serialize;
use tower::ServiceExt;

/// Logins in flight at every moment during the flood.
const FLOOD: usize = 64;
const PASSWORD: &str = "correct horse battery staple";
/// Single requests timed one by one for the percentile line.
const PROBES: usize = 400;

#[derive(Clone, Serialize)]
struct User {
    id: String,
    username: String,
}

/// One user, `ada` (id 1), with an argon2id hash at the default policy.
struct Directory {
    hash: String,
}

#[async_trait]
impl UserDirectory for Directory {
    type User = User;

    async fn find_by_username(&self, username: &str) -> Result<Option<User>> {
        Ok((username == "ada").then(|| User {
            id: "1".into(),
            username: "ada".into(),
        }))
    }

    async fn find_by_id(&self, user_id: &str) -> Result<Option<User>> {
        Ok((user_id == "1").then(|| User {
            id: "1".into(),
            username: "ada".into(),
        }))
    }

    fn user_id(&self, user: &User) -> String {
        user.id.clone()
    }

    fn password_hash(&self, _user: &User) -> String {
        self.hash.clone()
    }
}

/// The router, as the server builds it (one hasher for the security
/// handle and the authenticator), and an access token of `ada`.
async fn app() -> (Router, String) {
    let config = SecurityConfig::builder()
        .secret("benchmark-secret-0123456789-abcdefghijklmnopqrstu")
        // The flood measures hashing, not throttling: with the default
        // limits its wrong passwords would soon be answered 429 unhashed.
        .login_max_failures_per_account(0)
        .login_max_failures_per_address(0)
        // Nor the failure floor: held failures would sleep instead of
        // keeping the hashing pool busy.
        .login_failure_floor(std::time::Duration::ZERO)
        .build()
        .unwrap();
    let hasher = PasswordHasher::default();
    hasher.warm_up().await.unwrap();
    let hash = hasher.hash(PASSWORD).await.unwrap();
    let security =
        Security::with_password_hasher(config, Arc::new(MemoryTokenStore::new()), hasher.clone())
            .unwrap();
    let users = PasswordAuthenticator::new(Directory { hash }, hasher);
    let router = auth_router(AuthState::new(security.clone(), Arc::new(users)));
    let access = security
        .create_token_pair("1", None)
        .await
        .unwrap()
        .access_token;
    (router, access)
}

/// `GET /auth/me`, spawned onto the runtime; panics unless it is a 200.
async fn me(router: &Router, access: &str) {
    let request = Request::get("/auth/me")
        .header(header::AUTHORIZATION, format!("Bearer {access}"))
        .body(Body::empty())
        .unwrap();
    let router = router.clone();
    tokio::spawn(async move {
        let response = router.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.into_body().collect().await.unwrap();
    })
    .await
    .unwrap();
}

/// A wrong-password login: one argon2id verification, then a 401.
async fn wrong_login(router: &Router) {
    let request = Request::post("/auth/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("username=ada&password=not-the-password"))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    response.into_body().collect().await.unwrap();
}

/// [`FLOOD`] tasks, each logging in again as soon as its login ends.
struct Flood {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Flood {
    fn start(runtime: &tokio::runtime::Runtime, router: &Router) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let tasks = (0..FLOOD)
            .map(|_| {
                let (stop, done, router) = (Arc::clone(&stop), Arc::clone(&done), router.clone());
                runtime.spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        wrong_login(&router).await;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        Self { stop, done, tasks }
    }

    fn logins(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    fn stop(self, runtime: &tokio::runtime::Runtime) {
        self.stop.store(true, Ordering::Relaxed);
        runtime.block_on(async {
            for task in self.tasks {
                task.await.unwrap();
            }
        });
    }
}

/// p50, p99 and max of [`PROBES`] single requests, one at a time.
fn probe(runtime: &tokio::runtime::Runtime, router: &Router, access: &str) -> String {
    let mut times: Vec<Duration> = runtime.block_on(async {
        let mut times = Vec::with_capacity(PROBES);
        for _ in 0..PROBES {
            let start = Instant::now();
            me(router, access).await;
            times.push(start.elapsed());
        }
        times
    });
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    format!(
        "p50 {:?}, p99 {:?}, max {:?}",
        at(0.50),
        at(0.99),
        times[times.len() - 1]
    )
}

fn login_flood(c: &mut Criterion) {
    // Worker threads: one per core, tokio's default.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (router, access) = runtime.block_on(app());

    let mut group = c.benchmark_group("login_flood");
    group.bench_function("me_alone", |b| {
        b.to_async(&runtime).iter(|| me(&router, &access));
    });
    let alone = probe(&runtime, &router, &access);

    let flood = Flood::start(&runtime, &router);
    runtime.block_on(async { tokio::time::sleep(Duration::from_secs(1)).await });
    let (start, before) = (Instant::now(), flood.logins());
    group.bench_function(format!("me_during_{FLOOD}_logins"), |b| {
        b.to_async(&runtime).iter(|| me(&router, &access));
    });
    let during = probe(&runtime, &router, &access);
    let (elapsed, logins) = (start.elapsed(), flood.logins() - before);
    flood.stop(&runtime);
    group.finish();

    eprintln!("single /auth/me requests, alone:            {alone}");
    eprintln!("single /auth/me requests, during the flood: {during}");
    eprintln!(
        "the flood completed {logins} logins in {:.1} s ({:.1} logins/s, {FLOOD} in flight)",
        elapsed.as_secs_f64(),
        logins as f64 / elapsed.as_secs_f64()
    );
}

criterion_group!(benches, login_flood);
criterion_main!(benches);
