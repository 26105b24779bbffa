-- The revocation change sequence that synced validation follows.
--
-- Every revocation (of a token, a session, a user's other sessions, and a
-- user-wide cut-off) that changed something takes the next number from
-- fastcore_revocation_seq and writes one row here naming what it revoked,
-- in the same transaction, then signals `fastcore_revocations` (NOTIFY is
-- delivered at commit). A writer holds the counter's row lock until it
-- commits, so numbers commit in order and without gaps: a reader that asks
-- for "everything after n" never misses a change committing later with a
-- smaller number. Readers resolve a row to the revoked tokens (kind token:
-- subject is a jti; family: a session id; user: a user id; cutoff: a user
-- id, see fastcore_user_cutoffs). Rows are deleted a day after `at` by the
-- purge; a reader that far behind reloads a snapshot.
CREATE TABLE IF NOT EXISTS fastcore_revocation_seq (
    id   SMALLINT NOT NULL PRIMARY KEY CHECK (id = 1),
    seq  BIGINT   NOT NULL
);
INSERT INTO fastcore_revocation_seq (id, seq) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;

CREATE TABLE IF NOT EXISTS fastcore_revocation_log (
    seq      BIGINT NOT NULL,
    kind     TEXT   NOT NULL CHECK (kind IN ('token', 'family', 'user', 'cutoff')),
    subject  TEXT COLLATE "C" NOT NULL,
    at       BIGINT NOT NULL,
    PRIMARY KEY (seq, kind, subject)
);

CREATE INDEX IF NOT EXISTS fastcore_revocation_log_at ON fastcore_revocation_log (at);
