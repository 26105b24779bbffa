//! A fresh, empty database per test on the local PostgreSQL and MariaDB
//! servers, so tests run in parallel and can count what they find.
//!
//! - PostgreSQL: a schema `t_<uuid>` in the database of
//!   `FASTCORE_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`),
//!   reached through a URL whose `search_path` is that schema.
//! - MySQL/MariaDB: a database `t_<uuid>` on the server of
//!   `FASTCORE_TEST_MYSQL_URL` (default `mysql://root@127.0.0.1:3306/test`).
//!
//! Both are dropped when the [`TestDatabase`] is (best effort).
//!
//! When the server cannot be reached, the constructors return `None` and
//! the test passes after one `SKIPPED <suite> suite: ...` line on stderr per
//! test binary, unless the `CI` variable is set: CI must run every suite,
//! so there the test fails.
#![cfg(any(feature = "postgres", feature = "mysql"))]

use std::collections::BTreeSet;
use std::fmt::Display;
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

/// How long a test waits for the server before calling it unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// An empty database for one test; dropped with this value.
#[derive(Debug)]
pub(crate) struct TestDatabase {
    url: String,
    cleanup: Option<Cleanup>,
}

#[derive(Debug)]
enum Cleanup {
    #[cfg(feature = "postgres")]
    PostgresSchema { admin_url: String, schema: String },
    #[cfg(feature = "mysql")]
    MySqlDatabase { admin_url: String, database: String },
}

impl TestDatabase {
    /// The URL of the fresh database, for `connect_store` and friends.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(cleanup) = self.cleanup.take() else {
            return;
        };
        // Drop is synchronous and may run inside the test's runtime: do the
        // async cleanup on a thread of its own, and wait for it.
        let worker = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let _ = tokio::time::timeout(CONNECT_TIMEOUT, cleanup.run()).await;
            });
        });
        let _ = worker.join();
    }
}

impl Cleanup {
    async fn run(self) {
        use sqlx::{AssertSqlSafe, Connection};
        match self {
            #[cfg(feature = "postgres")]
            Cleanup::PostgresSchema { admin_url, schema } => {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await {
                    let sql = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
                    let _ = sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut conn).await;
                    let _ = conn.close().await;
                }
            }
            #[cfg(feature = "mysql")]
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
        }
    }
}

/// A name no other test uses: `t_` and 32 hex digits (a valid identifier
/// on both servers, no quoting needed).
fn unique_name() -> String {
    format!("t_{}", uuid::Uuid::new_v4().simple())
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// The answer when the server does not answer: fail under CI, else skip
/// with one line on stderr (written past the test harness's capture, so a
/// plain `cargo test` shows it).
fn skip_or_fail(suite: &'static str, server: &str, why: impl Display) -> Option<TestDatabase> {
    if in_ci() {
        panic!("{suite} suite cannot run: cannot reach {server} ({why}); CI is set, so it must");
    }
    static REPORTED: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let first = REPORTED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(suite);
    if first {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {suite} suite: cannot reach {server} ({why})"
        );
    }
    None
}

/// Appends `key=value` to the query string of `url`.
fn with_query_param(url: &str, param: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{param}")
}

/// `url` with its path (the database name) replaced by `/database`.
fn with_database(url: &str, database: &str) -> String {
    let (main, query) = match url.split_once('?') {
        Some((main, query)) => (main, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_start = main.find("://").map_or(0, |i| i + 3);
    let base = match main[authority_start..].find('/') {
        Some(i) => &main[..authority_start + i],
        None => main,
    };
    format!("{base}/{database}{query}")
}

#[cfg(feature = "postgres")]
pub(crate) const POSTGRES_URL_VAR: &str = "FASTCORE_TEST_POSTGRES_URL";
#[cfg(feature = "postgres")]
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The PostgreSQL server the tests use (`FASTCORE_TEST_POSTGRES_URL`).
#[cfg(feature = "postgres")]
pub(crate) fn postgres_admin_url() -> String {
    std::env::var(POSTGRES_URL_VAR).unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

/// A fresh schema on the test PostgreSQL server, or `None` (skip) if the
/// server cannot be reached outside CI.
#[cfg(feature = "postgres")]
pub(crate) async fn postgres() -> Option<TestDatabase> {
    use std::str::FromStr;

    use sqlx::postgres::PgConnectOptions;
    use sqlx::{AssertSqlSafe, Connection};

    let admin_url = postgres_admin_url();
    let options = PgConnectOptions::from_str(&admin_url)
        .unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR} is not a PostgreSQL URL: {e}"));
    let server = format!("{}:{}", options.get_host(), options.get_port());
    let mut conn =
        match tokio::time::timeout(CONNECT_TIMEOUT, sqlx::PgConnection::connect_with(&options))
            .await
        {
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
    Some(TestDatabase {
        url: with_query_param(&admin_url, &format!("options=-c%20search_path%3D{schema}")),
        cleanup: Some(Cleanup::PostgresSchema { admin_url, schema }),
    })
}

#[cfg(feature = "mysql")]
pub(crate) const MYSQL_URL_VAR: &str = "FASTCORE_TEST_MYSQL_URL";
#[cfg(feature = "mysql")]
const DEFAULT_MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";

/// The MySQL/MariaDB server the tests use (`FASTCORE_TEST_MYSQL_URL`).
#[cfg(feature = "mysql")]
pub(crate) fn mysql_admin_url() -> String {
    std::env::var(MYSQL_URL_VAR).unwrap_or_else(|_| DEFAULT_MYSQL_URL.to_owned())
}

/// A fresh database on the test MySQL/MariaDB server, or `None` (skip) if
/// the server cannot be reached outside CI.
#[cfg(feature = "mysql")]
pub(crate) async fn mysql() -> Option<TestDatabase> {
    use std::str::FromStr;

    use sqlx::mysql::MySqlConnectOptions;
    use sqlx::{AssertSqlSafe, Connection};

    let admin_url = mysql_admin_url();
    let options = MySqlConnectOptions::from_str(&admin_url)
        .unwrap_or_else(|e| panic!("{MYSQL_URL_VAR} is not a MySQL URL: {e}"));
    let server = format!("{}:{}", options.get_host(), options.get_port());
    let mut conn = match tokio::time::timeout(
        CONNECT_TIMEOUT,
        sqlx::MySqlConnection::connect_with(&options),
    )
    .await
    {
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
    Some(TestDatabase {
        url: with_database(&admin_url, &database),
        cleanup: Some(Cleanup::MySqlDatabase {
            admin_url,
            database,
        }),
    })
}
