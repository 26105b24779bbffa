-- Refresh rotation, session metadata and user-wide cut-offs.
--
-- consumed_at/replaced_by: a refresh token is consumed once, by the rotation
-- that recorded its successor. session_*, user_agent, ip: what a session
-- list shows (kept on refresh tokens only). generation: the user's cut-off
-- generation the token was issued under; a token whose generation is below
-- its user's row in fastcore_user_cutoffs counts as revoked at that row's
-- revoked_at, so "log out everywhere" is one write.
ALTER TABLE fastcore_tokens ADD COLUMN consumed_at INTEGER;
ALTER TABLE fastcore_tokens ADD COLUMN replaced_by TEXT;
ALTER TABLE fastcore_tokens ADD COLUMN session_started_at INTEGER;
ALTER TABLE fastcore_tokens ADD COLUMN user_agent TEXT;
ALTER TABLE fastcore_tokens ADD COLUMN ip TEXT;
ALTER TABLE fastcore_tokens ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;

CREATE TABLE IF NOT EXISTS fastcore_user_cutoffs (
    user_id     TEXT    NOT NULL PRIMARY KEY,
    generation  INTEGER NOT NULL,
    revoked_at  INTEGER NOT NULL
) WITHOUT ROWID;
