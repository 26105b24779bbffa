//! What a login throttle counts under: keys derived from account names and
//! client addresses, so neither reaches the store or the logs.

use std::net::IpAddr;

use base64::Engine as _;
use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::{Digest, Sha256};
use unicode_normalization::UnicodeNormalization as _;

/// What a login throttle counts under: a hash of an account name or of a
/// client address, never the name or the address itself.
///
/// The text is ASCII, at most [`MAX_LEN`](Self::MAX_LEN) bytes: a kind
/// (`acct:` or `addr:`) and 22 base64url characters (128 bits of the
/// hash), safe in a Redis key name, a SQL column and a log line.
///
/// [`ThrottleKey::account`] and [`ThrottleKey::address`] are *unkeyed*: a
/// guessed name can be confirmed against them, and they are **not** what
/// a [`Security`](crate::Security) with a secret counts under. To reach
/// its counts (to reset one, say), make keys with
/// [`Security::throttle_keys`](crate::Security::throttle_keys).
///
/// ```
/// use fastcore_security::ThrottleKey;
///
/// // Account names are compared as the built-in users compare them:
/// // Unicode NFKC, then lowercase.
/// assert_eq!(ThrottleKey::account("Zoë"), ThrottleKey::account("ZOE\u{308}"));
/// assert_ne!(ThrottleKey::account("zoe"), ThrottleKey::account("zoë"));
/// assert!(ThrottleKey::account("ada").as_str().starts_with("acct:"));
///
/// // An IPv6 client is counted by its /64 network (what one host usually has).
/// let a = ThrottleKey::address("2001:db8::1".parse().unwrap());
/// let b = ThrottleKey::address("2001:db8::ffff:2".parse().unwrap());
/// assert_eq!(a, b);
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ThrottleKey(String);

impl ThrottleKey {
    /// The longest key, in bytes.
    pub const MAX_LEN: usize = 32;

    /// The unkeyed key of an account name. The name is normalised first
    /// (Unicode NFKC, lowercase, NFKC again), so names a case-insensitive
    /// login treats as one share one count; to count coarser (e-mail
    /// aliases, say), implement
    /// [`UserAuthentication::login_throttle_name`](crate::UserAuthentication::login_throttle_name).
    pub fn account(name: &str) -> Self {
        ThrottleKeys::unkeyed().account(name)
    }

    /// The unkeyed key of a client address: an IPv4 address (also when
    /// written as an IPv4-mapped IPv6 address) as is, an IPv6 address by
    /// its /64 prefix, since one host or home usually has a whole /64.
    pub fn address(ip: IpAddr) -> Self {
        ThrottleKeys::unkeyed().address(ip)
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ThrottleKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ThrottleKey({})", self.0)
    }
}

impl std::fmt::Display for ThrottleKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Makes [`ThrottleKey`]s, keyed with a secret (HMAC-SHA-256) or unkeyed
/// (SHA-256).
///
/// An unkeyed key is a pseudonym, not a secret: whoever reads the
/// throttle table or a log line can confirm a guessed username against
/// it, and find an IPv4 address by trying all of them. A keyed key tells
/// nothing to someone without the secret. Every instance that shares the
/// counts must make the same keys, so the secret must be the same on all
/// of them: [`Security`](crate::Security) derives it from
/// `LOGIN_THROTTLE_SECRET` if set, else from `JWT_SECRET_KEY`; with a key
/// file and no `LOGIN_THROTTLE_SECRET` its keys are unkeyed (see
/// [`SecurityConfigBuilder::login_throttle_secret`](crate::SecurityConfigBuilder::login_throttle_secret)).
///
/// ```
/// use fastcore_security::{ThrottleKey, ThrottleKeys};
///
/// let keys = ThrottleKeys::with_secret(b"a secret every instance shares");
/// assert!(keys.is_keyed());
/// assert_eq!(keys.account("ADA"), keys.account("ada"));
/// assert_ne!(keys.account("ada"), ThrottleKey::account("ada"));
/// assert_ne!(
///     keys.account("ada"),
///     ThrottleKeys::with_secret(b"another secret").account("ada")
/// );
/// assert_eq!(ThrottleKeys::unkeyed().account("ada"), ThrottleKey::account("ada"));
/// ```
#[derive(Clone)]
pub struct ThrottleKeys {
    mac: Option<Hmac<Sha256>>,
}

impl ThrottleKeys {
    /// Keys anyone can compute from a name or an address (SHA-256).
    pub fn unkeyed() -> Self {
        Self { mac: None }
    }

    /// Keys that only holders of `secret` can compute (HMAC-SHA-256).
    pub fn with_secret(secret: &[u8]) -> Self {
        // HMAC takes a key of any length: this cannot fail.
        let mac = Hmac::<Sha256>::new_from_slice(secret).ok();
        Self { mac }
    }

    /// Whether the keys are keyed with a secret.
    pub fn is_keyed(&self) -> bool {
        self.mac.is_some()
    }

    /// The key of an account name, normalised as
    /// [`ThrottleKey::account`] says.
    pub fn account(&self, name: &str) -> ThrottleKey {
        let lower = name.nfkc().collect::<String>().to_lowercase();
        let normalised: String = lower.nfkc().collect();
        self.hashed("acct:", normalised.as_bytes())
    }

    /// The key of a client address, grouped as [`ThrottleKey::address`]
    /// says.
    pub fn address(&self, ip: IpAddr) -> ThrottleKey {
        let ip = match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            },
            v4 => v4,
        };
        match ip {
            IpAddr::V4(v4) => self.hashed("addr:", &v4.octets()),
            IpAddr::V6(v6) => self.hashed("addr:", &v6.octets()[..8]),
        }
    }

    /// `kind` is five bytes, so kind and value cannot run into each other.
    fn hashed(&self, kind: &str, value: &[u8]) -> ThrottleKey {
        let digest: [u8; 32] = match &self.mac {
            Some(mac) => {
                let mut mac = mac.clone();
                mac.update(kind.as_bytes());
                mac.update(value);
                mac.finalize().into_bytes().into()
            }
            None => {
                let mut hasher = Sha256::new();
                hasher.update(b"fastcore-security login throttle\0");
                hasher.update(kind.as_bytes());
                hasher.update(value);
                hasher.finalize().into()
            }
        };
        let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16]);
        ThrottleKey(format!("{kind}{text}"))
    }
}

impl std::fmt::Debug for ThrottleKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThrottleKeys")
            .field("keyed", &self.is_keyed())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_short_ascii_and_kind_tagged() {
        for keys in [ThrottleKeys::unkeyed(), ThrottleKeys::with_secret(b"s")] {
            for key in [
                keys.account(""),
                keys.account(&"x".repeat(10_000)),
                keys.account("a:b*?[c] \u{0}\n"),
                keys.address("127.0.0.1".parse().unwrap()),
                keys.address("::1".parse().unwrap()),
            ] {
                assert!(key.as_str().len() <= ThrottleKey::MAX_LEN, "{key}");
                assert!(
                    key.as_str()
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b':'),
                    "{key}"
                );
            }
            // An address never collides with an account of the same bytes.
            assert_ne!(
                keys.account("\u{7f}\0\0\u{1}"),
                keys.address("127.0.0.1".parse().unwrap())
            );
        }
    }

    #[test]
    fn names_are_normalised_like_the_login() {
        assert_eq!(ThrottleKey::account("ADA"), ThrottleKey::account("ada"));
        // Full-width letters are their plain forms under NFKC.
        assert_eq!(
            ThrottleKey::account("\u{ff41}da"),
            ThrottleKey::account("ada")
        );
        assert_ne!(ThrottleKey::account("ada "), ThrottleKey::account("ada"));
    }

    #[test]
    fn addresses_group_ipv6_by_64_and_unmap_ipv4() {
        let key = |s: &str| ThrottleKey::address(s.parse().unwrap());
        assert_eq!(key("::ffff:192.0.2.1"), key("192.0.2.1"));
        assert_ne!(key("192.0.2.1"), key("192.0.2.2"));
        assert_eq!(key("2001:db8:0:1::1"), key("2001:db8:0:1:ffff::9"));
        assert_ne!(key("2001:db8:0:1::1"), key("2001:db8:0:2::1"));
    }

    #[test]
    fn keys_are_the_documented_hashes() {
        // Fixed values, computed with Python's hashlib and hmac: the
        // unkeyed key must not change under the counts stores hold, and
        // the keyed one is plain HMAC-SHA-256 over kind and value.
        assert_eq!(
            ThrottleKey::account("ada").as_str(),
            "acct:qXwQd0fZfWLvWywmBd-1vg"
        );
        assert_eq!(
            ThrottleKeys::with_secret(b"k").account("ada").as_str(),
            "acct:KxkWUX1UvQ9Lx7bwfHOyPg"
        );
    }
}
