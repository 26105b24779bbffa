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

use super::servers::{CONNECT_TIMEOUT, clean_up_now, skip_or_fail, unique_name};
#[cfg(feature = "mysql")]
use super::servers::{MYSQL_URL_VAR, mysql_admin_url, with_database};
#[cfg(feature = "postgres")]
use super::servers::{POSTGRES_URL_VAR, postgres_admin_url, with_query_param};

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
        clean_up_now(cleanup.run());
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
