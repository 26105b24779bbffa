//! The Redis store beyond the shared behaviour suite: `connect_store` and
//! `Security` end to end, the key layout and expiries, ids that look like
//! key syntax, and outages (a refused port, a server that never answers,
//! a server that goes away and comes back).
//!
//! Uses the Redis of `FASTCORE_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379/`); without it the tests pass after a `SKIPPED`
//! line, except under CI. The outage test starts its own `redis-server`.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::redis_server::{TestPrefix, redis, redis_url, server_of, skip_or_fail};
use fastcore_security::{
    Error, RedisTokenStore, Security, TokenRecord, TokenStore, TokenType, connect_store,
};

/// How long an outage may take to surface as an error.
const PROMPTLY: Duration = Duration::from_secs(8);

fn live(jti: &str, user: &str, family: Option<&str>) -> TokenRecord {
    let now = common::now();
    TokenRecord {
        jti: jti.to_owned(),
        token_type: TokenType::Access,
        user_id: user.to_owned(),
        family_id: family.map(str::to_owned),
        issued_at: now - 60,
        expires_at: now + 3600,
        revoked_at: None,
    }
}

/// A blocking connection to the test Redis, to look at keys directly.
fn inspect() -> redis::Connection {
    let client = redis::Client::open(redis_url()).unwrap();
    client
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap()
}

fn ttl(con: &mut redis::Connection, key: &str) -> i64 {
    redis::cmd("TTL").arg(key).query(con).unwrap()
}

/// Deletes the listed keys under the default prefix when dropped, and
/// takes the records' jtis out of the shared expiry index.
struct DefaultPrefixKeys(Vec<String>);

impl Drop for DefaultPrefixKeys {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(redis_url()) else {
            return;
        };
        let Ok(mut con) = client.get_connection_with_timeout(Duration::from_secs(2)) else {
            return;
        };
        for key in &self.0 {
            let _: redis::RedisResult<()> = redis::cmd("DEL").arg(key).query(&mut con);
            if let Some(jti) = key.strip_prefix("fastcore:tok:") {
                let _: redis::RedisResult<()> = redis::cmd("ZREM")
                    .arg("fastcore:exp")
                    .arg(jti)
                    .query(&mut con);
            }
        }
    }
}

#[tokio::test]
async fn connect_store_gives_a_redis_store_that_security_uses_end_to_end() {
    if redis().await.is_none() {
        return;
    }
    let store = connect_store(&redis_url()).await.unwrap();
    assert_eq!(store.backend(), "redis");
    let security = Security::new(common::config(), store).unwrap();
    let user = format!("e2e-{}", uuid::Uuid::new_v4());

    let pair = security.create_token_pair(&user, None).await.unwrap();
    let access = security
        .validate_token(&pair.access_token, Some(TokenType::Access))
        .await
        .unwrap();
    let refresh = security
        .validate_token(&pair.refresh_token, Some(TokenType::Refresh))
        .await
        .unwrap();
    let sid = access.sid.clone().unwrap();
    let _cleanup = DefaultPrefixKeys(vec![
        format!("fastcore:tok:{}", access.jti),
        format!("fastcore:tok:{}", refresh.jti),
        format!("fastcore:user:{user}"),
        format!("fastcore:fam:{sid}"),
    ]);
    assert_eq!(refresh.sid.as_deref(), Some(sid.as_str()));
    assert_eq!(security.list_user_tokens(&user).await.unwrap().len(), 2);

    // The records live under the default prefix and expire with the token
    // (plus the grace period).
    let mut con = inspect();
    let left = ttl(&mut con, &format!("fastcore:tok:{}", access.jti));
    let expected = access.exp - common::now() + RedisTokenStore::RECORD_GRACE_SECS;
    assert!(
        (expected - 5..=expected).contains(&left),
        "{left} vs {expected}"
    );

    let refreshed = security
        .refresh_access_token(&pair.refresh_token)
        .await
        .unwrap();
    let third = security
        .validate_token(&refreshed.access_token, Some(TokenType::Access))
        .await
        .unwrap();
    let _cleanup_third = DefaultPrefixKeys(vec![format!("fastcore:tok:{}", third.jti)]);

    // Logout ends the whole session: both tokens and the refreshed one.
    assert_eq!(security.logout(&pair.access_token).await.unwrap(), 3);
    for token in [&pair.access_token, &refreshed.access_token] {
        let err = security
            .validate_token(token, Some(TokenType::Access))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::RevokedToken), "{err:?}");
    }
    let err = security
        .refresh_access_token(&pair.refresh_token)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RevokedToken), "{err:?}");
    assert!(security.list_user_tokens(&user).await.unwrap().is_empty());
}

#[tokio::test]
async fn keys_expire_with_their_tokens_and_expired_records_are_not_kept() {
    let Some((store, prefix)) = redis().await else {
        return;
    };
    let p = prefix.prefix().to_owned();
    let now = common::now();
    let grace = RedisTokenStore::RECORD_GRACE_SECS;
    let mut short = live("short", "u", Some("s"));
    short.expires_at = now + 100;
    let long = live("long", "u", Some("s"));
    store.insert(&long).await.unwrap();
    store.insert(&short).await.unwrap();

    let mut con = inspect();
    let close_to = |got: i64, want: i64| (want - 5..=want).contains(&got);
    assert!(close_to(
        ttl(&mut con, &format!("{p}tok:short")),
        100 + grace
    ));
    assert!(close_to(
        ttl(&mut con, &format!("{p}tok:long")),
        3600 + grace
    ));
    // Each index lives as long as its longest-lived record.
    for index in ["user:u", "fam:s", "exp"] {
        let left = ttl(&mut con, &format!("{p}{index}"));
        assert!(close_to(left, 3600 + grace), "{index}: {left}");
    }

    // Within the grace period a record is still there (a token may be
    // accepted within the leeway), but not live.
    let mut recent = live("recent", "u", Some("s"));
    recent.expires_at = now - 10;
    store.insert(&recent).await.unwrap();
    assert_eq!(store.get("recent").await.unwrap(), Some(recent));
    let live_now: Vec<_> = store
        .list_live("u", now)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.jti)
        .collect();
    assert_eq!(live_now, ["long", "short"]);

    // Past the grace period nothing is written at all, not even an index.
    let mut old = live("old", "v", Some("t"));
    old.expires_at = now - grace - 10;
    store.insert(&old).await.unwrap();
    assert_eq!(store.get("old").await.unwrap(), None);
    let keys: Vec<String> = prefix
        .keys()
        .unwrap()
        .into_iter()
        .map(|k| String::from_utf8(k).unwrap())
        .collect();
    for key in &keys {
        assert!(
            !key.ends_with(":v") && !key.ends_with(":t") && !key.ends_with(":old"),
            "{key}"
        );
    }

    // A token that never expires (beyond what EXPIREAT takes) has no TTL.
    let mut forever = live("forever", "w", None);
    forever.expires_at = i64::MAX / 2;
    store.insert(&forever).await.unwrap();
    assert_eq!(ttl(&mut con, &format!("{p}tok:forever")), -1);
    assert_eq!(ttl(&mut con, &format!("{p}user:w")), -1);
    assert_eq!(store.get("forever").await.unwrap(), Some(forever));
}

#[tokio::test]
async fn ids_that_look_like_key_syntax_name_themselves_only() {
    let Some((store, _prefix)) = redis().await else {
        return;
    };
    // Glob characters, the separator, and other kinds' names inside ids.
    let ids = [
        "x", "x*", "*", "x?", "?", "x[a]", "[x]", "xa", "x:y", "user:x", "fam:x", "tok:x", "exp",
        "x\\*", "",
    ];
    for (i, id) in ids.iter().enumerate() {
        store
            .insert(&live(&format!("k-{i}"), id, Some(id)))
            .await
            .unwrap();
    }
    // jtis that are other kinds' names too.
    store
        .insert(&live("user:x", "jti-user", None))
        .await
        .unwrap();
    store.insert(&live("*", "jti-star", None)).await.unwrap();
    for (i, id) in ids.iter().enumerate() {
        let live = store.list_live(id, common::now()).await.unwrap();
        let jtis: Vec<_> = live.iter().map(|r| r.jti.clone()).collect();
        assert_eq!(jtis, [format!("k-{i}")], "user {id:?}");
    }
    let now = common::now();
    assert_eq!(store.revoke_user("x*", None, now).await.unwrap(), 1);
    assert_eq!(store.revoke_user("*", None, now).await.unwrap(), 1);
    assert_eq!(store.revoke_family("x[a]", now).await.unwrap(), 1);
    assert_eq!(store.revoke_family("?", now).await.unwrap(), 1);
    assert_eq!(store.revoke_user("exp", None, now).await.unwrap(), 1);
    for id in ["x", "xa", "x:y", "user:x", "[x]", "x?", ""] {
        assert_eq!(store.list_live(id, now).await.unwrap().len(), 1, "{id:?}");
    }
    assert_eq!(
        store.get("user:x").await.unwrap().unwrap().user_id,
        "jti-user"
    );
    assert!(store.revoke("*", now).await.unwrap());
    assert_eq!(store.get("*").await.unwrap().unwrap().user_id, "jti-star");
    assert!(
        store
            .get("k-1")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert!(
        store
            .get("k-0")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none()
    );
}

#[tokio::test]
async fn prefixes_keep_stores_apart() {
    let Some((a, _pa)) = redis().await else {
        return;
    };
    let Some((b, _pb)) = redis().await else {
        return;
    };
    a.insert(&live("same", "u", Some("s"))).await.unwrap();
    b.insert(&live("same", "u", Some("s"))).await.unwrap();
    assert_eq!(b.revoke_user("u", None, common::now()).await.unwrap(), 1);
    assert_eq!(a.list_live("u", common::now()).await.unwrap().len(), 1);
    assert_ne!(a.prefix(), b.prefix());
}

#[tokio::test]
async fn a_refused_port_is_store_unavailable_promptly() {
    let started = Instant::now();
    let err = connect_store("redis://127.0.0.1:1/").await.err().unwrap();
    assert!(matches!(err, Error::StoreUnavailable(_)), "{err:?}");
    assert!(started.elapsed() < PROMPTLY, "{:?}", started.elapsed());

    let config = common::config_builder()
        .database_url("redis://127.0.0.1:1/")
        .build()
        .unwrap();
    let err = fastcore_security::setup_security(config)
        .await
        .err()
        .unwrap();
    assert_eq!(err.code(), "store_unavailable");
}

#[tokio::test]
async fn a_server_that_never_answers_is_store_unavailable_promptly() {
    // Accepts connections and reads nothing: a hung server or a black hole.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            sockets.push(socket);
        }
    });
    let started = Instant::now();
    let err = RedisTokenStore::connect(&format!("redis://127.0.0.1:{port}/"))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, Error::StoreUnavailable(_)), "{err:?}");
    assert!(started.elapsed() < PROMPTLY, "{:?}", started.elapsed());
    hold.abort();
}

#[tokio::test]
async fn urls_are_checked() {
    let err = connect_store("redis://127.0.0.1:6379/notanumber")
        .await
        .err()
        .unwrap();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    let err = RedisTokenStore::connect("redis://:secret-pw@[::1")
        .await
        .err()
        .unwrap();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert!(!err.to_string().contains("secret-pw"), "{err}");
}

#[tokio::test]
async fn rediss_uses_tls() {
    // Plain Redis on the other end: the TLS handshake fails, as a store
    // error, not a panic or a config error about a missing feature.
    let url = redis_url();
    let Some(rest) = url.strip_prefix("redis://") else {
        return;
    };
    if redis().await.is_none() {
        return;
    }
    let err = RedisTokenStore::connect(&format!("rediss://{rest}"))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, Error::StoreUnavailable(_)), "{err:?}");
}

/// A `redis-server` of our own, killed on drop.
struct OwnServer(Child);

impl OwnServer {
    fn start(port: u16) -> std::io::Result<Self> {
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(Self)
    }

    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_until_up(url: &str) -> RedisTokenStore {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match RedisTokenStore::connect(url).await {
            Ok(store) => return store,
            Err(e) if Instant::now() > deadline => panic!("own redis-server did not start: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_recovers_by_itself_after_an_outage() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}/");
    let mut server = match OwnServer::start(port) {
        Ok(server) => server,
        Err(e) => {
            let _: Option<()> = skip_or_fail(&server_of(&url), format!("redis-server: {e}"));
            return;
        }
    };
    let store: Arc<dyn TokenStore> = Arc::new(wait_until_up(&url).await);
    let security = Security::new(common::config(), Arc::clone(&store)).unwrap();
    let before = security.create_access_token("u", None).await.unwrap();

    server.stop();
    let started = Instant::now();
    let err = security
        .validate_token(&before.token, Some(TokenType::Access))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::StoreUnavailable(_)), "{err:?}");
    assert!(started.elapsed() < PROMPTLY, "{:?}", started.elapsed());
    // Again, while it is still down: an error each time, never a hang.
    let started = Instant::now();
    assert!(store.ping().await.is_err());
    assert!(security.create_access_token("u", None).await.is_err());
    assert!(started.elapsed() < PROMPTLY * 2, "{:?}", started.elapsed());

    // Back (empty: this server keeps nothing on disk). The same store
    // handle works again without being rebuilt.
    let _server = OwnServer::start(port).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while store.ping().await.is_err() {
        assert!(Instant::now() < deadline, "the store did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = security.create_access_token("u", None).await.unwrap();
    security
        .validate_token(&after.token, Some(TokenType::Access))
        .await
        .unwrap();
}

#[test]
fn test_prefixes_are_unique_and_glob_free() {
    let a = TestPrefix::new(&redis_url());
    let b = TestPrefix::new(&redis_url());
    assert_ne!(a.prefix(), b.prefix());
    assert!(!a.prefix().contains(['*', '?', '[', ']', '\\']));
}
