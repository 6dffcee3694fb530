-- portcullis: the audit event log (StoredEvents).
CREATE TABLE portcullis_events (
    id      BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      TIMESTAMPTZ NOT NULL,
    kind    TEXT        NOT NULL,
    user_id BIGINT,
    data    TEXT        NOT NULL
);

CREATE INDEX portcullis_events_by_user ON portcullis_events (user_id, id);
