//! Tokens encrypted at rest, read back from the backends' own bytes: a full sign-in (the
//! authorization-code flow with PKCE against the independent authorization server) and a
//! refresh through `TokenManager` on an `EncryptedTokenStore` over each backend — the file
//! store, Redis, PostgreSQL and SQLite — and then every byte the backend keeps (files, Redis
//! values, SQL columns, the SQLite database and its log) is searched for the state, the PKCE
//! verifier, and the access and refresh tokens old and new. None may appear. A record
//! copied under another key does not open.

use grantkit_conformance::{Decision, ProviderHarness};
use grantkit_core::store::{Precondition, StateToken};
use grantkit_core::{Callback, Error, RedirectFlow, TokenKey, TokenManager, TokenStore};
use grantkit_standard::testing::{HarnessVariant, harness};
use grantkit_store_encrypted::{EncryptedTokenStore, Keyring, SealingKey};
use grantkit_store_file::FileTokenStore;
use grantkit_store_redis::RedisTokenStore;
use grantkit_store_redis::testing::TestRedis;
use grantkit_store_sql::SqlTokenStore;
use grantkit_store_sql::testing::{TestPostgres, random_prefix};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Every byte a backend keeps for the store under test.
type RawBytes = Box<dyn Fn() -> futures::future::BoxFuture<'static, Vec<Vec<u8>>> + Send + Sync>;

fn keys() -> Keyring {
    Keyring::new(SealingKey::generate("at-rest").expect("a key"))
}

/// The secrets of one sign-in and refresh, as the test learns them.
#[derive(Default)]
struct Secrets(Vec<(&'static str, String)>);

impl Secrets {
    fn add(&mut self, what: &'static str, value: &str) {
        assert!(value.len() >= 16, "{what} is too short to search for");
        self.0.push((what, value.to_owned()));
    }

    /// Fails naming the secret and the piece of storage it was found in.
    fn assert_absent_from(&self, pieces: &[Vec<u8>], moment: &str) {
        assert!(
            !pieces.is_empty(),
            "{moment}: the backend holds nothing at all"
        );
        for (what, value) in &self.0 {
            for (i, piece) in pieces.iter().enumerate() {
                assert!(
                    !contains(piece, value.as_bytes()),
                    "{moment}: the {what} is in clear in piece #{i} of the backend's bytes"
                );
            }
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn files_under(dir: &Path) -> Vec<Vec<u8>> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)
            .expect("a readable directory")
            .flatten()
        {
            let path: PathBuf = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                found.push(bytes);
            }
        }
    }
    found
}

/// Signs in through `store`, refreshes, and checks `raw` at each step.
async fn sign_in_and_refresh<S: TokenStore + 'static>(
    store: Arc<EncryptedTokenStore<S>>,
    raw: RawBytes,
) {
    let harness = harness(HarnessVariant::Default).await;
    let manager = TokenManager::builder(harness.provider(), store.clone() as Arc<dyn TokenStore>)
        .build()
        .expect("a manager");
    let mut secrets = Secrets::default();

    // Started: the pending authorization holds the state and the PKCE verifier.
    let flow =
        RedirectFlow::authorization_code(harness.redirect_uri()).with_scopes(harness.scopes());
    let url = manager.start_authorization(&flow).await.expect("begin");
    let authorization_url = url.expose_url().expect("a URL");
    let state = authorization_url
        .query_pairs()
        .find(|(name, _)| name == "state")
        .map(|(_, value)| value.into_owned())
        .expect("the request carries a state");
    assert!(
        authorization_url
            .query_pairs()
            .any(|(name, _)| name == "code_challenge"),
        "the flow uses PKCE"
    );
    let while_pending = raw().await;
    // The verifier is known only inside the sealed record: take it through the layer, note
    // it, and put the same authorization back for the callback.
    let state_hash = StateToken::new(state.clone()).hash();
    let pending = store
        .take_pending(&state_hash)
        .await
        .expect("take")
        .expect("the pending authorization");
    let verifier = pending
        .pkce_verifier
        .as_ref()
        .expect("a PKCE verifier")
        .expose_secret()
        .to_owned();
    store
        .put_pending(&pending, Duration::from_secs(600))
        .await
        .expect("put back");
    secrets.add("state", &state);
    secrets.add("PKCE verifier", &verifier);
    secrets.assert_absent_from(&while_pending, "while the flow was pending");
    secrets.assert_absent_from(&raw().await, "with the pending authorization put back");

    // Signed in.
    let callback = harness
        .authorize(authorization_url.as_str(), Decision::Approve)
        .await
        .expect("the user consents");
    let key = manager
        .complete_authorization(&Callback::parse(&callback).expect("a callback"))
        .await
        .expect("the flow completes");
    let first = manager.access_token(&key).await.expect("a token");
    secrets.add("access token", first.access_token.expose_secret());
    secrets.add(
        "refresh token",
        first
            .refresh_token
            .as_ref()
            .expect("a refresh token")
            .expose_secret(),
    );
    secrets.assert_absent_from(&raw().await, "after the sign-in");

    // Refreshed: the new pair (the server rotates refresh tokens) is sealed too.
    let second = manager.refresh(&key).await.expect("a refresh");
    assert_ne!(second.access_token, first.access_token);
    secrets.add(
        "refreshed access token",
        second.access_token.expose_secret(),
    );
    secrets.add(
        "rotated refresh token",
        second
            .refresh_token
            .as_ref()
            .expect("a refresh token")
            .expose_secret(),
    );
    secrets.assert_absent_from(&raw().await, "after the refresh");

    // A sealed record copied under another key does not open there, and says so.
    let carrier = store.inner().get(&key).await.unwrap().expect("the carrier");
    let elsewhere = TokenKey::new(key.provider.clone(), key.client.clone(), "someone-else");
    store
        .inner()
        .put(&elsewhere, &carrier.value, Precondition::Absent)
        .await
        .unwrap();
    match store.get(&elsewhere).await {
        Err(Error::CorruptRecord { key: named, reason }) => {
            assert!(named.ends_with("/someone-else"), "{named}");
            assert!(reason.contains("does not open"), "{reason}");
        }
        other => panic!("a moved record opened: {other:?}"),
    }
    let mine = store.get(&key).await.unwrap().expect("the grant");
    assert_eq!(mine.value.access_token, second.access_token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_store_bytes_hold_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tokens");
    let store = FileTokenStore::open(root.clone()).await.unwrap();
    let raw: RawBytes = Box::new(move || {
        let root = root.clone();
        Box::pin(async move { files_under(&root) })
    });
    sign_in_and_refresh(Arc::new(EncryptedTokenStore::new(store, keys())), raw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_values_hold_no_secret() {
    let redis = tokio::task::spawn_blocking(TestRedis::standalone)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("no Redis: {e}"));
    let prefix = grantkit_store_redis::testing::random_prefix();
    let store: RedisTokenStore = redis
        .store_builder()
        .key_prefix(&prefix)
        .build()
        .await
        .unwrap();
    let url = redis.topology().urls()[0].clone();
    let raw: RawBytes = Box::new(move || {
        let (url, prefix) = (url.clone(), prefix.clone());
        Box::pin(async move { redis_values(&url, &prefix).await })
    });
    sign_in_and_refresh(Arc::new(EncryptedTokenStore::new(store, keys())), raw).await;
}

/// Every value under `prefix`, whatever its type, with the key names.
async fn redis_values(url: &str, prefix: &str) -> Vec<Vec<u8>> {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let names: Vec<Vec<u8>> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut found = Vec::new();
    for name in names {
        let kind: String = redis::cmd("TYPE")
            .arg(&name)
            .query_async(&mut conn)
            .await
            .unwrap();
        let values: Vec<Vec<u8>> = match kind.as_str() {
            "string" => vec![
                redis::cmd("GET")
                    .arg(&name)
                    .query_async(&mut conn)
                    .await
                    .unwrap(),
            ],
            "hash" => redis::cmd("HGETALL")
                .arg(&name)
                .query_async(&mut conn)
                .await
                .unwrap(),
            "none" => Vec::new(),
            other => panic!("a value of type {other} under the store's prefix"),
        };
        found.push(name);
        found.extend(values);
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_columns_hold_no_secret() {
    let postgres = tokio::task::spawn_blocking(TestPostgres::shared)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("no PostgreSQL: {e}"));
    let prefix = random_prefix();
    let store = SqlTokenStore::builder()
        .url(postgres.url())
        .table_prefix(prefix.clone())
        .open()
        .await
        .unwrap();
    let pool = sqlx::PgPool::connect(postgres.url()).await.unwrap();
    let raw: RawBytes = Box::new(move || {
        let (pool, prefix) = (pool.clone(), prefix.clone());
        Box::pin(async move { sql_columns(&pool, &prefix).await })
    });
    sign_in_and_refresh(Arc::new(EncryptedTokenStore::new(store, keys())), raw).await;
}

/// Every column of every row of the store's tables, text and bytes alike.
async fn sql_columns(pool: &sqlx::PgPool, prefix: &str) -> Vec<Vec<u8>> {
    use sqlx::Row as _;
    let mut found = Vec::new();
    let tables = [
        (
            "tokens",
            &[][..],
            &["provider", "client", "account", "key_hash", "record"][..],
        ),
        ("pending", &["state_hash"][..], &["record"][..]),
        ("leases", &["holder"][..], &["key_hash"][..]),
    ];
    for (table, text, bytes) in tables {
        let columns: Vec<&str> = text.iter().chain(bytes).copied().collect();
        let sql = format!("SELECT {} FROM \"{prefix}{table}\"", columns.join(", "));
        for row in sqlx::query(&sql).fetch_all(pool).await.unwrap() {
            for (i, _) in text.iter().enumerate() {
                found.push(row.get::<String, _>(i).into_bytes());
            }
            for (i, _) in bytes.iter().enumerate() {
                found.push(row.get::<Vec<u8>, _>(text.len() + i));
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_holds_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlTokenStore::connect(&format!(
        "sqlite:{}",
        dir.path().join("tokens.db").display()
    ))
    .await
    .unwrap();
    // The database file, its write-ahead log and shared-memory index: every page written.
    let root = dir.path().to_owned();
    let raw: RawBytes = Box::new(move || {
        let root = root.clone();
        Box::pin(async move { files_under(&root) })
    });
    sign_in_and_refresh(Arc::new(EncryptedTokenStore::new(store, keys())), raw).await;
}

/// The control: the same searches find tokens written without the layer, so a pass above
/// means sealed, not unsearched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_searches_find_what_is_not_sealed() {
    use grantkit_core::{AccessToken, GrantKind, RefreshToken, TokenSet};
    let tokens = TokenSet::new(
        AccessToken::new("clear-access-0123456789"),
        GrantKind::Password,
    )
    .with_refresh_token(RefreshToken::new("clear-refresh-0123456789"));
    let key = TokenKey::new("control", "client", "account");
    let found_in = |pieces: &[Vec<u8>]| {
        pieces
            .iter()
            .any(|p| contains(p, b"clear-access-0123456789"))
    };

    let dir = tempfile::tempdir().unwrap();
    let files = FileTokenStore::open(dir.path().join("tokens"))
        .await
        .unwrap();
    files
        .put(&key, &tokens, Precondition::Absent)
        .await
        .unwrap();
    assert!(found_in(&files_under(dir.path())), "the file search");

    // A directory of its own: the search must find the token in SQLite's files alone.
    let sqlite_dir = tempfile::tempdir().unwrap();
    let sqlite = SqlTokenStore::connect(&format!(
        "sqlite:{}",
        sqlite_dir.path().join("t.db").display()
    ))
    .await
    .unwrap();
    sqlite
        .put(&key, &tokens, Precondition::Absent)
        .await
        .unwrap();
    assert!(
        found_in(&files_under(sqlite_dir.path())),
        "the SQLite search"
    );

    let postgres = tokio::task::spawn_blocking(TestPostgres::shared)
        .await
        .unwrap()
        .unwrap();
    let prefix = random_prefix();
    let store = SqlTokenStore::builder()
        .url(postgres.url())
        .table_prefix(prefix.clone())
        .open()
        .await
        .unwrap();
    store
        .put(&key, &tokens, Precondition::Absent)
        .await
        .unwrap();
    let pool = sqlx::PgPool::connect(postgres.url()).await.unwrap();
    assert!(
        found_in(&sql_columns(&pool, &prefix).await),
        "the column search"
    );

    let redis = tokio::task::spawn_blocking(TestRedis::standalone)
        .await
        .unwrap()
        .unwrap();
    let prefix = grantkit_store_redis::testing::random_prefix();
    let store = redis
        .store_builder()
        .key_prefix(&prefix)
        .build()
        .await
        .unwrap();
    store
        .put(&key, &tokens, Precondition::Absent)
        .await
        .unwrap();
    let url = redis.topology().urls()[0].clone();
    assert!(
        found_in(&redis_values(&url, &prefix).await),
        "the Redis search"
    );
}
