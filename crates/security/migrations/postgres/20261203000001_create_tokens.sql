-- Token records: one row per issued token, looked up by jti on every request.
-- Ids are opaque strings compared byte for byte: COLLATE "C" keeps equality
-- and the ORDER BY of list_live independent of the database's locale.
CREATE TABLE IF NOT EXISTS fastcore_tokens (
    jti         TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    token_type  TEXT   NOT NULL CHECK (token_type IN ('access', 'refresh')),
    user_id     TEXT COLLATE "C" NOT NULL,
    family_id   TEXT COLLATE "C",
    issued_at   BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE INDEX IF NOT EXISTS fastcore_tokens_user ON fastcore_tokens (user_id);
CREATE INDEX IF NOT EXISTS fastcore_tokens_family ON fastcore_tokens (family_id)
    WHERE family_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS fastcore_tokens_expires ON fastcore_tokens (expires_at);
