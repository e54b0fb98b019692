//! `FileTokenStoreBuilder`: where the store lives and how it writes.

use crate::FileTokenStore;
use crate::fsio::Durability;
use grantkit_core::{Error, Result};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The environment variable [`FileTokenStore::from_env`] reads the directory from.
pub const DIR_ENV: &str = "GRANTKIT_FILE_STORE_DIR";

/// How long a call waits for another writer of the same record before it fails with a
/// retryable error, by default. Writers hold a record's lock for a few file system calls;
/// waiting this long means a writer is stuck.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds a [`FileTokenStore`]; start from [`FileTokenStore::builder`].
///
/// Defaults: the directory (and its parents) are created when missing,
/// [`Durability::Fsync`], and a lock timeout of [`DEFAULT_LOCK_TIMEOUT`].
#[derive(Clone, Debug)]
pub struct FileTokenStoreBuilder {
    pub(crate) root: PathBuf,
    pub(crate) durability: Durability,
    pub(crate) lock_timeout: Duration,
    pub(crate) create_missing: bool,
}

impl FileTokenStoreBuilder {
    pub(crate) fn new(root: PathBuf) -> Self {
        Self {
            root,
            durability: Durability::default(),
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            create_missing: true,
        }
    }

    /// What a write survives once acknowledged (default [`Durability::Fsync`]).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// How long a call waits for another writer of the same record (default
    /// [`DEFAULT_LOCK_TIMEOUT`]).
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// Whether to create the directory (with its parents, private) when it does not exist
    /// (default `true`). Off, a missing directory is an error.
    pub fn create_missing(mut self, yes: bool) -> Self {
        self.create_missing = yes;
        self
    }

    /// Opens the store: creates what is missing, and refuses a directory that group or
    /// others can access, that belongs to another user, or that a newer grantkit laid out.
    pub async fn open(self) -> Result<FileTokenStore> {
        FileTokenStore::from_builder(self).await
    }
}

/// The directory named by [`DIR_ENV`], else the platform's default.
pub(crate) fn dir_from_env(var: impl Fn(&str) -> Option<OsString>) -> Result<PathBuf> {
    if let Some(dir) = var(DIR_ENV).filter(|dir| !dir.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    default_dir_from(var).ok_or_else(|| {
        Error::configuration(format!(
            "no directory for the file token store: set {DIR_ENV} (or HOME)"
        ))
    })
}

/// The per-user default: `$XDG_DATA_HOME/grantkit/tokens` (else
/// `~/.local/share/grantkit/tokens`); on macOS `~/Library/Application Support/grantkit/tokens`.
pub(crate) fn default_dir_from(var: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let absolute =
        |value: Option<OsString>| value.map(PathBuf::from).filter(|path| path.is_absolute());
    let home = absolute(var("HOME"));
    let data = if cfg!(target_os = "macos") {
        home.map(|home| home.join("Library/Application Support"))
    } else {
        // The XDG base directory spec: a relative value is invalid and ignored.
        absolute(var("XDG_DATA_HOME")).or_else(|| home.map(|home| home.join(".local/share")))
    };
    data.map(|data| data.join(Path::new("grantkit/tokens")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn the_variable_wins() {
        let dir = dir_from_env(env(&[(DIR_ENV, "/srv/tokens"), ("HOME", "/home/a")])).unwrap();
        assert_eq!(dir, PathBuf::from("/srv/tokens"));
    }

    #[test]
    fn defaults_follow_the_platform() {
        let dir = dir_from_env(env(&[("HOME", "/home/a")])).unwrap();
        if cfg!(target_os = "macos") {
            assert_eq!(
                dir,
                PathBuf::from("/home/a/Library/Application Support/grantkit/tokens")
            );
        } else {
            assert_eq!(dir, PathBuf::from("/home/a/.local/share/grantkit/tokens"));
            let dir =
                dir_from_env(env(&[("HOME", "/home/a"), ("XDG_DATA_HOME", "/data")])).unwrap();
            assert_eq!(dir, PathBuf::from("/data/grantkit/tokens"));
            let dir = dir_from_env(env(&[("HOME", "/home/a"), ("XDG_DATA_HOME", "rel")])).unwrap();
            assert_eq!(dir, PathBuf::from("/home/a/.local/share/grantkit/tokens"));
        }
    }

    #[test]
    fn no_directory_is_a_configuration_error() {
        let err = dir_from_env(env(&[(DIR_ENV, ""), ("HOME", "relative")])).unwrap_err();
        assert!(matches!(err, Error::Configuration { .. }), "{err:?}");
        assert!(err.to_string().contains(DIR_ENV));
    }
}
