-- The revocation change sequence that synced validation follows.
--
-- Every revocation (of a token, a session, a user's other sessions, and a
-- user-wide cut-off) that changed something takes the next number from
-- fastcore_revocation_seq and writes one row here naming what it revoked,
-- in the same transaction. A writer holds the counter's row lock until it
-- commits, so numbers commit in order and without gaps: a reader that asks
-- for "everything after n" never misses a change committing later with a
-- smaller number. Readers resolve a row to the revoked tokens (kind token:
-- subject is a jti; family: a session id; user: a user id; cutoff: a user
-- id, see fastcore_user_cutoffs). Rows are deleted a day after `at` by the
-- purge; a reader that far behind reloads a snapshot. Subjects are
-- VARBINARY like the ids they name (compared byte for byte).
CREATE TABLE IF NOT EXISTS fastcore_revocation_seq (
    id   SMALLINT NOT NULL,
    seq  BIGINT   NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT fastcore_revocation_seq_one CHECK (id = 1)
) ENGINE = InnoDB;

INSERT IGNORE INTO fastcore_revocation_seq (id, seq) VALUES (1, 0);

CREATE TABLE IF NOT EXISTS fastcore_revocation_log (
    seq      BIGINT NOT NULL,
    kind     VARCHAR(8) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    subject  VARBINARY(1024) NOT NULL,
    at       BIGINT NOT NULL,
    PRIMARY KEY (seq, kind, subject),
    KEY fastcore_revocation_log_at (at),
    CONSTRAINT fastcore_revocation_log_kind CHECK (kind IN ('token', 'family', 'user', 'cutoff'))
) ENGINE = InnoDB ROW_FORMAT = DYNAMIC;
