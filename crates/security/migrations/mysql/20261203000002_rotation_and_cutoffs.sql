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
-- Ids (replaced_by, user_id) are VARBINARY like those of the first
-- migration, so they compare byte for byte; replaced_by holds a jti and
-- fastcore_user_cutoffs.user_id a user_id, at the same sizes. user_agent and
-- ip are VARBINARY too, sized in bytes as the library caps them
-- (MAX_USER_AGENT_BYTES = 512, MAX_IP_BYTES = 64); a character set would
-- count characters instead.
--
-- MySQL and MariaDB commit each DDL statement on its own: the new table
-- comes first (IF NOT EXISTS) and the columns in one ALTER, so a migration
-- cut short can simply run again.
CREATE TABLE IF NOT EXISTS fastcore_user_cutoffs (
    user_id     VARBINARY(1024) NOT NULL,
    generation  BIGINT NOT NULL,
    revoked_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id)
) ENGINE = InnoDB ROW_FORMAT = DYNAMIC;

ALTER TABLE fastcore_tokens
    ADD COLUMN consumed_at        BIGINT NULL,
    ADD COLUMN replaced_by        VARBINARY(255) NULL,
    ADD COLUMN session_started_at BIGINT NULL,
    ADD COLUMN user_agent         VARBINARY(512) NULL,
    ADD COLUMN ip                 VARBINARY(64) NULL,
    ADD COLUMN generation         BIGINT NOT NULL DEFAULT 0;
