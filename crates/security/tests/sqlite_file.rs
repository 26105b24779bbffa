//! The SQLite database file removed while the store is open: requests and
//! `/health` report the store as unavailable, and no new, empty database
//! silently takes its place (every issued token would then be unknown, and
//! everything written afterwards lost at the next start).

// Test code: a failed assumption fails the test.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::*;
use fastcore_security::{SqliteTokenStore, get_security_status};

fn remove_database(path: &std::path::Path) {
    std::fs::remove_file(path).unwrap();
    for suffix in ["-wal", "-shm"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        let _ = std::fs::remove_file(side);
    }
}

#[tokio::test]
async fn health_reports_a_removed_database_file() {
    let (security, dir) = sqlite_security().await;
    let path = dir.path().join("tokens.db");
    assert!(path.exists());
    security.create_token_pair("1", None).await.unwrap();
    assert!(get_security_status(Some(&security)).await.healthy());

    remove_database(&path);

    let status = get_security_status(Some(&security)).await;
    assert!(!status.healthy(), "{status:?}");
    assert!(!status.store_reachable);
    assert!(!path.exists(), "the health check re-created the file");
}

/// Requests fail too (503 `store_unavailable` over HTTP): connections
/// still open on the removed file are dropped rather than written to.
#[tokio::test]
async fn requests_fail_once_the_database_file_is_removed() {
    let (security, dir) = sqlite_security().await;
    let path = dir.path().join("tokens.db");
    let pair = security.create_token_pair("1", None).await.unwrap();
    security
        .validate_token(&pair.access_token, None)
        .await
        .unwrap();

    remove_database(&path);

    let err = security
        .validate_token(&pair.access_token, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, fastcore_security::Error::StoreUnavailable(_)),
        "{err:?}"
    );
    let err = security.create_token_pair("1", None).await.unwrap_err();
    assert!(
        matches!(err, fastcore_security::Error::StoreUnavailable(_)),
        "{err:?}"
    );
    assert!(!path.exists(), "a request re-created the file");
}

#[tokio::test]
async fn new_connections_do_not_create_an_empty_database() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let path = dir.path().join("tokens.db");
    let store = SqliteTokenStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    assert!(path.exists(), "connect creates the file once");

    remove_database(&path);

    // More connections than the pool has open: some must be new ones.
    let mut held = Vec::new();
    let mut failed = 0;
    for _ in 0..8 {
        match store.pool().acquire().await {
            Ok(conn) => held.push(conn),
            Err(_) => failed += 1,
        }
    }
    assert!(failed > 0, "every new connection opened a database");
    assert!(!path.exists(), "a new connection created an empty database");
}

#[tokio::test]
async fn a_database_without_the_token_tables_is_not_healthy() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    // Connected but never migrated: nothing can be stored.
    let store = SqliteTokenStore::connect(&url).await.unwrap();
    let security = fastcore_security::Security::new(config(), std::sync::Arc::new(store)).unwrap();
    let status = get_security_status(Some(&security)).await;
    assert!(!status.healthy(), "{status:?}");
}

/// A new file at the path (another process created and migrated one, or a
/// backup was moved into place) is not the file the store opened: the store
/// refuses it until restarted, rather than go on writing to the removed
/// file while other processes use the new one.
#[tokio::test]
async fn a_replaced_database_file_is_refused_until_restart() {
    let (security, dir) = sqlite_security().await;
    let path = dir.path().join("tokens.db");
    let pair = security.create_token_pair("1", None).await.unwrap();
    // Several connections in the pool.
    let checks: Vec<_> = (0..4)
        .map(|_| security.validate_token(&pair.access_token, None))
        .collect();
    for check in checks {
        check.await.unwrap();
    }

    remove_database(&path);
    let other = SqliteTokenStore::connect(&sqlite_url(&dir)).await.unwrap();
    other.migrate().await.unwrap();
    assert!(path.exists());

    // (Each refusal waits out the pool's connect deadline: sqlx retries a
    // connection its `after_connect` check refused until then.)
    let err = security
        .validate_token(&pair.access_token, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, fastcore_security::Error::StoreUnavailable(_)),
        "{err:?}"
    );
    assert!(!get_security_status(Some(&security)).await.healthy());

    // A restart opens the file now at the path.
    let restarted = fastcore_security::setup_security(
        config_builder()
            .database_url(sqlite_url(&dir))
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    assert!(get_security_status(Some(&restarted)).await.healthy());
}
