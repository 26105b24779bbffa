-- The reference server's own users: enough for password login, nothing more.
-- `username` is the name as created, in Unicode NFKC form. `username_key` is
-- the server's NFKC + lowercase form of it: names that look the same ("Alice"
-- and "alice"; "Zoë" typed composed or decomposed) share a key, so they cannot
-- be two different accounts, and login finds the user by it. The server
-- computes the key (PostgreSQL's lower() depends on the locale) and always
-- writes both columns.
--
-- The table is `fastcore_users`, not `users`: on a database the application
-- shares, a table of its own named `users` must not be mistaken for this one.
-- Ids and keys compare byte for byte (COLLATE "C"), whatever the locale.
CREATE TABLE IF NOT EXISTS fastcore_users (
    id            TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    username      TEXT        NOT NULL,
    username_key  TEXT COLLATE "C" NOT NULL UNIQUE,
    password_hash TEXT        NOT NULL,
    is_active     BOOLEAN     NOT NULL DEFAULT TRUE,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
