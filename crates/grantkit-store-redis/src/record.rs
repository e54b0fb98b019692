//! The record of a grant, as one Redis string: `v2|<version>|<key parts><token set>`.
//!
//! One value, so a read is one `GET` and a write one `SET`. The key parts come
//! length-prefixed (`<len>:<bytes>` each for provider, client and account) so `list` can
//! recover a [`TokenKey`] from a scanned record without a hash lookup; the token set
//! follows in the core's versioned codec. The server writes the `v2|<version>|` prefix
//! (the version is decided in the compare-and-swap script); the client writes the rest.
//!
//! Format 1 was a hash (`v`, `d`, `p`, `c`, `a`). It is still read — a rolling upgrade
//! meets both — and rewritten as format 2 by the next write.

use grantkit_core::store::codec;
use grantkit_core::{TokenKey, TokenSet};

/// The client's part of a record: the length-prefixed key parts, then the token set in
/// the core's codec, written into one buffer.
pub(crate) fn payload(key: &TokenKey, tokens: &TokenSet) -> Vec<u8> {
    use std::io::Write as _;
    let parts = [&key.provider, &key.client, &key.account];
    let mut out = Vec::with_capacity(384 + parts.iter().map(|p| p.len() + 6).sum::<usize>());
    for part in parts {
        let _ = write!(out, "{}:", part.len());
        out.extend_from_slice(part.as_bytes());
    }
    codec::encode_token_set_into(tokens, &mut out);
    out
}

/// A record of format 2, borrowed from the bytes Redis returned.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Record<'a> {
    pub(crate) version: u64,
    /// Provider, client, account.
    pub(crate) parts: [&'a str; 3],
    /// The encoded token set.
    pub(crate) data: &'a [u8],
}

impl<'a> Record<'a> {
    /// Reads a record; the error says what is wrong with it.
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Self, &'static str> {
        let rest = bytes
            .strip_prefix(b"v2|")
            .ok_or("the record is not in a format this version reads")?;
        let (version, mut rest) = number_until(rest, b'|')?;
        if version == 0 {
            return Err("the record's version is not a positive integer");
        }
        let mut parts = [""; 3];
        for part in &mut parts {
            let (len, after) = number_until(rest, b':')?;
            let len = usize::try_from(len).map_err(|_| "a key part's length is too large")?;
            if after.len() < len {
                return Err("the record is cut short inside its key parts");
            }
            *part = std::str::from_utf8(&after[..len]).map_err(|_| "a key part is not UTF-8")?;
            rest = &after[len..];
        }
        Ok(Self {
            version,
            parts,
            data: rest,
        })
    }

    /// The grant the record belongs to.
    pub(crate) fn key(&self) -> TokenKey {
        let [provider, client, account] = self.parts;
        TokenKey::new(provider, client, account)
    }
}

/// A decimal number of at most 20 digits ending at `end`, and what follows `end`.
fn number_until(bytes: &[u8], end: u8) -> Result<(u64, &[u8]), &'static str> {
    let digits = bytes
        .iter()
        .position(|b| *b == end)
        .ok_or("the record is cut short")?;
    if digits == 0 || digits > 20 || !bytes[..digits].iter().all(u8::is_ascii_digit) {
        return Err("the record holds a malformed number");
    }
    let text = std::str::from_utf8(&bytes[..digits]).map_err(|_| "a malformed number")?;
    let number = text
        .parse()
        .map_err(|_| "the record holds a number out of range")?;
    Ok((number, &bytes[digits + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(version: &str, payload: &[u8]) -> Vec<u8> {
        let mut bytes = format!("v2|{version}|").into_bytes();
        bytes.extend_from_slice(payload);
        bytes
    }

    #[test]
    fn records_read_back_with_awkward_key_parts() {
        for key in [
            TokenKey::new("p", "c", "a"),
            TokenKey::new("prov|ider", "cli:ent", "12:acc{ount}|"),
            TokenKey::new("", "", ""),
            TokenKey::new("ünï", "çödé", "日本"),
        ] {
            let tokens = TokenSet::new(
                grantkit_core::AccessToken::new("a|1:b"),
                grantkit_core::GrantKind::Password,
            );
            let bytes = record("1733212345678901", &payload(&key, &tokens));
            let read = Record::parse(&bytes).unwrap();
            assert_eq!(read.version, 1_733_212_345_678_901);
            assert_eq!(read.key(), key);
            assert_eq!(read.data, codec::encode_token_set(&tokens).as_slice());
        }
    }

    #[test]
    fn damaged_records_are_refused_not_panicked_on() {
        let tokens = TokenSet::new(
            grantkit_core::AccessToken::new("t"),
            grantkit_core::GrantKind::Password,
        );
        let good = record("7", &payload(&TokenKey::new("p", "c", "a"), &tokens));
        for cut in 0..good.len() - 2 {
            let _ = Record::parse(&good[..cut]);
        }
        for bad in [
            &b"v1|7|1:p1:c1:a{}"[..],
            b"v2||1:p1:c1:a{}",
            b"v2|0|1:p1:c1:a{}",
            b"v2|x|1:p1:c1:a{}",
            b"v2|7|9:p1:c1:a",
            b"v2|7|1:p1:c",
            b"v2|99999999999999999999999|1:p1:c1:a{}",
            b"v2|7|1:\xff1:c1:a{}",
            b"",
        ] {
            assert!(
                Record::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
