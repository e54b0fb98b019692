//! What the layer keeps from the inner store, and how it fails: no token, refresh token,
//! state or verifier in the inner store's bytes; records bound to their key; tampering
//! detected; keys rotated and records re-sealed; no key and no token in `Debug` output or
//! in errors.

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use grantkit_core::{
    AccessToken, Error, GrantKind, MemoryTokenStore, RefreshToken, TokenKey, TokenSet, TokenStore,
    flow::FlowKind,
    provider::PkceVerifier,
    store::{
        KeyFilter, PendingAuthorization, Precondition, StateHash, StateToken, StoreCapabilities,
        Version, Versioned,
    },
};
use grantkit_store_encrypted::{EncryptedTokenStore, Keyring, SealingKey};
use grantkit_store_file::FileTokenStore;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const ACCESS: &str = "SECRET-ACCESS-4b9d2e";
const REFRESH: &str = "SECRET-REFRESH-a07c31";
const STATE: &str = "SECRET-STATE-e6f813";
const VERIFIER: &str = "SECRET-VERIFIER-1d5a9b";

fn secrets() -> [&'static str; 4] {
    [ACCESS, REFRESH, STATE, VERIFIER]
}

fn at_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// Now, to the millisecond that records keep.
fn now() -> SystemTime {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    at_ms(u64::try_from(ms).unwrap())
}

fn secret_tokens() -> TokenSet {
    let mut tokens = TokenSet::new(AccessToken::new(ACCESS), GrantKind::AuthorizationCode)
        .with_refresh_token(RefreshToken::new(REFRESH))
        .with_scopes(["user_info"])
        .with_extra("user_uri", "https://example.test/users/1");
    tokens.expires_at = Some(at_ms(1_900_000_000_000));
    tokens.refresh_expires_at = Some(at_ms(2_000_000_000_000));
    tokens.obtained_at = Some(at_ms(1_899_999_000_000));
    tokens
}

fn secret_pending() -> PendingAuthorization {
    let now = now();
    PendingAuthorization {
        state: StateToken::new(STATE),
        flow: FlowKind::AuthorizationCode,
        provider: "joinme".to_owned(),
        client: "client".to_owned(),
        redirect_uri: "http://127.0.0.1:1/cb".to_owned(),
        scopes: vec!["user_info".to_owned()],
        pkce_verifier: Some(PkceVerifier::new(VERIFIER)),
        created_at: now,
        expires_at: now + Duration::from_secs(600),
        extras: BTreeMap::new(),
    }
}

fn keyring(id: &str) -> Keyring {
    Keyring::new(SealingKey::generate(id).unwrap())
}

fn memory_store() -> EncryptedTokenStore<MemoryTokenStore> {
    EncryptedTokenStore::new(MemoryTokenStore::new(), keyring("k1"))
}

/// The hash a pending authorization's carrier is stored under: that of `sealed:<hash>`.
fn carrier_hash(state_hash: &StateHash) -> StateHash {
    StateToken::new(format!("sealed:{state_hash}")).hash()
}

fn files_under(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, found);
        } else {
            found.push(path);
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// The reason of the `CorruptRecord` that `result` must be, for the record named `key`.
fn corrupt_reason<T: std::fmt::Debug>(result: grantkit_core::Result<T>, key: &str) -> String {
    match result {
        Err(Error::CorruptRecord { key: named, reason }) => {
            assert_eq!(named, key, "the error names the key read");
            reason
        }
        other => panic!("expected CorruptRecord for {key}, got {other:?}"),
    }
}

/// The id of the key that sealed a carrier.
fn sealed_with(carrier: &TokenSet) -> String {
    let text = carrier.access_token.expose_secret();
    text.split('.').nth(1).expect("sealed text").to_owned()
}

#[tokio::test]
async fn the_inner_store_holds_no_token_verifier_or_state() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tokens");
    let inner = FileTokenStore::open(&root).await.unwrap();
    let store = EncryptedTokenStore::new(inner, keyring("k1"));
    let key = TokenKey::new("joinme", "client", "alice@example.com");
    store
        .put(&key, &secret_tokens(), Precondition::Absent)
        .await
        .unwrap();
    let pending = secret_pending();
    store
        .put_pending(&pending, Duration::from_secs(600))
        .await
        .unwrap();

    let mut files = Vec::new();
    files_under(&root, &mut files);
    assert!(files.len() >= 2, "{files:?}");
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        for secret in secrets() {
            assert!(
                !contains(&bytes, secret.as_bytes()),
                "{} holds {secret}",
                path.display()
            );
        }
    }

    // The inner store keeps the times and the grant kind in clear, and no token.
    let carrier = store.inner().get(&key).await.unwrap().unwrap().value;
    assert!(carrier.access_token.expose_secret().starts_with("gk1.k1."));
    assert!(carrier.refresh_token.is_none());
    assert_eq!(carrier.expires_at, secret_tokens().expires_at);
    assert_eq!(
        carrier.refresh_expires_at,
        secret_tokens().refresh_expires_at
    );
    assert_eq!(carrier.grant, GrantKind::AuthorizationCode);

    // Through the layer, both come back whole, and the pending authorization once.
    assert!(store.get(&key).await.unwrap().unwrap().value == secret_tokens());
    let taken = store
        .take_pending(&pending.state_hash())
        .await
        .unwrap()
        .expect("stored");
    assert!(taken == pending, "{taken:?}");
    assert!(
        store
            .take_pending(&pending.state_hash())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_record_copied_to_another_key_does_not_open() {
    let store = memory_store();
    let alice = TokenKey::new("joinme", "client", "alice");
    let mallory = TokenKey::new("joinme", "client", "mallory");
    store
        .put(&alice, &secret_tokens(), Precondition::Absent)
        .await
        .unwrap();
    let carrier = store.inner().get(&alice).await.unwrap().unwrap().value;
    store
        .inner()
        .put(&mallory, &carrier, Precondition::Absent)
        .await
        .unwrap();

    let reason = corrupt_reason(store.get(&mallory).await, &mallory.to_string());
    assert!(reason.contains("does not open"), "{reason}");
    assert!(store.get(&alice).await.unwrap().unwrap().value == secret_tokens());

    // get_many answers the copy with its own error, and the other keys as usual.
    let nobody = TokenKey::new("joinme", "client", "nobody");
    let answers = store
        .get_many(&[alice.clone(), mallory.clone(), nobody])
        .await
        .unwrap();
    assert_eq!(answers.len(), 3);
    let mut answers = answers.into_iter();
    let first = answers.next().unwrap().unwrap().expect("alice's record");
    assert!(first.value == secret_tokens());
    corrupt_reason(answers.next().unwrap(), &mallory.to_string());
    assert!(answers.next().unwrap().unwrap().is_none());
}

#[tokio::test]
async fn a_pending_authorization_moved_to_another_state_does_not_open() {
    let store = memory_store();
    let pending = secret_pending();
    store
        .put_pending(&pending, Duration::from_secs(600))
        .await
        .unwrap();
    let mut carrier = store
        .inner()
        .take_pending(&carrier_hash(&pending.state_hash()))
        .await
        .unwrap()
        .expect("the carrier, under the hash of `sealed:<state hash>`");
    assert!(carrier.pkce_verifier.is_none() && carrier.redirect_uri.is_empty());
    assert_eq!(
        (carrier.provider.as_str(), carrier.client.as_str()),
        ("joinme", "client")
    );
    assert!(carrier.extras["grantkit.sealed"].starts_with("gk1.k1."));

    let other = StateToken::generate().hash();
    carrier.state = StateToken::new(format!("sealed:{other}"));
    store
        .inner()
        .put_pending(&carrier, Duration::from_secs(600))
        .await
        .unwrap();
    let named = format!("pending authorization {other}");
    let reason = corrupt_reason(store.take_pending(&other).await, &named);
    assert!(reason.contains("does not open"), "{reason}");

    // A carrier without sealed text is not sealed.
    carrier.extras.clear();
    store
        .inner()
        .put_pending(&carrier, Duration::from_secs(600))
        .await
        .unwrap();
    let reason = corrupt_reason(store.take_pending(&other).await, &named);
    assert!(reason.contains("not sealed"), "{reason}");
}

#[tokio::test]
async fn a_tampered_or_foreign_record_is_corrupt_and_never_quoted() {
    let store = memory_store();
    let key = TokenKey::new("joinme", "client", "alice");
    store
        .put(&key, &secret_tokens(), Precondition::Absent)
        .await
        .unwrap();
    let carrier = store.inner().get(&key).await.unwrap().unwrap().value;
    let sealed = carrier.access_token.expose_secret().to_owned();
    let sample_of_sealed = &sealed[20..44];

    let mut flipped = sealed.clone().into_bytes();
    let at = flipped.len() / 2 + 10;
    flipped[at] = if flipped[at] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();

    let texts = [
        flipped,
        sealed[..sealed.len() - 5].to_owned(),
        format!("{sealed}AAAA"),
        sealed.replacen("gk1.k1.", "gk1.k9.", 1),
        sealed.replacen("gk1.", "gk7.", 1),
        String::new(),
        "gk1.k1.".to_owned(),
        "gk1.k1.%%%%".to_owned(),
        format!("gk1.{}.AAAA", "x".repeat(200)),
        ACCESS.to_owned(),
    ];
    for text in texts {
        let mut forged = carrier.clone();
        forged.access_token = AccessToken::new(text.clone());
        store
            .inner()
            .put(&key, &forged, Precondition::Any)
            .await
            .unwrap();
        let reason = corrupt_reason(store.get(&key).await, &key.to_string());
        assert!(text.len() < 8 || !reason.contains(&text), "{reason}");
        assert!(!reason.contains(sample_of_sealed), "{reason}");
        assert!(!reason.contains(ACCESS), "{reason}");
    }

    // The sealed text intact, an expiry in clear changed: the store would expire the grant
    // at the wrong time, so the record is refused.
    let mut moved_expiry = carrier.clone();
    moved_expiry.refresh_expires_at = Some(std::time::UNIX_EPOCH);
    store
        .inner()
        .put(&key, &moved_expiry, Precondition::Any)
        .await
        .unwrap();
    let reason = corrupt_reason(store.get(&key).await, &key.to_string());
    assert!(reason.contains("tampered"), "{reason}");

    // A record written without the layer does not open either, and is not quoted.
    store
        .inner()
        .put(&key, &secret_tokens(), Precondition::Any)
        .await
        .unwrap();
    let reason = corrupt_reason(store.get(&key).await, &key.to_string());
    assert!(reason.contains("not sealed"), "{reason}");
    assert!(
        !reason.contains(ACCESS) && !reason.contains(REFRESH),
        "{reason}"
    );
}

#[tokio::test]
async fn keys_rotate_and_reseal_moves_records_to_the_primary_key() {
    let a = SealingKey::generate("2025-06").unwrap();
    let b = SealingKey::generate("2026-12").unwrap();
    let keys: Vec<TokenKey> = (0..3)
        .map(|i| TokenKey::new("p", "c", format!("user-{i}")))
        .collect();
    let old = EncryptedTokenStore::new(MemoryTokenStore::new(), Keyring::new(a.clone()));
    for key in &keys {
        old.put(key, &secret_tokens(), Precondition::Absent)
            .await
            .unwrap();
    }
    let pending = secret_pending();
    old.put_pending(&pending, Duration::from_secs(600))
        .await
        .unwrap();

    // The new key is the primary, the old one still opens what it sealed.
    let rotated = Keyring::new(b.clone()).with_old_key(a.clone()).unwrap();
    let store = EncryptedTokenStore::new(old.into_inner(), rotated);
    for key in &keys {
        assert!(store.get(key).await.unwrap().unwrap().value == secret_tokens());
    }
    let taken = store.take_pending(&pending.state_hash()).await.unwrap();
    assert!(taken.expect("stored") == pending);

    // A write seals with the primary key; a record written without the layer stays as is.
    store
        .put(&keys[0], &secret_tokens(), Precondition::Any)
        .await
        .unwrap();
    let foreign = TokenKey::new("p", "c", "foreign");
    store
        .inner()
        .put(&foreign, &secret_tokens(), Precondition::Absent)
        .await
        .unwrap();

    let report = store.reseal(&KeyFilter::provider("p")).await.unwrap();
    assert_eq!(
        (
            report.resealed,
            report.already_current,
            report.raced,
            report.unreadable
        ),
        (2, 1, 0, 1),
        "{report:?}"
    );
    for key in &keys {
        let carrier = store.inner().get(key).await.unwrap().unwrap().value;
        assert_eq!(sealed_with(&carrier), "2026-12");
        assert!(store.get(key).await.unwrap().unwrap().value == secret_tokens());
    }
    store
        .inner()
        .delete(&foreign, Precondition::Any)
        .await
        .unwrap();
    let again = store.reseal(&KeyFilter::provider("p")).await.unwrap();
    assert_eq!(
        (again.resealed, again.already_current, again.raced),
        (0, 3, 0)
    );

    // The new key alone reads every record.
    let only_b = EncryptedTokenStore::new(store.into_inner(), Keyring::new(b));
    for key in &keys {
        assert!(only_b.get(key).await.unwrap().unwrap().value == secret_tokens());
    }
    // The old key alone cannot, and says which key it lacks.
    let only_a = EncryptedTokenStore::new(only_b.into_inner(), Keyring::new(a));
    let reason = corrupt_reason(only_a.get(&keys[1]).await, &keys[1].to_string());
    assert!(reason.contains("`2026-12`"), "{reason}");
}

/// A memory store where, once, another writer replaces a record right after it is read:
/// what a writer running beside `reseal` does.
#[derive(Debug)]
struct Meddler {
    inner: MemoryTokenStore,
    meddle_on: Mutex<Option<TokenKey>>,
}

#[async_trait]
impl TokenStore for Meddler {
    fn capabilities(&self) -> StoreCapabilities {
        self.inner.capabilities()
    }

    async fn get(&self, key: &TokenKey) -> grantkit_core::Result<Option<Versioned<TokenSet>>> {
        let read = self.inner.get(key).await?;
        let meddle = self
            .meddle_on
            .lock()
            .unwrap()
            .take_if(|meddled| *meddled == *key)
            .is_some();
        if let (true, Some(stored)) = (meddle, &read) {
            self.inner
                .put(key, &stored.value, Precondition::Any)
                .await?;
        }
        Ok(read)
    }

    async fn put(
        &self,
        key: &TokenKey,
        tokens: &TokenSet,
        precondition: Precondition,
    ) -> grantkit_core::Result<Version> {
        self.inner.put(key, tokens, precondition).await
    }

    async fn delete(
        &self,
        key: &TokenKey,
        precondition: Precondition,
    ) -> grantkit_core::Result<bool> {
        self.inner.delete(key, precondition).await
    }

    async fn list(&self, filter: &KeyFilter) -> grantkit_core::Result<Vec<TokenKey>> {
        self.inner.list(filter).await
    }
}

#[tokio::test]
async fn reseal_leaves_a_record_changed_meanwhile_to_its_writer() {
    let a = SealingKey::generate("a").unwrap();
    let b = SealingKey::generate("b").unwrap();
    let key = TokenKey::new("p", "c", "alice");
    let old = EncryptedTokenStore::new(MemoryTokenStore::new(), Keyring::new(a.clone()));
    old.put(&key, &secret_tokens(), Precondition::Absent)
        .await
        .unwrap();
    let meddler = Meddler {
        inner: old.into_inner(),
        meddle_on: Mutex::new(Some(key.clone())),
    };
    let store = EncryptedTokenStore::new(meddler, Keyring::new(b).with_old_key(a).unwrap());

    let report = store.reseal(&KeyFilter::provider("p")).await.unwrap();
    assert_eq!(
        (report.resealed, report.already_current, report.raced),
        (0, 0, 1),
        "{report:?}"
    );
    // The other writer's record stands, and a second run re-seals it.
    assert!(store.get(&key).await.unwrap().unwrap().value == secret_tokens());
    let again = store.reseal(&KeyFilter::provider("p")).await.unwrap();
    assert_eq!((again.resealed, again.raced), (1, 0), "{again:?}");
    let carrier = store.inner().get(&key).await.unwrap().unwrap().value;
    assert_eq!(sealed_with(&carrier), "b");
}

#[tokio::test]
async fn debug_output_and_errors_show_no_key_and_no_token() {
    let bytes: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(11));
    let key = SealingKey::from_bytes("k1", &bytes).unwrap();
    let hidden = [
        hex::encode(bytes),
        hex::encode_upper(bytes),
        STANDARD.encode(bytes),
        format!("{:?}", &bytes[..4])
            .trim_end_matches(']')
            .to_owned(),
    ];
    let assert_hidden = |what: &str, text: &str| {
        for value in &hidden {
            assert!(
                !text.contains(value.as_str()),
                "{what} shows the key: {text}"
            );
        }
        for secret in secrets() {
            assert!(!text.contains(secret), "{what} shows a secret: {text}");
        }
    };

    let keys = Keyring::new(key.clone())
        .with_old_key(SealingKey::generate("k0").unwrap())
        .unwrap();
    let store = EncryptedTokenStore::new(MemoryTokenStore::new(), keys);
    let token_key = TokenKey::new("joinme", "client", "alice");
    store
        .put(&token_key, &secret_tokens(), Precondition::Absent)
        .await
        .unwrap();

    assert_eq!(format!("{key:?}"), r#"SealingKey { id: "k1", .. }"#);
    assert_eq!(
        format!("{store:?}"),
        format!(
            r#"EncryptedTokenStore {{ inner: {:?}, keys: Keyring {{ primary: "k1", old: ["k0"] }} }}"#,
            store.inner()
        )
    );
    for (what, text) in [
        ("a key's Debug", format!("{key:?} {key:#?}")),
        ("the keyring's Debug", format!("{:#?}", store.keyring())),
        ("the store's Debug", format!("{store:?} {store:#?}")),
    ] {
        assert_hidden(what, &text);
    }

    let carrier = store.inner().get(&token_key).await.unwrap().unwrap().value;
    let sealed = carrier.access_token.expose_secret().to_owned();
    let mut errors = Vec::new();
    // A conflict.
    errors.push(
        store
            .put(&token_key, &secret_tokens(), Precondition::Absent)
            .await
            .unwrap_err(),
    );
    // A record under another key.
    let copy = TokenKey::new("joinme", "client", "mallory");
    store
        .inner()
        .put(&copy, &carrier, Precondition::Absent)
        .await
        .unwrap();
    errors.push(store.get(&copy).await.unwrap_err());
    // A keyring without the record's key, and a record written without the layer.
    let stranger = EncryptedTokenStore::new(MemoryTokenStore::new(), keyring("k9"));
    stranger
        .inner()
        .put(&token_key, &carrier, Precondition::Absent)
        .await
        .unwrap();
    errors.push(stranger.get(&token_key).await.unwrap_err());
    stranger
        .inner()
        .put(&copy, &secret_tokens(), Precondition::Absent)
        .await
        .unwrap();
    errors.push(stranger.get(&copy).await.unwrap_err());
    // Keys that cannot be made.
    errors.push(SealingKey::from_bytes("k1", &bytes[..31]).unwrap_err());
    errors.push(SealingKey::from_bytes(&hex::encode(bytes), &bytes).unwrap_err());

    for err in &errors {
        let text = format!("{err} {err:?}");
        assert_hidden("an error", &text);
        assert!(
            !text.contains(&sealed[7..40]),
            "an error quotes the record: {text}"
        );
    }
}

#[tokio::test]
async fn times_finer_than_a_millisecond_read_back_on_an_in_memory_inner_store() {
    // The memory store keeps the carrier's times to the nanosecond; the sealed record keeps
    // milliseconds. The two agree, so the record opens.
    let store = memory_store();
    let key = TokenKey::new("joinme", "client", "nanos");
    let now = std::time::SystemTime::now();
    let tokens =
        secret_tokens().expiring_in(now, std::time::Duration::from_nanos(3_600_000_000_123));
    store
        .put(&key, &tokens, Precondition::Absent)
        .await
        .unwrap();
    let read = store.get(&key).await.unwrap().expect("stored").value;
    assert_eq!(read.access_token, tokens.access_token);
}
