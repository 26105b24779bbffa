-- The reference server's own users: enough for password login, nothing more.
-- `username` is the name as created, in Unicode NFKC form. `username_key` is
-- the server's NFKC + lowercase form of it: names that look the same ("Alice"
-- and "alice"; "Zoë" typed composed or decomposed) share a key, so they cannot
-- be two different accounts, and login finds the user by it. The server
-- computes the key and always writes both columns.
--
-- Strings are stored as their UTF-8 bytes (VARBINARY), as in the library's
-- token table: MySQL's text collations fold case, accents or trailing spaces
-- ('zoe' = 'Zoë ' under utf8mb4_general_ci, and even utf8mb4_bin is PAD SPACE
-- on MariaDB), and the key must be unique exactly as the server computes it.
-- A username is at most 320 bytes; its key (lowercasing can lengthen it) at
-- most 1024, well below InnoDB's 3072-byte index limit.
--
-- The table is `fastcore_users`, not `users`: on a database the application
-- shares, a table of its own named `users` must not be mistaken for this one.
-- `created_at` is UTC (the server writes UTC_TIMESTAMP()).
CREATE TABLE IF NOT EXISTS fastcore_users (
    id            VARBINARY(64)   NOT NULL,
    username      VARBINARY(320)  NOT NULL,
    username_key  VARBINARY(1024) NOT NULL,
    password_hash VARBINARY(1024) NOT NULL,
    is_active     TINYINT(1)      NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    created_at    DATETIME        NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY fastcore_users_username_key (username_key),
    KEY fastcore_users_created (created_at)
) ENGINE = InnoDB ROW_FORMAT = DYNAMIC;
