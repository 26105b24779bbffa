//! Reading a password for `users add` and `hash-password`, and the rules
//! both apply to it.
//!
//! Never from a command-line argument: arguments are visible to every user
//! of the machine (`ps`, `/proc/<pid>/cmdline`) and land in shell history.
//! Instead, either an interactive prompt on the terminal (no echo, asked
//! twice so a typo does not lock the user out), or one line of standard
//! input for scripts (`--password-stdin`, or automatically when standard
//! input is not a terminal).

use std::io::{BufRead, IsTerminal};

use anyhow::Context as _;
use secrecy::{ExposeSecret, SecretString};

/// Where the password comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordSource {
    /// Prompt on the terminal, twice.
    Prompt,
    /// The first line of standard input.
    Stdin,
}

impl PasswordSource {
    /// Standard input if asked for, or if it is not a terminal (a pipe or a
    /// file); otherwise the interactive prompt.
    pub fn choose(password_stdin: bool) -> Self {
        if password_stdin || !std::io::stdin().is_terminal() {
            PasswordSource::Stdin
        } else {
            PasswordSource::Prompt
        }
    }
}

/// Shortest password accepted (NIST SP 800-63B's floor for passwords
/// people choose). `users add` and `hash-password` apply the same rules: a
/// hash made by one is a password the other would have accepted.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Reads a password from `source` and applies the password rules
/// ([`check_password`]).
pub fn read_password(source: PasswordSource) -> anyhow::Result<SecretString> {
    let password = match source {
        PasswordSource::Stdin => read_line(std::io::stdin().lock(), "the password")?,
        PasswordSource::Prompt => prompt_twice()?,
    };
    check_password(&password)?;
    Ok(password)
}

/// The password rules: not empty, at least [`MIN_PASSWORD_CHARS`]
/// characters. (The library refuses passwords over its policy's byte limit
/// when hashing.)
pub fn check_password(password: &SecretString) -> anyhow::Result<()> {
    let chars = password.expose_secret().chars().count();
    if chars == 0 {
        anyhow::bail!("the password must not be empty");
    }
    if chars < MIN_PASSWORD_CHARS {
        anyhow::bail!("the password must be at least {MIN_PASSWORD_CHARS} characters long");
    }
    Ok(())
}

/// The first line of `input`, without its line ending (`\n` or `\r\n`).
/// Nothing else is trimmed: spaces may be part of a password. `what` (a
/// password, the token) names it in the error.
pub fn read_line(mut input: impl BufRead, what: &str) -> anyhow::Result<SecretString> {
    let mut line = String::new();
    input
        .read_line(&mut line)
        .with_context(|| format!("cannot read {what} from standard input"))?;
    if line.ends_with('\n') {
        line.pop();
        if line.ends_with('\r') {
            line.pop();
        }
    }
    Ok(SecretString::from(line))
}

fn prompt_twice() -> anyhow::Result<SecretString> {
    let first = prompt("Password: ")?;
    let second = prompt("Repeat password: ")?;
    if first.expose_secret() != second.expose_secret() {
        anyhow::bail!("the two passwords do not match");
    }
    Ok(first)
}

fn prompt(text: &str) -> anyhow::Result<SecretString> {
    rpassword::prompt_password(text)
        .map(SecretString::from)
        .context("cannot read a password from the terminal; pipe it in with --password-stdin")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_line_ending_is_stripped() {
        for (input, expected) in [
            ("secret\n", "secret"),
            ("secret\r\n", "secret"),
            ("secret", "secret"),
            (" spaced out \n", " spaced out "),
            ("first\nsecond\n", "first"),
        ] {
            let got = read_line(input.as_bytes(), "the password").unwrap();
            assert_eq!(got.expose_secret(), expected, "{input:?}");
        }
    }

    #[test]
    fn an_unreadable_line_is_named_for_what_was_read() {
        let err = read_line(&b"\xff\xfe\n"[..], "the token").unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.starts_with("cannot read the token from standard input"),
            "{text}"
        );
        assert!(!text.contains("password"), "{text}");
    }

    #[test]
    fn empty_and_short_passwords_are_refused() {
        assert!(check_password(&SecretString::from("")).is_err());
        assert!(check_password(&SecretString::from("short")).is_err());
        assert!(check_password(&SecretString::from("7 chars")).is_err());
        assert!(check_password(&SecretString::from("8 chars!")).is_ok());
        assert!(check_password(&SecretString::from("long enough")).is_ok());
    }
}
