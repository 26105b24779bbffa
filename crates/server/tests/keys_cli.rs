//! `fastcore-security keys ...` and `serve` with a key file, run as the
//! built binary: the file is private (0600) and written whole, rotation
//! keeps old tokens verifying, nothing prints key material, and the server
//! signs with the active key and publishes the public keys.

// Test code: a failed assumption fails the test.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use common::{Output, Running, Stream, TempDb, binary, me_at, run};
use fastcore_security::{
    Algorithm, Jwk, JwtCodec, KeyFile, KeySet, KeyStatus, SecurityConfig, SigningKey, TokenType,
};
use serde_json::Value;

fn keys(dir: &Path, args: &[&str]) -> Output {
    let mut command = binary(dir);
    command.arg("keys").args(args);
    run(command, None)
}

fn key_file(temp: &TempDb) -> PathBuf {
    temp.dir.path().join("keys.json")
}

/// Nothing that looks like key material in what a command printed.
fn assert_quiet(out: &Output) {
    for text in [&out.stdout, &out.stderr] {
        for marker in ["BEGIN", "PRIVATE KEY", "MIG", "MC4C", "secret_base64"] {
            assert!(!text.contains(marker), "{marker} printed: {out:?}");
        }
    }
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn payload_or_header(token: &str, index: usize) -> Value {
    use base64::Engine as _;
    let part = token.split('.').nth(index).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn generate_rotate_list_and_retire() {
    let temp = TempDb::new();
    let dir = temp.dir.path();
    let file = key_file(&temp);

    // The first key: ES256 by default, in ./keys.json, private.
    let out = keys(dir, &["generate", "--kid", "first"]);
    assert!(out.success(), "{out:?}");
    assert!(
        out.stdout
            .contains("generated ES256 key \"first\" in keys.json (active)"),
        "{out:?}"
    );
    assert_quiet(&out);
    #[cfg(unix)]
    assert_eq!(mode(&file), 0o600);
    let loaded = KeyFile::load(&file).unwrap();
    assert_eq!(loaded.keys.len(), 1);
    assert_eq!(loaded.active().unwrap().kid, "first");
    assert!(loaded.keys[0].created_at.is_some());
    assert_eq!(loaded.key_set().unwrap().jwks().keys.len(), 1);

    // A second key rotates: it signs, the first only verifies.
    let out = keys(dir, &["generate", "--alg", "EdDSA", "--out", "keys.json"]);
    assert!(out.success(), "{out:?}");
    assert!(
        out.stdout
            .contains("key \"first\" now only verifies; its tokens stay valid"),
        "{out:?}"
    );
    assert!(
        out.stdout.contains("keys retire --kid first"),
        "says how to finish the rotation: {out:?}"
    );
    assert_quiet(&out);
    #[cfg(unix)]
    assert_eq!(mode(&file), 0o600, "the rewritten file is private too");
    let loaded = KeyFile::load(&file).unwrap();
    let second = loaded.active().unwrap();
    assert_eq!(second.alg, Algorithm::EdDSA);
    assert!(
        second.kid.len() == 17 && second.kid.starts_with("20"),
        "{}",
        second.kid
    );
    assert_eq!(loaded.get("first").unwrap().status, KeyStatus::Verify);
    let second = second.kid.clone();
    // No temporary file is left behind.
    let names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["keys.json"], "{names:?}");

    // `list` shows kid, algorithm and status, never the keys.
    let out = keys(dir, &["list"]);
    assert!(out.success(), "{out:?}");
    assert_quiet(&out);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{out:?}");
    assert!(lines[0].starts_with("KID"), "{out:?}");
    assert!(
        lines[1].starts_with("first") && lines[1].contains("ES256") && lines[1].contains("verify"),
        "{out:?}"
    );
    assert!(
        lines[2].starts_with(&second) && lines[2].contains("EdDSA") && lines[2].contains("active"),
        "{out:?}"
    );
    assert!(lines[2].ends_with("private key"), "{out:?}");

    // The active key cannot be retired; a kid that does not exist is an error.
    let out = keys(dir, &["retire", "--kid", &second]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        out.stderr
            .contains("is the active key and cannot be retired"),
        "{out:?}"
    );
    let out = keys(dir, &["retire", "--kid", "nope"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("has no key \"nope\""), "{out:?}");

    // Retiring the old key.
    let out = keys(dir, &["retire", "--kid", "first"]);
    assert!(out.success(), "{out:?}");
    assert!(out.stdout.contains("key \"first\" is retired"), "{out:?}");
    let loaded = KeyFile::load(&file).unwrap();
    assert_eq!(loaded.get("first").unwrap().status, KeyStatus::Retired);
    assert_eq!(loaded.key_set().unwrap().keys().len(), 1);
    let out = keys(dir, &["list"]);
    assert!(
        out.stdout.lines().nth(1).unwrap().contains("retired"),
        "{out:?}"
    );
    let out = keys(dir, &["retire", "--kid", "first"]);
    assert!(
        out.success() && out.stdout.contains("already retired"),
        "{out:?}"
    );

    // A kid that is taken or unusable is refused before anything is written.
    let before = std::fs::read(&file).unwrap();
    for kid in ["first", "has space", ""] {
        let out = keys(dir, &["generate", "--kid", kid]);
        assert_eq!(out.status.code(), Some(1), "{kid:?}: {out:?}");
    }
    assert_eq!(std::fs::read(&file).unwrap(), before);
}

#[test]
fn a_verify_only_key_is_activated_later() {
    let temp = TempDb::new();
    let dir = temp.dir.path();
    let file = key_file(&temp);
    let out = keys(dir, &["generate", "--kid", "a", "--verify-only"]);
    assert_eq!(out.status.code(), Some(1), "nothing active yet: {out:?}");
    assert!(!file.exists());

    assert!(keys(dir, &["generate", "--kid", "a"]).success());
    let out = keys(
        dir,
        &["generate", "--kid", "b", "--alg", "es384", "--verify-only"],
    );
    assert!(out.success(), "{out:?}");
    assert!(out.stdout.contains("keys activate --kid b"), "{out:?}");
    let loaded = KeyFile::load(&file).unwrap();
    assert_eq!(loaded.active().unwrap().kid, "a");
    assert_eq!(loaded.get("b").unwrap().status, KeyStatus::Verify);
    // Both are published at once, so verifiers learn "b" before it signs.
    assert_eq!(loaded.key_set().unwrap().jwks().keys.len(), 2);

    let out = keys(dir, &["activate", "--kid", "b", "--file", "keys.json"]);
    assert!(out.success(), "{out:?}");
    let loaded = KeyFile::load(&file).unwrap();
    assert_eq!(loaded.active().unwrap().kid, "b");
    assert_eq!(loaded.get("a").unwrap().status, KeyStatus::Verify);
}

#[test]
fn rsa_and_hmac_keys_can_be_generated() {
    let temp = TempDb::new();
    let dir = temp.dir.path();
    let out = keys(dir, &["generate", "--alg", "RS256", "--kid", "rsa"]);
    assert!(out.success(), "{out:?}");
    let out = keys(dir, &["generate", "--alg", "HS512", "--kid", "hs"]);
    assert!(out.success(), "{out:?}");
    assert_quiet(&out);
    let loaded = KeyFile::load(key_file(&temp)).unwrap();
    let set = loaded.key_set().unwrap();
    assert_eq!(set.active().algorithm(), Algorithm::HS512);
    // HMAC secrets are never published; the RSA key is.
    let jwks = serde_json::to_value(set.jwks()).unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1, "{jwks}");
    assert_eq!(jwks["keys"][0]["kid"], "rsa");
    let n = jwks["keys"][0]["n"].as_str().unwrap();
    assert_eq!(
        n.len(),
        512,
        "a 3072-bit modulus is 512 base64url characters"
    );
}

#[test]
fn jwt_keys_file_names_the_file_for_every_keys_command() {
    let temp = TempDb::new();
    let dir = temp.dir.path();
    let elsewhere = dir.join("conf");
    std::fs::create_dir(&elsewhere).unwrap();
    let file = elsewhere.join("signing.json");
    let mut command = binary(dir);
    command
        .args(["keys", "generate", "--kid", "env"])
        .env("JWT_KEYS_FILE", &file);
    let out = run(command, None);
    assert!(out.success(), "{out:?}");
    assert!(file.exists() && !dir.join("keys.json").exists());
    let mut command = binary(dir);
    command.args(["keys", "list"]).env("JWT_KEYS_FILE", &file);
    let out = run(command, None);
    assert!(out.stdout.contains("env"), "{out:?}");
}

#[test]
fn a_broken_key_file_is_reported_not_overwritten() {
    let temp = TempDb::new();
    let dir = temp.dir.path();
    let file = key_file(&temp);
    let broken = "{\"keys\": [{\"kid\": \"k\", \"alg\": \"ES256\", \"status\": \"active\", \
                  \"private_key_pem\": \"-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMG\n\"}]}";
    std::fs::write(&file, broken).unwrap();
    for args in [
        &["generate"][..],
        &["list"][..],
        &["retire", "--kid", "k"][..],
    ] {
        let out = keys(dir, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
        assert!(
            out.stderr
                .contains("key file keys.json: not valid JSON (line 2"),
            "{out:?}"
        );
        assert_quiet(&out);
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), broken);
}

/// `keys list` shows a file `serve` would refuse, then fails with the
/// reason `serve` gives (it used to exit 0 on a 5-byte HS256 secret).
#[test]
fn keys_list_fails_on_a_file_serve_would_refuse() {
    let temp = TempDb::new();
    let dir = temp.dir.path();
    let file = key_file(&temp);
    // "short" in base64: 5 bytes, where HS256 needs 32.
    let short = "{\"keys\": [{\"kid\": \"tiny\", \"alg\": \"HS256\", \"status\": \"active\", \
                 \"secret_base64\": \"c2hvcnQ=\"}]}";
    std::fs::write(&file, short).unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    for args in [&["list"][..], &["list", "--json"][..]] {
        let out = keys(dir, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        assert!(out.stdout.contains("tiny"), "listed first: {out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
        assert!(out.stderr.contains("keys.json"), "{out:?}");
        assert!(out.stderr.contains("5 bytes"), "{out:?}");
        assert!(!out.stderr.contains("c2hvcnQ"), "{out:?}");
    }
}

// ------------------------------------------------------------------- serve

fn serve(temp: &TempDb, keys_file: &Path) -> std::process::Command {
    let mut command = binary(temp.dir.path());
    command
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--purge-interval",
            "0",
            "--database-url",
        ])
        .arg(temp.url())
        .env("JWT_KEYS_FILE", keys_file);
    command
}

/// With a key file there is no signing secret to key the throttle's
/// hashes with: `serve` warns and says `keyed=false` until
/// LOGIN_THROTTLE_SECRET is set.
#[test]
fn serve_with_a_key_file_warns_until_the_throttle_has_a_secret() {
    let temp = TempDb::new();
    assert!(keys(temp.dir.path(), &["generate", "--kid", "k"]).success());
    for throttle_secret in [None, Some("a-throttle-secret-of-at-least-32-bytes!!")] {
        let mut command = serve(&temp, &key_file(&temp));
        if let Some(secret) = throttle_secret {
            command.env("LOGIN_THROTTLE_SECRET", secret);
        }
        let mut server = Running::spawn(command);
        server.wait_until_listening();
        let line = server.wait_for(Stream::Stderr, |l| l.contains("keyed="));
        let warnings =
            server.lines_matching(Stream::Stderr, |l| l.contains("set LOGIN_THROTTLE_SECRET"));
        assert!(server.terminate().success(), "{}", server.captured());
        match throttle_secret {
            None => {
                assert!(line.contains("keyed=false"), "{line}");
                assert_eq!(warnings.len(), 1, "{}", server.captured());
                assert!(warnings[0].contains("WARN"), "{}", warnings[0]);
            }
            Some(secret) => {
                assert!(line.contains("keyed=true"), "{line}");
                assert!(warnings.is_empty(), "{warnings:?}");
                assert!(!server.captured().contains(secret));
            }
        }
    }
}

#[tokio::test]
async fn serve_signs_with_the_active_key_and_publishes_the_public_keys() {
    let temp = TempDb::new();
    let dir = temp.dir.path();
    assert!(keys(dir, &["generate", "--kid", "old", "--alg", "EdDSA"]).success());
    assert!(keys(dir, &["generate", "--kid", "new"]).success());

    let mut command = serve(&temp, &key_file(&temp));
    command.arg("--demo");
    let mut server = Running::spawn(command);
    let password = server.demo_password();
    let base = server.wait_until_listening();
    let configured = server.wait_for(Stream::Stderr, |l| l.contains("security configured"));
    assert!(configured.contains("active_kid=\"new\""), "{configured}");
    assert!(configured.contains("algorithm=ES256"), "{configured}");
    assert!(
        server
            .lines_matching(Stream::Stderr, |l| l.contains("DEVELOPMENT secret"))
            .is_empty(),
        "the key file, not a generated secret"
    );

    let client = reqwest::Client::new();
    let response = client
        .post(format!("{base}/auth/login"))
        .form(&[("username", "demo"), ("password", password.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let pair: Value = response.json().await.unwrap();
    let access = pair["access_token"].as_str().unwrap();
    let header = payload_or_header(access, 0);
    assert_eq!(header["kid"], "new");
    assert_eq!(header["alg"], "ES256");
    let response = me_at(&client, &base, access).await;
    assert_eq!(response.status(), 200);

    let response = client
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["cache-control"], "public, max-age=300");
    let jwks: Value = response.json().await.unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, ["new", "old"], "{jwks}");
    assert!(jwks["keys"][0].get("d").is_none(), "{jwks}");

    // A service that only has the published key verifies the server's token.
    let jwk: Jwk = serde_json::from_value(jwks["keys"][0].clone()).unwrap();
    let verifier = KeySet::new(vec![
        SigningKey::hmac(Some("own".into()), Algorithm::HS256, &[1; 32]).unwrap(),
        SigningKey::from_public_jwk("new", Algorithm::ES256, &jwk).unwrap(),
    ])
    .unwrap();
    let config = SecurityConfig::builder().key_set(verifier).build().unwrap();
    let claims = JwtCodec::from_config(&config)
        .unwrap()
        .verify(access, Some(TokenType::Access))
        .unwrap();
    assert_eq!(
        claims.sub,
        payload_or_header(access, 1)["sub"].as_str().unwrap()
    );

    assert!(server.terminate().success());
    server.drain();
    assert!(!server.captured().contains("PRIVATE KEY"));
}

#[test]
fn serve_refuses_a_bad_key_file_at_start_up() {
    let temp = TempDb::new();
    let file = key_file(&temp);
    for (contents, expected) in [
        (None, "cannot be read"),
        (Some("{\"keys\": []}"), "no key is active"),
        (
            Some(
                "{\"keys\": [{\"kid\": \"k\", \"alg\": \"RS256\", \"status\": \"active\", \
                 \"private_key_pem\": \"-----BEGIN PRIVATE KEY-----\\nMC4CAQAwBQYDK2VwBCIEIDrq5rLCg9oNRcQH5T9dWdds0thhJMFZfRSTo4WUM3fq\\n-----END PRIVATE KEY-----\\n\"}]}",
            ),
            "key \"k\": the private key is not an unencrypted PKCS#8 PEM RSA private key",
        ),
    ] {
        match contents {
            Some(text) => std::fs::write(&file, text).unwrap(),
            None => {
                let _ = std::fs::remove_file(&file);
            }
        }
        let out = run(serve(&temp, &file), None);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one clear line: {out:?}");
        assert!(
            lines[0].starts_with(&format!(
                "error: configuration error: key file {}: ",
                file.display()
            )),
            "{out:?}"
        );
        assert!(lines[0].contains(expected), "{out:?}");
        assert!(!out.stderr.contains("panicked"), "{out:?}");
        assert!(!out.stderr.contains("MC4C"), "{out:?}");
        assert!(
            !temp.path().exists(),
            "configuration is checked before the database"
        );
    }

    // `keys generate` will not add to a file that does not load.
    let out = keys(temp.dir.path(), &["generate"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("not writing keys.json"), "{out:?}");

    // JWT_SECRET_KEY and JWT_KEYS_FILE together are one too many.
    std::fs::remove_file(&file).unwrap();
    assert!(keys(temp.dir.path(), &["generate"]).success());
    let mut command = serve(&temp, &file);
    command.env("JWT_SECRET_KEY", common::SECRET);
    let out = run(command, None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        out.stderr
            .contains("JWT_SECRET_KEY and JWT_KEYS_FILE (or a key set) are both set"),
        "{out:?}"
    );
    assert!(!out.stderr.contains(common::SECRET), "{out:?}");
}
