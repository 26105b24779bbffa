//! Reading a token **without verifying it**. Nothing here checks a
//! signature, an expiry, an audience or the token store: anyone can write
//! a token that decodes. The results are for display, logging and
//! debugging (an admin's `token inspect`, a support tool), never for
//! deciding who a caller is.
//!
//! To authorize a request use [`Security::validate_token`](crate::Security::validate_token)
//! or the [`TokenData`](crate::TokenData) / [`CurrentUser`](crate::CurrentUser)
//! extractors. The seed's `decode_token` is
//! [`Security::decode_token`](crate::Security::decode_token), which *does*
//! check the signature and claims (not the expiry), so it is not here.
//!
//! The module's name is the warning, as `jsonwebtoken`'s `dangerous` one:
//! a call to it reads as what it is in review, and it never turns up by
//! accident in autocompletion of the crate root.
//!
//! ```
//! use fastcore_security::insecure::decode_unverified;
//!
//! // {"alg":"HS256"} . {"sub":"42"} . (any signature at all)
//! let token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.bm90LWEtc2lnbmF0dXJl";
//! let decoded = decode_unverified(token).unwrap();
//! assert_eq!(decoded.header["alg"], "HS256");
//! assert_eq!(decoded.claims["sub"], "42");
//!
//! assert!(decode_unverified("not-a-token").is_err());
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::error::{Error, InvalidTokenReason, Result};

/// Longest token [`decode_unverified`] looks at; real ones are well under 8 KiB.
pub const MAX_UNVERIFIED_TOKEN_BYTES: usize = 64 * 1024;

/// A compact JWS's header and claims as JSON, exactly as written in the
/// token: **unverified**, so untrusted.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct UnverifiedToken {
    /// The JOSE header (`alg`, `kid`, `typ`...).
    pub header: Value,
    /// The claims, whatever they are (not even checked to be an object).
    pub claims: Value,
}

/// Base64url-decodes the header and claims of a compact JWS
/// (`header.claims.signature`) and checks **nothing** else: not the
/// signature, not the expiry, not the store.
///
/// Fails with [`Error::InvalidToken`] ([`InvalidTokenReason::TooLarge`]
/// over [`MAX_UNVERIFIED_TOKEN_BYTES`], [`InvalidTokenReason::Malformed`]
/// if it is not three dot-separated parts whose first two are base64url
/// JSON). Never panics, whatever the input.
pub fn decode_unverified(token: &str) -> Result<UnverifiedToken> {
    if token.len() > MAX_UNVERIFIED_TOKEN_BYTES {
        return Err(Error::InvalidToken(InvalidTokenReason::TooLarge));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::InvalidToken(InvalidTokenReason::Malformed));
    };
    Ok(UnverifiedToken {
        header: segment(header)?,
        claims: segment(claims)?,
    })
}

fn segment(segment: &str) -> Result<Value> {
    let malformed = || Error::InvalidToken(InvalidTokenReason::Malformed);
    let bytes = URL_SAFE_NO_PAD
        .decode(segment.trim_end_matches('='))
        .map_err(|_| malformed())?;
    serde_json::from_slice(&bytes).map_err(|_| malformed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_malformed_and_never_panics() {
        for bad in [
            "",
            "abc",
            "a.b",
            "a.b.c.d",
            "!!.??.x",
            "e30.bm90IGpzb24.x",
            "..",
            "é.é.é",
        ] {
            assert!(
                matches!(
                    decode_unverified(bad),
                    Err(Error::InvalidToken(InvalidTokenReason::Malformed))
                ),
                "{bad:?}"
            );
        }
        let huge = "a".repeat(MAX_UNVERIFIED_TOKEN_BYTES + 1);
        assert!(matches!(
            decode_unverified(&huge),
            Err(Error::InvalidToken(InvalidTokenReason::TooLarge))
        ));
    }

    #[test]
    fn an_unsigned_token_decodes_too() {
        // {"alg":"none"} . {} . (empty): decoding is not accepting.
        let decoded = decode_unverified("eyJhbGciOiJub25lIn0.e30.").unwrap();
        assert_eq!(decoded.header["alg"], "none");
        assert_eq!(decoded.claims, serde_json::json!({}));
    }
}
