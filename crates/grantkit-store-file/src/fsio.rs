//! File primitives: capped reads and atomic, durable replacement.

use crate::error::FileStoreError;
use rand::RngCore as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::Path;

/// The largest record the store writes or reads: token sets are a few KiB at most, and a
/// cap keeps a stray large file in the directory from being read into memory.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// What a write has survived by the time the store acknowledges it.
///
/// Either way a record is replaced atomically (a temporary file renamed over it), so a
/// reader, or a process that crashes mid-write, never sees half a record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Durability {
    /// Every write is flushed to the disk — the file with `fsync`, then its directory, so
    /// the rename is on disk too — before it is acknowledged: it survives a power loss.
    #[default]
    Fsync,
    /// Writes are not flushed: they survive a crash of the process, but a power loss or a
    /// kernel crash may lose recent writes (and, depending on the file system, leave a
    /// record empty, which reads as corrupt). For caches, tests and throw-away stores.
    NoFsync,
}

/// Why a capped read failed.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The file is larger than [`MAX_RECORD_BYTES`].
    TooLarge {
        size: u64,
    },
    /// Not a regular file (a directory or a device where a record should be).
    NotAFile,
    /// A symbolic link: it could lead to a record outside the store, so it is not followed.
    Symlink,
    /// Writable by group or others (the mode): anyone could have changed the record.
    WritableByOthers(u32),
    Io(io::Error),
}

impl ReadError {
    /// Why the file is not a record the store trusts, when that is the failure.
    pub(crate) fn untrusted(&self) -> Option<String> {
        match self {
            Self::Symlink => Some(
                "the record file is a symbolic link, which the store never follows (it could \
                 lead outside the store): remove it"
                    .to_owned(),
            ),
            Self::WritableByOthers(mode) => Some(format!(
                "the record file is writable by group or others (mode {mode:04o}), so anyone \
                 could have changed it: check it and `chmod 600` it, or remove it"
            )),
            _ => None,
        }
    }
}

/// Reads a whole record file, or `None` when it does not exist. A symbolic link is never
/// followed, and a file writable by group or others is refused.
pub(crate) fn read_capped(path: &Path) -> Result<Option<Vec<u8>>, ReadError> {
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path);
    let file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(ReadError::Symlink),
        Err(e) => return Err(ReadError::Io(e)),
    };
    let meta = file.metadata().map_err(ReadError::Io)?;
    if !meta.is_file() {
        return Err(ReadError::NotAFile);
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(ReadError::WritableByOthers(mode));
    }
    let limit = MAX_RECORD_BYTES as u64;
    if meta.len() > limit {
        return Err(ReadError::TooLarge { size: meta.len() });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge {
            size: bytes.len() as u64,
        });
    }
    Ok(Some(bytes))
}

/// Replaces `dir/final_name` with `bytes` atomically: writes `dir/tmp_name` (created fresh,
/// mode 0600), flushes it, renames it over the target, and flushes the directory.
///
/// The caller owns `tmp_name`: either it holds the key's lock (a fixed name per key, so a
/// crash leaves at most one stale file, which the next write replaces) or the name is
/// random.
pub(crate) fn replace_file(
    dir: &Path,
    dir_handle: &File,
    tmp_name: &str,
    final_name: &str,
    bytes: &[u8],
    durability: Durability,
) -> Result<(), FileStoreError> {
    let tmp = dir.join(tmp_name);
    let target = dir.join(final_name);
    let written = write_new_file(&tmp, bytes, durability)
        .and_then(|()| fs::rename(&tmp, &target).map_err(|e| ("rename", e)));
    if let Err((operation, e)) = written {
        // Leave nothing half-written behind; the target is untouched.
        let _ = fs::remove_file(&tmp);
        return Err(FileStoreError::io(operation, &tmp, e));
    }
    if durability == Durability::Fsync {
        dir_handle
            .sync_all()
            .map_err(|e| FileStoreError::io("fsync the directory", dir, e))?;
    }
    Ok(())
}

fn write_new_file(
    path: &Path,
    bytes: &[u8],
    durability: Durability,
) -> Result<(), (&'static str, io::Error)> {
    let open = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
    };
    let mut file = match open() {
        Ok(file) => file,
        // A stale temporary file from a writer that crashed: ours now (the caller holds the
        // lock or chose a random name), and recreating it gives it our mode for certain.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            fs::remove_file(path).map_err(|e| ("remove the stale", e))?;
            open().map_err(|e| ("create", e))?
        }
        Err(e) => return Err(("create", e)),
    };
    file.write_all(bytes).map_err(|e| ("write", e))?;
    if durability == Durability::Fsync {
        file.sync_all().map_err(|e| ("fsync", e))?;
    }
    Ok(())
}

/// Removes a file; `Ok(false)` when it was not there.
pub(crate) fn remove_if_present(path: &Path) -> Result<bool, FileStoreError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(FileStoreError::io("remove", path, e)),
    }
}

/// 16 random hex digits for temporary file names.
pub(crate) fn random_suffix() -> String {
    format!("{:016x}", rand::rng().next_u64())
}
