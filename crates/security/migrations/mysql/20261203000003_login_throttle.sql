-- Login throttling: one fixed window of attempts per key (a hash of an
-- account name or a client address, never the name or address itself:
-- ASCII, at most 32 bytes, stored as VARBINARY like the other ids so it
-- compares byte for byte). A row whose window_ends_at has passed counts as
-- absent; purge_expired deletes such rows.
CREATE TABLE IF NOT EXISTS fastcore_login_throttle (
    throttle_key    VARBINARY(64) NOT NULL,
    attempts        BIGINT NOT NULL,
    window_ends_at  BIGINT NOT NULL,
    PRIMARY KEY (throttle_key),
    KEY fastcore_login_throttle_ends (window_ends_at)
) ENGINE = InnoDB ROW_FORMAT = DYNAMIC;
