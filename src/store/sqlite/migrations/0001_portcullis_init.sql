-- portcullis: users and the single opaque-token table (DESIGN §2, §4).
-- Timestamps are microseconds since the Unix epoch; digests are raw SHA-256 (32 bytes).

CREATE TABLE portcullis_users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    email         TEXT             UNIQUE COLLATE NOCASE,
    full_name     TEXT,
    password_hash TEXT,
    roles         TEXT    NOT NULL DEFAULT '[]',
    is_active     INTEGER NOT NULL DEFAULT 1,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    last_login    INTEGER
);

CREATE TABLE portcullis_tokens (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    kind          TEXT    NOT NULL,
    digest        BLOB    NOT NULL CHECK (length(digest) = 32),
    user_id       INTEGER NOT NULL REFERENCES portcullis_users (id) ON DELETE CASCADE,
    name          TEXT,
    hint          TEXT    NOT NULL,
    family        TEXT,
    scopes        TEXT,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    revoked_at    INTEGER,
    revoke_reason TEXT,
    last_used_at  INTEGER,
    UNIQUE (kind, digest)
);

CREATE INDEX portcullis_tokens_by_user ON portcullis_tokens (user_id, kind);
CREATE INDEX portcullis_tokens_by_family ON portcullis_tokens (family) WHERE family IS NOT NULL;
