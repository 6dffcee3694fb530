-- When the user signed in for the session a token descends from (OIDC's auth_time): a
-- refresh family's or session's start, kept through rotations. Microseconds since the epoch.
ALTER TABLE portcullis_tokens ADD COLUMN auth_time INTEGER;

-- Rows from before: the best known start is the token's own creation.
UPDATE portcullis_tokens SET auth_time = created_at WHERE kind IN ('refresh', 'session');
