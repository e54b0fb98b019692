//! The sealed text of a record, `gk1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>`, and
//! the associated data that binds it to the place it is stored under.
//!
//! XChaCha20-Poly1305 with a random 24-byte nonce per seal: random nonces of that size never
//! repeat in practice, so a key needs no counter shared between processes.

use crate::key::{Keyring, SealingKey, is_valid_id};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::{AeadInPlace as _, Tag, XNonce};
use grantkit_core::store::StateHash;
use grantkit_core::{Error, Result, TokenKey};
use rand::RngCore as _;
use zeroize::Zeroizing;

/// The format tag that starts every sealed text.
const FORMAT: &str = "gk1";

/// The nonce's length: XChaCha20's 192 bits.
const NONCE_LEN: usize = 24;

/// The Poly1305 tag's length.
const TAG_LEN: usize = 16;

/// What the associated data of a token set starts with.
const TOKEN_SET_DOMAIN: &[u8] = b"grantkit.token_set\0";

/// What the associated data of a pending authorization starts with.
const PENDING_DOMAIN: &[u8] = b"grantkit.pending\0";

/// The associated data of the token set stored under `key`: a domain, then each key part
/// as its length (u64, big-endian) and its bytes, so that no two keys share it.
pub(crate) fn token_set_aad(key: &TokenKey) -> Vec<u8> {
    let parts = [&key.provider, &key.client, &key.account];
    let len = TOKEN_SET_DOMAIN.len() + parts.iter().map(|p| 8 + p.len()).sum::<usize>();
    let mut aad = Vec::with_capacity(len);
    aad.extend_from_slice(TOKEN_SET_DOMAIN);
    for part in parts {
        aad.extend_from_slice(&(part.len() as u64).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

/// The associated data of the pending authorization whose state hashes to `state_hash`.
pub(crate) fn pending_aad(state_hash: &StateHash) -> Vec<u8> {
    let hash = state_hash.as_str().as_bytes();
    let mut aad = Vec::with_capacity(PENDING_DOMAIN.len() + hash.len());
    aad.extend_from_slice(PENDING_DOMAIN);
    aad.extend_from_slice(hash);
    aad
}

/// Seals `plaintext` with `key`, bound to `aad`, as `gk1.<key id>.<base64url>`.
pub(crate) fn seal(key: &SealingKey, plaintext: &[u8], aad: &[u8]) -> Result<String> {
    // Sized for nonce, plaintext and tag at once: no reallocation leaves a copy of the
    // plaintext behind, and what the buffer held is zeroed when it is dropped.
    let mut sealed = Zeroizing::new(Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN));
    sealed.resize(NONCE_LEN, 0);
    rand::rng().fill_bytes(&mut sealed[..NONCE_LEN]);
    sealed.extend_from_slice(plaintext);
    let (nonce, body) = sealed.split_at_mut(NONCE_LEN);
    let tag = key
        .cipher()
        .encrypt_in_place_detached(XNonce::from_slice(nonce), aad, body)
        // The only refusal is a message longer than 256 GiB.
        .map_err(|_| Error::Store {
            message: "the record is too large to seal".to_owned(),
            retryable: false,
            source: None,
        })?;
    sealed.extend_from_slice(tag.as_slice());

    let encoded_len = (sealed.len() * 4).div_ceil(3);
    let mut text = String::with_capacity(FORMAT.len() + 2 + key.id().len() + encoded_len);
    text.push_str(FORMAT);
    text.push('.');
    text.push_str(key.id());
    text.push('.');
    URL_SAFE_NO_PAD.encode_string(sealed.as_slice(), &mut text);
    Ok(text)
}

/// Opens a sealed text with the key of `keys` it names, checking it against `aad`.
/// Returns the plaintext in a buffer that is zeroed when dropped.
pub(crate) fn open(
    keys: &Keyring,
    text: &str,
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    let (id, payload) = split(text)?;
    let key = keys
        .get(id)
        .ok_or_else(|| OpenError::UnknownKey(id.to_owned()))?;
    let decoded = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| OpenError::Malformed("its sealed data is not base64url"))?;
    let mut data = Zeroizing::new(decoded);
    if data.len() < NONCE_LEN + TAG_LEN {
        return Err(OpenError::Malformed("its sealed data is too short"));
    }
    let end = data.len() - TAG_LEN;
    let (nonce, rest) = data.split_at_mut(NONCE_LEN);
    let (body, tag) = rest.split_at_mut(end - NONCE_LEN);
    key.cipher()
        .decrypt_in_place_detached(XNonce::from_slice(nonce), aad, body, Tag::from_slice(tag))
        .map_err(|_| OpenError::DoesNotOpen)?;
    // Keep the plaintext alone, within the same allocation.
    data.copy_within(NONCE_LEN..end, 0);
    data.truncate(end - NONCE_LEN);
    Ok(data)
}

/// The id of the key that sealed `text`, or `None` when it is not sealed text.
pub(crate) fn sealed_key_id(text: &str) -> Option<&str> {
    split(text).ok().map(|(id, _)| id)
}

/// Splits sealed text into its key id and its base64url payload.
fn split(text: &str) -> Result<(&str, &str), OpenError> {
    let Some(rest) = text
        .strip_prefix(FORMAT)
        .and_then(|rest| rest.strip_prefix('.'))
    else {
        return Err(if is_other_format(text) {
            OpenError::OtherFormat
        } else {
            OpenError::NotSealed
        });
    };
    let (id, payload) = rest.split_once('.').ok_or(OpenError::Malformed(
        "it lacks its key id or its sealed data",
    ))?;
    if !is_valid_id(id) {
        return Err(OpenError::Malformed(
            "its key id is not 1 to 32 characters of A-Z, a-z, 0-9, `_` and `-`",
        ));
    }
    Ok((id, payload))
}

/// Whether `text` looks sealed in another format than this build writes (`gk2.…`).
fn is_other_format(text: &str) -> bool {
    text.split_once('.')
        .and_then(|(tag, _)| tag.strip_prefix("gk"))
        .is_some_and(|n| (1..=4).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Why a sealed text did not open. Never quotes the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum OpenError {
    /// It is not sealed text at all: written without the layer.
    NotSealed,
    /// It is sealed in a format this build does not read.
    OtherFormat,
    /// It starts as sealed text but is not well formed.
    Malformed(&'static str),
    /// It names a key the keyring does not hold (key ids are not secret).
    UnknownKey(String),
    /// Authentication failed: tampered, moved to another key, or sealed by another key
    /// with the same id.
    DoesNotOpen,
}

impl OpenError {
    /// The reason for a [`CorruptRecord`](grantkit_core::Error::CorruptRecord).
    pub(crate) fn reason(&self) -> String {
        match self {
            Self::NotSealed => {
                "the record is not sealed (it was written without the encryption layer)".to_owned()
            }
            Self::OtherFormat => {
                "the record is sealed in a format this build does not read (written by a newer \
                 version)"
                    .to_owned()
            }
            Self::Malformed(what) => format!("the sealed record is malformed: {what}"),
            Self::UnknownKey(id) => format!(
                "the record is sealed with key `{id}`, which is not in this store's keyring"
            ),
            Self::DoesNotOpen => "the record does not open with this store's keys (tampered, or \
                                  written under another key)"
                .to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring(id: &str) -> Keyring {
        Keyring::new(SealingKey::generate(id).unwrap())
    }

    #[test]
    fn sealed_text_names_the_key_and_round_trips() {
        let keys = keyring("2026-12");
        let plaintext = b"{\"access_token\":\"secret\"}";
        let sealed = seal(keys.primary(), plaintext, b"aad").unwrap();
        let payload = sealed
            .strip_prefix("gk1.2026-12.")
            .expect("the format and key id");
        let expected_len = ((NONCE_LEN + plaintext.len() + TAG_LEN) * 4).div_ceil(3);
        assert_eq!(payload.len(), expected_len);
        assert!(
            payload
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert!(!sealed.contains("secret"));
        assert_eq!(sealed_key_id(&sealed), Some("2026-12"));
        assert_eq!(open(&keys, &sealed, b"aad").unwrap().as_slice(), plaintext);
        // An empty plaintext seals too.
        let empty = seal(keys.primary(), b"", b"").unwrap();
        assert!(open(&keys, &empty, b"").unwrap().is_empty());
    }

    #[test]
    fn every_seal_has_its_own_nonce() {
        let keys = keyring("k");
        let a = seal(keys.primary(), b"same", b"aad").unwrap();
        let b = seal(keys.primary(), b"same", b"aad").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn other_associated_data_or_another_key_does_not_open() {
        let keys = keyring("k");
        let sealed = seal(keys.primary(), b"plaintext", b"aad").unwrap();
        assert_eq!(open(&keys, &sealed, b"aae"), Err(OpenError::DoesNotOpen));
        assert_eq!(open(&keys, &sealed, b""), Err(OpenError::DoesNotOpen));
        // Another key under the same id.
        assert_eq!(
            open(&keyring("k"), &sealed, b"aad"),
            Err(OpenError::DoesNotOpen)
        );
        // A key the keyring does not hold is named.
        let err = open(&keyring("other"), &sealed, b"aad").unwrap_err();
        assert_eq!(err, OpenError::UnknownKey("k".to_owned()));
        assert!(err.reason().contains("`k`"));
    }

    #[test]
    fn every_changed_character_is_detected() {
        let keys = keyring("k");
        let sealed = seal(keys.primary(), b"plaintext", b"aad").unwrap();
        let start = "gk1.k.".len();
        for at in start..sealed.len() {
            let mut changed = sealed.clone().into_bytes();
            changed[at] = if changed[at] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(changed).unwrap();
            assert!(open(&keys, &changed, b"aad").is_err(), "position {at}");
        }
    }

    #[test]
    fn hostile_text_is_refused_without_panicking_or_quoting_it() {
        let keys = keyring("k");
        let long_id = format!("gk1.{}.AAAA", "x".repeat(100));
        let short = format!("gk1.k.{}", URL_SAFE_NO_PAD.encode([0u8; 39]));
        let cases: [(&str, OpenError); 12] = [
            ("", OpenError::NotSealed),
            ("a plain access token", OpenError::NotSealed),
            ("gk1", OpenError::NotSealed),
            ("gk1k.AAAA", OpenError::NotSealed),
            ("gk2.k.AAAA", OpenError::OtherFormat),
            (
                "gk1.k",
                OpenError::Malformed("it lacks its key id or its sealed data"),
            ),
            (
                "gk1..AAAA",
                OpenError::Malformed(
                    "its key id is not 1 to 32 characters of A-Z, a-z, 0-9, `_` and `-`",
                ),
            ),
            (
                &long_id,
                OpenError::Malformed(
                    "its key id is not 1 to 32 characters of A-Z, a-z, 0-9, `_` and `-`",
                ),
            ),
            ("gk1.nokey.AAAA", OpenError::UnknownKey("nokey".to_owned())),
            (
                "gk1.k.!!!!",
                OpenError::Malformed("its sealed data is not base64url"),
            ),
            (
                "gk1.k.AAAA====",
                OpenError::Malformed("its sealed data is not base64url"),
            ),
            (&short, OpenError::Malformed("its sealed data is too short")),
        ];
        for (text, expected) in cases {
            let err = open(&keys, text, b"aad").unwrap_err();
            assert_eq!(err, expected, "{text:?}");
            if text.len() > 8 {
                assert!(!err.reason().contains(text), "{}", err.reason());
            }
        }
        // Exactly nonce and tag, nothing sealed inside: it parses, and fails to open.
        let bare = format!("gk1.k.{}", URL_SAFE_NO_PAD.encode([0u8; 40]));
        assert_eq!(open(&keys, &bare, b"aad"), Err(OpenError::DoesNotOpen));
    }

    #[test]
    fn associated_data_tells_every_key_apart() {
        let pairs = [
            (TokenKey::new("p", "ab", "c"), TokenKey::new("p", "a", "bc")),
            (TokenKey::new("p", "a", ""), TokenKey::new("p", "", "a")),
            (TokenKey::new("p:c", "", "a"), TokenKey::new("p", "c", "a")),
        ];
        for (a, b) in pairs {
            assert_ne!(token_set_aad(&a), token_set_aad(&b), "{a} and {b}");
        }
        let key = TokenKey::new("p", "c", "a");
        let mut expected = b"grantkit.token_set\0".to_vec();
        for part in ["p", "c", "a"] {
            expected.extend_from_slice(&1u64.to_be_bytes());
            expected.extend_from_slice(part.as_bytes());
        }
        assert_eq!(token_set_aad(&key), expected);

        let hash = grantkit_core::store::StateToken::new("state").hash();
        let aad = pending_aad(&hash);
        assert_eq!(&aad[..PENDING_DOMAIN.len()], b"grantkit.pending\0");
        assert_eq!(&aad[PENDING_DOMAIN.len()..], hash.as_str().as_bytes());
        assert_ne!(aad, token_set_aad(&key));
    }
}
