-- The reference server's own users: enough for password login, nothing more.
-- `username` is the name as created, in Unicode NFKC form. `username_key` is
-- the server's NFKC + lowercase form of it: names that look the same ("Alice"
-- and "alice"; "Zoë" typed composed or decomposed) share a key, so they cannot
-- be two different accounts, and login finds the user by it. SQLite cannot
-- compute the key itself; the server always writes both columns.
-- `created_at` is RFC 3339 UTC text, readable as is.
CREATE TABLE IF NOT EXISTS users (
    id            TEXT    NOT NULL PRIMARY KEY,
    username      TEXT    NOT NULL,
    username_key  TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    is_active     INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    created_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
) WITHOUT ROWID;
