//! What the per-test database and Redis helpers share: the test servers'
//! URLs, fresh names, URL edits, the cleanup run on `Drop`, and the answer
//! when a server does not answer (skip, or fail under `CI`).
//!
//! The library's tests and benchmarks (`databases.rs`, `redis_server.rs`)
//! and the server's tests (`crates/server/tests/common/backends.rs`, by
//! `#[path]`) include this one file.

use std::collections::BTreeSet;
use std::fmt::Display;
use std::io::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// How long a test waits for a server before calling it unreachable.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) const POSTGRES_URL_VAR: &str = "FASTCORE_TEST_POSTGRES_URL";
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
pub(crate) const MYSQL_URL_VAR: &str = "FASTCORE_TEST_MYSQL_URL";
const DEFAULT_MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";
pub(crate) const REDIS_URL_VAR: &str = "FASTCORE_TEST_REDIS_URL";
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/";

/// The PostgreSQL server the tests use (`FASTCORE_TEST_POSTGRES_URL`).
pub(crate) fn postgres_admin_url() -> String {
    std::env::var(POSTGRES_URL_VAR).unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

/// The MySQL/MariaDB server the tests use (`FASTCORE_TEST_MYSQL_URL`).
pub(crate) fn mysql_admin_url() -> String {
    std::env::var(MYSQL_URL_VAR).unwrap_or_else(|_| DEFAULT_MYSQL_URL.to_owned())
}

/// The Redis server the tests use (`FASTCORE_TEST_REDIS_URL`).
pub(crate) fn redis_url() -> String {
    std::env::var(REDIS_URL_VAR).unwrap_or_else(|_| DEFAULT_REDIS_URL.to_owned())
}

/// A name no other test uses: `t_` and 32 hex digits (a valid identifier
/// on both SQL servers, no quoting needed).
pub(crate) fn unique_name() -> String {
    format!("t_{}", uuid::Uuid::new_v4().simple())
}

pub(crate) fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// The answer when a server does not answer: fail under CI, else skip
/// with one line on stderr per suite (written past the test harness's
/// capture, so a plain `cargo test` shows it).
pub(crate) fn skip_or_fail<T>(suite: &'static str, server: &str, why: impl Display) -> Option<T> {
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
pub(crate) fn with_query_param(url: &str, param: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{param}")
}

/// `url` with its path (the database name) replaced by `/database`.
pub(crate) fn with_database(url: &str, database: &str) -> String {
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

/// Runs `cleanup` for at most [`CONNECT_TIMEOUT`], for a `Drop`: Drop is
/// synchronous and may run inside the test's runtime, so the async cleanup
/// runs on a thread of its own, which this waits for.
pub(crate) fn clean_up_now(cleanup: impl Future<Output = ()> + Send + 'static) {
    let worker = std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async move {
            let _ = tokio::time::timeout(CONNECT_TIMEOUT, cleanup).await;
        });
    });
    let _ = worker.join();
}
