//! Per-key exclusion across tasks and processes, and the hop to blocking threads.
//!
//! A key's writers (token writes, deletes, lease changes) hold an advisory lock on
//! `locks/<name>.lock` for the few system calls of their critical section. Within one
//! process they first queue on the key's async mutex, so at most one blocking thread per key
//! ever waits on a file lock, waiters are served in order, and a key whose lock is stuck
//! holds up no other key.

use crate::error::FileStoreError;
use crate::layout::RecordName;
use grantkit_core::{Error, Result};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// The advisory lock of one key, held until dropped (or the process dies: the kernel
/// releases it, so a crashed writer never blocks a key).
#[derive(Debug)]
pub(crate) struct KeyLock {
    file: File,
    path: PathBuf,
}

impl KeyLock {
    /// Blocks until this thread holds the lock at `path`.
    fn acquire(path: &Path) -> std::result::Result<Self, FileStoreError> {
        loop {
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(|e| FileStoreError::io("open the lock file", path, e))?;
            file.lock()
                .map_err(|e| FileStoreError::io("lock", path, e))?;
            if still_linked(&file, path)? {
                return Ok(Self {
                    file,
                    path: path.to_owned(),
                });
            }
            // The holder before us removed the lock file as its key went away: whoever
            // locks the file now at `path` is the next holder, so lock that one.
        }
    }

    /// Takes the lock at `path` if it is free now, without waiting; with `create`, makes
    /// the lock file when missing, else a missing file means `None`.
    pub(crate) fn try_acquire(
        path: &Path,
        create: bool,
    ) -> std::result::Result<Option<Self>, FileStoreError> {
        let file = match OpenOptions::new()
            .write(true)
            .create(create)
            .truncate(false)
            .mode(0o600)
            .open(path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(FileStoreError::io("open the lock file", path, e)),
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(e)) => return Err(FileStoreError::io("lock", path, e)),
        }
        Ok(still_linked(&file, path)?.then(|| Self {
            file,
            path: path.to_owned(),
        }))
    }

    /// Removes the lock file and releases the lock: the last step of a critical section
    /// after which the key has no files left. A waiter that locked the removed file sees
    /// it is gone and locks the file at the path instead.
    pub(crate) fn remove(self) -> std::result::Result<(), FileStoreError> {
        match fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(FileStoreError::io("remove the lock file", &self.path, e)),
        }
        // `self.file` is dropped here, which releases the lock.
    }
}

impl Drop for KeyLock {
    fn drop(&mut self) {
        // Closing the file releases the lock as well; unlocking first only makes the order
        // explicit. An error here changes nothing: the close follows.
        let _ = self.file.unlock();
    }
}

/// Whether the locked file is still the one at `path` (not removed or replaced).
fn still_linked(file: &File, path: &Path) -> std::result::Result<bool, FileStoreError> {
    let held = file
        .metadata()
        .map_err(|e| FileStoreError::io("inspect the lock file", path, e))?;
    match fs::metadata(path) {
        Ok(current) => Ok(current.dev() == held.dev() && current.ino() == held.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(FileStoreError::io("inspect the lock file", path, e)),
    }
}

const WAITING: u8 = 0;
const RUNNING: u8 = 1;
const ABANDONED: u8 = 2;

/// Decides, exactly once, whether a locked operation runs: the blocking thread claims it
/// when it gets the lock; the caller abandons it when it times out or is dropped. So an
/// operation reported as timed out (or whose caller went away while waiting) never
/// happens later.
struct Claim(Arc<AtomicU8>);

impl Claim {
    fn abandon(&self) -> bool {
        self.0
            .compare_exchange(WAITING, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.abandon();
    }
}

/// The in-process side of key locking, and the lock timeout.
#[derive(Debug)]
pub(crate) struct Locks {
    /// One async mutex per key in use, by record name.
    queues: std::sync::Mutex<HashMap<String, Arc<Mutex<()>>>>,
    timeout: Duration,
}

/// A key's place in [`Locks`]: removed from the map once nobody uses it.
struct Queue<'a> {
    locks: &'a Locks,
    name: &'a str,
    mutex: Arc<Mutex<()>>,
}

impl Drop for Queue<'_> {
    fn drop(&mut self) {
        let mut queues = self
            .locks
            .queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Only the map and this handle refer to it: nobody waits for it or holds it. (A
        // thread still holding it keeps it in the map, so later callers queue behind it.)
        if Arc::strong_count(&self.mutex) == 2 {
            queues.remove(self.name);
        }
    }
}

impl Locks {
    pub(crate) fn new(timeout: Duration) -> Self {
        Self {
            queues: std::sync::Mutex::new(HashMap::new()),
            timeout,
        }
    }

    fn queue<'a>(&'a self, name: &'a RecordName) -> Queue<'a> {
        let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        let mutex = queues
            .entry(name.as_str().to_owned())
            .or_insert_with(|| Arc::new(Mutex::new(())))
            .clone();
        Queue {
            locks: self,
            name: name.as_str(),
            mutex,
        }
    }

    /// Runs `op` on a blocking thread while holding the lock of the key `name` (the file at
    /// `lock_path`), waiting at most the lock timeout for it.
    pub(crate) async fn with_lock<T, F>(
        &self,
        name: &RecordName,
        lock_path: PathBuf,
        op: F,
    ) -> Result<T>
    where
        F: FnOnce(KeyLock) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let started = Instant::now();
        let deadline = started + self.timeout;
        let timed_out = || {
            Error::from(FileStoreError::LockTimeout {
                waited: started.elapsed(),
            })
        };
        let queue = self.queue(name);
        let Ok(in_process) =
            tokio::time::timeout_at(deadline, queue.mutex.clone().lock_owned()).await
        else {
            return Err(timed_out());
        };
        let state = Arc::new(AtomicU8::new(WAITING));
        let claim = Claim(state.clone());
        let mut task = tokio::task::spawn_blocking(move || {
            // Held until this thread is done, even if the caller gave up: a thread stuck on
            // a file lock keeps the key's queue, so later callers time out on the async
            // mutex instead of piling more threads onto the same file lock.
            let _in_process = in_process;
            let lock = KeyLock::acquire(&lock_path)?;
            if state
                .compare_exchange(WAITING, RUNNING, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                // The caller has given up; nobody waits for this outcome.
                return Err(FileStoreError::LockTimeout {
                    waited: started.elapsed(),
                }
                .into());
            }
            op(lock)
        });
        let joined = match tokio::time::timeout_at(deadline, &mut task).await {
            Ok(joined) => joined,
            Err(_) if claim.abandon() => return Err(timed_out()),
            // The operation holds the lock and is running: its outcome is the answer.
            Err(_) => task.await,
        };
        joined.map_err(task_failed)?
    }
}

/// Runs `op` on a blocking thread (file I/O must not block the async runtime).
pub(crate) async fn blocking<T, F>(op: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(op).await.map_err(task_failed)?
}

fn task_failed(err: tokio::task::JoinError) -> Error {
    Error::store("a blocking file store task failed", false, err)
}
