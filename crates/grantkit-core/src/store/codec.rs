//! Explicit serialisation of token sets and pending authorizations for stores.
//!
//! Secrets never implement `Serialize`; this module is the one place that writes them out,
//! field by field, into a JSON document tagged with a format name and version. A reader
//! refuses a record of another kind or a newer version instead of guessing, and its errors
//! never quote the record (which holds tokens).
//!
//! Token sets also have a compact binary form ([`encode_token_set_compact_into`],
//! [`decode_token_set_compact`]: postcard, strings with their length and numbers as
//! varints), several times cheaper to read than JSON, for stores on a hot path that keep
//! their own format tag beside it.

use crate::flow::FlowKind;
use crate::pending::PendingAuthorization;
use crate::secret::{AccessToken, PkceVerifier, RefreshToken, StateToken};
use crate::token::{Extras, GrantKind, TokenSet};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The format version this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

const TOKEN_SET_FORMAT: &str = "grantkit.token_set";
const PENDING_FORMAT: &str = "grantkit.pending_authorization";

/// Why a stored record could not be read. Never quotes the record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError(String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
}

/// [`TokenSetRecord`] borrowed from a token set: what is written, field for field the
/// same, without copying a string.
#[derive(Serialize)]
struct TokenSetRecordRef<'a> {
    format: &'a str,
    version: u32,
    access_token: &'a str,
    refresh_token: Option<&'a str>,
    token_type: &'a str,
    expires_at_ms: Option<u64>,
    refresh_expires_at_ms: Option<u64>,
    obtained_at_ms: Option<u64>,
    scopes: &'a [String],
    grant: &'a str,
    extras: &'a Extras,
}

#[derive(Serialize, Deserialize)]
struct TokenSetRecord {
    format: String,
    version: u32,
    access_token: String,
    refresh_token: Option<String>,
    token_type: String,
    expires_at_ms: Option<u64>,
    refresh_expires_at_ms: Option<u64>,
    // Added within format 1: older records simply lack it.
    #[serde(default)]
    obtained_at_ms: Option<u64>,
    scopes: Vec<String>,
    grant: String,
    extras: Extras,
}

/// [`PendingRecord`] borrowed from a pending authorization: written without copying the
/// state or the PKCE verifier into strings that would be dropped without being zeroed.
#[derive(Serialize)]
struct PendingRecordRef<'a> {
    format: &'a str,
    version: u32,
    state: &'a str,
    flow: &'a str,
    provider: &'a str,
    client: &'a str,
    redirect_uri: &'a str,
    scopes: &'a [String],
    pkce_verifier: Option<&'a str>,
    created_at_ms: u64,
    expires_at_ms: u64,
    extras: &'a BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct PendingRecord {
    format: String,
    version: u32,
    state: String,
    flow: String,
    provider: String,
    client: String,
    redirect_uri: String,
    scopes: Vec<String>,
    pkce_verifier: Option<String>,
    created_at_ms: u64,
    expires_at_ms: u64,
    extras: BTreeMap<String, String>,
}

fn to_ms(time: SystemTime) -> u64 {
    // Times before 1970 do not occur in token lifetimes; clamp rather than fail.
    time.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn from_ms(ms: u64) -> Result<SystemTime, DecodeError> {
    UNIX_EPOCH
        .checked_add(Duration::from_millis(ms))
        .ok_or_else(|| DecodeError("record has a time out of range".to_owned()))
}

/// Describes a serde_json error by category and position only: its `Display` can quote
/// the offending value, which may be a token.
pub fn describe_json_error(err: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match err.classify() {
        Category::Io => "unreadable",
        Category::Syntax => "not valid JSON",
        Category::Data => "JSON of the wrong shape",
        Category::Eof => "truncated JSON",
    };
    format!("{what} (line {}, column {})", err.line(), err.column())
}

fn check_header(bytes: &[u8], expected: &str) -> Result<(), DecodeError> {
    let header: Header = serde_json::from_slice(bytes).map_err(|e| {
        DecodeError(format!(
            "not a grantkit record: {}",
            describe_json_error(&e)
        ))
    })?;
    check_format(&header.format, header.version, expected)
}

fn check_format(format: &str, version: u32, expected: &str) -> Result<(), DecodeError> {
    if format != expected {
        return Err(DecodeError(format!(
            "record of kind `{}` where `{expected}` was expected",
            format.chars().take(64).collect::<String>()
        )));
    }
    if version > FORMAT_VERSION || version == 0 {
        return Err(DecodeError(format!(
            "record format version {version} is not supported (this build reads 1 to {FORMAT_VERSION})"
        )));
    }
    Ok(())
}

/// Serialises a token set for storage.
pub fn encode_token_set(tokens: &TokenSet) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    encode_token_set_into(tokens, &mut out);
    out
}

/// [`encode_token_set`] appended to `out`: for stores that frame the record with data of
/// their own, without a second copy.
pub fn encode_token_set_into(tokens: &TokenSet, out: &mut Vec<u8>) {
    let record = TokenSetRecordRef {
        format: TOKEN_SET_FORMAT,
        version: FORMAT_VERSION,
        access_token: tokens.access_token.expose_secret(),
        refresh_token: tokens.refresh_token.as_ref().map(|t| t.expose_secret()),
        token_type: &tokens.token_type,
        expires_at_ms: tokens.expires_at.map(to_ms),
        refresh_expires_at_ms: tokens.refresh_expires_at.map(to_ms),
        obtained_at_ms: tokens.obtained_at.map(to_ms),
        scopes: &tokens.scopes,
        grant: tokens.grant.as_str(),
        extras: &tokens.extras,
    };
    serde_json::to_writer(out, &record).expect("a record of strings and numbers always serialises");
}

/// Reads a token set written by [`encode_token_set`].
pub fn decode_token_set(bytes: &[u8]) -> Result<TokenSet, DecodeError> {
    // One parse on the hot path; the header is only examined to explain a failure.
    let record: TokenSetRecord = match serde_json::from_slice(bytes) {
        Ok(record) => record,
        Err(err) => {
            check_header(bytes, TOKEN_SET_FORMAT)?;
            return Err(DecodeError(format!(
                "token set record is {}",
                describe_json_error(&err)
            )));
        }
    };
    check_format(&record.format, record.version, TOKEN_SET_FORMAT)?;
    let grant = GrantKind::parse(&record.grant)
        .ok_or_else(|| DecodeError("token set record has an unknown grant kind".to_owned()))?;
    Ok(TokenSet {
        access_token: AccessToken::new(record.access_token),
        refresh_token: record.refresh_token.map(RefreshToken::new),
        token_type: record.token_type,
        expires_at: record.expires_at_ms.map(from_ms).transpose()?,
        refresh_expires_at: record.refresh_expires_at_ms.map(from_ms).transpose()?,
        obtained_at: record.obtained_at_ms.map(from_ms).transpose()?,
        scopes: record.scopes,
        grant,
        extras: record.extras,
    })
}

/// A token set in the compact form, borrowed from the token set when written and from the
/// bytes when read. Its field order is the format: append fields only, at the end. The two
/// lists are type parameters so that a write streams them from the token set
/// ([`CompactOut`]) and a read builds the scopes it keeps at once ([`CompactIn`]); both are
/// a length and then the items.
#[derive(Serialize, Deserialize)]
struct Compact<'a, Scopes, Pairs> {
    access_token: &'a str,
    refresh_token: Option<&'a str>,
    token_type: &'a str,
    expires_at_ms: Option<u64>,
    refresh_expires_at_ms: Option<u64>,
    obtained_at_ms: Option<u64>,
    scopes: Scopes,
    grant: &'a str,
    extras: Pairs,
}

/// The compact form as written: the lists serialised straight from the token set.
type CompactOut<'a> = Compact<'a, Strings<'a>, Pairs<'a>>;

/// The compact form as read: the scopes as the token set keeps them, the extras borrowed
/// until [`Extras`] sorts them.
type CompactIn<'a> = Compact<'a, Vec<String>, Vec<(&'a str, &'a str)>>;

/// Strings written as a sequence without collecting them first.
struct Strings<'a>(&'a [String]);

impl Serialize for Strings<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(String::as_str))
    }
}

/// Extras written as a sequence of (name, value) pairs without collecting them first.
struct Pairs<'a>(&'a Extras);

impl Serialize for Pairs<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter())
    }
}

/// Appends the compact form of `tokens` to `out`. It carries no format tag: the store that
/// uses it keeps one (a record prefix, a sealed text's version).
pub fn encode_token_set_compact_into(tokens: &TokenSet, out: &mut Vec<u8>) {
    let compact: CompactOut<'_> = Compact {
        access_token: tokens.access_token.expose_secret(),
        refresh_token: tokens.refresh_token.as_ref().map(|t| t.expose_secret()),
        token_type: &tokens.token_type,
        expires_at_ms: tokens.expires_at.map(to_ms),
        refresh_expires_at_ms: tokens.refresh_expires_at.map(to_ms),
        obtained_at_ms: tokens.obtained_at.map(to_ms),
        scopes: Strings(&tokens.scopes),
        grant: tokens.grant.as_str(),
        extras: Pairs(&tokens.extras),
    };
    // Writing into a `Vec` fails only when memory does, which aborts anyway.
    if let Ok(bytes) = postcard::to_extend(&compact, std::mem::take(out)) {
        *out = bytes;
    }
}

/// Reads a token set written by [`encode_token_set_compact_into`]: exactly those bytes,
/// nothing after them.
pub fn decode_token_set_compact(bytes: &[u8]) -> Result<TokenSet, DecodeError> {
    let fail = |what: &str| DecodeError(format!("the compact token set {what}"));
    let (read, rest): (CompactIn<'_>, &[u8]) =
        postcard::take_from_bytes(bytes).map_err(|_| fail("is cut short or malformed"))?;
    if !rest.is_empty() {
        return Err(fail("has bytes after its end"));
    }
    let grant = GrantKind::parse(read.grant).ok_or_else(|| fail("names an unknown grant kind"))?;
    let mut tokens = TokenSet::new(AccessToken::new(read.access_token), grant);
    tokens.refresh_token = read.refresh_token.map(RefreshToken::new);
    read.token_type.clone_into(&mut tokens.token_type);
    tokens.expires_at = read.expires_at_ms.map(from_ms).transpose()?;
    tokens.refresh_expires_at = read.refresh_expires_at_ms.map(from_ms).transpose()?;
    tokens.obtained_at = read.obtained_at_ms.map(from_ms).transpose()?;
    tokens.scopes = read.scopes;
    tokens.extras = read.extras.into_iter().collect();
    Ok(tokens)
}

/// Serialises a pending authorization for storage.
pub fn encode_pending(pending: &PendingAuthorization) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    encode_pending_into(pending, &mut out);
    out
}

/// [`encode_pending`] appended to `out`: for stores that frame or seal the record, into a
/// buffer of their own.
pub fn encode_pending_into(pending: &PendingAuthorization, out: &mut Vec<u8>) {
    let record = PendingRecordRef {
        format: PENDING_FORMAT,
        version: FORMAT_VERSION,
        state: pending.state.expose_secret(),
        flow: pending.flow.as_str(),
        provider: &pending.provider,
        client: &pending.client,
        redirect_uri: &pending.redirect_uri,
        scopes: &pending.scopes,
        pkce_verifier: pending.pkce_verifier.as_ref().map(|v| v.expose_secret()),
        created_at_ms: to_ms(pending.created_at),
        expires_at_ms: to_ms(pending.expires_at),
        extras: &pending.extras,
    };
    serde_json::to_writer(out, &record).expect("a record of strings and numbers always serialises");
}

/// Reads a pending authorization written by [`encode_pending`].
pub fn decode_pending(bytes: &[u8]) -> Result<PendingAuthorization, DecodeError> {
    let record: PendingRecord = match serde_json::from_slice(bytes) {
        Ok(record) => record,
        Err(err) => {
            check_header(bytes, PENDING_FORMAT)?;
            return Err(DecodeError(format!(
                "pending authorization record is {}",
                describe_json_error(&err)
            )));
        }
    };
    check_format(&record.format, record.version, PENDING_FORMAT)?;
    let flow = FlowKind::parse(&record.flow).ok_or_else(|| {
        DecodeError("pending authorization record has an unknown flow kind".to_owned())
    })?;
    Ok(PendingAuthorization {
        state: StateToken::new(record.state),
        flow,
        provider: record.provider,
        client: record.client,
        redirect_uri: record.redirect_uri,
        scopes: record.scopes,
        pkce_verifier: record.pkce_verifier.map(PkceVerifier::new),
        created_at: from_ms(record.created_at_ms)?,
        expires_at: from_ms(record.expires_at_ms)?,
        extras: record.extras,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TokenSet {
        let mut tokens = TokenSet::new(AccessToken::new("at-secret"), GrantKind::AuthorizationCode)
            .with_refresh_token(RefreshToken::new("rt-secret"))
            .with_scopes(["a", "b"])
            .with_extra("user_uri", "https://example.test/users/1");
        tokens.expires_at = Some(from_ms(1_700_000_000_123).unwrap());
        tokens.refresh_expires_at = Some(from_ms(1_800_000_000_000).unwrap());
        tokens.obtained_at = Some(from_ms(1_699_999_000_000).unwrap());
        tokens
    }

    #[test]
    fn token_set_round_trips_every_field() {
        let tokens = sample();
        assert_eq!(
            decode_token_set(&encode_token_set(&tokens)).unwrap(),
            tokens
        );
    }

    #[test]
    fn the_compact_form_round_trips_and_refuses_what_it_did_not_write() {
        let tokens = sample();
        let mut bytes = vec![];
        encode_token_set_compact_into(&tokens, &mut bytes);
        assert_eq!(decode_token_set_compact(&bytes).unwrap(), tokens);
        let mut longer = bytes.clone();
        longer.push(0);
        for bad in [&bytes[..bytes.len() - 1], &longer[..], b"", b"\xff\xff\xff"] {
            let err = decode_token_set_compact(bad).unwrap_err().to_string();
            assert!(!err.contains("secret"), "{err}");
        }
    }

    /// Records already stored stay readable: the streamed lists are written byte for byte
    /// as the collected ones were.
    #[test]
    fn the_compact_form_is_the_one_stored_before() {
        #[derive(Serialize)]
        struct Collected<'a> {
            access_token: &'a str,
            refresh_token: Option<&'a str>,
            token_type: &'a str,
            expires_at_ms: Option<u64>,
            refresh_expires_at_ms: Option<u64>,
            obtained_at_ms: Option<u64>,
            scopes: Vec<&'a str>,
            grant: &'a str,
            extras: Vec<(&'a str, &'a str)>,
        }
        let tokens = sample().with_extra("ä", "").with_scopes(["ü", "", "c"]);
        let before = postcard::to_allocvec(&Collected {
            access_token: tokens.access_token.expose_secret(),
            refresh_token: tokens.refresh_token.as_ref().map(|t| t.expose_secret()),
            token_type: &tokens.token_type,
            expires_at_ms: tokens.expires_at.map(to_ms),
            refresh_expires_at_ms: tokens.refresh_expires_at.map(to_ms),
            obtained_at_ms: tokens.obtained_at.map(to_ms),
            scopes: tokens.scopes.iter().map(String::as_str).collect(),
            grant: tokens.grant.as_str(),
            extras: tokens.extras.iter().collect(),
        })
        .unwrap();
        let mut now = Vec::new();
        encode_token_set_compact_into(&tokens, &mut now);
        assert_eq!(now, before);
        assert_eq!(decode_token_set_compact(&before).unwrap(), tokens);
    }

    #[test]
    fn records_carry_format_and_version() {
        let value: serde_json::Value =
            serde_json::from_slice(&encode_token_set(&sample())).unwrap();
        assert_eq!(value["format"], TOKEN_SET_FORMAT);
        assert_eq!(value["version"], FORMAT_VERSION);
    }

    #[test]
    fn newer_or_foreign_records_are_refused_without_quoting_them() {
        let mut value: serde_json::Value =
            serde_json::from_slice(&encode_token_set(&sample())).unwrap();
        value["version"] = 99.into();
        let err = decode_token_set(&serde_json::to_vec(&value).unwrap()).unwrap_err();
        assert!(err.to_string().contains("version 99"), "{err}");

        let err = decode_pending(&encode_token_set(&sample())).unwrap_err();
        assert!(err.to_string().contains("grantkit.token_set"), "{err}");

        value["version"] = 1.into();
        value["expires_at_ms"] = "at-secret".into();
        let err = decode_token_set(&serde_json::to_vec(&value).unwrap()).unwrap_err();
        assert!(!err.to_string().contains("at-secret"), "{err}");

        for bad in [&b""[..], b"{", b"[1,2]", b"\xff\xfe", b"{\"format\":7}"] {
            let err = decode_token_set(bad).unwrap_err();
            assert!(!err.to_string().is_empty());
        }
    }
}
