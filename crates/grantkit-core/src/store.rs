//! `TokenStore`: where token sets, leases and pending authorizations live.

use crate::error::Result;
use crate::key::TokenKey;
use crate::pending::PendingAuthorization;
use crate::secret::StateHash;
use crate::token::TokenSet;
use async_trait::async_trait;
use rand::RngCore as _;
use std::fmt;
use std::time::Duration;

/// The version of a stored token set: an opaque value compared for equality only.
///
/// A store gives every successful write a version distinct from every earlier version of
/// the same key, including versions from before a delete, so a writer holding an old version
/// can never overwrite a newer grant by accident.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Version(u64);

impl Version {
    /// Wraps a version a store has read back.
    pub const fn from_u64(value: u64) -> Self {
        Self(value)
    }

    /// The raw value, for stores to persist.
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// A random non-zero version: what stores without a durable counter use. Two writes
    /// colliding is a 1-in-2^64 event.
    pub fn random() -> Self {
        loop {
            let value = rand::rng().next_u64();
            if value != 0 {
                return Self(value);
            }
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A stored value with its version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned<T> {
    /// The value.
    pub value: T,
    /// Its version.
    pub version: Version,
}

/// When a write may happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// Whatever is stored, if anything.
    Any,
    /// Only if nothing is stored under the key.
    Absent,
    /// Only if the stored version is exactly this one.
    Version(Version),
}

/// An exclusive, renewable lease on a key, held by one holder until it expires or is
/// released. A lease is advisory: it makes one refresh happen at a time; the version
/// precondition on the write is what protects the data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The key the lease covers.
    pub key: TokenKey,
    /// Who holds it: random, unique per acquisition; not secret.
    pub holder: String,
}

impl Lease {
    /// A lease on `key` with a fresh holder id that also names this process, to help an
    /// operator looking at a store.
    pub fn new_holder(key: TokenKey) -> Self {
        let mut id = [0u8; 12];
        rand::rng().fill_bytes(&mut id);
        Self {
            key,
            holder: format!("{}-{}", std::process::id(), hex::encode(id)),
        }
    }
}

/// Which keys [`TokenStore::list`] returns: those of one provider, optionally of one client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyFilter {
    /// The provider id.
    pub provider: String,
    /// The client id, or every client.
    pub client: Option<String>,
}

impl KeyFilter {
    /// Every key of `provider`.
    pub fn provider(provider: impl Into<String>) -> Self {
        Self {
            provider: provider.into(),
            client: None,
        }
    }

    /// Only the keys of `client`.
    pub fn with_client(mut self, client: impl Into<String>) -> Self {
        self.client = Some(client.into());
        self
    }

    /// Whether `key` is one of the listed keys.
    pub fn matches(&self, key: &TokenKey) -> bool {
        key.provider == self.provider && self.client.as_ref().is_none_or(|c| key.client == *c)
    }
}

/// What a store can do beyond the required contract.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreCapabilities {
    /// Leases exclude holders in other processes (and on other hosts, for shared stores).
    /// Without it, leases only coordinate tasks of one process.
    pub cross_process_leases: bool,
    /// The store is shared between hosts.
    pub shared_between_hosts: bool,
}

impl StoreCapabilities {
    /// No capability beyond the contract.
    pub const fn none() -> Self {
        Self {
            cross_process_leases: false,
            shared_between_hosts: false,
        }
    }

    /// Sets `cross_process_leases`.
    pub const fn with_cross_process_leases(mut self, yes: bool) -> Self {
        self.cross_process_leases = yes;
        self
    }

    /// Sets `shared_between_hosts`.
    pub const fn with_shared_between_hosts(mut self, yes: bool) -> Self {
        self.shared_between_hosts = yes;
        self
    }
}

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
/// The conformance suite in `grantkit-conformance` tests each `# Behavior` bullet below.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait TokenStore: Send + Sync + fmt::Debug {
    /// What the store can do beyond the contract.
    fn capabilities(&self) -> StoreCapabilities;

    /// Reads the token set stored under `key`.
    ///
    /// # Behavior
    /// - Returns every field exactly as written, with the version the write returned.
    /// - Returns `Ok(None)` when nothing is stored.
    async fn get(&self, key: &TokenKey) -> Result<Option<Versioned<TokenSet>>>;

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

    /// Tries to take the lease on `key` for `ttl`.
    ///
    /// # Behavior
    /// - Returns `Some(lease)` when no one holds an unexpired lease on `key`; `None` when
    ///   someone does. Does not wait.
    /// - A lease not renewed expires after `ttl`, after which another holder can take it
    ///   (a dead holder never blocks the key for longer than `ttl`).
    /// - Leases on distinct keys are independent.
    async fn try_lease(&self, key: &TokenKey, ttl: Duration) -> Result<Option<Lease>>;

    /// Extends a held lease to `ttl` from now.
    ///
    /// # Behavior
    /// - Succeeds while `lease` is still held by its holder.
    /// - Fails with [`Error::LeaseLost`](crate::Error::LeaseLost) when it expired and was
    ///   taken by another holder, or was released.
    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<()>;

    /// Releases a lease.
    ///
    /// # Behavior
    /// - Releases only if `lease`'s holder still holds it; never another holder's lease.
    /// - Releasing a lease that is no longer held is not an error.
    async fn release_lease(&self, lease: &Lease) -> Result<()>;

    /// Keeps a pending authorization until its callback, under the hash of its state.
    ///
    /// # Behavior
    /// - Stored under [`PendingAuthorization::state_hash`]; the state itself is never a key.
    /// - The store may forget it after `ttl` (the manager checks expiry itself).
    async fn put_pending(&self, pending: &PendingAuthorization, ttl: Duration) -> Result<()>;

    /// Takes the pending authorization stored under `state_hash`, exactly once.
    ///
    /// # Behavior
    /// - Returns it and removes it atomically: of concurrent takers exactly one gets it,
    ///   and a second take returns `Ok(None)`.
    /// - Returns `Ok(None)` for a hash never stored.
    async fn take_pending(&self, state_hash: &StateHash) -> Result<Option<PendingAuthorization>>;
}
