//! The application's users, behind a trait (the seed's `UserAuthentication`
//! protocol and `BaseUserAuthentication` base class).
//!
//! Implement [`UserAuthentication`] directly for full control, or implement
//! the smaller [`UserDirectory`] (find a user, give its stored hash) and wrap
//! it in [`PasswordAuthenticator`], which does the password checks the
//! careful way: constant work for unknown users, upgrade of old hashes.

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::error::Result;
use crate::password::PasswordHasher;

/// A username and password, as sent to the login endpoint. The password is
/// kept in a [`SecretString`]: it is zeroed on drop and `Debug` hides it.
#[derive(Debug, Deserialize)]
pub struct Credentials {
    /// The login name.
    pub username: String,
    /// The password, as typed.
    pub password: SecretString,
}

impl Credentials {
    /// Credentials from a username and password.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: SecretString::from(password.into()),
        }
    }
}

/// How the security layer reaches the application's users.
///
/// User ids travel as strings in the token's `sub` claim, so any id type
/// works (integers become `"42"`).
#[async_trait]
pub trait UserAuthentication: Send + Sync + 'static {
    /// The application's user type.
    type User: Send + Sync + 'static;

    /// The user these credentials belong to, or `None` if they are wrong.
    /// Must not reveal which of username or password was wrong.
    async fn authenticate(&self, credentials: &Credentials) -> Result<Option<Self::User>>;

    /// The user with this id (the token's `sub`), if it exists.
    async fn get_user_by_id(&self, user_id: &str) -> Result<Option<Self::User>>;

    /// The id written into the token's `sub` claim.
    fn get_user_id(&self, user: &Self::User) -> String;

    /// Whether the user may still use the service (not disabled or deleted).
    /// Checked at login and whenever the current user is loaded.
    fn is_active(&self, _user: &Self::User) -> bool {
        true
    }

    /// The name the login throttle counts a login's failures under, from
    /// the username as sent. [`ThrottleKeys::account`](crate::ThrottleKeys::account)
    /// then normalises it (Unicode NFKC, lowercase) and hashes it. The
    /// default is the username as sent; override it when your login
    /// treats more names as one account than that (e-mail aliases such as
    /// `ada+x@example.com`, surrounding spaces it trims...), so that each
    /// spelling does not get a count of its own.
    fn login_throttle_name(&self, username: &str) -> String {
        username.to_owned()
    }
}

/// The minimum a user model must offer for password login; wrap it in
/// [`PasswordAuthenticator`] to get a [`UserAuthentication`].
#[async_trait]
pub trait UserDirectory: Send + Sync + 'static {
    /// The application's user type.
    type User: Send + Sync + 'static;

    /// The user with this login name.
    async fn find_by_username(&self, username: &str) -> Result<Option<Self::User>>;

    /// The user with this id.
    async fn find_by_id(&self, user_id: &str) -> Result<Option<Self::User>>;

    /// The id written into `sub`.
    fn user_id(&self, user: &Self::User) -> String;

    /// The stored password hash (argon2 PHC or bcrypt).
    fn password_hash(&self, user: &Self::User) -> String;

    /// Whether the user may log in and use tokens.
    fn is_active(&self, _user: &Self::User) -> bool {
        true
    }

    /// Stores a new hash after a successful login with an outdated one. The
    /// default does nothing (the old hash keeps working).
    async fn update_password_hash(&self, _user: &Self::User, _new_hash: &str) -> Result<()> {
        Ok(())
    }
}

/// A [`UserAuthentication`] built on a [`UserDirectory`] and a
/// [`PasswordHasher`] (the seed's `BaseUserAuthentication`).
///
/// Unknown users cost the same hashing work as a wrong password, and a
/// correct password stored under an old scheme (bcrypt) or weaker argon2
/// parameters is re-hashed with the current policy.
#[derive(Debug, Clone)]
pub struct PasswordAuthenticator<D> {
    directory: D,
    hasher: PasswordHasher,
}

impl<D: UserDirectory> PasswordAuthenticator<D> {
    /// Wraps a directory, using `hasher` for all password work.
    pub fn new(directory: D, hasher: PasswordHasher) -> Self {
        Self { directory, hasher }
    }

    /// The wrapped directory.
    pub fn directory(&self) -> &D {
        &self.directory
    }
}

#[async_trait]
impl<D: UserDirectory> UserAuthentication for PasswordAuthenticator<D> {
    type User = D::User;

    async fn authenticate(&self, credentials: &Credentials) -> Result<Option<D::User>> {
        let password = credentials.password.expose_secret();
        let Some(user) = self
            .directory
            .find_by_username(&credentials.username)
            .await?
        else {
            self.hasher.verify_dummy(password).await?;
            return Ok(None);
        };
        let stored = self.directory.password_hash(&user);
        let outcome = self.hasher.verify(password, &stored).await?;
        if !outcome.matches || !self.directory.is_active(&user) {
            return Ok(None);
        }
        if outcome.needs_rehash {
            match self.hasher.hash(password).await {
                Ok(new_hash) => {
                    if let Err(err) = self.directory.update_password_hash(&user, &new_hash).await {
                        tracing::warn!(error = %err, "could not store an upgraded password hash");
                    }
                }
                Err(err) => tracing::warn!(error = %err, "could not upgrade a password hash"),
            }
        }
        Ok(Some(user))
    }

    async fn get_user_by_id(&self, user_id: &str) -> Result<Option<D::User>> {
        self.directory.find_by_id(user_id).await
    }

    fn get_user_id(&self, user: &D::User) -> String {
        self.directory.user_id(user)
    }

    fn is_active(&self, user: &D::User) -> bool {
        self.directory.is_active(user)
    }
}
