//! The claim layout shared with the seed: `sub`, `jti`, `type`, `exp`, `iat`,
//! `aud`, `iss`, plus `sid` (the login session a token belongs to) and the
//! application's own claims.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, InvalidTokenReason};

/// Access or refresh; written as the `type` claim (`"access"`/`"refresh"`),
/// the seed's claim name, so tokens stay compatible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    /// Short-lived, presented on every request as a bearer token.
    Access,
    /// Long-lived, only exchanged (once: it rotates) at the refresh endpoint
    /// for a new token pair.
    Refresh,
}

impl TokenType {
    /// `"access"` or `"refresh"`, as stored and as written in the `type` claim.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::Access => "access",
            TokenType::Refresh => "refresh",
        }
    }
}

impl fmt::Display for TokenType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TokenType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "access" => Ok(TokenType::Access),
            "refresh" => Ok(TokenType::Refresh),
            _ => Err(Error::InvalidToken(InvalidTokenReason::WrongType)),
        }
    }
}

/// The `aud` claim: RFC 7519 allows one string or an array of strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience.
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

impl Audience {
    /// Whether `value` is one of the audiences.
    pub fn contains(&self, value: &str) -> bool {
        match self {
            Audience::One(a) => a == value,
            Audience::Many(all) => all.iter().any(|a| a == value),
        }
    }
}

/// Claim names the library writes itself; extra claims may not use them.
pub const RESERVED_CLAIMS: [&str; 9] = [
    "sub", "jti", "type", "exp", "iat", "nbf", "aud", "iss", "sid",
];

/// The verified claims of a token.
///
/// `sub` is always a string (RFC 7519), so integer user ids travel as
/// `"42"`. `extra` holds the application's own claims.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// Unique token id; the key of the token's record in the store.
    pub jti: String,
    /// Access or refresh.
    #[serde(rename = "type")]
    pub token_type: TokenType,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
    /// Issue time, seconds since the Unix epoch.
    pub iat: i64,
    /// Not-before time, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Intended audience(s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    /// Issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// The login session (token family) this token belongs to; logout ends
    /// every token of the session. Absent on tokens minted outside a login
    /// (and on the seed's tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Application claims (roles, tenant...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Claims as they arrive, before we insist on our required ones, so a
/// missing claim is reported as such rather than as "malformed".
#[derive(Deserialize)]
pub(crate) struct IncomingClaims {
    sub: Option<String>,
    jti: Option<String>,
    #[serde(rename = "type")]
    token_type: Option<String>,
    exp: Option<i64>,
    iat: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    sid: Option<String>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

impl TryFrom<IncomingClaims> for Claims {
    type Error = Error;
    fn try_from(c: IncomingClaims) -> Result<Self, Error> {
        let missing = || Error::InvalidToken(InvalidTokenReason::MissingClaim);
        let non_empty = |v: Option<String>| v.filter(|s| !s.is_empty());
        Ok(Claims {
            sub: non_empty(c.sub).ok_or_else(missing)?,
            jti: non_empty(c.jti).ok_or_else(missing)?,
            token_type: c.token_type.ok_or_else(missing)?.parse()?,
            exp: c.exp.ok_or_else(missing)?,
            iat: c.iat.ok_or_else(missing)?,
            nbf: c.nbf,
            aud: c.aud,
            iss: c.iss,
            sid: c.sid,
            extra: c.extra,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_seed() {
        let claims = Claims {
            sub: "42".into(),
            jti: "j".into(),
            token_type: TokenType::Refresh,
            exp: 2,
            iat: 1,
            nbf: None,
            aud: Some(Audience::One("api".into())),
            iss: Some("auth".into()),
            sid: None,
            extra: Map::new(),
        };
        let json = serde_json::to_value(&claims).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"sub":"42","jti":"j","type":"refresh","exp":2,"iat":1,"aud":"api","iss":"auth"})
        );
    }

    #[test]
    fn missing_claims_are_named_as_missing() {
        let raw: IncomingClaims =
            serde_json::from_value(serde_json::json!({"sub":"1","type":"access","exp":1,"iat":1}))
                .unwrap();
        let err = Claims::try_from(raw).unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidToken(InvalidTokenReason::MissingClaim)
        ));
    }
}
