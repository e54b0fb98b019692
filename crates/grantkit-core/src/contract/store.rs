//! `TokenStore`: where token sets, leases and pending authorizations live.

use crate::error::{Error, Result};
use crate::key::TokenKey;
use crate::store::{
    KeyFilter, Lease, PendingAuthorization, Precondition, StateHash, StoreCapabilities, Version,
    Versioned,
};
use crate::token::TokenSet;
use async_trait::async_trait;
use std::fmt;
use std::time::Duration;

/// Where token sets, leases and pending authorizations live.
///
/// # Contract
///
/// - A backend error is an `Err` (retryable where the backend may recover), never `Ok(None)`.
/// - A record that cannot be read is [`Error::CorruptRecord`](crate::Error::CorruptRecord)
///   naming its key; other keys keep working.
/// - Keys are isolated: any string is a valid key part (unicode, `/`, `:`, `{`, `}`, 1 KiB
///   long), and distinct keys never share a record. No secret becomes a key or file name.
/// - Every method is safe to call concurrently from many tasks, and, for stores that declare
///   [`cross_process_leases`](StoreCapabilities::cross_process_leases), from many processes.
///
/// A store must keep token sets (`get`, `put`, `delete`, `list`). Leases and pending
/// authorizations are optional: a store declares them in its
/// [`capabilities`](Self::capabilities) and overrides their methods, whose defaults answer
/// [`Error::Unsupported`](crate::Error::Unsupported).
///
/// The conformance suite in `grantkit-conformance` tests each `# Behavior` bullet below,
/// for what the store declares.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait TokenStore: Send + Sync + fmt::Debug {
    /// What the store can do beyond the required contract.
    fn capabilities(&self) -> StoreCapabilities;

    // Token sets: required.

    /// Reads the token set stored under `key`.
    ///
    /// # Behavior
    /// - Returns every field exactly as written, with the version the write returned.
    /// - Returns `Ok(None)` when nothing is stored.
    async fn get(&self, key: &TokenKey) -> Result<Option<Versioned<TokenSet>>>;

    /// Reads the token sets of many keys at once: what a service warming its cache calls.
    ///
    /// The outer `Err` is a failure of the store itself; each key's own answer is inside,
    /// so one corrupt record does not hide the others. The default calls
    /// [`get`](Self::get) key by key; stores that can read many records in one exchange
    /// override it.
    ///
    /// # Behavior
    /// - Returns one answer per key, in the order of `keys` (a key given twice is answered
    ///   twice), each what [`get`](Self::get) would have returned for it.
    async fn get_many(
        &self,
        keys: &[TokenKey],
    ) -> Result<Vec<Result<Option<Versioned<TokenSet>>>>> {
        let mut answers = Vec::with_capacity(keys.len());
        for key in keys {
            answers.push(match self.get(key).await {
                Err(err) if is_about_the_record(&err) => Err(err),
                Err(err) => return Err(err),
                Ok(found) => Ok(found),
            });
        }
        Ok(answers)
    }

    /// Writes `tokens` under `key` if `precondition` holds, atomically.
    ///
    /// # Behavior
    /// - Returns the new version, distinct from every earlier version of the key (also
    ///   across a delete).
    /// - `Absent` fails with [`Error::Conflict`](crate::Error::Conflict) when a record exists.
    /// - `Version(v)` fails with `Conflict` when the stored version is not `v` or nothing
    ///   is stored.
    /// - Of concurrent writers with the same `Version(v)` precondition, exactly one wins.
    /// - A failed write leaves the stored record as it was.
    async fn put(
        &self,
        key: &TokenKey,
        tokens: &TokenSet,
        precondition: Precondition,
    ) -> Result<Version>;

    /// Deletes the token set under `key` if `precondition` holds.
    ///
    /// # Behavior
    /// - Returns `true` when a record was deleted, `false` when none was stored (`Any` and
    ///   `Absent`).
    /// - `Version(v)` fails with `Conflict` when the stored version is not `v` or nothing is
    ///   stored, and deletes nothing.
    /// - `Absent` fails with `Conflict` when a record exists.
    async fn delete(&self, key: &TokenKey, precondition: Precondition) -> Result<bool>;

    /// Lists the stored keys that `filter` matches.
    ///
    /// # Behavior
    /// - Returns each matching key once, in no particular order; never keys of other
    ///   providers or clients.
    async fn list(&self, filter: &KeyFilter) -> Result<Vec<TokenKey>>;

    // Leases: for stores that declare `leases`.

    /// Tries to take the lease on `key` for `ttl`.
    ///
    /// # Behavior
    /// - Returns `Some(lease)` when no one holds an unexpired lease on `key`; `None` when
    ///   someone does. Does not wait.
    /// - A lease not renewed expires after `ttl`, after which another holder can take it
    ///   (a dead holder never blocks the key for longer than `ttl`).
    /// - Leases on distinct keys are independent.
    async fn try_lease(&self, key: &TokenKey, ttl: Duration) -> Result<Option<Lease>> {
        let _ = (key, ttl);
        Err(unsupported("leases"))
    }

    /// Extends a held lease to `ttl` from now.
    ///
    /// # Behavior
    /// - Succeeds while `lease` is still held by its holder.
    /// - Fails with [`Error::LeaseLost`](crate::Error::LeaseLost) when it expired and was
    ///   taken by another holder, or was released.
    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<()> {
        let _ = (lease, ttl);
        Err(unsupported("leases"))
    }

    /// Releases a lease.
    ///
    /// # Behavior
    /// - Releases only if `lease`'s holder still holds it; never another holder's lease.
    /// - Releasing a lease that is no longer held is not an error.
    async fn release_lease(&self, lease: &Lease) -> Result<()> {
        let _ = lease;
        Err(unsupported("leases"))
    }

    // Pending authorizations: for stores that declare `pending_authorizations`.

    /// Keeps a pending authorization until its callback, under the hash of its state.
    ///
    /// # Behavior
    /// - Stored under [`PendingAuthorization::state_hash`]; the state itself is never a key.
    /// - The store may forget it after `ttl` (the manager checks expiry itself).
    async fn put_pending(&self, pending: &PendingAuthorization, ttl: Duration) -> Result<()> {
        let _ = (pending, ttl);
        Err(unsupported("pending authorizations"))
    }

    /// Takes the pending authorization stored under `state_hash`, exactly once.
    ///
    /// # Behavior
    /// - Returns it and removes it atomically: of concurrent takers exactly one gets it,
    ///   and a second take returns `Ok(None)`.
    /// - Returns `Ok(None)` for a hash never stored.
    async fn take_pending(&self, state_hash: &StateHash) -> Result<Option<PendingAuthorization>> {
        let _ = state_hash;
        Err(unsupported("pending authorizations"))
    }
}

/// Whether a failed read is about one record (which `get_many` answers for that key) rather
/// than the store (which fails the whole call).
pub(crate) fn is_about_the_record(err: &Error) -> bool {
    matches!(err, Error::CorruptRecord { .. })
}

fn unsupported(what: &str) -> Error {
    Error::unsupported(format!("this store keeps no {what} (see its capabilities)"))
}
