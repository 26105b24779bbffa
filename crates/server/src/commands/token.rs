//! `fastcore-security token inspect|revoke|purge`.
//!
//! Admins work with token ids (`jti`), not tokens: a token is a credential,
//! its id is not. Revocation and purging act on the token store directly and
//! need no signing secret, so the operator's shell does not have to hold
//! `JWT_SECRET_KEY` to cut a session off.

use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

use fastcore_security::{Error, InvalidTokenReason, SecurityConfig, TokenRecord, insecure};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use secrecy::ExposeSecret as _;
use serde_json::Value;

use crate::clock;
use crate::database::{Database, OpenOptions};
use crate::password_input::read_line;
use crate::purge::{purge_expired, purge_login_throttle};

/// A token's header and claims, decoded without any check (the library's
/// [`fastcore_security::insecure`]).
pub use fastcore_security::insecure::UnverifiedToken as Unverified;

/// Decodes the header and claims of a compact JWS with
/// [`insecure::decode_unverified`]: checks nothing, for display only. The
/// error says what an operator pasted wrong.
pub fn decode_unverified(token: &str) -> anyhow::Result<Unverified> {
    insecure::decode_unverified(token).map_err(|err| match err {
        Error::InvalidToken(InvalidTokenReason::TooLarge) => anyhow::anyhow!(
            "this is not a JWT: it is longer than {} bytes",
            insecure::MAX_UNVERIFIED_TOKEN_BYTES
        ),
        _ => anyhow::anyhow!(
            "this is not a JWT: expected three parts separated by dots, the first two \
             base64url-encoded JSON"
        ),
    })
}

/// Reads the token argument: itself, or one line of standard input for `-`.
/// A pasted `Bearer ` prefix is dropped.
fn token_from_argument(argument: &str) -> anyhow::Result<String> {
    let raw = if argument == "-" {
        if std::io::stdin().is_terminal() {
            // A prompt only: a closed standard error changes nothing.
            let _ = writeln!(std::io::stderr(), "Paste the token and press Enter:");
        }
        read_line(std::io::stdin().lock(), "the token")?
            .expose_secret()
            .to_owned()
    } else {
        argument.to_owned()
    };
    let token = raw.trim();
    let token = match token.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => token,
    };
    if token.is_empty() {
        anyhow::bail!("no token given");
    }
    Ok(token.to_owned())
}

/// What `inspect` found out about a token with a key at hand.
struct Verification {
    /// Where the keys came from, for the text output.
    keys: String,
    /// `None` when the signature and claims verify (expiry not checked).
    signature_error: Option<String>,
    /// The `jti`'s record, if the token has a `jti` and the store has it.
    record: Option<TokenRecord>,
    /// Whether the token has a `jti` claim at all.
    has_jti: bool,
    /// `None` when the server would accept the token now.
    refusal: Option<String>,
}

/// Prints a token's header and claims under an UNVERIFIED banner. When
/// `JWT_SECRET_KEY` or `JWT_KEYS_FILE` is set, also says whether the signature and claims
/// verify, what the store knows of the `jti`, and whether the server would
/// accept the token now. With `json`, prints the same as one JSON object
/// (see `token inspect --help`). The token itself is never printed.
pub async fn inspect(
    database_url: &str,
    options: &OpenOptions,
    argument: &str,
    json: bool,
) -> anyhow::Result<()> {
    let token = token_from_argument(argument)?;
    let decoded = decode_unverified(&token)?;
    let now = clock::now();
    let verification = verify(database_url, options, &token, &decoded).await?;
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&inspection_json(&decoded, verification.as_ref(), now))?
        )?;
        return Ok(());
    }

    outln!("UNVERIFIED: decoded without checking the signature or the expiry.")?;
    outln!("Anyone can write these values; do not trust them.")?;
    outln!()?;
    outln!(
        "header:\n{}",
        serde_json::to_string_pretty(&decoded.header)?
    )?;
    outln!(
        "claims:\n{}",
        serde_json::to_string_pretty(&decoded.claims)?
    )?;
    for name in ["iat", "nbf", "exp"] {
        if let Some(t) = decoded.claims.get(name).and_then(Value::as_i64) {
            outln!(
                "{name}: {} ({})",
                clock::format_utc(t),
                clock::relative(t, now)
            )?;
        }
    }
    outln!()?;

    let Some(verification) = verification else {
        outln!(
            "Set JWT_SECRET_KEY (or JWT_KEYS_FILE) to check the signature and the token's \
             record in the store."
        )?;
        return Ok(());
    };
    outln!("{}", verification.keys)?;
    match &verification.signature_error {
        None => outln!("  signature and claims: valid (expiry not checked here)")?,
        Some(err) => outln!("  signature and claims: NOT valid: {err}")?,
    }
    match (&verification.record, verification.has_jti) {
        (Some(record), _) => outln!("  store record: {}", describe(record, now))?,
        (None, true) => {
            outln!("  store record: none (this service never issued it, or it was purged)")?
        }
        (None, false) => outln!("  store record: the token has no jti claim")?,
    }
    match &verification.refusal {
        None => outln!("  accepted now: yes")?,
        Some(err) => outln!("  accepted now: no ({err})")?,
    }
    Ok(())
}

/// With a key configured, checks the token as the server would; `None`
/// without one.
async fn verify(
    database_url: &str,
    options: &OpenOptions,
    token: &str,
    decoded: &Unverified,
) -> anyhow::Result<Option<Verification>> {
    let builder = SecurityConfig::builder_from_env()?;
    if !builder.has_secret() && !builder.has_keys() {
        return Ok(None);
    }
    let config = builder.database_url(database_url).build()?;
    let db = Database::open_with(database_url, options).await?;
    let security = db.security(config)?;
    let keys = match security.config().keys_file() {
        Some(file) => format!("verification (with the keys of {}):", file.display()),
        None => "verification (with JWT_SECRET_KEY):".to_owned(),
    };
    let signature_error = security.decode_token(token).err().map(|e| e.to_string());
    let jti = decoded.claims.get("jti").and_then(Value::as_str);
    let record = match jti {
        Some(jti) => db.token_store().get(jti).await?,
        None => None,
    };
    let refusal = security
        .validate_token(token, None)
        .await
        .err()
        .map(|e| e.to_string());
    Ok(Some(Verification {
        keys,
        signature_error,
        record,
        has_jti: jti.is_some(),
        refusal,
    }))
}

/// `inspect --json`'s object.
fn inspection_json(decoded: &Unverified, verification: Option<&Verification>, now: i64) -> Value {
    let verification = verification.map(|v| {
        serde_json::json!({
            "signature_valid": v.signature_error.is_none(),
            "signature_error": v.signature_error,
            "store_record": v.record.as_ref().map(|r| record_json(r, now)),
            "accepted": v.refusal.is_none(),
            "refusal": v.refusal,
        })
    });
    serde_json::json!({
        "verified": false,
        "header": decoded.header,
        "claims": decoded.claims,
        "verification": verification,
    })
}

fn record_json(record: &TokenRecord, now: i64) -> Value {
    let state = match record.revoked_at {
        Some(_) => "revoked",
        None if record.expires_at <= now => "expired",
        None => "live",
    };
    serde_json::json!({
        "token_type": record.token_type.to_string(),
        "user_id": record.user_id,
        "issued_at": record.issued_at,
        "expires_at": record.expires_at,
        "revoked_at": record.revoked_at,
        "state": state,
    })
}

fn describe(record: &TokenRecord, now: i64) -> String {
    let state = match record.revoked_at {
        Some(at) => format!(
            "REVOKED at {} ({})",
            clock::format_utc(at),
            clock::relative(at, now)
        ),
        None if record.expires_at <= now => "expired, not revoked".to_owned(),
        None => "live".to_owned(),
    };
    format!(
        "{} token of user {}, issued {}, expires {}; {state}",
        record.token_type,
        record.user_id,
        clock::format_utc(record.issued_at),
        clock::format_utc(record.expires_at),
    )
}

/// Whether `argument` has the shape of a compact JWT (three base64url
/// segments separated by dots, optionally after `Bearer `) rather than of a
/// token id or a user id. Token ids are UUIDs: they never contain a dot.
pub fn looks_like_jwt(argument: &str) -> bool {
    let argument = argument.trim();
    let argument = match argument.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => argument,
    };
    let base64url = |segment: &str| {
        segment
            .trim_end_matches('=')
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let parts: Vec<&str> = argument.split('.').collect();
    // The signature is empty for an unsecured ("alg": "none") token.
    matches!(parts[..], [header, claims, signature]
        if !header.is_empty() && !claims.is_empty()
            && base64url(header) && base64url(claims) && base64url(signature))
}

/// Revokes one token by `jti`, or every token of a user (given by id or by
/// username). An unknown `jti` is an error, since it is most likely a typo;
/// revoking an already revoked token is not. So is a user that is neither
/// in the users table nor the owner of any unrevoked token. A whole token
/// given instead of an id is refused without being echoed: it is a credential.
pub async fn revoke(db: &Database, jti: Option<&str>, user: Option<&str>) -> anyhow::Result<()> {
    if jti.is_some_and(looks_like_jwt) {
        anyhow::bail!(
            "that looks like a token, not a token id: run `fastcore-security token inspect -` \
             to see its jti"
        );
    }
    if user.is_some_and(looks_like_jwt) {
        anyhow::bail!(
            "that looks like a token, not a user id or username: run \
             `fastcore-security token inspect -` to see its sub"
        );
    }
    let store = db.token_store();
    if let Some(jti) = jti {
        let Some(record) = store.get(jti).await? else {
            anyhow::bail!("no token with id {jti:?} in the store");
        };
        if record.revoked_at.is_some() {
            outln!("token {jti} was already revoked")?;
        } else {
            store.revoke(jti, clock::now()).await?;
            outln!(
                "revoked token {jti} ({} token of user {})",
                record.token_type,
                record.user_id
            )?;
        }
    }
    if let Some(user) = user {
        let users = db.users();
        let known = match users.find_by_id(user).await? {
            Some(found) => Some(found),
            None => users.find_by_username(user).await?,
        };
        match known {
            Some(found) => {
                let revoked = store.revoke_user(&found.id, None, clock::now()).await?;
                // The count is for the operator; the cut-off also catches a
                // refresh that was rotating one of those tokens right now.
                store.cut_off_user(&found.id, clock::now()).await?;
                outln!(
                    "revoked {revoked} token(s) of user {} ({:?})",
                    found.id,
                    found.username
                )?;
            }
            None => {
                // Tokens may outlive their user, or belong to users this table
                // never held: revoke by the id as given, if it owns any.
                let revoked = store.revoke_user(user, None, clock::now()).await?;
                if revoked == 0 {
                    anyhow::bail!(
                        "no user named {user:?} or with that id, and no unrevoked token belongs \
                         to that id; see `fastcore-security users list`"
                    );
                }
                store.cut_off_user(user, clock::now()).await?;
                outln!("revoked {revoked} token(s) of user {user} (not in the users table)")?;
            }
        }
    }
    Ok(())
}

/// Deletes the records of expired tokens, `batch` per statement, until a
/// batch comes back short; prints how many went.
///
/// On a terminal a spinner shows the count and the rate as it goes (the
/// total is not known up front); otherwise (a pipe, a cron job's log) plain
/// lines: what is purged, the running count at most once a second, and the
/// total. Records of tokens that expire while it runs are left for the next
/// purge: the cutoff is fixed at the start.
pub async fn purge(db: &Database, batch: u32) -> anyhow::Result<()> {
    let store = db.token_store();
    let cutoff = clock::now();
    let mut progress = PurgeProgress::new(std::io::stdout().is_terminal());
    if !progress.on_terminal() {
        outln!(
            "purging the records of tokens that expired before {} ({batch} per batch)",
            clock::format_utc(cutoff)
        )?;
    }
    let purged = purge_expired(&*store, cutoff, batch, |total| progress.update(total)).await;
    progress.finish();
    match purged {
        Ok(total) => {
            outln!("purged {total} expired token record(s)")?;
            if let Some(throttle) = store.login_throttle() {
                let windows = purge_login_throttle(&*throttle, cutoff, batch).await?;
                outln!("purged {windows} ended login throttle window(s)")?;
            }
            Ok(())
        }
        Err(err) => {
            if err.purged > 0 {
                outln!(
                    "purged {} expired token record(s) before an error",
                    err.purged
                )?;
            }
            Err(err.into())
        }
    }
}

/// How `token purge` shows its progress.
enum PurgeProgress {
    /// A spinner with the count and the rate, on the terminal.
    Bar(ProgressBar),
    /// Plain lines, at most one a second.
    Lines { last: Option<Instant> },
}

impl PurgeProgress {
    fn new(terminal: bool) -> Self {
        if !terminal {
            return Self::Lines { last: None };
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout());
        let style = ProgressStyle::with_template(
            "{spinner} purging expired token records: {human_pos} deleted ({rate}, {elapsed})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .with_key(
            "rate",
            |state: &indicatif::ProgressState, out: &mut dyn std::fmt::Write| {
                let _ = write!(out, "{:.0}/s", state.per_sec());
            },
        );
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(100));
        Self::Bar(bar)
    }

    fn on_terminal(&self) -> bool {
        matches!(self, Self::Bar(_))
    }

    fn update(&mut self, total: u64) {
        match self {
            Self::Bar(bar) => bar.set_position(total),
            Self::Lines { last } => {
                let due = last.is_none_or(|at| at.elapsed() >= Duration::from_secs(1));
                if due {
                    // Progress only: a closed output shows in the result line.
                    let _ = outln!("deleted {total} record(s) so far");
                    *last = Some(Instant::now());
                }
            }
        }
    }

    fn finish(&self) {
        if let Self::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.\
                         eyJzdWIiOiI0MiIsInR5cGUiOiJhY2Nlc3MifQ.\
                         c2lnbmF0dXJl";

    #[test]
    fn decodes_header_and_claims_without_a_key() {
        let decoded = decode_unverified(TOKEN).unwrap();
        assert_eq!(decoded.header["alg"], "HS256");
        assert_eq!(decoded.claims["sub"], "42");
        assert_eq!(decoded.claims["type"], "access");
    }

    #[test]
    fn garbage_is_refused_with_a_clear_message() {
        for bad in ["", "abc", "a.b", "a.b.c.d", "!!.??.x", "e30.bm90IGpzb24.x"] {
            let err = decode_unverified(bad).unwrap_err();
            let msg = format!("{err:#}");
            assert!(msg.contains("JWT"), "{bad:?}: {msg}");
        }
    }

    #[test]
    fn jwt_shaped_arguments_are_recognised() {
        for token in [
            TOKEN,
            "Bearer aaa.bbb.ccc",
            "  eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0. ",
            "abc.def.ghi==",
        ] {
            assert!(looks_like_jwt(token), "{token:?}");
        }
        for id in [
            "0b4f9a4e-6a0f-4bd3-9a53-0f7c1e8d2c11",
            "ada",
            "first.last",
            "a.b.c.d",
            ".b.c",
            "a b.c.d",
            "zoë.x.y",
            "",
        ] {
            assert!(!looks_like_jwt(id), "{id:?}");
        }
    }

    #[test]
    fn a_bearer_prefix_is_dropped() {
        assert_eq!(
            token_from_argument("Bearer abc.def.ghi").unwrap(),
            "abc.def.ghi"
        );
        assert_eq!(
            token_from_argument("  abc.def.ghi ").unwrap(),
            "abc.def.ghi"
        );
        assert!(token_from_argument("   ").is_err());
    }
}
