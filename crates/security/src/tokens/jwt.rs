//! Stateless JWT work: encode, verify signature and claims, decode. Nothing
//! here touches a store.

use std::sync::Arc;

use jsonwebtoken::{Header, Validation, errors::ErrorKind};
use serde::Serialize;

use crate::config::SecurityConfig;
use crate::error::{Error, InvalidTokenReason, Result};
use crate::tokens::claims::{Claims, IncomingClaims, TokenType};
use crate::tokens::keys::{KeySet, NO_PROVIDER, SigningKey};

/// Header `kid`s longer than this are not looked up: no configured key has
/// one (configured kids are at most [`MAX_KID_BYTES`](crate::MAX_KID_BYTES)).
const MAX_HEADER_KID_BYTES: usize = 256;

/// Encodes and verifies tokens with a [`KeySet`]; the validation settings are
/// built once here, never per request.
#[derive(Debug)]
pub struct JwtCodec {
    keys: Arc<KeySet>,
    /// Per key: full validation, and the same without the `exp` check.
    validations: Vec<(Validation, Validation)>,
    max_token_bytes: usize,
    leeway_secs: u64,
}

impl JwtCodec {
    /// Builds the codec for a configuration: its key set (from a key file
    /// or [`key_set`](crate::SecurityConfigBuilder::key_set)), or else one
    /// HMAC key without a `kid` from its secret; and its
    /// audience/issuer/leeway rules. Fails early, with a clear error, if the
    /// crypto provider is missing, so no request ever hits that panic.
    pub fn from_config(config: &SecurityConfig) -> Result<Self> {
        if let Some(keys) = config.shared_key_set() {
            return Self::with_shared_keys(Arc::clone(keys), config);
        }
        if jsonwebtoken::crypto::CryptoProvider::try_get_default().is_none() {
            return Err(Error::config(NO_PROVIDER));
        }
        let key = SigningKey::hmac(None, config.algorithm(), config.secret_bytes())?;
        Self::new(KeySet::new(vec![key])?, config)
    }

    /// Builds a codec around an explicit key set with the configuration's
    /// claim rules.
    pub fn new(keys: KeySet, config: &SecurityConfig) -> Result<Self> {
        Self::with_shared_keys(Arc::new(keys), config)
    }

    fn with_shared_keys(keys: Arc<KeySet>, config: &SecurityConfig) -> Result<Self> {
        if jsonwebtoken::crypto::CryptoProvider::try_get_default().is_none() {
            return Err(Error::config(NO_PROVIDER));
        }
        let validations = keys
            .keys()
            .iter()
            .map(|key| {
                let strict = validation_for(key, config, true);
                let lenient = validation_for(key, config, false);
                (strict, lenient)
            })
            .collect();
        Ok(Self {
            keys,
            validations,
            max_token_bytes: config.max_token_bytes(),
            leeway_secs: config.leeway().as_secs(),
        })
    }

    /// The keys in use.
    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    /// Signs `claims` with the active key (the seed's `encode_jwt`); the
    /// header carries the key's `kid`, if it has one.
    pub fn encode<T: Serialize>(&self, claims: &T) -> Result<String> {
        let key = self.keys.active();
        let encoding = key
            .encoding()
            .ok_or_else(|| Error::Internal("the active key cannot sign".into()))?;
        let mut header = Header::new(key.algorithm());
        header.kid = key.kid().map(String::from);
        jsonwebtoken::encode(&header, claims, encoding)
            .map_err(|e| Error::Internal(format!("signing a token failed: {e}")))
    }

    /// Verifies signature and every claim, including `exp`; optionally the
    /// token type. No store lookup (the seed's `validate_jwt_stateless`).
    pub fn verify(&self, token: &str, expected: Option<TokenType>) -> Result<Claims> {
        let claims = self.decode_with(token, true)?;
        check_type(&claims, expected)?;
        Ok(claims)
    }

    /// Verifies the signature and claims but not `exp` (the seed's
    /// `decode_token`): for logout and revocation of tokens that may have
    /// expired already. Never use it to authorize a request.
    pub fn decode(&self, token: &str) -> Result<Claims> {
        self.decode_with(token, false)
    }

    fn decode_with(&self, token: &str, check_exp: bool) -> Result<Claims> {
        if token.len() > self.max_token_bytes {
            return Err(Error::InvalidToken(InvalidTokenReason::TooLarge));
        }
        if token.bytes().filter(|b| *b == b'.').count() != 2 {
            return Err(Error::InvalidToken(InvalidTokenReason::Malformed));
        }
        let header = jsonwebtoken::decode_header(token).map_err(map_jwt_error)?;
        // An absurd kid (huge, or with control characters) names no key; it
        // is not even compared.
        let kid = header.kid.as_deref();
        if kid.is_some_and(|k| k.len() > MAX_HEADER_KID_BYTES || k.chars().any(char::is_control)) {
            return Err(Error::InvalidToken(InvalidTokenReason::UnknownKey));
        }
        let (index, key) = self
            .keys
            .find(kid)
            .ok_or(Error::InvalidToken(InvalidTokenReason::UnknownKey))?;
        if header.alg != key.algorithm() {
            return Err(Error::InvalidToken(InvalidTokenReason::DisallowedAlgorithm));
        }
        let (strict, lenient) = &self.validations[index];
        let validation = if check_exp { strict } else { lenient };
        let data = jsonwebtoken::decode::<IncomingClaims>(token, key.decoding(), validation)
            .map_err(|err| match err.kind() {
                // A null `exp` (or `nbf`) fails the format check too; it is missing.
                ErrorKind::InvalidClaimFormat(claim) if !claim_present(token, claim) => {
                    Error::InvalidToken(InvalidTokenReason::MissingClaim)
                }
                _ => map_jwt_error(err),
            })?;
        let claims = Claims::try_from(data.claims)?;
        // A token issued in the future was minted by a skewed or hostile clock.
        let leeway = i64::try_from(self.leeway_secs).unwrap_or(i64::MAX);
        if claims.iat > now_secs().saturating_add(leeway) {
            return Err(Error::InvalidToken(InvalidTokenReason::NotYetValid));
        }
        Ok(claims)
    }
}

fn validation_for(key: &SigningKey, config: &SecurityConfig, check_exp: bool) -> Validation {
    let mut v = Validation::new(key.algorithm());
    v.leeway = config.leeway().as_secs();
    v.validate_exp = check_exp;
    v.validate_nbf = true;
    // `exp` is required too, but by `Claims::try_from` (absent or null:
    // `MissingClaim`): required here, a present but negative `exp` would
    // count as missing; not required here, jsonwebtoken still checks its
    // format (`InvalidClaimFormat`, so `InvalidClaim`) and its time.
    let mut required = vec!["sub"];
    if let Some(issuer) = config.issuer() {
        v.set_issuer(&[issuer]);
        required.push("iss");
    }
    if config.allowed_audiences().is_empty() {
        // No audience configured: a token naming any audience is for someone else.
        v.validate_aud = true;
        v.aud = None;
    } else {
        v.set_audience(config.allowed_audiences());
        required.push("aud");
    }
    v.set_required_spec_claims(&required);
    v
}

pub(crate) fn check_type(claims: &Claims, expected: Option<TokenType>) -> Result<()> {
    match expected {
        Some(t) if t != claims.token_type => {
            Err(Error::InvalidToken(InvalidTokenReason::WrongType))
        }
        _ => Ok(()),
    }
}

fn map_jwt_error(err: jsonwebtoken::errors::Error) -> Error {
    use InvalidTokenReason as R;
    let reason = match err.kind() {
        ErrorKind::ExpiredSignature => return Error::ExpiredToken,
        ErrorKind::InvalidSignature => R::BadSignature,
        ErrorKind::InvalidIssuer => R::Issuer,
        ErrorKind::InvalidAudience => R::Audience,
        ErrorKind::ImmatureSignature => R::NotYetValid,
        ErrorKind::MissingRequiredClaim(_) => R::MissingClaim,
        // Only reachable for a present `exp`/`nbf` that is an integer but
        // no u64 (a negative one): any other shape fails to deserialize
        // into our claims first, as malformed.
        ErrorKind::InvalidClaimFormat(_) => R::InvalidClaim,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::InvalidAlgorithmName => R::DisallowedAlgorithm,
        _ => R::Malformed,
    };
    Error::InvalidToken(reason)
}

/// Whether the (already verified) payload of `token` has `claim`, not
/// null. Only asked on an error path.
fn claim_present(token: &str, claim: &str) -> bool {
    use base64::Engine as _;
    token
        .split('.')
        .nth(1)
        .and_then(|payload| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .ok()
        })
        .and_then(|json| serde_json::from_slice::<serde_json::Value>(&json).ok())
        .is_some_and(|claims| claims.get(claim).is_some_and(|v| !v.is_null()))
}

fn now_secs() -> i64 {
    i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap_or(i64::MAX)
}
