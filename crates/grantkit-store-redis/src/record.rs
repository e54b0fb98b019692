//! The record of a grant, as one Redis string: `v3|<version>|<key parts><token set>`.
//!
//! One value, so a read is one `GET` and a write one `SET`. The key parts come
//! length-prefixed (`<len>:<bytes>` each for provider, client and account) so `list` can
//! recover a [`TokenKey`] from a scanned record without a hash lookup; the token set
//! follows in a compact binary form ([postcard](https://docs.rs/postcard): strings with
//! their length, numbers as varints), which reads several times faster than JSON. A write
//! that replaces a known version sends the whole record; the other writes send all but the
//! `v3|<version>|` prefix, which the compare-and-swap script adds once it has decided the
//! version.
//!
//! Earlier formats are still read — a rolling upgrade meets them — and rewritten as format 3
//! by the next write: format 2 was this layout with the token set in the core's JSON codec;
//! format 1 a hash (`v`, `d`, `p`, `c`, `a`).

use grantkit_core::store::codec;
use grantkit_core::{TokenKey, TokenSet};

/// The prefix of a record this version writes.
pub(crate) const FORMAT_PREFIX: &str = "v3|";

/// The client's part of a record: the length-prefixed key parts, then the token set, in
/// one buffer.
pub(crate) fn payload(key: &TokenKey, tokens: &TokenSet) -> Vec<u8> {
    let mut out = Vec::with_capacity(buffer_size(key));
    write_payload(&mut out, key, tokens);
    out
}

/// A whole record of `version`: what a write that replaces a known version sends.
pub(crate) fn whole(version: u64, key: &TokenKey, tokens: &TokenSet) -> Vec<u8> {
    use std::io::Write as _;
    let mut out = Vec::with_capacity(buffer_size(key) + 24);
    let _ = write!(out, "{FORMAT_PREFIX}{version}|");
    write_payload(&mut out, key, tokens);
    out
}

fn buffer_size(key: &TokenKey) -> usize {
    256 + key.provider.len() + key.client.len() + key.account.len() + 18
}

fn write_payload(out: &mut Vec<u8>, key: &TokenKey, tokens: &TokenSet) {
    use std::io::Write as _;
    for part in [&key.provider, &key.client, &key.account] {
        let _ = write!(out, "{}:", part.len());
        out.extend_from_slice(part.as_bytes());
    }
    codec::encode_token_set_compact_into(tokens, out);
}

/// How the token set in a record is encoded.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Data<'a> {
    /// Format 3: the core codec's compact form.
    Compact(&'a [u8]),
    /// Format 2: the core's JSON codec.
    Json(&'a [u8]),
}

/// A record of format 2 or 3, borrowed from the bytes Redis returned.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Record<'a> {
    pub(crate) version: u64,
    /// Provider, client, account, as stored (UTF-8 is checked by [`key`](Self::key); a
    /// reader comparing them with its own key needs no check).
    pub(crate) parts: [&'a [u8]; 3],
    /// The encoded token set.
    pub(crate) data: Data<'a>,
}

impl<'a> Record<'a> {
    /// Reads a record; the error says what is wrong with it.
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Self, &'static str> {
        let (compact, rest) = if let Some(rest) = bytes.strip_prefix(FORMAT_PREFIX.as_bytes()) {
            (true, rest)
        } else if let Some(rest) = bytes.strip_prefix(b"v2|") {
            (false, rest)
        } else {
            return Err("the record is not in a format this version reads");
        };
        let (version, mut rest) = number_until(rest, b'|')?;
        if version == 0 {
            return Err("the record's version is not a positive integer");
        }
        let mut parts: [&[u8]; 3] = [b""; 3];
        for part in &mut parts {
            let (len, after) = number_until(rest, b':')?;
            let len = usize::try_from(len).map_err(|_| "a key part's length is too large")?;
            if after.len() < len {
                return Err("the record is cut short inside its key parts");
            }
            *part = &after[..len];
            rest = &after[len..];
        }
        Ok(Self {
            version,
            parts,
            data: if compact {
                Data::Compact(rest)
            } else {
                Data::Json(rest)
            },
        })
    }

    /// The grant the record belongs to.
    pub(crate) fn key(&self) -> Result<TokenKey, &'static str> {
        let text = |part| std::str::from_utf8(part).map_err(|_| "a key part is not UTF-8");
        let [provider, client, account] = self.parts;
        Ok(TokenKey::new(
            text(provider)?,
            text(client)?,
            text(account)?,
        ))
    }

    /// Whether the record belongs to `key`.
    pub(crate) fn is_of(&self, key: &TokenKey) -> bool {
        self.parts
            == [
                key.provider.as_bytes(),
                key.client.as_bytes(),
                key.account.as_bytes(),
            ]
    }

    /// The token set the record holds.
    pub(crate) fn tokens(&self) -> Result<TokenSet, String> {
        match self.data {
            Data::Json(bytes) => codec::decode_token_set(bytes).map_err(|e| e.to_string()),
            Data::Compact(bytes) => {
                codec::decode_token_set_compact(bytes).map_err(|e| e.to_string())
            }
        }
    }
}

/// A decimal number of at most 20 digits ending at `end`, and what follows `end`. One pass:
/// a read parses four of these.
fn number_until(bytes: &[u8], end: u8) -> Result<(u64, &[u8]), &'static str> {
    let mut number: u64 = 0;
    for (at, &byte) in bytes.iter().enumerate() {
        if byte == end {
            return match at {
                0 => Err("the record holds a malformed number"),
                _ => Ok((number, &bytes[at + 1..])),
            };
        }
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 || at == 20 {
            return Err("the record holds a malformed number");
        }
        number = number
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(digit)))
            .ok_or("the record holds a number out of range")?;
    }
    Err("the record is cut short")
}

#[cfg(test)]
mod tests {
    use super::*;
    use grantkit_core::{AccessToken, GrantKind, RefreshToken};
    use std::time::{Duration, UNIX_EPOCH};

    fn full_tokens() -> TokenSet {
        let now = UNIX_EPOCH + Duration::from_millis(1_733_212_345_678);
        let mut tokens = TokenSet::new(AccessToken::new("a|1:b ✓"), GrantKind::AuthorizationCode)
            .with_refresh_token(RefreshToken::new("refresh"))
            .with_scopes(["user_info", "scheduler", "ü"])
            .with_extra("user_uri", "https://api.example/users/1")
            .with_extra("ä", "")
            .expiring_in(now, Duration::from_secs(3600));
        tokens.refresh_expires_at = Some(now + Duration::from_secs(86_400));
        tokens.token_type = "mac".to_owned();
        tokens
    }

    #[test]
    fn records_read_back_every_field_with_awkward_key_parts() {
        for key in [
            TokenKey::new("p", "c", "a"),
            TokenKey::new("prov|ider", "cli:ent", "12:acc{ount}|"),
            TokenKey::new("", "", ""),
            TokenKey::new("ünï", "çödé", "日本"),
        ] {
            for tokens in [
                full_tokens(),
                TokenSet::new(AccessToken::new("t"), GrantKind::Password),
            ] {
                let bytes = whole(1_733_212_345_678_901, &key, &tokens);
                let read = Record::parse(&bytes).unwrap();
                assert_eq!(read.version, 1_733_212_345_678_901);
                assert_eq!(read.key(), Ok(key.clone()));
                assert!(read.is_of(&key));
                assert!(read.tokens().unwrap() == tokens, "{key}: {tokens:?}");
            }
        }
    }

    #[test]
    fn numbers_are_read_to_the_limits_of_u64() {
        assert_eq!(
            number_until(b"18446744073709551615|rest", b'|'),
            Ok((u64::MAX, &b"rest"[..]))
        );
        assert_eq!(number_until(b"0|", b'|'), Ok((0, &b""[..])));
        for bad in [
            &b"18446744073709551616|"[..],
            b"000000000000000000001|",
            b"|",
            b"1",
            b"",
            b"1a|",
            b"-1|",
        ] {
            assert!(
                number_until(bad, b'|').is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn records_of_format_two_are_still_read() {
        let key = TokenKey::new("p", "c", "a");
        let tokens = full_tokens();
        let mut bytes = b"v2|7|1:p1:c1:a".to_vec();
        bytes.extend_from_slice(&codec::encode_token_set(&tokens));
        let read = Record::parse(&bytes).unwrap();
        assert_eq!((read.version, read.key()), (7, Ok(key)));
        assert!(read.tokens().unwrap() == tokens);
    }

    #[test]
    fn damaged_records_are_refused_not_panicked_on() {
        let good = whole(7, &TokenKey::new("p", "c", "a"), &full_tokens());
        let payload_at = good.len() - payload(&TokenKey::new("p", "c", "a"), &full_tokens()).len();
        for cut in 0..good.len() {
            // Every cut is refused, whether by the layout or by the token set.
            let refused = Record::parse(&good[..cut]).and_then(|r| {
                r.tokens().map_err(|_| "bad token set")?;
                Ok(())
            });
            assert!(refused.is_err(), "a record cut at {cut} was read");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(Record::parse(&trailing).unwrap().tokens().is_err());
        let mut flipped = good.clone();
        for byte in &mut flipped[payload_at + 14..] {
            *byte = 0xff;
        }
        assert!(Record::parse(&flipped).unwrap().tokens().is_err());
        let foreign = Record::parse(b"v3|7|1:\xff1:c1:a").unwrap();
        assert!(foreign.key().is_err(), "a key part that is not UTF-8");
        for bad in [
            &b"v1|7|1:p1:c1:a{}"[..],
            b"v3||1:p1:c1:a",
            b"v3|0|1:p1:c1:a",
            b"v2|x|1:p1:c1:a{}",
            b"v3|7|9:p1:c1:a",
            b"v3|7|1:p1:c",
            b"v3|99999999999999999999999|1:p1:c1:a",
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
