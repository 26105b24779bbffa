//! Redis backend: records expire with their tokens, so nothing needs purging.
//!
//! Multi-key updates are Lua scripts, never a read in Rust followed by a
//! write, so instances sharing one Redis cannot interleave. The layout and
//! the expiry rules are documented on [`RedisTokenStore`].

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script};

use super::{TokenRecord, TokenStore};
use crate::error::{Error, Result, StoreError};
use crate::tokens::claims::TokenType;

/// Each connection attempt gives up after this long.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);
/// Each command (or script) gives up after this long.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(3);
/// Reconnection attempts per failed request, after the first.
///
/// Kept small so that during an outage a request fails with
/// [`Error::StoreUnavailable`] within a few seconds instead of queueing
/// behind a long backoff; the next request tries again, so the store comes
/// back by itself when Redis does.
const RECONNECT_RETRIES: usize = 1;

/// Lua helpers shared by the scripts that touch the indexes; `GRACE` is
/// defined before them (see [`script_with_index`]).
///
/// The `user:` and `fam:` indexes hold the jtis of tokens that are not
/// revoked, so that revoking a session or a user, and listing live tokens,
/// walk the tokens that are still usable and nothing else: every script
/// that revokes a token takes it out of both, and a revoked record is
/// never added. (`get` reads the record itself, which keeps its `revoked`
/// field until it expires.) Members whose record Redis has dropped, or is
/// about to, are trimmed by the server's clock before each walk, never by
/// a time the caller passes: a caller's clock ahead of the server's must
/// not take live tokens out of the index that revocation walks.
///
/// `TIME` makes a script non-deterministic; Redis 5+ replicates a script's
/// effects rather than its text, and `replicate_commands` asks older
/// servers for the same.
const LUA_INDEX: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
-- Beyond this, EXPIREAT would overflow: such a key does not expire.
local MAX_EXPIREAT = 253402300799
local function server_now()
  local t = redis.call('TIME')
  local s = tonumber(t[1])
  return s, s * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- Expires a key GRACE seconds after `exp`, or never if that is too far.
local function expire_after(key, exp)
  local at = tonumber(exp) + GRACE
  if at > MAX_EXPIREAT then
    redis.call('PERSIST', key)
  else
    redis.call('EXPIREAT', key, string.format('%.0f', at))
  end
end
-- Drops the members whose record Redis has dropped (expired more than
-- GRACE ago, by the server's clock).
local function trim(key, now_s)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. (now_s - GRACE))
end
-- Adds a member, trims those whose record Redis has dropped, and keeps
-- the index as long as its longest-lived record.
local function add_to_index(key, exp, jti, now_s)
  redis.call('ZADD', key, exp, jti)
  trim(key, now_s)
  local top = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  expire_after(key, top[2])
end
-- Takes a revoked token out of the indexes of its record's user and session.
local function unindex(user_base, fam_base, jti, user, family)
  if user then redis.call('ZREM', user_base .. user, jti) end
  if family then redis.call('ZREM', fam_base .. family, jti) end
end
-- Collects members to remove, per index, and removes them in a few calls
-- (one ZREM per index and thousand members, not one per member).
local function removals()
  local by_key, keys = {}, {}
  local self = {}
  function self.add(key, member)
    local list = by_key[key]
    if not list then
      list = {}
      by_key[key] = list
      keys[#keys + 1] = key
    end
    list[#list + 1] = member
  end
  function self.run()
    for _, key in ipairs(keys) do
      local list = by_key[key]
      for i = 1, #list, 1000 do
        redis.call('ZREM', key, unpack(list, i, math.min(i + 999, #list)))
      end
    end
  end
  return self
end
";

/// KEYS: record, user index, expiry index, [family index].
/// ARGV: jti, type, user, iat, exp, revoked_at or '', [family].
/// Returns 0 for a duplicate jti, 1 when stored, 2 when already past its
/// grace period (and so not kept). A record inserted revoked goes into the
/// expiry index only.
const LUA_INSERT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local now_s, now_ms = server_now()
if (tonumber(ARGV[5]) + GRACE) * 1000 <= now_ms then return 2 end
redis.call('HSET', KEYS[1], 'type', ARGV[2], 'user', ARGV[3], 'iat', ARGV[4], 'exp', ARGV[5])
if ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'revoked', ARGV[6]) end
if KEYS[4] then redis.call('HSET', KEYS[1], 'family', ARGV[7]) end
expire_after(KEYS[1], ARGV[5])
add_to_index(KEYS[3], ARGV[5], ARGV[1], now_s)
if ARGV[6] == '' then
  add_to_index(KEYS[2], ARGV[5], ARGV[1], now_s)
  if KEYS[4] then add_to_index(KEYS[4], ARGV[5], ARGV[1], now_s) end
end
return 1
";

/// KEYS: record. ARGV: jti, at, user index prefix, family index prefix.
/// Returns 1 if the record was not revoked before.
/// (HSETNX alone would create a record for an unknown jti.)
const LUA_REVOKE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local changed = redis.call('HSETNX', KEYS[1], 'revoked', ARGV[2])
local f = redis.call('HMGET', KEYS[1], 'user', 'family')
unindex(ARGV[3], ARGV[4], ARGV[1], f[1], f[2])
return changed
";

/// KEYS: family index. ARGV: record key prefix, at, family id, user index
/// prefix. The record's own `family` is checked: an index member may be
/// stale. Every member leaves the index: revoked, already revoked, or stale.
const LUA_REVOKE_FAMILY: &str = r"
local now_s = server_now()
trim(KEYS[1], now_s)
local n, gone = 0, removals()
for _, jti in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local key = ARGV[1] .. jti
  local f = redis.call('HMGET', key, 'user', 'family')
  if f[2] == ARGV[3] then
    n = n + redis.call('HSETNX', key, 'revoked', ARGV[2])
    if f[1] then gone.add(ARGV[4] .. f[1], jti) end
  end
end
gone.run()
redis.call('UNLINK', KEYS[1])
return n
";

/// KEYS: user index. ARGV: record key prefix, at, user id,
/// '1' if a session is kept else '0', the kept session, family index prefix.
/// Only the kept session's unrevoked tokens stay in the index (without a
/// kept session, every member leaves, so the index is deleted whole).
const LUA_REVOKE_USER: &str = r"
local now_s = server_now()
trim(KEYS[1], now_s)
local keep = ARGV[4] == '1'
local n, gone = 0, removals()
for _, jti in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local key = ARGV[1] .. jti
  local f = redis.call('HMGET', key, 'user', 'family', 'revoked')
  if f[1] ~= ARGV[3] then
    -- Stale: the record is gone, or is another user's.
    if keep then gone.add(KEYS[1], jti) end
  elseif not (keep and f[2] == ARGV[5] and not f[3]) then
    n = n + redis.call('HSETNX', key, 'revoked', ARGV[2])
    if keep then gone.add(KEYS[1], jti) end
    if f[2] then gone.add(ARGV[6] .. f[2], jti) end
  end
end
gone.run()
-- Without a kept session every member left: drop the index whole.
if not keep then redis.call('UNLINK', KEYS[1]) end
return n
";

/// KEYS: user index. ARGV: record key prefix, now, user id, family index
/// prefix. Returns `{jti, type, user, family, iat, exp}` per live record,
/// unordered. Walks the members that expire after `now`; on the way it
/// drops stale members and revoked ones (which a store of an earlier
/// version left in the index).
const LUA_LIST_LIVE: &str = r"
local now_s = server_now()
trim(KEYS[1], now_s)
local out = {}
for _, jti in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[2], '+inf')) do
  local f = redis.call('HMGET', ARGV[1] .. jti, 'type', 'user', 'family', 'iat', 'exp', 'revoked')
  if f[2] ~= ARGV[3] then
    redis.call('ZREM', KEYS[1], jti)
  elseif f[6] then
    redis.call('ZREM', KEYS[1], jti)
    if f[3] then redis.call('ZREM', ARGV[4] .. f[3], jti) end
  elseif tonumber(f[5]) > tonumber(ARGV[2]) then
    out[#out + 1] = {jti, f[1], f[2], f[3], f[4], f[5]}
  end
end
return out
";

/// KEYS: expiry index. ARGV: record, user index and family index key
/// prefixes, before, batch, how many index entries to look at at most.
/// Deletes up to `batch` records that expire before `before`; drops the
/// index entries of records Redis has already expired. Returns the number
/// of records deleted.
const LUA_PURGE: &str = r"
local n, batch, before = 0, tonumber(ARGV[5]), tonumber(ARGV[4])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[4], 'LIMIT', 0, ARGV[6])
for _, jti in ipairs(due) do
  if n >= batch then break end
  local key = ARGV[1] .. jti
  local f = redis.call('HMGET', key, 'user', 'family', 'exp')
  if not f[3] then
    redis.call('ZREM', KEYS[1], jti)
  elseif tonumber(f[3]) < before then
    redis.call('DEL', key)
    redis.call('ZREM', KEYS[1], jti)
    redis.call('ZREM', ARGV[2] .. f[1], jti)
    if f[2] then redis.call('ZREM', ARGV[3] .. f[2], jti) end
    n = n + 1
  end
end
return n
";

/// Index entries a purge looks at beyond its batch, to step over entries
/// of records Redis has already expired.
const PURGE_LOOKAHEAD: u64 = 1000;

static INSERT: LazyLock<Script> = LazyLock::new(|| script_with_index(LUA_INSERT));
static REVOKE: LazyLock<Script> = LazyLock::new(|| script_with_index(LUA_REVOKE));
static REVOKE_FAMILY: LazyLock<Script> = LazyLock::new(|| script_with_index(LUA_REVOKE_FAMILY));
static REVOKE_USER: LazyLock<Script> = LazyLock::new(|| script_with_index(LUA_REVOKE_USER));
static LIST_LIVE: LazyLock<Script> = LazyLock::new(|| script_with_index(LUA_LIST_LIVE));
static PURGE: LazyLock<Script> = LazyLock::new(|| Script::new(LUA_PURGE));

/// `body` after the index helpers and the grace period.
fn script_with_index(body: &str) -> Script {
    Script::new(&format!(
        "local GRACE = {}\n{LUA_INDEX}{body}",
        RedisTokenStore::RECORD_GRACE_SECS
    ))
}

/// A [`TokenStore`] on Redis, through one auto-reconnecting multiplexed
/// connection. Cheap to clone.
///
/// ```no_run
/// # async fn demo() -> fastcore_security::Result<()> {
/// use fastcore_security::{RedisTokenStore, TokenStore};
///
/// // Keys start with "fastcore:" by default; give each application its
/// // own prefix to share one Redis between several of them.
/// let store = RedisTokenStore::connect_with_prefix("redis://127.0.0.1:6379/", "billing:").await?;
/// store.ping().await?;
/// # Ok(()) }
/// ```
///
/// # Key layout
///
/// With the prefix `P`:
///
/// | key | type | holds | expires |
/// | --- | --- | --- | --- |
/// | `P tok:<jti>` | hash | `type`, `user`, `family` (if any), `iat`, `exp`, `revoked` (once revoked) | [grace](Self::RECORD_GRACE_SECS) after `exp` |
/// | `P user:<user id>` | sorted set | the jtis of the user's unrevoked tokens, scored by `exp` | with its longest-lived record |
/// | `P fam:<family id>` | sorted set | the jtis of the session's unrevoked tokens, scored by `exp` | with its longest-lived record |
/// | `P exp` | sorted set | every jti, scored by `exp`, for [`purge_expired`](TokenStore::purge_expired) | with its longest-lived record |
///
/// Ids go into key names verbatim: Redis keys are binary safe, the part
/// after the prefix names its kind (`tok:`, `user:`, `fam:`), and no
/// command ever matches a pattern built from an id, so a user id containing
/// `:`, `*`, `?` or `[` names that user only.
///
/// Every update that touches more than one key, or reads before it writes,
/// is one Lua script, so it is atomic. The scripts derive record keys from
/// index members, so the store needs one Redis (a primary, with replicas or
/// Sentinel if you like), not Redis Cluster. Redis 5 or later.
///
/// # Expiry differs from the SQL stores
///
/// A record disappears by itself [`RECORD_GRACE_SECS`](Self::RECORD_GRACE_SECS)
/// (five minutes, the largest leeway a configuration accepts) after its
/// token's `exp`, by the Redis server's clock: a token accepted within the
/// leeway still finds its record, and clocks a little apart do not matter.
/// From then on [`get`](TokenStore::get) returns `None`, and a record
/// inserted already that far past its `exp` is not kept at all. The SQL
/// stores keep expired records until [`purge_expired`](TokenStore::purge_expired)
/// deletes them. Either way an expired token never validates.
///
/// A revoked token leaves the `user:` and `fam:` indexes at once (its record
/// stays, revoked, until it expires), so revoking a session or all of a
/// user's tokens, and listing the live ones, costs as much as the tokens
/// that are still usable, however many were revoked before. Index members
/// of dropped records are trimmed whenever the index is written or walked,
/// and each index key expires with its last record, so a Redis store needs
/// no purge job. `purge_expired` still works as the trait says
/// (it deletes the records that expire before the time it is given, in
/// batches, and cleans their index entries), but since Redis has already
/// dropped every record more than five minutes past its `exp`, a purge at
/// the current time only finds the records of tokens that expired within
/// the last five minutes (0 on a quiet store), and running it changes
/// nothing that matters.
///
/// # Outages
///
/// Each request waits at most a few seconds for Redis (connection and
/// response timeouts, one quick reconnection attempt) and then fails with
/// [`Error::StoreUnavailable`]; the next request reconnects, so the store
/// recovers by itself when Redis is back.
#[derive(Clone)]
pub struct RedisTokenStore {
    con: ConnectionManager,
    keys: KeyLayout,
}

/// The key names, all under one prefix.
#[derive(Clone)]
struct KeyLayout {
    prefix: String,
    record: Vec<u8>,
    user: Vec<u8>,
    family: Vec<u8>,
    expiry: Vec<u8>,
}

impl KeyLayout {
    fn new(prefix: &str) -> Self {
        let with = |kind: &str| [prefix.as_bytes(), kind.as_bytes()].concat();
        Self {
            prefix: prefix.to_owned(),
            record: with("tok:"),
            user: with("user:"),
            family: with("fam:"),
            expiry: with("exp"),
        }
    }

    fn key(base: &[u8], id: &str) -> Vec<u8> {
        [base, id.as_bytes()].concat()
    }

    fn record(&self, jti: &str) -> Vec<u8> {
        Self::key(&self.record, jti)
    }

    fn user(&self, user_id: &str) -> Vec<u8> {
        Self::key(&self.user, user_id)
    }

    fn family(&self, family_id: &str) -> Vec<u8> {
        Self::key(&self.family, family_id)
    }
}

impl fmt::Debug for RedisTokenStore {
    // The connection's own Debug would print the URL, password included.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTokenStore")
            .field("prefix", &self.keys.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisTokenStore {
    /// The key prefix of [`connect`](Self::connect).
    pub const DEFAULT_PREFIX: &str = "fastcore:";

    /// How long Redis keeps a record after its token's `exp`: the largest
    /// leeway [`SecurityConfig`](crate::SecurityConfig) accepts, so a token
    /// still valid within the leeway always finds its record.
    pub const RECORD_GRACE_SECS: i64 = 300;

    /// Connects to `url` (`redis://[user:password@]host[:port][/db]`, or
    /// `rediss://` for TLS) with keys under [`DEFAULT_PREFIX`](Self::DEFAULT_PREFIX).
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with_prefix(url, Self::DEFAULT_PREFIX).await
    }

    /// Connects to `url` with every key starting with `prefix`, so several
    /// applications (or test runs) can share one Redis. End the prefix with
    /// a separator (`myapp:`) so that no prefix is the start of another.
    ///
    /// Fails with [`Error::StoreUnavailable`] if Redis does not answer
    /// within a few seconds. Once connected, the store reconnects by itself
    /// after an outage; requests made while Redis is away fail with
    /// [`Error::StoreUnavailable`] within a few seconds instead of hanging.
    ///
    /// For `rediss://`, rustls with the `ring` provider is used; if the
    /// process has not chosen a default rustls provider, this installs `ring`.
    pub async fn connect_with_prefix(url: &str, prefix: &str) -> Result<Self> {
        let client = Client::open(url)
            .map_err(|e| Error::Config(format!("DATABASE_URL is not a valid Redis URL: {e}")))?;
        if url
            .get(..9)
            .is_some_and(|s| s.eq_ignore_ascii_case("rediss://"))
        {
            ensure_rustls_provider();
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_min_delay(Duration::from_millis(100))
            .set_max_delay(Duration::from_millis(500));
        let con = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(|e| StoreError::new("connect", e))?;
        let store = Self {
            con,
            keys: KeyLayout::new(prefix),
        };
        store.ping().await?;
        Ok(store)
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.keys.prefix
    }
}

/// rustls panics when it has to pick a provider and several are compiled in
/// (another crate may enable aws-lc-rs); settle on `ring` unless the
/// application chose one.
fn ensure_rustls_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing the race to another thread installing one is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// Builds a record from the fields the scripts return
/// (`type, user, family, iat, exp`, then `revoked` for `get`).
fn record_from_fields(jti: &str, f: &[Option<String>]) -> Result<TokenRecord, &'static str> {
    let field = |i: usize| f.get(i).cloned().flatten();
    let int = |i: usize| -> Result<Option<i64>, &'static str> {
        field(i)
            .map(|v| v.parse::<i64>().map_err(|_| "malformed time in record"))
            .transpose()
    };
    Ok(TokenRecord {
        jti: jti.to_owned(),
        token_type: TokenType::from_str(&field(0).ok_or("record without type")?)
            .map_err(|_| "unknown token type in record")?,
        user_id: field(1).ok_or("record without user")?,
        family_id: field(2),
        issued_at: int(3)?.ok_or("record without iat")?,
        expires_at: int(4)?.ok_or("record without exp")?,
        revoked_at: int(5)?,
    })
}

#[async_trait]
impl TokenStore for RedisTokenStore {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn insert(&self, r: &TokenRecord) -> Result<(), StoreError> {
        let mut call = INSERT.prepare_invoke();
        call.key(self.keys.record(&r.jti))
            .key(self.keys.user(&r.user_id))
            .key(&self.keys.expiry)
            .arg(&r.jti)
            .arg(r.token_type.as_str())
            .arg(&r.user_id)
            .arg(r.issued_at)
            .arg(r.expires_at)
            .arg(r.revoked_at.map(|at| at.to_string()).unwrap_or_default());
        if let Some(family) = &r.family_id {
            call.key(self.keys.family(family)).arg(family);
        }
        let outcome: i64 = call
            .invoke_async(&mut self.con.clone())
            .await
            .map_err(|e| StoreError::new("insert", e))?;
        match outcome {
            0 => Err(StoreError::new("insert", "duplicate jti")),
            _ => Ok(()),
        }
    }

    async fn get(&self, jti: &str) -> Result<Option<TokenRecord>, StoreError> {
        let fields: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.keys.record(jti))
            .arg(&["type", "user", "family", "iat", "exp", "revoked"])
            .query_async(&mut self.con.clone())
            .await
            .map_err(|e| StoreError::new("get", e))?;
        if fields.iter().all(Option::is_none) {
            return Ok(None);
        }
        record_from_fields(jti, &fields)
            .map(Some)
            .map_err(|e| StoreError::new("get", e))
    }

    async fn revoke(&self, jti: &str, at: i64) -> Result<bool, StoreError> {
        let changed: i64 = REVOKE
            .key(self.keys.record(jti))
            .arg(jti)
            .arg(at)
            .arg(&self.keys.user)
            .arg(&self.keys.family)
            .invoke_async(&mut self.con.clone())
            .await
            .map_err(|e| StoreError::new("revoke", e))?;
        Ok(changed == 1)
    }

    async fn revoke_family(&self, family_id: &str, at: i64) -> Result<u64, StoreError> {
        REVOKE_FAMILY
            .key(self.keys.family(family_id))
            .arg(&self.keys.record)
            .arg(at)
            .arg(family_id)
            .arg(&self.keys.user)
            .invoke_async(&mut self.con.clone())
            .await
            .map_err(|e| StoreError::new("revoke_family", e))
    }

    async fn revoke_user(
        &self,
        user_id: &str,
        except_family: Option<&str>,
        at: i64,
    ) -> Result<u64, StoreError> {
        REVOKE_USER
            .key(self.keys.user(user_id))
            .arg(&self.keys.record)
            .arg(at)
            .arg(user_id)
            .arg(if except_family.is_some() { "1" } else { "0" })
            .arg(except_family.unwrap_or_default())
            .arg(&self.keys.family)
            .invoke_async(&mut self.con.clone())
            .await
            .map_err(|e| StoreError::new("revoke_user", e))
    }

    async fn list_live(&self, user_id: &str, now: i64) -> Result<Vec<TokenRecord>, StoreError> {
        let rows: Vec<Vec<Option<String>>> = LIST_LIVE
            .key(self.keys.user(user_id))
            .arg(&self.keys.record)
            .arg(now)
            .arg(user_id)
            .arg(&self.keys.family)
            .invoke_async(&mut self.con.clone())
            .await
            .map_err(|e| StoreError::new("list_live", e))?;
        let mut live = rows
            .iter()
            .map(|row| {
                let jti = row.first().cloned().flatten().ok_or("row without jti")?;
                record_from_fields(&jti, &row[1..])
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::new("list_live", e))?;
        live.sort_by(|a, b| (a.issued_at, &a.jti).cmp(&(b.issued_at, &b.jti)));
        Ok(live)
    }

    async fn purge_expired(&self, before: i64, batch: u32) -> Result<u64, StoreError> {
        PURGE
            .key(&self.keys.expiry)
            .arg(&self.keys.record)
            .arg(&self.keys.user)
            .arg(&self.keys.family)
            .arg(before)
            .arg(batch)
            .arg(u64::from(batch) + PURGE_LOOKAHEAD)
            .invoke_async(&mut self.con.clone())
            .await
            .map_err(|e| StoreError::new("purge_expired", e))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let _: String = redis::cmd("PING")
            .query_async(&mut self.con.clone())
            .await
            .map_err(|e| StoreError::new("ping", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_prefix_a_kind_and_the_id_verbatim() {
        let keys = KeyLayout::new("app:");
        assert_eq!(keys.record("j-1"), b"app:tok:j-1");
        assert_eq!(keys.user("a:b*?[c]"), "app:user:a:b*?[c]".as_bytes());
        assert_eq!(keys.family("ü"), "app:fam:ü".as_bytes());
        assert_eq!(keys.expiry, b"app:exp");
        // Another kind's name inside an id stays inside that kind.
        assert_ne!(keys.user("x"), keys.family("x"));
        assert_ne!(keys.user("tok:x"), keys.record("x"));
    }

    #[test]
    fn records_parse_from_script_fields() {
        let some = |s: &str| Some(s.to_owned());
        let fields = [
            some("refresh"),
            some("u"),
            None,
            some("10"),
            some("20"),
            None,
        ];
        let r = record_from_fields("j", &fields).unwrap();
        assert_eq!(r.token_type, TokenType::Refresh);
        assert_eq!((r.family_id, r.issued_at, r.expires_at), (None, 10, 20));
        assert_eq!(r.revoked_at, None);
        let bad = [some("refresh"), some("u"), None, some("x"), some("20")];
        assert!(record_from_fields("j", &bad).is_err());
        assert!(record_from_fields("j", &[None, some("u")]).is_err());
    }
}
