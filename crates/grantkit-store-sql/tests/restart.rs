//! PostgreSQL shut down in the middle of a run of increments — once fast, once immediate
//! (as a crash) — and started again: the same store carries on without being rebuilt, every
//! error meanwhile is retryable, and no acknowledged write is lost or doubled.

use grantkit_core::{
    AccessToken, Error, GrantKind, TokenKey, TokenSet, TokenStore, store::Precondition,
};
use grantkit_store_sql::SqlTokenStore;
use grantkit_store_sql::testing::{PostgresServer, Shutdown};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const TARGET: u64 = 300;

fn counter(count: u64) -> TokenSet {
    TokenSet::new(
        AccessToken::new(format!("count-{count}")),
        GrantKind::Password,
    )
}

fn count_of(tokens: &TokenSet) -> u64 {
    tokens.access_token.expose_secret()["count-".len()..]
        .parse()
        .expect("a counter token")
}

/// What the incrementing task saw.
#[derive(Debug, Default)]
struct Progress {
    /// Increments the store acknowledged.
    acknowledged: AtomicU64,
    /// Increments whose write failed but had landed (found on the next read).
    landed_unacknowledged: AtomicU64,
    /// Failed calls during the outages (all retryable).
    errors: AtomicU64,
}

/// Increments the counter to `TARGET` by read-modify-write, riding out outages: a call
/// that fails is retried after a pause; a write whose outcome was unknown is recognised by
/// the next read (one writer: if the count moved, the write landed).
async fn increment_to_target(store: SqlTokenStore, key: TokenKey, progress: Arc<Progress>) {
    let mut expected = 0u64;
    let mut in_doubt = false;
    while expected < TARGET {
        let current = match store.get(&key).await {
            Ok(found) => found.expect("the counter is never deleted"),
            Err(err) => {
                assert!(err.is_retryable(), "a read failed for good: {err}");
                progress.errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let count = count_of(&current.value);
        if in_doubt && count == expected + 1 {
            progress
                .landed_unacknowledged
                .fetch_add(1, Ordering::Relaxed);
            expected = count;
            in_doubt = false;
            continue;
        }
        assert_eq!(
            count, expected,
            "an acknowledged write was lost or one was doubled"
        );
        in_doubt = false;
        match store
            .put(
                &key,
                &counter(count + 1),
                Precondition::Version(current.version),
            )
            .await
        {
            Ok(_) => {
                progress.acknowledged.fetch_add(1, Ordering::Relaxed);
                expected = count + 1;
            }
            Err(Error::Conflict { .. }) => panic!("no other writer: a conflict is a bug"),
            Err(err) => {
                assert!(err.is_retryable(), "a write failed for good: {err}");
                progress.errors.fetch_add(1, Ordering::Relaxed);
                in_doubt = true;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn wait_for(progress: &Progress, done: u64) {
    let limit = tokio::time::Instant::now() + Duration::from_secs(120);
    while progress.acknowledged.load(Ordering::Relaxed)
        + progress.landed_unacknowledged.load(Ordering::Relaxed)
        < done
    {
        assert!(
            tokio::time::Instant::now() < limit,
            "no progress: {progress:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Stops the server the given way, leaves it down a moment, and starts it again.
async fn bounce(server: PostgresServer, shutdown: Shutdown) -> PostgresServer {
    tokio::task::spawn_blocking(move || {
        let mut server = server;
        server.stop(shutdown);
        std::thread::sleep(Duration::from_millis(500));
        server.start().expect("PostgreSQL starts again");
        server
    })
    .await
    .expect("restarting PostgreSQL panicked")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_loses_no_acknowledged_write() {
    let server = tokio::task::spawn_blocking(PostgresServer::start_new)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("PostgreSQL for the test: {e}"));
    let store = SqlTokenStore::builder()
        .url(server.url())
        .operation_timeout(Duration::from_secs(2))
        .open()
        .await
        .unwrap();
    let key = TokenKey::new("restart", "client", "counter");
    store
        .put(&key, &counter(0), Precondition::Absent)
        .await
        .unwrap();

    let progress = Arc::new(Progress::default());
    let task = tokio::spawn(increment_to_target(
        store.clone(),
        key.clone(),
        progress.clone(),
    ));
    wait_for(&progress, 60).await;
    let server = bounce(server, Shutdown::Fast).await;
    wait_for(&progress, 160).await;
    let _server = bounce(server, Shutdown::Immediate).await;
    tokio::time::timeout(Duration::from_secs(120), task)
        .await
        .expect("the increments finish once the server is back")
        .expect("the incrementing task panicked");

    eprintln!("after two restarts: {progress:?}");
    let stored = store.get(&key).await.unwrap().unwrap();
    assert_eq!(count_of(&stored.value), TARGET);
    let acknowledged = progress.acknowledged.load(Ordering::Relaxed);
    let landed = progress.landed_unacknowledged.load(Ordering::Relaxed);
    assert_eq!(acknowledged + landed, TARGET, "{progress:?}");
    assert!(
        progress.errors.load(Ordering::Relaxed) > 0,
        "the outages happened while increments ran: {progress:?}"
    );
}
