-- portcullis: the audit event log (StoredEvents).
CREATE TABLE portcullis_events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    kind    TEXT    NOT NULL,
    user_id INTEGER,
    data    TEXT    NOT NULL
);

CREATE INDEX portcullis_events_by_user ON portcullis_events (user_id, id);
