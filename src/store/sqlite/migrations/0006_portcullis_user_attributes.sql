-- portcullis: verified email and phone, picture, daily allowance, and external identities.
ALTER TABLE portcullis_users ADD COLUMN email_verified  INTEGER NOT NULL DEFAULT 0;
ALTER TABLE portcullis_users ADD COLUMN phone           TEXT;    -- E.164, compared exactly
ALTER TABLE portcullis_users ADD COLUMN phone_verified  INTEGER NOT NULL DEFAULT 0;
ALTER TABLE portcullis_users ADD COLUMN photo_url       TEXT;
ALTER TABLE portcullis_users ADD COLUMN daily_allowance INTEGER;

CREATE UNIQUE INDEX portcullis_users_phone ON portcullis_users (phone) WHERE phone IS NOT NULL;

-- An account at an identity provider: (issuer, subject) is unique and compared exactly
-- (OpenID Connect Core §5.7).
CREATE TABLE portcullis_identities (
    issuer    TEXT    NOT NULL,
    subject   TEXT    NOT NULL,
    user_id   INTEGER NOT NULL REFERENCES portcullis_users (id) ON DELETE CASCADE,
    linked_at INTEGER NOT NULL,   -- microseconds since the epoch
    PRIMARY KEY (issuer, subject)
);

CREATE INDEX portcullis_identities_by_user ON portcullis_identities (user_id);
