//! `fastcore-security keys generate|activate|retire|list`: the key file
//! (JWT_KEYS_FILE) the server signs and verifies tokens with.
//!
//! The file format is the library's ([`KeyFile`]). Every change is checked
//! the way the server will check it at start-up (the whole file must load)
//! before the file is replaced, and it is replaced atomically (a temporary
//! file in the same directory, then a rename) with mode 0600, so a crash or
//! a full disk never leaves a half-written key file and nobody else can
//! read the private keys. Key material is never printed.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use fastcore_security::{Algorithm, KeyFile, KeyFileEntry, KeyMaterial, KeyStatus, MAX_KID_BYTES};
use rand::TryRngCore as _;
use rand::distr::{Alphanumeric, SampleString as _};
use rand::rngs::OsRng;
use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::clock;

/// `keys generate`: a new key in the file (created if missing), active
/// unless `verify_only`; the key that was active then only verifies.
pub async fn generate(
    path: &Path,
    alg: Algorithm,
    kid: Option<&str>,
    verify_only: bool,
) -> anyhow::Result<()> {
    let mut file = load_or_new(path)?;
    let kid = match kid {
        Some(kid) => {
            check_new_kid(&file, kid)?;
            kid.to_owned()
        }
        None => fresh_kid(&file),
    };
    // RSA key generation takes a moment: off the async runtime.
    let material = tokio::task::spawn_blocking(move || generate_material(alg))
        .await
        .context("key generation stopped")??;
    let status = if verify_only {
        KeyStatus::Verify
    } else {
        KeyStatus::Active
    };
    let mut demoted = Vec::new();
    if !verify_only {
        for entry in &mut file.keys {
            if entry.status == KeyStatus::Active {
                entry.status = KeyStatus::Verify;
                demoted.push(entry.kid.clone());
            }
        }
    }
    let created_at = clock::format_utc(clock::now());
    file.keys
        .push(KeyFileEntry::new(kid.clone(), alg, status, material).created_at(created_at));
    if verify_only && file.active().is_none() {
        anyhow::bail!(
            "{} has no active key yet: generate the first key without --verify-only",
            path.display()
        );
    }
    save(path, &file)?;

    outln!(
        "generated {alg:?} key {kid:?} in {} ({})",
        path.display(),
        status
    )?;
    for old in &demoted {
        outln!("key {old:?} now only verifies; its tokens stay valid until they expire")?;
    }
    if verify_only {
        outln!(
            "once every instance has the file, make it sign: fastcore-security keys activate --kid {kid}"
        )?;
    }
    for old in &demoted {
        outln!(
            "after the refresh token lifetime (JWT_REFRESH_TOKEN_EXPIRE_DAYS), retire it: \
             fastcore-security keys retire --kid {old}"
        )?;
    }
    outln!("restart the server to use the new key file")?;
    Ok(())
}

/// `keys activate`: `kid` signs from now on; the active key only verifies.
pub fn activate(path: &Path, kid: &str) -> anyhow::Result<()> {
    let mut file = load_existing(path)?;
    let entry = file
        .keys
        .iter()
        .find(|k| k.kid == kid)
        .ok_or_else(|| no_such_key(path, kid))?;
    match entry.status {
        KeyStatus::Active => {
            outln!("key {kid:?} is already the active key")?;
            return Ok(());
        }
        KeyStatus::Retired => anyhow::bail!(
            "key {kid:?} is retired; generate a new key instead of bringing back a retired one"
        ),
        KeyStatus::Verify => {}
    }
    if !entry.material.can_sign() {
        anyhow::bail!(
            "key {kid:?} is a public key ({}), which cannot sign",
            entry.material.field_name()
        );
    }
    let mut demoted = Vec::new();
    for entry in &mut file.keys {
        if entry.kid == kid {
            entry.status = KeyStatus::Active;
        } else if entry.status == KeyStatus::Active {
            entry.status = KeyStatus::Verify;
            demoted.push(entry.kid.clone());
        }
    }
    save(path, &file)?;
    outln!("key {kid:?} is now the active key in {}", path.display())?;
    for old in &demoted {
        outln!("key {old:?} now only verifies")?;
    }
    outln!("restart the server to use the new key file")?;
    Ok(())
}

/// `keys retire`: tokens signed by `kid` are refused from the next start.
pub fn retire(path: &Path, kid: &str) -> anyhow::Result<()> {
    let mut file = load_existing(path)?;
    let entry = file
        .keys
        .iter_mut()
        .find(|k| k.kid == kid)
        .ok_or_else(|| no_such_key(path, kid))?;
    match entry.status {
        KeyStatus::Active => anyhow::bail!(
            "key {kid:?} is the active key and cannot be retired; generate (or activate) \
             another key first"
        ),
        KeyStatus::Retired => {
            outln!("key {kid:?} is already retired")?;
            return Ok(());
        }
        KeyStatus::Verify => entry.status = KeyStatus::Retired,
    }
    save(path, &file)?;
    outln!(
        "key {kid:?} is retired in {}: tokens it signed are refused once the server restarts",
        path.display()
    )?;
    Ok(())
}

/// `keys list`: one line per key, never the key itself; with `json`, a
/// JSON array of `{kid, alg, status, created_at, kind}`. Then the checks
/// `serve` makes: a file it would refuse (a short secret, no active key)
/// fails here too, after the listing, with the same one-line reason.
pub fn list(path: &Path, json: bool) -> anyhow::Result<()> {
    print_list(path, json)?;
    if !load_existing(path)?.keys.is_empty() {
        fastcore_security::KeySet::from_file(path)?;
    }
    Ok(())
}

fn print_list(path: &Path, json: bool) -> anyhow::Result<()> {
    let file = load_existing(path)?;
    warn_if_readable_by_others(path);
    if json {
        let keys: Vec<serde_json::Value> = file
            .keys
            .iter()
            .map(|key| {
                serde_json::json!({
                    "kid": key.kid,
                    "alg": format!("{:?}", key.alg),
                    "status": key.status.as_str(),
                    "created_at": key.created_at,
                    "kind": key_kind(&key.material),
                })
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&keys)?)?;
        return Ok(());
    }
    if file.keys.is_empty() {
        outln!("{} has no keys", path.display())?;
        return Ok(());
    }
    let width = file
        .keys
        .iter()
        .map(|k| k.kid.len())
        .max()
        .unwrap_or(0)
        .max(3);
    outln!(
        "{:<width$}  {:<6}  {:<7}  {:<20}  KEY",
        "KID",
        "ALG",
        "STATUS",
        "CREATED"
    )?;
    for key in &file.keys {
        let kind = key_kind(&key.material);
        outln!(
            "{:<width$}  {:<6}  {:<7}  {:<20}  {kind}",
            key.kid,
            format!("{:?}", key.alg),
            key.status.as_str(),
            key.created_at.as_deref().unwrap_or("-"),
        )?;
    }
    Ok(())
}

/// What kind of key material an entry holds (never the material).
fn key_kind(material: &KeyMaterial) -> &'static str {
    match material {
        KeyMaterial::PrivateKeyPem(_) => "private key",
        KeyMaterial::PublicKeyPem(_) | KeyMaterial::PublicJwk(_) => "public key",
        KeyMaterial::SecretBase64(_) => "shared secret",
        _ => "other",
    }
}

fn no_such_key(path: &Path, kid: &str) -> anyhow::Error {
    anyhow::anyhow!("{} has no key {kid:?}", path.display())
}

fn load_existing(path: &Path) -> anyhow::Result<KeyFile> {
    Ok(KeyFile::load(path)?)
}

fn load_or_new(path: &Path) -> anyhow::Result<KeyFile> {
    match std::fs::symlink_metadata(path) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(KeyFile::default()),
        _ => load_existing(path),
    }
}

fn check_new_kid(file: &KeyFile, kid: &str) -> anyhow::Result<()> {
    let valid =
        !kid.is_empty() && kid.len() <= MAX_KID_BYTES && kid.bytes().all(|b| b.is_ascii_graphic());
    if !valid {
        anyhow::bail!(
            "--kid must be 1 to {MAX_KID_BYTES} printable ASCII characters without spaces"
        );
    }
    if file.get(kid).is_some() {
        anyhow::bail!("the key file already has a key {kid:?}; kids must be unique");
    }
    Ok(())
}

/// Today's date and six random lowercase letters or digits, unused in `file`.
fn fresh_kid(file: &KeyFile) -> String {
    let date = &clock::format_utc(clock::now())[..10];
    loop {
        let suffix = Alphanumeric
            .sample_string(&mut rand::rng(), 6)
            .to_ascii_lowercase();
        let kid = format!("{date}-{suffix}");
        if file.get(&kid).is_none() {
            return kid;
        }
    }
}

/// A new key for `alg`, from the operating system's random source.
pub fn generate_material(alg: Algorithm) -> anyhow::Result<KeyMaterial> {
    use ed25519_dalek::pkcs8::{EncodePrivateKey as _, KeypairBytes};
    use rsa::pkcs8::LineEnding;

    let random = |len: usize| -> anyhow::Result<Zeroizing<Vec<u8>>> {
        let mut bytes = Zeroizing::new(vec![0u8; len]);
        OsRng
            .try_fill_bytes(&mut bytes)
            .context("the operating system's random source failed")?;
        Ok(bytes)
    };
    let pem_error = |_| anyhow::anyhow!("cannot encode the new key as PKCS#8 PEM");
    let pem: Zeroizing<String> = match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            let len = match alg {
                Algorithm::HS384 => 48,
                Algorithm::HS512 => 64,
                _ => 32,
            };
            let secret = Zeroizing::new(STANDARD.encode(random(len)?.as_slice()));
            return Ok(KeyMaterial::SecretBase64(SecretString::from(
                secret.as_str().to_owned(),
            )));
        }
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => {
            use rsa::Generate as _;
            let key = rsa::PrivateKey::try_generate()
                .context("the operating system's random source failed")?;
            rsa::pkcs8::EncodePrivateKey::to_pkcs8_pem(&key, LineEnding::LF).map_err(pem_error)?
        }
        Algorithm::ES256 => loop {
            // A random 32-byte string is a valid scalar but for a 2^-32 chance.
            if let Ok(key) = p256::SecretKey::from_slice(&random(32)?) {
                break p256::pkcs8::EncodePrivateKey::to_pkcs8_pem(&key, LineEnding::LF)
                    .map_err(pem_error)?;
            }
        },
        Algorithm::ES384 => loop {
            if let Ok(key) = p384::SecretKey::from_slice(&random(48)?) {
                break p384::pkcs8::EncodePrivateKey::to_pkcs8_pem(&key, LineEnding::LF)
                    .map_err(pem_error)?;
            }
        },
        Algorithm::EdDSA => {
            let seed = random(32)?;
            let mut secret_key = [0u8; 32];
            secret_key.copy_from_slice(&seed);
            // PKCS#8 v1 (the seed only), as OpenSSL writes Ed25519 keys.
            let keypair = KeypairBytes {
                secret_key,
                public_key: None,
            };
            keypair.to_pkcs8_pem(LineEnding::LF).map_err(pem_error)?
        }
        other => anyhow::bail!("{other:?} keys cannot be generated"),
    };
    Ok(KeyMaterial::PrivateKeyPem(SecretString::from(
        pem.as_str().to_owned(),
    )))
}

/// Checks that `file` loads as the server would load it, then replaces
/// the file at `path` with it.
fn save(path: &Path, file: &KeyFile) -> anyhow::Result<()> {
    file.key_set()
        .with_context(|| format!("not writing {}: the result would not load", path.display()))?;
    let json = file.to_json()?;
    write_atomically(path, json.as_bytes())
        .with_context(|| format!("cannot write the key file {}", path.display()))
}

/// Writes `contents` to a new file next to `path` (mode 0600 on Unix),
/// flushes it to disk and renames it over `path`.
pub fn write_atomically(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .context("the key file path names no file")?
        .to_string_lossy()
        .into_owned();
    let suffix = Alphanumeric.sample_string(&mut rand::rng(), 8);
    let temp = dir.join(format!(".{name}.{suffix}.tmp"));
    let written = write_new_private_file(&temp, contents).and_then(|()| {
        std::fs::rename(&temp, path).context("cannot move the new key file into place")
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written?;
    #[cfg(unix)]
    {
        // Make the rename itself durable.
        if let Ok(dir) = std::fs::File::open(&dir) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

fn write_new_private_file(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    #[cfg(unix)]
    {
        // Whatever the umask, exactly owner read/write.
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(contents)?;
    file.sync_all()?;
    Ok(())
}

/// A warning on standard error when group or others may read the file.
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                let _ = writeln!(
                    std::io::stderr(),
                    "warning: {} holds private keys but has mode {mode:o}; run chmod 600 on it",
                    path.display()
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_can_be_generated_and_loads() {
        for alg in [
            Algorithm::HS256,
            Algorithm::HS512,
            Algorithm::ES256,
            Algorithm::ES384,
            Algorithm::EdDSA,
        ] {
            let material = generate_material(alg).unwrap();
            let entry = KeyFileEntry::new("k", alg, KeyStatus::Active, material);
            let key = entry.signing_key().unwrap();
            assert_eq!(key.algorithm(), alg);
            assert!(key.can_sign());
        }
    }

    #[test]
    fn fresh_kids_start_with_the_date() {
        let kid = fresh_kid(&KeyFile::default());
        assert_eq!(kid.len(), 17, "{kid}");
        assert_eq!(&kid[..10], &clock::format_utc(clock::now())[..10]);
        assert!(
            kid[11..]
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
    }
}
