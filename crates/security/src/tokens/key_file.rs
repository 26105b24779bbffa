//! The key file: several keys, each with a `kid`, an algorithm and a status,
//! in one JSON document (the format is documented on [`KeyFile`]).
//!
//! Reading never echoes key material: every message names the file, the
//! key (by position and `kid`) and the problem, and JSON syntax errors are
//! reported by line and column only.

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::Jwk;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::tokens::keys::{KeySet, MAX_KID_BYTES, SigningKey, is_valid_kid};

/// Key files larger than this are refused before parsing.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// The fields a key may have.
const ENTRY_FIELDS: [&str; 8] = [
    "kid",
    "alg",
    "status",
    "created_at",
    "private_key_pem",
    "public_key_pem",
    "public_jwk",
    "secret_base64",
];

/// The algorithms a key file may name, as written there.
const ALGORITHMS: &str =
    "HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA";

/// What a key in a [`KeyFile`] is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyStatus {
    /// Signs new tokens (and verifies). Exactly one key is active.
    Active,
    /// Only verifies: tokens it signed stay valid until they expire or the
    /// key is retired.
    Verify,
    /// Neither signs nor verifies; kept in the file for the record. Tokens
    /// it signed are refused as signed by an unknown key.
    Retired,
}

impl KeyStatus {
    /// The name used in the file: `active`, `verify` or `retired`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "active",
            KeyStatus::Verify => "verify",
            KeyStatus::Retired => "retired",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "active" => Some(KeyStatus::Active),
            "verify" => Some(KeyStatus::Verify),
            "retired" => Some(KeyStatus::Retired),
            _ => None,
        }
    }
}

impl fmt::Display for KeyStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The key itself, as written in the file. `Debug` never shows it.
#[derive(Clone)]
#[non_exhaustive]
pub enum KeyMaterial {
    /// `private_key_pem`: an unencrypted PKCS#8 PEM private key (RSA,
    /// EC or Ed25519); signs and verifies.
    PrivateKeyPem(SecretString),
    /// `public_key_pem`: a PEM public key; verifies only.
    PublicKeyPem(String),
    /// `public_jwk`: a public JWK; verifies only.
    PublicJwk(Box<Jwk>),
    /// `secret_base64`: an HMAC secret in base64 (standard or URL-safe,
    /// padded or not); signs and verifies.
    SecretBase64(SecretString),
}

impl KeyMaterial {
    /// The field name of this material in the file.
    pub fn field_name(&self) -> &'static str {
        match self {
            KeyMaterial::PrivateKeyPem(_) => "private_key_pem",
            KeyMaterial::PublicKeyPem(_) => "public_key_pem",
            KeyMaterial::PublicJwk(_) => "public_jwk",
            KeyMaterial::SecretBase64(_) => "secret_base64",
        }
    }

    /// Whether a key made of this material can sign.
    pub fn can_sign(&self) -> bool {
        matches!(
            self,
            KeyMaterial::PrivateKeyPem(_) | KeyMaterial::SecretBase64(_)
        )
    }
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyMaterial({}: [redacted])", self.field_name())
    }
}

/// One key of a [`KeyFile`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct KeyFileEntry {
    /// The key id, written in the header of the tokens the key signs.
    pub kid: String,
    /// The one algorithm the key is used with.
    pub alg: Algorithm,
    /// Whether the key signs, only verifies, or is retired.
    pub status: KeyStatus,
    /// When the key was made (free text, informational; `keys generate`
    /// writes an RFC 3339 UTC time).
    pub created_at: Option<String>,
    /// The key.
    pub material: KeyMaterial,
}

impl KeyFileEntry {
    /// An entry; it is checked when the file is (see [`KeyFile::key_set`]).
    pub fn new(
        kid: impl Into<String>,
        alg: Algorithm,
        status: KeyStatus,
        material: KeyMaterial,
    ) -> Self {
        Self {
            kid: kid.into(),
            alg,
            status,
            created_at: None,
            material,
        }
    }

    /// The same entry with a creation time.
    #[must_use]
    pub fn created_at(mut self, created_at: impl Into<String>) -> Self {
        self.created_at = Some(created_at.into());
        self
    }

    /// The usable key of this entry (whatever its status), checked as
    /// [`SigningKey`]'s constructors check keys.
    pub fn signing_key(&self) -> Result<SigningKey> {
        let kid = self.kid.clone();
        match &self.material {
            KeyMaterial::PrivateKeyPem(pem) => {
                SigningKey::from_private_pem(kid, self.alg, pem.expose_secret().as_bytes())
            }
            KeyMaterial::PublicKeyPem(pem) => {
                SigningKey::from_public_pem(kid, self.alg, pem.as_bytes())
            }
            KeyMaterial::PublicJwk(jwk) => SigningKey::from_public_jwk(kid, self.alg, jwk),
            KeyMaterial::SecretBase64(secret) => {
                let bytes = decode_secret(secret.expose_secret()).ok_or_else(|| {
                    Error::config(format!(
                        "key {:?}: secret_base64 is not valid base64",
                        self.kid
                    ))
                })?;
                SigningKey::hmac(Some(kid), self.alg, &bytes)
            }
        }
    }

    /// Checks what can be checked without the key material being parsed.
    fn check(&self, position: usize) -> Result<()> {
        if !is_valid_kid(&self.kid) {
            return Err(Error::config(format!(
                "key #{position}: the kid must be 1 to {MAX_KID_BYTES} printable ASCII characters without spaces"
            )));
        }
        let name = format!("key #{position} ({:?})", self.kid);
        let hmac = matches!(
            self.alg,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
        );
        match (&self.material, hmac) {
            (KeyMaterial::SecretBase64(_), false) => {
                return Err(Error::config(format!(
                    "{name}: secret_base64 is for HS256, HS384 and HS512 keys; a {:?} key needs private_key_pem (or public_key_pem / public_jwk to only verify)",
                    self.alg
                )));
            }
            (KeyMaterial::SecretBase64(_), true) => {}
            (_, true) => {
                return Err(Error::config(format!(
                    "{name}: a {:?} key is a shared secret: give it as secret_base64",
                    self.alg
                )));
            }
            _ => {}
        }
        if self.status == KeyStatus::Active && !self.material.can_sign() {
            return Err(Error::config(format!(
                "{name}: the active key must be able to sign; give private_key_pem (or secret_base64 for HS256/384/512), not {}",
                self.material.field_name()
            )));
        }
        Ok(())
    }
}

/// A key file: the keys a service signs and verifies tokens with.
///
/// # Format
///
/// A JSON object with one field, `keys`, an array of keys. Each key has:
///
/// | field | meaning |
/// |---|---|
/// | `kid` | the key id (1 to 128 printable ASCII characters, no spaces), unique in the file |
/// | `alg` | the one algorithm of the key: `HS256`/`HS384`/`HS512`, `RS256`/`RS384`/`RS512`, `PS256`/`PS384`/`PS512`, `ES256` (P-256), `ES384` (P-384), `EdDSA` (Ed25519) |
/// | `status` | `active` (signs new tokens; exactly one key), `verify` (only verifies tokens it signed before), `retired` (ignored: its tokens are refused) |
/// | `created_at` | optional, informational |
///
/// and exactly one of:
///
/// | field | key |
/// |---|---|
/// | `private_key_pem` | an unencrypted PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`, line breaks as `\n`) for the RSA, EC and EdDSA algorithms |
/// | `public_key_pem` | a PEM public key (`-----BEGIN PUBLIC KEY-----`): verify only |
/// | `public_jwk` | a public JWK object: verify only |
/// | `secret_base64` | an HMAC secret in base64, for HS256/384/512 (at least 32/48/64 bytes once decoded) |
///
/// ```json
/// {
///   "keys": [
///     { "kid": "2026-12-03-k7q2", "alg": "ES256", "status": "active",
///       "created_at": "2026-12-03T09:00:00Z",
///       "private_key_pem": "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMG...\n-----END PRIVATE KEY-----\n" },
///     { "kid": "2026-06-01-x3d9", "alg": "RS256", "status": "verify",
///       "private_key_pem": "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----\n" },
///     { "kid": "hs-legacy", "alg": "HS256", "status": "verify",
///       "secret_base64": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA==" },
///     { "kid": "2025-01-01-aaaa", "alg": "EdDSA", "status": "retired",
///       "public_key_pem": "-----BEGIN PUBLIC KEY-----\n...\n-----END PUBLIC KEY-----\n" }
///   ]
/// }
/// ```
///
/// New tokens are signed by the active key and carry its `kid`. Tokens are
/// verified by the key their `kid` names, which must be `active` or
/// `verify`. Once a file has more than one key (not counting retired
/// ones), a token without a `kid` is refused.
///
/// **Rotation**: add the new key as `active` and make the old one
/// `verify`; once the old key's last tokens have expired (the refresh
/// token lifetime), make it `retired` or remove it. The server's
/// `fastcore-security keys generate` / `keys retire` do exactly this.
///
/// **Moving from `JWT_SECRET_KEY`**: tokens signed with the plain secret
/// have no `kid`. Start with a file whose only key is that secret
/// (`secret_base64` of the same bytes, `active`), so old tokens keep
/// working and new ones get a `kid`; rotate to a new key once the
/// refresh token lifetime has passed.
///
/// The file holds private keys: keep it readable by the service alone
/// (`keys generate` writes it with mode 0600).
#[derive(Debug, Clone, Default)]
pub struct KeyFile {
    /// The keys, in file order.
    pub keys: Vec<KeyFileEntry>,
}

impl KeyFile {
    /// Reads and checks a key file (its shape, the kids, which key fields
    /// fit which algorithm). Errors are [`Error::Config`] naming the file
    /// and the problem, never the key material.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let problem = |what: String| Error::config(format!("key file {}: {what}", path.display()));
        let meta = std::fs::metadata(path).map_err(|e| problem(format!("cannot be read ({e})")))?;
        if !meta.is_file() {
            return Err(problem("is not a regular file".into()));
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(problem(format!(
                "is {} bytes long; a key file is at most {MAX_FILE_BYTES} bytes",
                meta.len()
            )));
        }
        let text = Zeroizing::new(
            std::fs::read(path).map_err(|e| problem(format!("cannot be read ({e})")))?,
        );
        let text = std::str::from_utf8(&text).map_err(|_| problem("is not UTF-8 text".into()))?;
        Self::parse(text).map_err(|err| in_file(path, err))
    }

    /// Parses and checks the JSON text of a key file (see [`KeyFile::load`]).
    pub fn parse(text: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(text).map_err(|e| json_problem(&e))?;
        let Value::Object(top) = value else {
            return Err(Error::config(
                "the file must be a JSON object with a \"keys\" array",
            ));
        };
        if let Some(field) = top.keys().find(|k| k.as_str() != "keys") {
            return Err(Error::config(format!(
                "unknown top-level field {}; the file has one field, \"keys\"",
                field_label(field)
            )));
        }
        let Some(Value::Array(entries)) = top.get("keys") else {
            return Err(Error::config(
                "the file must be a JSON object with a \"keys\" array",
            ));
        };
        let keys = entries
            .iter()
            .enumerate()
            .map(|(i, entry)| parse_entry(i + 1, entry))
            .collect::<Result<Vec<_>>>()?;
        let file = Self { keys };
        file.check()?;
        Ok(file)
    }

    /// The key that signs, if exactly one key is active.
    pub fn active(&self) -> Option<&KeyFileEntry> {
        let mut active = self.keys.iter().filter(|k| k.status == KeyStatus::Active);
        match (active.next(), active.next()) {
            (Some(key), None) => Some(key),
            _ => None,
        }
    }

    /// The entry with this kid.
    pub fn get(&self, kid: &str) -> Option<&KeyFileEntry> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    /// The usable keys: checks the file (exactly one active key, unique
    /// kids, every active and `verify` key parses and works with its
    /// algorithm) and builds the [`KeySet`], the active key first, then the
    /// `verify` keys in file order. Retired keys are not even parsed.
    pub fn key_set(&self) -> Result<KeySet> {
        self.check()?;
        let active: Vec<&KeyFileEntry> = self
            .keys
            .iter()
            .filter(|k| k.status == KeyStatus::Active)
            .collect();
        let active = match active[..] {
            [one] => one,
            [] => {
                return Err(Error::config(
                    "no key is active: exactly one key needs \"status\": \"active\" (it signs new tokens)",
                ));
            }
            _ => {
                let kids: Vec<String> = active.iter().map(|k| format!("{:?}", k.kid)).collect();
                return Err(Error::config(format!(
                    "{} keys are active ({}): exactly one key signs new tokens; make the others \"verify\"",
                    active.len(),
                    kids.join(", ")
                )));
            }
        };
        let mut keys = vec![active.signing_key()?];
        for entry in self.keys.iter().filter(|k| k.status == KeyStatus::Verify) {
            keys.push(entry.signing_key()?);
        }
        KeySet::new(keys)
    }

    /// The file as pretty-printed JSON, in the format described above.
    ///
    /// It **contains the key material**: write it only where nobody but
    /// the service can read it.
    pub fn to_json(&self) -> Result<Zeroizing<String>> {
        #[derive(Serialize)]
        struct Entry<'a> {
            kid: &'a str,
            alg: String,
            status: &'static str,
            #[serde(skip_serializing_if = "Option::is_none")]
            created_at: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            private_key_pem: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            public_key_pem: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            public_jwk: Option<&'a Jwk>,
            #[serde(skip_serializing_if = "Option::is_none")]
            secret_base64: Option<&'a str>,
        }
        #[derive(Serialize)]
        struct File<'a> {
            keys: Vec<Entry<'a>>,
        }
        let keys = self
            .keys
            .iter()
            .map(|k| {
                let mut entry = Entry {
                    kid: &k.kid,
                    alg: format!("{:?}", k.alg),
                    status: k.status.as_str(),
                    created_at: k.created_at.as_deref(),
                    private_key_pem: None,
                    public_key_pem: None,
                    public_jwk: None,
                    secret_base64: None,
                };
                match &k.material {
                    KeyMaterial::PrivateKeyPem(pem) => {
                        entry.private_key_pem = Some(pem.expose_secret());
                    }
                    KeyMaterial::PublicKeyPem(pem) => entry.public_key_pem = Some(pem),
                    KeyMaterial::PublicJwk(jwk) => entry.public_jwk = Some(jwk),
                    KeyMaterial::SecretBase64(secret) => {
                        entry.secret_base64 = Some(secret.expose_secret());
                    }
                }
                entry
            })
            .collect();
        let mut json = serde_json::to_string_pretty(&File { keys })
            .map_err(|_| Error::Internal("the key file could not be written as JSON".into()))?;
        json.push('\n');
        Ok(Zeroizing::new(json))
    }

    /// Valid, unique kids; material that fits each algorithm; an active
    /// key that can sign.
    fn check(&self) -> Result<()> {
        for (i, entry) in self.keys.iter().enumerate() {
            entry.check(i + 1)?;
            if self.keys[..i].iter().any(|k| k.kid == entry.kid) {
                return Err(Error::config(format!(
                    "key #{} ({:?}): another key has the same kid; kids must be unique",
                    i + 1,
                    entry.kid
                )));
            }
        }
        Ok(())
    }
}

/// `err`, said of the key file at `path`.
pub(crate) fn in_file(path: &Path, err: Error) -> Error {
    match err {
        Error::Config(what) => Error::config(format!("key file {}: {what}", path.display())),
        other => other,
    }
}

fn parse_entry(position: usize, value: &Value) -> Result<KeyFileEntry> {
    let Value::Object(map) = value else {
        return Err(Error::config(format!(
            "key #{position} is not a JSON object"
        )));
    };
    let kid = match map.get("kid") {
        Some(Value::String(kid)) if is_valid_kid(kid) => kid.clone(),
        _ => {
            return Err(Error::config(format!(
                "key #{position}: needs a \"kid\" of 1 to {MAX_KID_BYTES} printable ASCII characters without spaces"
            )));
        }
    };
    let name = format!("key #{position} ({kid:?})");
    if let Some(field) = map.keys().find(|k| !ENTRY_FIELDS.contains(&k.as_str())) {
        return Err(Error::config(format!(
            "{name}: unknown field {}; a key has kid, alg, status, created_at and one of private_key_pem, public_key_pem, public_jwk, secret_base64",
            field_label(field)
        )));
    }
    let alg = match map.get("alg") {
        Some(Value::String(alg)) => parse_algorithm(alg),
        _ => None,
    }
    .ok_or_else(|| Error::config(format!("{name}: \"alg\" must be one of {ALGORITHMS}")))?;
    let status = match map.get("status") {
        Some(Value::String(status)) => KeyStatus::parse(status),
        _ => None,
    }
    .ok_or_else(|| {
        Error::config(format!(
            "{name}: \"status\" must be \"active\", \"verify\" or \"retired\""
        ))
    })?;
    let created_at = match map.get("created_at") {
        None | Some(Value::Null) => None,
        Some(Value::String(at)) => Some(at.clone()),
        Some(_) => {
            return Err(Error::config(format!(
                "{name}: \"created_at\" must be a string"
            )));
        }
    };
    let material = parse_material(&name, map)?;
    Ok(KeyFileEntry {
        kid,
        alg,
        status,
        created_at,
        material,
    })
}

fn parse_material(name: &str, map: &Map<String, Value>) -> Result<KeyMaterial> {
    let given: Vec<&str> = ENTRY_FIELDS[4..]
        .iter()
        .copied()
        .filter(|f| map.contains_key(*f))
        .collect();
    let [field] = given[..] else {
        return Err(Error::config(format!(
            "{name}: give exactly one of private_key_pem, public_key_pem, public_jwk or secret_base64"
        )));
    };
    let string = || match map.get(field) {
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(text.clone()),
        _ => Err(Error::config(format!(
            "{name}: {field} must be a non-empty string"
        ))),
    };
    Ok(match field {
        "private_key_pem" => KeyMaterial::PrivateKeyPem(SecretString::from(string()?)),
        "public_key_pem" => KeyMaterial::PublicKeyPem(string()?),
        "secret_base64" => KeyMaterial::SecretBase64(SecretString::from(string()?)),
        _ => {
            let jwk = match map.get(field) {
                Some(value @ Value::Object(_)) => serde_json::from_value::<Jwk>(value.clone()).ok(),
                _ => None,
            }
            .ok_or_else(|| Error::config(format!("{name}: public_jwk is not a JWK object")))?;
            KeyMaterial::PublicJwk(Box::new(jwk))
        }
    })
}

fn parse_algorithm(text: &str) -> Option<Algorithm> {
    Some(match text.to_ascii_uppercase().as_str() {
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EDDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

/// A field name for a message: quoted if it is short and plain, else not
/// repeated (it could be anything, even a pasted key).
fn field_label(field: &str) -> String {
    if !field.is_empty()
        && field.len() <= 32
        && field
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        format!("{field:?}")
    } else {
        "(a field name that is not shown)".to_owned()
    }
}

/// A JSON error by position only: serde_json's own messages may quote the
/// text they stumbled on, which may be key material.
fn json_problem(err: &serde_json::Error) -> Error {
    use serde_json::error::Category;
    match err.classify() {
        Category::Syntax | Category::Eof => Error::config(format!(
            "not valid JSON (line {}, column {}); PEM keys must be JSON strings with \\n for line breaks",
            err.line(),
            err.column()
        )),
        Category::Data | Category::Io => Error::config("not valid JSON"),
    }
}

/// An HMAC secret in any common base64 dialect.
fn decode_secret(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    let text = text.trim();
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .map(Zeroizing::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_do_not_quote_the_text() {
        let err = KeyFile::parse(
            "{\"keys\": [ {\"kid\": \"a\", \"private_key_pem\": \"-----BEGIN\nSECRETSTUFF\"} ]}",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("line 2"), "{err}");
        assert!(!err.contains("SECRETSTUFF"), "{err}");
        let err = KeyFile::parse("{\"keys\": \"SECRETSTUFF\"}")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("SECRETSTUFF"), "{err}");
    }

    #[test]
    fn a_file_round_trips_through_json() {
        let file = KeyFile {
            keys: vec![
                KeyFileEntry::new(
                    "a",
                    Algorithm::HS256,
                    KeyStatus::Active,
                    KeyMaterial::SecretBase64(SecretString::from(STANDARD.encode([1u8; 32]))),
                )
                .created_at("2026-12-03T00:00:00Z"),
                KeyFileEntry::new(
                    "b",
                    Algorithm::HS384,
                    KeyStatus::Retired,
                    KeyMaterial::SecretBase64(SecretString::from(STANDARD.encode([2u8; 48]))),
                ),
            ],
        };
        let json = file.to_json().unwrap();
        let again = KeyFile::parse(&json).unwrap();
        assert_eq!(again.keys.len(), 2);
        assert_eq!(
            again.keys[0].created_at.as_deref(),
            Some("2026-12-03T00:00:00Z")
        );
        assert_eq!(again.keys[1].status, KeyStatus::Retired);
        assert_eq!(again.key_set().unwrap().keys().len(), 1);
        assert!(!format!("{again:?}").contains(&STANDARD.encode([1u8; 32])));
    }
}
