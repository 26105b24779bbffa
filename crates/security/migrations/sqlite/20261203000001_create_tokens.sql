-- Token records: one row per issued token, looked up by jti on every request.
CREATE TABLE IF NOT EXISTS fastcore_tokens (
    jti         TEXT    NOT NULL PRIMARY KEY,
    token_type  TEXT    NOT NULL CHECK (token_type IN ('access', 'refresh')),
    user_id     TEXT    NOT NULL,
    family_id   TEXT,
    issued_at   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS fastcore_tokens_user ON fastcore_tokens (user_id);
CREATE INDEX IF NOT EXISTS fastcore_tokens_family ON fastcore_tokens (family_id)
    WHERE family_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS fastcore_tokens_expires ON fastcore_tokens (expires_at);
