//! Sealing keys and the keyring that holds them: the primary key that seals every write,
//! and old keys that only open what they sealed.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use chacha20poly1305::{Key, KeyInit as _, XChaCha20Poly1305};
use grantkit_core::{Error, Result};
use rand::RngCore as _;
use std::fmt;
use std::fs::File;
use std::io::Read as _;
use std::path::Path;
use zeroize::Zeroizing;

/// The length of a key in bytes: 256 bits.
const KEY_LEN: usize = 32;

/// The longest key id: it is written into every sealed record.
const MAX_ID_LEN: usize = 32;

/// The most of a key file read: a key in any accepted form takes under 100 bytes, and a
/// path that names something endless (a device, a pipe) must not hang the caller.
const MAX_KEY_FILE_LEN: usize = 1024;

/// What a key held as text looks like, for errors.
const KEY_TEXT_FORMS: &str =
    "64 hex digits, or the base64 (standard or URL-safe, padded or not) of 32 bytes";

/// Base64 decoders that take the key with or without its padding.
const BASE64_STANDARD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const BASE64_URL_SAFE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A 256-bit XChaCha20-Poly1305 key and the id that sealed records name it by.
///
/// The key bytes live only in the cipher, which zeroes them when dropped; every buffer that
/// held them on the way in is zeroed too. `Debug` shows the id alone:
/// `SealingKey { id: "2026-12", .. }`.
///
/// The id is 1 to 32 characters of `A-Z`, `a-z`, `0-9`, `_` and `-`. It is not secret (it
/// is written in clear into every record the key seals), and it must be unique among the
/// keys of a [`Keyring`]: a date of introduction such as `2026-12` serves well.
#[derive(Clone)]
pub struct SealingKey {
    id: String,
    cipher: XChaCha20Poly1305,
}

impl SealingKey {
    /// A key from its 32 bytes.
    ///
    /// # Errors
    /// [`Error::Configuration`] when the id is invalid or `bytes` is not exactly 32 bytes
    /// long (the error never shows the bytes).
    pub fn from_bytes(id: &str, bytes: &[u8]) -> Result<Self> {
        check_id(id)?;
        let key: &[u8; KEY_LEN] = bytes.try_into().map_err(|_| {
            Error::configuration(format!(
                "sealing key `{id}`: a key is exactly 32 bytes, not {}",
                bytes.len()
            ))
        })?;
        Ok(Self::with_key(id, key))
    }

    /// A key from the environment variable `var`, which holds it as 64 hex digits or as
    /// the base64 (standard or URL-safe, padded or not) of 32 bytes. Surrounding white
    /// space is ignored.
    ///
    /// # Errors
    /// [`Error::Configuration`] when the id is invalid, or the variable is unset or holds
    /// no key in those forms. The error names the variable, never its value.
    pub fn from_env(id: &str, var: &str) -> Result<Self> {
        check_id(id)?;
        let value = match std::env::var(var) {
            Ok(value) => Zeroizing::new(value),
            Err(std::env::VarError::NotPresent) => {
                return Err(Error::configuration(format!(
                    "sealing key `{id}`: the environment variable {var} is not set"
                )));
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(Error::configuration(format!(
                    "sealing key `{id}`: the environment variable {var} is not text; it must \
                     hold {KEY_TEXT_FORMS}"
                )));
            }
        };
        let key = parse_key_text(&value).map_err(|why| {
            Error::configuration(format!(
                "sealing key `{id}`: the environment variable {var} holds no key ({why}); it \
                 must hold {KEY_TEXT_FORMS}"
            ))
        })?;
        Ok(Self::with_key(id, &key))
    }

    /// A key from the file at `path`: 32 raw bytes, or the key as text (64 hex digits, or
    /// base64 of 32 bytes) with optional surrounding white space such as a final newline.
    ///
    /// The file is read synchronously: call this at start-up, not on a request path.
    ///
    /// On Unix the file's permissions are checked: a file anyone may write is refused (whoever
    /// can replace the key can read everything sealed afterwards), and a file other users may
    /// read is accepted with a warning (a `tracing` event naming the path and mode, never the
    /// key), since secret mounts such as Kubernetes' default to mode 0644. Keep the file 0600
    /// or 0400, and away from the store it protects.
    ///
    /// # Errors
    /// [`Error::Configuration`] when the id is invalid, the file cannot be read, anyone may
    /// write it, or it holds no key in those forms. The error never shows the file's content.
    /// A file of exactly 32 printable characters is refused as well: it is text that was meant
    /// to be a key, not 32 random bytes.
    pub fn from_file(id: &str, path: impl AsRef<Path>) -> Result<Self> {
        check_id(id)?;
        let path = path.as_ref();
        let cannot = |what: &str, err: std::io::Error| {
            Error::configuration(format!(
                "sealing key `{id}`: cannot {what} the key file {}: {err}",
                path.display()
            ))
        };
        // A pipe or a device would block the open or the read: only a regular file (or a
        // link to one, as mounted secrets are) is read.
        let kind = std::fs::metadata(path).map_err(|e| cannot("open", e))?;
        if !kind.is_file() {
            return Err(Error::configuration(format!(
                "sealing key `{id}`: the key file {} is not a regular file",
                path.display()
            )));
        }
        let file = File::open(path).map_err(|e| cannot("open", e))?;
        let metadata = file.metadata().map_err(|e| cannot("inspect", e))?;
        check_permissions(id, path, &metadata)?;
        // Sized so that reading never reallocates, which would leave a copy of the key behind.
        let mut content = Zeroizing::new(Vec::with_capacity(MAX_KEY_FILE_LEN + 1));
        file.take(MAX_KEY_FILE_LEN as u64 + 1)
            .read_to_end(&mut content)
            .map_err(|e| cannot("read", e))?;
        let refused = |why: &str| {
            Error::configuration(format!(
                "sealing key `{id}`: the key file {} holds no key ({why}); it must hold 32 raw \
                 bytes, or {KEY_TEXT_FORMS}",
                path.display()
            ))
        };
        if content.len() > MAX_KEY_FILE_LEN {
            return Err(refused("it is far larger than a key"));
        }
        if let Ok(raw) = <&[u8; KEY_LEN]>::try_from(content.as_slice()) {
            if raw
                .iter()
                .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
            {
                return Err(refused("it is 32 characters of text"));
            }
            return Ok(Self::with_key(id, raw));
        }
        let text = std::str::from_utf8(&content).map_err(|_| refused("it is not text"))?;
        let key = parse_key_text(text).map_err(refused)?;
        Ok(Self::with_key(id, &key))
    }

    /// A fresh random key: for tests, and for stores that live no longer than the process
    /// (a memory store). Its bytes cannot be read back, so a store that outlives the
    /// process needs a key it can load again: generate one once with
    /// `openssl rand -base64 32` and load it with [`from_env`](Self::from_env) or
    /// [`from_file`](Self::from_file).
    ///
    /// # Errors
    /// [`Error::Configuration`] when the id is invalid.
    pub fn generate(id: &str) -> Result<Self> {
        check_id(id)?;
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        rand::rng().fill_bytes(&mut key[..]);
        Ok(Self::with_key(id, &key))
    }

    /// Whether `id` may name a key: 1 to 32 characters of `A-Z`, `a-z`, `0-9`, `_` and `-`
    /// (for checking configuration before any key is read).
    pub fn is_valid_id(id: &str) -> bool {
        is_valid_id(id)
    }

    /// The key's id, which every record it seals names.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The cipher, for sealing and opening.
    pub(crate) fn cipher(&self) -> &XChaCha20Poly1305 {
        &self.cipher
    }

    fn with_key(id: &str, key: &[u8; KEY_LEN]) -> Self {
        Self {
            id: id.to_owned(),
            cipher: XChaCha20Poly1305::new(Key::from_slice(key)),
        }
    }
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealingKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The keys of an [`EncryptedTokenStore`](crate::EncryptedTokenStore): the primary key,
/// which seals every write, and old keys, which only open records sealed before a rotation.
///
/// A record names the id of the key that sealed it, and is opened with that key whichever
/// it is. `Debug` shows the ids alone.
///
/// ```
/// use grantkit_store_encrypted::{Keyring, SealingKey};
///
/// # fn main() -> grantkit_core::Result<()> {
/// let keys = Keyring::new(SealingKey::generate("2026-12")?)
///     .with_old_key(SealingKey::generate("2025-06")?)?;
/// assert_eq!(keys.primary().id(), "2026-12");
/// assert!(keys.contains("2025-06"));
/// assert_eq!(format!("{keys:?}"), r#"Keyring { primary: "2026-12", old: ["2025-06"] }"#);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Keyring {
    primary: SealingKey,
    old: Vec<SealingKey>,
}

impl Keyring {
    /// A keyring that seals with `primary`.
    pub fn new(primary: SealingKey) -> Self {
        Self {
            primary,
            old: Vec::new(),
        }
    }

    /// Adds a key that opens records but never seals one: a former primary key, kept until
    /// every record it sealed has been re-sealed
    /// ([`EncryptedTokenStore::reseal`](crate::EncryptedTokenStore::reseal)).
    ///
    /// # Errors
    /// [`Error::Configuration`] when the keyring already holds a key with the same id.
    pub fn with_old_key(mut self, key: SealingKey) -> Result<Self> {
        if self.contains(key.id()) {
            return Err(Error::configuration(format!(
                "the keyring already holds a sealing key with id `{}`; every key needs its own id",
                key.id()
            )));
        }
        self.old.push(key);
        Ok(self)
    }

    /// The key that seals every write.
    pub fn primary(&self) -> &SealingKey {
        &self.primary
    }

    /// Whether the keyring holds a key with this id.
    pub fn contains(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    /// The ids of the keys, the primary first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys().map(SealingKey::id)
    }

    /// The key with this id.
    pub(crate) fn get(&self, id: &str) -> Option<&SealingKey> {
        self.keys().find(|key| key.id == id)
    }

    fn keys(&self) -> impl Iterator<Item = &SealingKey> {
        std::iter::once(&self.primary).chain(&self.old)
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("primary", &self.primary.id)
            .field(
                "old",
                &self.old.iter().map(SealingKey::id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Whether `id` is a valid key id: 1 to 32 characters of `A-Z`, `a-z`, `0-9`, `_`, `-`.
pub(crate) fn is_valid_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn check_id(id: &str) -> Result<()> {
    if is_valid_id(id) {
        return Ok(());
    }
    // The id is not shown: a caller who swapped the arguments would see the key in the log.
    Err(Error::configuration(format!(
        "a sealing key id is 1 to 32 characters of A-Z, a-z, 0-9, `_` and `-`; this one has \
         {} characters",
        id.chars().count()
    )))
}

/// Reads a key written as text: 64 hex digits, or the base64 (standard or URL-safe, padded
/// or not) of 32 bytes, with surrounding white space ignored. The reason it gives for a
/// refusal never quotes the text.
pub(crate) fn parse_key_text(text: &str) -> Result<Zeroizing<[u8; KEY_LEN]>, &'static str> {
    let text = text.trim();
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    if text.is_empty() {
        return Err("it is empty");
    }
    if text.len() == 2 * KEY_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode_to_slice(text, &mut key[..]).map_err(|_| "it is not hex")?;
        return Ok(key);
    }
    // The base64 of 32 bytes is 43 characters, 44 with padding; anything much longer is not
    // a key, and the buffer below holds what 64 characters decode to.
    if text.len() > 64 {
        return Err("it is longer than a key");
    }
    let mut decoded = Zeroizing::new([0u8; 48]);
    for engine in [&BASE64_STANDARD, &BASE64_URL_SAFE] {
        if let Ok(len) = engine.decode_slice(text, &mut decoded[..]) {
            if len != KEY_LEN {
                return Err("it decodes to another length than 32 bytes");
            }
            key.copy_from_slice(&decoded[..KEY_LEN]);
            return Ok(key);
        }
    }
    Err("it is neither hex nor base64")
}

#[cfg(unix)]
fn check_permissions(id: &str, path: &Path, metadata: &std::fs::Metadata) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o002 != 0 {
        return Err(Error::configuration(format!(
            "sealing key `{id}`: anyone may write the key file {} (mode {mode:04o}); make it \
             0600 or 0400",
            path.display()
        )));
    }
    if mode & 0o077 != 0 {
        let shown_mode = format!("{mode:04o}");
        tracing::warn!(
            key_id = id,
            path = %path.display(),
            mode = %shown_mode,
            "other users may read the sealing key file; make it 0600 or 0400"
        );
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_id: &str, _path: &Path, _metadata: &std::fs::Metadata) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    use std::io::Write as _;

    /// Bytes that exercise both base64 alphabets (`+`, `/`, `-`, `_` all appear).
    fn sample() -> [u8; KEY_LEN] {
        std::array::from_fn(|i| (i as u8).wrapping_mul(73).wrapping_add(0xf9))
    }

    fn configuration_message(err: Error) -> String {
        match err {
            Error::Configuration { message } => message,
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    #[test]
    fn key_text_is_read_as_hex_or_any_base64() {
        let bytes = sample();
        let forms = [
            hex::encode(bytes),
            hex::encode_upper(bytes),
            STANDARD.encode(bytes),
            STANDARD_NO_PAD.encode(bytes),
            URL_SAFE.encode(bytes),
            URL_SAFE_NO_PAD.encode(bytes),
            format!("{}\n", hex::encode(bytes)),
            format!("  {}\r\n", STANDARD.encode(bytes)),
        ];
        for form in forms {
            let key = parse_key_text(&form).unwrap_or_else(|why| panic!("{why}"));
            assert_eq!(*key, bytes);
        }
    }

    #[test]
    fn key_text_of_another_length_or_alphabet_is_refused_without_quoting_it() {
        let bytes = sample();
        let mut longer = bytes.to_vec();
        longer.push(b'x');
        let bad = [
            String::new(),
            "\n".to_owned(),
            hex::encode(&bytes[..31]),
            format!("{}00", hex::encode(bytes)),
            STANDARD.encode(&bytes[..31]),
            STANDARD.encode(&longer),
            format!("{}!", &STANDARD_NO_PAD.encode(bytes)[..42]),
            "z".repeat(64),
            "A".repeat(10_000),
            "ü".repeat(43),
        ];
        for text in bad {
            let why = parse_key_text(&text).expect_err("refused");
            let text = text.trim();
            assert!(text.is_empty() || !why.contains(text), "{why}");
        }
    }

    #[test]
    fn ids_are_short_and_plain() {
        for id in ["k", "2026-12", "prod_A-1", "x".repeat(32).as_str()] {
            assert!(is_valid_id(id), "{id}");
        }
        for id in ["", "x".repeat(33).as_str(), "a.b", "a b", "ü", "a/b", "k\n"] {
            assert!(!is_valid_id(id), "{id:?}");
        }
        // A key passed as the id by mistake is not shown.
        let secret_looking = hex::encode(sample());
        let message = configuration_message(SealingKey::generate(&secret_looking).unwrap_err());
        assert!(!message.contains(&secret_looking), "{message}");
    }

    #[test]
    fn from_bytes_wants_exactly_32_bytes_and_never_shows_them() {
        let bytes = sample();
        let key = SealingKey::from_bytes("k1", &bytes).unwrap();
        assert_eq!(key.id(), "k1");
        let mut longer = bytes.to_vec();
        longer.push(1);
        for wrong in [&bytes[..31], &bytes[..0], longer.as_slice()] {
            let message = configuration_message(SealingKey::from_bytes("k1", wrong).unwrap_err());
            assert!(message.contains("exactly 32 bytes"), "{message}");
            assert!(!message.contains(&hex::encode(&bytes[..8])), "{message}");
        }
    }

    #[test]
    fn debug_shows_the_id_alone() {
        let key = SealingKey::from_bytes("2026-12", &sample()).unwrap();
        assert_eq!(format!("{key:?}"), r#"SealingKey { id: "2026-12", .. }"#);
        assert_eq!(
            format!("{key:#?}"),
            "SealingKey {\n    id: \"2026-12\",\n    ..\n}"
        );
    }

    #[test]
    fn a_missing_variable_is_named_in_the_error() {
        let var = "GRANTKIT_STORE_ENCRYPTED_TEST_KEY_THAT_IS_NEVER_SET_5e1b";
        let message = configuration_message(SealingKey::from_env("k1", var).unwrap_err());
        assert!(
            message.contains(var) && message.contains("not set"),
            "{message}"
        );
    }

    #[test]
    fn keyrings_refuse_two_keys_with_one_id() {
        let keys = Keyring::new(SealingKey::generate("a").unwrap())
            .with_old_key(SealingKey::generate("b").unwrap())
            .unwrap();
        assert!(keys.contains("a") && keys.contains("b") && !keys.contains("c"));
        assert_eq!(keys.ids().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(keys.get("b").map(SealingKey::id), Some("b"));
        for id in ["a", "b"] {
            let err = keys
                .clone()
                .with_old_key(SealingKey::generate(id).unwrap())
                .unwrap_err();
            assert!(configuration_message(err).contains(&format!("`{id}`")));
        }
        assert_eq!(
            format!("{keys:?}"),
            r#"Keyring { primary: "a", old: ["b"] }"#
        );
    }

    fn key_file(content: &[u8]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(content).unwrap();
        file.flush().unwrap();
        file
    }

    /// Whether two keys of one id are the same key: what one seals, the other opens.
    fn same_key(a: &SealingKey, b: &SealingKey) -> bool {
        let sealed = crate::seal::seal(a, b"probe", b"aad").unwrap();
        crate::seal::open(&Keyring::new(b.clone()), &sealed, b"aad").is_ok()
    }

    #[test]
    fn key_files_hold_raw_bytes_or_text() {
        let bytes = sample();
        let expected = SealingKey::from_bytes("k1", &bytes).unwrap();
        for content in [
            bytes.to_vec(),
            format!("{}\n", hex::encode(bytes)).into_bytes(),
            format!("{}\n", STANDARD.encode(bytes)).into_bytes(),
            URL_SAFE_NO_PAD.encode(bytes).into_bytes(),
        ] {
            let file = key_file(&content);
            let key = SealingKey::from_file("k1", file.path()).unwrap();
            assert!(same_key(&key, &expected));
        }
        assert!(!same_key(&SealingKey::generate("k1").unwrap(), &expected));
    }

    #[test]
    fn key_files_without_a_key_are_refused_without_quoting_them() {
        let text_of_32 = "correct-horse-battery-staple-32\n";
        assert_eq!(text_of_32.len(), 32);
        for content in [
            text_of_32.as_bytes().to_vec(),
            Vec::new(),
            vec![0xff; 31],
            vec![0xff; 33],
            b"not a key at all\n".to_vec(),
            vec![b'A'; 5000],
        ] {
            let file = key_file(&content);
            let message =
                configuration_message(SealingKey::from_file("k1", file.path()).unwrap_err());
            assert!(message.contains("holds no key"), "{message}");
            assert!(
                !message.contains("horse") && !message.contains("AAAA"),
                "{message}"
            );
        }
        let missing = std::env::temp_dir().join("grantkit-no-such-key-file-5e1b");
        let message = configuration_message(SealingKey::from_file("k1", &missing).unwrap_err());
        assert!(message.contains("cannot open"), "{message}");
        // A device (or a pipe) is refused before it is opened: reading it could block.
        let message = configuration_message(SealingKey::from_file("k1", "/dev/zero").unwrap_err());
        assert!(message.contains("not a regular file"), "{message}");
    }

    #[cfg(unix)]
    #[test]
    fn key_files_anyone_may_write_are_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let file = key_file(&sample());
        let set = |mode| {
            std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(mode)).unwrap();
        };
        set(0o646);
        let message = configuration_message(SealingKey::from_file("k1", file.path()).unwrap_err());
        assert!(message.contains("anyone may write"), "{message}");
        // Readable by others: accepted, with a warning.
        set(0o644);
        SealingKey::from_file("k1", file.path()).unwrap();
        set(0o400);
        SealingKey::from_file("k1", file.path()).unwrap();
    }
}
