//! The store conformance kit (`portcullis::conformance`, feature `conformance`) run against
//! every store portcullis ships, on the real thing: the in-memory store, SQLite on a file, a
//! PostgreSQL server, and sessions and one-time secrets in a Redis server (over the in-memory
//! store and over PostgreSQL, the production pairing). A third-party store runs the same
//! `store_conformance!` call with its own fixture.

mod common;

mod memory {
    use crate::common::stores::memory;
    portcullis::store_conformance!(memory);
}

mod sqlite {
    use crate::common::stores::sqlite;
    portcullis::store_conformance!(sqlite);
}

mod postgres {
    use crate::common::stores::postgres;
    portcullis::store_conformance!(postgres);
}

/// Users, counters and events stay in the main store, tested above.
mod redis_sessions {
    use crate::common::stores::redis_sessions;
    portcullis::store_conformance!(redis_sessions; tokens, secrets);
}

mod redis_sessions_on_postgres {
    use crate::common::stores::redis_sessions_on_postgres;
    portcullis::store_conformance!(redis_sessions_on_postgres; tokens, secrets);
}
