//! Passwords: argon2id hashing, verification of the Python libraries' hashes
//! (passlib bcrypt `$2a$`/`$2b$`/`$2y$`, passlib and argon2-cffi argon2id),
//! the 72-byte bcrypt policy, malformed hashes, length limits, rehash
//! decisions, and the upgrade-on-login of `PasswordAuthenticator`.

// Test helpers may panic: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use argon2::password_hash::PasswordHasher as _;
use common::*;
use fastcore_security::{
    Credentials, Error, PasswordHasher, PasswordPolicy, UserAuthentication, get_password_hash,
    verify_password,
};
use serde_json::Value;

fn vectors(kind: &str) -> Vec<Value> {
    python_vectors()[kind].as_array().unwrap().clone()
}

/// An argon2 PHC string made directly with the `argon2` crate.
fn argon2_hash(
    algorithm: argon2::Algorithm,
    version: argon2::Version,
    m: u32,
    t: u32,
    p: u32,
    password: &str,
) -> String {
    let params = argon2::Params::new(m, t, p, None).unwrap();
    argon2::Argon2::new(algorithm, version, params)
        .hash_password(password.as_bytes())
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn new_hashes_are_argon2id_at_the_owasp_floor_and_verify() {
    let hash = get_password_hash("correct horse").await.unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(verify_password("correct horse", &hash).await);
    assert!(!verify_password("correct horse ", &hash).await);
    assert!(!verify_password("Correct horse", &hash).await);
    assert!(!verify_password("", &hash).await);
    let again = get_password_hash("correct horse").await.unwrap();
    assert_ne!(hash, again, "a fresh salt every time");
    assert!(!PasswordPolicy::default().needs_rehash(&hash));

    let unicode = get_password_hash("pässwörd-ünïcode-🙂").await.unwrap();
    assert!(verify_password("pässwörd-ünïcode-🙂", &unicode).await);
    // NFC and NFD are different bytes but the same password (NFKC first).
    assert!(verify_password("pa\u{308}sswörd-ünïcode-🙂", &unicode).await);
    assert!(!verify_password("passwörd-ünïcode-🙂", &unicode).await);
}

// ------------------------------------------------- Unicode normalisation

/// The same password as different keyboards and input methods send it:
/// every spelling in a group is the same password once in NFKC form.
const SAME_PASSWORDS: &[&[&str]] = &[
    // The "fi" ligature (U+FB01) and the two letters.
    &["\u{fb01}rewall-\u{fb02}ow", "firewall-flow"],
    // Full-width letters and an ideographic space (CJK input methods).
    &[
        "\u{ff43}\u{ff4f}\u{ff52}\u{ff52}\u{ff45}\u{ff43}\u{ff54}\u{3000}\u{ff48}\u{ff4f}\u{ff52}\u{ff53}\u{ff45}",
        "correct horse",
        "\u{ff43}orrect horse",
    ],
    // A composed "é" (NFC, most keyboards) and "e" + combining acute (NFD, macOS file names).
    &[
        "caf\u{e9} cr\u{e8}me",
        "cafe\u{301} cre\u{300}me",
        "caf\u{e9} cre\u{300}me",
    ],
    // Compatibility digits and numerals.
    &["pin-\u{2460}\u{2461}\u{2462}-\u{2168}", "pin-123-IX"],
];

#[tokio::test]
async fn a_password_typed_on_another_keyboard_is_the_same_password() {
    let hasher = PasswordHasher::default();
    for group in SAME_PASSWORDS {
        for made_with in *group {
            let hash = hasher.hash(made_with).await.unwrap();
            for typed in *group {
                let outcome = hasher.verify(typed, &hash).await.unwrap();
                assert!(
                    outcome.matches && !outcome.needs_rehash,
                    "hash of {made_with:?}, typed {typed:?}: {outcome:?}"
                );
            }
            // Normalisation is not case folding nor accent stripping.
            for other in ["firewall-Flow", "Correct horse", "cafe creme", "pin-123-9"] {
                assert!(
                    !hasher.verify(other, &hash).await.unwrap().matches,
                    "{other:?}"
                );
            }
        }
    }
}

#[tokio::test]
async fn python_hashes_of_non_nfkc_passwords_verify_and_are_flagged_for_rehash() {
    let hasher = PasswordHasher::default();
    let cases = vectors("non_nfkc");
    assert!(cases.len() >= 4);
    assert!(cases.iter().any(|v| str_of(v, "hash").starts_with("$2b$")));
    assert!(
        cases
            .iter()
            .any(|v| str_of(v, "hash").starts_with("$argon2id$"))
    );
    for v in &cases {
        let (hash, raw, nfkc) = (
            str_of(v, "hash"),
            str_of(v, "password"),
            str_of(v, "password_nfkc"),
        );
        assert_ne!(raw, nfkc);
        // The bytes the Python service hashed: a match, to be moved to NFKC.
        let outcome = hasher.verify(raw, hash).await.unwrap();
        assert!(
            outcome.matches && outcome.needs_rehash,
            "{raw:?}: {outcome:?}"
        );
        // The NFKC spelling is other bytes than the stored hash's.
        let outcome = hasher.verify(nfkc, hash).await.unwrap();
        assert!(!outcome.matches && !outcome.needs_rehash, "{nfkc:?}");
        let outcome = hasher
            .verify("definitely-not-the-password", hash)
            .await
            .unwrap();
        assert!(!outcome.matches && !outcome.needs_rehash);

        // Our NFKC agrees with Python's unicodedata.normalize("NFKC", ...):
        // a new hash of the raw password verifies with Python's NFKC form.
        let fresh = hasher.hash(raw).await.unwrap();
        let outcome = hasher.verify(nfkc, &fresh).await.unwrap();
        assert!(
            outcome.matches && !outcome.needs_rehash,
            "{raw:?} -> {nfkc:?}"
        );
    }
}

#[tokio::test]
async fn a_raw_bytes_hash_moves_to_the_nfkc_form_at_the_next_login() {
    for v in vectors("non_nfkc") {
        let (hash, raw, nfkc) = (
            str_of(&v, "hash"),
            str_of(&v, "password"),
            str_of(&v, "password_nfkc"),
        );
        let directory = TestDirectory::default();
        directory.add("9", "kana", hash);
        let auth = authenticator(&directory);

        // Before the upgrade only the bytes that were hashed work.
        assert!(
            auth.authenticate(&Credentials::new("kana", nfkc))
                .await
                .unwrap()
                .is_none()
        );
        assert!(directory.upgrades().is_empty());

        let user = auth
            .authenticate(&Credentials::new("kana", raw))
            .await
            .unwrap();
        assert_eq!(user.unwrap().id, "9");
        let upgrades = directory.upgrades();
        assert_eq!(upgrades.len(), 1, "{raw:?}");
        let new_hash = &upgrades[0].1;
        assert!(
            new_hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{new_hash}"
        );
        assert!(!PasswordPolicy::default().needs_rehash(new_hash));

        // After it, every spelling works and nothing more is upgraded.
        for typed in [raw, nfkc] {
            assert!(
                auth.authenticate(&Credentials::new("kana", typed))
                    .await
                    .unwrap()
                    .is_some(),
                "{typed:?}"
            );
        }
        assert_eq!(directory.upgrades().len(), 1);
        assert!(
            auth.authenticate(&Credentials::new("kana", "wrong"))
                .await
                .unwrap()
                .is_none()
        );
    }
}

#[tokio::test]
async fn the_byte_limit_applies_to_the_nfkc_form_too() {
    let max = PasswordPolicy::default().max_password_bytes;
    // U+FDFA is 3 bytes as sent and 33 in NFKC: 300 of them are 900 bytes
    // as sent (under the limit) and 9 900 once normalised (over it).
    let expanding = "\u{fdfa}".repeat(300);
    assert!(expanding.len() <= max);
    let err = get_password_hash(&expanding).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    assert!(
        !err.to_string().contains('\u{fdfa}'),
        "the password is not echoed"
    );

    // Just at the limit once normalised is fine; one character more is not.
    let strict = PasswordHasher::new(PasswordPolicy {
        max_password_bytes: 66,
        ..PasswordPolicy::default()
    })
    .unwrap();
    let hash = strict.hash("\u{fdfa}\u{fdfa}").await.unwrap();
    assert!(
        strict
            .verify("\u{fdfa}\u{fdfa}", &hash)
            .await
            .unwrap()
            .matches
    );
    assert!(matches!(
        strict.hash("\u{fdfa}\u{fdfa}\u{fdfa}").await,
        Err(Error::InvalidInput(_))
    ));
    // Verifying an over-long NFKC form is a plain "no", with no hashing.
    let outcome = strict
        .verify("\u{fdfa}\u{fdfa}\u{fdfa}", &hash)
        .await
        .unwrap();
    assert!(!outcome.matches && !outcome.needs_rehash);

    // A password that shrinks under NFKC is measured as sent first: 66
    // bytes of "e" + U+0301 pairs is over a 64-byte limit even though its
    // NFKC form ("é" x 22, 44 bytes) is not.
    let shrinking = "e\u{301}".repeat(22);
    assert_eq!(shrinking.len(), 66);
    let strict64 = PasswordHasher::new(PasswordPolicy {
        max_password_bytes: 64,
        ..PasswordPolicy::default()
    })
    .unwrap();
    assert!(matches!(
        strict64.hash(&shrinking).await,
        Err(Error::InvalidInput(_))
    ));
}

// --------------------------------------------------- bcrypt's 72 bytes

#[tokio::test]
async fn new_hashes_read_every_byte_past_bcrypts_72() {
    let hasher = PasswordHasher::default();
    let prefix = "P".repeat(72);
    let long = format!("{prefix}-tail-one");
    let same_prefix = format!("{prefix}-tail-two");
    let multibyte = format!("{}\u{e9}\u{e9}", "p".repeat(71)); // "é" straddles byte 72
    for password in [long.as_str(), multibyte.as_str()] {
        let hash = hasher.hash(password).await.unwrap();
        assert!(hash.starts_with("$argon2id$"), "never bcrypt: {hash}");
        assert!(hasher.verify(password, &hash).await.unwrap().matches);
    }
    let hash = hasher.hash(&long).await.unwrap();
    for other in [
        same_prefix.as_str(),
        prefix.as_str(),
        &long[..long.len() - 1],
    ] {
        assert!(
            !hasher.verify(other, &hash).await.unwrap().matches,
            "{other:?}"
        );
    }
    // Two passwords differing only in their last of 1024 bytes.
    let a = format!("{}a", "x".repeat(1023));
    let b = format!("{}b", "x".repeat(1023));
    let hash_a = hasher.hash(&a).await.unwrap();
    assert!(hasher.verify(&a, &hash_a).await.unwrap().matches);
    assert!(!hasher.verify(&b, &hash_a).await.unwrap().matches);

    // What bcrypt would have done with the same two passwords.
    let bcrypt_hash = bcrypt::hash(&long, 4).unwrap();
    assert!(bcrypt::verify(&same_prefix, &bcrypt_hash).unwrap());
}

#[tokio::test]
async fn a_long_bcrypt_password_logs_in_truncated_then_every_byte_counts() {
    // A passlib-style bcrypt hash of a 90-byte password (bcrypt reads 72).
    let prefix = "b".repeat(72);
    let long = format!("{prefix}-the-rest-of-the-long-one");
    let other_tail = format!("{prefix}-another-ending");
    let bcrypt_hash = bcrypt::hash(&long, 4).unwrap();
    let directory = TestDirectory::default();
    directory.add("5", "grace", &bcrypt_hash);
    let auth = authenticator(&directory);

    // Before the upgrade: the documented policy, bcrypt's truncation.
    let hasher = PasswordHasher::default();
    for typed in [&long, &prefix, &other_tail] {
        let outcome = hasher.verify(typed, &bcrypt_hash).await.unwrap();
        assert!(outcome.matches && outcome.needs_rehash, "{typed:?}");
    }

    // The user logs in with the long password: the hash becomes argon2id.
    assert!(
        auth.authenticate(&Credentials::new("grace", &long))
            .await
            .unwrap()
            .is_some()
    );
    let upgraded = directory.hash_of("grace").unwrap();
    assert!(upgraded.starts_with("$argon2id$"), "{upgraded}");
    assert_eq!(directory.upgrades().len(), 1);

    // From now on the longer and the shorter passwords are different.
    for typed in [&prefix, &other_tail] {
        assert!(
            auth.authenticate(&Credentials::new("grace", typed))
                .await
                .unwrap()
                .is_none(),
            "{typed:?}"
        );
        assert!(!hasher.verify(typed, &upgraded).await.unwrap().matches);
    }
    assert!(
        auth.authenticate(&Credentials::new("grace", &long))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        directory.upgrades().len(),
        1,
        "a wrong password upgrades nothing"
    );
}

#[tokio::test]
async fn every_passlib_bcrypt_vector_verifies_and_the_wrong_password_does_not() {
    let wrong = python_vectors()["wrong_password"]
        .as_str()
        .unwrap()
        .to_owned();
    let hasher = PasswordHasher::default();
    let bcrypt = vectors("passlib_bcrypt");
    let idents: std::collections::HashSet<_> = bcrypt
        .iter()
        .map(|v| str_of(v, "ident").to_owned())
        .collect();
    assert_eq!(idents.len(), 3, "2a, 2b and 2y are all covered");
    for v in &bcrypt {
        let (hash, password) = (str_of(v, "hash"), str_of(v, "password"));
        assert!(hash.starts_with(&format!("${}$04$", str_of(v, "ident"))));
        assert!(verify_password(password, hash).await, "{hash}");
        let outcome = hasher.verify(password, hash).await.unwrap();
        assert!(
            outcome.matches && outcome.needs_rehash,
            "{hash}: {outcome:?}"
        );
        assert!(!verify_password(&wrong, hash).await, "{hash}");
        let wrong_outcome = hasher.verify(&wrong, hash).await.unwrap();
        assert!(!wrong_outcome.matches && !wrong_outcome.needs_rehash);
    }
}

#[tokio::test]
async fn every_argon2_vector_verifies_and_needs_no_rehash() {
    let fixtures = python_vectors();
    let wrong = str_of(&fixtures, "wrong_password");
    assert_eq!(
        fixtures["argon2_params"],
        serde_json::json!({"memory_cost": 19456, "parallelism": 1, "time_cost": 2, "type": "argon2id"})
    );
    let hasher = PasswordHasher::default();
    let argon2 = vectors("passlib_argon2");
    assert!(
        argon2
            .iter()
            .any(|v| str_of(v, "source").starts_with("passlib"))
    );
    assert!(
        argon2
            .iter()
            .any(|v| str_of(v, "source").starts_with("argon2-cffi"))
    );
    for v in &argon2 {
        let (hash, password) = (str_of(v, "hash"), str_of(v, "password"));
        assert!(verify_password(password, hash).await, "{hash}");
        let outcome = hasher.verify(password, hash).await.unwrap();
        assert!(
            outcome.matches && !outcome.needs_rehash,
            "{hash}: {outcome:?}"
        );
        assert!(!verify_password(wrong, hash).await, "{hash}");
    }
}

#[tokio::test]
async fn the_80_byte_bcrypt_vector_follows_the_documented_72_byte_policy() {
    // src/password.rs: verifying an existing bcrypt hash reads the first 72
    // bytes, as passlib did when it made it, and flags the hash for rehash.
    let v = vectors("passlib_bcrypt")
        .into_iter()
        .find(|v| v["password_utf8_bytes"] == 80)
        .expect("the 80-byte vector");
    let hash = str_of(&v, "hash");
    let full = str_of(&v, "password");
    let prefix = str_of(&v, "truncated_password_72");
    let other_tail = str_of(&v, "verifies_with_different_tail_after_72");
    assert_eq!(full.len(), 80);
    assert_eq!(prefix.len(), 72);
    assert_eq!(v["verifies_with_truncated_password"], true);

    let hasher = PasswordHasher::default();
    for password in [full, prefix, other_tail] {
        let outcome = hasher.verify(password, hash).await.unwrap();
        assert!(outcome.matches && outcome.needs_rehash, "{password}");
    }
    assert!(
        !verify_password(&prefix[..71], hash).await,
        "71 bytes are not enough"
    );

    // Once upgraded to argon2id on login, every byte counts.
    let directory = TestDirectory::default();
    directory.add("7", "longpw", hash);
    let auth = authenticator(&directory);
    let user = auth
        .authenticate(&Credentials::new("longpw", full))
        .await
        .unwrap()
        .expect("the full password logs in");
    assert_eq!(user.id, "7");
    let upgraded = directory.hash_of("longpw").unwrap();
    assert!(upgraded.starts_with("$argon2id$"), "{upgraded}");
    assert!(verify_password(full, &upgraded).await);
    assert!(!verify_password(other_tail, &upgraded).await);
    assert!(!verify_password(prefix, &upgraded).await);
}

#[tokio::test]
async fn malformed_stored_hashes_verify_as_false_and_never_panic() {
    let hasher = PasswordHasher::default();
    let good_bcrypt = "$2b$04$fastcoreFixtureSalt01e24QEn.e6IFELT0Qfmhizr253tsRxGA.";
    let good_argon2 = "$argon2id$v=19$m=19456,t=2,p=1$ZmFzdGNvcmUtc2FsdC0wMQ$XU57EyaJZm0gRKq0fc9DwhXkhE1zVqWBv0tNMXjJebA";
    let cases = [
        String::new(),
        "$".into(),
        "$$$$".into(),
        "plaintext".into(),
        "correct horse battery staple".into(),
        "$2b$".into(),
        "$2b$04$".into(),
        "$2b$04$short".into(),
        "$2b$99$fastcoreFixtureSalt01e24QEn.e6IFELT0Qfmhizr253tsRxGA.".into(),
        "$2b$03$fastcoreFixtureSalt01e24QEn.e6IFELT0Qfmhizr253tsRxGA.".into(),
        "$2b$xx$fastcoreFixtureSalt01e24QEn.e6IFELT0Qfmhizr253tsRxGA.".into(),
        good_bcrypt[..good_bcrypt.len() - 1].into(),
        format!("{good_bcrypt}x"),
        good_bcrypt.replace('.', "!"),
        "$2x$04$fastcoreFixtureSalt01e24QEn.e6IFELT0Qfmhizr253tsRxGA.".into(),
        "$argon2id$".into(),
        "$argon2id$v=19$".into(),
        "$argon2id$v=19$m=1,t=1,p=1$$".into(),
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$".into(),
        "$argon2id$v=19$m=19456,t=0,p=1$ZmFzdGNvcmUtc2FsdC0wMQ$XU57EyaJZm0gRKq0fc9DwhXkhE1zVqWBv0tNMXjJebA".into(),
        "$argon2id$v=19$m=19456,t=2,p=0$ZmFzdGNvcmUtc2FsdC0wMQ$XU57EyaJZm0gRKq0fc9DwhXkhE1zVqWBv0tNMXjJebA".into(),
        "$argon2id$v=99$m=19456,t=2,p=1$ZmFzdGNvcmUtc2FsdC0wMQ$XU57EyaJZm0gRKq0fc9DwhXkhE1zVqWBv0tNMXjJebA".into(),
        "$argon2id$v=19$m=4294967295,t=1,p=1$ZmFzdGNvcmUtc2FsdC0wMQ$XU57EyaJZm0gRKq0fc9DwhXkhE1zVqWBv0tNMXjJebA".into(),
        good_argon2.replace("XU57", "!!!!"),
        good_argon2[..good_argon2.len() - 10].into(),
        good_argon2.replace("argon2id", "argon2d"),
        good_argon2.replace("argon2id", "scrypt"),
        format!(" {good_argon2}"),
        "\u{0}".into(),
        "$argon2id$ü".into(),
        "x".repeat(100_000),
    ];
    for stored in &cases {
        let short = &stored[..stored.len().min(60)];
        assert!(
            !verify_password("correct horse battery staple", stored).await,
            "{short}"
        );
        let outcome = hasher
            .verify("correct horse battery staple", stored)
            .await
            .unwrap();
        assert!(!outcome.matches && !outcome.needs_rehash, "{short}");
        assert!(PasswordPolicy::default().needs_rehash(stored), "{short}");
    }
}

#[tokio::test]
async fn stored_hashes_asking_for_too_much_work_are_not_verified() {
    // Cheap to make (8 KiB) but beyond the iteration and lane caps: a
    // tampered users table must not be able to pin a core per login.
    for (t, p) in [(17, 1), (2, 17)] {
        let stored = argon2_hash(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            8 * p,
            t,
            p,
            "pw",
        );
        let outcome = PasswordHasher::default()
            .verify("pw", &stored)
            .await
            .unwrap();
        assert!(!outcome.matches, "t={t} p={p}: {outcome:?}");
    }
    // The same shape within the caps verifies.
    let stored = argon2_hash(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        8,
        16,
        1,
        "pw",
    );
    assert!(verify_password("pw", &stored).await);
}

#[tokio::test]
async fn an_argon2_hash_without_a_version_field_verifies_and_is_flagged() {
    // PHC allows omitting `v=`; such a hash is old-style, not malformed.
    let good = str_of(&vectors("passlib_argon2")[0], "hash").to_owned();
    let unversioned = good.replace("$v=19", "");
    let outcome = PasswordHasher::default()
        .verify("correct horse battery staple", &unversioned)
        .await
        .unwrap();
    assert!(outcome.matches && outcome.needs_rehash, "{outcome:?}");
}

#[tokio::test]
async fn over_long_passwords_are_refused() {
    let max = PasswordPolicy::default().max_password_bytes;
    assert_eq!(max, 1024);
    let longest = "p".repeat(max);
    let hash = get_password_hash(&longest).await.unwrap();
    assert!(verify_password(&longest, &hash).await);

    let too_long = "p".repeat(max + 1);
    let err = get_password_hash(&too_long).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    assert!(
        !err.to_string().contains(&too_long[..32]),
        "the password is not echoed"
    );
    // Verification refuses it without hashing, even against a hash of its prefix.
    assert!(!verify_password(&too_long, &hash).await);
    // Multi-byte characters count in bytes.
    assert!(matches!(
        get_password_hash(&"é".repeat(max / 2 + 1)).await,
        Err(Error::InvalidInput(_))
    ));

    let strict = PasswordHasher::new(PasswordPolicy {
        max_password_bytes: 64,
        ..PasswordPolicy::default()
    })
    .unwrap();
    assert!(strict.hash(&"a".repeat(64)).await.is_ok());
    assert!(matches!(
        strict.hash(&"a".repeat(65)).await,
        Err(Error::InvalidInput(_))
    ));

    // The limit itself has bounds: NIST's 64 at least, and no limit so
    // large that it stops protecting the CPU.
    for bad in [0, 16, 63, 64 * 1024 + 1, usize::MAX] {
        let policy = PasswordPolicy {
            max_password_bytes: bad,
            ..PasswordPolicy::default()
        };
        assert!(matches!(policy.validate(), Err(Error::Config(_))), "{bad}");
        assert!(PasswordHasher::new(policy).is_err(), "{bad}");
    }
    // So do the argon2 costs: above what verification accepts is refused.
    for policy in [
        PasswordPolicy {
            memory_kib: 256 * 1024 + 1,
            ..PasswordPolicy::default()
        },
        PasswordPolicy {
            iterations: 17,
            ..PasswordPolicy::default()
        },
        PasswordPolicy {
            parallelism: 17,
            ..PasswordPolicy::default()
        },
    ] {
        assert!(
            matches!(policy.validate(), Err(Error::Config(_))),
            "{policy:?}"
        );
    }
}

#[tokio::test]
async fn needs_rehash_for_bcrypt_and_for_weaker_argon2() {
    use argon2::{Algorithm, Version};
    let policy = PasswordPolicy::default();
    let hasher = PasswordHasher::default();
    for v in vectors("passlib_bcrypt") {
        assert!(policy.needs_rehash(str_of(&v, "hash")));
    }
    let floor = vectors("passlib_argon2")[0]["hash"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!policy.needs_rehash(&floor));

    // Weaker than the floor in each parameter, argon2i, or the old version:
    // all still verify, and all are flagged.
    let weaker = [
        argon2_hash(Algorithm::Argon2id, Version::V0x13, 4096, 2, 1, "pw"),
        argon2_hash(Algorithm::Argon2id, Version::V0x13, 19_456, 1, 1, "pw"),
        argon2_hash(Algorithm::Argon2i, Version::V0x13, 19_456, 2, 1, "pw"),
        argon2_hash(Algorithm::Argon2id, Version::V0x10, 19_456, 2, 1, "pw"),
    ];
    for hash in &weaker {
        assert!(policy.needs_rehash(hash), "{hash}");
        let outcome = hasher.verify("pw", hash).await.unwrap();
        assert!(
            outcome.matches && outcome.needs_rehash,
            "{hash}: {outcome:?}"
        );
        assert!(!hasher.verify("pW", hash).await.unwrap().matches, "{hash}");
    }
    // Stronger than the floor: no rehash.
    let stronger = argon2_hash(Algorithm::Argon2id, Version::V0x13, 32_768, 3, 2, "pw");
    assert!(!policy.needs_rehash(&stronger));
    let outcome = hasher.verify("pw", &stronger).await.unwrap();
    assert!(outcome.matches && !outcome.needs_rehash);

    // A stricter policy flags the floor hashes.
    let stricter = PasswordPolicy {
        memory_kib: 65_536,
        iterations: 3,
        ..PasswordPolicy::default()
    };
    assert!(stricter.needs_rehash(&floor));
    assert!(stricter.needs_rehash(&stronger));
}

#[test]
fn policies_below_the_owasp_floor_are_refused() {
    for weak in [
        PasswordPolicy {
            memory_kib: 19_455,
            ..PasswordPolicy::default()
        },
        PasswordPolicy {
            iterations: 1,
            ..PasswordPolicy::default()
        },
        PasswordPolicy {
            parallelism: 0,
            ..PasswordPolicy::default()
        },
    ] {
        let err = PasswordHasher::new(weak).unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err:?}");
        assert!(PasswordHasher::with_concurrency(weak, 4).is_err());
    }
    assert!(PasswordHasher::with_concurrency(PasswordPolicy::default(), 0).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_permit_pool_still_serves_concurrent_requests() {
    let hasher = PasswordHasher::with_concurrency(PasswordPolicy::default(), 1).unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..4 {
        let hasher = hasher.clone();
        tasks.spawn(async move {
            let password = format!("password-{i}");
            let hash = hasher.hash(&password).await.unwrap();
            hasher.verify(&password, &hash).await.unwrap().matches
        });
    }
    assert!(tasks.join_all().await.into_iter().all(|ok| ok));
}

/// On a single-threaded runtime, a task spawned before hashing can only run
/// during the hash if the hash gives the thread back (runs on the blocking
/// pool). Inline hashing would finish first and leave the flag unset.
#[tokio::test(flavor = "current_thread")]
async fn hashing_and_verifying_leave_the_runtime_thread_free() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let ran = Arc::new(AtomicUsize::new(0));

    let r = Arc::clone(&ran);
    tokio::spawn(async move { r.fetch_add(1, Ordering::SeqCst) });
    let hash = get_password_hash("pw").await.unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 1, "hash blocked the runtime");

    let r = Arc::clone(&ran);
    tokio::spawn(async move { r.fetch_add(1, Ordering::SeqCst) });
    assert!(verify_password("pw", &hash).await);
    assert_eq!(ran.load(Ordering::SeqCst), 2, "verify blocked the runtime");
}

#[tokio::test]
async fn verify_dummy_does_the_work_and_says_no() {
    let hasher = PasswordHasher::default();
    assert!(!hasher.verify_dummy("anything").await.unwrap());
    assert!(
        !hasher
            .verify_dummy("fastcore-security-dummy-password")
            .await
            .unwrap()
    );
}

#[test]
fn credentials_hide_the_password() {
    let creds = Credentials::new("ada", "s3cr3t-p4ss");
    let debug = format!("{creds:?}");
    assert!(debug.contains("ada"));
    assert!(!debug.contains("s3cr3t-p4ss"), "{debug}");
}

// ------------------------------------------------------ PasswordAuthenticator

#[tokio::test]
async fn a_bcrypt_user_is_upgraded_to_argon2id_on_successful_login() {
    let v = &vectors("passlib_bcrypt")[0];
    let (hash, password) = (str_of(v, "hash"), str_of(v, "password"));
    let directory = TestDirectory::default();
    directory.add("42", "ada", hash);
    let auth = authenticator(&directory);

    // A wrong password changes nothing.
    assert!(
        auth.authenticate(&Credentials::new("ada", "nope"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(directory.upgrades().is_empty());
    assert_eq!(directory.hash_of("ada").as_deref(), Some(hash));

    let user = auth
        .authenticate(&Credentials::new("ada", password))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.id, "42");
    assert_eq!(auth.get_user_id(&user), "42");
    let upgrades = directory.upgrades();
    assert_eq!(upgrades.len(), 1);
    let (id, new_hash) = &upgrades[0];
    assert_eq!(id, "42");
    assert!(
        new_hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{new_hash}"
    );
    assert!(verify_password(password, new_hash).await);
    assert_eq!(directory.hash_of("ada").as_deref(), Some(new_hash.as_str()));

    // The next login uses the new hash and upgrades nothing more.
    auth.authenticate(&Credentials::new("ada", password))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(directory.upgrades().len(), 1);
}

#[tokio::test]
async fn an_argon2_user_at_the_floor_is_not_rehashed() {
    let v = &vectors("passlib_argon2")[2];
    let directory = TestDirectory::default();
    directory.add("1", "cffi", str_of(v, "hash"));
    let auth = authenticator(&directory);
    assert!(
        auth.authenticate(&Credentials::new("cffi", str_of(v, "password")))
            .await
            .unwrap()
            .is_some()
    );
    assert!(directory.upgrades().is_empty());
}

#[tokio::test]
async fn unknown_disabled_and_wrong_users_get_none() {
    let v = &vectors("passlib_argon2")[0];
    let (hash, password) = (str_of(v, "hash"), str_of(v, "password"));
    let directory = TestDirectory::default();
    directory.add("1", "ada", hash);
    directory.add("2", "bob", hash);
    directory.set_active("bob", false);
    let auth = authenticator(&directory);

    for (username, pw) in [
        ("nobody", password),
        ("ADA", password),
        ("ada ", password),
        ("ada", "wrong"),
        ("bob", password),
        ("ada", &"x".repeat(2000)),
        ("", password),
    ] {
        assert!(
            auth.authenticate(&Credentials::new(username, pw))
                .await
                .unwrap()
                .is_none(),
            "{username:?}"
        );
    }
    assert!(directory.upgrades().is_empty());

    assert_eq!(
        auth.get_user_by_id("1").await.unwrap().unwrap().username,
        "ada"
    );
    assert!(auth.get_user_by_id("3").await.unwrap().is_none());
    let bob = auth.get_user_by_id("2").await.unwrap().unwrap();
    assert!(!auth.is_active(&bob));
    assert!(auth.directory().hash_of("ada").is_some());
}
