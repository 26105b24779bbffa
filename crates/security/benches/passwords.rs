//! Password hashing and verification at the default policy (argon2id,
//! m=19456 KiB, t=2, p=1), on the calling thread: the cost of one login.
//!
//! - `hash`: a new hash (registration, password change, rehash on login).
//! - `verify_argon2id`: a login against a hash of the policy.
//! - `verify_non_nfkc_wrong`: a wrong password that is not in Unicode NFKC
//!   form, so both the NFKC form and the raw bytes are tried (two
//!   verifications; unknown users pay the same).
//! - `verify_bcrypt_cost_12`: a login against a passlib-era bcrypt hash
//!   (passlib's default cost, 12), before its upgrade to argon2id.
//!
//! Run: `cargo bench -p fastcore-security --bench passwords` (see
//! BENCHMARKS.md at the repository root).

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use fastcore_security::PasswordPolicy;

const PASSWORD: &str = "correct horse battery staple";

fn passwords(c: &mut Criterion) {
    let policy = PasswordPolicy::default();
    let argon2id = policy.hash_blocking(PASSWORD).unwrap();
    let bcrypt = bcrypt::hash(PASSWORD, 12).unwrap();

    let mut group = c.benchmark_group("passwords");
    // Each iteration takes milliseconds: few samples are enough.
    group.sample_size(10);
    group.bench_function("hash", |b| {
        b.iter(|| policy.hash_blocking(black_box(PASSWORD)).unwrap());
    });
    group.bench_function("verify_argon2id", |b| {
        b.iter(|| {
            let v = policy.verify_blocking(black_box(PASSWORD), &argon2id);
            assert!(v.matches);
        });
    });
    group.bench_function("verify_non_nfkc_wrong", |b| {
        b.iter(|| {
            let v =
                policy.verify_blocking(black_box("\u{fb01}\u{ff4e}\u{ff41}\u{ff4c}"), &argon2id);
            assert!(!v.matches);
        });
    });
    group.bench_function("verify_bcrypt_cost_12", |b| {
        b.iter(|| {
            let v = policy.verify_blocking(black_box(PASSWORD), &bcrypt);
            assert!(v.matches && v.needs_rehash);
        });
    });
    group.finish();
}

criterion_group!(benches, passwords);
criterion_main!(benches);
