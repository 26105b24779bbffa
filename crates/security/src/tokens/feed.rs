//! The revocation feed of synced validation: see [`RevocationFeed`].

#![cfg_attr(
    not(any(feature = "sqlite", feature = "postgres", feature = "mysql")),
    allow(dead_code)
)]

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::error::StoreError;

/// One revocation, as a feed reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// A token was revoked: by itself, with its session (each token of the
    /// session is reported), or with its user's other sessions.
    Token {
        /// The token's `jti`.
        jti: String,
        /// When the token expires; after that the entry can be forgotten.
        expires_at: i64,
    },
    /// A user-wide cut-off ([`TokenStore::cut_off_user`](crate::TokenStore::cut_off_user)):
    /// every token issued to the user before it is revoked. Only the
    /// latest cut-off of a user matters.
    UserCutOff {
        /// The user (`sub`).
        user_id: String,
        /// When the cut-off was made (Unix seconds).
        at: i64,
    },
}

/// Revocations and the change-sequence position they bring a reader to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevocationBatch {
    /// The position in the store's change sequence after these revocations;
    /// pass it to the next [`changes_since`](RevocationFeed::changes_since).
    pub cursor: u64,
    /// The revocations. Applying one twice changes nothing.
    pub revocations: Vec<Revocation>,
}

/// A store's change feed of revocations;
/// [`TokenStore::revocation_feed`](crate::TokenStore::revocation_feed)
/// returns it.
///
/// The revocation feed: how a store tells every instance what was revoked,
/// so that [synced validation](crate::ValidationMode::Synced) can answer
/// from memory.
///
/// A feed has three parts, all driven by the instance's background sync
/// task (never by a request):
///
/// - a [`snapshot`](RevocationFeed::snapshot): every revocation still in
///   force, and the position (a *cursor*) of the store's change sequence
///   it reflects;
/// - [`changes_since`](RevocationFeed::changes_since) a cursor: the
///   revocations committed after it, in commit order, with the new cursor;
/// - an optional [`subscribe`](RevocationFeed::subscribe): wake-up signals
///   (PostgreSQL `LISTEN/NOTIFY`, Redis pub/sub, the memory store's own
///   channel) so changes are read as soon as they commit instead of at the
///   next poll. A signal carries no data: it only says "read the changes
///   now", so a lost or duplicated signal can delay a change but never
///   lose one.
///
/// The change sequence is written in the same transaction (or Lua script)
/// as each revocation, and a writer takes its number under a lock held
/// until it commits, so numbers commit in order and without gaps: reading
/// "everything after my cursor" never skips a change that commits later
/// with a smaller number.
///
/// | store | change sequence | wake-ups |
/// | --- | --- | --- |
/// | memory | an in-process log | an in-process channel |
/// | SQLite | table `fastcore_revocation_log`, counter `fastcore_revocation_seq` | none: polled every [`sync_interval`](crate::SecurityConfig::sync_interval) |
/// | PostgreSQL | the same tables | `LISTEN` on `fastcore_revocations_<md5 of the schema>`, one channel per schema (`pg_notify` in the revoking transaction) |
/// | MySQL/MariaDB | the same tables | none: polled |
/// | Redis | `<prefix>rev:seq`, `<prefix>rev:log` (the last 100 000 numbers), `<prefix>rev:tok` (revoked tokens by `exp`), `<prefix>rev:cut` (latest cut-offs), all written by the revoking Lua scripts | `SUBSCRIBE <prefix>rev:signal` |
#[async_trait]
pub trait RevocationFeed: Send + Sync + 'static {
    /// Every revocation in force: the tokens revoked that expire after
    /// `expiring_after` (Unix seconds) and every user's latest cut-off,
    /// with the cursor of the change sequence read *before* them (so a
    /// change racing the snapshot is read again by the next
    /// [`changes_since`](Self::changes_since), never missed).
    async fn snapshot(&self, expiring_after: i64) -> Result<RevocationBatch, StoreError>;

    /// The revocations committed after `cursor`, in order, and the new
    /// cursor. `Ok(None)` when the store no longer holds every change after
    /// `cursor` (its log was trimmed): the reader must take a new
    /// [`snapshot`](Self::snapshot).
    async fn changes_since(&self, cursor: u64) -> Result<Option<RevocationBatch>, StoreError>;

    /// Subscribes to wake-up signals: the receiver gets a message when a
    /// revocation may have committed, and is closed when the subscription
    /// is lost (connection dropped), after which the reader resubscribes
    /// and takes a new snapshot. `Ok(None)` (the default) means the store
    /// offers no signals and is polled.
    async fn subscribe(&self) -> Result<Option<mpsc::Receiver<()>>, StoreError> {
        Ok(None)
    }
}

/// How long log entries of the SQL and Redis change sequences are kept
/// for readers to catch up (seconds). A reader that falls further behind
/// takes a new snapshot; a live reader is never more than a poll behind.
pub(crate) const LOG_RETENTION_SECS: i64 = 86_400;

/// The cursor of a SQL change-sequence number.
pub(crate) fn cursor_of(seq: i64) -> u64 {
    u64::try_from(seq).unwrap_or(0)
}

/// The SQL change-sequence number of a cursor.
pub(crate) fn seq_of(cursor: u64) -> i64 {
    i64::try_from(cursor).unwrap_or(i64::MAX)
}

/// Tokens that expired before this are left out of catch-ups: their
/// `exp` (plus the largest leeway, 300 s) refuses them already.
pub(crate) fn expiring_after() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .saturating_sub(300)
}

/// The batch of a catch-up that found nothing committed after `cursor`.
pub(crate) fn no_changes(cursor: u64) -> RevocationBatch {
    RevocationBatch {
        cursor,
        revocations: Vec::new(),
    }
}

/// Whether a SQL change log still holds every entry after `after` up to
/// the sequence's `head`, given the first logged number after `after`.
/// If not, the reader is behind the trimmed log, or ahead of the store
/// (restored from a backup), and only a new snapshot is right.
pub(crate) fn log_covers(after: i64, head: i64, first_logged: Option<i64>) -> bool {
    head >= after && first_logged == Some(after + 1)
}

/// A batch from rows of revoked tokens (`jti`, `exp`) and cut-offs
/// (user, time); shared by the SQL stores.
pub(crate) fn batch(
    cursor: u64,
    tokens: Vec<(String, i64)>,
    cutoffs: Vec<(String, i64)>,
) -> RevocationBatch {
    let mut revocations: Vec<Revocation> = tokens
        .into_iter()
        .map(|(jti, expires_at)| Revocation::Token { jti, expires_at })
        .collect();
    revocations.extend(
        cutoffs
            .into_iter()
            .map(|(user_id, at)| Revocation::UserCutOff { user_id, at }),
    );
    RevocationBatch {
        cursor,
        revocations,
    }
}

#[cfg(test)]
mod tests {
    use super::log_covers;

    #[test]
    fn a_catch_up_reads_the_log_only_when_it_holds_every_entry() {
        // Entries 6..=9 are all there.
        assert!(log_covers(5, 9, Some(6)));
        // Entry 6 was trimmed: a reader at 5 needs a snapshot.
        assert!(!log_covers(5, 9, Some(7)));
        assert!(!log_covers(5, 9, None));
        // The store is behind the reader (restored from a backup).
        assert!(!log_covers(9, 5, Some(10)));
    }
}
