//! The built-in users on Redis, under the same key prefix as the library's
//! token records. With the prefix `P`:
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `P users:id:<id>` | hash | `username`, `username_key`, `password_hash`, `is_active` (`1`/`0`), `created_at` (RFC 3339 UTC) |
//! | `P users:name:<username key>` | string | the id of the user with that [`username_key`](super::username_key) |
//! | `P users:all` | sorted set | every id, scored by creation time (Unix seconds) |
//!
//! None of them expires. They cannot collide with the token store's keys
//! (`P tok:`, `P user:`, `P fam:`, `P exp`): after the prefix those start
//! with a different kind name. A create is one Lua script that claims the
//! name key only if it is free, so two instances creating one name at once
//! make one user; the other updates are scripts too, so a user's hash is
//! never written for an id that does not exist.

use std::collections::HashMap;
use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script};

use super::{Inserted, NewUser, User, unavailable};
use crate::clock;

/// The token store's connection settings: a request during an outage fails
/// within a few seconds, and the next one reconnects.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(3);
const RECONNECT_RETRIES: usize = 1;

/// KEYS: name key, user key, all-users set.
/// ARGV: id, username, username key, password hash, created_at, created (Unix s).
/// Returns 1 when created, 0 when the name is taken, 2 when the id is.
const LUA_CREATE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 2 end
redis.call('HSET', KEYS[2], 'username', ARGV[2], 'username_key', ARGV[3],
           'password_hash', ARGV[4], 'is_active', '1', 'created_at', ARGV[5])
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[6], ARGV[1])
return 1
";

/// KEYS: name key. ARGV: user key prefix, '1' or '0'.
/// Returns 1 if a user had that name, else 0.
const LUA_SET_ACTIVE: &str = r"
local id = redis.call('GET', KEYS[1])
if not id then return 0 end
local key = ARGV[1] .. id
if redis.call('EXISTS', key) == 0 then return 0 end
redis.call('HSET', key, 'is_active', ARGV[2])
return 1
";

/// KEYS: user key. ARGV: the new hash. Returns 1 if the user exists.
const LUA_SET_HASH: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'password_hash', ARGV[1])
return 1
";

static CREATE: LazyLock<Script> = LazyLock::new(|| Script::new(LUA_CREATE));
static SET_ACTIVE: LazyLock<Script> = LazyLock::new(|| Script::new(LUA_SET_ACTIVE));
static SET_HASH: LazyLock<Script> = LazyLock::new(|| Script::new(LUA_SET_HASH));

/// The users on one Redis, under one key prefix. Cheap to clone.
#[derive(Clone)]
pub struct RedisUsers {
    con: ConnectionManager,
    prefix: String,
    user: Vec<u8>,
    name: Vec<u8>,
    all: Vec<u8>,
}

impl fmt::Debug for RedisUsers {
    // The connection's own Debug would print the URL, password included.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisUsers")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisUsers {
    /// Connects to `url` (the token store's URL; connect the token store
    /// first, which sets up TLS for `rediss://`) with keys under `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> fastcore_security::Result<Self> {
        let client = Client::open(url).map_err(|e| {
            fastcore_security::Error::Config(format!("DATABASE_URL is not a valid Redis URL: {e}"))
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_min_delay(Duration::from_millis(100))
            .set_max_delay(Duration::from_millis(500));
        let con = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(unavailable("users.connect"))?;
        let with = |kind: &str| [prefix.as_bytes(), kind.as_bytes()].concat();
        Ok(Self {
            con,
            prefix: prefix.to_owned(),
            user: with("users:id:"),
            name: with("users:name:"),
            all: with("users:all"),
        })
    }

    fn user_key(&self, id: &str) -> Vec<u8> {
        [self.user.as_slice(), id.as_bytes()].concat()
    }

    fn name_key(&self, key: &str) -> Vec<u8> {
        [self.name.as_slice(), key.as_bytes()].concat()
    }

    pub(super) async fn insert(&self, new: &NewUser<'_>) -> fastcore_security::Result<Inserted> {
        let now = clock::now();
        let outcome: i64 = CREATE
            .key(self.name_key(new.username_key))
            .key(self.user_key(&new.id))
            .key(&self.all)
            .arg(&new.id)
            .arg(new.username)
            .arg(new.username_key)
            .arg(new.password_hash)
            .arg(clock::format_utc(now))
            .arg(now)
            .invoke_async(&mut self.con.clone())
            .await
            .map_err(unavailable("users.create"))?;
        match outcome {
            1 => Ok(Inserted::Created),
            0 => Ok(Inserted::Taken),
            _ => Err(unavailable("users.create")("a user with the new id exists")),
        }
    }

    pub(super) async fn find_by_id(&self, id: &str) -> fastcore_security::Result<Option<User>> {
        let fields: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.user_key(id))
            .query_async(&mut self.con.clone())
            .await
            .map_err(unavailable("users.find_by_id"))?;
        if fields.is_empty() {
            return Ok(None);
        }
        user_from_fields(id, fields)
            .map(Some)
            .map_err(unavailable("users.find_by_id"))
    }

    pub(super) async fn find_by_key(&self, key: &str) -> fastcore_security::Result<Option<User>> {
        let id: Option<String> = redis::cmd("GET")
            .arg(self.name_key(key))
            .query_async(&mut self.con.clone())
            .await
            .map_err(unavailable("users.find_by_username"))?;
        match id {
            Some(id) => self.find_by_id(&id).await,
            None => Ok(None),
        }
    }

    pub(super) async fn list(&self) -> fastcore_security::Result<Vec<User>> {
        let mut con = self.con.clone();
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(&self.all)
            .arg(0)
            .arg(-1)
            .query_async(&mut con)
            .await
            .map_err(unavailable("users.list"))?;
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.cmd("HGETALL").arg(self.user_key(id));
        }
        let all: Vec<HashMap<String, String>> = pipe
            .query_async(&mut con)
            .await
            .map_err(unavailable("users.list"))?;
        let mut users = ids
            .iter()
            .zip(all)
            .filter(|(_, fields)| !fields.is_empty())
            .map(|(id, fields)| user_from_fields(id, fields))
            .collect::<Result<Vec<_>, _>>()
            .map_err(unavailable("users.list"))?;
        users.sort_by(|a, b| (&a.created_at, &a.username).cmp(&(&b.created_at, &b.username)));
        Ok(users)
    }

    pub(super) async fn count(&self) -> fastcore_security::Result<i64> {
        redis::cmd("ZCARD")
            .arg(&self.all)
            .query_async(&mut self.con.clone())
            .await
            .map_err(unavailable("users.count"))
    }

    pub(super) async fn set_active(
        &self,
        key: &str,
        active: bool,
    ) -> fastcore_security::Result<()> {
        let _: i64 = SET_ACTIVE
            .key(self.name_key(key))
            .arg(&self.user)
            .arg(if active { "1" } else { "0" })
            .invoke_async(&mut self.con.clone())
            .await
            .map_err(unavailable("users.set_active"))?;
        Ok(())
    }

    pub(super) async fn set_password_hash(
        &self,
        id: &str,
        hash: &str,
    ) -> fastcore_security::Result<()> {
        let _: i64 = SET_HASH
            .key(self.user_key(id))
            .arg(hash)
            .invoke_async(&mut self.con.clone())
            .await
            .map_err(unavailable("users.set_password_hash"))?;
        Ok(())
    }
}

fn user_from_fields(id: &str, mut fields: HashMap<String, String>) -> Result<User, String> {
    let mut take = |name: &str| {
        fields
            .remove(name)
            .ok_or_else(|| format!("user record without {name}"))
    };
    Ok(User {
        id: id.to_owned(),
        username: take("username")?,
        is_active: take("is_active")? != "0",
        created_at: take("created_at")?,
        password_hash: take("password_hash")?,
    })
}
