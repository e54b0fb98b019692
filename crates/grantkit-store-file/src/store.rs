//! `FileTokenStore`: the `TokenStore` contract on a private directory of plain files.

use crate::config::{self, FileTokenStoreBuilder};
use crate::error::FileStoreError;
use crate::fsio::{self, Durability, MAX_RECORD_BYTES, ReadError};
use crate::layout::{
    self, LEASE_SUFFIX, LOCK_SUFFIX, Layout, MARKER_TMP_PREFIX, PROBE_PREFIX, RECORD_SUFFIX,
    RecordName, TAKEN_SUFFIX, TMP_SUFFIX,
};
use crate::lock::{self, KeyLock, Locks};
use crate::record::{self, LeaseRecord, TokenRecord};
use async_trait::async_trait;
use grantkit_core::{
    Error, Result, TokenKey, TokenSet, TokenStore,
    store::{
        KeyFilter, Lease, PendingAuthorization, Precondition, StateHash, StoreCapabilities,
        Version, Versioned,
    },
};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Temporary and taken files older than this belong to a writer that crashed (a live one
/// is done within milliseconds) and may be removed.
const STALE_AFTER: Duration = Duration::from_secs(600);
/// How often a process sweeps expired pending authorizations, at most.
const PENDING_SWEEP_EVERY: Duration = Duration::from_secs(60);

/// A token store on plain files in a private directory: one file per grant, replaced
/// atomically and durably, with compare-and-swap and leases that hold across processes.
///
/// See the [crate documentation](crate) for the layout on disk, the locking protocol, what
/// survives a crash, and where the store must not live.
#[derive(Clone)]
pub struct FileTokenStore {
    inner: Arc<Inner>,
}

struct Inner {
    layout: Layout,
    durability: Durability,
    lock_timeout: Duration,
    locks: Locks,
    last_pending_sweep: Mutex<Option<std::time::Instant>>,
}

impl fmt::Debug for FileTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileTokenStore")
            .field("root", &self.inner.layout.root)
            .field("durability", &self.inner.durability)
            .field("lock_timeout", &self.inner.lock_timeout)
            .finish()
    }
}

/// What [`FileTokenStore::clean_up`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CleanupReport {
    /// Temporary files left by writers that crashed.
    pub temporary_files: usize,
    /// Leases that had expired (their holders are gone or gave up).
    pub expired_leases: usize,
    /// Lock files of keys that have no record and no lease any more.
    pub unused_lock_files: usize,
    /// Pending authorizations past their time to live.
    pub expired_pending: usize,
}

impl FileTokenStore {
    /// Opens the store at `root` with the defaults (see [`FileTokenStoreBuilder`]),
    /// creating the directory if needed.
    pub async fn open(root: impl Into<PathBuf>) -> Result<Self> {
        Self::builder(root).open().await
    }

    /// A builder for a store at `root`.
    pub fn builder(root: impl Into<PathBuf>) -> FileTokenStoreBuilder {
        FileTokenStoreBuilder::new(root.into())
    }

    /// Opens the store in the directory named by `GRANTKIT_FILE_STORE_DIR`, else in
    /// [`default_dir`](Self::default_dir), with the defaults.
    pub async fn from_env() -> Result<Self> {
        let root = config::dir_from_env(|name| std::env::var_os(name))?;
        Self::open(root).await
    }

    /// The per-user default directory: `$XDG_DATA_HOME/grantkit/tokens`, else
    /// `~/.local/share/grantkit/tokens` (on macOS `~/Library/Application
    /// Support/grantkit/tokens`); `None` without a home directory.
    pub fn default_dir() -> Option<PathBuf> {
        config::default_dir_from(|name| std::env::var_os(name))
    }

    pub(crate) async fn from_builder(builder: FileTokenStoreBuilder) -> Result<Self> {
        let FileTokenStoreBuilder {
            root,
            durability,
            lock_timeout,
            create_missing,
        } = builder;
        let layout = lock::blocking(move || {
            // Every later call joins file names to the root: a relative root would follow
            // the process's working directory wherever it moves.
            let root = std::path::absolute(&root)
                .map_err(|e| FileStoreError::io("resolve the path", &root, e))?;
            Layout::open(&root, create_missing, durability).map_err(Error::from)
        })
        .await?;
        Ok(Self {
            inner: Arc::new(Inner {
                layout,
                durability,
                lock_timeout,
                locks: Locks::new(lock_timeout),
                last_pending_sweep: Mutex::new(None),
            }),
        })
    }

    /// The store's directory, as an absolute path.
    pub fn root(&self) -> &Path {
        &self.inner.layout.root
    }

    /// Removes what crashed or departed processes left behind: temporary files, expired
    /// leases, lock files of keys that are gone, and expired pending authorizations. Safe
    /// while other processes use the store: a key's files are only touched under its lock,
    /// and a key being written is skipped.
    ///
    /// Never needed for correctness — leftovers never affect reads or writes, and the next
    /// write of a key replaces its stale temporary file — only to keep the directory tidy.
    pub async fn clean_up(&self) -> Result<CleanupReport> {
        let inner = self.inner.clone();
        lock::blocking(move || inner.clean_up()).await
    }
}

fn now_ms() -> u64 {
    millis(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default(),
    )
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn conflict(key: &TokenKey) -> Error {
    Error::Conflict {
        key: key.to_string(),
    }
}

fn corrupt(key: &TokenKey, reason: String) -> Error {
    Error::CorruptRecord {
        key: key.to_string(),
        reason,
    }
}

fn check_size(bytes: &[u8]) -> Result<()> {
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(FileStoreError::RecordTooLarge {
            size: bytes.len(),
            limit: MAX_RECORD_BYTES,
        }
        .into());
    }
    Ok(())
}

/// A pending authorization's file stem; the hash type only ever holds 64 lower-case hex
/// digits, and the check keeps it that way for the path built from it.
fn pending_stem(hash: &StateHash) -> Result<&str> {
    let text = hash.as_str();
    if StateHash::from_hex(text).is_none() {
        return Err(Error::Store {
            message: "a state hash is not 64 lower-case hex digits".to_owned(),
            retryable: false,
            source: None,
        });
    }
    Ok(text)
}

/// What is stored under a key, as read under its lock.
enum Stored {
    Absent,
    Present(Box<TokenRecord>),
    Unreadable(String),
    /// A file the store must not trust (a symbolic link, writable by others): refused until
    /// an operator looks at it, never silently replaced.
    Untrusted(String),
}

/// What a precondition is checked for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Put,
    Delete,
}

impl Stored {
    fn version(&self) -> Option<Version> {
        match self {
            Self::Present(record) => Some(record.version),
            Self::Absent | Self::Unreadable(_) | Self::Untrusted(_) => None,
        }
    }
}

/// Whether `precondition` admits a write over `stored`. A record that cannot be read only
/// admits `Any` (so a new authorization repairs it); otherwise its corruption is the error.
/// An untrusted file admits no write (replacing it would hide that someone tampered), only
/// its removal with `Any` (unlinking a link never touches what it points to).
fn admit(stored: &Stored, precondition: Precondition, key: &TokenKey, op: Op) -> Result<()> {
    match (precondition, stored) {
        (Precondition::Any, Stored::Untrusted(_)) if op == Op::Delete => Ok(()),
        (_, Stored::Untrusted(reason)) => Err(corrupt(key, reason.clone())),
        (Precondition::Any, _) | (Precondition::Absent, Stored::Absent) => Ok(()),
        (Precondition::Version(v), Stored::Present(record)) if record.version == v => Ok(()),
        (_, Stored::Unreadable(reason)) => Err(corrupt(key, reason.clone())),
        (Precondition::Absent | Precondition::Version(_), _) => Err(conflict(key)),
    }
}

impl Inner {
    fn lock_path(&self, name: &RecordName) -> PathBuf {
        self.layout.locks.join(&name.lock_file())
    }

    fn sync_if_durable(&self, dir: &layout::Dir) -> Result<()> {
        if self.durability == Durability::Fsync {
            dir.sync()?;
        }
        Ok(())
    }

    fn read_token(&self, name: &RecordName, key: &TokenKey) -> Result<Stored> {
        let path = self.layout.tokens.join(&name.record_file());
        Ok(match fsio::read_capped(&path) {
            Ok(None) => Stored::Absent,
            Ok(Some(bytes)) => match record::decode_token(&bytes) {
                Ok(record) if record.key == *key => Stored::Present(Box::new(record)),
                Ok(_) => Stored::Unreadable(
                    "the file holds the record of another key (a foreign file)".to_owned(),
                ),
                Err(unreadable) => Stored::Unreadable(unreadable.0),
            },
            Err(ReadError::TooLarge { size }) => Stored::Unreadable(format!(
                "the file is {size} bytes, more than a record may have ({MAX_RECORD_BYTES})"
            )),
            Err(ReadError::NotAFile) => Stored::Unreadable("not a regular file".to_owned()),
            Err(err @ (ReadError::Symlink | ReadError::WritableByOthers(_))) => {
                Stored::Untrusted(err.untrusted().unwrap_or_default())
            }
            Err(ReadError::Io(e)) => return Err(FileStoreError::io("read", path, e).into()),
        })
    }

    /// The lease record of a key. A lease file that cannot be read counts as no lease:
    /// leases only order refreshes (the version precondition protects the data), and an
    /// unreadable one could otherwise block the key for good.
    fn read_lease(&self, name: &RecordName, key: &TokenKey) -> Result<Option<LeaseRecord>> {
        let path = self.layout.leases.join(&name.lease_file());
        match fsio::read_capped(&path) {
            Ok(None) => Ok(None),
            Ok(Some(bytes)) => match record::decode_lease(&bytes) {
                Ok(lease) if lease.key == *key => Ok(Some(lease)),
                Ok(_) => {
                    tracing::warn!(file = %name.lease_file(), "a lease file holds another key's lease; treating the lease as free");
                    Ok(None)
                }
                Err(unreadable) => {
                    tracing::warn!(file = %name.lease_file(), reason = %unreadable.0, "unreadable lease file; treating the lease as free");
                    Ok(None)
                }
            },
            Err(ReadError::Io(e)) => Err(FileStoreError::io("read", path, e).into()),
            Err(
                ReadError::TooLarge { .. }
                | ReadError::NotAFile
                | ReadError::Symlink
                | ReadError::WritableByOthers(_),
            ) => {
                // The next lease write replaces it (by rename, which never follows a link).
                tracing::warn!(file = %name.lease_file(), "lease file is not a lease the store trusts; treating the lease as free");
                Ok(None)
            }
        }
    }

    fn write_lease(
        &self,
        name: &RecordName,
        key: &TokenKey,
        holder: &str,
        ttl: Duration,
    ) -> Result<()> {
        let ttl_ms = millis(ttl);
        let bytes = record::encode_lease(key, holder, now_ms().saturating_add(ttl_ms), ttl_ms)?;
        check_size(&bytes)?;
        self.layout.leases.replace(
            &name.lease_tmp(),
            &name.lease_file(),
            &bytes,
            self.durability,
        )?;
        Ok(())
    }

    /// Ends a critical section: when the key has neither a record nor a lease, its lock file
    /// goes too (as the very last step), so deleted keys leave nothing behind. Returns
    /// whether it did.
    fn finish(&self, lock: KeyLock, name: &RecordName) -> Result<bool> {
        let exists = |path: PathBuf| {
            fs::exists(&path).map_err(|e| Error::from(FileStoreError::io("inspect", path, e)))
        };
        if exists(self.layout.tokens.join(&name.record_file()))?
            || exists(self.layout.leases.join(&name.lease_file()))?
        {
            return Ok(false);
        }
        lock.remove()?;
        Ok(true)
    }

    fn put_locked(
        &self,
        lock: KeyLock,
        name: &RecordName,
        key: &TokenKey,
        proposed: Version,
        bytes: Vec<u8>,
        precondition: Precondition,
    ) -> Result<Version> {
        let stored = self.read_token(name, key)?;
        admit(&stored, precondition, key, Op::Put)?;
        let (version, bytes) = if stored.version() == Some(proposed) {
            // The random version drawn before locking equals the stored one (a 1-in-2^64
            // event): draw again, so no two writes of a key share a version.
            let version = loop {
                let candidate = Version::random();
                if candidate != proposed {
                    break candidate;
                }
            };
            (version, record::with_version(&bytes, version)?)
        } else {
            (proposed, bytes)
        };
        self.layout.tokens.replace(
            &name.record_tmp(),
            &name.record_file(),
            &bytes,
            self.durability,
        )?;
        drop(lock);
        Ok(version)
    }

    fn delete_locked(
        &self,
        lock: KeyLock,
        name: &RecordName,
        key: &TokenKey,
        precondition: Precondition,
    ) -> Result<bool> {
        let outcome = self.delete_record(name, key, precondition);
        self.finish(lock, name)?;
        outcome
    }

    fn delete_record(
        &self,
        name: &RecordName,
        key: &TokenKey,
        precondition: Precondition,
    ) -> Result<bool> {
        let stored = self.read_token(name, key)?;
        admit(&stored, precondition, key, Op::Delete)?;
        if matches!(stored, Stored::Absent) {
            return Ok(false);
        }
        let removed = fsio::remove_if_present(&self.layout.tokens.join(&name.record_file()))?;
        // A temporary file of a crashed writer may hold this key's tokens: it goes too.
        fsio::remove_if_present(&self.layout.tokens.join(&name.record_tmp()))?;
        self.sync_if_durable(&self.layout.tokens)?;
        Ok(removed)
    }

    fn list(&self, filter: &KeyFilter) -> Result<Vec<TokenKey>> {
        let dir = &self.layout.tokens.path;
        let wanted_prefix = layout::name_prefix(&filter.provider);
        let entries =
            fs::read_dir(dir).map_err(|e| FileStoreError::io("list the directory", dir, e))?;
        let mut keys = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| FileStoreError::io("list the directory", dir, e))?;
            let file_name = entry.file_name();
            let Some(file) = file_name.to_str() else {
                continue;
            };
            let Some((prefix, stem)) = RecordName::parse_file_name(file, RECORD_SUFFIX) else {
                continue;
            };
            if prefix != wanted_prefix {
                continue;
            }
            let bytes = match fsio::read_capped(&entry.path()) {
                Ok(Some(bytes)) => bytes,
                // Deleted since the directory was read.
                Ok(None) => continue,
                Err(ReadError::Io(e)) => {
                    return Err(FileStoreError::io("read", entry.path(), e).into());
                }
                Err(ReadError::TooLarge { .. } | ReadError::NotAFile) => {
                    tracing::warn!(file, "skipping a file that is not a token record");
                    continue;
                }
                Err(err @ (ReadError::Symlink | ReadError::WritableByOthers(_))) => {
                    // Its key cannot be trusted either; `get` of the key reports it.
                    tracing::warn!(
                        file,
                        reason = err.untrusted().unwrap_or_default(),
                        "skipping an untrusted record file"
                    );
                    continue;
                }
            };
            match record::decode_token_key(&bytes) {
                Ok(key) if RecordName::of(&key).as_str() == stem => {
                    if filter.matches(&key) {
                        keys.push(key);
                    }
                }
                Ok(_) => {
                    tracing::warn!(
                        file,
                        "skipping a token record stored under another key's name (a foreign file)"
                    );
                }
                Err(unreadable) => {
                    // `get` of the key reports it as corrupt; a listing goes on without it.
                    tracing::warn!(file, reason = %unreadable.0, "skipping an unreadable token record");
                }
            }
        }
        Ok(keys)
    }

    fn put_pending(&self, stem: &str, bytes: &[u8]) -> Result<()> {
        let tmp = format!("{stem}.{}{TMP_SUFFIX}", fsio::random_suffix());
        self.layout.pending.replace(
            &tmp,
            &format!("{stem}{RECORD_SUFFIX}"),
            bytes,
            self.durability,
        )?;
        if self.pending_sweep_due() {
            // Abandoned flows must not pile up; a failed sweep is retried next time.
            if let Err(err) = self.sweep_pending() {
                tracing::warn!(error = %err, "sweeping expired pending authorizations failed");
            }
        }
        Ok(())
    }

    fn pending_sweep_due(&self) -> bool {
        let mut last = self
            .last_pending_sweep
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let now = std::time::Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < PENDING_SWEEP_EVERY) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// Takes a pending authorization: renaming it away is atomic, so of concurrent takers in
    /// any number of processes exactly one succeeds.
    fn take_pending(&self, hash: &StateHash) -> Result<Option<PendingAuthorization>> {
        let stem = pending_stem(hash)?;
        let dir = &self.layout.pending;
        let from = dir.join(&format!("{stem}{RECORD_SUFFIX}"));
        let taken = dir.join(&format!("{stem}.{}{TAKEN_SUFFIX}", fsio::random_suffix()));
        match fs::rename(&from, &taken) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(FileStoreError::io("rename", &from, e).into()),
        }
        let read = fsio::read_capped(&taken);
        fsio::remove_if_present(&taken)?;
        self.sync_if_durable(dir)?;
        let key = || format!("pending authorization {stem}");
        let bytes = match read {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(None),
            Err(ReadError::Io(e)) => return Err(FileStoreError::io("read", &taken, e).into()),
            Err(ReadError::TooLarge { .. } | ReadError::NotAFile) => {
                return Err(Error::CorruptRecord {
                    key: key(),
                    reason: "not a pending authorization record".to_owned(),
                });
            }
            Err(err @ (ReadError::Symlink | ReadError::WritableByOthers(_))) => {
                return Err(Error::CorruptRecord {
                    key: key(),
                    reason: err.untrusted().unwrap_or_default(),
                });
            }
        };
        record::decode_pending(&bytes, hash)
            .map(Some)
            .map_err(|unreadable| Error::CorruptRecord {
                key: key(),
                reason: unreadable.0,
            })
    }

    /// Removes expired pending authorizations and stale temporary or taken files.
    fn sweep_pending(&self) -> Result<usize> {
        let dir = &self.layout.pending.path;
        let now = now_ms();
        let mut removed = 0;
        for entry in
            fs::read_dir(dir).map_err(|e| FileStoreError::io("list the directory", dir, e))?
        {
            let entry = entry.map_err(|e| FileStoreError::io("list the directory", dir, e))?;
            let path = entry.path();
            let Some(file) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let expired = if file.ends_with(TMP_SUFFIX) || file.ends_with(TAKEN_SUFFIX) {
                is_stale(&path)
            } else if file.ends_with(RECORD_SUFFIX) {
                match fsio::read_capped(&path) {
                    Ok(Some(bytes)) => record::pending_expiry(&bytes).is_ok_and(|at| now >= at),
                    _ => false,
                }
            } else {
                false
            };
            if expired && fsio::remove_if_present(&path)? {
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn clean_up(&self) -> Result<CleanupReport> {
        let mut report = CleanupReport::default();
        let now = now_ms();

        // Temporary token files: only under the key's lock, which no writer of the key holds.
        for stem in stems(
            &self.layout.tokens.path,
            &format!("{RECORD_SUFFIX}{TMP_SUFFIX}"),
        )? {
            let Some(name) = RecordName::from_stem(&stem) else {
                continue;
            };
            let Some(lock) = KeyLock::try_acquire(&self.lock_path(&name), true)? else {
                continue;
            };
            if fsio::remove_if_present(&self.layout.tokens.join(&name.record_tmp()))? {
                report.temporary_files += 1;
            }
            self.finish(lock, &name)?;
        }

        // Leases: stale temporary files, and leases that have expired.
        let mut lease_stems = stems(
            &self.layout.leases.path,
            &format!("{LEASE_SUFFIX}{TMP_SUFFIX}"),
        )?;
        lease_stems.extend(stems(&self.layout.leases.path, LEASE_SUFFIX)?);
        lease_stems.sort();
        lease_stems.dedup();
        for stem in lease_stems {
            let Some(name) = RecordName::from_stem(&stem) else {
                continue;
            };
            let Some(lock) = KeyLock::try_acquire(&self.lock_path(&name), true)? else {
                continue;
            };
            if fsio::remove_if_present(&self.layout.leases.join(&name.lease_tmp()))? {
                report.temporary_files += 1;
            }
            let path = self.layout.leases.join(&name.lease_file());
            let held = match fsio::read_capped(&path) {
                Ok(Some(bytes)) => record::decode_lease(&bytes).is_ok_and(|l| l.is_held(now)),
                Ok(None) => true,
                Err(ReadError::Io(e)) => return Err(FileStoreError::io("read", path, e).into()),
                Err(_) => false,
            };
            if !held && fsio::remove_if_present(&path)? {
                report.expired_leases += 1;
            }
            self.finish(lock, &name)?;
        }
        self.sync_if_durable(&self.layout.leases)?;

        // Lock files of keys with nothing left.
        for stem in stems(&self.layout.locks.path, LOCK_SUFFIX)? {
            let Some(name) = RecordName::from_stem(&stem) else {
                continue;
            };
            let Some(lock) = KeyLock::try_acquire(&self.lock_path(&name), false)? else {
                continue;
            };
            if self.finish(lock, &name)? {
                report.unused_lock_files += 1;
            }
        }

        report.expired_pending = self.sweep_pending()?;

        // Files a process makes in the root for a moment while opening the store.
        let root = &self.layout.root;
        for entry in
            fs::read_dir(root).map_err(|e| FileStoreError::io("list the directory", root, e))?
        {
            let entry = entry.map_err(|e| FileStoreError::io("list the directory", root, e))?;
            let file = entry.file_name();
            let file = file.to_string_lossy();
            let transient = file.starts_with(PROBE_PREFIX)
                || (file.starts_with(MARKER_TMP_PREFIX) && file.ends_with(TMP_SUFFIX));
            if transient && is_stale(&entry.path()) && fsio::remove_if_present(&entry.path())? {
                report.temporary_files += 1;
            }
        }
        Ok(report)
    }
}

/// The record-name stems of the files in `dir` that end with `suffix`.
fn stems(dir: &Path, suffix: &str) -> Result<Vec<String>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| FileStoreError::io("list the directory", dir, e))? {
        let entry = entry.map_err(|e| FileStoreError::io("list the directory", dir, e))?;
        if let Some(file) = entry.file_name().to_str()
            && let Some((_, stem)) = RecordName::parse_file_name(file, suffix)
        {
            found.push(stem);
        }
    }
    Ok(found)
}

/// Whether a temporary file is old enough to belong to a crashed writer.
fn is_stale(path: &Path) -> bool {
    fs::symlink_metadata(path)
        .and_then(|meta| meta.modified())
        .is_ok_and(|modified| {
            SystemTime::now()
                .duration_since(modified)
                .is_ok_and(|age| age >= STALE_AFTER)
        })
}

#[async_trait]
impl TokenStore for FileTokenStore {
    fn capabilities(&self) -> StoreCapabilities {
        // Advisory file locks and lease files exclude other processes on this host; a
        // directory shared between hosts is not supported (see the crate docs).
        StoreCapabilities::none()
            .with_cross_process_leases(true)
            .with_pending_authorizations(true)
    }

    async fn get(&self, key: &TokenKey) -> Result<Option<Versioned<TokenSet>>> {
        let inner = self.inner.clone();
        let key = key.clone();
        lock::blocking(move || {
            // No lock: records are replaced by rename, so a reader sees the old or the new
            // file, never a mix.
            match inner.read_token(&RecordName::of(&key), &key)? {
                Stored::Absent => Ok(None),
                Stored::Present(record) => Ok(Some(Versioned {
                    value: record.tokens,
                    version: record.version,
                })),
                Stored::Unreadable(reason) | Stored::Untrusted(reason) => {
                    Err(corrupt(&key, reason))
                }
            }
        })
        .await
    }

    async fn get_many(
        &self,
        keys: &[TokenKey],
    ) -> Result<Vec<Result<Option<Versioned<TokenSet>>>>> {
        let inner = self.inner.clone();
        let keys = keys.to_vec();
        // One trip to the blocking pool for the whole batch, not one per key; the files
        // are read one after another in it, unlocked as in `get`.
        lock::blocking(move || {
            keys.iter()
                .map(|key| match inner.read_token(&RecordName::of(key), key) {
                    Ok(Stored::Absent) => Ok(Ok(None)),
                    Ok(Stored::Present(record)) => Ok(Ok(Some(Versioned {
                        value: record.tokens,
                        version: record.version,
                    }))),
                    Ok(Stored::Unreadable(reason) | Stored::Untrusted(reason)) => {
                        Ok(Err(corrupt(key, reason)))
                    }
                    Err(err) => Err(err),
                })
                .collect()
        })
        .await
    }

    async fn put(
        &self,
        key: &TokenKey,
        tokens: &TokenSet,
        precondition: Precondition,
    ) -> Result<Version> {
        let name = RecordName::of(key);
        // Encoding happens before the lock is taken, to keep the critical section short.
        let proposed = Version::random();
        let bytes = record::encode_token(key, proposed, tokens)?;
        check_size(&bytes)?;
        let inner = self.inner.clone();
        let key = key.clone();
        self.inner
            .locks
            .with_lock(&name.clone(), self.inner.lock_path(&name), move |lock| {
                inner.put_locked(lock, &name, &key, proposed, bytes, precondition)
            })
            .await
    }

    async fn delete(&self, key: &TokenKey, precondition: Precondition) -> Result<bool> {
        let name = RecordName::of(key);
        let inner = self.inner.clone();
        let key = key.clone();
        self.inner
            .locks
            .with_lock(&name.clone(), self.inner.lock_path(&name), move |lock| {
                inner.delete_locked(lock, &name, &key, precondition)
            })
            .await
    }

    async fn list(&self, filter: &KeyFilter) -> Result<Vec<TokenKey>> {
        let inner = self.inner.clone();
        let filter = filter.clone();
        lock::blocking(move || inner.list(&filter)).await
    }

    async fn try_lease(&self, key: &TokenKey, ttl: Duration) -> Result<Option<Lease>> {
        let name = RecordName::of(key);
        let lease = Lease::new_holder(key.clone());
        let inner = self.inner.clone();
        self.inner
            .locks
            .with_lock(&name.clone(), self.inner.lock_path(&name), move |lock| {
                if inner
                    .read_lease(&name, &lease.key)?
                    .is_some_and(|current| current.is_held(now_ms()))
                {
                    return Ok(None);
                }
                inner.write_lease(&name, &lease.key, &lease.holder, ttl)?;
                drop(lock);
                Ok(Some(lease))
            })
            .await
    }

    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<()> {
        let name = RecordName::of(&lease.key);
        let inner = self.inner.clone();
        let lease = lease.clone();
        self.inner
            .locks
            .with_lock(&name.clone(), self.inner.lock_path(&name), move |lock| {
                // An expired lease nobody else took is still ours to renew.
                if inner
                    .read_lease(&name, &lease.key)?
                    .is_some_and(|current| current.holder == lease.holder)
                {
                    inner.write_lease(&name, &lease.key, &lease.holder, ttl)?;
                    drop(lock);
                    return Ok(());
                }
                inner.finish(lock, &name)?;
                Err(Error::LeaseLost {
                    key: lease.key.to_string(),
                })
            })
            .await
    }

    async fn release_lease(&self, lease: &Lease) -> Result<()> {
        let name = RecordName::of(&lease.key);
        let inner = self.inner.clone();
        let lease = lease.clone();
        self.inner
            .locks
            .with_lock(&name.clone(), self.inner.lock_path(&name), move |lock| {
                if inner
                    .read_lease(&name, &lease.key)?
                    .is_some_and(|current| current.holder == lease.holder)
                {
                    fsio::remove_if_present(&inner.layout.leases.join(&name.lease_file()))?;
                    inner.sync_if_durable(&inner.layout.leases)?;
                }
                inner.finish(lock, &name)?;
                Ok(())
            })
            .await
    }

    async fn put_pending(&self, pending: &PendingAuthorization, ttl: Duration) -> Result<()> {
        let hash = pending.state_hash();
        pending_stem(&hash)?;
        let bytes = record::encode_pending(pending, now_ms().saturating_add(millis(ttl)))?;
        check_size(&bytes)?;
        let inner = self.inner.clone();
        lock::blocking(move || inner.put_pending(hash.as_str(), &bytes)).await
    }

    async fn take_pending(&self, state_hash: &StateHash) -> Result<Option<PendingAuthorization>> {
        let inner = self.inner.clone();
        let hash = state_hash.clone();
        lock::blocking(move || inner.take_pending(&hash)).await
    }
}
