//! Configuration: a typed builder, and `from_env` with the seed's variable names.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `JWT_SECRET_KEY` | HMAC secret (at least 32/48/64 bytes for HS256/384/512) | none: required unless `JWT_KEYS_FILE` is set |
//! | `JWT_ALGORITHM` | `HS256`, `HS384` or `HS512` (for `JWT_SECRET_KEY`) | `HS256` |
//! | `JWT_KEYS_FILE` | a key file: several keys with a `kid` each, RSA/EC/Ed25519 or HMAC, for rotation and JWKS (format: [`KeyFile`](crate::KeyFile)); replaces `JWT_SECRET_KEY` and `JWT_ALGORITHM` | none |
//! | `JWT_ACCESS_TOKEN_EXPIRE_MINUTES` | access token lifetime | 30 |
//! | `JWT_REFRESH_TOKEN_EXPIRE_DAYS` | refresh token lifetime | 7 |
//! | `JWT_AUDIENCE` | `aud` written into new tokens | none |
//! | `JWT_ISSUER` | `iss` written into new tokens and required on incoming ones | none |
//! | `JWT_ALLOWED_AUDIENCES` | comma-separated `aud` values accepted (defaults to `JWT_AUDIENCE`) | none |
//! | `JWT_LEEWAY_SECONDS` | clock skew allowed on `exp`/`nbf` | 5 |
//! | `JWT_REFRESH_REUSE_GRACE_SECONDS` | a rotated refresh token presented again within this many seconds is a concurrent refresh, not reuse (0 disables) | 5 |
//! | `JWT_SESSION_MAX_LIFETIME_DAYS` | a session ends this long after login however often it is refreshed | 30 |
//! | `DATABASE_URL` | token store (`sqlite://path.db`, `sqlite::memory:`, `memory:`) | none |
//! | `LOGIN_MAX_FAILURES_PER_ACCOUNT` | failed logins one account may have per throttle window before further attempts get 429 (0 disables) | 5 |
//! | `LOGIN_MAX_FAILURES_PER_ADDRESS` | failed logins one client address (an IPv6 /64) may have per throttle window, over all accounts (0 disables) | 20 |
//! | `LOGIN_THROTTLE_WINDOW_SECONDS` | the throttle window, from the first counted attempt (1 to 86400) | 900 |
//! | `LOGIN_THROTTLE_SECRET` | the secret the throttle's keys of usernames and addresses are keyed with (at least 32 bytes; the same on every instance) | derived from `JWT_SECRET_KEY`; none with `JWT_KEYS_FILE` |
//! | `JWT_VALIDATION_MODE` | `strict` (a store read per request) or `synced` (an in-memory revocation view kept current by the store's change feed; see [`ValidationMode`]) | `strict` |
//! | `JWT_SYNC_INTERVAL_MS` | synced mode: how often the change feed is polled (or, with PostgreSQL and Redis, checked besides its signals), 10 to 60000 | 250 |
//! | `LOGIN_FAILURE_FLOOR_MS` | the least time a failed login takes, in milliseconds, so that failures of every kind take the same time (0 to 10000; 0 disables) | 500 |
//! | `PASSWORD_ARGON2_MEMORY_KIB` | argon2id memory of new password hashes, in KiB (19456 to 262144) | 19456 |
//! | `PASSWORD_ARGON2_ITERATIONS` | argon2id passes (2 to 16) | 2 |
//! | `PASSWORD_ARGON2_PARALLELISM` | argon2id lanes (1 to 16) | 1 |
//! | `PASSWORD_MAX_BYTES` | longest password accepted, in bytes, as sent and in NFKC form (64 to 65536) | 1024 |
//! | `FASTCORE_ENV` / `APP_ENV` / `ENVIRONMENT` | `production` forbids generated secrets | development |

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, KeyInit as _, Mac as _};
use jsonwebtoken::Algorithm;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use crate::error::{Error, Result};
use crate::password::PasswordPolicy;
use crate::throttle::ThrottleKeys;
use crate::tokens::keys::{KeySet, min_hmac_bytes};

/// Where the process runs. Only `Production` changes behaviour: it forbids
/// generating a throw-away signing secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Environment {
    /// Local work and tests.
    #[default]
    Development,
    /// A deployment that real users reach.
    Production,
}

impl Environment {
    /// The variables consulted, in order, by [`Environment::from_lookup`].
    pub const VARIABLES: [&'static str; 3] = ["FASTCORE_ENV", "APP_ENV", "ENVIRONMENT"];

    /// `Production` if any of [`Environment::VARIABLES`] says `production` or `prod`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let production = Self::VARIABLES.iter().any(|name| {
            lookup(name).is_some_and(|v| {
                let v = v.trim().to_ascii_lowercase();
                v == "production" || v == "prod"
            })
        });
        if production {
            Environment::Production
        } else {
            Environment::Development
        }
    }
}

/// How [`Security::validate_token`](crate::Security::validate_token)
/// checks that an access token is still valid after its signature and
/// claims have been verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ValidationMode {
    /// A store read on every request (the seed's behaviour): a revocation
    /// takes effect at the next request, on every instance.
    #[default]
    Strict,
    /// Each instance keeps an in-memory view of the revocations (revoked
    /// tokens not yet expired, per-user cut-offs), loaded at start and kept
    /// current by the store's [change feed](crate::RevocationFeed):
    /// PostgreSQL `LISTEN/NOTIFY`, Redis pub/sub, polling of a change
    /// sequence for SQLite and MySQL. A request then costs a signature
    /// check and a few hash lookups; the first use of a token on an
    /// instance still reads its record once, so tokens that were never
    /// recorded (or whose record was lost) are refused as in strict mode.
    ///
    /// A revocation made on any instance is seen by the others after at
    /// most one [`sync_interval`](SecurityConfig::sync_interval) (at once
    /// with the PostgreSQL and Redis signals). If the feed is lost, or has
    /// not answered for `3 × sync_interval + 1 s`, the instance checks every
    /// request in the store, as in strict mode, until it has resubscribed
    /// and reloaded the view: it never serves a stale view.
    /// [`get_security_status`](crate::get_security_status) reports the
    /// view's state. Refresh tokens are always checked in the store.
    Synced,
}

impl ValidationMode {
    /// `"strict"` or `"synced"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ValidationMode::Strict => "strict",
            ValidationMode::Synced => "synced",
        }
    }
}

impl std::str::FromStr for ValidationMode {
    type Err = Error;
    fn from_str(value: &str) -> Result<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "strict" => Ok(ValidationMode::Strict),
            "synced" => Ok(ValidationMode::Synced),
            _ => Err(Error::config(format!(
                "JWT_VALIDATION_MODE must be strict or synced, got {value:?}"
            ))),
        }
    }
}

/// The validated configuration of a [`Security`](crate::Security) handle.
///
/// Build it with [`SecurityConfig::builder`] or [`SecurityConfig::from_env`].
/// Its `Debug` output never shows the secret.
#[derive(Clone)]
pub struct SecurityConfig {
    pub(crate) secret: SecretString,
    pub(crate) algorithm: Algorithm,
    /// The keys of a key file or an explicit key set; `None` for the
    /// single secret.
    pub(crate) keys: Option<Arc<KeySet>>,
    pub(crate) keys_file: Option<PathBuf>,
    pub(crate) access_token_ttl: Duration,
    pub(crate) refresh_token_ttl: Duration,
    pub(crate) audience: Option<String>,
    pub(crate) issuer: Option<String>,
    pub(crate) allowed_audiences: Vec<String>,
    pub(crate) leeway: Duration,
    pub(crate) database_url: Option<String>,
    pub(crate) environment: Environment,
    pub(crate) generated_secret: bool,
    pub(crate) max_token_bytes: usize,
    pub(crate) store_timeout: Duration,
    pub(crate) refresh_reuse_grace: Duration,
    pub(crate) session_max_lifetime: Duration,
    pub(crate) login_max_failures_per_account: u32,
    pub(crate) login_max_failures_per_address: u32,
    pub(crate) login_throttle_window: Duration,
    pub(crate) login_throttle_secret: Option<SecretString>,
    pub(crate) validation_mode: ValidationMode,
    pub(crate) sync_interval: Duration,
    pub(crate) login_failure_floor: Duration,
    pub(crate) password_policy: PasswordPolicy,
}

impl std::fmt::Debug for SecurityConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurityConfig")
            .field("secret", &"[redacted]")
            .field("algorithm", &self.algorithm)
            .field("keys", &self.keys)
            .field("keys_file", &self.keys_file)
            .field("access_token_ttl", &self.access_token_ttl)
            .field("refresh_token_ttl", &self.refresh_token_ttl)
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .field("allowed_audiences", &self.allowed_audiences)
            .field("leeway", &self.leeway)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("environment", &self.environment)
            .field("generated_secret", &self.generated_secret)
            .field("refresh_reuse_grace", &self.refresh_reuse_grace)
            .field("session_max_lifetime", &self.session_max_lifetime)
            .field(
                "login_max_failures_per_account",
                &self.login_max_failures_per_account,
            )
            .field(
                "login_max_failures_per_address",
                &self.login_max_failures_per_address,
            )
            .field("login_throttle_window", &self.login_throttle_window)
            .field(
                "login_throttle_secret",
                &self.login_throttle_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("validation_mode", &self.validation_mode)
            .field("sync_interval", &self.sync_interval)
            .field("login_failure_floor", &self.login_failure_floor)
            .field("password_policy", &self.password_policy)
            .finish()
    }
}

impl SecurityConfig {
    /// Starts a builder with the seed's defaults (HS256, 30 minutes, 7 days).
    pub fn builder() -> SecurityConfigBuilder {
        SecurityConfigBuilder::default()
    }

    /// Reads the process environment (see the module docs for the names).
    ///
    /// Fails with [`Error::Config`] naming the variable when a value is
    /// missing or unusable; never falls back silently to an unsafe default.
    pub fn from_env() -> Result<Self> {
        Self::builder_from_lookup(|name| std::env::var(name).ok())?.build()
    }

    /// Like [`SecurityConfig::from_env`] but returns the builder, so a caller
    /// (the server's `--dev-secret` flag, a test) can adjust it before `build`.
    pub fn builder_from_env() -> Result<SecurityConfigBuilder> {
        Self::builder_from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds a configuration from any name -> value lookup with the same
    /// names as [`SecurityConfig::from_env`]; handy for tests and for
    /// configuration that comes from files rather than the environment.
    pub fn builder_from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<SecurityConfigBuilder> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut b = SecurityConfig::builder().environment(Environment::from_lookup(&lookup));
        if let Some(secret) = lookup("JWT_SECRET_KEY").filter(|v| !v.is_empty()) {
            b = b.secret(secret);
        }
        if let Some(alg) = get("JWT_ALGORITHM") {
            b = b.algorithm(parse_algorithm(&alg)?);
        }
        if let Some(path) = get("JWT_KEYS_FILE") {
            b = b.keys_file(path.trim());
        }
        if let Some(v) = get("JWT_ACCESS_TOKEN_EXPIRE_MINUTES") {
            let minutes = parse_positive("JWT_ACCESS_TOKEN_EXPIRE_MINUTES", &v, 60 * 24 * 365)?;
            b = b.access_token_ttl(Duration::from_secs(minutes * 60));
        }
        if let Some(v) = get("JWT_REFRESH_TOKEN_EXPIRE_DAYS") {
            let days = parse_positive("JWT_REFRESH_TOKEN_EXPIRE_DAYS", &v, 3650)?;
            b = b.refresh_token_ttl(Duration::from_secs(days * 86_400));
        }
        if let Some(v) = get("JWT_LEEWAY_SECONDS") {
            let secs = v.trim().parse::<u64>().ok().filter(|s| *s <= 300).ok_or_else(|| {
                Error::config(format!(
                    "JWT_LEEWAY_SECONDS must be a whole number of seconds from 0 to 300, got {v:?}"
                ))
            })?;
            b = b.leeway(Duration::from_secs(secs));
        }
        if let Some(v) = get("JWT_AUDIENCE") {
            b = b.audience(v.trim());
        }
        if let Some(v) = get("JWT_ISSUER") {
            b = b.issuer(v.trim());
        }
        if let Some(v) = get("JWT_ALLOWED_AUDIENCES") {
            b = b.allowed_audiences(
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from),
            );
        }
        if let Some(v) = get("JWT_REFRESH_REUSE_GRACE_SECONDS") {
            let secs = v.trim().parse::<u64>().ok().filter(|s| *s <= 60).ok_or_else(|| {
                Error::config(format!(
                    "JWT_REFRESH_REUSE_GRACE_SECONDS must be a whole number of seconds from 0 to 60, got {v:?}"
                ))
            })?;
            b = b.refresh_reuse_grace(Duration::from_secs(secs));
        }
        if let Some(v) = get("JWT_SESSION_MAX_LIFETIME_DAYS") {
            let days = parse_positive("JWT_SESSION_MAX_LIFETIME_DAYS", &v, 3650)?;
            b = b.session_max_lifetime(Duration::from_secs(days * 86_400));
        }
        if let Some(v) = get("DATABASE_URL") {
            b = b.database_url(v.trim());
        }
        if let Some(v) = get("LOGIN_MAX_FAILURES_PER_ACCOUNT") {
            let max = parse_limit("LOGIN_MAX_FAILURES_PER_ACCOUNT", &v)?;
            b = b.login_max_failures_per_account(max);
        }
        if let Some(v) = get("LOGIN_MAX_FAILURES_PER_ADDRESS") {
            let max = parse_limit("LOGIN_MAX_FAILURES_PER_ADDRESS", &v)?;
            b = b.login_max_failures_per_address(max);
        }
        if let Some(v) = get("LOGIN_THROTTLE_WINDOW_SECONDS") {
            let secs = parse_positive(
                "LOGIN_THROTTLE_WINDOW_SECONDS",
                &v,
                MAX_THROTTLE_WINDOW_SECS,
            )?;
            b = b.login_throttle_window(Duration::from_secs(secs));
        }
        // Set but blank is refused by `build`, not taken for unset: a
        // template that fills in nothing must not quietly unkey the hashes.
        if let Some(v) = lookup("LOGIN_THROTTLE_SECRET") {
            b = b.login_throttle_secret(v);
        }
        if let Some(v) = get("JWT_VALIDATION_MODE") {
            b = b.validation_mode(v.parse()?);
        }
        if let Some(v) = get("JWT_SYNC_INTERVAL_MS") {
            let ms = v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|ms| (10..=60_000).contains(ms))
                .ok_or_else(|| {
                    Error::config(format!(
                        "JWT_SYNC_INTERVAL_MS must be a whole number of milliseconds from 10 to 60000, got {v:?}"
                    ))
                })?;
            b = b.sync_interval(Duration::from_millis(ms));
        }
        if let Some(v) = get("LOGIN_FAILURE_FLOOR_MS") {
            let ms = v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|ms| *ms <= MAX_LOGIN_FAILURE_FLOOR_MS)
                .ok_or_else(|| {
                    Error::config(format!(
                        "LOGIN_FAILURE_FLOOR_MS must be a whole number of milliseconds from 0 (off) to {MAX_LOGIN_FAILURE_FLOOR_MS}, got {v:?}"
                    ))
                })?;
            b = b.login_failure_floor(Duration::from_millis(ms));
        }
        b = b.password_policy(PasswordPolicy::from_lookup(&lookup)?);
        Ok(b)
    }

    /// The signing algorithm of new tokens (the active key's, with a key
    /// file or key set).
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
    /// The keys, when a key file or key set was configured (`None` when
    /// tokens are signed with the single `JWT_SECRET_KEY`).
    pub fn key_set(&self) -> Option<&KeySet> {
        self.keys.as_deref()
    }
    /// The key file the keys were read from, if any.
    pub fn keys_file(&self) -> Option<&Path> {
        self.keys_file.as_deref()
    }
    /// Lifetime of access tokens.
    pub fn access_token_ttl(&self) -> Duration {
        self.access_token_ttl
    }
    /// Lifetime of refresh tokens.
    pub fn refresh_token_ttl(&self) -> Duration {
        self.refresh_token_ttl
    }
    /// `aud` written into new tokens.
    pub fn audience(&self) -> Option<&str> {
        self.audience.as_deref()
    }
    /// `iss` written into new tokens and required on incoming ones.
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }
    /// `aud` values accepted on incoming tokens.
    pub fn allowed_audiences(&self) -> &[String] {
        &self.allowed_audiences
    }
    /// Clock skew tolerated on `exp` and `nbf`.
    pub fn leeway(&self) -> Duration {
        self.leeway
    }
    /// The token store URL, if one was configured.
    pub fn database_url(&self) -> Option<&str> {
        self.database_url.as_deref()
    }
    /// The environment this configuration was built for.
    pub fn environment(&self) -> Environment {
        self.environment
    }
    /// True when the secret was generated for development (tokens will not
    /// survive a restart and cannot be shared between instances).
    pub fn uses_generated_secret(&self) -> bool {
        self.generated_secret
    }
    /// Tokens longer than this are refused before any parsing.
    pub fn max_token_bytes(&self) -> usize {
        self.max_token_bytes
    }
    /// How new password hashes are made and how long a password may be;
    /// [`Security::new`](crate::Security::new) hashes with it.
    pub fn password_policy(&self) -> &PasswordPolicy {
        &self.password_policy
    }
    /// How long after a refresh token was rotated a second presentation of
    /// it (two tabs refreshing at once) still gets the same session's new
    /// tokens instead of counting as reuse. Zero disables the grace.
    pub fn refresh_reuse_grace(&self) -> Duration {
        self.refresh_reuse_grace
    }
    /// The longest a login session lives however often it is refreshed.
    pub fn session_max_lifetime(&self) -> Duration {
        self.session_max_lifetime
    }
    /// How long one token store call may take before it counts as an outage.
    pub fn store_timeout(&self) -> Duration {
        self.store_timeout
    }
    /// Failed logins one account may have per
    /// [`login_throttle_window`](Self::login_throttle_window) before
    /// further attempts are refused; 0 when the limit is off.
    pub fn login_max_failures_per_account(&self) -> u32 {
        self.login_max_failures_per_account
    }
    /// Failed logins one client address may have per
    /// [`login_throttle_window`](Self::login_throttle_window), over all
    /// accounts, before further attempts are refused; 0 when the limit is off.
    pub fn login_max_failures_per_address(&self) -> u32 {
        self.login_max_failures_per_address
    }
    /// The login throttle's window (whole seconds).
    pub fn login_throttle_window(&self) -> Duration {
        self.login_throttle_window
    }
    /// What the login throttle's keys are keyed with: see
    /// [`SecurityConfigBuilder::login_throttle_secret`].
    pub fn login_throttle_keys(&self) -> ThrottleKeys {
        // A key of its own, not the signing secret itself: a secret serves
        // one purpose.
        let derive = |secret: &[u8]| {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret).ok()?;
            mac.update(b"fastcore-security login throttle key");
            Some(ThrottleKeys::with_secret(&mac.finalize().into_bytes()))
        };
        let keyed = match (&self.login_throttle_secret, &self.keys) {
            (Some(secret), _) => derive(secret.expose_secret().as_bytes()),
            (None, None) => derive(self.secret_bytes()),
            (None, Some(_)) => None,
        };
        keyed.unwrap_or_else(ThrottleKeys::unkeyed)
    }
    /// How access tokens are checked after their signature: in the store
    /// on every request, or against the synced in-memory view.
    pub fn validation_mode(&self) -> ValidationMode {
        self.validation_mode
    }
    /// Synced mode: how often the revocation feed is polled (and, with
    /// push signals, checked besides them).
    pub fn sync_interval(&self) -> Duration {
        self.sync_interval
    }
    /// The least time a failed login takes (zero when off): see
    /// [`SecurityConfigBuilder::login_failure_floor`].
    pub fn login_failure_floor(&self) -> Duration {
        self.login_failure_floor
    }
    pub(crate) fn secret_bytes(&self) -> &[u8] {
        self.secret.expose_secret().as_bytes()
    }
    pub(crate) fn shared_key_set(&self) -> Option<&Arc<KeySet>> {
        self.keys.as_ref()
    }
}

/// Builder for [`SecurityConfig`]; `build` checks every value.
///
/// ```
/// use std::time::Duration;
/// use fastcore_security::SecurityConfig;
///
/// let config = SecurityConfig::builder()
///     .secret("a-very-long-random-secret-of-at-least-32-bytes")
///     .access_token_ttl(Duration::from_secs(15 * 60))
///     .audience("my-api")
///     .issuer("my-auth")
///     .database_url("sqlite::memory:")
///     .build()
///     .unwrap();
/// assert_eq!(config.audience(), Some("my-api"));
/// ```
#[derive(Default)]
#[must_use]
pub struct SecurityConfigBuilder {
    secret: Option<SecretString>,
    algorithm: Option<Algorithm>,
    keys_file: Option<PathBuf>,
    key_set: Option<KeySet>,
    access_token_ttl: Option<Duration>,
    refresh_token_ttl: Option<Duration>,
    audience: Option<String>,
    issuer: Option<String>,
    allowed_audiences: Option<Vec<String>>,
    leeway: Option<Duration>,
    database_url: Option<String>,
    environment: Environment,
    generate_dev_secret: bool,
    max_token_bytes: Option<usize>,
    store_timeout: Option<Duration>,
    refresh_reuse_grace: Option<Duration>,
    session_max_lifetime: Option<Duration>,
    login_max_failures_per_account: Option<u32>,
    login_max_failures_per_address: Option<u32>,
    login_throttle_window: Option<Duration>,
    login_throttle_secret: Option<SecretString>,
    validation_mode: ValidationMode,
    sync_interval: Option<Duration>,
    login_failure_floor: Option<Duration>,
    password_policy: Option<PasswordPolicy>,
}

impl std::fmt::Debug for SecurityConfigBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurityConfigBuilder")
            .field("secret_set", &self.secret.is_some())
            .field("algorithm", &self.algorithm)
            .field("keys_file", &self.keys_file)
            .field("key_set", &self.key_set)
            .field("environment", &self.environment)
            .finish_non_exhaustive()
    }
}

impl SecurityConfigBuilder {
    /// The HMAC signing secret (the seed's `JWT_SECRET_KEY`).
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.secret = Some(SecretString::from(secret.into()));
        self
    }
    /// Whether a secret has been given.
    pub fn has_secret(&self) -> bool {
        self.secret.is_some()
    }
    /// `HS256` (default), `HS384` or `HS512`: the algorithm of the
    /// [`secret`](Self::secret). (Keys of a key file or key set name their own.)
    pub fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = Some(algorithm);
        self
    }
    /// Sign and verify with the keys of this key file (`JWT_KEYS_FILE`)
    /// instead of a single secret: several keys, each with a `kid`, for
    /// rotation, asymmetric algorithms and a published JWK Set. The format
    /// is described on [`KeyFile`](crate::KeyFile). `build` reads and
    /// checks it.
    pub fn keys_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.keys_file = Some(path.into());
        self
    }
    /// Sign and verify with these keys instead of a single secret (the
    /// programmatic form of [`keys_file`](Self::keys_file)).
    ///
    /// ```
    /// use fastcore_security::{Algorithm, KeySet, SecurityConfig, SigningKey};
    ///
    /// let key = SigningKey::hmac(Some("k1".into()), Algorithm::HS512, &[9u8; 64]).unwrap();
    /// let config = SecurityConfig::builder()
    ///     .key_set(KeySet::new(vec![key]).unwrap())
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(config.algorithm(), Algorithm::HS512);
    /// ```
    pub fn key_set(mut self, keys: KeySet) -> Self {
        self.key_set = Some(keys);
        self
    }
    /// Whether a key file or a key set has been given.
    pub fn has_keys(&self) -> bool {
        self.keys_file.is_some() || self.key_set.is_some()
    }
    /// Access token lifetime (default 30 minutes).
    pub fn access_token_ttl(mut self, ttl: Duration) -> Self {
        self.access_token_ttl = Some(ttl);
        self
    }
    /// Refresh token lifetime (default 7 days).
    pub fn refresh_token_ttl(mut self, ttl: Duration) -> Self {
        self.refresh_token_ttl = Some(ttl);
        self
    }
    /// `aud` written into new tokens; also accepted on incoming tokens unless
    /// [`allowed_audiences`](Self::allowed_audiences) says otherwise.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }
    /// `iss` written into new tokens and required on incoming ones.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }
    /// The `aud` values accepted on incoming tokens.
    pub fn allowed_audiences(mut self, audiences: impl IntoIterator<Item = String>) -> Self {
        self.allowed_audiences = Some(audiences.into_iter().collect());
        self
    }
    /// Clock skew tolerated on `exp`/`nbf` (default 5 s, at most 300 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = Some(leeway);
        self
    }
    /// The token store URL used by [`setup_security`](crate::setup_security).
    pub fn database_url(mut self, url: impl Into<String>) -> Self {
        self.database_url = Some(url.into());
        self
    }
    /// Marks the environment; `Production` forbids generated secrets.
    pub fn environment(mut self, environment: Environment) -> Self {
        self.environment = environment;
        self
    }
    /// Refuse tokens longer than this many bytes before parsing (default 8 KiB).
    pub fn max_token_bytes(mut self, bytes: usize) -> Self {
        self.max_token_bytes = Some(bytes);
        self
    }
    /// The password policy (default: argon2id at OWASP's floor, m=19456
    /// KiB, t=2, p=1; passwords up to 1024 bytes). Checked by
    /// [`build`](Self::build) with [`PasswordPolicy::validate`]: nothing
    /// below the floor is accepted.
    pub fn password_policy(mut self, policy: PasswordPolicy) -> Self {
        self.password_policy = Some(policy);
        self
    }
    /// How long one token store call may take before the request fails
    /// with [`Error::StoreUnavailable`] (default 5 s).
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.store_timeout = Some(timeout);
        self
    }
    /// How long a rotated refresh token may be presented again without
    /// counting as reuse (default 5 s, at most 60 s; zero disables). Inside
    /// it, a second refresh with the same token (two tabs at once) gets the
    /// session's current refresh token and a fresh access token; after it,
    /// the presentation revokes the whole session (RFC 9700 section 4.14.2).
    pub fn refresh_reuse_grace(mut self, grace: Duration) -> Self {
        self.refresh_reuse_grace = Some(grace);
        self
    }
    /// The longest a login session may last however often it is refreshed
    /// (default 30 days); each rotation extends the refresh token by
    /// [`refresh_token_ttl`](Self::refresh_token_ttl) up to this bound.
    pub fn session_max_lifetime(mut self, lifetime: Duration) -> Self {
        self.session_max_lifetime = Some(lifetime);
        self
    }
    /// How many failed logins one account may have per
    /// [`login_throttle_window`](Self::login_throttle_window) (default 5,
    /// at most 1,000,000; 0 turns the limit off). Once they are used up,
    /// logins to the account, with any password and from any address, get
    /// [`Error::TooManyAttempts`] (429) until the window ends; a successful
    /// login before that clears the count. This stops many addresses
    /// guessing one password; see [`Security::begin_login`](crate::Security::begin_login).
    pub fn login_max_failures_per_account(mut self, max: u32) -> Self {
        self.login_max_failures_per_account = Some(max);
        self
    }
    /// How many failed logins one client address may have per
    /// [`login_throttle_window`](Self::login_throttle_window), whatever the
    /// accounts (default 20, at most 1,000,000; 0 turns the limit off). An
    /// IPv6 address counts by its /64. This stops one client spraying
    /// passwords over many accounts. Behind a reverse proxy every client
    /// has the proxy's address unless the application says otherwise (see
    /// [`ClientIp`](crate::http::ClientIp)): raise or turn off this limit there.
    pub fn login_max_failures_per_address(mut self, max: u32) -> Self {
        self.login_max_failures_per_address = Some(max);
        self
    }
    /// The login throttle's window (default 15 minutes; from 1 second to a
    /// day, rounded up to whole seconds). A key's window starts at its
    /// first counted attempt; when it ends, the key starts over.
    pub fn login_throttle_window(mut self, window: Duration) -> Self {
        self.login_throttle_window = Some(window);
        self
    }
    /// The secret the login throttle's keys of usernames and client
    /// addresses are derived from (`LOGIN_THROTTLE_SECRET`; at least 32
    /// bytes, not only spaces, the same on every instance that shares the
    /// counts): they are HMAC-SHA-256 under `HMAC(secret, "fastcore-security
    /// login throttle key")`, so the keys in the throttle's table and in
    /// log lines tell nothing to whoever reads them without it (see
    /// [`ThrottleKeys`]).
    ///
    /// Unset, the key is derived from the signing secret
    /// ([`secret`](Self::secret)) the same way; with a key file there is
    /// no single secret to derive from, and the keys are unkeyed: set this
    /// then. Changing it, or the signing secret it is derived from when it
    /// is unset, starts every count over.
    pub fn login_throttle_secret(mut self, secret: impl Into<String>) -> Self {
        self.login_throttle_secret = Some(SecretString::from(secret.into()));
        self
    }
    /// How access tokens are checked after their signature (default
    /// [`ValidationMode::Strict`]; `JWT_VALIDATION_MODE`).
    pub fn validation_mode(mut self, mode: ValidationMode) -> Self {
        self.validation_mode = mode;
        self
    }
    /// Synced mode: how often the revocation feed is polled (default
    /// 250 ms, from 10 ms to 60 s; `JWT_SYNC_INTERVAL_MS`). With SQLite and
    /// MySQL it bounds how long a revocation made on another instance
    /// takes to be seen here; PostgreSQL and Redis signal changes at once
    /// and the poll only backs them up.
    pub fn sync_interval(mut self, interval: Duration) -> Self {
        self.sync_interval = Some(interval);
        self
    }
    /// The least time a failed login takes (default 500 ms, at most 10 s;
    /// zero turns it off), like PAM's fail delay.
    ///
    /// A login that fails for its credentials (unknown user, wrong
    /// password, disabled user: every `401 invalid_credentials`) is
    /// answered no sooner than this long after the request reached the
    /// handler; the wait is an async sleep, no CPU. Successful logins are
    /// never held, nor are refusals that say nothing about the account
    /// (`429` from the throttle, `503` when a store is down).
    ///
    /// Why: an unknown user is checked against a dummy hash of the current
    /// policy, so it costs what a wrong password for an account with an
    /// argon2id hash costs. An account whose stored hash is slower (a
    /// legacy bcrypt hash of cost 12 takes about 250 ms) would still tell
    /// an attacker that it exists, by taking longer to fail. With every
    /// failure held to the same floor, all failures take
    /// `max(work, floor)`. The default, 500 ms, is above a bcrypt cost-12
    /// verification on common hardware; with slower stored hashes (higher
    /// bcrypt costs, strong argon2 parameters, a slow machine), raise it
    /// above the slowest verification. When a failed login's own work
    /// takes longer than the floor, a warning says so (the timing then
    /// leaks again).
    pub fn login_failure_floor(mut self, floor: Duration) -> Self {
        self.login_failure_floor = Some(floor);
        self
    }
    /// If no secret is given, generate a random one for this process and log
    /// a loud warning. Refused when the environment is `Production`.
    pub fn generate_development_secret(mut self, enabled: bool) -> Self {
        self.generate_dev_secret = enabled;
        self
    }

    /// Checks every value and builds the configuration.
    pub fn build(mut self) -> Result<SecurityConfig> {
        let keys = match (self.key_set.take(), &self.keys_file) {
            (Some(_), Some(_)) => {
                return Err(Error::config(
                    "both a key set and a key file (JWT_KEYS_FILE) are given; use one",
                ));
            }
            (Some(keys), None) => Some(keys),
            (None, Some(path)) => Some(KeySet::from_file(path)?),
            (None, None) => None,
        };
        if let Some(keys) = keys {
            if self.secret.is_some() {
                return Err(Error::config(
                    "JWT_SECRET_KEY and JWT_KEYS_FILE (or a key set) are both set; use one. \
                     To keep tokens signed with the secret valid, put it in the key file \
                     as an HS256 key (secret_base64)",
                ));
            }
            if self.algorithm.is_some() {
                return Err(Error::config(
                    "JWT_ALGORITHM applies to JWT_SECRET_KEY only; with JWT_KEYS_FILE (or a key \
                     set) every key names its own algorithm: unset JWT_ALGORITHM",
                ));
            }
            let algorithm = keys.active().algorithm();
            return self.build_with(
                SecretString::from(String::new()),
                algorithm,
                Some(Arc::new(keys)),
                false,
            );
        }
        let algorithm = self.algorithm.unwrap_or(Algorithm::HS256);
        let min_secret = min_secret_bytes(algorithm)?;
        let (secret, generated_secret) = match self.secret.take() {
            Some(secret) => {
                let len = secret.expose_secret().len();
                if len < min_secret {
                    return Err(Error::config(format!(
                        "JWT_SECRET_KEY is {len} bytes long; {algorithm:?} needs at least {min_secret} \
                         random bytes (for example the output of `openssl rand -base64 {min_secret}`)"
                    )));
                }
                (secret, false)
            }
            None if self.generate_dev_secret => {
                if self.environment == Environment::Production {
                    return Err(Error::config(
                        "JWT_SECRET_KEY is not set and the environment is marked production; \
                         refusing to generate a throw-away secret. Set JWT_SECRET_KEY.",
                    ));
                }
                tracing::warn!(
                    "JWT_SECRET_KEY is not set: generated a random DEVELOPMENT secret. Tokens \
                     will stop working when this process exits and cannot be shared with \
                     other instances. Never run like this in production."
                );
                (SecretString::from(random_secret(min_secret.max(64))), true)
            }
            None => {
                return Err(Error::config(
                    "JWT_SECRET_KEY is not set; give a random secret of at least 32 bytes \
                     (or a key file in JWT_KEYS_FILE)",
                ));
            }
        };
        self.build_with(secret, algorithm, None, generated_secret)
    }

    /// The checks and the configuration common to both kinds of keys.
    fn build_with(
        mut self,
        secret: SecretString,
        algorithm: Algorithm,
        keys: Option<Arc<KeySet>>,
        generated_secret: bool,
    ) -> Result<SecurityConfig> {
        let access_token_ttl = self
            .access_token_ttl
            .unwrap_or(Duration::from_secs(30 * 60));
        let refresh_token_ttl = self
            .refresh_token_ttl
            .unwrap_or(Duration::from_secs(7 * 86_400));
        if access_token_ttl < Duration::from_secs(1) || refresh_token_ttl < Duration::from_secs(1) {
            return Err(Error::config("token lifetimes must be at least one second"));
        }
        let leeway = self.leeway.unwrap_or(Duration::from_secs(5));
        if leeway > Duration::from_secs(300) {
            return Err(Error::config("leeway must be at most 300 seconds"));
        }
        for (name, value) in [("audience", &self.audience), ("issuer", &self.issuer)] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err(Error::config(format!("{name} must not be empty")));
            }
        }
        let allowed_audiences = self
            .allowed_audiences
            .unwrap_or_else(|| self.audience.iter().cloned().collect());
        // The service validates the tokens it issues (every request, every
        // refresh), so its own `aud` must be accepted: otherwise login works
        // and everything after it fails with an audience error.
        match &self.audience {
            Some(aud) if !allowed_audiences.contains(aud) => {
                return Err(Error::config(format!(
                    "JWT_ALLOWED_AUDIENCES must include JWT_AUDIENCE ({aud:?}): this service refuses tokens whose audience it does not accept, including its own"
                )));
            }
            None if !allowed_audiences.is_empty() => {
                return Err(Error::config(
                    "JWT_ALLOWED_AUDIENCES is set but JWT_AUDIENCE is not: tokens issued here would carry no `aud` and be refused; set JWT_AUDIENCE to one of the allowed audiences",
                ));
            }
            _ => {}
        }
        let refresh_reuse_grace = self.refresh_reuse_grace.unwrap_or(Duration::from_secs(5));
        if refresh_reuse_grace > Duration::from_secs(60) {
            return Err(Error::config(
                "the refresh reuse grace must be at most 60 seconds",
            ));
        }
        let session_max_lifetime = self
            .session_max_lifetime
            .unwrap_or(Duration::from_secs(30 * 86_400));
        if session_max_lifetime < refresh_token_ttl {
            return Err(Error::config(
                "the session maximum lifetime must be at least the refresh token lifetime",
            ));
        }
        let login_max_failures_per_account = self.login_max_failures_per_account.unwrap_or(5);
        let login_max_failures_per_address = self.login_max_failures_per_address.unwrap_or(20);
        if login_max_failures_per_account.max(login_max_failures_per_address) > MAX_LOGIN_FAILURES {
            return Err(Error::config(format!(
                "the login failure limits must be at most {MAX_LOGIN_FAILURES} (0 turns one off)"
            )));
        }
        let window = self
            .login_throttle_window
            .unwrap_or(Duration::from_secs(15 * 60));
        let window_secs = window.as_secs() + u64::from(window.subsec_nanos() > 0);
        if !(1..=MAX_THROTTLE_WINDOW_SECS).contains(&window_secs) {
            return Err(Error::config(
                "the login throttle window must be from 1 second to a day",
            ));
        }
        let login_throttle_window = Duration::from_secs(window_secs);
        let login_throttle_secret = self.login_throttle_secret.take();
        if let Some(secret) = &login_throttle_secret {
            let len = secret.expose_secret().len();
            if secret.expose_secret().trim().is_empty() {
                return Err(Error::config(
                    "LOGIN_THROTTLE_SECRET is blank; give at least 32 random bytes (for \
                     example the output of `openssl rand -base64 32`) or unset it",
                ));
            }
            if len < MIN_THROTTLE_SECRET_BYTES {
                return Err(Error::config(format!(
                    "LOGIN_THROTTLE_SECRET is {len} bytes long; it needs at least \
                     {MIN_THROTTLE_SECRET_BYTES} random bytes (for example the output of \
                     `openssl rand -base64 32`)"
                )));
            }
        }
        let sync_interval = self.sync_interval.unwrap_or(Duration::from_millis(250));
        if !(Duration::from_millis(10)..=Duration::from_secs(60)).contains(&sync_interval) {
            return Err(Error::config(
                "the sync interval must be from 10 milliseconds to 60 seconds",
            ));
        }
        let login_failure_floor = self
            .login_failure_floor
            .unwrap_or(DEFAULT_LOGIN_FAILURE_FLOOR);
        if login_failure_floor > Duration::from_millis(MAX_LOGIN_FAILURE_FLOOR_MS) {
            return Err(Error::config(format!(
                "the login failure floor must be at most {MAX_LOGIN_FAILURE_FLOOR_MS} ms (0 turns it off)"
            )));
        }
        let password_policy = self.password_policy.unwrap_or_default();
        password_policy.validate()?;
        let max_token_bytes = self.max_token_bytes.unwrap_or(8 * 1024);
        if max_token_bytes < 256 {
            return Err(Error::config("max_token_bytes must be at least 256"));
        }
        Ok(SecurityConfig {
            secret,
            algorithm,
            keys,
            keys_file: self.keys_file,
            access_token_ttl,
            refresh_token_ttl,
            audience: self.audience,
            issuer: self.issuer,
            allowed_audiences,
            leeway,
            database_url: self.database_url,
            environment: self.environment,
            generated_secret,
            max_token_bytes,
            store_timeout: self.store_timeout.unwrap_or(Duration::from_secs(5)),
            refresh_reuse_grace,
            session_max_lifetime,
            login_max_failures_per_account,
            login_max_failures_per_address,
            login_throttle_window,
            login_throttle_secret,
            validation_mode: self.validation_mode,
            sync_interval,
            login_failure_floor,
            password_policy,
        })
    }
}

/// RFC 7518 section 3.2: an HMAC key at least as long as the hash output.
fn min_secret_bytes(algorithm: Algorithm) -> Result<usize> {
    match algorithm {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => Ok(min_hmac_bytes(algorithm)),
        other => Err(Error::config(format!(
            "JWT_ALGORITHM {other:?} is not supported with a shared secret; use HS256, HS384 or HS512"
        ))),
    }
}

fn parse_algorithm(value: &str) -> Result<Algorithm> {
    match value.trim().to_ascii_uppercase().as_str() {
        "HS256" => Ok(Algorithm::HS256),
        "HS384" => Ok(Algorithm::HS384),
        "HS512" => Ok(Algorithm::HS512),
        _ => Err(Error::config(format!(
            "JWT_ALGORITHM must be HS256, HS384 or HS512, got {value:?}"
        ))),
    }
}

/// The largest login failure limit (more would be no limit at all).
const MAX_LOGIN_FAILURES: u32 = 1_000_000;
/// The longest login throttle window: a day.
const MAX_THROTTLE_WINDOW_SECS: u64 = 86_400;
/// The shortest `LOGIN_THROTTLE_SECRET`: 256 bits, as for HS256.
const MIN_THROTTLE_SECRET_BYTES: usize = 32;
/// The default failed-login floor: above a bcrypt cost-12 verification
/// (about 250 ms) on common hardware.
const DEFAULT_LOGIN_FAILURE_FLOOR: Duration = Duration::from_millis(500);
/// The longest failed-login floor: 10 s (more only ties up connections).
const MAX_LOGIN_FAILURE_FLOOR_MS: u64 = 10_000;

fn parse_limit(name: &str, value: &str) -> Result<u32> {
    value
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|v| *v <= MAX_LOGIN_FAILURES)
        .ok_or_else(|| {
            Error::config(format!(
                "{name} must be a whole number from 0 (off) to {MAX_LOGIN_FAILURES}, got {value:?}"
            ))
        })
}

fn parse_positive(name: &str, value: &str, max: u64) -> Result<u64> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|v| (1..=max).contains(v))
        .ok_or_else(|| {
            Error::config(format!(
                "{name} must be a whole number from 1 to {max}, got {value:?}"
            ))
        })
}

fn random_secret(bytes: usize) -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&buf)
}

/// Hides passwords in a database URL (`postgres://user:***@host/db`, and
/// `?password=***` query parameters), so URLs can be logged.
pub fn redact_url(url: &str) -> String {
    let (main, query) = match url.split_once('?') {
        Some((main, query)) => (main, Some(query)),
        None => (url, None),
    };
    let mut out = redact_userinfo(main);
    if let Some(query) = query {
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if is_secret_param(key) => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    out
}

fn is_secret_param(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "sslpassword", "pass", "pwd", "secret"].contains(&key.as_str())
}

fn redact_userinfo(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_string()
            };
            format!(
                "{}://{}@{}{}",
                &url[..scheme_end],
                masked,
                &authority[at + 1..],
                &rest[authority_end..]
            )
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn short_secret_is_refused_with_a_clear_message() {
        let err = SecurityConfig::builder_from_lookup(lookup(&[("JWT_SECRET_KEY", "short")]))
            .unwrap()
            .build()
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("JWT_SECRET_KEY is 5 bytes"), "{msg}");
        assert!(
            !msg.contains("short"),
            "the secret itself must not be echoed: {msg}"
        );
    }

    #[test]
    fn env_names_of_the_seed_are_read() {
        let cfg = SecurityConfig::builder_from_lookup(lookup(&[
            (
                "JWT_SECRET_KEY",
                "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            ),
            ("JWT_ALGORITHM", "HS512"),
            ("JWT_ACCESS_TOKEN_EXPIRE_MINUTES", "15"),
            ("JWT_REFRESH_TOKEN_EXPIRE_DAYS", "2"),
            ("JWT_AUDIENCE", "api"),
            ("JWT_ISSUER", "auth"),
            ("JWT_ALLOWED_AUDIENCES", "api, other"),
            ("DATABASE_URL", "sqlite::memory:"),
        ]))
        .unwrap()
        .build()
        .unwrap();
        assert_eq!(cfg.algorithm(), Algorithm::HS512);
        assert_eq!(cfg.access_token_ttl(), Duration::from_secs(900));
        assert_eq!(cfg.refresh_token_ttl(), Duration::from_secs(2 * 86_400));
        assert_eq!(cfg.allowed_audiences(), ["api", "other"]);
        assert_eq!(cfg.issuer(), Some("auth"));
        assert_eq!(cfg.database_url(), Some("sqlite::memory:"));
    }

    #[test]
    fn bad_numbers_name_the_variable() {
        for (name, value) in [
            ("JWT_ACCESS_TOKEN_EXPIRE_MINUTES", "-3"),
            ("JWT_ACCESS_TOKEN_EXPIRE_MINUTES", "abc"),
            ("JWT_REFRESH_TOKEN_EXPIRE_DAYS", "0"),
            ("JWT_ALGORITHM", "none"),
            ("JWT_LEEWAY_SECONDS", "9999"),
        ] {
            let err = SecurityConfig::builder_from_lookup(lookup(&[(name, value)])).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn login_throttle_settings_have_defaults_env_names_and_bounds() {
        let cfg = SecurityConfig::builder()
            .secret(TEST_SECRET)
            .build()
            .unwrap();
        assert_eq!(cfg.login_max_failures_per_account(), 5);
        assert_eq!(cfg.login_max_failures_per_address(), 20);
        assert_eq!(cfg.login_throttle_window(), Duration::from_secs(900));

        let cfg = SecurityConfig::builder_from_lookup(lookup(&[
            ("JWT_SECRET_KEY", TEST_SECRET),
            ("LOGIN_MAX_FAILURES_PER_ACCOUNT", "0"),
            ("LOGIN_MAX_FAILURES_PER_ADDRESS", " 100 "),
            ("LOGIN_THROTTLE_WINDOW_SECONDS", "60"),
        ]))
        .unwrap()
        .build()
        .unwrap();
        assert_eq!(cfg.login_max_failures_per_account(), 0);
        assert_eq!(cfg.login_max_failures_per_address(), 100);
        assert_eq!(cfg.login_throttle_window(), Duration::from_secs(60));

        for (name, value) in [
            ("LOGIN_MAX_FAILURES_PER_ACCOUNT", "-1"),
            ("LOGIN_MAX_FAILURES_PER_ACCOUNT", "five"),
            ("LOGIN_MAX_FAILURES_PER_ADDRESS", "1000001"),
            ("LOGIN_THROTTLE_WINDOW_SECONDS", "0"),
            ("LOGIN_THROTTLE_WINDOW_SECONDS", "86401"),
        ] {
            let err = SecurityConfig::builder_from_lookup(lookup(&[(name, value)])).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
        let builder = || SecurityConfig::builder().secret(TEST_SECRET);
        assert!(
            builder()
                .login_throttle_window(Duration::ZERO)
                .build()
                .is_err()
        );
        assert!(
            builder()
                .login_max_failures_per_account(2_000_000)
                .build()
                .is_err()
        );
        // Parts of a second round up.
        let cfg = builder()
            .login_throttle_window(Duration::from_millis(1500))
            .build()
            .unwrap();
        assert_eq!(cfg.login_throttle_window(), Duration::from_secs(2));
    }

    #[test]
    fn the_login_failure_floor_has_a_default_an_env_name_and_a_ceiling() {
        let builder = || SecurityConfig::builder().secret(TEST_SECRET);
        assert_eq!(
            builder().build().unwrap().login_failure_floor(),
            Duration::from_millis(500)
        );
        for (value, ms) in [("0", 0), (" 150 ", 150), ("10000", 10_000)] {
            let cfg = SecurityConfig::builder_from_lookup(lookup(&[
                ("JWT_SECRET_KEY", TEST_SECRET),
                ("LOGIN_FAILURE_FLOOR_MS", value),
            ]))
            .unwrap()
            .build()
            .unwrap();
            assert_eq!(
                cfg.login_failure_floor(),
                Duration::from_millis(ms),
                "{value}"
            );
        }
        for bad in ["-1", "10001", "0.5", "500ms", "half"] {
            let err =
                SecurityConfig::builder_from_lookup(lookup(&[("LOGIN_FAILURE_FLOOR_MS", bad)]))
                    .unwrap_err()
                    .to_string();
            assert!(err.contains("LOGIN_FAILURE_FLOOR_MS"), "{err}");
            assert!(err.contains("10000"), "{err}");
        }
        assert!(
            builder()
                .login_failure_floor(Duration::from_millis(10_001))
                .build()
                .is_err()
        );
        assert_eq!(
            builder()
                .login_failure_floor(Duration::ZERO)
                .build()
                .unwrap()
                .login_failure_floor(),
            Duration::ZERO
        );
    }

    const TEST_SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn validation_mode_defaults_to_strict_and_reads_its_variables() {
        let cfg = SecurityConfig::builder()
            .secret(TEST_SECRET)
            .build()
            .unwrap();
        assert_eq!(cfg.validation_mode(), ValidationMode::Strict);
        assert_eq!(cfg.sync_interval(), Duration::from_millis(250));
        let cfg = SecurityConfig::builder_from_lookup(lookup(&[
            ("JWT_SECRET_KEY", TEST_SECRET),
            ("JWT_VALIDATION_MODE", " Synced "),
            ("JWT_SYNC_INTERVAL_MS", "50"),
        ]))
        .unwrap()
        .build()
        .unwrap();
        assert_eq!(cfg.validation_mode(), ValidationMode::Synced);
        assert_eq!(cfg.sync_interval(), Duration::from_millis(50));
        for (name, value) in [
            ("JWT_VALIDATION_MODE", "lazy"),
            ("JWT_SYNC_INTERVAL_MS", "5"),
            ("JWT_SYNC_INTERVAL_MS", "soon"),
        ] {
            let err = SecurityConfig::builder_from_lookup(lookup(&[(name, value)])).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn missing_secret_is_an_error_unless_development_generation_is_allowed() {
        assert!(SecurityConfig::builder().build().is_err());
        let cfg = SecurityConfig::builder()
            .generate_development_secret(true)
            .build()
            .unwrap();
        assert!(cfg.uses_generated_secret());
        assert!(cfg.secret_bytes().len() >= 32);
    }

    #[test]
    fn production_never_generates_a_secret() {
        let builder =
            SecurityConfig::builder_from_lookup(lookup(&[("APP_ENV", "Production")])).unwrap();
        let err = builder
            .generate_development_secret(true)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("production"), "{err}");
    }

    #[test]
    fn query_string_passwords_are_redacted_too() {
        assert_eq!(
            redact_url("postgres://db/app?user=a&password=hunter2&sslmode=require"),
            "postgres://db/app?user=a&password=***&sslmode=require"
        );
        assert_eq!(
            redact_url("mysql://root:pw@h:3306/x?SSLPassword=k"),
            "mysql://root:***@h:3306/x?SSLPassword=***"
        );
        assert_eq!(
            redact_url("sqlite://a.db?mode=rwc"),
            "sqlite://a.db?mode=rwc"
        );
    }

    #[test]
    fn debug_output_hides_the_secret_and_url_password() {
        let cfg = SecurityConfig::builder()
            .secret("super-secret-value-that-is-long-enough-000")
            .database_url("postgres://app:hunter2@db/prod")
            .build()
            .unwrap();
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("super-secret"), "{dbg}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("postgres://app:***@db/prod"), "{dbg}");
    }
}
