//! `EncryptedTokenStore`: the layer that seals records on their way into any store and
//! opens them on their way out, and the re-sealing that follows a key rotation.

use crate::key::Keyring;
use crate::seal::{self, OpenError};
use async_trait::async_trait;
use grantkit_core::provider::Extras;
use grantkit_core::store::{
    KeyFilter, Lease, PendingAuthorization, Precondition, StateHash, StateToken, StoreCapabilities,
    Version, Versioned, codec,
};
use grantkit_core::{AccessToken, Error, Result, TokenKey, TokenSet, TokenStore};
use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use zeroize::Zeroizing;

/// The token type of a carrier: says what the record is to anyone reading the inner store.
const CARRIER_TOKEN_TYPE: &str = "sealed";

/// The extra of a pending authorization's carrier that holds the sealed text.
const SEALED_EXTRA: &str = "grantkit.sealed";

/// What a pending authorization's carrier state is made of, before the real state's hash.
const CARRIER_STATE_PREFIX: &str = "sealed:";

/// A [`TokenStore`] layer that seals every token set and pending authorization with
/// XChaCha20-Poly1305 before the inner store sees it, so the inner store's bytes hold no
/// access token, refresh token, PKCE verifier or state.
///
/// The inner store keeps a *carrier* in place of each record: a token set whose access
/// token is the sealed text of the real one, or a pending authorization whose extras hold
/// it. What a store may need stays in clear: a token set's expiry times and grant kind (the
/// Redis store sets a record's TTL from them), a pending authorization's provider, client,
/// flow and times. Versions, preconditions, `list`, leases and capabilities are the inner
/// store's own.
///
/// A record is bound to its key: a sealed record moved under another key, or changed in
/// any way, is [`Error::CorruptRecord`] naming the key it was read under.
///
/// `Debug` shows the inner store and the key ids, never a key.
pub struct EncryptedTokenStore<S> {
    inner: S,
    keys: Keyring,
}

/// What [`EncryptedTokenStore::reseal`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResealReport {
    /// Records sealed again with the primary key.
    pub resealed: usize,
    /// Records already sealed with the primary key, left as they were.
    pub already_current: usize,
    /// Records another writer changed or deleted between the read and the write (a writer
    /// seals with its own primary key): left to it. Run `reseal` again to cover any a
    /// writer with an older keyring sealed.
    pub raced: usize,
    /// Records that do not open with this store's keys (each logged as a `tracing` warning
    /// naming its key and why): left as they were.
    pub unreadable: usize,
}

impl<S: TokenStore> EncryptedTokenStore<S> {
    /// Seals what is written to `inner` with the primary key of `keys`, and opens what is
    /// read with whichever key of `keys` a record names.
    pub fn new(inner: S, keys: Keyring) -> Self {
        Self { inner, keys }
    }

    /// The inner store, which holds the carriers of the sealed records.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The inner store, giving up the layer.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The keys.
    pub fn keyring(&self) -> &Keyring {
        &self.keys
    }

    /// Seals again, with the primary key, every token set that `filter` lists and an older
    /// key sealed: the step of a key rotation after which the old key can be dropped.
    ///
    /// Each record is read and written back with the version it was read at, so a record
    /// another writer changes meanwhile is never overwritten (it counts as `raced`), and
    /// running `reseal` while the store is in use is safe. A record that does not open is
    /// left as it was and counted as `unreadable`. Pending authorizations are not re-sealed:
    /// they live minutes (10 by default), so keep an old key in the keyring that long after
    /// it stops being the primary.
    ///
    /// # Errors
    /// The inner store's errors, other than a record's own
    /// [`CorruptRecord`](Error::CorruptRecord) and a write's [`Conflict`](Error::Conflict).
    pub async fn reseal(&self, filter: &KeyFilter) -> Result<ResealReport> {
        let primary = self.keys.primary().id();
        let mut report = ResealReport::default();
        for key in self.inner.list(filter).await? {
            let stored = match self.inner.get(&key).await {
                Ok(Some(stored)) => stored,
                Ok(None) => {
                    report.raced += 1;
                    continue;
                }
                Err(err @ Error::CorruptRecord { .. }) => {
                    unreadable(&key, &err);
                    report.unreadable += 1;
                    continue;
                }
                Err(err) => return Err(err),
            };
            if seal::sealed_key_id(stored.value.access_token.expose_secret()) == Some(primary) {
                report.already_current += 1;
                continue;
            }
            let tokens = match self.open_token_set(&key, &stored.value) {
                Ok(tokens) => tokens,
                Err(err) => {
                    unreadable(&key, &err);
                    report.unreadable += 1;
                    continue;
                }
            };
            let carrier = self.seal_token_set(&key, &tokens)?;
            match self
                .inner
                .put(&key, &carrier, Precondition::Version(stored.version))
                .await
            {
                Ok(_) => report.resealed += 1,
                Err(Error::Conflict { .. }) => report.raced += 1,
                Err(err) => return Err(err),
            }
        }
        Ok(report)
    }

    /// The carrier of `tokens` under `key`: the sealed token set as its access token, and
    /// in clear only what stores may act on.
    fn seal_token_set(&self, key: &TokenKey, tokens: &TokenSet) -> Result<TokenSet> {
        let mut plaintext = Zeroizing::new(Vec::with_capacity(encoded_size_hint(tokens)));
        codec::encode_token_set_compact_into(tokens, &mut plaintext);
        let sealed = seal::seal(
            self.keys.primary(),
            plaintext.as_slice(),
            &seal::token_set_aad(key),
        )?;
        Ok(TokenSet {
            access_token: AccessToken::new(sealed),
            // Stores look at the times, not at the refresh token, to expire a record (the
            // Redis store sets a TTL only from `refresh_expires_at` and `expires_at`), so the
            // carrier needs no stand-in refresh token to expire as the real record would.
            refresh_token: None,
            token_type: CARRIER_TOKEN_TYPE.to_owned(),
            expires_at: tokens.expires_at,
            refresh_expires_at: tokens.refresh_expires_at,
            obtained_at: tokens.obtained_at,
            scopes: Vec::new(),
            grant: tokens.grant,
            extras: Extras::new(),
        })
    }

    /// The token set a carrier read under `key` seals. The clear fields of the carrier are
    /// ignored: the sealed record holds every field.
    fn open_token_set(&self, key: &TokenKey, carrier: &TokenSet) -> Result<TokenSet> {
        let corrupt = |reason: String| Error::CorruptRecord {
            key: key.to_string(),
            reason,
        };
        let plaintext = seal::open(
            &self.keys,
            carrier.access_token.expose_secret(),
            &seal::token_set_aad(key),
        )
        .map_err(|err| corrupt(err.reason()))?;
        let tokens = codec::decode_token_set_compact(&plaintext)
            .map_err(|err| corrupt(format!("the sealed record opens, but {err}")))?;
        // The fields kept in clear for the inner store must say what the sealed record
        // says: a changed expiry would make a store drop (or keep) a grant wrongly.
        // Times compare to the millisecond, the precision of every store's records.
        let clear = (
            carrier.grant,
            millis(carrier.expires_at),
            millis(carrier.refresh_expires_at),
            millis(carrier.obtained_at),
        );
        let sealed = (
            tokens.grant,
            millis(tokens.expires_at),
            millis(tokens.refresh_expires_at),
            millis(tokens.obtained_at),
        );
        if clear != sealed {
            return Err(corrupt(
                "the record's fields in clear differ from its sealed fields (tampered)".to_owned(),
            ));
        }
        Ok(tokens)
    }

    fn open_versioned(
        &self,
        key: &TokenKey,
        stored: Versioned<TokenSet>,
    ) -> Result<Versioned<TokenSet>> {
        Ok(Versioned {
            value: self.open_token_set(key, &stored.value)?,
            version: stored.version,
        })
    }

    /// The carrier of `pending`: stored under a hash derived from the real state's hash
    /// alone, so [`take_pending`](TokenStore::take_pending) finds it from that hash.
    fn seal_pending(&self, pending: &PendingAuthorization) -> Result<PendingAuthorization> {
        let state_hash = pending.state_hash();
        // Sized so that writing never reallocates (which would leave a copy behind).
        let strings = pending.state.expose_secret().len()
            + pending
                .pkce_verifier
                .as_ref()
                .map_or(0, |v| v.expose_secret().len())
            + pending.provider.len()
            + pending.client.len()
            + pending.redirect_uri.len()
            + pending.scopes.iter().map(|s| s.len() + 3).sum::<usize>()
            + pending
                .extras
                .iter()
                .map(|(name, value)| name.len() + value.len() + 6)
                .sum::<usize>();
        // Field names and numbers take under 400 bytes; escaping at most sextuples a string.
        let mut plaintext = Zeroizing::new(Vec::with_capacity(400 + 6 * strings));
        codec::encode_pending_into(pending, &mut plaintext);
        let sealed = seal::seal(
            self.keys.primary(),
            plaintext.as_slice(),
            &seal::pending_aad(&state_hash),
        )?;
        let mut extras = BTreeMap::new();
        extras.insert(SEALED_EXTRA.to_owned(), sealed);
        Ok(PendingAuthorization {
            state: carrier_state(&state_hash),
            flow: pending.flow,
            provider: pending.provider.clone(),
            client: pending.client.clone(),
            redirect_uri: String::new(),
            scopes: Vec::new(),
            pkce_verifier: None,
            created_at: pending.created_at,
            expires_at: pending.expires_at,
            extras,
        })
    }

    /// The pending authorization a carrier taken for `state_hash` seals.
    fn open_pending(
        &self,
        state_hash: &StateHash,
        carrier: &PendingAuthorization,
    ) -> Result<PendingAuthorization> {
        let corrupt = |reason: String| Error::CorruptRecord {
            key: format!("pending authorization {state_hash}"),
            reason,
        };
        let sealed = carrier
            .extras
            .get(SEALED_EXTRA)
            .ok_or_else(|| corrupt(OpenError::NotSealed.reason()))?;
        let plaintext = seal::open(&self.keys, sealed, &seal::pending_aad(state_hash))
            .map_err(|err| corrupt(err.reason()))?;
        let pending = codec::decode_pending(&plaintext)
            .map_err(|err| corrupt(format!("the sealed record opens, but {err}")))?;
        if pending.state_hash() != *state_hash {
            return Err(corrupt(
                "the sealed record belongs to another state".to_owned(),
            ));
        }
        let clear = (
            carrier.flow,
            &carrier.provider,
            &carrier.client,
            millis(Some(carrier.created_at)),
            millis(Some(carrier.expires_at)),
        );
        let sealed = (
            pending.flow,
            &pending.provider,
            &pending.client,
            millis(Some(pending.created_at)),
            millis(Some(pending.expires_at)),
        );
        if clear != sealed {
            return Err(corrupt(
                "the record's fields in clear differ from its sealed fields (tampered)".to_owned(),
            ));
        }
        Ok(pending)
    }
}

/// A time in whole milliseconds since the epoch (before it: negative), as records keep it.
fn millis(time: Option<SystemTime>) -> Option<i128> {
    time.map(|t| match t.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_millis() as i128,
        Err(before) => -(before.duration().as_millis() as i128),
    })
}

/// The state of the carrier of the pending authorization whose state hashes to
/// `state_hash`: derived from the hash alone, so the real state stays sealed.
fn carrier_state(state_hash: &StateHash) -> StateToken {
    StateToken::new(format!("{CARRIER_STATE_PREFIX}{state_hash}"))
}

/// More than [`codec::encode_token_set_compact_into`] writes for `tokens`: the buffer
/// that holds the plaintext should never have to grow (and leave a copy behind).
fn encoded_size_hint(tokens: &TokenSet) -> usize {
    let secrets = tokens.access_token.expose_secret().len()
        + tokens
            .refresh_token
            .as_ref()
            .map_or(0, |token| token.expose_secret().len());
    let scopes: usize = tokens.scopes.iter().map(|s| s.len() + 3).sum();
    let extras: usize = tokens
        .extras
        .iter()
        .map(|(name, value)| name.len() + value.len() + 6)
        .sum();
    // Field names and numbers take under 320 bytes; escaping may double the strings.
    320 + tokens.token_type.len() + 2 * (secrets + scopes + extras)
}

fn unreadable(key: &TokenKey, err: &Error) {
    tracing::warn!(key = %key, error = %err, "a token set was not re-sealed: it does not open");
}

impl<S: fmt::Debug> fmt::Debug for EncryptedTokenStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedTokenStore")
            .field("inner", &self.inner)
            .field("keys", &self.keys)
            .finish()
    }
}

#[async_trait]
impl<S: TokenStore> TokenStore for EncryptedTokenStore<S> {
    fn capabilities(&self) -> StoreCapabilities {
        self.inner.capabilities()
    }

    async fn get(&self, key: &TokenKey) -> Result<Option<Versioned<TokenSet>>> {
        self.inner
            .get(key)
            .await?
            .map(|stored| self.open_versioned(key, stored))
            .transpose()
    }

    async fn get_many(
        &self,
        keys: &[TokenKey],
    ) -> Result<Vec<Result<Option<Versioned<TokenSet>>>>> {
        let answers = self.inner.get_many(keys).await?;
        if answers.len() != keys.len() {
            return Err(Error::Store {
                message: format!(
                    "the inner store answered {} keys with {} answers",
                    keys.len(),
                    answers.len()
                ),
                retryable: false,
                source: None,
            });
        }
        Ok(keys
            .iter()
            .zip(answers)
            .map(|(key, answer)| {
                answer.and_then(|found| {
                    found
                        .map(|stored| self.open_versioned(key, stored))
                        .transpose()
                })
            })
            .collect())
    }

    async fn put(
        &self,
        key: &TokenKey,
        tokens: &TokenSet,
        precondition: Precondition,
    ) -> Result<Version> {
        let carrier = self.seal_token_set(key, tokens)?;
        self.inner.put(key, &carrier, precondition).await
    }

    async fn delete(&self, key: &TokenKey, precondition: Precondition) -> Result<bool> {
        self.inner.delete(key, precondition).await
    }

    async fn list(&self, filter: &KeyFilter) -> Result<Vec<TokenKey>> {
        self.inner.list(filter).await
    }

    async fn try_lease(&self, key: &TokenKey, ttl: Duration) -> Result<Option<Lease>> {
        self.inner.try_lease(key, ttl).await
    }

    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<()> {
        self.inner.renew_lease(lease, ttl).await
    }

    async fn release_lease(&self, lease: &Lease) -> Result<()> {
        self.inner.release_lease(lease).await
    }

    async fn put_pending(&self, pending: &PendingAuthorization, ttl: Duration) -> Result<()> {
        let carrier = self.seal_pending(pending)?;
        self.inner.put_pending(&carrier, ttl).await
    }

    async fn take_pending(&self, state_hash: &StateHash) -> Result<Option<PendingAuthorization>> {
        let carrier_hash = carrier_state(state_hash).hash();
        match self.inner.take_pending(&carrier_hash).await? {
            Some(carrier) => self.open_pending(state_hash, &carrier).map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SealingKey;
    use grantkit_core::{GrantKind, RefreshToken};
    use std::time::{SystemTime, UNIX_EPOCH};

    fn store() -> EncryptedTokenStore<grantkit_core::MemoryTokenStore> {
        EncryptedTokenStore::new(
            grantkit_core::MemoryTokenStore::new(),
            Keyring::new(SealingKey::generate("k1").unwrap()),
        )
    }

    fn at_ms(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn a_carrier_keeps_the_times_and_grant_in_clear_and_nothing_else() {
        let store = store();
        let key = TokenKey::new("p", "c", "a");
        let mut tokens = TokenSet::new(AccessToken::new("at-secret"), GrantKind::Password)
            .with_refresh_token(RefreshToken::new("rt-secret"))
            .with_scopes(["scope-a"])
            .with_extra("user_uri", "https://example.test/users/1");
        tokens.expires_at = Some(at_ms(1_900_000_000_000));
        tokens.refresh_expires_at = Some(at_ms(2_000_000_000_000));
        tokens.obtained_at = Some(at_ms(1_899_999_000_000));
        let carrier = store.seal_token_set(&key, &tokens).unwrap();
        assert!(carrier.access_token.expose_secret().starts_with("gk1.k1."));
        assert!(carrier.refresh_token.is_none());
        assert_eq!(carrier.token_type, "sealed");
        assert_eq!(
            (
                carrier.expires_at,
                carrier.refresh_expires_at,
                carrier.obtained_at
            ),
            (
                tokens.expires_at,
                tokens.refresh_expires_at,
                tokens.obtained_at
            )
        );
        assert_eq!(carrier.grant, GrantKind::Password);
        assert!(carrier.scopes.is_empty() && carrier.extras.is_empty());
        assert!(store.open_token_set(&key, &carrier).unwrap() == tokens);
    }

    #[test]
    fn the_size_hint_covers_the_encoded_record() {
        let tokens = TokenSet::new(AccessToken::new("a".repeat(2000)), GrantKind::Password)
            .with_refresh_token(RefreshToken::new("r".repeat(500)))
            .with_scopes(["x"; 40])
            .with_extra("name", "\"quoted\" value");
        let small = TokenSet::new(AccessToken::new("a"), GrantKind::Implicit);
        for tokens in [tokens, small] {
            let mut encoded = Vec::new();
            codec::encode_token_set_compact_into(&tokens, &mut encoded);
            assert!(encoded_size_hint(&tokens) >= encoded.len());
        }
    }

    #[test]
    fn a_carrier_state_depends_on_the_hash_alone() {
        let hash = StateToken::new("the real state").hash();
        let state = carrier_state(&hash);
        assert_eq!(state.expose_secret(), format!("sealed:{hash}"));
        assert_eq!(state.hash(), carrier_state(&hash).hash());
        assert_ne!(state.hash(), hash);
    }
}
