//! The store's directory: its sub-directories, the names of its files, and the checks made
//! when it is opened.

use crate::error::FileStoreError;
use crate::fsio::{self, Durability};
use grantkit_core::TokenKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{
    DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _,
};
use std::path::{Path, PathBuf};

/// The layout marker file in the root.
pub(crate) const MARKER_FILE: &str = "grantkit-file-store.json";
const MARKER_FORMAT: &str = "grantkit.file_store";
/// The layout this build writes and the newest it reads.
pub(crate) const LAYOUT_VERSION: u32 = 1;

/// Files a process creates in the root only for a moment (checking who it runs as,
/// writing the marker); a crash may leave one behind for [`clean_up`](crate::FileTokenStore::clean_up).
pub(crate) const PROBE_PREFIX: &str = ".probe-";
pub(crate) const MARKER_TMP_PREFIX: &str = ".marker-";

/// Suffixes of the files in the sub-directories.
pub(crate) const RECORD_SUFFIX: &str = ".json";
pub(crate) const LEASE_SUFFIX: &str = ".lease";
pub(crate) const LOCK_SUFFIX: &str = ".lock";
pub(crate) const TMP_SUFFIX: &str = ".tmp";
pub(crate) const TAKEN_SUFFIX: &str = ".taken";

/// The prefix of record names whose provider id is not a readable prefix.
const OPAQUE_PREFIX: &str = "_";
const MAX_PREFIX_LEN: usize = 32;
const KEY_HASH_DOMAIN: &[u8] = b"grantkit.file_store.key.v1\0";

/// The name of a key's files: `<provider>.<hex SHA-256 of the key>`, or `_.<hex>` when the
/// provider id is not a short lower-case name. The hash covers every part, length-prefixed,
/// so distinct keys never share a name and no key part can steer the path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RecordName {
    name: String,
}

impl RecordName {
    pub(crate) fn of(key: &TokenKey) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(KEY_HASH_DOMAIN);
        for part in [&key.provider, &key.client, &key.account] {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
        Self {
            name: format!(
                "{}.{}",
                name_prefix(&key.provider),
                hex::encode(hasher.finalize())
            ),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.name
    }

    pub(crate) fn record_file(&self) -> String {
        format!("{}{RECORD_SUFFIX}", self.name)
    }

    pub(crate) fn record_tmp(&self) -> String {
        format!("{}{RECORD_SUFFIX}{TMP_SUFFIX}", self.name)
    }

    pub(crate) fn lease_file(&self) -> String {
        format!("{}{LEASE_SUFFIX}", self.name)
    }

    pub(crate) fn lease_tmp(&self) -> String {
        format!("{}{LEASE_SUFFIX}{TMP_SUFFIX}", self.name)
    }

    pub(crate) fn lock_file(&self) -> String {
        format!("{}{LOCK_SUFFIX}", self.name)
    }

    /// Reads a record name back from a file name made by this module: `<prefix>.<64 hex>`
    /// followed by `suffix`.
    pub(crate) fn parse_file_name(file: &str, suffix: &str) -> Option<(String, String)> {
        let stem = file.strip_suffix(suffix)?;
        let (prefix, hash) = stem.split_once('.')?;
        let valid_hash =
            hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let valid_prefix = prefix == OPAQUE_PREFIX || is_readable_prefix(prefix);
        (valid_hash && valid_prefix).then(|| (prefix.to_owned(), stem.to_owned()))
    }

    /// The record name for a stem read back from a directory.
    pub(crate) fn from_stem(stem: &str) -> Option<Self> {
        Self::parse_file_name(stem, "").map(|(_, stem)| Self { name: stem })
    }
}

/// The prefix that every record of `provider` has: what `list` scans for.
pub(crate) fn name_prefix(provider: &str) -> &str {
    if is_readable_prefix(provider) {
        provider
    } else {
        OPAQUE_PREFIX
    }
}

/// A provider id that may show in file names: short, lower-case letters, digits, `-` and
/// `_`, starting with a letter or digit. Nothing else can make a path, a hidden file, or a
/// name that differs only in case on a case-insensitive file system.
fn is_readable_prefix(provider: &str) -> bool {
    let bytes = provider.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_PREFIX_LEN
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// One sub-directory, with a handle kept open to fsync it after renames and unlinks.
#[derive(Debug)]
pub(crate) struct Dir {
    pub(crate) path: PathBuf,
    handle: File,
}

impl Dir {
    pub(crate) fn join(&self, file: &str) -> PathBuf {
        self.path.join(file)
    }

    /// Replaces `final_name` in this directory atomically (see [`fsio::replace_file`]).
    pub(crate) fn replace(
        &self,
        tmp_name: &str,
        final_name: &str,
        bytes: &[u8],
        durability: Durability,
    ) -> Result<(), FileStoreError> {
        fsio::replace_file(
            &self.path,
            &self.handle,
            tmp_name,
            final_name,
            bytes,
            durability,
        )
    }

    /// Makes the directory's entries (a rename, an unlink) durable.
    pub(crate) fn sync(&self) -> Result<(), FileStoreError> {
        self.handle
            .sync_all()
            .map_err(|e| FileStoreError::io("fsync the directory", &self.path, e))
    }
}

/// The opened store directory.
#[derive(Debug)]
pub(crate) struct Layout {
    pub(crate) root: PathBuf,
    /// `<name>.json`: one token record per key.
    pub(crate) tokens: Dir,
    /// `<name>.lease`: the lease on a key, while someone holds or held it.
    pub(crate) leases: Dir,
    /// `<name>.lock`: empty files whose advisory locks serialise a key's writers.
    pub(crate) locks: Dir,
    /// `<state hash>.json`: pending authorizations.
    pub(crate) pending: Dir,
}

#[derive(Serialize, Deserialize)]
struct Marker {
    format: String,
    layout: u32,
}

impl Layout {
    /// Opens (and with `create_missing`, creates) the store at `root`, refusing a directory
    /// that others can enter or that belongs to another user. Blocking.
    pub(crate) fn open(
        root: &Path,
        create_missing: bool,
        durability: Durability,
    ) -> Result<Self, FileStoreError> {
        let mut created = false;
        match fs::metadata(root) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound && create_missing => {
                DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(root)
                    .map_err(|e| FileStoreError::io("create the directory", root, e))?;
                // The umask may have taken bits away; the owner needs all three.
                fs::set_permissions(root, fs::Permissions::from_mode(0o700))
                    .map_err(|e| FileStoreError::io("set the permissions of", root, e))?;
                created = true;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(FileStoreError::Missing {
                    path: root.to_owned(),
                });
            }
            Err(e) => return Err(FileStoreError::io("inspect", root, e)),
        }
        // The root may be a symbolic link to the real directory (a common way to move data);
        // what counts is the directory it leads to.
        let meta = fs::metadata(root).map_err(|e| FileStoreError::io("inspect", root, e))?;
        if !meta.is_dir() {
            return Err(FileStoreError::NotADirectory {
                path: root.to_owned(),
            });
        }
        check_private(root, &meta, None)?;
        let user = current_user(root)?;
        check_private(root, &meta, Some(user))?;
        let root_handle =
            File::open(root).map_err(|e| FileStoreError::io("open the directory", root, e))?;

        created |= ensure_marker(root, &root_handle, durability)?;
        let mut open_dir = |name: &str| -> Result<Dir, FileStoreError> {
            let (dir, made) = open_subdir(&root.join(name), user)?;
            created |= made;
            Ok(dir)
        };
        let layout = Self {
            root: root.to_owned(),
            tokens: open_dir("tokens")?,
            leases: open_dir("leases")?,
            locks: open_dir("locks")?,
            pending: open_dir("pending")?,
        };
        if created && durability == Durability::Fsync {
            root_handle
                .sync_all()
                .map_err(|e| FileStoreError::io("fsync the directory", root, e))?;
        }
        Ok(layout)
    }
}

/// Refuses a directory with any permission bit for group or others, or (when `user` is
/// known) owned by someone else.
fn check_private(
    path: &Path,
    meta: &fs::Metadata,
    user: Option<u32>,
) -> Result<(), FileStoreError> {
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(FileStoreError::InsecurePermissions {
            path: path.to_owned(),
            mode,
        });
    }
    if let Some(user) = user
        && meta.uid() != user
    {
        return Err(FileStoreError::WrongOwner {
            path: path.to_owned(),
            owner: meta.uid(),
            user,
        });
    }
    Ok(())
}

/// The user this process creates files as, read from a file it creates: the standard
/// library has no safe call for the effective uid.
fn current_user(root: &Path) -> Result<u32, FileStoreError> {
    let probe = root.join(format!("{PROBE_PREFIX}{}", fsio::random_suffix()));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&probe)
        .map_err(|e| FileStoreError::io("create a file in", root, e))?;
    let uid = file.metadata().map(|m| m.uid());
    drop(file);
    let removed = fs::remove_file(&probe);
    let uid = uid.map_err(|e| FileStoreError::io("inspect", &probe, e))?;
    removed.map_err(|e| FileStoreError::io("remove", &probe, e))?;
    Ok(uid)
}

/// Reads the layout marker, or writes it into a new store. Returns whether it wrote it.
fn ensure_marker(
    root: &Path,
    root_handle: &File,
    durability: Durability,
) -> Result<bool, FileStoreError> {
    let path = root.join(MARKER_FILE);
    match fsio::read_capped(&path) {
        Ok(Some(bytes)) => {
            let unsupported = |reason: String| FileStoreError::UnsupportedLayout {
                path: path.clone(),
                reason,
            };
            let marker: Marker = serde_json::from_slice(&bytes).map_err(|_| {
                unsupported("the layout marker is not one grantkit writes".to_owned())
            })?;
            if marker.format != MARKER_FORMAT {
                return Err(unsupported(
                    "the layout marker belongs to something else".to_owned(),
                ));
            }
            if marker.layout == 0 || marker.layout > LAYOUT_VERSION {
                return Err(unsupported(format!(
                    "layout {} (this build reads layout {LAYOUT_VERSION})",
                    marker.layout
                )));
            }
            Ok(false)
        }
        Ok(None) => {
            let marker = Marker {
                format: MARKER_FORMAT.to_owned(),
                layout: LAYOUT_VERSION,
            };
            let bytes = serde_json::to_vec_pretty(&marker).map_err(|e| {
                FileStoreError::io("encode the layout marker for", &path, io::Error::other(e))
            })?;
            // Two processes creating the same store race here harmlessly: each renames its
            // own temporary file over the same content.
            let tmp = format!("{MARKER_TMP_PREFIX}{}{TMP_SUFFIX}", fsio::random_suffix());
            fsio::replace_file(root, root_handle, &tmp, MARKER_FILE, &bytes, durability)?;
            Ok(true)
        }
        Err(err @ (fsio::ReadError::Symlink | fsio::ReadError::WritableByOthers(_))) => {
            Err(FileStoreError::UnsupportedLayout {
                path,
                reason: err.untrusted().unwrap_or_default(),
            })
        }
        Err(fsio::ReadError::TooLarge { .. } | fsio::ReadError::NotAFile) => {
            Err(FileStoreError::UnsupportedLayout {
                path,
                reason: "the layout marker is not one grantkit writes".to_owned(),
            })
        }
        Err(fsio::ReadError::Io(e)) => Err(FileStoreError::io("read", &path, e)),
    }
}

/// Opens a sub-directory, creating it private if missing. Returns it and whether it was
/// created.
fn open_subdir(path: &Path, user: u32) -> Result<(Dir, bool), FileStoreError> {
    let mut created = false;
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            match DirBuilder::new().mode(0o700).create(path) {
                Ok(()) => created = true,
                // Another process created it first.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(FileStoreError::io("create the directory", path, e)),
            }
            if created {
                fs::set_permissions(path, fs::Permissions::from_mode(0o700))
                    .map_err(|e| FileStoreError::io("set the permissions of", path, e))?;
            }
            fs::symlink_metadata(path).map_err(|e| FileStoreError::io("inspect", path, e))?
        }
        Err(e) => return Err(FileStoreError::io("inspect", path, e)),
    };
    // Inside the store nothing may be a link: only this user writes here, and a link would
    // lead writes elsewhere.
    if !meta.file_type().is_dir() {
        return Err(FileStoreError::NotADirectory {
            path: path.to_owned(),
        });
    }
    check_private(path, &meta, Some(user))?;
    let handle = File::open(path).map_err(|e| FileStoreError::io("open the directory", path, e))?;
    Ok((
        Dir {
            path: path.to_owned(),
            handle,
        },
        created,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_hashes_with_a_safe_prefix() {
        let name = RecordName::of(&TokenKey::new("joindin", "client", "https://x/users/1"));
        let (prefix, hash) = name.as_str().split_once('.').unwrap();
        assert_eq!(prefix, "joindin");
        assert_eq!(hash.len(), 64);
        for provider in [
            "../etc",
            "Joindin",
            "",
            ".hidden",
            "a/b",
            "x".repeat(33).as_str(),
            "-x",
        ] {
            let name = RecordName::of(&TokenKey::new(provider, "c", "a"));
            assert!(
                name.as_str().starts_with("_."),
                "{provider:?} → {}",
                name.as_str()
            );
        }
    }

    #[test]
    fn a_directory_of_another_user_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
        let meta = fs::metadata(dir.path()).unwrap();
        let user = current_user(dir.path()).unwrap();
        assert_eq!(
            user,
            meta.uid(),
            "files this process creates are its user's"
        );
        check_private(dir.path(), &meta, Some(user)).unwrap();
        match check_private(dir.path(), &meta, Some(user.wrapping_add(1))) {
            Err(FileStoreError::WrongOwner {
                owner,
                user: expected,
                ..
            }) => {
                assert_eq!((owner, expected), (user, user.wrapping_add(1)));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            0,
            "the probe file is gone"
        );
    }

    #[test]
    fn parts_are_length_prefixed() {
        let a = RecordName::of(&TokenKey::new("p", "ab", "c"));
        let b = RecordName::of(&TokenKey::new("p", "a", "bc"));
        assert_ne!(a, b);
    }

    #[test]
    fn file_names_parse_back() {
        let name = RecordName::of(&TokenKey::new("p", "c", "a"));
        let (prefix, stem) =
            RecordName::parse_file_name(&name.record_file(), RECORD_SUFFIX).unwrap();
        assert_eq!(prefix, "p");
        assert_eq!(stem, name.as_str());
        assert_eq!(RecordName::from_stem(&stem), Some(name.clone()));
        assert!(RecordName::parse_file_name(&name.record_tmp(), RECORD_SUFFIX).is_none());
        assert!(RecordName::parse_file_name("p.xyz.json", RECORD_SUFFIX).is_none());
        assert!(RecordName::parse_file_name("../x.json", RECORD_SUFFIX).is_none());
    }
}
