-- portcullis: windowed counters for quotas (UserStore::consume).
CREATE TABLE portcullis_counters (
    key          TEXT        PRIMARY KEY,
    window_start TIMESTAMPTZ NOT NULL,
    value        BIGINT      NOT NULL
);
