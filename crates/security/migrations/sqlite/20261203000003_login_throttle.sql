-- Login throttling: one fixed window of attempts per key (a hash of an
-- account name or a client address, never the name or address itself).
-- A row whose window_ends_at has passed counts as absent; purge_expired
-- deletes such rows.
CREATE TABLE IF NOT EXISTS fastcore_login_throttle (
    throttle_key    TEXT    NOT NULL PRIMARY KEY,
    attempts        INTEGER NOT NULL,
    window_ends_at  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS fastcore_login_throttle_ends
    ON fastcore_login_throttle (window_ends_at);
