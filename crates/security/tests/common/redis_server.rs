//! A key prefix of its own per test on the local Redis
//! (`FASTCORE_TEST_REDIS_URL`, default `redis://127.0.0.1:6379/`), so tests
//! run in parallel and can count what they find. The keys under the prefix
//! are deleted when the [`TestPrefix`] is dropped (best effort).
//!
//! When Redis cannot be reached, [`redis`] returns `None` and the test
//! passes after one `SKIPPED redis suite: ...` line on stderr per test
//! binary, unless the `CI` variable is set: CI must run every suite, so
//! there the test fails.
#![cfg(feature = "redis")]

use std::time::Duration;

use fastcore_security::RedisTokenStore;

pub(crate) use super::servers::{REDIS_URL_VAR, redis_url};

/// `host:port` of `url`, for messages (never the password).
pub(crate) fn server_of(url: &str) -> String {
    redis::Client::open(url)
        .map(|c| c.get_connection_info().addr().to_string())
        .unwrap_or_else(|e| panic!("{REDIS_URL_VAR} is not a Redis URL: {e}"))
}

/// Keys under a prefix no other test uses, deleted on drop.
#[derive(Debug)]
pub(crate) struct TestPrefix {
    url: String,
    prefix: String,
}

impl TestPrefix {
    /// A fresh prefix on the server of `url`: `fctest:<uuid>:`.
    pub(crate) fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            prefix: format!("fctest:{}:", uuid::Uuid::new_v4().simple()),
        }
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Every key under the prefix (SCAN is fine here: the prefix is ours
    /// and has no glob characters).
    pub(crate) fn keys(&self) -> redis::RedisResult<Vec<Vec<u8>>> {
        let client = redis::Client::open(self.url.as_str())?;
        let mut con = client.get_connection_with_timeout(Duration::from_secs(2))?;
        con.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut keys = Vec::new();
        let mut cursor = 0_u64;
        loop {
            let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}*", self.prefix))
                .arg("COUNT")
                .arg(1000)
                .query(&mut con)?;
            keys.extend(batch);
            if next == 0 {
                return Ok(keys);
            }
            cursor = next;
        }
    }

    fn delete_all(&self) -> redis::RedisResult<()> {
        let keys = self.keys()?;
        if keys.is_empty() {
            return Ok(());
        }
        let client = redis::Client::open(self.url.as_str())?;
        let mut con = client.get_connection_with_timeout(Duration::from_secs(2))?;
        con.set_read_timeout(Some(Duration::from_secs(2)))?;
        redis::cmd("DEL").arg(keys).query(&mut con)
    }
}

impl Drop for TestPrefix {
    fn drop(&mut self) {
        // A blocking client: Drop is synchronous, and this is a test.
        let _ = self.delete_all();
    }
}

/// The answer when Redis does not answer: fail under CI, else skip with
/// one line on stderr (past the harness's capture, so `cargo test` shows it).
pub(crate) fn skip_or_fail<T>(server: &str, why: impl std::fmt::Display) -> Option<T> {
    super::servers::skip_or_fail("redis", server, why)
}

/// A store on the test Redis under a fresh prefix, and the guard that
/// deletes its keys; `None` (skip) if Redis cannot be reached outside CI.
pub(crate) async fn redis() -> Option<(RedisTokenStore, TestPrefix)> {
    let url = redis_url();
    let prefix = TestPrefix::new(&url);
    match RedisTokenStore::connect_with_prefix(&url, prefix.prefix()).await {
        Ok(store) => Some((store, prefix)),
        Err(e) => {
            // The driver's words: below our `StoreUnavailable` and `StoreError`.
            let driver = std::error::Error::source(&e).and_then(std::error::Error::source);
            let why = driver.map_or_else(|| e.to_string(), source_chain);
            skip_or_fail(&server_of(&url), why)
        }
    }
}

/// An error and its causes, `: `-separated, without repeats.
pub(crate) fn source_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut last = text.clone();
    let mut next = e.source();
    while let Some(cause) = next {
        let line = cause.to_string();
        if line != last {
            text.push_str(": ");
            text.push_str(&line);
        }
        last = line;
        next = cause.source();
    }
    text
}
