//! The SQL stores' schema migrations, embedded in the binary.
//!
//! Listed by hand instead of through `sqlx::migrate!`, which would build sqlx's macro crate
//! (and a second copy of the database drivers for the compiler) into every application.
//! [`migrations!`] names each file once; a test checks that the list is the directory and that
//! every checksum is the one `sqlx::migrate!` recorded, so databases migrated by earlier
//! versions stay valid.

use std::borrow::Cow;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// The table the stores record applied migrations in.
pub(crate) const TABLE: &str = "_portcullis_migrations";

/// A migrator over `(file name, SQL)` pairs named `<version>_<description>.sql`, as
/// `sqlx::migrate!` reads a directory.
pub(crate) fn migrator(files: &[(&'static str, &'static str)]) -> Migrator {
    let migrations = files
        .iter()
        .map(|(file, sql)| migration(file, sql))
        .collect();
    let mut migrator = Migrator::with_migrations(migrations);
    migrator.dangerous_set_table_name(TABLE);
    migrator
}

fn migration(file: &'static str, sql: &'static str) -> Migration {
    let (version, description) = file
        .strip_suffix(".sql")
        .and_then(|stem| stem.split_once('_'))
        .unwrap_or_else(|| panic!("migration {file} is not <version>_<description>.sql"));
    let version = version
        .parse()
        .unwrap_or_else(|_| panic!("migration {file} has no numeric version"));
    Migration::new(
        version,
        Cow::Owned(description.replace('_', " ")),
        MigrationType::Simple,
        sql.into_sql_str(),
        false,
    )
}

/// `(file, include_str!(dir/file))` for each file of a migrations directory.
macro_rules! migrations {
    ($dir:literal: $($file:literal),+ $(,)?) => {
        &[$(($file, include_str!(concat!($dir, "/", $file)))),+]
    };
}
pub(crate) use migrations;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The embedded list is exactly the directory, with the versions, descriptions and
    /// checksums sqlx's own reading of the directory gives (what `sqlx::migrate!` embeds).
    pub(crate) async fn matches_the_directory(embedded: &Migrator, dir: &str) {
        // Relative to the package root, which `cargo test` makes the working directory: a
        // compile-time `env!("CARGO_MANIFEST_DIR")` names whichever clone of the workspace
        // filled the shared build cache, which may be gone.
        let read = Migrator::new(std::path::Path::new(dir)).await.unwrap();
        let summary = |migrator: &Migrator| -> Vec<_> {
            migrator
                .iter()
                .map(|m| {
                    (
                        m.version,
                        m.description.to_string(),
                        m.checksum.to_vec(),
                        m.no_tx,
                    )
                })
                .collect()
        };
        assert_eq!(summary(embedded), summary(&read));
    }
}
