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
    TokenRecord::new(
        jti,
        TokenType::Access,
        user,
        family.map(str::to_owned),
        now - 60,
        now + 3600,
    )
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
    let (access, refresh) = common::validate_pair(&security, &pair).await;
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
    let rotated = security.decode_token(&refreshed.refresh_token).unwrap();
    let _cleanup_third = DefaultPrefixKeys(vec![
        format!("fastcore:tok:{}", third.jti),
        format!("fastcore:tok:{}", rotated.jti),
    ]);

    // Logout ends the whole session: the login's two tokens (its refresh
    // token consumed by the rotation) and the rotated pair.
    assert_eq!(security.logout(&pair.access_token).await.unwrap(), 4);
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
    let live_now = common::live_jtis(&store, "u", now).await;
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

/// The members of a sorted set, in score order (empty if there is no key).
fn members(con: &mut redis::Connection, key: &str) -> Vec<String> {
    redis::cmd("ZRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .query(con)
        .unwrap()
}

fn zcard(con: &mut redis::Connection, key: &str) -> u64 {
    redis::cmd("ZCARD").arg(key).query(con).unwrap()
}

fn exists(con: &mut redis::Connection, key: &str) -> bool {
    redis::cmd("EXISTS").arg(key).query::<u64>(con).unwrap() == 1
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Inserts `records` through `store`, several at a time.
async fn insert_many(store: &RedisTokenStore, records: Vec<TokenRecord>) {
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in records.chunks(records.len().div_ceil(16).max(1)) {
        let store = store.clone();
        let chunk = chunk.to_vec();
        tasks.spawn(async move {
            for r in &chunk {
                store.insert(r).await.unwrap();
            }
        });
    }
    tasks.join_all().await;
}

/// Revoking (one token, a session, a user) takes the revoked tokens out of
/// the `user:` and `fam:` indexes, so later walks never see them; the
/// records stay, revoked, for `get`.
#[tokio::test]
async fn revoked_tokens_leave_the_user_and_session_indexes() {
    let Some((store, prefix)) = redis().await else {
        return;
    };
    let p = prefix.prefix().to_owned();
    let now = common::now();
    let mut pre_revoked = live("r1", "u", Some("A"));
    pre_revoked.revoked_at = Some(now - 5);
    for r in [
        live("a1", "u", Some("A")),
        live("a2", "u", Some("A")),
        live("b1", "u", Some("B")),
        live("b2", "u", Some("B")),
        live("c1", "u", Some("C")),
        live("n1", "u", None),
        pre_revoked,
    ] {
        store.insert(&r).await.unwrap();
    }
    let mut con = inspect();
    let user = format!("{p}user:u");
    let fam = |f: &str| format!("{p}fam:{f}");
    // A record inserted revoked is never indexed (but is on file).
    assert_eq!(
        sorted(members(&mut con, &user)),
        ["a1", "a2", "b1", "b2", "c1", "n1"]
    );
    assert_eq!(sorted(members(&mut con, &fam("A"))), ["a1", "a2"]);
    assert_eq!(
        store.get("r1").await.unwrap().unwrap().revoked_at,
        Some(now - 5)
    );

    // One token.
    assert!(store.revoke("c1", now).await.unwrap());
    assert!(!exists(&mut con, &fam("C")), "its session index emptied");
    assert!(!members(&mut con, &user).contains(&"c1".to_owned()));

    // A session.
    assert_eq!(store.revoke_family("A", now).await.unwrap(), 2);
    assert!(!exists(&mut con, &fam("A")));
    assert_eq!(sorted(members(&mut con, &user)), ["b1", "b2", "n1"]);

    // A user but one session: only that session's tokens stay.
    assert_eq!(store.revoke_user("u", Some("B"), now).await.unwrap(), 1);
    assert_eq!(sorted(members(&mut con, &user)), ["b1", "b2"]);
    assert_eq!(sorted(members(&mut con, &fam("B"))), ["b1", "b2"]);

    // Everything.
    assert_eq!(store.revoke_user("u", None, now).await.unwrap(), 2);
    assert!(!exists(&mut con, &user));
    assert!(!exists(&mut con, &fam("B")));

    // The records stay, revoked, until they expire; revoking again is
    // still idempotent and counts nothing.
    for jti in ["a1", "a2", "b1", "b2", "c1", "n1"] {
        let record = store.get(jti).await.unwrap().unwrap();
        assert_eq!(record.revoked_at, Some(now), "{jti}");
    }
    assert!(store.list_live("u", now).await.unwrap().is_empty());
    assert!(!store.revoke("a1", now + 1).await.unwrap());
    assert_eq!(store.revoke_family("B", now + 1).await.unwrap(), 0);
    assert_eq!(store.revoke_user("u", None, now + 1).await.unwrap(), 0);
    assert_eq!(
        store.get("a1").await.unwrap().unwrap().revoked_at,
        Some(now)
    );
}

/// Revoked tokens cost the next walk nothing: after 5,000 revocations (one
/// by one, by session, by user) the user's index holds the one live token.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_revoked_tokens_leave_one_entry_to_walk() {
    let Some((store, prefix)) = redis().await else {
        return;
    };
    let p = prefix.prefix().to_owned();
    let now = common::now();
    let user = format!("{p}user:heavy");
    let records: Vec<_> = (0..5000)
        .map(|i| {
            let family = (i < 4000).then(|| format!("s-{}", i % 40));
            live(&format!("t-{i:04}"), "heavy", family.as_deref())
        })
        .collect();
    insert_many(&store, records).await;
    store
        .insert(&live("kept", "heavy", Some("keep")))
        .await
        .unwrap();
    let mut con = inspect();
    assert_eq!(zcard(&mut con, &user), 5001);

    let mut revoked = 0;
    for i in 4000..4100 {
        revoked += u64::from(store.revoke(&format!("t-{i:04}"), now).await.unwrap());
    }
    for f in 0..20 {
        revoked += store.revoke_family(&format!("s-{f}"), now).await.unwrap();
    }
    revoked += store.revoke_user("heavy", Some("keep"), now).await.unwrap();
    assert_eq!(revoked, 5000);

    assert_eq!(zcard(&mut con, &user), 1, "list_live walks one entry");
    assert_eq!(members(&mut con, &user), ["kept"]);
    assert_eq!(members(&mut con, &format!("{p}fam:keep")), ["kept"]);
    for f in 0..40 {
        assert!(!exists(&mut con, &format!("{p}fam:s-{f}")), "s-{f}");
    }
    let live_now = store.list_live("heavy", now).await.unwrap();
    assert_eq!(
        live_now.iter().map(|r| r.jti.as_str()).collect::<Vec<_>>(),
        ["kept"]
    );
    assert!(
        store
            .get("t-0000")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert!(
        store
            .get("t-4999")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert_eq!(store.revoke_user("heavy", None, now).await.unwrap(), 1);
    assert!(!exists(&mut con, &user));
}

/// The indexes are trimmed by the server's clock only: a caller whose
/// clock runs ahead (or a `list_live` asked about a later time) does not
/// take live tokens out of the index that revocation walks, and a token
/// just past its `exp` (still accepted within the leeway) is still revoked.
#[tokio::test]
async fn only_the_servers_clock_trims_the_indexes() {
    let Some((store, prefix)) = redis().await else {
        return;
    };
    let p = prefix.prefix().to_owned();
    let now = common::now();
    let mut just_expired = live("just-expired", "u", Some("s"));
    just_expired.expires_at = now - 10;
    store.insert(&live("t", "u", Some("s"))).await.unwrap();
    store.insert(&just_expired).await.unwrap();
    let mut con = inspect();

    assert!(store.list_live("u", now + 10_000).await.unwrap().is_empty());
    assert_eq!(zcard(&mut con, &format!("{p}user:u")), 2);
    assert_eq!(zcard(&mut con, &format!("{p}fam:s")), 2);
    assert_eq!(store.revoke_family("s", now + 10_000).await.unwrap(), 2);
    assert!(store.get("t").await.unwrap().unwrap().revoked_at.is_some());
    assert!(
        store
            .get("just-expired")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );

    store.insert(&live("t2", "u", None)).await.unwrap();
    assert!(store.list_live("u", now + 10_000).await.unwrap().is_empty());
    assert_eq!(store.revoke_user("u", None, now + 10_000).await.unwrap(), 1);
}

/// Index members a store of an earlier version left behind (revoked
/// tokens, records that are gone) are dropped by the next walk.
#[tokio::test]
async fn walks_drop_revoked_and_stale_members_left_in_an_index() {
    let Some((store, prefix)) = redis().await else {
        return;
    };
    let p = prefix.prefix().to_owned();
    let now = common::now();
    let user = format!("{p}user:u");
    let fam = format!("{p}fam:s");
    store.insert(&live("x", "u", Some("s"))).await.unwrap();
    store.insert(&live("y", "u", Some("s"))).await.unwrap();
    assert!(store.revoke("x", now).await.unwrap());
    let mut con = inspect();
    // As an earlier version left them: the revoked token still indexed,
    // and a member whose record is gone.
    for key in [&user, &fam] {
        let _: () = redis::cmd("ZADD")
            .arg(key)
            .arg(now + 3600)
            .arg("x")
            .arg(now + 3600)
            .arg("gone")
            .query(&mut con)
            .unwrap();
    }
    let jtis = common::live_jtis(&store, "u", now).await;
    assert_eq!(jtis, ["y"]);
    assert_eq!(members(&mut con, &user), ["y"]);
    assert_eq!(sorted(members(&mut con, &fam)), ["gone", "y"]);
    // Keeping the session: its live token stays, the stale members go.
    let _: () = redis::cmd("ZADD")
        .arg(&user)
        .arg(now + 3600)
        .arg("x")
        .arg(now + 3600)
        .arg("gone")
        .query(&mut con)
        .unwrap();
    assert_eq!(store.revoke_user("u", Some("s"), now).await.unwrap(), 0);
    assert_eq!(members(&mut con, &user), ["y"]);
    assert_eq!(store.revoke_family("s", now).await.unwrap(), 1);
    assert!(!exists(&mut con, &fam));
    assert!(!exists(&mut con, &user));
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

// ---------------------------------------------------------------------
// Rotation and user-wide cut-offs: what the Redis store writes for them.
// ---------------------------------------------------------------------

/// A refresh token of `user`'s session `family`, expiring `ttl` seconds
/// from now, with session metadata whose values look like key syntax.
fn session_refresh(jti: &str, user: &str, family: &str, ttl: i64) -> TokenRecord {
    let now = common::now();
    let mut r = TokenRecord::new(
        jti,
        TokenType::Refresh,
        user,
        Some(family.to_owned()),
        now - 60,
        now + ttl,
    );
    r.session = Some(fastcore_security::SessionMeta {
        started_at: now - 3600,
        user_agent: Some("Mozilla/5.0 (ü; 🙂) user:x tok:* %s \0 end".into()),
        ip: Some("fe80::1%eth0".into()),
    });
    r
}

/// The access token of `user` expiring `ttl` seconds from now.
fn access_for(jti: &str, user: &str, family: Option<&str>, ttl: i64) -> TokenRecord {
    let now = common::now();
    TokenRecord::new(
        jti,
        TokenType::Access,
        user,
        family.map(str::to_owned),
        now - 60,
        now + ttl,
    )
}

fn hget(con: &mut redis::Connection, key: &str, field: &str) -> Option<String> {
    redis::cmd("HGET").arg(key).arg(field).query(con).unwrap()
}

/// A rotation writes the child as an insert would (record, indexes,
/// expiries) and marks the parent consumed; the consumed parent stays in
/// the indexes, so revoking the user still reaches it and a replay then
/// reads as not live.
#[tokio::test]
async fn rotation_writes_the_child_like_an_insert_and_keeps_the_spent_parent_indexed() {
    let Some((store, prefix)) = redis().await else {
        return;
    };
    let p = prefix.prefix().to_owned();
    let now = common::now();
    let grace = RedisTokenStore::RECORD_GRACE_SECS;
    let parent = session_refresh("p:1", "u:%", "f%", 3600);
    let mut child = session_refresh("c:1", "u:%", "f%", 7200);
    child.session.as_mut().unwrap().user_agent = Some(String::new());
    store.insert(&parent).await.unwrap();
    assert_eq!(
        store.rotate("p:1", &child, now).await.unwrap(),
        fastcore_security::Rotation::Rotated
    );

    let mut con = inspect();
    let close_to = |got: i64, want: i64| (want - 5..=want).contains(&got);
    assert!(close_to(
        ttl(&mut con, &format!("{p}tok:c:1")),
        7200 + grace
    ));
    for index in ["user:u:%", "fam:f%", "exp"] {
        let left = ttl(&mut con, &format!("{p}{index}"));
        assert!(close_to(left, 7200 + grace), "{index}: {left}");
    }
    assert_eq!(
        sorted(members(&mut con, &format!("{p}user:u:%"))),
        ["c:1", "p:1"]
    );
    assert_eq!(
        sorted(members(&mut con, &format!("{p}fam:f%"))),
        ["c:1", "p:1"]
    );
    // Without a cut-off, no generation is written.
    assert_eq!(hget(&mut con, &format!("{p}tok:c:1"), "gen"), None);

    // Every field comes back, the empty user agent too.
    assert_eq!(store.get("c:1").await.unwrap(), Some(child.clone()));
    let spent = store.get("p:1").await.unwrap().unwrap();
    assert_eq!(spent.consumed_at, Some(now));
    assert_eq!(spent.replaced_by.as_deref(), Some("c:1"));
    assert_eq!(spent.session, parent.session);
    let live = common::live_jtis(&store, "u:%", now).await;
    assert_eq!(live, ["c:1"]);

    // Revoking the user reaches the spent parent too.
    assert_eq!(store.revoke_user("u:%", None, now).await.unwrap(), 2);
    assert!(!exists(&mut con, &format!("{p}user:u:%")));
    assert!(!exists(&mut con, &format!("{p}fam:f%")));
    assert_eq!(
        store
            .rotate("p:1", &session_refresh("c:2", "u:%", "f%", 60), now)
            .await
            .unwrap(),
        fastcore_security::Rotation::NotLive
    );
    assert!(!exists(&mut con, &format!("{p}tok:c:2")));
}

/// Rotations through separate connections (instances sharing one Redis)
/// still let exactly one win, and only its child is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_rotations_from_several_instances_let_exactly_one_win() {
    let Some((store, prefix)) = redis().await else {
        return;
    };
    let now = common::now();
    store
        .insert(&session_refresh("p", "u", "f", 3600))
        .await
        .unwrap();
    let mut instances = vec![store.clone()];
    for _ in 0..3 {
        instances.push(
            RedisTokenStore::connect_with_prefix(&redis_url(), prefix.prefix())
                .await
                .unwrap(),
        );
    }
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64 {
        let store = instances[i % instances.len()].clone();
        tasks.spawn(async move {
            let child = session_refresh(&format!("c-{i}"), "u", "f", 3600);
            (i, store.rotate("p", &child, now).await.unwrap())
        });
    }
    let results = tasks.join_all().await;
    let winners: Vec<_> = results
        .iter()
        .filter(|(_, r)| *r == fastcore_security::Rotation::Rotated)
        .map(|(i, _)| format!("c-{i}"))
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    let expected = fastcore_security::Rotation::AlreadyConsumed {
        consumed_at: now,
        replaced_by: Some(winners[0].clone()),
    };
    assert!(
        results
            .iter()
            .all(|(_, r)| *r == fastcore_security::Rotation::Rotated || *r == expected),
        "{results:?}"
    );
    let mut con = inspect();
    let p = prefix.prefix();
    let indexed = sorted(vec!["p".to_owned(), winners[0].clone()]);
    assert_eq!(sorted(members(&mut con, &format!("{p}user:u"))), indexed);
    for i in 0..64 {
        let jti = format!("c-{i}");
        assert_eq!(
            exists(&mut con, &format!("{p}tok:{jti}")),
            jti == winners[0]
        );
    }
}

/// The cut-off key lives as long as the tokens it can revoke: at a
/// cut-off, as long as the user's longest-lived unrevoked token; tokens
/// issued later (under the new generation) extend it, shorter ones never
/// shorten it; without tokens it goes after the grace period; with a token
/// that never expires it does not either.
#[tokio::test]
async fn the_cut_off_key_lives_as_long_as_the_tokens_it_can_revoke() {
    let Some((store, prefix)) = redis().await else {
        return;
    };
    let p = prefix.prefix().to_owned();
    let now = common::now();
    let grace = RedisTokenStore::RECORD_GRACE_SECS;
    let close_to = |got: i64, want: i64| (want - 5..=want).contains(&got);
    let mut con = inspect();
    let cut = format!("{p}ucut:u");

    store
        .insert(&access_for("short", "u", None, 100))
        .await
        .unwrap();
    store
        .insert(&session_refresh("long", "u", "f", 5000))
        .await
        .unwrap();
    // A revoked token needs no cut-off key: it does not count.
    let mut revoked = access_for("revoked", "u", None, 50_000);
    revoked.revoked_at = Some(now);
    store.insert(&revoked).await.unwrap();
    assert!(!exists(&mut con, &cut), "no key before the first cut-off");
    store.cut_off_user("u", now).await.unwrap();
    assert!(close_to(ttl(&mut con, &cut), 5000 + grace));
    assert_eq!(hget(&mut con, &cut, "gen").as_deref(), Some("1"));
    assert_eq!(hget(&mut con, &cut, "revoked"), Some(now.to_string()));

    // Issued after the cut-off: the new generation, and the key outlives it.
    store
        .insert(&access_for("later", "u", None, 9000))
        .await
        .unwrap();
    assert_eq!(
        hget(&mut con, &format!("{p}tok:later"), "gen").as_deref(),
        Some("1")
    );
    assert!(close_to(ttl(&mut con, &cut), 9000 + grace));
    store
        .insert(&access_for("brief", "u", None, 10))
        .await
        .unwrap();
    assert!(
        close_to(ttl(&mut con, &cut), 9000 + grace),
        "never shortened"
    );
    // A rotated child inherits the generation and extends the key too.
    store
        .insert(&session_refresh("r", "u", "g", 60))
        .await
        .unwrap();
    assert_eq!(
        store
            .rotate("r", &session_refresh("r2", "u", "g", 20_000), now)
            .await
            .unwrap(),
        fastcore_security::Rotation::Rotated
    );
    assert_eq!(
        hget(&mut con, &format!("{p}tok:r2"), "gen").as_deref(),
        Some("1")
    );
    assert!(close_to(ttl(&mut con, &cut), 20_000 + grace));
    // A second cut-off keeps it as long as that, and revokes them all.
    store.cut_off_user("u", now + 1).await.unwrap();
    assert_eq!(hget(&mut con, &cut, "gen").as_deref(), Some("2"));
    assert!(close_to(ttl(&mut con, &cut), 20_000 + grace));
    for jti in ["short", "long", "later", "brief", "r2"] {
        let record = store.get(jti).await.unwrap().unwrap();
        assert_eq!(record.revoked_at, Some(now + 1), "{jti}");
    }
    assert_eq!(
        store.get("revoked").await.unwrap().unwrap().revoked_at,
        Some(now)
    );

    // A user without tokens: the key goes after the grace period.
    store.cut_off_user("nobody", now).await.unwrap();
    assert!(close_to(ttl(&mut con, &format!("{p}ucut:nobody")), grace));
    // A token that never expires: neither does its user's cut-off.
    store
        .insert(&access_for("forever", "w", None, i64::MAX / 2 - now))
        .await
        .unwrap();
    store.cut_off_user("w", now).await.unwrap();
    assert_eq!(ttl(&mut con, &format!("{p}ucut:w")), -1);
    assert_eq!(
        store.get("forever").await.unwrap().unwrap().revoked_at,
        Some(now)
    );
}

/// Tokens a cut-off revoked are revoked already: revoking them again (by
/// token, session or user) counts nothing and keeps the cut-off's time,
/// and walks take them out of the indexes. They still read as revoked
/// afterwards, and tokens issued after the cut-off are revoked as usual.
#[tokio::test]
async fn tokens_a_cut_off_revoked_keep_its_time_and_leave_the_indexes() {
    let Some((store, prefix)) = redis().await else {
        return;
    };
    let p = prefix.prefix().to_owned();
    let now = common::now();
    let mut con = inspect();
    let user = format!("{p}user:u");
    for r in [
        access_for("a1", "u", Some("A"), 3600),
        session_refresh("a2", "u", "A", 3600),
        access_for("b1", "u", Some("B"), 3600),
        access_for("n1", "u", None, 3600),
        access_for("n2", "u", None, 3600),
    ] {
        store.insert(&r).await.unwrap();
    }
    store.cut_off_user("u", now).await.unwrap();
    store
        .insert(&access_for("after", "u", Some("A"), 3600))
        .await
        .unwrap();

    // A walk drops them from the user's and their sessions' indexes.
    let live = common::live_jtis(&store, "u", now).await;
    assert_eq!(live, ["after"]);
    assert_eq!(members(&mut con, &user), ["after"]);
    assert_eq!(members(&mut con, &format!("{p}fam:A")), ["after"]);
    assert!(!exists(&mut con, &format!("{p}fam:B")));
    // Revoking them again changes and counts nothing.
    assert!(!store.revoke("n1", now + 5).await.unwrap());
    assert_eq!(store.revoke_family("B", now + 5).await.unwrap(), 0);
    assert_eq!(store.revoke_family("A", now + 5).await.unwrap(), 1, "after");
    assert!(!exists(&mut con, &user));
    for jti in ["a1", "a2", "b1", "n1", "n2"] {
        let record = store.get(jti).await.unwrap().unwrap();
        assert_eq!(record.revoked_at, Some(now), "{jti}");
    }
    assert_eq!(
        store.get("after").await.unwrap().unwrap().revoked_at,
        Some(now + 5)
    );
    assert_eq!(store.revoke_user("u", None, now + 6).await.unwrap(), 0);
}

/// User ids that look like key syntax, or like another kind's key, name
/// their own cut-off only.
#[tokio::test]
async fn a_cut_off_names_its_user_only() {
    let Some((store, prefix)) = redis().await else {
        return;
    };
    let now = common::now();
    let ids = ["x", "x*", "*", "x?", "ucut:x", "user:x", "x:y", "", "ü%"];
    for (i, id) in ids.iter().enumerate() {
        store
            .insert(&access_for(&format!("k-{i}"), id, Some(id), 3600))
            .await
            .unwrap();
    }
    store.cut_off_user("x*", now).await.unwrap();
    store.cut_off_user("ucut:x", now).await.unwrap();
    store.cut_off_user("", now).await.unwrap();
    for (i, id) in ids.iter().enumerate() {
        let revoked = store
            .get(&format!("k-{i}"))
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some();
        assert_eq!(revoked, ["x*", "ucut:x", ""].contains(id), "{id:?}");
        assert_eq!(
            store.list_live(id, now).await.unwrap().is_empty(),
            revoked,
            "{id:?}"
        );
    }
    let mut con = inspect();
    assert!(exists(&mut con, &format!("{}ucut:ucut:x", prefix.prefix())));
}

/// The feed's hash of cut-offs (`rev:cut`) does not grow for good: a
/// snapshot leaves out and drops the cut-off of a user whose `ucut:` key
/// has expired (no record is left for it to revoke), and keeps the others.
#[tokio::test]
async fn snapshots_drop_cut_offs_that_have_nothing_left_to_revoke() {
    let Some((store, prefix)) = redis().await else {
        return;
    };
    let p = prefix.prefix().to_owned();
    let now = common::now();
    let mut con = inspect();
    store
        .insert(&access_for("kept-token", "kept", None, 3600))
        .await
        .unwrap();
    store.cut_off_user("kept", now).await.unwrap();
    store.cut_off_user("gone", now).await.unwrap();
    let cuts = format!("{p}rev:cut");
    let in_hash = |con: &mut redis::Connection, user: &str| {
        redis::cmd("HEXISTS")
            .arg(&cuts)
            .arg(user)
            .query::<u64>(con)
            .unwrap()
            == 1
    };
    assert!(in_hash(&mut con, "kept") && in_hash(&mut con, "gone"));
    // What Redis does when the key's time is up (the grace period, for a
    // user without tokens).
    let _: () = redis::cmd("DEL")
        .arg(format!("{p}ucut:gone"))
        .query(&mut con)
        .unwrap();

    let snapshot = store
        .revocation_feed()
        .unwrap()
        .snapshot(now)
        .await
        .unwrap();
    let users: Vec<&str> = snapshot
        .revocations
        .iter()
        .filter_map(|r| match r {
            fastcore_security::Revocation::UserCutOff { user_id, .. } => Some(user_id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(users, ["kept"]);
    assert!(in_hash(&mut con, "kept"));
    assert!(
        !in_hash(&mut con, "gone"),
        "the stale cut-off was not dropped"
    );
    // The kept cut-off still revokes what it revoked.
    assert!(
        store
            .get("kept-token")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
}
