//! A fresh, empty store per test on each backend, so tests run in parallel
//! and can count what they find (the library's test helpers, for the server):
//!
//! - SQLite: a file in a temporary directory (always available);
//! - PostgreSQL: a schema `t_<uuid>` in the database of
//!   `FASTCORE_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`),
//!   reached through a URL whose `search_path` is that schema;
//! - MySQL/MariaDB: a database `t_<uuid>` on the server of
//!   `FASTCORE_TEST_MYSQL_URL` (default `mysql://root@127.0.0.1:3306/test`);
//! - Redis: the key prefix `fctest:<uuid>:` on `FASTCORE_TEST_REDIS_URL`
//!   (default `redis://127.0.0.1:6379/`).
//!
//! Each is dropped with its [`TestStore`] (best effort).
//!
//! When a server cannot be reached, the constructors return `None` and the
//! test passes after one `SKIPPED <suite> suite: ...` line on stderr per
//! test binary, unless the `CI` variable is set: CI must run every suite,
//! so there the test fails.

use std::str::FromStr as _;

use fastcore_security::{TokenRecord, TokenType};
use fastcore_security_server::database::{Database, OpenOptions};
use sqlx::{AssertSqlSafe, Connection as _};

use super::TempDb;
use super::servers::{
    CONNECT_TIMEOUT, MYSQL_URL_VAR, POSTGRES_URL_VAR, REDIS_URL_VAR, clean_up_now, mysql_admin_url,
    postgres_admin_url, redis_url, skip_or_fail, unique_name, with_database, with_query_param,
};

/// The backends, for tests that run on each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
    MySql,
    Redis,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Sqlite, Kind::Postgres, Kind::MySql, Kind::Redis];
}

/// An empty store of its own for one test; dropped with this value.
#[derive(Debug)]
pub struct TestStore {
    pub kind: Kind,
    url: String,
    redis_prefix: Option<String>,
    cleanup: Option<Cleanup>,
    /// The SQLite file's directory, kept as long as the store.
    pub temp: Option<TempDb>,
}

#[derive(Debug)]
enum Cleanup {
    PostgresSchema { admin_url: String, schema: String },
    MySqlDatabase { admin_url: String, database: String },
    RedisPrefix { url: String, prefix: String },
}

impl TestStore {
    /// A store of `kind`, or `None` (skip) if its server cannot be reached
    /// outside CI.
    pub async fn of(kind: Kind) -> Option<Self> {
        match kind {
            Kind::Sqlite => Some(Self::sqlite()),
            Kind::Postgres => Self::postgres().await,
            Kind::MySql => Self::mysql().await,
            Kind::Redis => Self::redis().await,
        }
    }

    /// A SQLite file in a temporary directory.
    pub fn sqlite() -> Self {
        let temp = TempDb::new();
        Self {
            kind: Kind::Sqlite,
            url: temp.url(),
            redis_prefix: None,
            cleanup: None,
            temp: Some(temp),
        }
    }

    /// A fresh schema on the test PostgreSQL server.
    pub async fn postgres() -> Option<Self> {
        use sqlx::postgres::PgConnectOptions;
        let admin_url = postgres_admin_url();
        let options = PgConnectOptions::from_str(&admin_url)
            .unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR} is not a PostgreSQL URL: {e}"));
        let server = format!("{}:{}", options.get_host(), options.get_port());
        let connect = sqlx::PgConnection::connect_with(&options);
        let mut conn = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return skip_or_fail("postgres", &server, e),
            Err(_) => return skip_or_fail("postgres", &server, "timed out"),
        };
        let schema = unique_name();
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("CREATE SCHEMA on {server}: {e}"));
        let _ = conn.close().await;
        Some(Self {
            kind: Kind::Postgres,
            url: with_query_param(&admin_url, &format!("options=-c%20search_path%3D{schema}")),
            redis_prefix: None,
            cleanup: Some(Cleanup::PostgresSchema { admin_url, schema }),
            temp: None,
        })
    }

    /// A fresh database on the test MySQL/MariaDB server.
    pub async fn mysql() -> Option<Self> {
        use sqlx::mysql::MySqlConnectOptions;
        let admin_url = mysql_admin_url();
        let options = MySqlConnectOptions::from_str(&admin_url)
            .unwrap_or_else(|e| panic!("{MYSQL_URL_VAR} is not a MySQL URL: {e}"));
        let server = format!("{}:{}", options.get_host(), options.get_port());
        let connect = sqlx::MySqlConnection::connect_with(&options);
        let mut conn = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return skip_or_fail("mysql", &server, e),
            Err(_) => return skip_or_fail("mysql", &server, "timed out"),
        };
        let database = unique_name();
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {database}")))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE on {server}: {e}"));
        let _ = conn.close().await;
        Some(Self {
            kind: Kind::MySql,
            url: with_database(&admin_url, &database),
            redis_prefix: None,
            cleanup: Some(Cleanup::MySqlDatabase {
                admin_url,
                database,
            }),
            temp: None,
        })
    }

    /// A fresh key prefix on the test Redis.
    pub async fn redis() -> Option<Self> {
        let url = redis_url();
        let client = redis::Client::open(url.as_str())
            .unwrap_or_else(|e| panic!("{REDIS_URL_VAR} is not a Redis URL: {e}"));
        let server = client.get_connection_info().addr().to_string();
        let ping = async {
            let mut con = client.get_multiplexed_async_connection().await?;
            redis::cmd("PING").query_async::<String>(&mut con).await
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, ping).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return skip_or_fail("redis", &server, e),
            Err(_) => return skip_or_fail("redis", &server, "timed out"),
        }
        let prefix = format!("fctest:{}:", uuid::Uuid::new_v4().simple());
        Some(Self {
            kind: Kind::Redis,
            url: url.clone(),
            redis_prefix: Some(prefix.clone()),
            cleanup: Some(Cleanup::RedisPrefix { url, prefix }),
            temp: None,
        })
    }

    /// The database URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The options to open it with (its Redis key prefix).
    pub fn options(&self) -> OpenOptions {
        match &self.redis_prefix {
            Some(prefix) => OpenOptions {
                redis_prefix: prefix.clone(),
            },
            None => OpenOptions::default(),
        }
    }

    /// The command-line arguments naming it: `--database-url URL`, and
    /// `--redis-prefix PREFIX` on Redis.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec!["--database-url".to_owned(), self.url.clone()];
        if let Some(prefix) = &self.redis_prefix {
            args.extend(["--redis-prefix".to_owned(), prefix.clone()]);
        }
        args
    }

    /// Opens (and migrates) it as the server does.
    pub async fn open(&self) -> Database {
        Database::open_with(&self.url, &self.options())
            .await
            .unwrap_or_else(|e| panic!("{:?} opens: {e:#}", self.kind))
    }

    /// A directory for the binary to run in.
    pub fn work_dir(&self) -> std::path::PathBuf {
        match &self.temp {
            Some(temp) => temp.dir.path().to_owned(),
            None => std::env::temp_dir(),
        }
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        let Some(cleanup) = self.cleanup.take() else {
            return;
        };
        clean_up_now(cleanup.run());
    }
}

impl Cleanup {
    async fn run(self) {
        match self {
            Cleanup::PostgresSchema { admin_url, schema } => {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await {
                    let sql = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
                    let _ = sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut conn).await;
                    let _ = conn.close().await;
                }
            }
            Cleanup::MySqlDatabase {
                admin_url,
                database,
            } => {
                if let Ok(mut conn) = sqlx::MySqlConnection::connect(&admin_url).await {
                    let sql = format!("DROP DATABASE IF EXISTS {database}");
                    let _ = sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut conn).await;
                    let _ = conn.close().await;
                }
            }
            Cleanup::RedisPrefix { url, prefix } => {
                let _ = delete_prefix(&url, &prefix).await;
            }
        }
    }
}

/// Every key under `prefix` (SCAN is fine here: the prefix is ours and has
/// no glob characters).
pub async fn redis_keys(url: &str, prefix: &str) -> redis::RedisResult<Vec<Vec<u8>>> {
    let client = redis::Client::open(url)?;
    let mut con = client.get_multiplexed_async_connection().await?;
    let mut keys = Vec::new();
    let mut cursor = 0_u64;
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut con)
            .await?;
        keys.extend(batch);
        if next == 0 {
            return Ok(keys);
        }
        cursor = next;
    }
}

async fn delete_prefix(url: &str, prefix: &str) -> redis::RedisResult<()> {
    let keys = redis_keys(url, prefix).await?;
    if keys.is_empty() {
        return Ok(());
    }
    let client = redis::Client::open(url)?;
    let mut con = client.get_multiplexed_async_connection().await?;
    redis::cmd("DEL").arg(keys).query_async(&mut con).await
}

/// Runs `scenario` on a fresh store of `kind`, unless its server is away
/// (and `CI` is not set).
pub async fn on<F, Fut>(kind: Kind, scenario: F)
where
    F: FnOnce(TestStore) -> Fut,
    Fut: Future<Output = ()>,
{
    if let Some(store) = TestStore::of(kind).await {
        scenario(store).await;
    }
}

/// One test per backend for each scenario: `on_each_backend!(name, ...)`
/// makes a module `name` with the tests `sqlite`, `postgres`, `mysql` and
/// `redis`, each running `scenario::name` (a module at the call site) on a
/// fresh store of its backend.
#[allow(unused_macros)]
macro_rules! on_each_backend {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            use super::*;
            use $crate::common::backends::{Kind, on};

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                on(Kind::Sqlite, scenario::$scenario).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                on(Kind::Postgres, scenario::$scenario).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn mysql() {
                on(Kind::MySql, scenario::$scenario).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn redis() {
                on(Kind::Redis, scenario::$scenario).await;
            }
        }
    )*};
}
#[allow(unused_imports)]
pub(crate) use on_each_backend;

/// An access token record for `user`, issued an hour before it expires at
/// `expires_at`.
pub fn record(jti: &str, user: &str, expires_at: i64) -> TokenRecord {
    TokenRecord {
        jti: jti.to_owned(),
        token_type: TokenType::Access,
        user_id: user.to_owned(),
        family_id: None,
        issued_at: expires_at - 3600,
        expires_at,
        revoked_at: None,
        consumed_at: None,
        replaced_by: None,
        session: None,
    }
}

/// A TCP proxy to a database server that a test can take down (closing
/// every connection through it and refusing new ones) and bring back on the
/// same port: a real outage of one test's store, without stopping the
/// shared server.
pub struct Proxy {
    addr: std::net::SocketAddr,
    upstream: std::net::SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    /// Listens on 127.0.0.1:0 and forwards to `upstream`.
    pub async fn start(upstream: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let mut proxy = Self {
            addr,
            upstream,
            task: None,
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let upstream = self.upstream;
        self.task = Some(tokio::spawn(async move {
            // Aborting this task drops the set, which aborts every
            // connection: the clients see them closed.
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        }));
    }

    /// The outage: the listener is closed (new connections are refused)
    /// and every connection through the proxy is dropped.
    pub async fn down(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// The server is back, at the same address.
    pub async fn up(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .expect("the proxy's port is free again");
        self.serve(listener);
    }

    /// `url` (which names `upstream` by `host:port`) pointed at the proxy.
    pub fn url_for(&self, url: &str) -> String {
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

/// The address of the PostgreSQL server a URL names.
pub fn postgres_server(url: &str) -> std::net::SocketAddr {
    use std::net::ToSocketAddrs as _;
    let options = sqlx::postgres::PgConnectOptions::from_str(url).expect("a PostgreSQL URL");
    (options.get_host(), options.get_port())
        .to_socket_addrs()
        .expect("resolves")
        .next()
        .expect("an address")
}
