-- portcullis: windowed counters for quotas (UserStore::consume).
CREATE TABLE portcullis_counters (
    key          TEXT    PRIMARY KEY,
    window_start INTEGER NOT NULL,
    value        INTEGER NOT NULL
);
