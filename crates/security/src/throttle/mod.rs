//! Login throttling: failed logins are limited per account and per client
//! address, in fixed windows, before any password is checked.
//!
//! The policy (OWASP Authentication Cheat Sheet, "Login Throttling" and
//! "Account Lockout"):
//!
//! - **Per account** ([`login_max_failures_per_account`](crate::SecurityConfigBuilder::login_max_failures_per_account),
//!   default 5): stops many addresses guessing one account's password.
//! - **Per address** ([`login_max_failures_per_address`](crate::SecurityConfigBuilder::login_max_failures_per_address),
//!   default 20): stops one client spraying passwords over many accounts.
//! - **A fixed window** ([`login_throttle_window`](crate::SecurityConfigBuilder::login_throttle_window),
//!   default 15 minutes), starting at the first attempt: once a key has had
//!   its limit of attempts in a window, further attempts are refused
//!   (`429 Too Many Requests` with `Retry-After`) until that window ends.
//!   Refused attempts do not extend it, so a throttle always ends: an
//!   attacker cannot lock a victim out for good, only keep the account
//!   throttled by failing again after each window (at most the limit per
//!   window, from any address).
//! - **Successful logins are not slowed**: a success clears its account's
//!   count, and does not count against its address (but does not clear
//!   the address either: one valid account must not reset the counter of
//!   an address that is spraying others).
//! - **No enumeration**: the count is taken before the user is looked up,
//!   so unknown and known usernames are counted and refused alike, and a
//!   refused attempt costs no password hashing.
//!
//! Every attempt is counted *before* its password is checked, atomically
//! ("count, then compare with the limit"), and taken back when it
//! succeeds or could not be checked: so concurrent attempts cannot slip
//! past a limit together, and an attempt cut short (the client hangs up
//! during hashing) still counts.
//!
//! # Attempts in flight
//!
//! Counting first has a cost: while their passwords are being checked,
//! attempts fill the window as if they had failed, so the sixth of sixteen
//! concurrent *correct* logins to one account would be refused (and a
//! success must never be slowed, let alone refused). A count alone cannot
//! tell an attempt in flight from a failure, so an attempt that a limit
//! refuses does not give up at once:
//!
//! 1. it takes its hit back ([`LoginThrottle::undo`]): a refused attempt
//!    is no attempt, and neither extends the window nor fills it;
//! 2. if attempts of the same key are in flight *in this process*, it waits
//!    for the next of their verdicts (each admitted attempt is registered
//!    until its [`LoginAttempt`] is decided or dropped, and wakes the
//!    waiters then), and tries again: a success clears the account's
//!    count (and frees its slot at the address), so the waiting attempts
//!    get in, a few at a time, however many arrive together;
//! 3. with none in flight here, attempts may still be in flight in *other*
//!    processes sharing the counts (SQL, Redis): it polls the counts for a
//!    short while ([`REMOTE_WAIT`], a little above one password
//!    verification, with growing pauses). A throttle whose counts are
//!    this process's alone ([`LoginThrottle::is_local`], the memory
//!    throttle) only looks once more after [`LOCAL_RECHECK`] (an attempt
//!    is counted an instant before it registers as in flight);
//! 4. when nothing it waits for remains, the refusal is final: `429` with
//!    a `Retry-After` taken at that moment, and this last hit stays
//!    counted (the window is fixed, so it extends nothing; it marks the
//!    first refusal of a window, the one logged at `info`).
//!
//! Concurrent *wrong* passwords still cannot slip past a limit together:
//! waiting attempts are admitted only into slots that a success or an
//! abandoned check freed, and a failure frees none. When committed
//! failures fill the window and nothing is in flight, the refusal comes
//! after [`LOCAL_RECHECK`] (memory throttle) or [`REMOTE_WAIT`] (shared counts),
//! costs no hashing and is the same for every username. The only wait
//! that is not bounded by verdicts is capped by [`LOCAL_WAIT`]. This needs
//! no other store operation than the five backends' `hit`, `undo` and
//! `reset`, and no change to their tables or keys.
//!
//! The counts live in a [`LoginThrottle`]: with a shared store (SQL or
//! Redis, see [`TokenStore::login_throttle`](crate::TokenStore::login_throttle))
//! every instance sees the same counts; otherwise in a bounded
//! [`MemoryLoginThrottle`] per process. If the throttle's store fails, the
//! login fails with [`Error::StoreUnavailable`] (503): an outage never
//! lets attempts through uncounted.
//!
//! Names are hashed into [`ThrottleKey`]s: usernames and addresses never
//! reach the store or the logs. The hash is keyed with a secret every
//! instance shares ([`ThrottleKeys`]), so the keys in the throttle table
//! and the log tell nothing to whoever reads them without it; with a key
//! file and no `LOGIN_THROTTLE_SECRET` the hash is unkeyed, and a key is
//! then only a pseudonym (a guessed username can be confirmed against it).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::StoreError;
use crate::metrics::{LoginOutcome, Recorder};

mod inflight;
mod key;
mod memory;
#[cfg(feature = "mysql")]
pub(crate) mod mysql;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
#[cfg(feature = "redis")]
pub(crate) mod redis;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;
mod timeout;
mod turns;

pub(crate) use inflight::InFlight;
pub use key::{ThrottleKey, ThrottleKeys};
pub use memory::MemoryLoginThrottle;
pub(crate) use timeout::TimeoutThrottle;
pub(crate) use turns::{Turn, Turns};

/// A key's current window, as [`LoginThrottle::hit`] leaves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleWindow {
    /// Attempts counted in the window, this one included.
    pub attempts: u64,
    /// When the window ends (Unix seconds); the count starts over after it.
    pub ends_at: i64,
}

impl ThrottleWindow {
    /// The window as the shared stores keep it, with a signed count (SQL
    /// integers, Redis numbers); a count below zero, which no store writes,
    /// reads as none.
    #[cfg_attr(
        not(any(
            feature = "sqlite",
            feature = "postgres",
            feature = "mysql",
            feature = "redis"
        )),
        allow(dead_code)
    )]
    pub(crate) fn from_stored(attempts: i64, ends_at: i64) -> Self {
        Self {
            attempts: u64::try_from(attempts).unwrap_or(0),
            ends_at,
        }
    }

    /// How long until the window ends, seen at `now`: at least one second.
    pub fn retry_after(&self, now: i64) -> Duration {
        let secs = self.ends_at.saturating_sub(now).max(1);
        Duration::from_secs(u64::try_from(secs).unwrap_or(1))
    }
}

/// Where login attempts are counted: fixed-window counters by key. Object
/// safe: held as `Arc<dyn LoginThrottle>`.
///
/// The policy (limits, which keys, when to take back) is
/// [`Security::begin_login`](crate::Security::begin_login)'s; a backend
/// only counts. Every backend passes the same behaviour tests. Times are
/// Unix seconds given by the caller, so instances must keep their clocks
/// roughly in step (as they must for token expiry anyway).
#[async_trait]
pub trait LoginThrottle: Send + Sync + 'static {
    /// A short name of the backend for status output (`memory`, `postgres`...).
    fn backend(&self) -> &'static str;

    /// Whether the counts are this process's alone (no other process
    /// counts in them), as in [`MemoryLoginThrottle`]. Then an attempt
    /// refused while no attempt of its key is in flight here is refused
    /// almost at once; with shared counts (the default answer, `false`)
    /// it first waits up to half a second for attempts other processes
    /// may have in flight (see [`Security::begin_login`](crate::Security::begin_login)).
    fn is_local(&self) -> bool {
        false
    }

    /// Counts one attempt against `key`, atomically, and returns its window:
    /// if the key has no window that ends after `now`, a new one starts
    /// with one attempt and ends at `now + window_secs`; otherwise its
    /// count goes up by one and its end stays. Of any number of concurrent
    /// hits on one key, each sees a different count.
    async fn hit(
        &self,
        key: &ThrottleKey,
        window_secs: i64,
        now: i64,
    ) -> Result<ThrottleWindow, StoreError>;

    /// Takes back one attempt that [`hit`](Self::hit) counted in `window`:
    /// the count goes down by one if the key's current window is still
    /// that one (same end) and its count is above zero; otherwise nothing
    /// changes.
    async fn undo(&self, key: &ThrottleKey, window: &ThrottleWindow) -> Result<(), StoreError>;

    /// Forgets `key`'s window and count.
    async fn reset(&self, key: &ThrottleKey) -> Result<(), StoreError>;

    /// Deletes up to `batch` windows that ended at or before `now`; returns
    /// how many were deleted. Call until it returns less than `batch`. A
    /// backend whose windows expire by themselves (Redis) has nothing to
    /// delete and returns 0.
    async fn purge_expired(&self, now: i64, batch: u32) -> Result<u64, StoreError>;
}

/// One login attempt that [`Security::begin_login`](crate::Security::begin_login)
/// counted: report how it ended with [`succeeded`](Self::succeeded),
/// [`failed`](Self::failed) or [`abandoned`](Self::abandoned).
///
/// Dropped without a verdict, it stays counted, as a failure: a client
/// that hangs up while its password is checked gains nothing.
#[must_use = "report how the login ended: succeeded(), failed() or abandoned()"]
pub struct LoginAttempt {
    pub(crate) throttle: Arc<dyn LoginThrottle>,
    pub(crate) account: Option<(ThrottleKey, ThrottleWindow, u32)>,
    pub(crate) address: Option<(ThrottleKey, ThrottleWindow, u32)>,
    /// Where the verdict is counted; `None` while [`begin`] decides.
    pub(crate) metrics: Option<Recorder>,
    /// Where the attempt is registered as in flight once admitted; told
    /// when it is dropped, after its verdict is in the counts.
    pub(crate) inflight: Option<Arc<InFlight>>,
    /// The account's turn to have a password checked (see `turns`); a
    /// failure keeps it until its answer is due.
    pub(crate) turn: Option<Turn>,
}

impl Drop for LoginAttempt {
    fn drop(&mut self) {
        if let Some(inflight) = self.inflight.take() {
            for (key, _, _) in self.account.iter().chain(self.address.iter()) {
                inflight.decide(key);
            }
        }
    }
}

impl std::fmt::Debug for LoginAttempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginAttempt")
            .field("account", &self.account)
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl LoginAttempt {
    fn count(&self, outcome: LoginOutcome) {
        if let Some(metrics) = &self.metrics {
            metrics.login(outcome);
        }
    }

    /// The hashed account key the attempt counts under, if the account
    /// limit is on: safe to log (never the username itself).
    pub fn account_key(&self) -> Option<&ThrottleKey> {
        self.account.as_ref().map(|(key, _, _)| key)
    }

    /// The hashed address key the attempt counts under, if the address
    /// limit is on and the client address is known.
    pub fn address_key(&self) -> Option<&ThrottleKey> {
        self.address.as_ref().map(|(key, _, _)| key)
    }

    /// The password was right: the account's count is cleared, and the
    /// attempt no longer counts against the address (whose count is not
    /// cleared). A store failure here is logged, not returned: the counts
    /// it leaves are only ever too high.
    pub async fn succeeded(self) {
        self.count(LoginOutcome::Success);
        if let Some((key, _, _)) = &self.account
            && let Err(err) = self.throttle.reset(key).await
        {
            warn_unavailable(&err, "could not clear an account's failed logins");
        }
        if let Some((key, window, _)) = &self.address
            && let Err(err) = self.throttle.undo(key, window).await
        {
            warn_unavailable(&err, "could not take back a login attempt");
        }
    }

    /// The credentials were wrong (or the user may not log in): the
    /// attempt stays counted. Logs, at `warn`, when this failure used up a
    /// limit (the next attempts are refused until the window ends), with
    /// the hashed key only. This ends the account's turn at once; a login
    /// handler answering a client reports failures with
    /// [`Security::fail_login`](crate::Security::fail_login) instead, which
    /// holds the answer to the failure floor and keeps the turn until then.
    pub fn failed(self) {
        self.count(LoginOutcome::BadCredentials);
        for (kind, slot) in [("account", &self.account), ("address", &self.address)] {
            if let Some((key, window, limit)) = slot
                && window.attempts == u64::from(*limit)
            {
                tracing::warn!(
                    throttle_key = %key,
                    limit = kind,
                    failures = window.attempts,
                    window_ends_at = window.ends_at,
                    "login throttle engaged: further attempts are refused until the window ends"
                );
            }
        }
    }

    /// The password could not be checked (the user store failed, the
    /// request was refused before the check): the attempt is taken back
    /// from both counts. Failures are logged, not returned.
    pub async fn abandoned(self) {
        self.count(LoginOutcome::Error);
        self.take_back().await;
    }

    /// Takes the attempt back from both counts, logging failures.
    async fn take_back(&self) {
        for (key, window, _) in self.account.iter().chain(self.address.iter()) {
            if let Err(err) = self.throttle.undo(key, window).await {
                warn_unavailable(&err, "could not take back a login attempt");
            }
        }
    }
}

fn warn_unavailable(err: &StoreError, what: &str) {
    tracing::warn!(
        operation = err.operation(),
        cause = %std::error::Error::source(err).map(ToString::to_string).unwrap_or_default(),
        "{what}"
    );
}

/// The limits [`Security::begin_login`](crate::Security::begin_login) applies.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) per_account: u32,
    pub(crate) per_address: u32,
    pub(crate) window_secs: i64,
}

/// Why an attempt was refused: which limit, and its window.
pub(crate) struct Refused {
    pub(crate) limit: &'static str,
    pub(crate) key: ThrottleKey,
    pub(crate) window: ThrottleWindow,
    pub(crate) max: u32,
}

/// How long, in all, an attempt refused while attempts of the same key
/// are in flight *in this process* may wait for their verdicts: their
/// verdicts wake it, so this only bounds a pathological wait (a stream of
/// attempts that always wins the freed slots).
pub(crate) const LOCAL_WAIT: Duration = Duration::from_secs(5);
/// How long an attempt refused with none in flight here waits for
/// attempts that may be in flight in *other* processes sharing the
/// counts (they cannot wake it: it polls): a little above one password
/// verification, a bcrypt cost-12 one included.
pub(crate) const REMOTE_WAIT: Duration = Duration::from_millis(500);
/// The same when the counts are this process's alone
/// ([`LoginThrottle::is_local`]): no other process has attempts in
/// flight, but an attempt of this one is counted an instant before it is
/// registered as in flight, so a refusal that finds none looks once more.
pub(crate) const LOCAL_RECHECK: Duration = Duration::from_millis(25);
/// The first pause before trying a refused attempt again; it doubles up
/// to [`MAX_RETRY_PAUSE`].
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(20);
/// The longest pause between two tries.
const MAX_RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Counts an attempt for `account` (if given) from `ip` (if known) within
/// the limits: an attempt refused while others are in flight takes its
/// hit back, waits for them and tries again (see the module docs); the
/// last refusal is final and stays counted. `now` gives the time, in
/// Unix seconds, of each try.
pub(crate) async fn begin(
    throttle: &Arc<dyn LoginThrottle>,
    inflight: &Arc<InFlight>,
    keys: &ThrottleKeys,
    limits: Limits,
    account: Option<&str>,
    ip: Option<IpAddr>,
    now: impl Fn() -> i64,
) -> Result<Result<LoginAttempt, Refused>, StoreError> {
    let started = tokio::time::Instant::now();
    let remote_wait = if throttle.is_local() {
        LOCAL_RECHECK
    } else {
        REMOTE_WAIT
    };
    let mut pause = FIRST_RETRY_PAUSE;
    loop {
        let refused = match try_begin(throttle, keys, limits, account, ip, now()).await? {
            Ok(mut attempt) => {
                for (key, _, _) in attempt.account.iter().chain(attempt.address.iter()) {
                    inflight.admit(key);
                }
                attempt.inflight = Some(Arc::clone(inflight));
                return Ok(Ok(attempt));
            }
            Err(refused) => refused,
        };
        // In flight here: their verdicts wake us. Otherwise only attempts
        // of other processes can be in flight: poll for a short while.
        let watch = inflight.watch(&refused.key);
        let budget = if watch.is_some() {
            LOCAL_WAIT
        } else {
            remote_wait
        };
        let left = budget.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Ok(Err(refused));
        }
        // Not final: the refused hit is no attempt at all.
        throttle.undo(&refused.key, &refused.window).await?;
        // Spread the retries of attempts refused together.
        let jitter = rand::random_range(0..=pause.as_millis() / 2);
        let step = (pause + Duration::from_millis(u64::try_from(jitter).unwrap_or(0)))
            .min(MAX_RETRY_PAUSE)
            .min(left);
        match watch {
            Some(watch) => watch.decided_within(step).await,
            None => tokio::time::sleep(step).await,
        }
        pause = (pause * 2).min(MAX_RETRY_PAUSE);
    }
}

/// One try at counting an attempt: address first, so a refused address
/// never touches the account's count; an account refusal takes the
/// address's attempt back (a refused attempt checks no password, so it
/// is no failure). The refused hit itself stays; [`begin`] decides.
async fn try_begin(
    throttle: &Arc<dyn LoginThrottle>,
    keys: &ThrottleKeys,
    limits: Limits,
    account: Option<&str>,
    ip: Option<IpAddr>,
    now: i64,
) -> Result<Result<LoginAttempt, Refused>, StoreError> {
    let mut attempt = LoginAttempt {
        throttle: Arc::clone(throttle),
        account: None,
        address: None,
        metrics: None,
        inflight: None,
        turn: None,
    };
    if let Some(ip) = ip.filter(|_| limits.per_address > 0) {
        let key = keys.address(ip);
        let window = throttle.hit(&key, limits.window_secs, now).await?;
        if window.attempts > u64::from(limits.per_address) {
            return Ok(Err(Refused {
                limit: "address",
                key,
                window,
                max: limits.per_address,
            }));
        }
        attempt.address = Some((key, window, limits.per_address));
    }
    if let Some(name) = account.filter(|_| limits.per_account > 0) {
        let key = keys.account(name);
        let window = match throttle.hit(&key, limits.window_secs, now).await {
            Ok(window) => window,
            Err(err) => {
                attempt.take_back().await;
                return Err(err);
            }
        };
        if window.attempts > u64::from(limits.per_account) {
            attempt.take_back().await;
            return Ok(Err(Refused {
                limit: "account",
                key,
                window,
                max: limits.per_account,
            }));
        }
        attempt.account = Some((key, window, limits.per_account));
    }
    Ok(Ok(attempt))
}

impl Refused {
    /// Logs the refusal: at `info` for the first one of a window, at
    /// `debug` after it (an attack must not flood the log).
    pub(crate) fn log(&self) {
        if self.window.attempts == u64::from(self.max) + 1 {
            tracing::info!(
                throttle_key = %self.key,
                limit = self.limit,
                window_ends_at = self.window.ends_at,
                "login refused: too many failed attempts"
            );
        } else {
            tracing::debug!(
                throttle_key = %self.key,
                limit = self.limit,
                window_ends_at = self.window.ends_at,
                "login refused: too many failed attempts"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_at_least_a_second() {
        let w = ThrottleWindow {
            attempts: 9,
            ends_at: 100,
        };
        assert_eq!(w.retry_after(40), Duration::from_secs(60));
        assert_eq!(w.retry_after(100), Duration::from_secs(1));
        assert_eq!(w.retry_after(500), Duration::from_secs(1));
    }
}
