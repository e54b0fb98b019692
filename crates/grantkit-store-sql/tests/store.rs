//! What the SQL store does beyond the shared suite: schemas and prefixes, migrations,
//! clean-up, a corrupt row, an unreachable database — on a real PostgreSQL and SQLite.

use grantkit_core::store::{KeyFilter, PendingAuthorization, Precondition, StateToken};
use grantkit_core::{
    AccessToken, Error, GrantKind, RefreshToken, TokenKey, TokenSet, TokenStore, flow::FlowKind,
};
use grantkit_store_sql::SqlTokenStore;
use grantkit_store_sql::testing::{TestPostgres, random_prefix};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

async fn postgres() -> Arc<TestPostgres> {
    tokio::task::spawn_blocking(TestPostgres::shared)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("PostgreSQL for the tests: {e}"))
}

fn grant(access: &str) -> TokenSet {
    TokenSet::new(AccessToken::new(access), GrantKind::AuthorizationCode)
        .with_refresh_token(RefreshToken::new(format!("{access}-refresh")))
}

fn key(account: &str) -> TokenKey {
    TokenKey::new("sql", "client", account)
}

fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite:{}", dir.path().join("tokens.db").display())
}

#[tokio::test]
async fn schemas_and_prefixes_keep_stores_apart() {
    let postgres = postgres().await;
    let pool = sqlx::PgPool::connect(postgres.url()).await.unwrap();
    let schema = random_prefix().trim_end_matches('_').to_owned();
    sqlx::query(&format!("CREATE SCHEMA \"{schema}\""))
        .execute(&pool)
        .await
        .unwrap();
    let prefix = random_prefix();
    let in_schema = SqlTokenStore::builder()
        .url(postgres.url())
        .schema(schema.clone())
        .table_prefix(prefix.clone())
        .open()
        .await
        .unwrap();
    let in_public = SqlTokenStore::builder()
        .url(postgres.url())
        .table_prefix(prefix.clone())
        .open()
        .await
        .unwrap();
    in_schema
        .put(&key("a"), &grant("in-schema"), Precondition::Absent)
        .await
        .unwrap();
    assert!(in_public.get(&key("a")).await.unwrap().is_none());
    assert!(
        in_public
            .list(&KeyFilter::provider("sql"))
            .await
            .unwrap()
            .is_empty()
    );
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1",
    )
    .bind(&schema)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(tables, 4, "tokens, leases, pending, schema_migrations");
}

#[tokio::test]
async fn openers_at_once_migrate_once_and_newer_tables_are_refused() {
    let postgres = postgres().await;
    let dir = tempfile::tempdir().unwrap();
    for url in [postgres.url().to_owned(), sqlite_url(&dir)] {
        let prefix = random_prefix();
        let opens = (0..6).map(|_| {
            SqlTokenStore::builder()
                .url(url.clone())
                .table_prefix(prefix.clone())
                .open()
        });
        let stores = futures_join(opens).await;
        assert!(stores.iter().all(Result::is_ok), "{url}: {stores:?}");

        // A later version of this crate recorded its schema: this one refuses the tables.
        let store = stores.into_iter().next().unwrap().unwrap();
        store
            .put(&key("x"), &grant("x"), Precondition::Absent)
            .await
            .unwrap();
        record_schema_version(&url, &prefix, 99).await;
        match SqlTokenStore::builder()
            .url(url.clone())
            .table_prefix(prefix)
            .open()
            .await
        {
            Err(Error::Configuration { message }) => {
                assert!(message.contains("newer"), "{message}")
            }
            other => panic!("{url}: newer tables were accepted: {other:?}"),
        }
    }
}

async fn futures_join<F, T>(futures: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

async fn record_schema_version(url: &str, prefix: &str, version: i64) {
    let sql = format!(
        "INSERT INTO \"{prefix}schema_migrations\" (version, applied_at_ms) VALUES ($1, 0)"
    );
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        sqlx::query(&sql)
            .bind(version)
            .execute(&pool)
            .await
            .unwrap();
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::query(&sql)
            .bind(version)
            .execute(&pool)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn purge_deletes_only_what_expired() {
    let postgres = postgres().await;
    let dir = tempfile::tempdir().unwrap();
    for url in [postgres.url().to_owned(), sqlite_url(&dir)] {
        let store = SqlTokenStore::builder()
            .url(url.clone())
            .table_prefix(random_prefix())
            .open()
            .await
            .unwrap();
        let now = SystemTime::now();
        let mut dead = grant("dead");
        dead.expires_at = Some(now - Duration::from_secs(7200));
        dead.refresh_expires_at = Some(now - Duration::from_secs(3600));
        let mut alive = grant("alive");
        alive.expires_at = Some(now - Duration::from_secs(7200));
        alive.refresh_expires_at = Some(now + Duration::from_secs(3600));
        let unknown = grant("refresh-expiry-unknown");
        for (account, tokens) in [("dead", &dead), ("alive", &alive), ("unknown", &unknown)] {
            store
                .put(&key(account), tokens, Precondition::Absent)
                .await
                .unwrap();
        }
        let lapsed = store
            .try_lease(&key("alive"), Duration::from_millis(1))
            .await
            .unwrap()
            .expect("a lease");
        let held = store
            .try_lease(&key("unknown"), Duration::from_secs(60))
            .await
            .unwrap()
            .expect("a lease");
        let pending = |ttl: Duration| PendingAuthorization {
            state: StateToken::generate(),
            flow: FlowKind::AuthorizationCode,
            provider: "sql".to_owned(),
            client: "client".to_owned(),
            redirect_uri: "http://127.0.0.1/callback".to_owned(),
            scopes: Vec::new(),
            pkce_verifier: None,
            created_at: now,
            expires_at: now + ttl,
            extras: BTreeMap::new(),
        };
        let (stale, fresh) = (pending(Duration::ZERO), pending(Duration::from_secs(600)));
        store.put_pending(&stale, Duration::ZERO).await.unwrap();
        store
            .put_pending(&fresh, Duration::from_secs(600))
            .await
            .unwrap();
        // The shortest TTLs (a lease of 1 ms, a pending authorization's 1 s floor) run out.
        tokio::time::sleep(Duration::from_millis(1100)).await;

        let purged = store.purge_expired().await.unwrap();
        assert_eq!(
            (purged.grants, purged.leases, purged.pending),
            (1, 1, 1),
            "{url}"
        );
        assert!(store.get(&key("dead")).await.unwrap().is_none());
        assert!(store.get(&key("alive")).await.unwrap().is_some());
        assert!(store.get(&key("unknown")).await.unwrap().is_some());
        assert!(matches!(
            store.renew_lease(&lapsed, Duration::from_secs(1)).await,
            Err(Error::LeaseLost { .. })
        ));
        store
            .renew_lease(&held, Duration::from_secs(60))
            .await
            .unwrap();
        assert!(
            store
                .take_pending(&stale.state_hash())
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .take_pending(&fresh.state_hash())
                .await
                .unwrap()
                .is_some()
        );
    }
}

#[tokio::test]
async fn a_corrupt_row_is_its_own_keys_error_and_quotes_nothing() {
    let postgres = postgres().await;
    let prefix = random_prefix();
    let store = SqlTokenStore::builder()
        .url(postgres.url())
        .table_prefix(prefix.clone())
        .open()
        .await
        .unwrap();
    let secret = "corrupt-0123456789-token";
    for account in ["good", "bad"] {
        store
            .put(&key(account), &grant(secret), Precondition::Absent)
            .await
            .unwrap();
    }
    let pool = sqlx::PgPool::connect(postgres.url()).await.unwrap();
    // Half a record: cut in the middle of the token.
    sqlx::query(&format!(
        "UPDATE \"{prefix}tokens\" SET record = substring(record from 1 for 40) WHERE account = 'bad'"
    ))
    .execute(&pool)
    .await
    .unwrap();
    match store.get(&key("bad")).await {
        Err(err @ Error::CorruptRecord { .. }) => {
            let shown = format!("{err} {err:?}");
            assert!(shown.contains("sql/client/bad"), "{shown}");
            assert!(!shown.contains("corrupt-0123"), "{shown}");
        }
        other => panic!("a corrupt row was read: {other:?}"),
    }
    let answers = store.get_many(&[key("good"), key("bad")]).await.unwrap();
    assert!(matches!(answers[0], Ok(Some(_))));
    assert!(matches!(answers[1], Err(Error::CorruptRecord { .. })));
}

#[tokio::test]
async fn an_unreachable_database_is_a_retryable_error_within_the_timeouts() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let err = SqlTokenStore::builder()
        .url(format!("postgres://app:pa55word@127.0.0.1:{port}/app"))
        .connect_timeout(Duration::from_millis(500))
        .operation_timeout(Duration::from_millis(500))
        .open()
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("pa55word"), "{shown}");
}
