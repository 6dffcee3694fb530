//! [`StoreError`]: why a store operation failed.

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A unique field is taken; the string names it (`"username"`, `"email"`, `"digest"`).
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The insert would exceed a per-user limit.
    #[error("limit of {limit} active tokens reached")]
    LimitReached {
        /// The limit that applied.
        limit: u32,
    },
    /// A value the store refuses to keep (see [`validate`](crate::store::validate)); the string names the field.
    #[error("invalid {0}")]
    InvalidInput(&'static str),
    /// The store does not implement this operation; the string names it.
    #[error("this store does not support {0}")]
    Unsupported(&'static str),
    /// The store could not be reached or failed; the operation may be retried.
    #[error("store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Stored data could not be understood (e.g. written by a newer version).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Wraps a backend error as [`StoreError::Unavailable`].
    pub fn unavailable(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unavailable(Box::new(error))
    }
}
