//! What a store author needs beside the [`TokenStore`](crate::TokenStore) trait: versions
//! and preconditions, leases, key filters, the capabilities a store declares, the pending
//! authorizations it keeps, and [`codec`], the one serialisation of token sets.
//!
//! An application needs none of this: it opens a ready store (`MemoryTokenStore`,
//! `FileTokenStore`, `RedisTokenStore`) and hands it to a
//! [`TokenManager`](crate::TokenManager).

pub mod codec;

use crate::key::TokenKey;
use rand::RngCore as _;
use std::fmt;

pub use crate::error::Source;
pub use crate::pending::PendingAuthorization;
pub use crate::secret::{StateHash, StateToken};

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

/// Which keys [`TokenStore::list`](crate::TokenStore::list) returns: those of one provider, optionally of one client.
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

/// What a store can do beyond the required contract (`get`, `put`, `delete`, `list`).
///
/// The conformance suite runs the behaviours of what a store declares, and the
/// [`TokenManager`](crate::TokenManager) adapts: without leases it coordinates refreshes
/// among its own tasks only; without pending authorizations it keeps them in its own memory,
/// so a callback must come back to the same process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreCapabilities {
    /// The store implements `try_lease`, `renew_lease` and `release_lease`.
    pub leases: bool,
    /// Leases exclude holders in other processes (and on other hosts, for shared stores).
    /// Without it, leases only coordinate tasks of one process.
    pub cross_process_leases: bool,
    /// The store implements `put_pending` and `take_pending`.
    pub pending_authorizations: bool,
    /// The store is shared between hosts.
    pub shared_between_hosts: bool,
}

impl StoreCapabilities {
    /// Nothing beyond the required contract: a store of token sets alone.
    pub const fn none() -> Self {
        Self {
            leases: false,
            cross_process_leases: false,
            pending_authorizations: false,
            shared_between_hosts: false,
        }
    }

    /// Sets `leases`.
    pub const fn with_leases(mut self, yes: bool) -> Self {
        self.leases = yes;
        self
    }

    /// Sets `cross_process_leases` (and `leases` with it, when set).
    pub const fn with_cross_process_leases(mut self, yes: bool) -> Self {
        self.cross_process_leases = yes;
        if yes {
            self.leases = true;
        }
        self
    }

    /// Sets `pending_authorizations`.
    pub const fn with_pending_authorizations(mut self, yes: bool) -> Self {
        self.pending_authorizations = yes;
        self
    }

    /// Sets `shared_between_hosts`.
    pub const fn with_shared_between_hosts(mut self, yes: bool) -> Self {
        self.shared_between_hosts = yes;
        self
    }
}
