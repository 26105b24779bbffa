//! Keeping the server's memory small between bursts of password hashing.
//!
//! Each argon2id hash at the default policy works in a 19 MiB block. glibc
//! serves such a block with `mmap` and unmaps it when freed, but it then
//! raises its mmap threshold above that size ("dynamic threshold"), so every
//! later block comes from a heap arena instead and stays mapped: one per
//! thread that ever hashed. Measured (BENCHMARKS.md, "Memory"): 30 MiB idle
//! after the start-up warm-up hash and 550 MiB after a login flood, against
//! 12 MiB and 54 MiB with a fixed threshold.

/// The fixed mmap threshold: glibc's own starting value, 128 KiB.
pub const MMAP_THRESHOLD_BYTES: usize = 128 * 1024;

/// Makes the C allocator return large freed blocks (password hashing
/// buffers) to the system, by fixing glibc's mmap threshold at
/// [`MMAP_THRESHOLD_BYTES`]. Call it first thing in `main`, before any
/// thread starts. An operator's own `MALLOC_MMAP_THRESHOLD_` wins. Does
/// nothing on other C libraries (musl already unmaps large blocks) or
/// systems. Returns whether it changed the setting.
pub fn return_freed_blocks() -> bool {
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some() {
        return false;
    }
    set_mmap_threshold()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn set_mmap_threshold() -> bool {
    let bytes = libc::c_int::try_from(MMAP_THRESHOLD_BYTES).unwrap_or(libc::c_int::MAX);
    // SAFETY: mallopt only changes glibc's allocator parameters; it takes
    // no pointers, and is documented as safe to call at any time (here: at
    // start-up, before other threads exist). It returns 1 on success.
    unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, bytes) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_mmap_threshold() -> bool {
    false
}

#[cfg(test)]
mod tests {
    /// glibc accepts the setting (the test environment does not set
    /// `MALLOC_MMAP_THRESHOLD_`).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn glibc_takes_the_fixed_threshold() {
        if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
            assert!(super::return_freed_blocks());
        } else {
            assert!(!super::return_freed_blocks());
        }
    }
}
