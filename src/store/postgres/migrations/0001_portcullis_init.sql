-- portcullis: users and the single opaque-token table (DESIGN §2, §4).
-- Usernames and emails are unique ignoring ASCII case: lower() under the "C" collation folds
-- ASCII letters only, matching the other stores.

CREATE TABLE portcullis_users (
    id            BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      TEXT        NOT NULL,
    email         TEXT,
    full_name     TEXT,
    password_hash TEXT,
    roles         TEXT[]      NOT NULL DEFAULT '{}',
    is_active     BOOLEAN     NOT NULL DEFAULT TRUE,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    last_login    TIMESTAMPTZ
);

CREATE UNIQUE INDEX portcullis_users_username ON portcullis_users (lower(username COLLATE "C"));
CREATE UNIQUE INDEX portcullis_users_email ON portcullis_users (lower(email COLLATE "C"))
    WHERE email IS NOT NULL;

CREATE TABLE portcullis_tokens (
    id            BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          TEXT        NOT NULL,
    digest        BYTEA       NOT NULL CHECK (length(digest) = 32),
    user_id       BIGINT      NOT NULL REFERENCES portcullis_users (id) ON DELETE CASCADE,
    name          TEXT,
    hint          TEXT        NOT NULL,
    family        TEXT,
    scopes        TEXT[],
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ,
    revoked_at    TIMESTAMPTZ,
    revoke_reason TEXT,
    last_used_at  TIMESTAMPTZ,
    CONSTRAINT portcullis_tokens_digest UNIQUE (kind, digest)
);

CREATE INDEX portcullis_tokens_by_user ON portcullis_tokens (user_id, kind);
CREATE INDEX portcullis_tokens_by_family ON portcullis_tokens (family) WHERE family IS NOT NULL;
