//! `FileStoreError`: what went wrong on disk, carried as the source of grantkit's
//! [`Error::Store`].

use grantkit_core::Error;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A failure of the file store, found as the [`source`](std::error::Error::source) of
/// [`Error::Store`]; [`FileStoreError::find`] digs it out for matching.
///
/// Paths name the store's directories and hashed record names only: never a token, and
/// never a key part.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileStoreError {
    /// A directory of the store can be read or entered by group or others.
    #[error(
        "{} is accessible by group or others (mode {mode:04o}); a token store directory must be private (chmod 700)",
        path.display()
    )]
    InsecurePermissions {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },

    /// A directory of the store belongs to another user than the one this process runs as.
    #[error(
        "{} is owned by uid {owner}, but this process runs as uid {user}",
        path.display()
    )]
    WrongOwner {
        /// The directory.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The user of this process (the owner of the files it creates).
        user: u32,
    },

    /// Something other than a directory stands where the store needs one.
    #[error("{} is not a directory", path.display())]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },

    /// The directory holds no file store and `create_missing` is off.
    #[error("{} does not exist (and creating it is turned off)", path.display())]
    Missing {
        /// The path.
        path: PathBuf,
    },

    /// The directory was laid out by a newer grantkit, or is not a grantkit file store.
    #[error("{} is not a file token store this build can read: {reason}", path.display())]
    UnsupportedLayout {
        /// The layout marker file.
        path: PathBuf,
        /// What was found.
        reason: String,
    },

    /// The per-record lock stayed taken for longer than the configured lock timeout: another
    /// process (or task) is stuck while writing the same record.
    #[error("waited {waited:?} for the lock of a record; another process or task holds it")]
    LockTimeout {
        /// How long this call waited.
        waited: Duration,
    },

    /// A record is larger than the store accepts.
    #[error("the record is {size} bytes, more than the {limit} bytes a record may have")]
    RecordTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },

    /// A file system call failed.
    #[error("cannot {operation} {}", path.display())]
    Io {
        /// What was being done, e.g. `rename`.
        operation: &'static str,
        /// On what.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

impl FileStoreError {
    /// The file store error behind `err`, if `err` is an [`Error::Store`] raised by this
    /// crate.
    pub fn find(err: &Error) -> Option<&FileStoreError> {
        match err {
            Error::Store {
                source: Some(source),
                ..
            } => source.downcast_ref::<FileStoreError>(),
            _ => None,
        }
    }

    pub(crate) fn io(operation: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            operation,
            path: path.into(),
            source,
        }
    }

    /// Whether the same call may succeed later: a busy lock, a full disk or an interrupted
    /// call may clear; a wrong permission or layout will not until someone fixes it.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::LockTimeout { .. } => true,
            Self::Io { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::Interrupted
                    | io::ErrorKind::TimedOut
                    | io::ErrorKind::WouldBlock
                    | io::ErrorKind::StorageFull
                    | io::ErrorKind::ResourceBusy
                    | io::ErrorKind::QuotaExceeded
            ),
            _ => false,
        }
    }

    /// A short summary for [`Error::Store`]'s message; the details stay in the source.
    fn summary(&self) -> &'static str {
        match self {
            Self::InsecurePermissions { .. } | Self::WrongOwner { .. } => {
                "refusing a token store directory that is not private to this user"
            }
            Self::NotADirectory { .. } | Self::Missing { .. } | Self::UnsupportedLayout { .. } => {
                "cannot open the file token store"
            }
            Self::LockTimeout { .. } => "a record of the file token store stayed locked",
            Self::RecordTooLarge { .. } => "the file token store refused a record",
            Self::Io { .. } => "file token store I/O failed",
        }
    }
}

impl From<FileStoreError> for Error {
    fn from(err: FileStoreError) -> Self {
        Error::Store {
            message: err.summary().to_owned(),
            retryable: err.is_retryable(),
            source: Some(Arc::new(err)),
        }
    }
}
