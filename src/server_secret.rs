//! Server secrets from configuration: the JWT signing secret, the [`CodeKey`](crate::token::CodeKey),
//! an internal service key.
//!
//! One rule for all of them: a configured value is used when it is long enough; in production
//! a missing one is an error at start-up (never a silently generated key that changes with
//! every deployment, or one shared by every installation); in development one is generated
//! once into a file readable by its owner only (mode 0600, in a 0700 directory), so that a
//! developer's server starts with no set-up and keeps its sessions across restarts.
//!
//! ```
//! use portcullis::server_secret::{Environment, resolve};
//!
//! let dir = tempfile::tempdir()?;
//! let file = dir.path().join(".code_key");
//! let generated = resolve("CODE_KEY", None, 32, Environment::Development, &file)?;
//! assert_eq!(generated.len(), 64, "32 random bytes, hex-encoded");
//! assert_eq!(resolve("CODE_KEY", None, 32, Environment::Development, &file)?, generated);
//! assert!(resolve("CODE_KEY", None, 32, Environment::Production, &file).is_err());
//! assert!(resolve("CODE_KEY", Some("short".into()), 32, Environment::Production, &file).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Where the server runs, which decides what a missing secret means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Environment {
    /// A developer's machine: missing secrets are generated into files.
    Development,
    /// A deployment: every secret must be configured.
    Production,
}

/// Why a server secret could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerSecretError {
    /// Production with no value configured.
    #[error("{name} must be set in production (generate one with: openssl rand -hex 32)")]
    Missing {
        /// The setting's name.
        name: &'static str,
    },
    /// The configured value is shorter than the minimum.
    #[error("{name} must be at least {min_len} bytes long")]
    TooShort {
        /// The setting's name.
        name: &'static str,
        /// The minimum, in bytes.
        min_len: usize,
    },
    /// The development file could not be read or written, is readable by others, or holds too
    /// short a value.
    #[error("secret file {}: {why}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
}

/// The secret `name`: `given` when at least `min_len` bytes long; otherwise, in production,
/// an error; in development, the contents of `file`, generated on first use (32 random bytes,
/// hex-encoded) with mode 0600. A `file` that other users can read is refused rather than
/// trusted.
pub fn resolve(
    name: &'static str,
    given: Option<String>,
    min_len: usize,
    environment: Environment,
    file: &Path,
) -> Result<String, ServerSecretError> {
    if let Some(value) = given {
        return if value.len() >= min_len {
            Ok(value)
        } else {
            Err(ServerSecretError::TooShort { name, min_len })
        };
    }
    if environment == Environment::Production {
        return Err(ServerSecretError::Missing { name });
    }
    let fail = |why: &dyn fmt::Display| ServerSecretError::File {
        path: file.to_owned(),
        why: why.to_string(),
    };
    if let Some(dir) = file.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        create_private_dir(dir).map_err(|error| ServerSecretError::File {
            path: dir.to_owned(),
            why: error.to_string(),
        })?;
    }
    match fs::metadata(file) {
        Ok(metadata) => {
            let mode = metadata.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(fail(&format_args!(
                    "is readable by other users (mode {:o}); run chmod 600",
                    mode & 0o777
                )));
            }
            let value = fs::read_to_string(file).map_err(|e| fail(&e))?;
            let value = value.trim().to_owned();
            if value.len() < min_len {
                return Err(fail(&format_args!("holds fewer than {min_len} bytes")));
            }
            Ok(value)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let value = random_hex().map_err(|e| fail(&e))?;
            // `create_new`: two servers starting at once must not both write; the loser
            // reads the winner's value.
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(file)
            {
                Ok(mut out) => {
                    out.write_all(value.as_bytes()).map_err(|e| fail(&e))?;
                    tracing::info!(file = %file.display(), "generated a development secret for {name}");
                    Ok(value)
                }
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                    resolve(name, None, min_len, environment, file)
                }
                Err(error) => Err(fail(&error)),
            }
        }
        Err(error) => Err(fail(&error)),
    }
}

/// Creates `dir` (and parents) readable by the owner only; an existing directory is left as
/// it is.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

fn random_hex() -> Result<String, crate::token::RandomnessUnavailable> {
    use rand::TryRng;
    let mut bytes = [0u8; 32];
    rand::rngs::SysRng
        .try_fill_bytes(&mut bytes)
        .map_err(|_| crate::token::RandomnessUnavailable)?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configured_secret_wins_and_must_be_long_enough() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s");
        let given = "x".repeat(32);
        assert_eq!(
            resolve("S", Some(given.clone()), 32, Environment::Production, &file).unwrap(),
            given
        );
        assert!(matches!(
            resolve(
                "S",
                Some("x".repeat(31)),
                32,
                Environment::Development,
                &file
            ),
            Err(ServerSecretError::TooShort { .. })
        ));
        assert!(!file.exists(), "a configured secret writes no file");
    }

    #[test]
    fn production_never_generates() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s");
        let error = resolve("JWT_SECRET", None, 32, Environment::Production, &file).unwrap_err();
        assert!(
            error.to_string().contains("JWT_SECRET must be set"),
            "{error}"
        );
        assert!(!file.exists());
    }

    #[test]
    fn development_files_are_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nested/dir/s");
        let first = resolve("S", None, 32, Environment::Development, &file).unwrap();
        let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(file.parent().unwrap()), 0o700);
        assert_eq!(
            resolve("S", None, 32, Environment::Development, &file).unwrap(),
            first
        );
        assert_ne!(
            resolve(
                "S",
                None,
                32,
                Environment::Development,
                &dir.path().join("t")
            )
            .unwrap(),
            first,
            "every file gets its own random value"
        );
    }

    #[test]
    fn a_world_readable_or_short_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s");
        fs::write(&file, "x".repeat(64)).unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        let error = resolve("S", None, 32, Environment::Development, &file).unwrap_err();
        assert!(error.to_string().contains("chmod 600"), "{error}");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&file, "short\n").unwrap();
        let error = resolve("S", None, 32, Environment::Development, &file).unwrap_err();
        assert!(error.to_string().contains("fewer than 32"), "{error}");
    }
}
