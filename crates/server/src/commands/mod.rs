//! The admin commands. Each prints its result on standard output for the
//! operator (and scripts) and returns an error for anything that went
//! wrong; `main` turns that into one line on standard error and exit code 1.
//! Commands that list or inspect take `--json` for scripts.

pub mod completions;
pub mod hash_password;
pub mod keys;
pub mod migrate;
pub mod token;
pub mod users;
