//! The login throttle on Redis: one hash per key under the token store's
//! prefix, `P thr:<key>` with fields `n` (attempts) and `end` (when the
//! window ends), expiring shortly after its window.

use std::sync::LazyLock;

use async_trait::async_trait;
use redis::Script;
use redis::aio::ConnectionManager;

use super::{LoginThrottle, ThrottleKey, ThrottleWindow};
use crate::error::StoreError;

/// How long a key outlives its window in Redis, for instances whose
/// clocks run a little behind the one that started the window.
const EXPIRY_SLACK_SECS: i64 = 60;

/// KEYS: the key's hash. ARGV: now, window, slack.
/// Returns `{attempts, ends_at}`. The logic compares the caller's times,
/// like the SQL stores; Redis's own expiry only drops the key afterwards.
const LUA_HIT: &str = r"
local f = redis.call('HMGET', KEYS[1], 'n', 'end')
local n, e = tonumber(f[1]), tonumber(f[2])
local now, w = tonumber(ARGV[1]), tonumber(ARGV[2])
if n == nil or e == nil or e <= now then
  n = 1
  e = now + w
  redis.call('HSET', KEYS[1], 'n', 1, 'end', ARGV[4])
  redis.call('EXPIRE', KEYS[1], w + tonumber(ARGV[3]))
else
  n = redis.call('HINCRBY', KEYS[1], 'n', 1)
end
return {n, e}
";

/// KEYS: the key's hash. ARGV: the window's end. Takes one attempt back
/// if the window is still that one; deletes the key at zero.
const LUA_UNDO: &str = r"
local f = redis.call('HMGET', KEYS[1], 'n', 'end')
if f[2] ~= ARGV[1] then return 0 end
local n = tonumber(f[1])
if n == nil or n <= 0 then return 0 end
if n == 1 then
  redis.call('DEL', KEYS[1])
else
  redis.call('HINCRBY', KEYS[1], 'n', -1)
end
return 1
";

static HIT: LazyLock<Script> = LazyLock::new(|| Script::new(LUA_HIT));
static UNDO: LazyLock<Script> = LazyLock::new(|| Script::new(LUA_UNDO));

/// Counts in the token store's Redis, under its key prefix, shared by
/// every instance on it.
#[derive(Clone)]
pub(crate) struct RedisLoginThrottle {
    con: ConnectionManager,
    base: Vec<u8>,
}

impl RedisLoginThrottle {
    pub(crate) fn new(con: ConnectionManager, prefix: &str) -> Self {
        Self {
            con,
            base: [prefix.as_bytes(), b"thr:"].concat(),
        }
    }

    /// `P thr:<key>`: the key is a hash (ASCII, no pattern characters).
    fn key(&self, key: &ThrottleKey) -> Vec<u8> {
        [self.base.as_slice(), key.as_str().as_bytes()].concat()
    }
}

#[async_trait]
impl LoginThrottle for RedisLoginThrottle {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn hit(
        &self,
        key: &ThrottleKey,
        window_secs: i64,
        now: i64,
    ) -> Result<ThrottleWindow, StoreError> {
        let (attempts, ends_at): (i64, i64) = HIT
            .key(self.key(key))
            .arg(now)
            .arg(window_secs)
            .arg(EXPIRY_SLACK_SECS)
            // The end as text, written verbatim: a Lua number might come
            // out in exponent form.
            .arg(now.saturating_add(window_secs))
            .invoke_async(&mut self.con.clone())
            .await
            .map_err(|e| StoreError::new("throttle_hit", e))?;
        Ok(ThrottleWindow::from_stored(attempts, ends_at))
    }

    async fn undo(&self, key: &ThrottleKey, window: &ThrottleWindow) -> Result<(), StoreError> {
        let _: i64 = UNDO
            .key(self.key(key))
            .arg(window.ends_at)
            .invoke_async(&mut self.con.clone())
            .await
            .map_err(|e| StoreError::new("throttle_undo", e))?;
        Ok(())
    }

    async fn reset(&self, key: &ThrottleKey) -> Result<(), StoreError> {
        let _: i64 = redis::cmd("DEL")
            .arg(self.key(key))
            .query_async(&mut self.con.clone())
            .await
            .map_err(|e| StoreError::new("throttle_reset", e))?;
        Ok(())
    }

    async fn purge_expired(&self, _now: i64, _batch: u32) -> Result<u64, StoreError> {
        // Every key expires by itself shortly after its window.
        Ok(0)
    }
}
