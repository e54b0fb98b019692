//! A durable Redis (`appendonly yes`, `appendfsync always`) killed and restarted while a
//! writer keeps writing: the same store recovers by itself, every error in between is a
//! retryable store error, and every write that was acknowledged is there afterwards.

use grantkit_core::{
    AccessToken, Error, GrantKind, TokenKey, TokenSet, TokenStore,
    store::{Precondition, Version},
};
use grantkit_store_redis::RedisTokenStore;
use grantkit_store_redis::testing::{RedisServer, ServerOptions};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

fn tokens(label: &str) -> TokenSet {
    TokenSet::new(AccessToken::new(label), GrantKind::Password)
}

#[derive(Default)]
struct Log {
    /// Keys whose `put` returned `Ok`.
    acknowledged: Vec<usize>,
    /// The last acknowledged value of the counter record.
    counter: Option<(u64, Version)>,
    /// Errors seen, all retryable store errors.
    errors: Vec<String>,
}

async fn wait_for(what: &str, limit: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_durable_server_keeps_every_acknowledged_write() {
    let mut server =
        tokio::task::spawn_blocking(|| RedisServer::start_with(ServerOptions::new().durable()))
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{e}"));
    let store = Arc::new(
        RedisTokenStore::builder()
            .url(server.url())
            .key_prefix("restart:")
            .operation_timeout(Duration::from_secs(1))
            .connect_timeout(Duration::from_millis(300))
            .build()
            .await
            .unwrap(),
    );
    let log = Arc::new(Mutex::new(Log::default()));
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let counter_key = TokenKey::new("p", "c", "counter");
    let counter_version = store
        .put(&counter_key, &tokens("count-0"), Precondition::Absent)
        .await
        .unwrap();
    log.lock().await.counter = Some((0, counter_version));

    // Two writers: new records (put Absent) and one record updated by compare-and-swap.
    let writer = {
        let (store, log, acknowledged, stop) = (
            store.clone(),
            log.clone(),
            acknowledged.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut next = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let key = TokenKey::new("p", "c", format!("record-{next}"));
                let result = store
                    .put(
                        &key,
                        &tokens(&format!("value-{next}")),
                        Precondition::Absent,
                    )
                    .await;
                let mut log = log.lock().await;
                match result {
                    Ok(_) => {
                        log.acknowledged.push(next);
                        acknowledged.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(err) => log.errors.push(describe(&err)),
                }
                drop(log);
                // A failed put may still have been applied: never reuse its key.
                next += 1;
            }
        })
    };
    let updater = {
        let (store, log, stop, key) = (
            store.clone(),
            log.clone(),
            stop.clone(),
            counter_key.clone(),
        );
        tokio::spawn(async move {
            // Set when a write failed: it may or may not have been applied.
            let mut uncertain = false;
            while !stop.load(Ordering::Relaxed) {
                let (count, version) = log.lock().await.counter.unwrap();
                let result = store
                    .put(
                        &key,
                        &tokens(&format!("count-{}", count + 1)),
                        Precondition::Version(version),
                    )
                    .await;
                match result {
                    Ok(new) => log.lock().await.counter = Some((count + 1, new)),
                    // Our own earlier write went through after all.
                    Err(Error::Conflict { .. }) if uncertain => {}
                    Err(err) => {
                        log.lock().await.errors.push(describe(&err));
                        uncertain = true;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                if uncertain && let Ok(Some(stored)) = store.get(&key).await {
                    let stored_count = count_of(&stored.value);
                    assert!(stored_count >= count, "the counter went back");
                    log.lock().await.counter = Some((stored_count, stored.version));
                    uncertain = false;
                }
            }
        })
    };

    wait_for("200 acknowledged writes", Duration::from_secs(60), || {
        acknowledged.load(Ordering::Relaxed) >= 200
    })
    .await;
    let mut server = tokio::task::spawn_blocking(move || {
        server.crash();
        server
    })
    .await
    .unwrap();
    let before_restart = acknowledged.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let server = tokio::task::spawn_blocking(move || server.restart().map(|()| server))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));
    wait_for(
        "200 more acknowledged writes after the restart",
        Duration::from_secs(60),
        || acknowledged.load(Ordering::Relaxed) >= before_restart + 200,
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    writer.await.expect("the writer panicked");
    updater.await.expect("the updater panicked");

    let log = log.lock().await;
    for error in &log.errors {
        assert!(
            error.starts_with("retryable store error"),
            "an error during the outage was not a retryable store error: {error}"
        );
    }
    let mut missing = Vec::new();
    for &i in &log.acknowledged {
        let key = TokenKey::new("p", "c", format!("record-{i}"));
        match store.get(&key).await.unwrap() {
            Some(stored) => assert_eq!(
                stored.value.access_token.expose_secret(),
                format!("value-{i}")
            ),
            None => missing.push(i),
        }
    }
    assert!(
        missing.is_empty(),
        "acknowledged writes lost in the restart: {missing:?}"
    );
    let (count, _) = log.counter.unwrap();
    let stored = store.get(&counter_key).await.unwrap().unwrap();
    assert!(
        count_of(&stored.value) >= count,
        "the counter lost acknowledged increments"
    );
    println!(
        "{} acknowledged writes, {} errors during the outage",
        log.acknowledged.len(),
        log.errors.len()
    );
    drop(server);
}

fn describe(err: &Error) -> String {
    match err {
        Error::Store {
            retryable: true, ..
        } => format!("retryable store error: {err}"),
        other => format!("unexpected: {other:?}"),
    }
}

fn count_of(tokens: &TokenSet) -> u64 {
    tokens
        .access_token
        .expose_secret()
        .strip_prefix("count-")
        .and_then(|n| n.parse().ok())
        .expect("a counter token")
}
