//! Password hashing: argon2id for new hashes, bcrypt hashes still verify.
//!
//! - New hashes are argon2id with OWASP's minimum parameters as the floor
//!   (19 MiB memory, 2 iterations, 1 lane) unless a stronger policy is set.
//! - Stored hashes in the PHC `$argon2id$`/`$argon2i$` form and bcrypt's
//!   `$2a$`/`$2b$`/`$2y$` forms (as Python's passlib writes them) verify.
//!   [`PasswordVerification::needs_rehash`] says when a stored hash is of an
//!   older scheme or weaker than the policy, so callers can upgrade it.
//! - A malformed stored hash verifies as `false` and is logged without the hash.
//! - Passwords are normalised to Unicode NFKC (NIST SP 800-63B 5.1.1.2)
//!   before hashing and before verifying, so the same password typed on two
//!   keyboards or input methods is the same password: the "ﬁ" ligature and
//!   "fi", full-width "ｐａｓｓ" and "pass", a composed "é" (U+00E9) and "e"
//!   followed by a combining acute accent (U+0301) all hash alike. It is
//!   not case folding: "Pass" and "pass" stay different passwords.
//! - Hashes made before normalisation (by this crate before it normalised,
//!   or by passlib or argon2-cffi, which hash the raw UTF-8 bytes) still
//!   verify: the NFKC form is tried first and, if it does not match and the
//!   password as sent differs from its NFKC form, the password as sent.
//!   A match on the raw form sets [`PasswordVerification::needs_rehash`],
//!   so the next successful login stores a hash of the NFKC form. Unknown
//!   users ([`PasswordHasher::verify_dummy`]) go through the same two steps,
//!   so the fallback reveals nothing about who exists.
//! - Passwords longer than [`PasswordPolicy::max_password_bytes`] are
//!   refused, both as sent (checked before normalising, so a 10 MB password
//!   costs no CPU) and once normalised (NFKC can expand a character up to 18
//!   characters; the normaliser stops as soon as the limit is passed).
//! - Copies of the password made here, its NFKC form included, are zeroed
//!   when dropped ([`zeroize`]). The normaliser's own small scratch buffers
//!   (the `unicode-normalization` crate's, used only for runs of combining
//!   marks) are outside our reach.
//! - bcrypt reads only the first 72 bytes of a password. For verifying
//!   existing bcrypt hashes we keep that behaviour (it is how passlib made
//!   them; refusing would lock those users out), and flag the hash for
//!   rehashing so the next successful login moves it to argon2id, which
//!   reads every byte: from then on, passwords that share their first 72
//!   bytes are different passwords, and the one typed at that login is the
//!   one kept. New bcrypt hashes are never made.
//! - Hashing runs on tokio's blocking pool, at most one job per CPU core at a
//!   time, so a flood of logins cannot stall token validation.

use std::sync::{Arc, OnceLock};

use argon2::{
    Algorithm, Argon2, Params, Version,
    password_hash::{PasswordHasher as _, PasswordVerifier as _, phc::PasswordHash},
};
use tokio::sync::{OnceCell, Semaphore};
use unicode_normalization::{IsNormalized, UnicodeNormalization as _, is_nfkc_quick};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// How new hashes are made and which inputs are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// argon2 memory cost in KiB (floor: 19 456, OWASP).
    pub memory_kib: u32,
    /// argon2 iterations (floor: 2).
    pub iterations: u32,
    /// argon2 lanes (floor: 1).
    pub parallelism: u32,
    /// Longest password accepted, in bytes, both as sent and in Unicode NFKC
    /// form (default 1024).
    pub max_password_bytes: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
            max_password_bytes: 1024,
        }
    }
}

impl PasswordPolicy {
    /// The smallest [`max_password_bytes`](Self::max_password_bytes)
    /// allowed: NIST SP 800-63B asks that at least 64 characters be accepted.
    pub const MIN_MAX_PASSWORD_BYTES: usize = 64;
    /// The largest [`max_password_bytes`](Self::max_password_bytes)
    /// allowed: longer inputs only cost CPU.
    pub const MAX_MAX_PASSWORD_BYTES: usize = 64 * 1024;

    /// The policy from the `PASSWORD_*` environment variables (see
    /// [`from_lookup`](Self::from_lookup)); unset ones keep their defaults.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The policy from any name -> value lookup: `PASSWORD_ARGON2_MEMORY_KIB`,
    /// `PASSWORD_ARGON2_ITERATIONS`, `PASSWORD_ARGON2_PARALLELISM` and
    /// `PASSWORD_MAX_BYTES`; unset or empty ones keep their defaults. A value
    /// that is not a number, or a policy that [`validate`](Self::validate)
    /// refuses, is an [`Error::Config`] naming the variable.
    ///
    /// ```
    /// use fastcore_security::PasswordPolicy;
    ///
    /// let policy = PasswordPolicy::from_lookup(|name| {
    ///     (name == "PASSWORD_ARGON2_MEMORY_KIB").then(|| "65536".to_owned())
    /// })?;
    /// assert_eq!(policy.memory_kib, 65_536);
    /// assert_eq!(policy.iterations, 2);
    ///
    /// let bad = PasswordPolicy::from_lookup(|name| {
    ///     (name == "PASSWORD_ARGON2_ITERATIONS").then(|| "1".to_owned())
    /// });
    /// assert!(bad.unwrap_err().to_string().contains("PASSWORD_ARGON2_ITERATIONS"));
    /// # Ok::<(), fastcore_security::Error>(())
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut policy = Self::default();
        let mut given = Vec::new();
        let mut number =
            |name: &'static str| -> Result<Option<u64>> {
                let Some(value) = lookup(name).filter(|v| !v.trim().is_empty()) else {
                    return Ok(None);
                };
                given.push(name);
                value.trim().parse::<u64>().map(Some).map_err(|_| {
                    Error::Config(format!("{name} must be a whole number, got {value:?}"))
                })
            };
        // Out-of-range numbers saturate and are then refused by `validate`.
        let saturate = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        if let Some(v) = number("PASSWORD_ARGON2_MEMORY_KIB")? {
            policy.memory_kib = saturate(v);
        }
        if let Some(v) = number("PASSWORD_ARGON2_ITERATIONS")? {
            policy.iterations = saturate(v);
        }
        if let Some(v) = number("PASSWORD_ARGON2_PARALLELISM")? {
            policy.parallelism = saturate(v);
        }
        if let Some(v) = number("PASSWORD_MAX_BYTES")? {
            policy.max_password_bytes = usize::try_from(v).unwrap_or(usize::MAX);
        }
        policy.validate().map_err(|e| match (e, given.as_slice()) {
            (e, []) => e,
            // The message, not the error: its Display already says
            // "configuration error: ", once is enough.
            (Error::Config(message), names) => {
                Error::Config(format!("{message} (from {})", names.join(", ")))
            }
            (e, _) => e,
        })?;
        Ok(policy)
    }

    /// Checks the policy: argon2id parameters at or above OWASP's floor
    /// (m=19456 KiB, t=2, p=1) and within what this crate verifies (see
    /// the module docs), and a password length limit from
    /// [`MIN_MAX_PASSWORD_BYTES`](Self::MIN_MAX_PASSWORD_BYTES) to
    /// [`MAX_MAX_PASSWORD_BYTES`](Self::MAX_MAX_PASSWORD_BYTES).
    ///
    /// ```
    /// use fastcore_security::PasswordPolicy;
    ///
    /// assert!(PasswordPolicy::default().validate().is_ok());
    /// let weak = PasswordPolicy { memory_kib: 4096, ..PasswordPolicy::default() };
    /// assert!(weak.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<()> {
        self.argon2().map(|_| ())
    }

    fn argon2(&self) -> Result<Argon2<'static>> {
        if self.memory_kib < 19_456 || self.iterations < 2 || self.parallelism < 1 {
            return Err(Error::Config(
                "the password policy is below OWASP's argon2id floor (m=19456 KiB, t=2, p=1)"
                    .into(),
            ));
        }
        if self.memory_kib > MAX_ARGON2_MEMORY_KIB
            || self.iterations > MAX_ARGON2_ITERATIONS
            || self.parallelism > MAX_ARGON2_PARALLELISM
        {
            return Err(Error::Config(format!(
                "the password policy is above what this crate verifies \
                 (m at most {MAX_ARGON2_MEMORY_KIB} KiB, t at most {MAX_ARGON2_ITERATIONS}, \
                 p at most {MAX_ARGON2_PARALLELISM})"
            )));
        }
        if !(Self::MIN_MAX_PASSWORD_BYTES..=Self::MAX_MAX_PASSWORD_BYTES)
            .contains(&self.max_password_bytes)
        {
            return Err(Error::Config(format!(
                "the password length limit must be from {} to {} bytes",
                Self::MIN_MAX_PASSWORD_BYTES,
                Self::MAX_MAX_PASSWORD_BYTES
            )));
        }
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| Error::Config(format!("invalid argon2 parameters: {e}")))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// Whether a stored hash should be replaced by one made with this policy.
    pub fn needs_rehash(&self, stored: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(stored) else {
            return true;
        };
        if parsed.algorithm.as_str() != "argon2id" {
            return true;
        }
        let Ok(params) = Params::try_from(&parsed) else {
            return true;
        };
        params.m_cost() < self.memory_kib
            || params.t_cost() < self.iterations
            || params.p_cost() < self.parallelism
            || parsed.version != Some(0x13)
    }

    /// Hashes on the calling thread. Prefer [`PasswordHasher::hash`] in async code.
    ///
    /// The hash is of the password's Unicode NFKC form (see the module docs).
    pub fn hash_blocking(&self, password: &str) -> Result<String> {
        self.check_length(password)?;
        let normalized =
            Normalized::new(password, self.max_password_bytes).ok_or_else(too_long_error(self))?;
        let hash = self
            .argon2()?
            .hash_password(normalized.as_str().as_bytes())
            .map_err(|e| Error::Internal(format!("argon2 hashing failed: {e}")))?;
        Ok(hash.to_string())
    }

    /// Verifies on the calling thread. Prefer [`PasswordHasher::verify`] in async code.
    ///
    /// Tries the password's Unicode NFKC form, then, if that fails and the
    /// password as sent is not in NFKC form, the password as sent (a hash
    /// made before normalisation); a match on the latter sets `needs_rehash`.
    pub fn verify_blocking(&self, password: &str, stored: &str) -> PasswordVerification {
        let no = PasswordVerification {
            matches: false,
            needs_rehash: false,
        };
        let Some(normalized) = Normalized::new(password, self.max_password_bytes) else {
            return no;
        };
        if !within_cost_limits(stored) {
            tracing::warn!(
                "a stored password hash asks for more work than allowed; treating as no match"
            );
            return no;
        }
        let verifier = match StoredHash::parse(stored) {
            Ok(verifier) => verifier,
            Err(what) => {
                tracing::warn!("a stored {what}; treating as no match");
                return no;
            }
        };
        if verifier.verify(normalized.as_str()) {
            return PasswordVerification {
                matches: true,
                needs_rehash: self.needs_rehash(stored),
            };
        }
        if normalized.differs_from_input() && verifier.verify(password) {
            // A hash of the raw bytes: move it to the NFKC form.
            return PasswordVerification {
                matches: true,
                needs_rehash: true,
            };
        }
        no
    }

    fn check_length(&self, password: &str) -> Result<()> {
        if password.len() > self.max_password_bytes {
            return Err(too_long_error(self)());
        }
        Ok(())
    }
}

/// The error for a password over the limit. Names the limit, never the password.
fn too_long_error(policy: &PasswordPolicy) -> impl FnOnce() -> Error + use<> {
    let max = policy.max_password_bytes;
    move || {
        Error::InvalidInput(format!(
            "password is longer than {max} bytes (as sent or in Unicode NFKC form)"
        ))
    }
}

/// A password in Unicode NFKC form: the input itself when it already was,
/// else a copy that is zeroed on drop.
enum Normalized<'a> {
    Unchanged(&'a str),
    Changed(Zeroizing<String>),
}

impl<'a> Normalized<'a> {
    /// The NFKC form of `password`, or `None` if the password as sent or its
    /// NFKC form is longer than `max_bytes`. The input is bounded before
    /// any normalising work, and the output as it grows.
    fn new(password: &'a str, max_bytes: usize) -> Option<Self> {
        if password.len() > max_bytes {
            return None;
        }
        if is_nfkc_quick(password.chars()) == IsNormalized::Yes {
            return Some(Self::Unchanged(password));
        }
        // NFKC expands UTF-8 at most 11 times (UAX #15); start with room for
        // the usual case and grow through `push_zeroizing`, which never
        // leaves an unzeroed copy behind.
        let mut out = Zeroizing::new(String::with_capacity(password.len().min(max_bytes)));
        for c in password.nfkc() {
            if out.len() + c.len_utf8() > max_bytes {
                return None;
            }
            push_zeroizing(&mut out, c);
        }
        if out.as_str() == password {
            Some(Self::Unchanged(password))
        } else {
            Some(Self::Changed(out))
        }
    }

    fn as_str(&self) -> &str {
        match self {
            Self::Unchanged(s) => s,
            Self::Changed(s) => s.as_str(),
        }
    }

    /// Whether the NFKC form differs from the password as sent.
    fn differs_from_input(&self) -> bool {
        matches!(self, Self::Changed(_))
    }
}

/// Appends `c` to a secret string. `String::push` would reallocate when
/// full and free the old buffer without zeroing it; here the contents move
/// to a bigger zeroizing buffer and the old one is zeroed as it drops.
fn push_zeroizing(out: &mut Zeroizing<String>, c: char) {
    if out.capacity() - out.len() < c.len_utf8() {
        let mut bigger = Zeroizing::new(String::with_capacity(
            (out.capacity() * 2).max(out.len() + c.len_utf8()).max(16),
        ));
        bigger.push_str(out);
        *out = bigger; // the old buffer drops here and is zeroed
    }
    out.push(c);
}

/// A stored hash, parsed once so that the NFKC and raw attempts of
/// [`PasswordPolicy::verify_blocking`] share the work and the warnings.
// One short-lived value per verification: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum StoredHash<'a> {
    Bcrypt(&'a str),
    Argon2(PasswordHash),
}

impl<'a> StoredHash<'a> {
    /// The hash, or what is wrong with it (for a log line without the hash).
    fn parse(stored: &'a str) -> std::result::Result<Self, &'static str> {
        match scheme_of(stored) {
            Scheme::Bcrypt => stored
                .parse::<bcrypt::HashParts>()
                .ok()
                .filter(|parts| parts.get_cost() >= MIN_BCRYPT_COST)
                .map(|_| Self::Bcrypt(stored))
                .ok_or("bcrypt password hash is malformed"),
            Scheme::Argon2 => PasswordHash::new(stored)
                .map(Self::Argon2)
                .map_err(|_| "argon2 password hash is malformed"),
            Scheme::Unknown => Err("password hash has an unknown format"),
        }
    }

    fn verify(&self, password: &str) -> bool {
        match self {
            // bcrypt reads the first 72 bytes only; see the module docs.
            Self::Bcrypt(stored) => bcrypt::verify(password.as_bytes(), stored).unwrap_or(false),
            Self::Argon2(parsed) => Argon2::default()
                .verify_password(password.as_bytes(), parsed)
                .is_ok(),
        }
    }
}

/// Lowest bcrypt cost there is (the `bcrypt` crate refuses lower).
const MIN_BCRYPT_COST: u32 = 4;
/// Highest bcrypt cost verified (cost 16 is about 5 s; 31 would be days).
const MAX_BCRYPT_COST: u32 = 16;
/// Highest argon2 costs verified: 256 MiB, 16 passes, 16 lanes. A stored
/// hash beyond these is treated as tampered rather than allowed to pin a core.
const MAX_ARGON2_MEMORY_KIB: u32 = 256 * 1024;
const MAX_ARGON2_ITERATIONS: u32 = 16;
const MAX_ARGON2_PARALLELISM: u32 = 16;

fn within_cost_limits(stored: &str) -> bool {
    match scheme_of(stored) {
        Scheme::Bcrypt => stored
            .get(4..6)
            .and_then(|c| c.parse::<u32>().ok())
            .is_some_and(|cost| cost <= MAX_BCRYPT_COST),
        Scheme::Argon2 => PasswordHash::new(stored)
            .ok()
            .and_then(|parsed| Params::try_from(&parsed).ok())
            .is_none_or(|p| {
                p.m_cost() <= MAX_ARGON2_MEMORY_KIB
                    && p.t_cost() <= MAX_ARGON2_ITERATIONS
                    && p.p_cost() <= MAX_ARGON2_PARALLELISM
            }),
        Scheme::Unknown => true,
    }
}

enum Scheme {
    Argon2,
    Bcrypt,
    Unknown,
}

fn scheme_of(stored: &str) -> Scheme {
    if stored.starts_with("$argon2id$") || stored.starts_with("$argon2i$") {
        Scheme::Argon2
    } else if ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|p| stored.starts_with(p))
    {
        Scheme::Bcrypt
    } else {
        Scheme::Unknown
    }
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct PasswordVerification {
    /// The password is right.
    pub matches: bool,
    /// The password is right and the stored hash should be replaced by a new
    /// one (older scheme or weaker parameters than the policy).
    pub needs_rehash: bool,
}

/// Runs a [`PasswordPolicy`] off the async runtime on a bounded pool.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct PasswordHasher {
    policy: PasswordPolicy,
    permits: Arc<Semaphore>,
    dummy_hash: Arc<OnceCell<String>>,
}

impl Default for PasswordHasher {
    fn default() -> Self {
        Self::new(PasswordPolicy::default()).expect("the default policy is valid")
    }
}

impl PasswordHasher {
    /// A hasher allowing as many concurrent hash jobs as there are CPU cores.
    pub fn new(policy: PasswordPolicy) -> Result<Self> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self::with_concurrency(policy, cores)
    }

    /// A hasher allowing `max_concurrent` hash jobs at once.
    pub fn with_concurrency(policy: PasswordPolicy, max_concurrent: usize) -> Result<Self> {
        policy.argon2()?; // reject a weak or invalid policy now, not at first login
        Ok(Self {
            policy,
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            dummy_hash: Arc::new(OnceCell::new()),
        })
    }

    /// The policy in force.
    pub fn policy(&self) -> &PasswordPolicy {
        &self.policy
    }

    /// Hashes a password with the policy (argon2id PHC string of its
    /// Unicode NFKC form).
    pub async fn hash(&self, password: &str) -> Result<String> {
        self.policy.check_length(password)?;
        let policy = self.policy;
        let password = Zeroizing::new(password.to_owned());
        self.run(move || policy.hash_blocking(&password)).await?
    }

    /// Verifies a password against a stored hash (argon2 or bcrypt): its
    /// NFKC form, then the password as sent (see
    /// [`PasswordPolicy::verify_blocking`]).
    pub async fn verify(&self, password: &str, stored: &str) -> Result<PasswordVerification> {
        let policy = self.policy;
        let password = Zeroizing::new(password.to_owned());
        let stored = stored.to_owned();
        self.run(move || policy.verify_blocking(&password, &stored))
            .await
    }

    /// Does the same work as a real verification against a hash of the
    /// policy, and returns `false`. Use it when the user does not exist, so
    /// that "no such user" and "wrong password" take the same time.
    pub async fn verify_dummy(&self, password: &str) -> Result<bool> {
        let dummy = self.dummy().await?;
        let _ = self.verify(password, &dummy).await?;
        Ok(false)
    }

    /// Computes the dummy hash used by [`PasswordHasher::verify_dummy`] now,
    /// so the first login of an unknown user is not slower than later ones.
    /// Servers call it at start-up.
    pub async fn warm_up(&self) -> Result<()> {
        self.dummy().await.map(|_| ())
    }

    async fn dummy(&self) -> Result<String> {
        let policy = self.policy;
        Ok(self
            .dummy_hash
            .get_or_try_init(|| async move {
                self.run(move || policy.hash_blocking("fastcore-security-dummy-password"))
                    .await?
            })
            .await?
            .clone())
    }

    async fn run<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| Error::Internal("the password hashing pool is closed".into()))?;
        // The permit travels with the job, not with this future: a request
        // cancelled mid-hash (client gone, timeout) must not free a slot
        // while its hash still runs, or the bound on concurrent jobs is lost.
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            job()
        })
        .await
        .map_err(|e| Error::Internal(format!("a password hashing task failed: {e}")))
    }
}

fn default_hasher() -> &'static PasswordHasher {
    static HASHER: OnceLock<PasswordHasher> = OnceLock::new();
    HASHER.get_or_init(PasswordHasher::default)
}

/// Hashes a password with the default policy (the seed's `get_password_hash`).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let hash = fastcore_security::get_password_hash("correct horse").await.unwrap();
/// assert!(hash.starts_with("$argon2id$"));
/// assert!(fastcore_security::verify_password("correct horse", &hash).await);
/// # }
/// ```
pub async fn get_password_hash(password: &str) -> Result<String> {
    default_hasher().hash(password).await
}

/// Checks a password against a stored argon2 or bcrypt hash (the seed's
/// `verify_password`). Malformed hashes and internal failures give `false`.
pub async fn verify_password(password: &str, stored_hash: &str) -> bool {
    default_hasher()
        .verify(password, stored_hash)
        .await
        .is_ok_and(|v| v.matches)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_request_keeps_its_slot_until_the_job_ends() {
        let hasher = PasswordHasher::with_concurrency(PasswordPolicy::default(), 1).unwrap();
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let runner = hasher.clone();
        let task = tokio::spawn(async move { runner.run(move || wait.recv()).await });
        while hasher.permits.available_permits() != 0 {
            tokio::task::yield_now().await;
        }
        task.abort();
        let _ = task.await;
        // The job is still blocked: its slot must still be taken.
        assert_eq!(hasher.permits.available_permits(), 0);
        release.send(()).unwrap();
        while hasher.permits.available_permits() != 1 {
            tokio::task::yield_now().await;
        }
    }

    #[test]
    fn weak_policies_are_refused() {
        let weak = PasswordPolicy {
            memory_kib: 4096,
            ..PasswordPolicy::default()
        };
        assert!(PasswordHasher::new(weak).is_err());
    }

    #[test]
    fn malformed_hashes_never_match_and_never_panic() {
        let policy = PasswordPolicy::default();
        for stored in [
            "",
            "$",
            "$2b$",
            "$2b$99$abc",
            "$argon2id$",
            "$argon2id$v=19$m=1,t=1,p=1$$",
            "plaintext",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$",
        ] {
            assert!(!policy.verify_blocking("pw", stored).matches, "{stored:?}");
        }
    }

    #[test]
    fn overlong_passwords_are_refused() {
        let policy = PasswordPolicy::default();
        let long = "x".repeat(policy.max_password_bytes + 1);
        assert!(matches!(
            policy.hash_blocking(&long),
            Err(Error::InvalidInput(_))
        ));
    }

    #[test]
    fn normalisation_is_nfkc_and_borrows_when_nothing_changes() {
        for (raw, nfkc) in [
            ("\u{fb01}le", "file"),                       // ligature
            ("\u{ff50}\u{ff41}\u{ff53}\u{ff53}", "pass"), // full-width
            ("cafe\u{301}", "caf\u{e9}"),                 // decomposed -> composed
            ("\u{2460}\u{2461}", "12"),                   // circled digits
            ("a\u{3000}b", "a b"),                        // ideographic space
            ("\u{212b}", "\u{c5}"),                       // Angstrom sign -> A ring
        ] {
            let n = Normalized::new(raw, 1024).unwrap();
            assert_eq!(n.as_str(), nfkc, "{raw:?}");
            assert!(n.differs_from_input(), "{raw:?}");
        }
        for same in [
            "",
            "correct horse",
            "caf\u{e9}",
            "p\u{e4}ssw\u{f6}rd-\u{1f642}",
        ] {
            let n = Normalized::new(same, 1024).unwrap();
            assert!(matches!(n, Normalized::Unchanged(s) if std::ptr::eq(s, same)));
            assert!(!n.differs_from_input());
        }
    }

    #[test]
    fn the_limit_bounds_the_input_and_the_nfkc_form() {
        assert!(Normalized::new(&"a".repeat(17), 16).is_none());
        assert!(Normalized::new(&"a".repeat(16), 16).is_some());
        // U+FDFA is 3 bytes and expands to 18 characters (33 bytes).
        let expanding = "\u{fdfa}".repeat(300);
        assert!(expanding.len() <= 1024);
        assert!(Normalized::new(&expanding, 1024).is_none());
        assert!(Normalized::new("\u{fdfa}", 33).is_some());
        assert!(Normalized::new("\u{fdfa}", 32).is_none());
        // Shrinking is fine: 3 bytes as sent, 2 once composed.
        assert_eq!(Normalized::new("e\u{301}", 3).unwrap().as_str(), "\u{e9}");
    }

    #[test]
    fn the_nfkc_copy_is_zeroized_and_grows_without_losing_data() {
        // A type-level guarantee: the changed form lives in `Zeroizing`.
        fn zeroizing<'a>(n: &'a Normalized<'_>) -> Option<&'a Zeroizing<String>> {
            match n {
                Normalized::Changed(z) => Some(z),
                Normalized::Unchanged(_) => None,
            }
        }
        let n = Normalized::new("\u{fdfa}\u{fdfa}", 1024).unwrap();
        let copy = zeroizing(&n).unwrap();
        assert_eq!(copy.len(), 66);
        assert_eq!(copy.as_str(), "\u{fdfa}\u{fdfa}".nfkc().collect::<String>());

        let mut out = Zeroizing::new(String::with_capacity(1));
        for c in "abc\u{e9}\u{1f642}".chars().cycle().take(100) {
            push_zeroizing(&mut out, c);
        }
        let expected: String = "abc\u{e9}\u{1f642}".chars().cycle().take(100).collect();
        assert_eq!(out.as_str(), expected);
    }

    #[test]
    fn a_raw_bytes_hash_matches_and_is_flagged_for_rehash() {
        let policy = PasswordPolicy::default();
        let raw = "\u{fb01}nance";
        // What a library that does not normalise stored.
        let legacy = policy
            .argon2()
            .unwrap()
            .hash_password(raw.as_bytes())
            .unwrap()
            .to_string();
        let v = policy.verify_blocking(raw, &legacy);
        assert!(v.matches && v.needs_rehash, "{v:?}");
        // The NFKC form alone is other bytes than the legacy hash's.
        assert!(!policy.verify_blocking("finance", &legacy).matches);
        // A fresh hash is of the NFKC form: both spellings match, no rehash.
        let fresh = policy.hash_blocking(raw).unwrap();
        for typed in [raw, "finance"] {
            let v = policy.verify_blocking(typed, &fresh);
            assert!(v.matches && !v.needs_rehash, "{typed:?}: {v:?}");
        }
    }

    #[test]
    fn bcrypt_hashes_need_rehash_but_fresh_argon2id_does_not() {
        let policy = PasswordPolicy::default();
        let bcrypt_hash = bcrypt::hash("pw", 4).unwrap();
        let v = policy.verify_blocking("pw", &bcrypt_hash);
        assert!(v.matches && v.needs_rehash);
        let fresh = policy.hash_blocking("pw").unwrap();
        let v = policy.verify_blocking("pw", &fresh);
        assert!(v.matches && !v.needs_rehash);
        assert!(!policy.verify_blocking("other", &fresh).matches);
    }
}
