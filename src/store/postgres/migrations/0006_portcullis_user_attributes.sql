-- portcullis: verified email and phone, picture, daily allowance, and external identities.
ALTER TABLE portcullis_users
    ADD COLUMN email_verified  BOOLEAN NOT NULL DEFAULT FALSE,
    ADD COLUMN phone           TEXT,      -- E.164, compared exactly
    ADD COLUMN phone_verified  BOOLEAN NOT NULL DEFAULT FALSE,
    ADD COLUMN photo_url       TEXT,
    ADD COLUMN daily_allowance BIGINT CHECK (daily_allowance BETWEEN 0 AND 4294967295);

CREATE UNIQUE INDEX portcullis_users_phone ON portcullis_users (phone) WHERE phone IS NOT NULL;

-- An account at an identity provider: (issuer, subject) is unique and compared exactly
-- (OpenID Connect Core §5.7).
CREATE TABLE portcullis_identities (
    issuer    TEXT        NOT NULL,
    subject   TEXT        NOT NULL,
    user_id   BIGINT      NOT NULL REFERENCES portcullis_users (id) ON DELETE CASCADE,
    linked_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (issuer, subject)
);

CREATE INDEX portcullis_identities_by_user ON portcullis_identities (user_id);
