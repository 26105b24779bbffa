//! Signing and verification keys.
//!
//! Each key is pinned to one algorithm: the token header's `alg` must equal
//! the key's algorithm, it never chooses how the key is used, and `none` is
//! never accepted. A token without a `kid` is only accepted when exactly one
//! key could have signed it (the case for the seed's tokens).
//!
//! A [`SigningKey`] is one of:
//!
//! - an HMAC secret (HS256/384/512), [`SigningKey::hmac`]; never published;
//! - an RSA (RS256/384/512, PS256/384/512), EC (ES256 on P-256, ES384 on
//!   P-384) or Ed25519 (EdDSA) private key in PKCS#8 PEM,
//!   [`SigningKey::from_private_pem`]; it signs and verifies;
//! - the public half of such a key, as PEM ([`SigningKey::from_public_pem`])
//!   or as a JWK ([`SigningKey::from_public_jwk`]); it only verifies, for
//!   tokens signed by a key that no longer signs (or by another service).
//!
//! Every key is checked when it is built: a key that does not fit its
//! algorithm (an EC key for RS256, a P-384 key for ES256, an RSA key under
//! 2048 bits, an HMAC secret shorter than the hash) is an
//! [`Error::Config`] naming the key id, never a panic on the first request.
//! The messages never contain key material.
//!
//! A [`KeySet`] is the keys a service knows: the first signs new tokens and
//! every key verifies. Key sets are usually read from a key file (see
//! [`KeyFile`](crate::KeyFile) for the format) and published as a JWK Set
//! with [`KeySet::jwks`] / [`Security::jwks`](crate::Security::jwks).

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::crypto::CryptoProvider;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey};

use crate::error::{Error, Result};
use crate::tokens::key_file::{KeyFile, in_file};
use crate::tokens::service::Security;

/// The longest key id a configured key may have, in bytes.
pub const MAX_KID_BYTES: usize = 128;

/// RSA keys shorter than this are refused (RFC 7518 section 3.3 asks for at
/// least 2048 bits).
const MIN_RSA_BITS: usize = 2048;
/// The largest RSA modulus the RustCrypto backend accepts.
const MAX_RSA_BITS: usize = 8192;

/// What a freshly built key signs (and then verifies) to prove it works.
const PROBE: &[u8] = b"fastcore-security key check";

/// The error when jsonwebtoken has no crypto backend.
pub(crate) const NO_PROVIDER: &str = "no JWT crypto provider is available (build jsonwebtoken \
     with exactly one of the `rust_crypto` or `aws_lc_rs` features, or install one with \
     jsonwebtoken::crypto::CryptoProvider::install_default before building keys)";

/// One key: its id, the one algorithm it is used with, and its signing
/// and verifying halves (verify-only keys have no signing half).
///
/// `Debug` shows the id and the algorithm, never key material.
#[derive(Clone)]
pub struct SigningKey {
    kid: Option<String>,
    algorithm: Algorithm,
    encoding: Option<EncodingKey>,
    decoding: DecodingKey,
    public_jwk: Option<Jwk>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("can_sign", &self.can_sign())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// An HMAC key (HS256/384/512) from a shared secret.
    ///
    /// The secret must be at least as long as the hash output (32, 48 or 64
    /// bytes, RFC 7518 section 3.2). HMAC keys are never published in the
    /// JWK Set.
    ///
    /// ```
    /// use fastcore_security::{Algorithm, SigningKey};
    ///
    /// let key = SigningKey::hmac(Some("hs-1".into()), Algorithm::HS256, &[7u8; 32]).unwrap();
    /// assert!(key.can_sign() && key.public_jwk().is_none());
    /// assert!(SigningKey::hmac(None, Algorithm::HS256, b"short").is_err());
    /// ```
    pub fn hmac(kid: Option<String>, algorithm: Algorithm, secret: &[u8]) -> Result<Self> {
        let kid = kid.map(checked_kid).transpose()?;
        let name = key_name(kid.as_deref());
        if algorithm.family() != AlgorithmFamily::Hmac {
            return Err(Error::config(format!(
                "{name}: {algorithm:?} is not an HMAC algorithm; an HMAC secret is used with HS256, HS384 or HS512"
            )));
        }
        let min = min_hmac_bytes(algorithm);
        if secret.len() < min {
            return Err(Error::config(format!(
                "{name}: the {algorithm:?} secret is {} bytes long; it needs at least {min} random bytes",
                secret.len()
            )));
        }
        let unusable = || Error::config(format!("{name}: the HMAC secret is not usable"));
        let encoding = EncodingKey::from_secret(secret).map_err(|_| unusable())?;
        let decoding = DecodingKey::from_secret(secret).map_err(|_| unusable())?;
        let signature = sign_probe(&name, algorithm, &encoding)?;
        verify_probe(&name, algorithm, &decoding, &signature)?;
        Ok(Self {
            kid,
            algorithm,
            encoding: Some(encoding),
            decoding,
            public_jwk: None,
        })
    }

    /// A signing key from an unencrypted PKCS#8 PEM private key
    /// (`-----BEGIN PRIVATE KEY-----`; PKCS#1 `RSA PRIVATE KEY` is also
    /// accepted for RSA): RSA for RS256/384/512 and PS256/384/512, P-256 for
    /// ES256, P-384 for ES384, Ed25519 for EdDSA.
    ///
    /// The key is tried once (sign, then verify with its public half), so a
    /// key that cannot work fails here, as [`Error::Config`] naming `kid`.
    ///
    /// ```
    /// use fastcore_security::{Algorithm, SigningKey};
    ///
    /// // openssl genpkey -algorithm ed25519
    /// let pem = "-----BEGIN PRIVATE KEY-----\n\
    ///            MC4CAQAwBQYDK2VwBCIEIDrq5rLCg9oNRcQH5T9dWdds0thhJMFZfRSTo4WUM3fq\n\
    ///            -----END PRIVATE KEY-----\n";
    /// let key = SigningKey::from_private_pem("ed-1", Algorithm::EdDSA, pem.as_bytes()).unwrap();
    /// assert_eq!(key.kid(), Some("ed-1"));
    /// assert!(key.public_jwk().is_some());
    /// // The same key is no RSA key.
    /// assert!(SigningKey::from_private_pem("ed-1", Algorithm::RS256, pem.as_bytes()).is_err());
    /// ```
    pub fn from_private_pem(
        kid: impl Into<String>,
        algorithm: Algorithm,
        pem: &[u8],
    ) -> Result<Self> {
        let kid = checked_kid(kid.into())?;
        let name = key_name(Some(&kid));
        let kind = key_kind(&name, algorithm)?;
        let not_pem = || {
            Error::config(format!(
                "{name}: the private key is not an unencrypted PKCS#8 PEM {kind} private key \
                 (\"-----BEGIN PRIVATE KEY-----\"), as {algorithm:?} needs"
            ))
        };
        let encoding = match algorithm.family() {
            AlgorithmFamily::Rsa => EncodingKey::from_rsa_pem(pem).map_err(|_| not_pem())?,
            AlgorithmFamily::Ec => EncodingKey::from_ec_pem(pem).map_err(|_| not_pem())?,
            AlgorithmFamily::Ed => {
                let key = EncodingKey::from_ed_pem(pem).map_err(|_| not_pem())?;
                EncodingKey::from_ed_der(&ed25519_pkcs8_v1(key.as_bytes()))
            }
            AlgorithmFamily::Hmac => unreachable_hmac(&name, algorithm)?,
        };
        provider()?;
        let unusable = || unusable_key(&name, algorithm, kind);
        let signature = sign_probe(&name, algorithm, &encoding)?;
        let jwk = Jwk::from_encoding_key(&encoding, algorithm).map_err(|_| unusable())?;
        check_public_parameters(&name, algorithm, &jwk.algorithm)?;
        let decoding = DecodingKey::from_jwk(&jwk).map_err(|_| unusable())?;
        verify_probe(&name, algorithm, &decoding, &signature)?;
        Ok(Self {
            public_jwk: Some(public_jwk(Some(&kid), algorithm, jwk.algorithm)),
            kid: Some(kid),
            algorithm,
            encoding: Some(encoding),
            decoding,
        })
    }

    /// A verify-only key from a PEM public key (`-----BEGIN PUBLIC KEY-----`,
    /// or PKCS#1 `RSA PUBLIC KEY`): for tokens signed by a key that has
    /// been retired from signing but must still verify, or by another
    /// service. It cannot be the active key of a [`KeySet`].
    pub fn from_public_pem(
        kid: impl Into<String>,
        algorithm: Algorithm,
        pem: &[u8],
    ) -> Result<Self> {
        let kid = checked_kid(kid.into())?;
        let name = key_name(Some(&kid));
        let kind = key_kind(&name, algorithm)?;
        let not_pem = || {
            Error::config(format!(
                "{name}: the public key is not a PEM {kind} public key \
                 (\"-----BEGIN PUBLIC KEY-----\"), as {algorithm:?} needs"
            ))
        };
        let decoding = match algorithm.family() {
            AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(pem).map_err(|_| not_pem())?,
            AlgorithmFamily::Ec => DecodingKey::from_ec_pem(pem).map_err(|_| not_pem())?,
            AlgorithmFamily::Ed => DecodingKey::from_ed_pem(pem).map_err(|_| not_pem())?,
            AlgorithmFamily::Hmac => unreachable_hmac(&name, algorithm)?,
        };
        provider()?;
        // Ed25519 keys must be exactly 32 bytes (checked here, before the
        // backend ever sees them).
        if algorithm.family() == AlgorithmFamily::Ed
            && decoding.try_get_as_bytes().map(<[u8]>::len).ok() != Some(32)
        {
            return Err(unusable_key(&name, algorithm, kind));
        }
        let jwk = Jwk::from_decoding_key(&decoding, Some(algorithm))
            .map_err(|_| unusable_key(&name, algorithm, kind))?;
        Self::verify_only(kid, algorithm, jwk.algorithm)
    }

    /// A verify-only key from a public JWK (RFC 7517), for example one
    /// entry of another service's JWK Set. If the JWK names an `alg` or a
    /// `kid`, they must equal `algorithm` and `kid`; a `use` other than
    /// `sig` is refused. Private parameters in the JWK are ignored.
    ///
    /// ```
    /// use fastcore_security::{Algorithm, Jwk, SigningKey};
    ///
    /// let jwk: Jwk = serde_json::from_str(r#"{
    ///     "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": "ed-1",
    ///     "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    /// }"#).unwrap();
    /// let key = SigningKey::from_public_jwk("ed-1", Algorithm::EdDSA, &jwk).unwrap();
    /// assert!(!key.can_sign());
    /// assert!(SigningKey::from_public_jwk("ed-1", Algorithm::ES256, &jwk).is_err());
    /// ```
    pub fn from_public_jwk(
        kid: impl Into<String>,
        algorithm: Algorithm,
        jwk: &Jwk,
    ) -> Result<Self> {
        let kid = checked_kid(kid.into())?;
        let name = key_name(Some(&kid));
        key_kind(&name, algorithm)?;
        if let Some(alg) = jwk.common.key_algorithm
            && alg != algorithm.into()
        {
            return Err(Error::config(format!(
                "{name}: the JWK says alg {alg}, the key is configured for {algorithm:?}"
            )));
        }
        if let Some(jwk_kid) = &jwk.common.key_id
            && jwk_kid != &kid
        {
            return Err(Error::config(format!(
                "{name}: the JWK has another kid than the key"
            )));
        }
        if jwk
            .common
            .public_key_use
            .as_ref()
            .is_some_and(|u| *u != PublicKeyUse::Signature)
        {
            return Err(Error::config(format!(
                "{name}: the JWK is not meant for signatures (its `use` is not \"sig\")"
            )));
        }
        provider()?;
        // Only the public parameters are kept (a pasted private JWK's `d`
        // is not even parsed).
        let params = match &jwk.algorithm {
            AlgorithmParameters::RSA(p) => AlgorithmParameters::RSA(p.clone()),
            AlgorithmParameters::EllipticCurve(p) => AlgorithmParameters::EllipticCurve(p.clone()),
            AlgorithmParameters::OctetKeyPair(p) => AlgorithmParameters::OctetKeyPair(p.clone()),
            _ => {
                return Err(Error::config(format!(
                    "{name}: the JWK is not an RSA, EC or OKP public key"
                )));
            }
        };
        Self::verify_only(kid, algorithm, params)
    }

    /// The verify-only key with these public parameters, checked.
    fn verify_only(kid: String, algorithm: Algorithm, params: AlgorithmParameters) -> Result<Self> {
        let name = key_name(Some(&kid));
        let kind = key_kind(&name, algorithm)?;
        check_public_parameters(&name, algorithm, &params)?;
        let jwk = public_jwk(Some(&kid), algorithm, params);
        let decoding =
            DecodingKey::from_jwk(&jwk).map_err(|_| unusable_key(&name, algorithm, kind))?;
        // Builds the backend's verifier (which parses the key: an EC point
        // off the curve fails here); the dummy signature itself never verifies.
        if jsonwebtoken::crypto::verify("AAAA", PROBE, &decoding, algorithm).is_err() {
            return Err(unusable_key(&name, algorithm, kind));
        }
        Ok(Self {
            kid: Some(kid),
            algorithm,
            encoding: None,
            decoding,
            public_jwk: Some(jwk),
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

    /// Whether this key can sign (it holds a private key or a secret);
    /// verify-only keys cannot.
    pub fn can_sign(&self) -> bool {
        self.encoding.is_some()
    }

    /// The public JWK of an asymmetric key: `kty`, `kid`, `alg`,
    /// `use: "sig"` and the public parameters, never private ones. `None`
    /// for HMAC keys, which are never published.
    pub fn public_jwk(&self) -> Option<&Jwk> {
        self.public_jwk.as_ref()
    }

    pub(crate) fn encoding(&self) -> Option<&EncodingKey> {
        self.encoding.as_ref()
    }

    pub(crate) fn decoding(&self) -> &DecodingKey {
        &self.decoding
    }
}

/// The keys a service knows: the first (the *active* key) signs new tokens,
/// all verify.
///
/// Rules, checked by [`KeySet::new`]: at least one key; the active key can
/// sign; with more than one key every key has a `kid`; no two keys share a
/// `kid`. A token is verified by the key its header's `kid` names; a token
/// without a `kid` only when the set holds exactly one key.
///
/// ```
/// use fastcore_security::{Algorithm, KeySet, SigningKey};
///
/// let new = SigningKey::hmac(Some("2026-b".into()), Algorithm::HS256, &[1u8; 32]).unwrap();
/// let old = SigningKey::hmac(Some("2026-a".into()), Algorithm::HS256, &[2u8; 32]).unwrap();
/// let keys = KeySet::new(vec![new, old]).unwrap();
/// assert_eq!(keys.active().kid(), Some("2026-b"));
/// // HMAC keys are never published.
/// assert!(keys.jwks().keys.is_empty());
/// ```
#[derive(Debug, Clone)]
pub struct KeySet {
    keys: Vec<SigningKey>,
}

impl KeySet {
    /// A key set whose first key is the active signing key.
    pub fn new(keys: Vec<SigningKey>) -> Result<Self> {
        let Some(active) = keys.first() else {
            return Err(Error::config("at least one signing key is required"));
        };
        if !active.can_sign() {
            return Err(Error::config(format!(
                "{}: the active key must be able to sign, but it is a public (verify-only) key",
                key_name(active.kid())
            )));
        }
        if keys.len() > 1 && keys.iter().any(|k| k.kid.is_none()) {
            return Err(Error::config(
                "with more than one key every key needs a kid (so a token names the key that verifies it)",
            ));
        }
        for (i, key) in keys.iter().enumerate() {
            if let Some(kid) = key.kid()
                && keys[..i].iter().any(|k| k.kid() == Some(kid))
            {
                return Err(Error::config(format!(
                    "{}: two keys have this kid",
                    key_name(Some(kid))
                )));
            }
        }
        Ok(Self { keys })
    }

    /// The key set of a key file: its active key first, then its `verify`
    /// keys; `retired` keys are left out. See [`KeyFile`](crate::KeyFile)
    /// for the format and the checks.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        KeyFile::load(path)?
            .key_set()
            .map_err(|err| in_file(path, err))
    }

    /// The key that signs new tokens.
    pub fn active(&self) -> &SigningKey {
        &self.keys[0]
    }

    /// All keys, the active one first.
    pub fn keys(&self) -> &[SigningKey] {
        &self.keys
    }

    /// The JWK Set (RFC 7517) of the asymmetric keys here, the active one
    /// first: what `/.well-known/jwks.json` serves so other services can
    /// verify tokens. Public parameters only; HMAC keys are never listed.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: self
                .keys
                .iter()
                .filter_map(|k| k.public_jwk.clone())
                .collect(),
        }
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

impl Security {
    /// The JWK Set of this service's public keys (see [`KeySet::jwks`]):
    /// serialize it with serde, or serve it with
    #[cfg_attr(feature = "axum", doc = "[`jwks_router`](crate::http::jwks_router).")]
    #[cfg_attr(not(feature = "axum"), doc = "`jwks_router` (feature `axum`).")]
    pub fn jwks(&self) -> JwkSet {
        self.codec().keys().jwks()
    }
}

/// The configured crypto backend, or a clear configuration error.
pub(crate) fn provider() -> Result<&'static CryptoProvider> {
    CryptoProvider::try_get_default().ok_or_else(|| Error::config(NO_PROVIDER))
}

/// A kid a configured key may have: 1 to [`MAX_KID_BYTES`] printable ASCII
/// characters without spaces. (Such a kid can be named in messages.)
fn checked_kid(kid: String) -> Result<String> {
    if is_valid_kid(&kid) {
        Ok(kid)
    } else {
        Err(Error::config(format!(
            "a key id (kid) must be 1 to {MAX_KID_BYTES} printable ASCII characters without spaces"
        )))
    }
}

/// Whether `kid` is a key id a configured key may have.
pub(crate) fn is_valid_kid(kid: &str) -> bool {
    !kid.is_empty() && kid.len() <= MAX_KID_BYTES && kid.bytes().all(|b| b.is_ascii_graphic())
}

/// How messages name a key.
fn key_name(kid: Option<&str>) -> String {
    match kid {
        Some(kid) => format!("key {kid:?}"),
        None => "the signing key".to_owned(),
    }
}

/// The key type an (asymmetric) algorithm needs, for messages.
fn key_kind(name: &str, algorithm: Algorithm) -> Result<&'static str> {
    Ok(match algorithm {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => "RSA",
        Algorithm::ES256 => "EC P-256",
        Algorithm::ES384 => "EC P-384",
        Algorithm::EdDSA => "Ed25519",
        _ if algorithm.family() == AlgorithmFamily::Hmac => {
            return unreachable_hmac(name, algorithm);
        }
        _ => {
            return Err(Error::config(format!(
                "{name}: {algorithm:?} is not supported"
            )));
        }
    })
}

fn unreachable_hmac<T>(name: &str, algorithm: Algorithm) -> Result<T> {
    Err(Error::config(format!(
        "{name}: {algorithm:?} is an HMAC algorithm, which uses a shared secret, not a PEM or JWK key"
    )))
}

fn unusable_key(name: &str, algorithm: Algorithm, kind: &str) -> Error {
    Error::config(format!(
        "{name}: the key is not a usable {kind} key for {algorithm:?}"
    ))
}

/// RFC 7518 section 3.2: an HMAC key at least as long as the hash output.
pub(crate) fn min_hmac_bytes(algorithm: Algorithm) -> usize {
    match algorithm {
        Algorithm::HS384 => 48,
        Algorithm::HS512 => 64,
        _ => 32,
    }
}

fn sign_probe(name: &str, algorithm: Algorithm, encoding: &EncodingKey) -> Result<String> {
    provider()?;
    jsonwebtoken::crypto::sign(PROBE, encoding, algorithm).map_err(|_| {
        Error::config(format!(
            "{name}: the key cannot sign with {algorithm:?} (wrong key type or curve, or a damaged key)"
        ))
    })
}

fn verify_probe(
    name: &str,
    algorithm: Algorithm,
    decoding: &DecodingKey,
    signature: &str,
) -> Result<()> {
    match jsonwebtoken::crypto::verify(signature, PROBE, decoding, algorithm) {
        Ok(true) => Ok(()),
        _ => Err(Error::config(format!(
            "{name}: a signature made with the key does not verify with its public half"
        ))),
    }
}

/// Checks the public parameters fit the algorithm: the key type, the
/// curve, the coordinate sizes, an RSA modulus of 2048 to 8192 bits and a
/// sane public exponent.
fn check_public_parameters(
    name: &str,
    algorithm: Algorithm,
    params: &AlgorithmParameters,
) -> Result<()> {
    let kind = key_kind(name, algorithm)?;
    let bad = || unusable_key(name, algorithm, kind);
    let bytes = |value: &str| URL_SAFE_NO_PAD.decode(value).map_err(|_| bad());
    match (algorithm.family(), params) {
        (AlgorithmFamily::Rsa, AlgorithmParameters::RSA(p)) => {
            let n = bytes(&p.n)?;
            let n = strip_leading_zeros(&n);
            let Some(first) = n.first() else {
                return Err(bad());
            };
            let bits = n.len() * 8 - first.leading_zeros() as usize;
            if bits < MIN_RSA_BITS {
                return Err(Error::config(format!(
                    "{name}: the RSA key has {bits} bits; at least {MIN_RSA_BITS} are required"
                )));
            }
            if bits > MAX_RSA_BITS {
                return Err(Error::config(format!(
                    "{name}: the RSA key has {bits} bits; at most {MAX_RSA_BITS} are supported"
                )));
            }
            let e = bytes(&p.e)?;
            let e = strip_leading_zeros(&e);
            let odd = e.last().is_some_and(|b| b & 1 == 1);
            let small = e.len() <= 4 || (e.len() == 5 && e[0] <= 1);
            if !odd || !small || e == [1] {
                return Err(bad());
            }
            Ok(())
        }
        (AlgorithmFamily::Ec, AlgorithmParameters::EllipticCurve(p)) => {
            let (curve, size) = match algorithm {
                Algorithm::ES384 => (EllipticCurve::P384, 48),
                _ => (EllipticCurve::P256, 32),
            };
            if p.curve != curve || bytes(&p.x)?.len() != size || bytes(&p.y)?.len() != size {
                return Err(bad());
            }
            Ok(())
        }
        (AlgorithmFamily::Ed, AlgorithmParameters::OctetKeyPair(p)) => {
            if p.curve != EllipticCurve::Ed25519 || bytes(&p.x)?.len() != 32 {
                return Err(bad());
            }
            Ok(())
        }
        _ => Err(Error::config(format!(
            "{name}: the key is not a {kind} key, as {algorithm:?} needs"
        ))),
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// The public JWK for these parameters: `use: sig`, `alg`, `kid`.
fn public_jwk(kid: Option<&str>, algorithm: Algorithm, params: AlgorithmParameters) -> Jwk {
    Jwk {
        common: CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(algorithm.into()),
            key_id: kid.map(String::from),
            ..CommonParameters::default()
        },
        algorithm: params,
    }
}

/// The DER prefix of a PKCS#8 v1 Ed25519 private key (RFC 8410), followed
/// by the 32-byte seed.
const ED25519_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The same prefix in a PKCS#8 v2 ("OneAsymmetricKey") document, which
/// also carries the public key after the seed.
const ED25519_V2_PREFIX: [u8; 16] = [
    0x30, 0x51, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// jsonwebtoken derives the public key of PKCS#8 v1 Ed25519 keys only;
/// a v2 document (as some tools write) is reduced to v1, its seed kept.
/// (The public key is then derived from the seed, and the sign-and-verify
/// check proves the pair.) Anything else is returned unchanged.
fn ed25519_pkcs8_v1(der: &[u8]) -> Vec<u8> {
    if der.len() == 83 && der[..16] == ED25519_V2_PREFIX && der[48..51] == [0x81, 0x21, 0x00] {
        let mut v1 = ED25519_V1_PREFIX.to_vec();
        v1.extend_from_slice(&der[16..48]);
        return v1;
    }
    der.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kids_are_printable_ascii_without_spaces() {
        assert!(is_valid_kid("2026-12-a"));
        assert!(is_valid_kid("abc+/=_.:"));
        for bad in ["", "a b", "a\nb", "é", &"k".repeat(MAX_KID_BYTES + 1)] {
            assert!(!is_valid_kid(bad), "{bad:?}");
        }
    }

    #[test]
    fn debug_shows_no_key_material() {
        let key = SigningKey::hmac(Some("k".into()), Algorithm::HS256, &[0x41; 32]).unwrap();
        let dbg = format!("{key:?}");
        assert!(dbg.contains("\"k\"") && dbg.contains("HS256"), "{dbg}");
        assert!(!dbg.contains("AAAA") && !dbg.contains("65"), "{dbg}");
    }
}
