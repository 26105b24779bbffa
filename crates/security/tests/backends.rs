//! The PostgreSQL and MySQL/MariaDB stores end to end, beyond the store
//! behaviour suite: `setup_security` with their URLs and the whole token
//! life cycle, several instances on one database, the migrations, an
//! outage and the recovery after it, and a server that is not there.
//!
//! Each test gets its own schema or database (`tests/common/databases.rs`);
//! without a server the tests are skipped, except under `CI`.
#![cfg(any(feature = "postgres", feature = "mysql"))]
// Test helpers may panic: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::config_builder;
use fastcore_security::{
    Error, Security, TokenType, connect_store, get_security_status, setup_security,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// The pools' acquire timeout is 5 s; allow for a slow machine.
const OUTAGE_DEADLINE: Duration = Duration::from_secs(10);

async fn security_on(url: &str) -> Security {
    setup_security(config_builder().database_url(url).build().unwrap())
        .await
        .unwrap_or_else(|e| panic!("setup_security on {url}: {e:?}"))
}

fn assert_unavailable<T>(result: fastcore_security::Result<T>, what: &str) {
    match result {
        Err(Error::StoreUnavailable(_)) => {}
        Err(other) => panic!("{what}: expected StoreUnavailable, got {other:?}"),
        Ok(_) => panic!("{what}: expected StoreUnavailable, got a success"),
    }
}

fn assert_revoked<T>(result: fastcore_security::Result<T>, what: &str) {
    match result {
        Err(Error::RevokedToken) => {}
        Err(other) => panic!("{what}: expected RevokedToken, got {other:?}"),
        Ok(_) => panic!("{what}: expected RevokedToken, got a success"),
    }
}

/// `url` with its scheme replaced (`postgres:` -> `postgresql:`...).
/// An error and its sources, as one line (what an operator would read).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut chain = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        chain.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    chain
}

fn with_scheme(url: &str, scheme: &str) -> String {
    let (_, rest) = url.split_once(':').unwrap();
    format!("{scheme}:{rest}")
}

/// A TCP proxy to a database server that a test can take down (closing
/// every connection through it) and bring back on the same port: a real
/// outage of one test's store, without stopping the shared server.
struct Proxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut proxy = Self {
            addr,
            upstream,
            task: None,
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&mut self, listener: TcpListener) {
        let upstream = self.upstream;
        self.task = Some(tokio::spawn(async move {
            // Aborting this task drops the set, which aborts every
            // connection: the clients see them closed.
            let mut connections = JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        }));
    }

    /// The outage: no listener, no connections.
    async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// The server is back, at the same address.
    async fn restart(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }

    /// `url` (which names `upstream`) pointed at the proxy instead.
    fn url_for(&self, url: &str) -> String {
        let upstream = self.upstream.to_string();
        assert!(url.contains(&upstream), "{url} does not name {upstream}");
        url.replacen(&upstream, &self.addr.to_string(), 1)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Scenarios written once, run on each backend by `backend_tests!`. Each
/// takes the URL of an empty database of its own.
mod scenario {
    use super::*;

    /// A login, a refresh, a logout and a user-wide revocation through
    /// `Security` on a store opened by `setup_security`.
    pub(super) async fn token_life_cycle(url: &str) {
        let security = security_on(url).await;
        let status = get_security_status(Some(&security)).await;
        assert!(status.healthy(), "{status:?}");

        let pair = security.create_token_pair("user-ü-42", None).await.unwrap();
        let access = security
            .validate_token(&pair.access_token, Some(TokenType::Access))
            .await
            .unwrap();
        assert_eq!(access.sub, "user-ü-42");
        security
            .validate_token(&pair.refresh_token, Some(TokenType::Refresh))
            .await
            .unwrap();
        let refreshed = security
            .refresh_access_token(&pair.refresh_token)
            .await
            .unwrap();
        // The login's access token and the rotated pair (the login's
        // refresh token is spent).
        assert_eq!(
            security.list_user_tokens("user-ü-42").await.unwrap().len(),
            3
        );

        assert_eq!(security.logout(&pair.access_token).await.unwrap(), 4);
        assert_revoked(
            security.validate_token(&pair.access_token, None).await,
            "access after logout",
        );
        assert_revoked(
            security.validate_token(&pair.refresh_token, None).await,
            "refresh after logout",
        );
        assert_revoked(
            security.validate_token(&refreshed.access_token, None).await,
            "refreshed access after logout",
        );
        assert!(
            security
                .list_user_tokens("user-ü-42")
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            security.logout(&pair.access_token).await.unwrap(),
            0,
            "idempotent"
        );

        // Log out everywhere but here.
        let here = security.create_token_pair("7", None).await.unwrap();
        let there = security.create_token_pair("7", None).await.unwrap();
        let sid = security
            .validate_token(&here.access_token, None)
            .await
            .unwrap()
            .sid
            .unwrap();
        // One other session (of two tokens).
        assert_eq!(security.revoke_other_sessions("7", &sid).await.unwrap(), 1);
        security
            .validate_token(&here.access_token, None)
            .await
            .unwrap();
        assert_revoked(
            security.validate_token(&there.access_token, None).await,
            "other session",
        );
    }

    /// The scheme's other spelling (`postgresql:`, `mariadb:`) opens the
    /// same database.
    pub(super) async fn alias_scheme_opens_the_same_store(url: &str, alias: &str) {
        let security = security_on(url).await;
        let other = security_on(&with_scheme(url, alias)).await;
        let pair = security.create_token_pair("alias", None).await.unwrap();
        other
            .validate_token(&pair.access_token, Some(TokenType::Access))
            .await
            .unwrap();
    }

    /// Two app instances on one database, started together (their
    /// migrations race and must not fail), see each other's tokens and
    /// revocations at their next request.
    pub(super) async fn instances_share_one_database(url: &str) {
        let (a, b) = tokio::join!(security_on(url), security_on(url));

        let pair = a.create_token_pair("shared", None).await.unwrap();
        b.validate_token(&pair.access_token, Some(TokenType::Access))
            .await
            .unwrap();
        b.revoke_token(&pair.access_token).await.unwrap();
        assert_revoked(
            a.validate_token(&pair.access_token, None).await,
            "revoked on B, used on A",
        );

        let on_b = b.create_token_pair("shared", None).await.unwrap();
        a.validate_token(&on_b.access_token, None).await.unwrap();
        a.revoke_all_user_tokens("shared").await.unwrap();
        assert_revoked(
            b.validate_token(&on_b.refresh_token, None).await,
            "logout-all on A, used on B",
        );
    }

    /// The database goes away and comes back: meanwhile every operation is
    /// `StoreUnavailable` within the acquire timeout (never a hang, never a
    /// token error), and afterwards the same store works again by itself.
    pub(super) async fn outage_and_recovery(url: &str, upstream: SocketAddr) {
        let mut proxy = Proxy::start(upstream).await;
        let store = connect_store(&proxy.url_for(url)).await.unwrap();
        let security = Security::new(common::config(), store).unwrap();
        let pair = security.create_token_pair("outage", None).await.unwrap();
        security
            .validate_token(&pair.access_token, None)
            .await
            .unwrap();

        proxy.stop().await;
        // Requests during the outage, all at once.
        let started = Instant::now();
        let (validated, logged_in, status) = tokio::join!(
            security.validate_token(&pair.access_token, None),
            security.create_token_pair("outage", None),
            get_security_status(Some(&security)),
        );
        assert!(
            started.elapsed() < OUTAGE_DEADLINE,
            "{:?}",
            started.elapsed()
        );
        assert_unavailable(validated, "validate during the outage");
        assert_unavailable(logged_in, "login during the outage");
        assert!(!status.healthy(), "{status:?}");

        proxy.restart().await;
        security
            .validate_token(&pair.access_token, None)
            .await
            .unwrap();
        assert!(get_security_status(Some(&security)).await.healthy());
        assert_eq!(security.logout(&pair.access_token).await.unwrap(), 2);
    }

    /// Nothing listens at `url`: `StoreUnavailable` within the acquire
    /// timeout, from `connect_store` and from `setup_security`.
    pub(super) async fn unreachable_server_is_store_unavailable(url: &str) {
        let config = config_builder().database_url(url).build().unwrap();
        let started = Instant::now();
        let (connected, set_up) = tokio::join!(connect_store(url), setup_security(config));
        assert!(
            started.elapsed() < OUTAGE_DEADLINE,
            "{:?}",
            started.elapsed()
        );
        // The driver's reason reaches the operator, not just "pool timed out".
        if let Err(err) = &connected {
            let chain = super::error_chain(err);
            assert!(
                chain.to_ascii_lowercase().contains("refused"),
                "{url}: {chain}"
            );
        }
        assert_unavailable(connected, url);
        assert_unavailable(set_up, url);
    }
}

/// The address of the server a test URL names.
#[cfg(feature = "postgres")]
fn postgres_server(url: &str) -> SocketAddr {
    use std::str::FromStr;
    let options = sqlx::postgres::PgConnectOptions::from_str(url).unwrap();
    resolve(options.get_host(), options.get_port())
}

#[cfg(feature = "mysql")]
fn mysql_server(url: &str) -> SocketAddr {
    use std::str::FromStr;
    let options = sqlx::mysql::MySqlConnectOptions::from_str(url).unwrap();
    resolve(options.get_host(), options.get_port())
}

fn resolve(host: &str, port: u16) -> SocketAddr {
    use std::net::ToSocketAddrs;
    (host, port).to_socket_addrs().unwrap().next().unwrap()
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use common::databases;
    use fastcore_security::PostgresTokenStore;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn token_life_cycle() {
        let Some(db) = databases::postgres().await else {
            return;
        };
        scenario::token_life_cycle(db.url()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgresql_scheme_opens_the_same_store() {
        let Some(db) = databases::postgres().await else {
            return;
        };
        scenario::alias_scheme_opens_the_same_store(db.url(), "postgresql").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn instances_share_one_database() {
        let Some(db) = databases::postgres().await else {
            return;
        };
        scenario::instances_share_one_database(db.url()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn outage_and_recovery() {
        let Some(db) = databases::postgres().await else {
            return;
        };
        scenario::outage_and_recovery(db.url(), postgres_server(db.url())).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn unreachable_server_is_store_unavailable() {
        scenario::unreachable_server_is_store_unavailable("postgres://postgres@127.0.0.1:1/test")
            .await;
    }

    /// A database that does not exist: the server's reason, without the
    /// line of PostgreSQL's C source it used to end in ("at line 948").
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_missing_database_is_reported_in_the_servers_words() {
        // Only to learn whether a server is there (and skip if not).
        let Some(db) = databases::postgres().await else {
            return;
        };
        let base = db.url().split('?').next().unwrap();
        let (server, _database) = base.rsplit_once('/').unwrap();
        let url = format!("{server}/fastcore_no_such_database");
        let Err(err) = connect_store(&url).await else {
            panic!("connected to a database that does not exist");
        };
        let chain = super::error_chain(&err);
        assert!(
            chain.contains("database \"fastcore_no_such_database\" does not exist (3D000)"),
            "{chain}"
        );
        assert!(!chain.contains(" at line "), "{chain}");
    }

    /// The health check reads the token table: a server that answers but
    /// has lost the table (dropped, an empty database restored in its
    /// place) fails every request, so it is not healthy either.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn health_needs_the_token_table() {
        let Some(db) = databases::postgres().await else {
            return;
        };
        let security = security_on(db.url()).await;
        assert!(get_security_status(Some(&security)).await.healthy());
        let store = PostgresTokenStore::connect(db.url()).await.unwrap();
        sqlx::raw_sql("DROP TABLE fastcore_tokens CASCADE")
            .execute(store.pool())
            .await
            .unwrap();
        let status = get_security_status(Some(&security)).await;
        assert!(!status.healthy(), "{status:?}");
    }

    /// The migrations are recorded in the library's own table (not the
    /// application's `_sqlx_migrations`), once, however often they run;
    /// `from_pool` works on an application's pool.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn migrations_run_once_in_their_own_table() {
        let Some(db) = databases::postgres().await else {
            return;
        };
        let store = PostgresTokenStore::connect(db.url()).await.unwrap();
        store.migrate().await.unwrap();
        let again = PostgresTokenStore::from_pool(store.pool().clone());
        again.migrate().await.unwrap();
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema() ORDER BY table_name",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        assert_eq!(
            tables,
            [
                "_fastcore_security_migrations",
                "fastcore_login_throttle",
                "fastcore_revocation_log",
                "fastcore_revocation_seq",
                "fastcore_tokens",
                "fastcore_user_cutoffs"
            ]
        );
        let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _fastcore_security_migrations")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(applied, 4);
    }
}

#[cfg(feature = "mysql")]
mod mysql {
    use super::*;
    use common::databases;
    use fastcore_security::{MySqlTokenStore, TokenRecord};

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn token_life_cycle() {
        let Some(db) = databases::mysql().await else {
            return;
        };
        scenario::token_life_cycle(db.url()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn mariadb_scheme_opens_the_same_store() {
        let Some(db) = databases::mysql().await else {
            return;
        };
        scenario::alias_scheme_opens_the_same_store(db.url(), "mariadb").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn instances_share_one_database() {
        let Some(db) = databases::mysql().await else {
            return;
        };
        scenario::instances_share_one_database(db.url()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn outage_and_recovery() {
        let Some(db) = databases::mysql().await else {
            return;
        };
        scenario::outage_and_recovery(db.url(), mysql_server(db.url())).await;
    }

    /// The health check reads the token table (see the PostgreSQL test).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn health_needs_the_token_table() {
        let Some(db) = databases::mysql().await else {
            return;
        };
        let security = security_on(db.url()).await;
        assert!(get_security_status(Some(&security)).await.healthy());
        let store = MySqlTokenStore::connect(db.url()).await.unwrap();
        sqlx::raw_sql("SET FOREIGN_KEY_CHECKS = 0; DROP TABLE fastcore_tokens")
            .execute(store.pool())
            .await
            .unwrap();
        let status = get_security_status(Some(&security)).await;
        assert!(!status.healthy(), "{status:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn unreachable_server_is_store_unavailable() {
        tokio::join!(
            scenario::unreachable_server_is_store_unavailable("mysql://root@127.0.0.1:1/test"),
            scenario::unreachable_server_is_store_unavailable("mariadb://root@127.0.0.1:1/test"),
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn migrations_run_once_in_their_own_table() {
        let Some(db) = databases::mysql().await else {
            return;
        };
        let store = MySqlTokenStore::connect(db.url()).await.unwrap();
        store.migrate().await.unwrap();
        let again = MySqlTokenStore::from_pool(store.pool().clone());
        again.migrate().await.unwrap();
        let mut tables: Vec<String> = sqlx::query_scalar(
            "SELECT CAST(table_name AS CHAR) FROM information_schema.tables \
             WHERE table_schema = DATABASE()",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        tables.sort();
        assert_eq!(
            tables,
            [
                "_fastcore_security_migrations",
                "fastcore_login_throttle",
                "fastcore_revocation_log",
                "fastcore_revocation_seq",
                "fastcore_tokens",
                "fastcore_user_cutoffs"
            ]
        );
        let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _fastcore_security_migrations")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(applied, 4);
    }

    /// A value longer than its column is refused, never truncated (which a
    /// server without a strict `sql_mode` would do silently).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn values_longer_than_their_column_are_refused() {
        let Some(db) = databases::mysql().await else {
            return;
        };
        let store = connect_store(db.url()).await.unwrap();
        let record = |jti: String, user_id: String, family_id: Option<String>| {
            TokenRecord::new(jti, TokenType::Access, user_id, family_id, 1, i64::MAX)
        };
        let cases = [
            record("j".repeat(256), "u".into(), None),
            record("a".into(), "é".repeat(513), None),
            record("b".into(), "u".into(), Some("f".repeat(1025))),
        ];
        for case in &cases {
            let err = store.insert(case).await.unwrap_err();
            assert_eq!(err.operation(), "insert");
            assert_eq!(store.get(&case.jti).await.unwrap(), None);
        }
        // The longest values that fit round-trip whole.
        let fits = record("j".repeat(255), "é".repeat(512), Some("f".repeat(1024)));
        store.insert(&fits).await.unwrap();
        assert_eq!(store.get(&fits.jti).await.unwrap(), Some(fits.clone()));
        assert_eq!(store.list_live(&fits.user_id, 2).await.unwrap(), [fits]);
    }
}
