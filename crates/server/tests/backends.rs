//! The server on every backend, in-process over real listeners: the users
//! store behaves the same on SQLite, PostgreSQL, MySQL/MariaDB and Redis;
//! several server instances share one store; a PostgreSQL outage is a 503
//! that heals by itself; the background purge survives an outage.
//!
//! Each test has its own SQLite file, PostgreSQL schema, MariaDB database
//! or Redis key prefix (`common/backends.rs`). Without a server, its tests
//! are skipped (one `SKIPPED` line), except under `CI`, where they fail.

// Test code: a failed assumption fails the test.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::backends::{Proxy, TestStore, on_each_backend, postgres_server, record};
use common::{PASSWORD, TestServer};
use fastcore_security::{Credentials, UserAuthentication as _};
use fastcore_security_server::clock;
use fastcore_security_server::purge::spawn_background_purge;
use fastcore_security_server::users::Authenticator;
use reqwest::StatusCode;
use serde_json::Value;

/// A passlib bcrypt hash of [`PASSWORD`] (crates/security/tests/fixtures).
const BCRYPT: &str = "$2b$04$fastcoreFixtureSalt01e24QEn.e6IFELT0Qfmhizr253tsRxGA.";

/// How often a test polls for a state that comes by itself (a recovery, a
/// background purge), and how long it waits between two tries: bounded, so
/// a broken build fails instead of hanging.
const POLL_TRIES: u32 = 100;
const POLL_PAUSE: Duration = Duration::from_millis(200);

on_each_backend!(
    users_are_unique_by_their_key,
    users_can_be_disabled_enabled_and_listed,
    a_bcrypt_hash_is_upgraded_at_login,
    instances_share_one_store,
    instances_share_the_login_throttle,
);

mod scenario {
    use super::*;

    /// Names that look the same are one user, on every backend; a lookup
    /// that cannot match (a NUL, an unknown id) is `None`, not an error;
    /// concurrent creations of one name make exactly one user.
    pub(super) async fn users_are_unique_by_their_key(store: TestStore) {
        let db = store.open().await;
        let users = db.users();
        assert_eq!(users.count().await.unwrap(), 0);
        let hash = fastcore_security::get_password_hash(PASSWORD)
            .await
            .unwrap();

        let zoe = users.create("Zoe\u{0308}", &hash).await.unwrap();
        assert_eq!(zoe.username, "Zo\u{00EB}", "stored in NFKC form");
        assert!(zoe.is_active);
        assert_eq!(
            zoe.created_at.len(),
            "2026-01-01T00:00:00Z".len(),
            "{zoe:?}"
        );
        assert!(zoe.created_at.ends_with('Z'), "{zoe:?}");
        let now = clock::format_utc(clock::now());
        assert!(zoe.created_at.as_str() <= now.as_str(), "{zoe:?} vs {now}");

        for twin in [
            "ZO\u{00CB}",
            "zo\u{00EB}",
            "\u{FF3A}o\u{00EB}",
            "Zoe\u{0308}",
        ] {
            let err = users.create(twin, &hash).await.unwrap_err();
            assert!(
                err.to_string().contains("already exists"),
                "{twin:?}: {err:#}"
            );
            let found = users.find_by_username(twin).await.unwrap().unwrap();
            assert_eq!(found.id, zoe.id, "{twin:?}");
        }
        assert!(users.find_by_username("zoe").await.unwrap().is_none());
        assert!(users.find_by_username("zo\0e").await.unwrap().is_none());
        assert!(
            users
                .find_by_username(&"a".repeat(5000))
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(users.find_by_id(&zoe.id).await.unwrap().unwrap().id, zoe.id);
        assert!(users.find_by_id("nobody").await.unwrap().is_none());
        assert!(users.find_by_id("a\0b").await.unwrap().is_none());

        // The longest name there is, in a script with 2-byte characters.
        let long = "\u{00E9}".repeat(160);
        let user = users.create(&long, &hash).await.unwrap();
        assert_eq!(
            users
                .find_by_username(&long.to_uppercase())
                .await
                .unwrap()
                .unwrap()
                .id,
            user.id
        );

        // Eight instances creating one name at once: one user.
        let names = [
            "Grace", "grace", "GRACE", "gRaCe", "Grace", "grace", "GRACE", "graCE",
        ];
        let attempts = names.map(|name| {
            let users = users.clone();
            let hash = hash.clone();
            tokio::spawn(async move { users.create(name, &hash).await })
        });
        let mut created = 0;
        for attempt in attempts {
            match attempt.await.unwrap() {
                Ok(_) => created += 1,
                Err(err) => assert!(err.to_string().contains("already exists"), "{err:#}"),
            }
        }
        assert_eq!(created, 1);
        assert_eq!(users.count().await.unwrap(), 3);
    }

    /// Disable and enable by any form of the name; the list, oldest first;
    /// a hash replaced by id; nothing written for an unknown user.
    pub(super) async fn users_can_be_disabled_enabled_and_listed(store: TestStore) {
        let db = store.open().await;
        let users = db.users();
        let hash = fastcore_security::get_password_hash(PASSWORD)
            .await
            .unwrap();
        let ada = users.create("ada", &hash).await.unwrap();
        let bob = users.create("Bob", &hash).await.unwrap();

        let off = users.set_active("ADA", false).await.unwrap().unwrap();
        assert_eq!(off.id, ada.id);
        assert!(!off.is_active);
        assert!(!users.find_by_id(&ada.id).await.unwrap().unwrap().is_active);
        assert!(users.set_active("nobody", false).await.unwrap().is_none());
        let on = users.set_active("Ada", true).await.unwrap().unwrap();
        assert!(on.is_active);

        users
            .set_password_hash(&bob.id, "$argon2id$new")
            .await
            .unwrap();
        assert_eq!(
            users
                .find_by_id(&bob.id)
                .await
                .unwrap()
                .unwrap()
                .password_hash(),
            "$argon2id$new"
        );
        users
            .set_password_hash("nobody", "$argon2id$x")
            .await
            .unwrap();
        assert!(users.find_by_id("nobody").await.unwrap().is_none());
        assert!(
            users
                .set_password_hash(&bob.id, &"x".repeat(2000))
                .await
                .is_err(),
            "never truncated"
        );

        let listed = users.list().await.unwrap();
        let mut ids: Vec<&str> = listed.iter().map(|u| u.id.as_str()).collect();
        ids.sort_unstable();
        let mut expected = [ada.id.as_str(), bob.id.as_str()];
        expected.sort_unstable();
        assert_eq!(ids, expected);
        assert!(
            listed
                .windows(2)
                .all(|w| w[0].created_at <= w[1].created_at),
            "oldest first: {listed:?}"
        );
        assert_eq!(users.count().await.unwrap(), 2);
        assert!(listed.iter().all(|u| u.is_active));
    }

    /// The library's authenticator over the users store: a passlib bcrypt
    /// hash logs in and is replaced by an argon2id one.
    pub(super) async fn a_bcrypt_hash_is_upgraded_at_login(store: TestStore) {
        let db = store.open().await;
        let users = db.users();
        let legacy = users.create("legacy", BCRYPT).await.unwrap();
        let authenticator =
            Authenticator::new(users.clone(), fastcore_security::PasswordHasher::default());

        let wrong = Credentials::new("legacy", "wrong password");
        assert!(authenticator.authenticate(&wrong).await.unwrap().is_none());
        assert_eq!(
            users
                .find_by_id(&legacy.id)
                .await
                .unwrap()
                .unwrap()
                .password_hash(),
            BCRYPT
        );

        let right = Credentials::new("LEGACY", PASSWORD);
        let user = authenticator.authenticate(&right).await.unwrap().unwrap();
        assert_eq!(user.id, legacy.id);
        let stored = users.find_by_id(&legacy.id).await.unwrap().unwrap();
        assert!(
            stored.password_hash().starts_with("$argon2id$"),
            "{}",
            stored.password_hash()
        );
        assert!(authenticator.authenticate(&right).await.unwrap().is_some());
    }

    /// Two server instances on one store count failed logins together, in
    /// the store's own throttle (the defaults: 5 per account): the sixth
    /// attempt on either instance is refused with 429, even with the right
    /// password, for any spelling of the name; other accounts log in.
    pub(super) async fn instances_share_the_login_throttle(store: TestStore) {
        let options = store.options();
        let a = TestServer::start_on(store.url(), &options).await;
        let b = TestServer::start_on(store.url(), &options).await;
        for server in [&a, &b] {
            assert_eq!(
                server.security.login_throttle().backend(),
                server.db.backend().name(),
                "serve counts in its store"
            );
        }
        a.add_user("ada", PASSWORD).await;
        a.add_user("bob", PASSWORD).await;
        for server in [&a, &b, &a, &b, &a] {
            let response = server.login_form("ada", "not the password").await;
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        }
        for (server, name) in [(&b, "ada"), (&a, "ADA")] {
            let response = server.login_form(name, PASSWORD).await;
            assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
            let retry_after: u64 = response.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=900).contains(&retry_after), "{retry_after}");
            let problem: Value = response.json().await.unwrap();
            assert_eq!(problem["code"], "too_many_attempts", "{problem}");
        }
        let response = b.login_form("bob", PASSWORD).await;
        assert_eq!(response.status(), StatusCode::OK);
    }

    /// Two server instances (two listeners, one secret) on one store: a
    /// token issued by A works on B, a logout on B is refused on A at its
    /// next request, and logout-all on A ends the sessions made on B,
    /// their refresh tokens included.
    pub(super) async fn instances_share_one_store(store: TestStore) {
        // Started together: their migrations race and must not fail.
        let options = store.options();
        let (a, b) = tokio::join!(
            TestServer::start_on(store.url(), &options),
            TestServer::start_on(store.url(), &options),
        );
        assert_ne!(a.base, b.base);
        a.add_user("ada", PASSWORD).await;

        // Issued by A, valid on B.
        let (access, refresh) = a.tokens("ada", PASSWORD).await;
        let me: Value = {
            let response = b.me(&access).await;
            assert_eq!(response.status(), StatusCode::OK);
            response.json().await.unwrap()
        };
        assert_eq!(me["username"], "ada");
        assert_eq!(b.refresh_json(&refresh).await.status(), StatusCode::OK);

        // Revoked on B, refused on A at its very next request.
        assert_eq!(b.logout(&access).await.status(), StatusCode::NO_CONTENT);
        let response = a.me(&access).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["code"], "token_revoked", "{problem}");
        assert_eq!(
            a.refresh_json(&refresh).await.status(),
            StatusCode::UNAUTHORIZED
        );

        // Logout-all on A ends the sessions made on B.
        let (on_b, on_b_refresh) = b.tokens("ada", PASSWORD).await;
        let (other_b, _) = b.tokens("ada", PASSWORD).await;
        let (on_a, _) = a.tokens("ada", PASSWORD).await;
        assert_eq!(a.me(&on_b).await.status(), StatusCode::OK);
        let response = a.logout_all(&on_a).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        for token in [&on_b, &other_b, &on_a] {
            assert_eq!(b.me(token).await.status(), StatusCode::UNAUTHORIZED);
        }
        assert_eq!(
            b.refresh_json(&on_b_refresh).await.status(),
            StatusCode::UNAUTHORIZED,
            "the refresh tokens of B's sessions die with them"
        );
        let user_id = me["id"].as_str().unwrap();
        assert!(
            a.security
                .list_user_tokens(user_id)
                .await
                .unwrap()
                .is_empty()
        );
    }
}

/// The body of a 503 names no SQL, no driver and no token.
fn assert_clean_problem(body: &str, token: &str) {
    let lower = body.to_lowercase();
    for leak in [
        "select",
        "fastcore_tokens",
        "fastcore_users",
        "sqlx",
        "postgres",
        "127.0.0.1",
        "connection refused",
    ] {
        assert!(!lower.contains(leak), "the body names {leak:?}: {body}");
    }
    assert!(!body.contains(token), "the body holds the token: {body}");
    for part in token.split('.') {
        assert!(
            !body.contains(part),
            "the body holds part of the token: {body}"
        );
    }
}

/// PostgreSQL goes away for real (a TCP proxy in front of it closes every
/// connection and refuses new ones): a valid token gets 503 with
/// `Retry-After` and a clean problem+json body, `/health` gets 503; once
/// the database is back, the same server answers 200 again, no restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_outage_is_a_503_and_the_server_recovers_by_itself() {
    let Some(store) = TestStore::postgres().await else {
        return;
    };
    let mut proxy = Proxy::start(postgres_server(store.url())).await;
    let url = proxy.url_for(store.url());
    let server = TestServer::start_on(&url, &store.options()).await;
    server.add_user("ada", PASSWORD).await;
    let (access, _) = server.tokens("ada", PASSWORD).await;
    assert_eq!(server.me(&access).await.status(), StatusCode::OK);
    assert_eq!(server.health().await.status(), StatusCode::OK);

    proxy.down().await;
    let started = std::time::Instant::now();
    let response = server.me(&access).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let seconds: u64 = retry_after
        .as_deref()
        .unwrap_or_default()
        .parse()
        .unwrap_or(0);
    assert!(seconds > 0, "Retry-After: {retry_after:?}");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body = response.text().await.unwrap();
    assert_clean_problem(&body, &access);
    let problem: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["status"], 503, "{problem}");
    assert_eq!(problem["code"], "store_unavailable", "{problem}");

    let health = server.health().await;
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
    let login = server.login_form("ada", PASSWORD).await;
    assert_eq!(login.status(), StatusCode::SERVICE_UNAVAILABLE, "not a 401");

    proxy.up().await;
    let mut tries = 0;
    loop {
        tries += 1;
        let status = server.me(&access).await.status();
        if status == StatusCode::OK {
            break;
        }
        assert!(tries < POLL_TRIES, "still {status} after {tries} tries");
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "never anything but 503 or 200"
        );
        tokio::time::sleep(POLL_PAUSE).await;
    }
    assert_eq!(server.health().await.status(), StatusCode::OK);
    assert_eq!(
        server.logout(&access).await.status(),
        StatusCode::NO_CONTENT
    );
}

/// The background purge deletes expired records at start and at every
/// interval, leaves live ones, and lives through an outage of the store:
/// the failed purges are only warnings, and once the database is back the
/// next one works.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_background_purge_lives_through_a_postgres_outage() {
    let Some(store) = TestStore::postgres().await else {
        return;
    };
    let mut proxy = Proxy::start(postgres_server(store.url())).await;
    let db = fastcore_security_server::database::Database::open_with(
        &proxy.url_for(store.url()),
        &store.options(),
    )
    .await
    .unwrap();
    // The test's own view of the store, not through the proxy.
    let direct = store.open().await.token_store();
    let now = clock::now();
    direct
        .insert(&record("old-1", "u", now - 10))
        .await
        .unwrap();
    direct
        .insert(&record("live", "u", now + 3600))
        .await
        .unwrap();

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let throttle = db.token_store().login_throttle().unwrap();
    let purge = spawn_background_purge(
        db.token_store(),
        throttle,
        Duration::from_millis(300),
        10,
        stopped,
    );
    wait_until_gone(&*direct, "old-1").await;

    proxy.down().await;
    direct
        .insert(&record("old-2", "u", clock::now() - 10))
        .await
        .unwrap();
    // Several intervals pass while the store is away: the task must go on.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !purge.is_finished(),
        "the purge task ended during the outage"
    );
    assert!(
        direct.get("old-2").await.unwrap().is_some(),
        "nothing purged while down"
    );

    proxy.up().await;
    wait_until_gone(&*direct, "old-2").await;
    assert!(direct.get("live").await.unwrap().is_some());

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), purge)
        .await
        .expect("the purge stops when told")
        .unwrap();
}

/// Polls until the record of `jti` is gone (bounded).
async fn wait_until_gone(store: &dyn fastcore_security::TokenStore, jti: &str) {
    for _ in 0..POLL_TRIES {
        if store.get(jti).await.unwrap().is_none() {
            return;
        }
        tokio::time::sleep(POLL_PAUSE).await;
    }
    panic!("{jti} was not purged after {POLL_TRIES} tries");
}

/// Instances starting together on one new SQLite file all start: sqlx takes
/// no lock around SQLite migrations, so all but one lose the race to record
/// each migration, and must find it applied rather than fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_migrating_one_new_sqlite_file_at_once_all_start() {
    for _ in 0..10 {
        let store = TestStore::sqlite();
        let opens = (0..16).map(|_| {
            let url = store.url().to_owned();
            tokio::spawn(
                async move { fastcore_security_server::database::Database::open(&url).await },
            )
        });
        for open in opens.collect::<Vec<_>>() {
            let db = open.await.unwrap();
            assert!(db.is_ok(), "{:#}", db.unwrap_err());
        }
    }
}
