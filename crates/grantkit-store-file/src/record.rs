//! The files' contents: small versioned JSON envelopes around core's
//! [`codec`](grantkit_core::store::codec) output.
//!
//! A token record holds its key (so `list` can read keys back and a file copied under
//! another name is recognised as foreign), the store version, and the token set as written by
//! the codec, byte for byte. Errors describe what is wrong without quoting the file.

use grantkit_core::store::codec::describe_json_error;
use grantkit_core::{
    Error, Result, TokenKey, TokenSet,
    store::{PendingAuthorization, StateHash, Version, codec},
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;

const TOKEN_FORMAT: &str = "grantkit.file_store.token";
const LEASE_FORMAT: &str = "grantkit.file_store.lease";
const PENDING_FORMAT: &str = "grantkit.file_store.pending";
/// The envelope version this build writes and the newest it reads.
pub(crate) const ENVELOPE_VERSION: u32 = 1;

/// Why a file could not be read as a record; never quotes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unreadable(pub(crate) String);

#[derive(Serialize, Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    format: Cow<'a, str>,
    version: u32,
}

#[derive(Serialize, Deserialize, PartialEq, Eq)]
struct KeyFields<'a> {
    #[serde(borrow)]
    provider: Cow<'a, str>,
    #[serde(borrow)]
    client: Cow<'a, str>,
    #[serde(borrow)]
    account: Cow<'a, str>,
}

impl<'a> KeyFields<'a> {
    fn of(key: &'a TokenKey) -> Self {
        Self {
            provider: Cow::Borrowed(&key.provider),
            client: Cow::Borrowed(&key.client),
            account: Cow::Borrowed(&key.account),
        }
    }

    fn to_key(&self) -> TokenKey {
        TokenKey::new(
            self.provider.as_ref(),
            self.client.as_ref(),
            self.account.as_ref(),
        )
    }
}

#[derive(Serialize, Deserialize)]
struct TokenEnvelope<'a> {
    format: Cow<'a, str>,
    version: u32,
    #[serde(borrow)]
    key: KeyFields<'a>,
    store_version: Cow<'a, str>,
    #[serde(borrow)]
    tokens: &'a RawValue,
}

#[derive(Serialize, Deserialize)]
struct LeaseEnvelope<'a> {
    format: Cow<'a, str>,
    version: u32,
    #[serde(borrow)]
    key: KeyFields<'a>,
    holder: Cow<'a, str>,
    expires_at_ms: u64,
    ttl_ms: u64,
}

#[derive(Serialize, Deserialize)]
struct PendingEnvelope<'a> {
    format: Cow<'a, str>,
    version: u32,
    state_hash: Cow<'a, str>,
    expires_at_ms: u64,
    #[serde(borrow)]
    pending: &'a RawValue,
}

fn check_header(bytes: &[u8], expected: &str) -> std::result::Result<(), Unreadable> {
    let header: Header<'_> = serde_json::from_slice(bytes).map_err(|e| {
        Unreadable(format!(
            "not a grantkit file store record: {}",
            describe_json_error(&e)
        ))
    })?;
    if header.format != expected {
        return Err(Unreadable(format!(
            "not a record of the kind `{expected}` (a foreign file)"
        )));
    }
    if header.version == 0 || header.version > ENVELOPE_VERSION {
        return Err(Unreadable(format!(
            "record version {} is not supported (this build reads 1 to {ENVELOPE_VERSION})",
            header.version
        )));
    }
    Ok(())
}

fn raw(bytes: Vec<u8>) -> Result<Box<RawValue>> {
    // The codec writes one JSON value with serde_json; refuse anything else rather than
    // store a record that cannot be read back.
    let text = String::from_utf8(bytes)
        .map_err(|e| Error::store("the codec produced a record that is not UTF-8", false, e))?;
    RawValue::from_string(text)
        .map_err(|e| Error::store("the codec produced a record that is not JSON", false, e))
}

fn version_text(version: Version) -> String {
    version.to_string()
}

fn parse_version(text: &str) -> std::result::Result<Version, Unreadable> {
    let value = (text.len() == 16)
        .then(|| u64::from_str_radix(text, 16).ok())
        .flatten()
        .filter(|v| *v != 0)
        .ok_or_else(|| Unreadable("the record's version is malformed".to_owned()))?;
    Ok(Version::from_u64(value))
}

/// Encodes a token record.
pub(crate) fn encode_token(key: &TokenKey, version: Version, tokens: &TokenSet) -> Result<Vec<u8>> {
    let payload = raw(codec::encode_token_set(tokens))?;
    let envelope = TokenEnvelope {
        format: Cow::Borrowed(TOKEN_FORMAT),
        version: ENVELOPE_VERSION,
        key: KeyFields::of(key),
        store_version: Cow::Owned(version_text(version)),
        tokens: &payload,
    };
    to_json(&envelope)
}

/// Re-encodes a token record with another version (the rare case where the version chosen
/// before taking the lock equals the stored one).
pub(crate) fn with_version(bytes: &[u8], version: Version) -> Result<Vec<u8>> {
    let mut envelope: TokenEnvelope<'_> = serde_json::from_slice(bytes)
        .map_err(|e| Error::store("re-encoding a record failed", false, e))?;
    envelope.store_version = Cow::Owned(version_text(version));
    to_json(&envelope)
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::store("encoding a record failed", false, e))
}

/// A token record read back.
pub(crate) struct TokenRecord {
    pub(crate) key: TokenKey,
    pub(crate) version: Version,
    pub(crate) tokens: TokenSet,
}

/// Decodes a token record completely.
pub(crate) fn decode_token(bytes: &[u8]) -> std::result::Result<TokenRecord, Unreadable> {
    let (key, version, payload) = decode_token_envelope(bytes)?;
    let tokens = codec::decode_token_set(payload.get().as_bytes())
        .map_err(|e| Unreadable(format!("the token set {e}")))?;
    Ok(TokenRecord {
        key,
        version,
        tokens,
    })
}

/// Decodes only a token record's key, for `list`.
pub(crate) fn decode_token_key(bytes: &[u8]) -> std::result::Result<TokenKey, Unreadable> {
    decode_token_envelope(bytes).map(|(key, _, _)| key)
}

fn decode_token_envelope(
    bytes: &[u8],
) -> std::result::Result<(TokenKey, Version, &RawValue), Unreadable> {
    check_header(bytes, TOKEN_FORMAT)?;
    let envelope: TokenEnvelope<'_> = serde_json::from_slice(bytes)
        .map_err(|e| Unreadable(format!("token record is {}", describe_json_error(&e))))?;
    let version = parse_version(&envelope.store_version)?;
    Ok((envelope.key.to_key(), version, envelope.tokens))
}

/// A lease record read back.
pub(crate) struct LeaseRecord {
    pub(crate) key: TokenKey,
    pub(crate) holder: String,
    pub(crate) expires_at_ms: u64,
    pub(crate) ttl_ms: u64,
}

impl LeaseRecord {
    /// Whether the lease is held at `now_ms`. A lease whose expiry lies further ahead than
    /// its TTL was written before the clock was set back; it counts as expired rather than
    /// blocking the key for as long as the clock jumped.
    pub(crate) fn is_held(&self, now_ms: u64) -> bool {
        now_ms < self.expires_at_ms && self.expires_at_ms - now_ms <= self.ttl_ms
    }
}

pub(crate) fn encode_lease(
    key: &TokenKey,
    holder: &str,
    expires_at_ms: u64,
    ttl_ms: u64,
) -> Result<Vec<u8>> {
    to_json(&LeaseEnvelope {
        format: Cow::Borrowed(LEASE_FORMAT),
        version: ENVELOPE_VERSION,
        key: KeyFields::of(key),
        holder: Cow::Borrowed(holder),
        expires_at_ms,
        ttl_ms,
    })
}

pub(crate) fn decode_lease(bytes: &[u8]) -> std::result::Result<LeaseRecord, Unreadable> {
    check_header(bytes, LEASE_FORMAT)?;
    let envelope: LeaseEnvelope<'_> = serde_json::from_slice(bytes)
        .map_err(|e| Unreadable(format!("lease record is {}", describe_json_error(&e))))?;
    Ok(LeaseRecord {
        key: envelope.key.to_key(),
        holder: envelope.holder.into_owned(),
        expires_at_ms: envelope.expires_at_ms,
        ttl_ms: envelope.ttl_ms,
    })
}

pub(crate) fn encode_pending(
    pending: &PendingAuthorization,
    expires_at_ms: u64,
) -> Result<Vec<u8>> {
    let payload = raw(codec::encode_pending(pending))?;
    to_json(&PendingEnvelope {
        format: Cow::Borrowed(PENDING_FORMAT),
        version: ENVELOPE_VERSION,
        state_hash: Cow::Owned(pending.state_hash().as_str().to_owned()),
        expires_at_ms,
        pending: &payload,
    })
}

/// Decodes a pending authorization stored under `hash`.
pub(crate) fn decode_pending(
    bytes: &[u8],
    hash: &StateHash,
) -> std::result::Result<PendingAuthorization, Unreadable> {
    check_header(bytes, PENDING_FORMAT)?;
    let envelope: PendingEnvelope<'_> = serde_json::from_slice(bytes)
        .map_err(|e| Unreadable(format!("pending record is {}", describe_json_error(&e))))?;
    let pending = codec::decode_pending(envelope.pending.get().as_bytes())
        .map_err(|e| Unreadable(format!("the pending authorization {e}")))?;
    if envelope.state_hash != hash.as_str() || pending.state_hash() != *hash {
        return Err(Unreadable(
            "the record belongs to another state (a foreign file)".to_owned(),
        ));
    }
    Ok(pending)
}

/// A pending record's store expiry, for sweeping.
pub(crate) fn pending_expiry(bytes: &[u8]) -> std::result::Result<u64, Unreadable> {
    check_header(bytes, PENDING_FORMAT)?;
    let envelope: PendingEnvelope<'_> = serde_json::from_slice(bytes)
        .map_err(|e| Unreadable(format!("pending record is {}", describe_json_error(&e))))?;
    Ok(envelope.expires_at_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use grantkit_core::{AccessToken, GrantKind, RefreshToken};

    fn tokens() -> TokenSet {
        TokenSet::new(
            AccessToken::new("at-secret-1"),
            GrantKind::AuthorizationCode,
        )
        .with_refresh_token(RefreshToken::new("rt-secret-1"))
    }

    #[test]
    fn token_records_round_trip_with_key_and_version() {
        let key = TokenKey::new("p", "c/\"x\"", "ünï {a}");
        let version = Version::from_u64(0x0123_4567_89ab_cdef);
        let bytes = encode_token(&key, version, &tokens()).unwrap();
        let record = decode_token(&bytes).unwrap();
        assert_eq!(record.key, key);
        assert_eq!(record.version, version);
        assert_eq!(record.tokens, tokens());
        assert_eq!(decode_token_key(&bytes).unwrap(), key);
        let other = Version::from_u64(7);
        assert_eq!(
            decode_token(&with_version(&bytes, other).unwrap())
                .unwrap()
                .version,
            other
        );
    }

    #[test]
    fn bad_records_are_described_without_quoting() {
        let key = TokenKey::new("p", "c", "a");
        let good = encode_token(&key, Version::from_u64(1), &tokens()).unwrap();
        let mut value: serde_json::Value = serde_json::from_slice(&good).unwrap();
        value["tokens"]["expires_at_ms"] = "at-secret-1".into();
        let bad = serde_json::to_vec(&value).unwrap();
        let err = decode_token(&bad).err().unwrap();
        assert!(!err.0.contains("at-secret-1"), "{}", err.0);

        value["version"] = 9.into();
        let err = decode_token(&serde_json::to_vec(&value).unwrap())
            .err()
            .unwrap();
        assert!(err.0.contains("version 9"), "{}", err.0);

        for bytes in [
            &b""[..],
            b"{",
            b"null",
            &good[..good.len() / 2],
            b"{\"format\":\"x\",\"version\":1}",
        ] {
            assert!(decode_token(bytes).is_err());
        }
        let lease = encode_lease(&key, "h", 1, 1).unwrap();
        assert!(decode_token(&lease).err().unwrap().0.contains("foreign"));
    }

    #[test]
    fn leases_count_as_expired_after_a_clock_step_back() {
        let lease = LeaseRecord {
            key: TokenKey::new("p", "c", "a"),
            holder: "h".into(),
            expires_at_ms: 10_000,
            ttl_ms: 1_000,
        };
        assert!(lease.is_held(9_500));
        assert!(!lease.is_held(10_000));
        assert!(!lease.is_held(5_000), "expiry further ahead than the TTL");
    }
}
