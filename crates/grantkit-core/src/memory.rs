//! `MemoryTokenStore`: the whole `TokenStore` contract in one process's memory.

use crate::contract::TokenStore;
use crate::error::{Error, Result};
use crate::key::TokenKey;
use crate::store::{
    KeyFilter, Lease, PendingAuthorization, Precondition, StateHash, StoreCapabilities, Version,
    Versioned,
};
use crate::token::TokenSet;
use async_trait::async_trait;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// A token store in memory: for tests, and for processes that keep nothing across restarts.
///
/// Leases coordinate the tasks of this process only
/// ([`cross_process_leases`](StoreCapabilities::cross_process_leases) is `false`).
///
/// ```
/// # async fn example() -> grantkit_core::Result<()> {
/// use grantkit_core::{MemoryTokenStore, TokenStore, TokenKey, TokenSet, AccessToken, GrantKind, store::Precondition};
///
/// let store = MemoryTokenStore::new();
/// let key = TokenKey::new("joindin", "my-client", "https://api.joind.in/v2.1/users/42");
/// let tokens = TokenSet::new(AccessToken::new("0123456789abcdef"), GrantKind::Password);
/// let version = store.put(&key, &tokens, Precondition::Absent).await?;
/// assert_eq!(store.get(&key).await?.unwrap().version, version);
/// # Ok(()) }
/// ```
#[derive(Default)]
pub struct MemoryTokenStore {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    tokens: HashMap<TokenKey, Versioned<TokenSet>>,
    leases: HashMap<TokenKey, (String, Instant)>,
    pending: HashMap<StateHash, (PendingAuthorization, Instant)>,
}

impl MemoryTokenStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-written record: every change
        // below is a single insert or remove.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for MemoryTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        f.debug_struct("MemoryTokenStore")
            .field("tokens", &state.tokens.len())
            .field("leases", &state.leases.len())
            .field("pending", &state.pending.len())
            .finish()
    }
}

fn conflict(key: &TokenKey) -> Error {
    Error::Conflict {
        key: key.to_string(),
    }
}

fn holds(current: Option<Version>, precondition: Precondition) -> bool {
    match precondition {
        Precondition::Any => true,
        Precondition::Absent => current.is_none(),
        Precondition::Version(v) => current == Some(v),
    }
}

#[async_trait]
impl TokenStore for MemoryTokenStore {
    fn capabilities(&self) -> StoreCapabilities {
        // Leases among this process's tasks only.
        StoreCapabilities::none()
            .with_leases(true)
            .with_pending_authorizations(true)
    }

    async fn get(&self, key: &TokenKey) -> Result<Option<Versioned<TokenSet>>> {
        Ok(self.state().tokens.get(key).cloned())
    }

    async fn get_many(
        &self,
        keys: &[TokenKey],
    ) -> Result<Vec<Result<Option<Versioned<TokenSet>>>>> {
        let state = self.state();
        Ok(keys
            .iter()
            .map(|key| Ok(state.tokens.get(key).cloned()))
            .collect())
    }

    async fn put(
        &self,
        key: &TokenKey,
        tokens: &TokenSet,
        precondition: Precondition,
    ) -> Result<Version> {
        let mut state = self.state();
        let current = state.tokens.get(key).map(|v| v.version);
        if !holds(current, precondition) {
            return Err(conflict(key));
        }
        let version = loop {
            let candidate = Version::random();
            if Some(candidate) != current {
                break candidate;
            }
        };
        state.tokens.insert(
            key.clone(),
            Versioned {
                value: tokens.clone(),
                version,
            },
        );
        Ok(version)
    }

    async fn delete(&self, key: &TokenKey, precondition: Precondition) -> Result<bool> {
        let mut state = self.state();
        let current = state.tokens.get(key).map(|v| v.version);
        if !holds(current, precondition) {
            return Err(conflict(key));
        }
        Ok(state.tokens.remove(key).is_some())
    }

    async fn list(&self, filter: &KeyFilter) -> Result<Vec<TokenKey>> {
        Ok(self
            .state()
            .tokens
            .keys()
            .filter(|k| filter.matches(k))
            .cloned()
            .collect())
    }

    async fn try_lease(&self, key: &TokenKey, ttl: Duration) -> Result<Option<Lease>> {
        let mut state = self.state();
        let now = Instant::now();
        if let Some((_, expires)) = state.leases.get(key)
            && *expires > now
        {
            return Ok(None);
        }
        let lease = Lease::new_holder(key.clone());
        state
            .leases
            .insert(key.clone(), (lease.holder.clone(), now + ttl));
        Ok(Some(lease))
    }

    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<()> {
        let mut state = self.state();
        let now = Instant::now();
        match state.leases.get_mut(&lease.key) {
            // An expired lease nobody else took is still ours to renew.
            Some((holder, expires)) if *holder == lease.holder => {
                *expires = now + ttl;
                Ok(())
            }
            _ => Err(Error::LeaseLost {
                key: lease.key.to_string(),
            }),
        }
    }

    async fn release_lease(&self, lease: &Lease) -> Result<()> {
        let mut state = self.state();
        if state
            .leases
            .get(&lease.key)
            .is_some_and(|(holder, _)| *holder == lease.holder)
        {
            state.leases.remove(&lease.key);
        }
        Ok(())
    }

    async fn put_pending(&self, pending: &PendingAuthorization, ttl: Duration) -> Result<()> {
        let mut state = self.state();
        let now = Instant::now();
        // Forget what has expired, so abandoned flows do not accumulate.
        state.pending.retain(|_, (_, expires)| *expires > now);
        state
            .pending
            .insert(pending.state_hash(), (pending.clone(), now + ttl));
        Ok(())
    }

    async fn take_pending(&self, state_hash: &StateHash) -> Result<Option<PendingAuthorization>> {
        Ok(self.state().pending.remove(state_hash).map(|(p, _)| p))
    }
}
