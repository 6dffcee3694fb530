-- portcullis: one-time secrets (SecretStore). Only digests are kept: SHA-256 of a 256-bit
-- secret, or HMAC-SHA-256 under the server's code key for a low-entropy code.
CREATE TABLE portcullis_secrets (
    id            INTEGER PRIMARY KEY,
    kind          TEXT    NOT NULL,
    digest        BLOB    NOT NULL,
    subject       TEXT,               -- 'user:42', 'email:ada@example.com'; NULL for nobody
    payload       TEXT,               -- JSON, at most 4 KiB
    created_at    INTEGER NOT NULL,   -- microseconds since the epoch, as every timestamp
    expires_at    INTEGER NOT NULL,
    attempts_left INTEGER,            -- wrong guesses still survived; NULL: no limit
    ended_at      INTEGER,            -- spent, replaced or revoked
    UNIQUE (kind, digest)
);

-- Guesses, replacements and revocations look up a subject's live secrets of a kind.
CREATE INDEX portcullis_secrets_subject ON portcullis_secrets (kind, subject)
    WHERE ended_at IS NULL;
CREATE INDEX portcullis_secrets_expiry ON portcullis_secrets (expires_at);
