-- Token records: one row per issued token, looked up by jti on every request.
--
-- Ids are opaque strings and must compare byte for byte. Text collations do
-- not: the `_ci` ones fold case, and even `utf8mb4_bin` is PAD SPACE on
-- MariaDB and MySQL 5.7 ('alice' = 'alice '). VARBINARY compares and sorts
-- bytes on every MySQL and MariaDB version, so the ids are stored as their
-- UTF-8 bytes. The lengths match what the library issues: a `sub` of at most
-- 1024 bytes (MAX_SUBJECT_BYTES), uuid jti and sid; each index key stays far
-- below InnoDB's 3072-byte limit.
CREATE TABLE IF NOT EXISTS fastcore_tokens (
    jti         VARBINARY(255)  NOT NULL,
    token_type  VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    user_id     VARBINARY(1024) NOT NULL,
    family_id   VARBINARY(1024) NULL,
    issued_at   BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT NULL,
    PRIMARY KEY (jti),
    KEY fastcore_tokens_user (user_id),
    KEY fastcore_tokens_family (family_id),
    KEY fastcore_tokens_expires (expires_at),
    CONSTRAINT fastcore_tokens_type CHECK (token_type IN ('access', 'refresh'))
) ENGINE = InnoDB ROW_FORMAT = DYNAMIC;
