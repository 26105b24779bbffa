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

use super::{Rotation, SessionMeta, TokenRecord, TokenStore};
use crate::error::{Error, Result, StoreError};
use crate::tokens::claims::TokenType;
use crate::tokens::feed::{Revocation, RevocationBatch, RevocationFeed, cursor_of, expiring_after};

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
/// field until it expires.) A consumed refresh token stays in both, since
/// it is not revoked: revoking its session or user still marks it, so that
/// a later replay of it reads as revoked. A token a user-wide cut-off
/// revoked leaves them when a walk comes across it. Members whose record
/// Redis has dropped, or is about to, are trimmed by the server's clock
/// before each walk, never by a time the caller passes: a caller's clock
/// ahead of the server's must not take live tokens out of the index that
/// revocation walks.
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
-- When an existing key expires, in Unix milliseconds: nil if it never
-- does, 0 if there is no such key.
local function expires_ms(key, now_ms)
  local ttl = redis.call('PTTL', key)
  if ttl == -1 then return nil end
  if ttl == -2 then return 0 end
  return now_ms + ttl
end
-- Keeps an existing key until at least GRACE seconds after `exp`; never
-- brings its expiry closer, never creates it.
local function outlive(key, exp, now_ms)
  local until_ms = expires_ms(key, now_ms)
  if until_ms and until_ms > 0 and until_ms < (tonumber(exp) + GRACE) * 1000 then
    expire_after(key, exp)
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

-- A record's fields, in the order `record_from_fields` reads them, then
-- `gen`: the user's cut-off generation the token was issued under (absent
-- for 0), which no reply carries.
local FIELDS = {'type', 'user', 'family', 'iat', 'exp', 'revoked', 'consumed',
  'replaced', 'sstart', 'ua', 'ip', 'gen'}
local F_TYPE, F_USER, F_EXP, F_REVOKED, F_CONSUMED, F_REPLACED, F_GEN =
  1, 2, 5, 6, 7, 8, 12
local function generation(value)
  return tonumber(value or 0) or 0
end
-- A user's cut-off: its generation (0 without one) and when it was made.
local function cutoff(key)
  local c = redis.call('HMGET', key, 'gen', 'revoked')
  return generation(c[1]), c[2]
end
-- A record's fields (FIELDS), or false if there is none. A record issued
-- under an older generation than its user's reads as revoked when the
-- latest cut-off was made, unless it was revoked itself.
local function read(key, cut_base)
  local f = redis.call('HMGET', key, unpack(FIELDS))
  local found = false
  for i = 1, #FIELDS do
    if f[i] then found = true break end
  end
  if not found then return false end
  if not f[F_REVOKED] and f[F_USER] then
    local gen, at = cutoff(cut_base .. f[F_USER])
    if generation(f[F_GEN]) < gen then f[F_REVOKED] = at end
  end
  return f
end
-- Records a token under the cut-off generation `gen`: `fields` are its
-- field/value pairs. Indexes it unless it is revoked, and then keeps its
-- user's cut-off key (if it has one) at least as long as the record, so
-- that the generation the record depends on cannot expire under it.
local function put(k, jti, exp, revoked, fields, gen, now_s, now_ms)
  if gen > 0 then
    fields[#fields + 1] = 'gen'
    fields[#fields + 1] = tostring(gen)
  end
  redis.call('HSET', k.record, unpack(fields))
  expire_after(k.record, exp)
  add_to_index(k.expiry, exp, jti, now_s)
  if not revoked then
    add_to_index(k.user, exp, jti, now_s)
    if k.family then add_to_index(k.family, exp, jti, now_s) end
    if gen > 0 then outlive(k.cut, exp, now_ms) end
  end
end
-- The revocation feed of synced validation (see `tokens::feed`): a script
-- collects what it revoked and, at its end, writes it under one new
-- number, then signals the instances that follow the feed. Under `base`
-- (`P rev:`): `seq` the counter; `log` the change log, a sorted set scored
-- by number whose members are `<n> t <exp> <jti>` (a token revoked) or
-- `<n> c <at> <user>` (a cut-off), keeping the last LOG_KEEP numbers;
-- `tok` the revoked tokens scored by exp, trimmed as they expire; `cut`
-- each user's latest cut-off. The signal goes to `base .. 'signal'`.
local LOG_KEEP = 100000
local function changes(base)
  local self, tokens, cuts = {}, {}, {}
  function self.token(jti, exp)
    tokens[#tokens + 1] = {jti, exp}
  end
  function self.cutoff(user, at)
    cuts[#cuts + 1] = {user, at}
  end
  function self.commit()
    if #tokens == 0 and #cuts == 0 then return end
    local seq = redis.call('INCR', base .. 'seq')
    local now_s = server_now()
    local log, tok = {}, {}
    for _, t in ipairs(tokens) do
      log[#log + 1] = seq
      log[#log + 1] = seq .. ' t ' .. t[2] .. ' ' .. t[1]
      tok[#tok + 1] = t[2]
      tok[#tok + 1] = t[1]
    end
    for _, c in ipairs(cuts) do
      log[#log + 1] = seq
      log[#log + 1] = seq .. ' c ' .. c[2] .. ' ' .. c[1]
      redis.call('HSET', base .. 'cut', c[1], c[2])
    end
    -- Score/member pairs, a thousand values (500 pairs) per call.
    for i = 1, #log, 1000 do
      redis.call('ZADD', base .. 'log', unpack(log, i, math.min(i + 999, #log)))
    end
    for i = 1, #tok, 1000 do
      redis.call('ZADD', base .. 'tok', unpack(tok, i, math.min(i + 999, #tok)))
    end
    redis.call('ZREMRANGEBYSCORE', base .. 'tok', '-inf', '(' .. (now_s - GRACE))
    redis.call('ZREMRANGEBYSCORE', base .. 'log', '-inf', seq - LOG_KEEP)
    redis.call('PUBLISH', base .. 'signal', seq)
  end
  return self
end
";

/// KEYS: record, user index, expiry index, user's cut-off, [family index].
/// ARGV: jti, exp, '1' if revoked else '0', then the record's field/value
/// pairs. Returns 0 for a duplicate jti, 1 when stored, 2 when already
/// past its grace period (and so not kept). A record inserted revoked goes
/// into the expiry index only. The record gets the user's current cut-off
/// generation in the same step, so a cut-off is either before it (and
/// does not touch it) or after it (and revokes it).
const LUA_INSERT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local now_s, now_ms = server_now()
if (tonumber(ARGV[2]) + GRACE) * 1000 <= now_ms then return 2 end
local keys = {record = KEYS[1], user = KEYS[2], expiry = KEYS[3], cut = KEYS[4], family = KEYS[5]}
put(keys, ARGV[1], ARGV[2], ARGV[3] == '1', {unpack(ARGV, 4)}, cutoff(KEYS[4]), now_s, now_ms)
return 1
";

/// KEYS: record. ARGV: cut-off key prefix.
/// Returns the record's fields (as `record_from_fields` reads them) with
/// the user's cut-off folded into `revoked`, or nil.
const LUA_GET: &str = r"
local f = read(KEYS[1], ARGV[1])
if not f then return false end
f[F_GEN] = nil
return f
";

/// KEYS: record. ARGV: jti, at, user index prefix, family index prefix,
/// cut-off key prefix, feed prefix. Returns 1 if the record was not
/// revoked before (by itself or by a cut-off, whose time it keeps).
const LUA_REVOKE: &str = r"
local f = read(KEYS[1], ARGV[5])
if not f then return 0 end
local changed = 0
if not f[F_REVOKED] then
  redis.call('HSET', KEYS[1], 'revoked', ARGV[2])
  changed = 1
  local feed = changes(ARGV[6])
  feed.token(ARGV[1], f[F_EXP])
  feed.commit()
end
unindex(ARGV[3], ARGV[4], ARGV[1], f[F_USER], f[3])
return changed
";

/// KEYS: parent record, child record, child's user index, expiry index,
/// child user's cut-off, [child's family index].
/// ARGV: at, cut-off key prefix, the refresh type's name, child jti, child
/// exp, '1' if the child is revoked else '0', then the child's field/value
/// pairs. Returns `{code, consumed_at, replaced_by}`: code 0 not live, 1
/// already consumed, 2 rotated, 3 the child's jti exists.
///
/// The child inherits the parent's generation (which is its user's
/// current one, or the parent would read as revoked), so a cut-off made
/// after this script revokes it like its parent. A child for another user
/// (not what rotation is for) gets that user's current generation instead.
const LUA_ROTATE: &str = r"
local p = read(KEYS[1], ARGV[2])
if not p or p[F_TYPE] ~= ARGV[3] or p[F_REVOKED] or not p[F_USER]
    or tonumber(p[F_EXP]) <= tonumber(ARGV[1]) then
  return {0, false, false}
end
if p[F_CONSUMED] then return {1, p[F_CONSUMED], p[F_REPLACED]} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {3, false, false} end
redis.call('HSET', KEYS[1], 'consumed', ARGV[1], 'replaced', ARGV[4])
local now_s, now_ms = server_now()
-- Like insert, a child already past its grace period is not kept.
if (tonumber(ARGV[5]) + GRACE) * 1000 > now_ms then
  local gen = generation(p[F_GEN])
  if ARGV[2] .. p[F_USER] ~= KEYS[5] then gen = cutoff(KEYS[5]) end
  local keys = {record = KEYS[2], user = KEYS[3], expiry = KEYS[4], cut = KEYS[5], family = KEYS[6]}
  put(keys, ARGV[4], ARGV[5], ARGV[6] == '1', {unpack(ARGV, 7)}, gen, now_s, now_ms)
end
return {2, false, false}
";

/// KEYS: user's cut-off, user index. ARGV: at, feed prefix, user id.
///
/// One write: the generation goes up, and every record issued under an
/// older one reads as revoked at `at` (see `read`); records issued from
/// now on get the new generation. The key must outlive every record it
/// revokes, or those would come back to life when it expires; it must not
/// live forever either. The records it can revoke that are not revoked by
/// themselves are exactly the members of the user index (every unrevoked
/// record is one), and the index expires with its longest-lived member, so
/// the key expires no earlier than the index does now, nor earlier than it
/// would have anyway (it may already cover records a walk has since taken
/// out of the index). Records issued later under the new generation extend
/// it as they are written (`put`), so it also outlives them: should it
/// expire, no record with a generation above 0 is left and counting starts
/// over at 0 safely. A user with no unrevoked token keeps the key for
/// GRACE seconds only. (The SQL stores keep the row for good; here it is a
/// few bytes per user for as long as their tokens last.)
const LUA_CUT_OFF: &str = r"
local _, now_ms = server_now()
local mine, index = expires_ms(KEYS[1], now_ms), expires_ms(KEYS[2], now_ms)
redis.call('HINCRBY', KEYS[1], 'gen', 1)
redis.call('HSET', KEYS[1], 'revoked', ARGV[1])
if not mine or not index then
  redis.call('PERSIST', KEYS[1])
else
  local until_ms = math.max(mine, index, now_ms + GRACE * 1000)
  redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', until_ms))
end
local feed = changes(ARGV[2])
feed.cutoff(ARGV[3], ARGV[1])
feed.commit()
return 1
";

/// KEYS: family index. ARGV: record key prefix, at, family id, user index
/// prefix, cut-off key prefix, feed prefix. The record's own `family` is checked: an
/// index member may be stale. Every member leaves the index: revoked,
/// already revoked (by itself or by its user's cut-off), or stale.
const LUA_REVOKE_FAMILY: &str = r"
local now_s = server_now()
trim(KEYS[1], now_s)
local n, gone, cuts, feed = 0, removals(), {}, changes(ARGV[6])
for _, jti in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local key = ARGV[1] .. jti
  local f = redis.call('HMGET', key, 'user', 'family', 'revoked', 'gen', 'exp')
  if f[2] == ARGV[3] then
    local revoked = f[3]
    if not revoked and f[1] then
      if not cuts[f[1]] then cuts[f[1]] = cutoff(ARGV[5] .. f[1]) end
      revoked = generation(f[4]) < cuts[f[1]]
    end
    if not revoked then
      redis.call('HSET', key, 'revoked', ARGV[2])
      n = n + 1
      if f[5] then feed.token(jti, f[5]) end
    end
    if f[1] then gone.add(ARGV[4] .. f[1], jti) end
  end
end
gone.run()
feed.commit()
redis.call('UNLINK', KEYS[1])
return n
";

/// KEYS: user index, user's cut-off. ARGV: record key prefix, at, user id,
/// '1' if a session is kept else '0', the kept session, family index
/// prefix, feed prefix.
/// Only the kept session's unrevoked tokens stay in the index (without a
/// kept session, every member leaves, so the index is deleted whole).
/// Tokens the user's cut-off revoked are not revoked again (they keep its
/// time and do not count) but leave the indexes.
const LUA_REVOKE_USER: &str = r"
local now_s = server_now()
trim(KEYS[1], now_s)
local cut = cutoff(KEYS[2])
local keep = ARGV[4] == '1'
local n, gone, feed = 0, removals(), changes(ARGV[7])
for _, jti in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local key = ARGV[1] .. jti
  local f = redis.call('HMGET', key, 'user', 'family', 'revoked', 'gen', 'exp')
  if f[1] ~= ARGV[3] then
    -- Stale: the record is gone, or is another user's.
    if keep then gone.add(KEYS[1], jti) end
  else
    local revoked = f[3] or generation(f[4]) < cut
    if not (keep and f[2] == ARGV[5] and not revoked) then
      if not revoked then
        redis.call('HSET', key, 'revoked', ARGV[2])
        n = n + 1
        if f[5] then feed.token(jti, f[5]) end
      end
      if keep then gone.add(KEYS[1], jti) end
      if f[2] then gone.add(ARGV[6] .. f[2], jti) end
    end
  end
end
gone.run()
feed.commit()
-- Without a kept session every member left: drop the index whole.
if not keep then redis.call('UNLINK', KEYS[1]) end
return n
";

/// KEYS: user index, user's cut-off. ARGV: record key prefix, now, user
/// id, family index prefix. Returns `{jti, fields...}` (as
/// `record_from_fields` reads them) per live record, unordered. Walks the
/// members that expire after `now`; on the way it drops stale members and
/// revoked ones (by the user's cut-off, or by themselves: a store of an
/// earlier version left those in the index). Consumed refresh tokens are
/// not live, but stay in the index for revocations to reach.
const LUA_LIST_LIVE: &str = r"
local now_s = server_now()
trim(KEYS[1], now_s)
local cut = cutoff(KEYS[2])
local out = {}
for _, jti in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[2], '+inf')) do
  local f = redis.call('HMGET', ARGV[1] .. jti, unpack(FIELDS))
  if f[F_USER] ~= ARGV[3] then
    redis.call('ZREM', KEYS[1], jti)
  elseif f[F_REVOKED] or generation(f[F_GEN]) < cut then
    redis.call('ZREM', KEYS[1], jti)
    if f[3] then redis.call('ZREM', ARGV[4] .. f[3], jti) end
  elseif not f[F_CONSUMED] and tonumber(f[F_EXP]) > tonumber(ARGV[2]) then
    out[#out + 1] = {jti, unpack(f, 1, F_GEN - 1)}
  end
end
return out
";

/// KEYS: expiry index. ARGV: record, user index and family index key
/// prefixes, before, batch, how many index entries to look at at most.
/// Deletes up to `batch` records that expire before `before`; drops the
/// index entries of records Redis has already expired. Returns the number
/// of records deleted. (Cut-off keys expire by themselves.)
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

/// KEYS: feed counter, revoked tokens, cut-offs. ARGV: expiring after,
/// cut-off key prefix. Returns `{head, token count, jti, exp, ..., user,
/// at, ...}`, all strings, read at one instant.
///
/// A cut-off whose user's `ucut:` key has expired is left out and dropped:
/// that key outlives every record the cut-off can revoke, so none is left
/// for it to revoke. This keeps the cut-offs hash to the users whose
/// tokens still live, as the `ucut:` keys are.
const LUA_FEED_SNAPSHOT: &str = r"
local out = {redis.call('GET', KEYS[1]) or '0'}
local tok = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[1], '+inf', 'WITHSCORES')
out[2] = tostring(#tok / 2)
for i = 1, #tok do out[#out + 1] = tok[i] end
local cut = redis.call('HGETALL', KEYS[3])
for i = 1, #cut, 2 do
  if redis.call('EXISTS', ARGV[2] .. cut[i]) == 1 then
    out[#out + 1] = cut[i]
    out[#out + 1] = cut[i + 1]
  else
    redis.call('HDEL', KEYS[3], cut[i])
  end
end
return out
";

/// KEYS: feed counter, change log. ARGV: cursor. Returns `{head,
/// entries...}` (strings): the log entries after the cursor up to the head,
/// or `{'-1'}` when the log no longer holds them all (trimmed, or the
/// counter went back: a reset Redis) and the reader must take a snapshot.
const LUA_FEED_CHANGES: &str = r"
local head = tonumber(redis.call('GET', KEYS[1]) or '0')
local cursor = tonumber(ARGV[1])
if head == cursor then return {tostring(head)} end
if head < cursor then return {'-1'} end
local first = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. cursor, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
if #first == 0 or tonumber(first[2]) ~= cursor + 1 then return {'-1'} end
local out = {tostring(head)}
for _, entry in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. cursor, head)) do
  out[#out + 1] = entry
end
return out
";

/// Index entries a purge looks at beyond its batch, to step over entries
/// of records Redis has already expired.
const PURGE_LOOKAHEAD: u64 = 1000;

static INSERT: LazyLock<Script> = LazyLock::new(|| script_with_index(LUA_INSERT));
static GET: LazyLock<Script> = LazyLock::new(|| script_with_index(LUA_GET));
static REVOKE: LazyLock<Script> = LazyLock::new(|| script_with_index(LUA_REVOKE));
static ROTATE: LazyLock<Script> = LazyLock::new(|| script_with_index(LUA_ROTATE));
static CUT_OFF: LazyLock<Script> = LazyLock::new(|| script_with_index(LUA_CUT_OFF));
static REVOKE_FAMILY: LazyLock<Script> = LazyLock::new(|| script_with_index(LUA_REVOKE_FAMILY));
static REVOKE_USER: LazyLock<Script> = LazyLock::new(|| script_with_index(LUA_REVOKE_USER));
static LIST_LIVE: LazyLock<Script> = LazyLock::new(|| script_with_index(LUA_LIST_LIVE));
static PURGE: LazyLock<Script> = LazyLock::new(|| Script::new(LUA_PURGE));
static FEED_SNAPSHOT: LazyLock<Script> = LazyLock::new(|| Script::new(LUA_FEED_SNAPSHOT));
static FEED_CHANGES: LazyLock<Script> = LazyLock::new(|| Script::new(LUA_FEED_CHANGES));

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
/// | `P tok:<jti>` | hash | `type`, `user`, `family` (if any), `iat`, `exp`, `revoked` (once revoked), `consumed` and `replaced` (once rotated), `sstart`, `ua`, `ip` (session metadata, if any), `gen` (the user's cut-off generation at issue, if not 0) | [grace](Self::RECORD_GRACE_SECS) after `exp` |
/// | `P user:<user id>` | sorted set | the jtis of the user's unrevoked tokens, scored by `exp` | with its longest-lived record |
/// | `P fam:<family id>` | sorted set | the jtis of the session's unrevoked tokens, scored by `exp` | with its longest-lived record |
/// | `P exp` | sorted set | every jti, scored by `exp`, for [`purge_expired`](TokenStore::purge_expired) | with its longest-lived record |
/// | `P ucut:<user id>` | hash | `gen` and `revoked`: the user's [cut-off](TokenStore::cut_off_user) generation and when it was last raised | no earlier than every record it revokes (see below) |
/// | `P rev:seq` | string | the number of the latest revocation, for [synced validation](crate::ValidationMode::Synced)'s [feed](crate::RevocationFeed) | never |
/// | `P rev:log` | sorted set | the change log: `<n> t <exp> <jti>` (a token revoked) and `<n> c <at> <user id>` (a cut-off), scored by number | the last 100 000 numbers are kept |
/// | `P rev:tok` | sorted set | revoked jtis scored by `exp`, for the feed's snapshots | members trimmed [grace](Self::RECORD_GRACE_SECS) after `exp` |
/// | `P rev:cut` | hash | user id -> time of the user's latest cut-off, for the snapshots | a field goes at the first feed snapshot after its user's `ucut:` key has expired (no record is left for it to revoke) |
///
/// Ids go into key names verbatim: Redis keys are binary safe, the part
/// after the prefix names its kind (`tok:`, `user:`, `fam:`, `ucut:`), and no
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
/// # Rotation and cut-offs
///
/// [`rotate`](TokenStore::rotate) is one script: it checks the parent,
/// marks it consumed and records the child (indexes and expiry as
/// [`insert`](TokenStore::insert) does), so of concurrent rotations one
/// wins. A consumed refresh token stays in the `user:` and `fam:` indexes
/// until it is revoked or expires, so that revoking its session or user
/// still marks it; [`list_live`](TokenStore::list_live) skips it.
///
/// [`cut_off_user`](TokenStore::cut_off_user) raises the generation in the
/// user's `ucut:` key, one write. Each record keeps the generation it was
/// issued under (a rotation's child, its parent's); every script that
/// reads a record compares the two, so [`get`](TokenStore::get) reports an
/// older record as revoked at the cut-off, in one round trip. The key
/// expires no earlier than the last record it can revoke: at a cut-off it
/// is kept at least as long as the user's index (which outlives every
/// unrevoked record of the user), and each record issued afterwards
/// extends it to its own expiry. So it lives as long as the user's tokens
/// do, and a user who is no longer issued tokens leaves nothing behind but
/// the field of `rev:cut` that the revocation feed reads, until its next
/// snapshot.
/// Tokens a cut-off revoked keep its time: revoking them again (by token,
/// session or user) counts nothing and leaves `revoked_at` as it was, and
/// walks take them out of the indexes.
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
    /// For the revocation feed's pub/sub connection.
    client: Client,
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
    cutoff: Vec<u8>,
    /// The revocation feed's keys start with this (`P rev:`).
    feed: Vec<u8>,
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
            cutoff: with("ucut:"),
            feed: with("rev:"),
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

    fn cutoff(&self, user_id: &str) -> Vec<u8> {
        Self::key(&self.cutoff, user_id)
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
            client,
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

/// The fields the scripts return for a record, in this order (see
/// `FIELDS` in [`LUA_INDEX`]): `type, user, family, iat, exp, revoked,
/// consumed, replaced, sstart, ua, ip`.
fn record_from_fields(jti: &str, f: &[Option<String>]) -> Result<TokenRecord, &'static str> {
    let field = |i: usize| f.get(i).cloned().flatten();
    let int = |i: usize| -> Result<Option<i64>, &'static str> {
        field(i)
            .map(|v| v.parse::<i64>().map_err(|_| "malformed time in record"))
            .transpose()
    };
    let session = int(8)?.map(|started_at| SessionMeta {
        started_at,
        user_agent: field(9),
        ip: field(10),
    });
    Ok(TokenRecord {
        jti: jti.to_owned(),
        token_type: TokenType::from_str(&field(0).ok_or("record without type")?)
            .map_err(|_| "unknown token type in record")?,
        user_id: field(1).ok_or("record without user")?,
        family_id: field(2),
        issued_at: int(3)?.ok_or("record without iat")?,
        expires_at: int(4)?.ok_or("record without exp")?,
        revoked_at: int(5)?,
        consumed_at: int(6)?,
        replaced_by: field(7),
        session,
    })
}

/// The hash fields of a record as `HSET` pairs (the `FIELDS` of
/// [`LUA_INDEX`], but `gen`, which the scripts add). Absent values are
/// left out, not written empty: an empty user agent is a value.
fn record_pairs(r: &TokenRecord) -> Vec<(&'static str, String)> {
    let mut pairs = vec![
        ("type", r.token_type.as_str().to_owned()),
        ("user", r.user_id.clone()),
        ("iat", r.issued_at.to_string()),
        ("exp", r.expires_at.to_string()),
    ];
    let mut optional = |name: &'static str, value: Option<String>| {
        if let Some(value) = value {
            pairs.push((name, value));
        }
    };
    optional("family", r.family_id.clone());
    optional("revoked", r.revoked_at.map(|at| at.to_string()));
    optional("consumed", r.consumed_at.map(|at| at.to_string()));
    optional("replaced", r.replaced_by.clone());
    if let Some(session) = &r.session {
        optional("sstart", Some(session.started_at.to_string()));
        optional("ua", session.user_agent.clone());
        optional("ip", session.ip.clone());
    }
    pairs
}

impl RedisTokenStore {
    /// Adds what [`put`](LUA_INDEX) takes for `r` to a script call: the
    /// record key, the user index, the expiry index and the user's cut-off
    /// key (then the family index, if any) as KEYS; jti, exp, whether it is
    /// revoked and the field pairs as ARGV.
    fn put_args(&self, call: &mut redis::ScriptInvocation<'_>, r: &TokenRecord) {
        call.key(self.keys.record(&r.jti))
            .key(self.keys.user(&r.user_id))
            .key(&self.keys.expiry)
            .key(self.keys.cutoff(&r.user_id));
        if let Some(family) = &r.family_id {
            call.key(self.keys.family(family));
        }
        call.arg(&r.jti)
            .arg(r.expires_at)
            .arg(if r.revoked_at.is_some() { "1" } else { "0" });
        for (name, value) in record_pairs(r) {
            call.arg(name).arg(value);
        }
    }
}

#[async_trait]
impl TokenStore for RedisTokenStore {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn insert(&self, r: &TokenRecord) -> Result<(), StoreError> {
        let mut call = INSERT.prepare_invoke();
        self.put_args(&mut call, r);
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
        let fields: Option<Vec<Option<String>>> = GET
            .key(self.keys.record(jti))
            .arg(&self.keys.cutoff)
            .invoke_async(&mut self.con.clone())
            .await
            .map_err(|e| StoreError::new("get", e))?;
        fields
            .map(|fields| record_from_fields(jti, &fields))
            .transpose()
            .map_err(|e| StoreError::new("get", e))
    }

    async fn revoke(&self, jti: &str, at: i64) -> Result<bool, StoreError> {
        let changed: i64 = REVOKE
            .key(self.keys.record(jti))
            .arg(jti)
            .arg(at)
            .arg(&self.keys.user)
            .arg(&self.keys.family)
            .arg(&self.keys.cutoff)
            .arg(&self.keys.feed)
            .invoke_async(&mut self.con.clone())
            .await
            .map_err(|e| StoreError::new("revoke", e))?;
        Ok(changed == 1)
    }

    async fn rotate(
        &self,
        parent_jti: &str,
        child: &TokenRecord,
        at: i64,
    ) -> Result<Rotation, StoreError> {
        let mut call = ROTATE.prepare_invoke();
        call.key(self.keys.record(parent_jti))
            .arg(at)
            .arg(&self.keys.cutoff)
            .arg(TokenType::Refresh.as_str());
        self.put_args(&mut call, child);
        let (outcome, consumed_at, replaced_by): (i64, Option<i64>, Option<String>) = call
            .invoke_async(&mut self.con.clone())
            .await
            .map_err(|e| StoreError::new("rotate", e))?;
        match (outcome, consumed_at) {
            (0, _) => Ok(Rotation::NotLive),
            (1, Some(consumed_at)) => Ok(Rotation::AlreadyConsumed {
                consumed_at,
                replaced_by,
            }),
            (2, _) => Ok(Rotation::Rotated),
            (3, _) => Err(StoreError::new("rotate", "duplicate jti")),
            _ => Err(StoreError::new(
                "rotate",
                "unexpected answer from the script",
            )),
        }
    }

    async fn cut_off_user(&self, user_id: &str, at: i64) -> Result<(), StoreError> {
        let _: i64 = CUT_OFF
            .key(self.keys.cutoff(user_id))
            .key(self.keys.user(user_id))
            .arg(at)
            .arg(&self.keys.feed)
            .arg(user_id)
            .invoke_async(&mut self.con.clone())
            .await
            .map_err(|e| StoreError::new("cut_off_user", e))?;
        Ok(())
    }

    async fn revoke_family(&self, family_id: &str, at: i64) -> Result<u64, StoreError> {
        REVOKE_FAMILY
            .key(self.keys.family(family_id))
            .arg(&self.keys.record)
            .arg(at)
            .arg(family_id)
            .arg(&self.keys.user)
            .arg(&self.keys.cutoff)
            .arg(&self.keys.feed)
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
            .key(self.keys.cutoff(user_id))
            .arg(&self.keys.record)
            .arg(at)
            .arg(user_id)
            .arg(if except_family.is_some() { "1" } else { "0" })
            .arg(except_family.unwrap_or_default())
            .arg(&self.keys.family)
            .arg(&self.keys.feed)
            .invoke_async(&mut self.con.clone())
            .await
            .map_err(|e| StoreError::new("revoke_user", e))
    }

    async fn list_live(&self, user_id: &str, now: i64) -> Result<Vec<TokenRecord>, StoreError> {
        let rows: Vec<Vec<Option<String>>> = LIST_LIVE
            .key(self.keys.user(user_id))
            .key(self.keys.cutoff(user_id))
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

    fn login_throttle(&self) -> Option<std::sync::Arc<dyn crate::throttle::LoginThrottle>> {
        Some(std::sync::Arc::new(
            crate::throttle::redis::RedisLoginThrottle::new(self.con.clone(), &self.keys.prefix),
        ))
    }

    fn revocation_feed(&self) -> Option<std::sync::Arc<dyn RevocationFeed>> {
        Some(std::sync::Arc::new(RedisFeed {
            con: self.con.clone(),
            client: self.client.clone(),
            feed: self.keys.feed.clone(),
            cutoff: self.keys.cutoff.clone(),
        }))
    }
}

/// The Redis store's revocation feed: the change log the revoking scripts
/// write (see the key layout), read on each pub/sub signal and at every
/// poll.
struct RedisFeed {
    con: ConnectionManager,
    client: Client,
    /// `P rev:`.
    feed: Vec<u8>,
    /// `P ucut:`, the users' cut-off keys.
    cutoff: Vec<u8>,
}

impl RedisFeed {
    fn key(&self, name: &str) -> Vec<u8> {
        [self.feed.as_slice(), name.as_bytes()].concat()
    }
}

/// One entry of the change log (`<n> t <exp> <jti>` or `<n> c <at> <user>`).
fn parse_log_entry(entry: &str) -> Option<Revocation> {
    let mut parts = entry.splitn(4, ' ');
    let _seq = parts.next()?;
    let kind = parts.next()?;
    let number: i64 = parts.next()?.parse().ok()?;
    let id = parts.next()?.to_owned();
    match kind {
        "t" => Some(Revocation::Token {
            jti: id,
            expires_at: number,
        }),
        "c" => Some(Revocation::UserCutOff {
            user_id: id,
            at: number,
        }),
        _ => None,
    }
}

fn parse_number(value: Option<&String>) -> Result<i64, StoreError> {
    value
        .and_then(|v| v.parse::<i64>().ok())
        .ok_or_else(|| StoreError::new("revocation_feed", "unexpected answer from the script"))
}

#[async_trait]
impl RevocationFeed for RedisFeed {
    async fn snapshot(&self, expiring_after: i64) -> Result<RevocationBatch, StoreError> {
        let out: Vec<String> = FEED_SNAPSHOT
            .key(self.key("seq"))
            .key(self.key("tok"))
            .key(self.key("cut"))
            .arg(expiring_after)
            .arg(&self.cutoff)
            .invoke_async(&mut self.con.clone())
            .await
            .map_err(|e| StoreError::new("revocation_snapshot", e))?;
        let head = parse_number(out.first())?;
        let count = usize::try_from(parse_number(out.get(1))?).unwrap_or(0);
        let tokens_end = 2 + 2 * count;
        let tokens = out.get(2..tokens_end).unwrap_or_default();
        let cutoffs = out.get(tokens_end..).unwrap_or_default();
        let mut revocations = Vec::with_capacity(count + cutoffs.len() / 2);
        for pair in tokens.chunks_exact(2) {
            revocations.push(Revocation::Token {
                jti: pair[0].clone(),
                expires_at: parse_number(pair.get(1))?,
            });
        }
        for pair in cutoffs.chunks_exact(2) {
            revocations.push(Revocation::UserCutOff {
                user_id: pair[0].clone(),
                at: parse_number(pair.get(1))?,
            });
        }
        Ok(RevocationBatch {
            cursor: cursor_of(head),
            revocations,
        })
    }

    async fn changes_since(&self, cursor: u64) -> Result<Option<RevocationBatch>, StoreError> {
        let out: Vec<String> = FEED_CHANGES
            .key(self.key("seq"))
            .key(self.key("log"))
            .arg(cursor)
            .invoke_async(&mut self.con.clone())
            .await
            .map_err(|e| StoreError::new("revocation_changes", e))?;
        let head = parse_number(out.first())?;
        if head < 0 {
            return Ok(None);
        }
        let expiring = expiring_after();
        let revocations = out[1..]
            .iter()
            .filter_map(|entry| parse_log_entry(entry))
            .filter(|r| match r {
                Revocation::Token { expires_at, .. } => *expires_at > expiring,
                Revocation::UserCutOff { .. } => true,
            })
            .collect();
        Ok(Some(RevocationBatch {
            cursor: cursor_of(head),
            revocations,
        }))
    }

    async fn subscribe(&self) -> Result<Option<tokio::sync::mpsc::Receiver<()>>, StoreError> {
        let err = |e| StoreError::new("revocation_subscribe", e);
        let mut pubsub = self.client.get_async_pubsub().await.map_err(err)?;
        pubsub.subscribe(self.key("signal")).await.map_err(err)?;
        let mut messages = pubsub.into_on_message();
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            use futures_util::StreamExt;
            loop {
                tokio::select! {
                    message = messages.next() => match message {
                        // Full: a wake-up is pending already.
                        Some(_) => { let _ = tx.try_send(()); }
                        // The connection is gone: dropping `tx` tells the reader.
                        None => return,
                    },
                    () = tx.closed() => return,
                }
            }
        });
        Ok(Some(rx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_log_entries_parse_with_any_id() {
        assert_eq!(
            parse_log_entry("7 t 1700000000 a jti with spaces"),
            Some(Revocation::Token {
                jti: "a jti with spaces".into(),
                expires_at: 1_700_000_000
            })
        );
        assert_eq!(
            parse_log_entry("8 c 1700000001 user:1"),
            Some(Revocation::UserCutOff {
                user_id: "user:1".into(),
                at: 1_700_000_001
            })
        );
        for bad in ["", "1", "1 t", "1 t x y", "1 x 5 id", "1 t 5"] {
            assert_eq!(parse_log_entry(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn keys_are_the_prefix_a_kind_and_the_id_verbatim() {
        let keys = KeyLayout::new("app:");
        assert_eq!(keys.record("j-1"), b"app:tok:j-1");
        assert_eq!(keys.user("a:b*?[c]"), "app:user:a:b*?[c]".as_bytes());
        assert_eq!(keys.family("ü"), "app:fam:ü".as_bytes());
        assert_eq!(keys.expiry, b"app:exp");
        assert_eq!(keys.cutoff("a:%"), b"app:ucut:a:%");
        // Another kind's name inside an id stays inside that kind.
        assert_ne!(keys.user("x"), keys.family("x"));
        assert_ne!(keys.user("tok:x"), keys.record("x"));
        assert_ne!(keys.cutoff("x"), keys.user("x"));
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

    /// What `record_pairs` writes, read back in the scripts' field order,
    /// is the record again; absent values are not written at all.
    #[test]
    fn record_pairs_round_trip_through_the_field_order() {
        const FIELDS: [&str; 11] = [
            "type", "user", "family", "iat", "exp", "revoked", "consumed", "replaced", "sstart",
            "ua", "ip",
        ];
        let read_back = |r: &TokenRecord| {
            let pairs = record_pairs(r);
            let fields: Vec<Option<String>> = FIELDS
                .iter()
                .map(|name| {
                    pairs
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, v)| v.clone())
                })
                .collect();
            record_from_fields(&r.jti, &fields).unwrap()
        };
        let mut r = TokenRecord::new("j:%", TokenType::Refresh, "u:ü", Some("f%".into()), 1, 2);
        assert_eq!(read_back(&r), r);
        assert_eq!(record_pairs(&r).len(), 5);
        r.revoked_at = Some(3);
        r.consumed_at = Some(4);
        r.replaced_by = Some("next".into());
        r.session = Some(SessionMeta {
            started_at: 0,
            user_agent: Some(String::new()),
            ip: None,
        });
        assert_eq!(read_back(&r), r);
        r.session = Some(SessionMeta {
            started_at: -5,
            user_agent: Some("Mozilla/5.0 ü 🙂".into()),
            ip: Some("2001:db8::1".into()),
        });
        assert_eq!(read_back(&r), r);
    }
}
