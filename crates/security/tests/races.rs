//! A refresh racing a logout-all, on every backend.
//!
//! A refresh rotates the refresh token, inserts a new access token, and
//! checks the new refresh token again; a logout-all revokes every token of
//! the user (even rounds: the one-write user cut-off; odd rounds: the
//! per-token "log out other sessions" with a session the refresher does not
//! use). Whatever the interleaving, once the logout-all has returned, no
//! access token that a refresh handed out may still validate. Under READ
//! COMMITTED (PostgreSQL) one revocation pass is not enough: its UPDATE
//! works on a snapshot that misses an access token inserted meanwhile, and
//! the refresh's re-check can run before that UPDATE commits.
//!
//! The verdict does not depend on timing: the test may pass by luck on a
//! broken implementation (the race window is short), but it never fails on
//! a correct one. Each round seeds the user with many extra token records
//! so that the revocation takes long enough to overlap refreshes.
//!
//! PostgreSQL, MySQL/MariaDB and Redis run with their features, on a
//! database or key prefix of their own (`tests/common/`); without their
//! server they are skipped, except under `CI`.
// Test helpers may panic: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::any::Any;
use std::sync::Arc;

use fastcore_security::{
    Error, MemoryTokenStore, Security, TokenRecord, TokenStore, TokenType, connect_store,
};

/// Rounds per backend, each with a user of its own.
const ROUNDS: usize = 5;
/// Extra token records of the user, to make the revocation slow.
const SEEDED: usize = 1000;
/// Refreshes that succeed before the logout-all starts.
const REFRESHES_FIRST: usize = 3;

/// A `Security` on one backend, and whatever must live as long as it.
struct Target {
    security: Security,
    _guard: Option<Box<dyn Any + Send>>,
}

impl Target {
    fn on(store: Arc<dyn TokenStore>, guard: Option<Box<dyn Any + Send>>) -> Self {
        Self {
            security: Security::new(common::config(), store).unwrap(),
            _guard: guard,
        }
    }
}

/// Inserts `count` live records of `user` through the store, several at a
/// time, in a few sessions of their own (and some without one).
async fn seed(store: &Arc<dyn TokenStore>, user: &str, count: usize) {
    let now = common::now();
    let records: Vec<_> = (0..count)
        .map(|i| {
            TokenRecord::new(
                uuid::Uuid::new_v4().to_string(),
                if i % 2 == 0 {
                    TokenType::Access
                } else {
                    TokenType::Refresh
                },
                user,
                (i % 10 != 0).then(|| format!("seed-{}-{}", user, i % 50)),
                now - 60,
                now + 3600,
            )
        })
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in records.chunks(count.div_ceil(8).max(1)) {
        let store = Arc::clone(store);
        let chunk = chunk.to_vec();
        tasks.spawn(async move {
            for r in &chunk {
                store.insert(r).await.unwrap();
            }
        });
    }
    tasks.join_all().await;
}

fn assert_revoked<T>(result: fastcore_security::Result<T>, what: &str) {
    match result {
        Err(Error::RevokedToken) => {}
        Err(other) => panic!("{what}: expected RevokedToken, got {other:?}"),
        Ok(_) => panic!("{what}: expected RevokedToken, got a success"),
    }
}

/// One round: a user logs in and is seeded; task A refreshes in a loop,
/// keeping every access token it gets, until a refresh fails; task B,
/// once A has refreshed a few times, logs the user out everywhere.
/// Afterwards every token A got must be revoked.
async fn refresh_racing_logout_all(security: &Security, round: usize) {
    let user = format!("racer-{round}-{}", uuid::Uuid::new_v4().simple());
    let pair = security.create_token_pair(&user, None).await.unwrap();
    seed(security.store(), &user, SEEDED).await;

    let (started, refreshed_enough) = tokio::sync::oneshot::channel::<()>();
    let refresher = {
        let security = security.clone();
        let mut refresh_token = pair.refresh_token.clone();
        tokio::spawn(async move {
            let mut started = Some(started);
            let mut tokens = Vec::new();
            let stopped_by = loop {
                match security.refresh_access_token(&refresh_token).await {
                    Ok(fresh) => {
                        tokens.push(fresh.access_token);
                        tokens.push(fresh.refresh_token.clone());
                        refresh_token = fresh.refresh_token;
                    }
                    Err(e) => break e,
                }
                // The memory store never waits: without this, A would hold
                // its worker, and B, woken on it, would never run.
                tokio::task::yield_now().await;
                if tokens.len() >= REFRESHES_FIRST
                    && let Some(started) = started.take()
                {
                    let _ = started.send(());
                }
            };
            // Dropping `started` unsent (A failed early) lets B go anyway.
            (tokens, stopped_by)
        })
    };
    let revoker = {
        let security = security.clone();
        let user = user.clone();
        tokio::spawn(async move {
            let _ = refreshed_enough.await;
            if round.is_multiple_of(2) {
                security.revoke_all_user_tokens(&user).await.map(|()| None)
            } else {
                security
                    .revoke_other_sessions(&user, "a-session-nobody-uses")
                    .await
                    .map(Some)
            }
        })
    };
    let (tokens, stopped_by) = refresher.await.unwrap();
    let revoked = revoker.await.unwrap().unwrap();

    // A stops only because its refresh token was revoked.
    assert!(
        matches!(stopped_by, Error::RevokedToken),
        "round {round}: the refreshes stopped on {stopped_by:?}"
    );
    assert!(
        tokens.len() >= REFRESHES_FIRST,
        "round {round}: {} refreshes",
        tokens.len()
    );
    if let Some(revoked) = revoked {
        // Sessions, not tokens: the seeded families and the login's own.
        let seeded_sessions = (0..SEEDED)
            .filter(|i| i % 10 != 0)
            .map(|i| i % 50)
            .collect::<std::collections::HashSet<_>>()
            .len();
        assert_eq!(
            revoked,
            u64::try_from(seeded_sessions + 1).unwrap(),
            "round {round}: revoked {revoked} sessions"
        );
    }
    for (i, token) in tokens.iter().enumerate() {
        assert_revoked(
            security.validate_token(token, None).await,
            &format!(
                "round {round}: token {} of {} from a refresh racing logout-all",
                i + 1,
                tokens.len()
            ),
        );
    }
    assert_revoked(
        security.validate_token(&pair.access_token, None).await,
        "the login's access token",
    );
    // The login's refresh token was consumed by the first rotation (and
    // then revoked with the session or cut off): refused either way.
    assert!(
        security
            .validate_token(&pair.refresh_token, None)
            .await
            .is_err(),
        "the login's refresh token"
    );
    assert!(
        security.list_user_tokens(&user).await.unwrap().is_empty(),
        "round {round}: live tokens left"
    );
}

async fn rounds(target: Option<Target>) {
    let Some(target) = target else {
        return;
    };
    for round in 0..ROUNDS {
        refresh_racing_logout_all(&target.security, round).await;
    }
}

mod targets {
    use super::*;

    pub(super) async fn memory() -> Option<Target> {
        Some(Target::on(Arc::new(MemoryTokenStore::new()), None))
    }

    /// A SQLite file (a pool of several connections, WAL mode).
    #[cfg(feature = "sqlite")]
    pub(super) async fn sqlite() -> Option<Target> {
        let dir = tempfile::tempdir().unwrap();
        let store = connect_store(&common::sqlite_url(&dir)).await.unwrap();
        Some(Target::on(store, Some(Box::new(dir))))
    }

    #[cfg(feature = "postgres")]
    pub(super) async fn postgres() -> Option<Target> {
        let db = common::databases::postgres().await?;
        let store = connect_store(db.url()).await.unwrap();
        Some(Target::on(store, Some(Box::new(db))))
    }

    #[cfg(feature = "mysql")]
    pub(super) async fn mysql() -> Option<Target> {
        let db = common::databases::mysql().await?;
        let store = connect_store(db.url()).await.unwrap();
        Some(Target::on(store, Some(Box::new(db))))
    }

    #[cfg(feature = "redis")]
    pub(super) async fn redis() -> Option<Target> {
        let (store, prefix) = common::redis_server::redis().await?;
        Some(Target::on(Arc::new(store), Some(Box::new(prefix))))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_refresh_racing_logout_all_leaves_no_live_token() {
    rounds(targets::memory().await).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_refresh_racing_logout_all_leaves_no_live_token() {
    rounds(targets::sqlite().await).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_refresh_racing_logout_all_leaves_no_live_token() {
    rounds(targets::postgres().await).await;
}

#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_refresh_racing_logout_all_leaves_no_live_token() {
    rounds(targets::mysql().await).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_refresh_racing_logout_all_leaves_no_live_token() {
    rounds(targets::redis().await).await;
}
