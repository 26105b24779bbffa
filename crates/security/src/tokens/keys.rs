//! Signing and verification keys.
//!
//! Each key is pinned to one algorithm: the token header's `alg` must equal
//! the key's algorithm, it never chooses how the key is used, and `none` is
//! never accepted. A token without a `kid` is only accepted when exactly one
//! key could have signed it (the case for the seed's tokens).

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};

use crate::error::{Error, Result};

/// One key: its id, its algorithm and its encoding/decoding halves.
pub struct SigningKey {
    kid: Option<String>,
    algorithm: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// An HMAC key (HS256/384/512) from a shared secret.
    pub fn hmac(kid: Option<String>, algorithm: Algorithm, secret: &[u8]) -> Result<Self> {
        if !matches!(
            algorithm,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
        ) {
            return Err(Error::config(format!(
                "{algorithm:?} is not an HMAC algorithm"
            )));
        }
        let encoding = EncodingKey::from_secret(secret)
            .map_err(|_| Error::config("the HMAC secret is not usable"))?;
        let decoding = DecodingKey::from_secret(secret)
            .map_err(|_| Error::config("the HMAC secret is not usable"))?;
        Ok(Self {
            kid,
            algorithm,
            encoding,
            decoding,
        })
    }

    /// The key id written in the header of tokens this key signs.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The one algorithm this key is used with.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub(crate) fn encoding(&self) -> &EncodingKey {
        &self.encoding
    }

    pub(crate) fn decoding(&self) -> &DecodingKey {
        &self.decoding
    }
}

/// The keys a service knows: the first signs new tokens, all verify.
#[derive(Debug)]
pub struct KeySet {
    keys: Vec<SigningKey>,
}

impl KeySet {
    /// A key set whose first key is the active signing key.
    pub fn new(keys: Vec<SigningKey>) -> Result<Self> {
        if keys.is_empty() {
            return Err(Error::config("at least one signing key is required"));
        }
        Ok(Self { keys })
    }

    /// The key that signs new tokens.
    pub fn active(&self) -> &SigningKey {
        &self.keys[0]
    }

    /// All keys, the active one first.
    pub fn keys(&self) -> &[SigningKey] {
        &self.keys
    }

    /// The key (and its index) that may verify a token with this header's
    /// `kid`; `None` when no key, or more than one, could match.
    pub(crate) fn find(&self, kid: Option<&str>) -> Option<(usize, &SigningKey)> {
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .enumerate()
                .find(|(_, k)| k.kid.as_deref() == Some(kid)),
            None if self.keys.len() == 1 => Some((0, &self.keys[0])),
            None => None,
        }
    }
}
