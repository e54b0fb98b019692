//! The key layout: which Redis keys hold a grant, its lease, its tombstone and the pending
//! authorizations.
//!
//! Key parts are never used verbatim: they may hold `{`, `}`, `*` or anything else, and a
//! `{` would move a Redis Cluster hash tag. Every key of one grant carries the same hash tag
//! derived from a SHA-256 of the length-prefixed key parts, so the record, its tombstone and
//! its lease live in one slot and a script may touch them together. The record keeps the
//! key parts themselves, which is how `list` recovers a [`TokenKey`] from a scanned key.

use grantkit_core::{
    Error, Result, TokenKey,
    store::{KeyFilter, StateHash},
};
use sha2::{Digest, Sha256};

/// The prefix used when none is configured.
pub(crate) const DEFAULT_PREFIX: &str = "grantkit:";

/// Builds the Redis keys of one store (one prefix).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyLayout {
    prefix: String,
}

/// The keys of one grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GrantKeys {
    /// The record: a string with the version, the key parts and the encoded token set.
    pub(crate) record: String,
    /// The last version of a deleted record, so a re-created record never reuses it.
    pub(crate) tombstone: String,
    /// The refresh lease: a string holding the holder id, with a PX expiry.
    pub(crate) lease: String,
    /// The Redis Cluster hash slot of all three (they share the hash tag).
    pub(crate) slot: u16,
}

impl KeyLayout {
    /// A layout under `prefix`, which must not contain `{` or `}` (they would change the
    /// hash tag of every key) or control characters.
    pub(crate) fn new(prefix: impl Into<String>) -> Result<Self> {
        let prefix = prefix.into();
        if prefix.contains(['{', '}']) {
            return Err(Error::configuration(
                "the Redis key prefix must not contain `{` or `}`: they would change the Redis Cluster hash tag of every key",
            ));
        }
        if prefix.chars().any(char::is_control) {
            return Err(Error::configuration(
                "the Redis key prefix must not contain control characters",
            ));
        }
        if prefix.len() > 256 {
            return Err(Error::configuration(
                "the Redis key prefix is longer than 256 bytes",
            ));
        }
        Ok(Self { prefix })
    }

    /// The prefix.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The keys of the grant `key`.
    pub(crate) fn grant(&self, key: &TokenKey) -> GrantKeys {
        let tag = tag(key);
        let record = self.record_with_tag(key, &tag);
        GrantKeys {
            slot: slot(&record),
            tombstone: format!("{}gone:{{{tag}}}", self.prefix),
            lease: format!("{}lease:{{{tag}}}", self.prefix),
            record,
        }
    }

    /// The record key of `key` alone: what a read needs.
    pub(crate) fn record(&self, key: &TokenKey) -> String {
        self.record_with_tag(key, &tag(key))
    }

    fn record_with_tag(&self, key: &TokenKey, tag: &str) -> String {
        format!(
            "{}tok:{}:{}:{{{tag}}}",
            self.prefix,
            provider_hash(&key.provider),
            client_hash(&key.provider, &key.client)
        )
    }

    /// The key of a pending authorization: the hash of its state, never the state.
    pub(crate) fn pending(&self, state_hash: &StateHash) -> String {
        format!("{}pending:{{{}}}", self.prefix, state_hash.as_str())
    }

    /// A `SCAN … MATCH` pattern for the records `filter` may match. The provider and
    /// client hashes narrow the scan on the server; the caller still compares the key parts
    /// read from each record, as the hashes are short.
    pub(crate) fn record_pattern(&self, filter: &KeyFilter) -> String {
        let mut pattern = glob_escape(&self.prefix);
        pattern.push_str("tok:");
        pattern.push_str(&provider_hash(&filter.provider));
        pattern.push(':');
        if let Some(client) = &filter.client {
            pattern.push_str(&client_hash(&filter.provider, client));
            pattern.push(':');
        }
        pattern.push('*');
        pattern
    }
}

/// The hash tag of a grant: 128 bits of SHA-256 over its key parts, in hex. Distinct
/// grants must never share it (they would share a record), hence a cryptographic hash.
fn tag(key: &TokenKey) -> String {
    hex::encode(&digest(&[&key.provider, &key.client, &key.account])[..16])
}

/// SHA-256 over length-prefixed parts, so that ("a:b", "c") and ("a", "b:c") differ.
fn digest(parts: &[&str]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().into()
}

fn provider_hash(provider: &str) -> String {
    format!("{:016x}", fnv1a(&["provider", provider]))
}

fn client_hash(provider: &str, client: &str) -> String {
    format!("{:016x}", fnv1a(&["client", provider, client]))
}

/// 64-bit FNV-1a over length-prefixed parts: the short provider and client hashes that
/// let `SCAN … MATCH` narrow a listing. They need to be stable, not collision-resistant
/// (`list` compares the stored key parts), and they are on every call's path, so they are
/// cheaper than the SHA-256 of the hash tag.
fn fnv1a(parts: &[&str]) -> u64 {
    let mut hash = FNV_OFFSET;
    for part in parts {
        hash = fnv1a_extend(hash, &(part.len() as u64).to_be_bytes());
        hash = fnv1a_extend(hash, part.as_bytes());
    }
    hash
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv1a_extend(mut hash: u64, bytes: &[u8]) -> u64 {
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Escapes the characters `SCAN … MATCH` treats as glob syntax.
fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^' | '-') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// The Redis Cluster hash slot of `key` (CRC16/XMODEM of the hash tag, mod 16384), as the
/// server computes it: what groups a batch of reads by the master that serves them.
pub(crate) fn slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let tagged = bytes.iter().position(|&b| b == b'{').and_then(|open| {
        let close = bytes[open + 1..].iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &bytes[open + 1..open + 1 + close])
    });
    crc16::State::<crc16::XMODEM>::calculate(tagged.unwrap_or(bytes)) % 16384
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> KeyLayout {
        KeyLayout::new(DEFAULT_PREFIX).unwrap()
    }

    #[test]
    fn crc16_matches_the_redis_cluster_specification() {
        // The reference value from the Redis Cluster specification.
        assert_eq!(slot("123456789"), 12739);
        assert_eq!(slot("{user1000}.following"), slot("{user1000}.followers"));
    }

    #[test]
    fn every_key_of_a_grant_shares_one_slot_whatever_the_account() {
        for account in ["plain", "{", "}", "}{", "{tag}", "a{b}c", "{}", "", "*?[]"] {
            let keys = layout().grant(&TokenKey::new("p{x}", "c}", account));
            let slots = [slot(&keys.record), slot(&keys.tombstone), slot(&keys.lease)];
            assert!(
                slots.iter().all(|s| *s == slots[0]),
                "{account:?}: {slots:?}"
            );
            for redis_key in [&keys.record, &keys.tombstone, &keys.lease] {
                assert_eq!(redis_key.matches('{').count(), 1, "{redis_key}");
                assert_eq!(redis_key.matches('}').count(), 1, "{redis_key}");
            }
        }
    }

    #[test]
    fn the_partial_key_functions_agree_with_grant() {
        let layout = layout();
        let key = TokenKey::new("p", "c", "a{b}");
        let all = layout.grant(&key);
        assert_eq!(layout.record(&key), all.record);
    }

    #[test]
    fn parts_split_differently_are_different_keys() {
        let a = layout().grant(&TokenKey::new("p", "a:b", "c"));
        let b = layout().grant(&TokenKey::new("p", "a", "b:c"));
        assert_ne!(a.record, b.record);
        assert_ne!(a.lease, b.lease);
    }

    #[test]
    fn key_parts_never_appear_in_keys() {
        let key = TokenKey::new("joindin", "my-client", "https://api.joind.in/v2.1/users/42");
        let keys = layout().grant(&key);
        for redis_key in [&keys.record, &keys.tombstone, &keys.lease] {
            assert!(!redis_key.contains("joindin") && !redis_key.contains("users/42"));
            assert!(redis_key.starts_with(DEFAULT_PREFIX));
        }
    }

    #[test]
    fn patterns_select_provider_and_client() {
        let layout = KeyLayout::new("app*[1]:").unwrap();
        let key = TokenKey::new("p", "c", "a");
        let record = layout.grant(&key).record;
        let by_provider = layout.record_pattern(&KeyFilter::provider("p"));
        let by_client = layout.record_pattern(&KeyFilter::provider("p").with_client("c"));
        assert!(by_provider.starts_with("app\\*\\[1\\]:tok:"));
        let unescaped = |p: &str| p.replace('\\', "");
        assert!(record.starts_with(unescaped(&by_provider).trim_end_matches('*')));
        assert!(record.starts_with(unescaped(&by_client).trim_end_matches('*')));
        let other = layout.record_pattern(&KeyFilter::provider("p").with_client("d"));
        assert!(!record.starts_with(unescaped(&other).trim_end_matches('*')));
    }

    #[test]
    fn fnv1a_matches_its_reference_values() {
        // Published 64-bit FNV-1a test vectors.
        assert_eq!(fnv1a_extend(FNV_OFFSET, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_extend(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_extend(FNV_OFFSET, b"foobar"), 0x8594_4171_f739_67e8);
        assert_ne!(fnv1a(&["ab", "c"]), fnv1a(&["a", "bc"]));
        assert_eq!(provider_hash("joindin").len(), 16);
    }

    #[test]
    fn pending_keys_use_the_state_hash() {
        let hash = StateHash::from_hex(&"ab".repeat(32)).unwrap();
        assert_eq!(
            layout().pending(&hash),
            format!("grantkit:pending:{{{}}}", "ab".repeat(32))
        );
    }

    #[test]
    fn prefixes_that_would_break_hash_tags_are_refused() {
        for bad in ["a{", "}", "x\ny"] {
            assert!(matches!(
                KeyLayout::new(bad),
                Err(Error::Configuration { .. })
            ));
        }
        assert!(KeyLayout::new("").is_ok());
        assert!(KeyLayout::new("tenant-7:grantkit:").is_ok());
    }
}
