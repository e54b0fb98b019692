//! No token, refresh token, state or PKCE verifier appears in a file name, in `Debug`
//! output, or in an error of the store.

mod support;

use grantkit_core::{
    AccessToken, GrantKind, RefreshToken, TokenKey, TokenSet, TokenStore,
    flow::FlowKind,
    provider::PkceVerifier,
    store::{PendingAuthorization, Precondition, StateToken},
};
use grantkit_store_file::FileTokenStore;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use support::{store_path, test_dir};

const ACCESS: &str = "SECRET-ACCESS-7c1f0e";
const REFRESH: &str = "SECRET-REFRESH-93ab44";
const STATE: &str = "SECRET-STATE-5d2e81";
const VERIFIER: &str = "SECRET-VERIFIER-0f6a3c";
const ACCOUNT: &str = "alice@example.com";

fn secrets() -> [&'static str; 4] {
    [ACCESS, REFRESH, STATE, VERIFIER]
}

fn assert_clean(what: &str, text: &str) {
    for secret in secrets() {
        assert!(!text.contains(secret), "{what} shows a secret: {text}");
    }
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, found);
        }
        found.push(path);
    }
}

fn secret_tokens() -> TokenSet {
    TokenSet::new(AccessToken::new(ACCESS), GrantKind::AuthorizationCode)
        .with_refresh_token(RefreshToken::new(REFRESH))
}

fn secret_pending() -> PendingAuthorization {
    let now = SystemTime::now();
    PendingAuthorization {
        state: StateToken::new(STATE),
        flow: FlowKind::AuthorizationCode,
        provider: "joinme".to_owned(),
        client: "client".to_owned(),
        redirect_uri: "http://127.0.0.1:1/cb".to_owned(),
        scopes: Vec::new(),
        pkce_verifier: Some(PkceVerifier::new(VERIFIER)),
        created_at: now,
        expires_at: now + Duration::from_secs(600),
        extras: BTreeMap::new(),
    }
}

#[tokio::test]
async fn secrets_never_reach_file_names_debug_output_or_errors() {
    let dir = test_dir("secrets");
    let root = store_path(dir.path());
    let store = FileTokenStore::open(&root).await.unwrap();
    let key = TokenKey::new("joinme", "client", ACCOUNT);
    let version = store
        .put(&key, &secret_tokens(), Precondition::Absent)
        .await
        .unwrap();
    let lease = store
        .try_lease(&key, Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    let pending = secret_pending();
    store
        .put_pending(&pending, Duration::from_secs(600))
        .await
        .unwrap();

    // File names: hashes (and a provider prefix), never a secret nor a key part.
    let mut paths = Vec::new();
    walk(&root, &mut paths);
    assert!(paths.len() > 5, "{paths:?}");
    for path in &paths {
        let name = path
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert_clean("a file name", &name);
        assert!(
            !name.contains(ACCOUNT) && !name.contains("alice"),
            "a key part in a file name: {name}"
        );
    }
    // The state's hash names the pending file, never the state.
    assert!(
        paths
            .iter()
            .any(|p| p.ends_with(format!("pending/{}.json", pending.state_hash())))
    );

    // Debug output of the store and of what it returns.
    assert_clean("the store's Debug", &format!("{store:?} {store:#?}"));
    let read = store.get(&key).await.unwrap().unwrap();
    assert_clean("a read token set's Debug", &format!("{read:?}"));

    // Errors: conflicts, lost leases, corrupt records (whose file holds the secrets).
    let mut errors = Vec::new();
    errors.push(
        store
            .put(&key, &secret_tokens(), Precondition::Absent)
            .await
            .unwrap_err(),
    );
    store.release_lease(&lease).await.unwrap();
    errors.push(
        store
            .renew_lease(&lease, Duration::from_secs(1))
            .await
            .unwrap_err(),
    );
    let record = paths
        .iter()
        .find(|p| {
            p.parent() == Some(&root.join("tokens")) && p.extension().is_some_and(|e| e == "json")
        })
        .unwrap();
    let original = fs::read_to_string(record).unwrap();
    assert!(
        original.contains(ACCESS),
        "the record holds the token (the test corrupts it next)"
    );
    for corruption in [
        original.replace(
            "\"expires_at_ms\":null",
            &format!("\"expires_at_ms\":\"{ACCESS}\""),
        ),
        original.replace(&format!("\"{REFRESH}\""), REFRESH),
        original.replace("\"version\":1", &format!("\"version\":\"{REFRESH}\"")),
        original.replace(
            "\"format\":\"grantkit.file_store.token\"",
            &format!("\"format\":\"{ACCESS}\""),
        ),
        original[..original.find(ACCESS).unwrap() + 10].to_owned(),
    ] {
        assert_ne!(corruption, original);
        fs::write(record, &corruption).unwrap();
        errors.push(store.get(&key).await.unwrap_err());
        errors.push(
            store
                .put(&key, &secret_tokens(), Precondition::Version(version))
                .await
                .unwrap_err(),
        );
    }
    let pending_file = root
        .join("pending")
        .join(format!("{}.json", pending.state_hash()));
    let pending_text = fs::read_to_string(&pending_file).unwrap();
    assert!(pending_text.contains(STATE) && pending_text.contains(VERIFIER));
    fs::write(
        &pending_file,
        pending_text.replace(
            "\"created_at_ms\":",
            &format!("\"created_at_ms\":\"{VERIFIER}\",\"x\":"),
        ),
    )
    .unwrap();
    errors.push(store.take_pending(&pending.state_hash()).await.unwrap_err());

    for err in &errors {
        assert_clean("an error", &format!("{err} / {err:?}"));
        let mut source = std::error::Error::source(err);
        while let Some(inner) = source {
            assert_clean("an error's source", &format!("{inner} / {inner:?}"));
            source = inner.source();
        }
    }
    assert!(
        errors
            .iter()
            .any(|e| matches!(e, grantkit_core::Error::CorruptRecord { .. }))
    );
}
