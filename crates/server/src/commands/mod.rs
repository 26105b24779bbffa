//! The admin commands. Each prints its result on standard output for the
//! operator (and scripts) and returns an error for anything that went
//! wrong; `main` turns that into one line on standard error and exit code 1.

pub mod hash_password;
pub mod keys;
pub mod migrate;
pub mod token;
pub mod users;
