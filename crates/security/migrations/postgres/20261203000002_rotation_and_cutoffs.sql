-- Refresh rotation, session metadata and user-wide cut-offs.
--
-- consumed_at/replaced_by: a refresh token is consumed once, by the rotation
-- that recorded its successor. session_started_at, user_agent, ip: what a
-- session list shows (kept on refresh tokens only). generation: the user's
-- cut-off generation the token was issued under; a token whose generation is
-- below its user's row in fastcore_user_cutoffs counts as revoked at that
-- row's revoked_at, so "log out everywhere" is one write, and a rotation
-- racing it gives its child the parent's generation (revoked as well).
--
-- Ids (replaced_by, user_id) are COLLATE "C" like those of the first
-- migration: compared byte for byte, whatever the database's locale. The new
-- columns are nullable or have a constant default, so adding them rewrites
-- no rows (PostgreSQL 11 and later).
ALTER TABLE fastcore_tokens
    ADD COLUMN IF NOT EXISTS consumed_at        BIGINT,
    ADD COLUMN IF NOT EXISTS replaced_by        TEXT COLLATE "C",
    ADD COLUMN IF NOT EXISTS session_started_at BIGINT,
    ADD COLUMN IF NOT EXISTS user_agent         TEXT,
    ADD COLUMN IF NOT EXISTS ip                 TEXT,
    ADD COLUMN IF NOT EXISTS generation         BIGINT NOT NULL DEFAULT 0;

CREATE TABLE IF NOT EXISTS fastcore_user_cutoffs (
    user_id     TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    generation  BIGINT NOT NULL,
    revoked_at  BIGINT NOT NULL
);
