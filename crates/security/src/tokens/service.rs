//! Token life cycle on top of the codec and the store: create, validate
//! (stateful), refresh, revoke, log out.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::SecurityConfig;
use crate::config::ValidationMode;
use crate::error::{Error, InvalidTokenReason, Result, StoreError};
use crate::metrics::{LoginOutcome, Recorder, RefreshOutcome, RevocationKind};
use crate::password::PasswordHasher;
use crate::throttle::{
    self, InFlight, LoginAttempt, LoginThrottle, MemoryLoginThrottle, ThrottleKeys,
    TimeoutThrottle, Turns,
};
use crate::tokens::claims::{Audience, Claims, RESERVED_CLAIMS, TokenType};
use crate::tokens::jwt::JwtCodec;
use crate::tokens::store::{
    MAX_IP_BYTES, MAX_USER_AGENT_BYTES, Rotation, SessionMeta, TimeoutStore, TokenRecord,
    TokenStore,
};
use crate::tokens::view::{RevocationView, Verdict, ViewedStore};

/// Longest `sub` accepted when issuing a token, in bytes.
pub const MAX_SUBJECT_BYTES: usize = 1024;

/// The security handle: configuration, keys, token store and password
/// hasher. Cheap to clone (one `Arc`); use it as (or inside) axum state.
///
/// ```
/// use std::sync::Arc;
/// use fastcore_security::{MemoryTokenStore, Security, SecurityConfig, TokenType};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> fastcore_security::Result<()> {
/// let config = SecurityConfig::builder()
///     .secret("an-example-secret-that-is-at-least-32-bytes")
///     .build()?;
/// let security = Security::new(config, Arc::new(MemoryTokenStore::new()))?;
///
/// let pair = security.create_token_pair("42", None).await?;
/// let claims = security.validate_token(&pair.access_token, Some(TokenType::Access)).await?;
/// assert_eq!(claims.sub, "42");
///
/// security.revoke_token(&pair.access_token).await?;
/// assert!(security.validate_token(&pair.access_token, None).await.is_err());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Security {
    inner: Arc<Inner>,
}

struct Inner {
    config: SecurityConfig,
    codec: Arc<JwtCodec>,
    store: Arc<dyn TokenStore>,
    passwords: PasswordHasher,
    /// The login throttle, behind the store timeout.
    throttle: Arc<dyn LoginThrottle>,
    /// What the throttle counts usernames and addresses under.
    throttle_keys: ThrottleKeys,
    /// The login attempts admitted by `throttle` here and not yet decided.
    inflight: Arc<InFlight>,
    /// Each account's turn to have a password checked, here.
    turns: Arc<Turns>,
    /// What this handle counts (nothing without the `metrics` feature).
    metrics: Recorder,
    /// Synced mode: the in-memory revocation view.
    view: Option<Arc<RevocationView>>,
    /// When the failed-login floor was last found too short (Unix
    /// seconds; 0: never), shared with handles made from this one.
    floor_warned_at: Arc<AtomicI64>,
}

/// At most one "failed-login floor too short" warning per this long.
const FLOOR_WARNING_INTERVAL_SECS: i64 = 600;

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("config", &self.inner.config)
            .field("store", &self.inner.store.backend())
            .field("login_throttle", &self.inner.throttle.backend())
            .finish_non_exhaustive()
    }
}

/// A freshly issued token.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The encoded JWT.
    pub token: String,
    /// Its claims.
    pub claims: Claims,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// An access and a refresh token from one login (the seed's
/// `create_token_pair` result), serialized as the OAuth2 token response.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenPair {
    /// The access token.
    pub access_token: String,
    /// The refresh token.
    pub refresh_token: String,
    /// Always `"bearer"`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: u64,
}

/// The client a login or refresh came from, as the application sees it;
/// shown in session lists and never trusted for anything else. Values
/// longer than the store keeps are cut at a character boundary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// The client address (behind a proxy, whatever the application's
    /// trusted-proxy logic decided).
    pub ip: Option<String>,
}

impl ClientInfo {
    fn meta(&self, started_at: i64) -> SessionMeta {
        SessionMeta {
            started_at,
            user_agent: self
                .user_agent
                .as_deref()
                .map(|ua| truncate(ua, MAX_USER_AGENT_BYTES)),
            ip: self.ip.as_deref().map(|ip| truncate(ip, MAX_IP_BYTES)),
        }
    }
}

fn truncate(value: &str, max: usize) -> String {
    let mut end = value.len().min(max);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value[..end].to_owned()
}

/// One live login session of a user (a refresh token family).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Session {
    /// The session id: the `sid` claim of its tokens.
    pub id: String,
    /// When the login happened (Unix seconds).
    pub created_at: i64,
    /// When the session last logged in or refreshed (Unix seconds).
    pub last_used_at: i64,
    /// When the session ends unless refreshed (Unix seconds).
    pub expires_at: i64,
    /// The client's user agent, as given at the last login or refresh.
    pub user_agent: Option<String>,
    /// The client's address, as given at the last login or refresh.
    pub ip: Option<String>,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Security {
    /// Builds the handle from a configuration and a store, hashing
    /// passwords with the configuration's
    /// [`password_policy`](SecurityConfig::password_policy). The store must already be migrated; see
    /// [`setup_security`](crate::setup_security) for the one-call setup.
    pub fn new(config: SecurityConfig, store: Arc<dyn TokenStore>) -> Result<Self> {
        let passwords = PasswordHasher::new(*config.password_policy())?;
        Self::with_password_hasher(config, store, passwords)
    }

    /// Builds the handle with a password hasher of the caller's (its own
    /// policy or concurrency, or one shared with a [`PasswordAuthenticator`](crate::PasswordAuthenticator)).
    ///
    /// Failed logins are counted in the store's own
    /// [`login_throttle`](TokenStore::login_throttle) when it has one (the
    /// SQL and Redis stores), so instances sharing the store share the
    /// limits; otherwise in a [`MemoryLoginThrottle`] of this handle's own.
    /// [`with_login_throttle`](Self::with_login_throttle) picks another.
    pub fn with_password_hasher(
        config: SecurityConfig,
        store: Arc<dyn TokenStore>,
        passwords: PasswordHasher,
    ) -> Result<Self> {
        let codec = Arc::new(JwtCodec::from_config(&config)?);
        let metrics = Recorder::new();
        let throttle = store
            .login_throttle()
            .unwrap_or_else(|| Arc::new(MemoryLoginThrottle::new()));
        let throttle: Arc<dyn LoginThrottle> = Arc::new(TimeoutThrottle::new(
            throttle,
            config.store_timeout(),
            metrics.clone(),
        ));
        let throttle_keys = config.login_throttle_keys();
        let throttled = config.login_max_failures_per_account() > 0
            || config.login_max_failures_per_address() > 0;
        if throttled && !throttle_keys.is_keyed() {
            tracing::warn!(
                "the login throttle's hashes of usernames and addresses are unkeyed (a key \
                 file and no LOGIN_THROTTLE_SECRET): whoever reads the throttle table or the \
                 log can confirm a guessed username against them; set LOGIN_THROTTLE_SECRET"
            );
        }
        let view = match config.validation_mode() {
            ValidationMode::Strict => None,
            ValidationMode::Synced => Some(start_view(&config, store.as_ref())?),
        };
        let store: Arc<dyn TokenStore> = Arc::new(TimeoutStore::new(
            store,
            config.store_timeout(),
            metrics.clone(),
        ));
        // Synced mode: revocations through this handle reach its view
        // before the call returns.
        let store: Arc<dyn TokenStore> = match &view {
            Some(view) => Arc::new(ViewedStore::new(store, Arc::clone(view))),
            None => store,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                codec,
                store,
                passwords,
                throttle,
                throttle_keys,
                inflight: Arc::new(InFlight::default()),
                turns: Arc::new(Turns::default()),
                metrics,
                view,
                floor_warned_at: Arc::new(AtomicI64::new(0)),
            }),
        })
    }

    /// The same handle counting login attempts in `throttle` instead (for
    /// a custom store, or to keep the counts apart from the tokens). Its
    /// calls get the [store timeout](SecurityConfig::store_timeout) too.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use fastcore_security::{MemoryLoginThrottle, MemoryTokenStore, Security, SecurityConfig};
    ///
    /// let config = SecurityConfig::builder()
    ///     .secret("an-example-secret-that-is-at-least-32-bytes")
    ///     .build()
    ///     .unwrap();
    /// let security = Security::new(config, Arc::new(MemoryTokenStore::new()))
    ///     .unwrap()
    ///     .with_login_throttle(Arc::new(MemoryLoginThrottle::with_capacity(10_000)));
    /// assert_eq!(security.login_throttle().backend(), "memory");
    /// ```
    #[must_use]
    pub fn with_login_throttle(&self, throttle: Arc<dyn LoginThrottle>) -> Self {
        let throttle: Arc<dyn LoginThrottle> = Arc::new(TimeoutThrottle::new(
            throttle,
            self.inner.config.store_timeout(),
            self.inner.metrics.clone(),
        ));
        Self {
            inner: Arc::new(Inner {
                config: self.inner.config.clone(),
                codec: Arc::clone(&self.inner.codec),
                store: Arc::clone(&self.inner.store),
                passwords: self.inner.passwords.clone(),
                throttle,
                throttle_keys: self.inner.throttle_keys.clone(),
                inflight: Arc::new(InFlight::default()),
                turns: Arc::new(Turns::default()),
                metrics: self.inner.metrics.clone(),
                view: self.inner.view.clone(),
                floor_warned_at: Arc::clone(&self.inner.floor_warned_at),
            }),
        }
    }

    /// This handle's Prometheus metrics (feature `metrics`): logins,
    /// validations, refreshes, revocations, store latency, purges. Handles
    /// made from this one ([`with_login_throttle`](Self::with_login_throttle))
    /// count into the same series.
    #[cfg(feature = "metrics")]
    pub fn metrics(&self) -> &crate::SecurityMetrics {
        &self.inner.metrics
    }

    /// Counts a login refused before [`begin_login`](Self::begin_login)
    /// (for example an empty or overlong username) as bad credentials.
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) fn count_refused_login(&self) {
        self.inner.metrics.login(LoginOutcome::BadCredentials);
    }

    /// Counts a refresh refused before [`refresh_session`](Self::refresh_session)
    /// ran (a token that does not verify, a disabled user).
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) fn count_rejected_refresh(&self) {
        self.inner.metrics.refresh(RefreshOutcome::Rejected);
    }

    /// The login throttle (behind the store timeout).
    pub fn login_throttle(&self) -> &Arc<dyn LoginThrottle> {
        &self.inner.throttle
    }

    /// What the login throttle counts usernames and addresses under, and
    /// what its log lines name them by (`throttle_key`): to find one
    /// account's refusals in the log, look for
    /// `security.throttle_keys().account(name)`. Keyed with a secret
    /// unless a key file is used without `LOGIN_THROTTLE_SECRET`
    /// ([`SecurityConfigBuilder::login_throttle_secret`](crate::SecurityConfigBuilder::login_throttle_secret)).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use fastcore_security::{MemoryTokenStore, Security, SecurityConfig, ThrottleKey};
    ///
    /// let config = SecurityConfig::builder()
    ///     .secret("an-example-secret-that-is-at-least-32-bytes")
    ///     .build()
    ///     .unwrap();
    /// let security = Security::new(config, Arc::new(MemoryTokenStore::new())).unwrap();
    /// assert!(security.throttle_keys().is_keyed());
    /// assert_ne!(security.throttle_keys().account("ada"), ThrottleKey::account("ada"));
    /// ```
    pub fn throttle_keys(&self) -> &ThrottleKeys {
        &self.inner.throttle_keys
    }

    /// Counts a login attempt against the throttle, **before** the
    /// password is checked: per account (the `username`, hashed into a
    /// [`ThrottleKey`](crate::ThrottleKey), see
    /// [`throttle_keys`](Self::throttle_keys)) and per client address
    /// (`ip`, if known), with the
    /// configured limits and window (see [`SecurityConfigBuilder::login_max_failures_per_account`](crate::SecurityConfigBuilder::login_max_failures_per_account)).
    /// [`auth_router`](crate::auth_router)'s login does this for you.
    ///
    /// Returns [`Error::TooManyAttempts`] when either limit is used up
    /// (then check nothing: the refusal is the same for every username,
    /// known or not, and costs no hashing), and [`Error::StoreUnavailable`]
    /// when the throttle's store fails (fail closed: answer 503, do not
    /// check the password). Otherwise the attempt is counted; report its
    /// outcome on the returned [`LoginAttempt`] as soon as it is known
    /// (before holding a failure to the
    /// [floor](Self::delay_failed_login)): attempts refused while it is in
    /// flight wait for that verdict.
    ///
    /// An attempt refused while other attempts of the same account or
    /// address are still being checked is not refused yet: it waits for
    /// their verdicts and tries again, so concurrent correct logins are
    /// never refused because of each other (the module docs of the
    /// throttle explain how, and for how long).
    ///
    /// The attempts of one account take turns, in this process: an
    /// admitted attempt returns once no other attempt of its account is
    /// being checked here, and a failure reported with
    /// [`fail_login`](Self::fail_login) keeps the turn until its answer is
    /// due. So a burst of wrong passwords for one account is answered one
    /// [floor](Self::delay_failed_login) apart, whatever the account's
    /// stored hash costs, and the burst's timing tells a known account from
    /// an unknown one no more than a single failure does. Finish an
    /// attempt (report its verdict, or drop it) before beginning another
    /// one for the same account in the same task, or that task waits for
    /// itself.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> fastcore_security::Result<()> {
    /// use std::sync::Arc;
    /// use fastcore_security::{Error, MemoryTokenStore, Security, SecurityConfig};
    ///
    /// let config = SecurityConfig::builder()
    ///     .secret("an-example-secret-that-is-at-least-32-bytes")
    ///     .login_max_failures_per_account(2)
    ///     .build()?;
    /// let security = Security::new(config, Arc::new(MemoryTokenStore::new()))?;
    /// let ip = Some("192.0.2.7".parse().unwrap());
    ///
    /// for _ in 0..2 {
    ///     let attempt = security.begin_login("ada", ip).await?;
    ///     // ... the password was wrong:
    ///     attempt.failed();
    /// }
    /// let refused = security.begin_login("ada", ip).await.unwrap_err();
    /// assert!(matches!(refused, Error::TooManyAttempts { .. }));
    /// // Other accounts are not affected.
    /// security.begin_login("grace", ip).await?.succeeded().await;
    /// # Ok(()) }
    /// ```
    pub async fn begin_login(&self, username: &str, ip: Option<IpAddr>) -> Result<LoginAttempt> {
        let config = &self.inner.config;
        let limits = throttle::Limits {
            per_account: config.login_max_failures_per_account(),
            per_address: config.login_max_failures_per_address(),
            window_secs: secs(config.login_throttle_window()).max(1),
        };
        let metrics = &self.inner.metrics;
        let begun = throttle::begin(
            &self.inner.throttle,
            &self.inner.inflight,
            &self.inner.throttle_keys,
            limits,
            Some(username),
            ip,
            now,
        )
        .await
        .inspect_err(|_| metrics.login(LoginOutcome::Error))?;
        match begun {
            Ok(mut attempt) => {
                attempt.metrics = Some(metrics.clone());
                // The account's key whether or not its limit is on: the
                // turns hide the cost of a stored hash either way.
                let key = attempt
                    .account_key()
                    .cloned()
                    .unwrap_or_else(|| self.inner.throttle_keys.account(username));
                attempt.turn = Some(self.inner.turns.take(key).await);
                Ok(attempt)
            }
            Err(refused) => {
                refused.log();
                metrics.login(LoginOutcome::Throttled);
                Err(Error::TooManyAttempts {
                    retry_after: refused.window.retry_after(now()),
                })
            }
        }
    }

    /// Reports a failed login ([`LoginAttempt::failed`]) and holds it until
    /// its answer is due: the configured
    /// [`login_failure_floor`](SecurityConfig::login_failure_floor) after
    /// the attempt's turn began (see [`begin_login`](Self::begin_login)),
    /// keeping the turn meanwhile, so that the next attempt of the account
    /// starts its check only then. [`auth_router`](crate::auth_router)'s
    /// login does this for every wrong password, unknown user and disabled
    /// user; a login handler of your own calls it instead of
    /// [`LoginAttempt::failed`] and
    /// [`delay_failed_login`](Self::delay_failed_login), before answering.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> fastcore_security::Result<()> {
    /// use std::{sync::Arc, time::Duration};
    /// use fastcore_security::{MemoryTokenStore, Security, SecurityConfig};
    ///
    /// let config = SecurityConfig::builder()
    ///     .secret("an-example-secret-that-is-at-least-32-bytes")
    ///     .login_failure_floor(Duration::from_millis(20))
    ///     .build()?;
    /// let security = Security::new(config, Arc::new(MemoryTokenStore::new()))?;
    ///
    /// let started = tokio::time::Instant::now();
    /// let attempt = security.begin_login("ada", None).await?;
    /// // ... the password was wrong:
    /// security.fail_login(attempt).await;
    /// assert!(started.elapsed() >= Duration::from_millis(20));
    /// # Ok(()) }
    /// ```
    pub async fn fail_login(&self, mut attempt: LoginAttempt) {
        let turn = attempt.turn.take();
        // The count is final (and attempts waiting on it are told) before
        // the wait; the turn is kept through it.
        attempt.failed();
        if let Some(turn) = turn {
            self.delay_failed_login(turn.started()).await;
        }
    }

    /// Holds a failed login until `started` plus the configured
    /// [`login_failure_floor`](SecurityConfig::login_failure_floor), with
    /// an async sleep (no CPU), so that every failure takes the same
    /// time whatever its cause: an unknown user, a wrong password for an
    /// account with a slow legacy hash, a disabled user.
    /// [`auth_router`](crate::auth_router)'s login does this for every
    /// `401 invalid_credentials` that has no [`LoginAttempt`] (an empty
    /// username, refused before the throttle); for one that has, use
    /// [`fail_login`](Self::fail_login), which also keeps the account's
    /// turn. A login handler of your own calls it with the instant its
    /// request arrived, before answering. Never call it for a successful
    /// login.
    ///
    /// When the failure's own work already took longer than the floor,
    /// returns at once and logs a warning (at most one every ten
    /// minutes, without the username or any hash): the floor no longer
    /// hides how long the password check took, so raise it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> fastcore_security::Result<()> {
    /// use std::{sync::Arc, time::Duration};
    /// use fastcore_security::{MemoryTokenStore, Security, SecurityConfig};
    ///
    /// let config = SecurityConfig::builder()
    ///     .secret("an-example-secret-that-is-at-least-32-bytes")
    ///     .login_failure_floor(Duration::from_millis(20))
    ///     .build()?;
    /// let security = Security::new(config, Arc::new(MemoryTokenStore::new()))?;
    ///
    /// let started = tokio::time::Instant::now();
    /// // ... refused before any attempt was counted (an empty username):
    /// security.delay_failed_login(started).await;
    /// assert!(started.elapsed() >= Duration::from_millis(20));
    /// # Ok(()) }
    /// ```
    pub async fn delay_failed_login(&self, started: tokio::time::Instant) {
        let floor = self.inner.config.login_failure_floor();
        if floor.is_zero() {
            return;
        }
        let worked = started.elapsed();
        if worked > floor {
            self.warn_floor_too_short(worked, floor);
            return;
        }
        tokio::time::sleep_until(started + floor).await;
    }

    fn warn_floor_too_short(&self, worked: Duration, floor: Duration) {
        let now = now();
        let last = self.inner.floor_warned_at.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < FLOOR_WARNING_INTERVAL_SECS {
            return;
        }
        if self
            .inner
            .floor_warned_at
            .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return; // another failure is warning right now
        }
        tracing::warn!(
            took_ms = u64::try_from(worked.as_millis()).unwrap_or(u64::MAX),
            floor_ms = u64::try_from(floor.as_millis()).unwrap_or(u64::MAX),
            "a failed login took longer than the login failure floor: failures of different \
             kinds (unknown user, wrong password for a slow stored hash) may now be told apart \
             by their timing; raise LOGIN_FAILURE_FLOOR_MS above the slowest password \
             verification (at most one such warning every ten minutes)"
        );
    }

    /// Forgets the failed logins counted for `username` (an administrator
    /// unblocking an account before its window ends).
    pub async fn clear_login_failures(&self, username: &str) -> Result<()> {
        Ok(self
            .inner
            .throttle
            .reset(&self.inner.throttle_keys.account(username))
            .await?)
    }

    /// Deletes the login throttle's windows that have ended, in batches;
    /// returns how many went. The SQL stores keep such rows until this
    /// runs (they count as empty meanwhile); Redis and memory need nothing.
    pub async fn purge_expired_login_throttle(&self, batch: u32) -> Result<u64> {
        let now = now();
        let mut total = 0;
        loop {
            let n = self.inner.throttle.purge_expired(now, batch.max(1)).await?;
            total += n;
            if n < u64::from(batch.max(1)) {
                return Ok(total);
            }
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SecurityConfig {
        &self.inner.config
    }

    /// The token store (the seed's `TokenRepository`).
    pub fn store(&self) -> &Arc<dyn TokenStore> {
        &self.inner.store
    }

    /// The password hasher.
    pub fn passwords(&self) -> &PasswordHasher {
        &self.inner.passwords
    }

    /// The JWT codec (stateless encode/verify).
    pub fn codec(&self) -> &JwtCodec {
        &self.inner.codec
    }

    /// Issues an access token for `sub`, recorded in the store. `extra`
    /// claims are added as given; reserved names (`sub`, `exp`...) are refused.
    /// It belongs to no session: only its own revocation, or a user-wide
    /// one, ends it.
    pub async fn create_access_token(
        &self,
        sub: &str,
        extra: Option<Map<String, Value>>,
    ) -> Result<IssuedToken> {
        self.issue(sub, TokenType::Access, None, extra, None).await
    }

    /// Issues a refresh token for `sub`, starting a new session.
    pub async fn create_refresh_token(
        &self,
        sub: &str,
        extra: Option<Map<String, Value>>,
    ) -> Result<IssuedToken> {
        let session = uuid::Uuid::new_v4().to_string();
        let meta = ClientInfo::default().meta(now());
        self.issue(sub, TokenType::Refresh, Some(session), extra, Some(meta))
            .await
    }

    /// Issues an access and a refresh token for one new session (a login).
    /// Both carry the same `sid`, so logout ends both.
    pub async fn create_token_pair(
        &self,
        sub: &str,
        extra: Option<Map<String, Value>>,
    ) -> Result<TokenPair> {
        self.create_session(sub, extra, &ClientInfo::default())
            .await
    }

    /// Like [`create_token_pair`](Self::create_token_pair), recording the
    /// client the login came from for [`list_sessions`](Self::list_sessions).
    pub async fn create_session(
        &self,
        sub: &str,
        extra: Option<Map<String, Value>>,
        client: &ClientInfo,
    ) -> Result<TokenPair> {
        let session = uuid::Uuid::new_v4().to_string();
        let refresh = self
            .issue(
                sub,
                TokenType::Refresh,
                Some(session.clone()),
                extra.clone(),
                Some(client.meta(now())),
            )
            .await?;
        let access = self
            .issue(sub, TokenType::Access, Some(session), extra, None)
            .await?;
        Ok(pair(access, refresh))
    }

    /// Checks `sub` and `extra` and builds the claims of a new token.
    fn new_claims(
        &self,
        sub: &str,
        token_type: TokenType,
        sid: Option<String>,
        extra: Option<Map<String, Value>>,
        iat: i64,
        exp: i64,
    ) -> Result<Claims> {
        // NUL cannot be stored by every backend (PostgreSQL text refuses it).
        if sub.is_empty() || sub.len() > MAX_SUBJECT_BYTES || sub.contains('\0') {
            return Err(Error::InvalidInput(format!(
                "the subject must be 1 to {MAX_SUBJECT_BYTES} bytes long"
            )));
        }
        let extra = extra.unwrap_or_default();
        if let Some(name) = extra.keys().find(|k| RESERVED_CLAIMS.contains(&k.as_str())) {
            return Err(Error::InvalidInput(format!(
                "`{name}` is a reserved claim and cannot be set as an extra claim"
            )));
        }
        let config = &self.inner.config;
        Ok(Claims {
            sub: sub.to_owned(),
            jti: uuid::Uuid::new_v4().to_string(),
            token_type,
            exp,
            iat,
            nbf: None,
            aud: config.audience().map(|a| Audience::One(a.to_owned())),
            iss: config.issuer().map(str::to_owned),
            sid,
            extra,
        })
    }

    /// Signs claims, refusing a token that validation would refuse as too large.
    fn sign(&self, claims: &Claims) -> Result<String> {
        let token = self.inner.codec.encode(claims)?;
        // Validation refuses tokens over `max_token_bytes` unread; issuing
        // one would hand out a token that fails on every request.
        let max = self.inner.config.max_token_bytes();
        if token.len() > max {
            return Err(Error::InvalidInput(format!(
                "the token would be {} bytes, over max_token_bytes ({max}); \
                 send fewer or smaller extra claims",
                token.len()
            )));
        }
        Ok(token)
    }

    fn ttl(&self, token_type: TokenType) -> Duration {
        match token_type {
            TokenType::Access => self.inner.config.access_token_ttl(),
            TokenType::Refresh => self.inner.config.refresh_token_ttl(),
        }
    }

    async fn issue(
        &self,
        sub: &str,
        token_type: TokenType,
        sid: Option<String>,
        extra: Option<Map<String, Value>>,
        session: Option<SessionMeta>,
    ) -> Result<IssuedToken> {
        let ttl = self.ttl(token_type);
        let iat = now();
        let exp = iat.saturating_add(secs(ttl));
        let claims = self.new_claims(sub, token_type, sid, extra, iat, exp)?;
        let token = self.sign(&claims)?;
        let mut record = record_for(&claims);
        record.session = session;
        self.inner.store.insert(&record).await?;
        Ok(IssuedToken {
            token,
            claims,
            expires_in: ttl.as_secs(),
        })
    }

    /// Stateful validation: signature, `exp`/`nbf`, `aud`/`iss`, the
    /// expected type, `jti` and `sub` present, and the store's record exists,
    /// matches and is not revoked. A store failure is
    /// [`Error::StoreUnavailable`], never a token error.
    ///
    /// In [synced mode](ValidationMode::Synced) an access token is checked
    /// against the in-memory revocation view instead whenever the view can
    /// tell (fresh, token seen on record before, not near a cut-off of its
    /// user); the answers are the same as strict mode's, a revocation made
    /// elsewhere being seen within the feed's delay.
    pub async fn validate_token(&self, token: &str, expected: Option<TokenType>) -> Result<Claims> {
        let result = self.validate_stateful(token, expected).await;
        let mode = match self.inner.view {
            Some(_) => "synced",
            None => "strict",
        };
        self.inner.metrics.validation(mode, expected, &result);
        result
    }

    async fn validate_stateful(&self, token: &str, expected: Option<TokenType>) -> Result<Claims> {
        let claims = self.inner.codec.verify(token, expected)?;
        let view = match &self.inner.view {
            Some(view) if claims.token_type == TokenType::Access => view,
            _ => {
                self.strict_check(&claims).await?;
                return Ok(claims);
            }
        };
        match view.check(&claims) {
            Verdict::Live => Ok(claims),
            Verdict::Revoked => Err(Error::RevokedToken),
            Verdict::AskStore => {
                self.strict_check(&claims).await?;
                // A revocation committed after the read above comes through
                // the feed, and the view's revoked set outranks this entry.
                view.remember(&claims);
                Ok(claims)
            }
        }
    }

    /// The store's verdict on verified claims (strict mode's check).
    async fn strict_check(&self, claims: &Claims) -> Result<()> {
        let record = self.checked_record(claims).await?;
        // A refresh token that was exchanged is spent; only the refresh
        // endpoint looks at it again (for reuse detection).
        if record.consumed_at.is_some() {
            return Err(Error::RevokedToken);
        }
        Ok(())
    }

    /// Synced mode: whether the revocation view is current (`Some(false)`
    /// while it loads or after its feed was lost: requests are then checked
    /// in the store); `None` in strict mode.
    pub fn revocation_view_synced(&self) -> Option<bool> {
        self.inner.view.as_ref().map(|view| view.is_fresh())
    }

    /// Stateless validation: signature and claims only, no store lookup (the
    /// seed's `validate_jwt_stateless`). A revoked token still passes: use it
    /// only where the store cannot be reached.
    pub fn validate_jwt_stateless(
        &self,
        token: &str,
        expected: Option<TokenType>,
    ) -> Result<Claims> {
        let result = self.inner.codec.verify(token, expected);
        self.inner
            .metrics
            .validation("stateless", expected, &result);
        result
    }

    /// Verifies the signature and claims but not expiry (the seed's
    /// `decode_token`). Never use the result to authorize a request.
    pub fn decode_token(&self, token: &str) -> Result<Claims> {
        self.inner.codec.decode(token)
    }

    /// Signs arbitrary claims with the active key (the seed's `encode_jwt`).
    /// The token is not recorded in the store, so `validate_token` refuses it.
    pub fn encode_jwt<T: Serialize>(&self, claims: &T) -> Result<String> {
        self.inner.codec.encode(claims)
    }

    /// Exchanges a refresh token for a new token pair of the same session
    /// (the seed's `refresh_access_token`, with rotation): the refresh token
    /// is consumed and a new one replaces it. See
    /// [`refresh_session`](Self::refresh_session).
    pub async fn refresh_access_token(&self, refresh_token: &str) -> Result<TokenPair> {
        self.refresh_session(refresh_token, &ClientInfo::default())
            .await
    }

    /// Refresh with rotation and reuse detection (RFC 9700 section 4.14.2).
    ///
    /// The refresh token is consumed atomically in the store (of concurrent
    /// refreshes with one token exactly one rotates) and a new pair is
    /// returned: a new refresh token of the same session, expiring one
    /// refresh lifetime from now but never after the session's maximum
    /// lifetime, and a new access token with its own `jti` and `iat`.
    ///
    /// Presenting a consumed token again is reuse: within
    /// [`refresh_reuse_grace`](SecurityConfig::refresh_reuse_grace) of the
    /// rotation, from the client that rotated it (same user agent and
    /// address, as far as both are known: two tabs refreshing at once), the
    /// caller gets the session's current refresh token and a fresh access
    /// token, and nothing is revoked; otherwise the whole session is revoked
    /// (committed before the error returns) and the answer is
    /// [`Error::RefreshTokenReused`].
    ///
    /// It checks the token, not the user: an endpoint built on it should
    /// also check that the user still exists and is active, as
    /// [`auth_router`](crate::auth_router)'s `/auth/refresh` does.
    pub async fn refresh_session(
        &self,
        refresh_token: &str,
        client: &ClientInfo,
    ) -> Result<TokenPair> {
        let result = self.rotate_refresh_token(refresh_token, client).await;
        let outcome = match &result {
            Ok((_, outcome)) => *outcome,
            Err(Error::RefreshTokenReused) => RefreshOutcome::Reused,
            Err(_) => RefreshOutcome::Rejected,
        };
        self.inner.metrics.refresh(outcome);
        if outcome == RefreshOutcome::Reused {
            self.inner.metrics.revocation(RevocationKind::Reuse);
        }
        result.map(|(pair, _)| pair)
    }

    /// [`refresh_session`](Self::refresh_session), saying whether the pair
    /// is new or a concurrent refresh's within the grace.
    async fn rotate_refresh_token(
        &self,
        refresh_token: &str,
        client: &ClientInfo,
    ) -> Result<(TokenPair, RefreshOutcome)> {
        let claims = self
            .inner
            .codec
            .verify(refresh_token, Some(TokenType::Refresh))?;
        let record = self.checked_record(&claims).await?;
        if let Some(consumed_at) = record.consumed_at {
            return self
                .on_consumed(&claims, consumed_at, record.replaced_by, client)
                .await;
        }
        let at = now();
        // A token from before sessions (the seed's) starts its session
        // here: its maximum lifetime counts from the first rotation.
        let started_at = record.session.as_ref().map_or(at, |s| s.started_at);
        let session_end = started_at.saturating_add(secs(self.inner.config.session_max_lifetime()));
        let exp = at
            .saturating_add(secs(self.ttl(TokenType::Refresh)))
            .min(session_end);
        if exp <= at {
            // The session reached its maximum lifetime: log in again.
            return Err(Error::ExpiredToken);
        }
        // A refresh token from before sessions (the seed's) has no `sid`:
        // its successor starts one, so the new tokens can be ended together.
        let sid = claims
            .sid
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let child_claims = self.new_claims(
            &claims.sub,
            TokenType::Refresh,
            Some(sid),
            Some(claims.extra.clone()),
            at,
            exp,
        )?;
        let child_token = self.sign(&child_claims)?;
        let mut child = record_for(&child_claims);
        // The session keeps its start; the client is the latest one seen.
        let mut meta = client.meta(started_at);
        let previous = record.session.unwrap_or_default();
        meta.user_agent = meta.user_agent.or(previous.user_agent);
        meta.ip = meta.ip.or(previous.ip);
        child.session = Some(meta);
        match self.inner.store.rotate(&claims.jti, &child, at).await? {
            Rotation::Rotated => {
                let refresh = IssuedToken {
                    token: child_token,
                    expires_in: u64::try_from(exp - at).unwrap_or(0),
                    claims: child_claims,
                };
                let pair = self.pair_from_refresh(refresh).await?;
                Ok((pair, RefreshOutcome::Rotated))
            }
            Rotation::AlreadyConsumed {
                consumed_at,
                replaced_by,
            } => {
                self.on_consumed(&claims, consumed_at, replaced_by, client)
                    .await
            }
            Rotation::NotLive if record.expires_at <= at => Err(Error::ExpiredToken),
            Rotation::NotLive => Err(Error::RevokedToken),
        }
    }

    /// The store record of verified claims, refused unless it exists,
    /// matches them and is not revoked.
    async fn checked_record(&self, claims: &Claims) -> Result<TokenRecord> {
        let record = self
            .inner
            .store
            .get(&claims.jti)
            .await?
            .ok_or(Error::InvalidToken(InvalidTokenReason::UnknownToken))?;
        if record.user_id != claims.sub || record.token_type != claims.token_type {
            return Err(Error::InvalidToken(InvalidTokenReason::RecordMismatch));
        }
        if record.revoked_at.is_some() {
            return Err(Error::RevokedToken);
        }
        Ok(record)
    }

    /// A consumed refresh token was presented: a concurrent refresh within
    /// the grace interval, or reuse.
    async fn on_consumed(
        &self,
        claims: &Claims,
        consumed_at: i64,
        replaced_by: Option<String>,
        client: &ClientInfo,
    ) -> Result<(TokenPair, RefreshOutcome)> {
        let at = now();
        let grace = secs(self.inner.config.refresh_reuse_grace());
        let successor = match replaced_by.as_deref() {
            Some(jti) if grace > 0 && at.saturating_sub(consumed_at) <= grace => {
                self.inner.store.get(jti).await?
            }
            _ => None,
        };
        // Inside the grace only the client that rotated may come again (two
        // tabs of one browser share its user agent and address): the same
        // token from another client this soon is theft racing its owner.
        let within_grace = successor.is_some()
            && successor
                .as_ref()
                .is_some_and(|r| same_client(client, r.session.as_ref()));
        if within_grace {
            // The successor is handed out again (re-signed: same jti, same
            // claims), so the session still has exactly one live refresh
            // token. If the successor is gone too (rotated again, revoked),
            // the caller is refused but nothing is punished.
            let Some(successor) = successor.filter(|r| {
                r.is_live(at)
                    && r.user_id == claims.sub
                    && r.token_type == TokenType::Refresh
                    && (claims.sid.is_none() || r.family_id == claims.sid)
            }) else {
                return Err(Error::RevokedToken);
            };
            let mut successor_claims = claims.clone();
            successor_claims.sid = successor.family_id;
            successor_claims.jti = successor.jti;
            successor_claims.iat = successor.issued_at;
            successor_claims.exp = successor.expires_at;
            let refresh = IssuedToken {
                token: self.sign(&successor_claims)?,
                expires_in: u64::try_from(successor.expires_at - at).unwrap_or(0),
                claims: successor_claims,
            };
            let pair = self.pair_from_refresh(refresh).await?;
            return Ok((pair, RefreshOutcome::Grace));
        }
        tracing::warn!(
            user_id = %claims.sub,
            session = claims.sid.as_deref().unwrap_or("-"),
            "refresh token reuse detected: the session is revoked"
        );
        let at = now();
        // The session: the token's own, or (for a token from before
        // sessions) the one its successor started.
        let family = match (&claims.sid, replaced_by) {
            (Some(sid), _) => Some(sid.clone()),
            (None, Some(successor)) => self
                .inner
                .store
                .get(&successor)
                .await?
                .and_then(|r| r.family_id),
            (None, None) => None,
        };
        self.inner.store.revoke(&claims.jti, at).await?;
        if let Some(family) = family {
            // Twice, for a refresh racing this revocation: see
            // `revoke_other_sessions`.
            self.inner.store.revoke_family(&family, at).await?;
            self.inner.store.revoke_family(&family, at).await?;
        }
        Err(Error::RefreshTokenReused)
    }

    /// Issues the access token that goes with a session's (new or re-sent)
    /// refresh token.
    async fn pair_from_refresh(&self, refresh: IssuedToken) -> Result<TokenPair> {
        let access = self
            .issue(
                &refresh.claims.sub,
                TokenType::Access,
                refresh.claims.sid.clone(),
                Some(refresh.claims.extra.clone()),
                None,
            )
            .await?;
        // A logout (or a reuse revocation) may have landed between the
        // rotation and the insert of the access token: its family
        // revocation then ran before our record existed and missed it. Look
        // again: if the refresh token is no longer live, the new access
        // token must not be either. (Either the revocation saw our record,
        // or we see the revocation.)
        let still_live = self
            .inner
            .store
            .get(&refresh.claims.jti)
            .await?
            .is_some_and(|r| r.is_live(now()));
        if !still_live {
            self.inner.store.revoke(&access.claims.jti, now()).await?;
            return Err(Error::RevokedToken);
        }
        Ok(pair(access, refresh))
    }

    /// Revokes one token (the seed's `revoke_token`). The signature must be
    /// valid; expiry is not checked. Revoking twice is not an error.
    pub async fn revoke_token(&self, token: &str) -> Result<()> {
        let claims = self.inner.codec.decode(token)?;
        self.revoke_jti(&claims.jti).await.map(|_| ())
    }

    /// Revokes a token by id (for admins, who see ids but never tokens);
    /// returns whether a live token changed.
    pub async fn revoke_jti(&self, jti: &str) -> Result<bool> {
        let changed = self.inner.store.revoke(jti, now()).await?;
        self.inner.metrics.revocation(RevocationKind::Token);
        Ok(changed)
    }

    /// Ends the login session a token belongs to: the token itself and every
    /// token sharing its `sid` (the refresh token and the access tokens
    /// minted from it). A token without `sid` is revoked alone. Expired
    /// tokens are accepted, so clients can always log out. Returns how many
    /// tokens were revoked.
    pub async fn logout(&self, token: &str) -> Result<u64> {
        let claims = self.inner.codec.decode(token)?;
        let at = now();
        let mut revoked = u64::from(self.inner.store.revoke(&claims.jti, at).await?);
        if let Some(sid) = &claims.sid {
            revoked += self.inner.store.revoke_family(sid, at).await?;
            // Twice, for a refresh racing this logout: see
            // `revoke_other_sessions`.
            revoked += self.inner.store.revoke_family(sid, at).await?;
        }
        self.inner.metrics.revocation(if claims.sid.is_some() {
            RevocationKind::Session
        } else {
            RevocationKind::Token
        });
        Ok(revoked)
    }

    /// Revokes every token of a user, on every device, including access
    /// tokens already issued ("log out everywhere"; the seed's
    /// `revoke_all_user_tokens`). One write however many tokens the user
    /// has: a user-level cut-off ([`TokenStore::cut_off_user`]). Tokens
    /// issued afterwards (a new login) are not affected.
    pub async fn revoke_all_user_tokens(&self, user_id: &str) -> Result<()> {
        self.inner.store.cut_off_user(user_id, now()).await?;
        self.inner.metrics.revocation(RevocationKind::User);
        Ok(())
    }

    /// Revokes every token of a user except those of the session
    /// `keep_session` ("log out other devices"); returns how many
    /// *sessions* (logins, each with its access and refresh tokens) it
    /// ended: those that had a live token when the call began. Tokens
    /// that belong to no session (issued alone, without a `sid`, by
    /// [`create_access_token`](Self::create_access_token)) are revoked too
    /// but not counted.
    pub async fn revoke_other_sessions(&self, user_id: &str, keep_session: &str) -> Result<u64> {
        let others: std::collections::HashSet<String> = self
            .inner
            .store
            .list_live(user_id, now())
            .await?
            .into_iter()
            .filter_map(|r| r.family_id)
            .filter(|sid| sid != keep_session)
            .collect();
        let at = now();
        self.inner
            .store
            .revoke_user(user_id, Some(keep_session), at)
            .await?;
        // A second pass, started after the first committed. Under READ
        // COMMITTED (PostgreSQL) the first UPDATE works on a snapshot and can
        // miss an access token a concurrent refresh inserts meanwhile; that
        // refresh's own re-check (see `pair_from_refresh`) may also
        // have run before the first pass committed. Whatever the first pass
        // missed was inserted before the second began, so the second sees
        // it; a token inserted later is caught by its refresh's re-check.
        self.inner
            .store
            .revoke_user(user_id, Some(keep_session), at)
            .await?;
        self.inner.metrics.revocation(RevocationKind::OtherSessions);
        Ok(u64::try_from(others.len()).unwrap_or(u64::MAX))
    }

    /// The user's live login sessions, oldest first.
    pub async fn list_sessions(&self, user_id: &str) -> Result<Vec<Session>> {
        let live = self.inner.store.list_live(user_id, now()).await?;
        let mut sessions: Vec<Session> = live
            .into_iter()
            .filter(|r| r.token_type == TokenType::Refresh)
            .filter_map(|r| {
                let id = r.family_id?;
                let meta = r.session.unwrap_or(SessionMeta {
                    started_at: r.issued_at,
                    ..SessionMeta::default()
                });
                Some(Session {
                    id,
                    created_at: meta.started_at,
                    last_used_at: r.issued_at,
                    expires_at: r.expires_at,
                    user_agent: meta.user_agent,
                    ip: meta.ip,
                })
            })
            .collect();
        sessions.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(sessions)
    }

    /// Ends one session of `user_id` by its id; `false` when the user has
    /// no live session with that id (someone else's sessions included), so
    /// nobody can end another user's session.
    pub async fn revoke_session(&self, user_id: &str, session_id: &str) -> Result<bool> {
        let owned = self
            .inner
            .store
            .list_live(user_id, now())
            .await?
            .iter()
            .any(|r| r.family_id.as_deref() == Some(session_id));
        if !owned {
            return Ok(false);
        }
        let at = now();
        self.inner.store.revoke_family(session_id, at).await?;
        // Twice, for a refresh racing this revocation: see
        // `revoke_other_sessions`.
        self.inner.store.revoke_family(session_id, at).await?;
        self.inner.metrics.revocation(RevocationKind::Session);
        Ok(true)
    }

    /// Deletes expired token records in batches; returns how many went.
    pub async fn purge_expired_tokens(&self, batch: u32) -> Result<u64> {
        let cutoff = now();
        let mut total = 0;
        loop {
            let n = self.inner.store.purge_expired(cutoff, batch.max(1)).await?;
            total += n;
            if n < u64::from(batch.max(1)) {
                return Ok(total);
            }
        }
    }

    /// The user's live tokens (not revoked, consumed or expired).
    pub async fn list_user_tokens(&self, user_id: &str) -> Result<Vec<TokenRecord>> {
        Ok(self.inner.store.list_live(user_id, now()).await?)
    }

    /// How long the store took to answer a ping, or why it did not. The
    /// ping gets [`HEALTH_PING_TIMEOUT`] at most (less than requests get):
    /// a health check must answer before its prober gives up, and during
    /// an outage the pool would otherwise retry a refused connection until
    /// the store timeout.
    pub(crate) async fn ping_store(&self) -> Result<Duration> {
        let started = std::time::Instant::now();
        let budget = HEALTH_PING_TIMEOUT.min(self.inner.config.store_timeout());
        match tokio::time::timeout(budget, self.inner.store.ping()).await {
            Ok(answer) => answer?,
            Err(_) => {
                return Err(StoreError::new(
                    "ping",
                    format!("the store did not answer within {budget:?}"),
                )
                .into());
            }
        }
        Ok(started.elapsed())
    }
}

/// The most a health check waits for the store (see `ping_store`): below
/// the 3 to 5 seconds load balancers commonly allow a probe.
const HEALTH_PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Starts the revocation view of synced mode on the store's feed.
fn start_view(config: &SecurityConfig, store: &dyn TokenStore) -> Result<Arc<RevocationView>> {
    let feed = store.revocation_feed().ok_or_else(|| {
        Error::config(format!(
            "JWT_VALIDATION_MODE=synced needs a store with a revocation feed; the {} store has none \
             (use strict)",
            store.backend()
        ))
    })?;
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(Error::config(
            "synced validation runs a background task: build Security inside a Tokio runtime",
        ));
    }
    let interval = config.sync_interval();
    // Either side of a cut-off, `iat` cannot tell whether the store's
    // cut-off covers a token: clocks of instances differ (up to the leeway
    // we tolerate) and an insert may take up to the store timeout.
    let margin = config.leeway() + config.store_timeout();
    let view = Arc::new(RevocationView::new(interval, margin));
    view.start(feed, interval, config.store_timeout());
    Ok(view)
}

/// Whether `client` could be the client a session last saw: compares what
/// both sides know (a value missing on either side says nothing).
fn same_client(client: &ClientInfo, seen: Option<&SessionMeta>) -> bool {
    let Some(seen) = seen else {
        return true;
    };
    let now = client.meta(0);
    let agrees = |a: &Option<String>, b: &Option<String>| match (a, b) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    };
    agrees(&now.user_agent, &seen.user_agent) && agrees(&now.ip, &seen.ip)
}

fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

/// The store record of a token about to be issued.
fn record_for(claims: &Claims) -> TokenRecord {
    TokenRecord::new(
        claims.jti.clone(),
        claims.token_type,
        claims.sub.clone(),
        claims.sid.clone(),
        claims.iat,
        claims.exp,
    )
}

fn pair(access: IssuedToken, refresh: IssuedToken) -> TokenPair {
    TokenPair {
        access_token: access.token,
        refresh_token: refresh.token,
        token_type: "bearer".into(),
        expires_in: access.expires_in,
        refresh_expires_in: refresh.expires_in,
    }
}
