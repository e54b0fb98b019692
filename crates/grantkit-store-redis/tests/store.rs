//! What the conformance suite cannot see from outside: expiry in Redis, the key layout,
//! typed errors for foreign values and outages, and secrets kept out of keys, `Debug` and
//! errors.

use grantkit_core::{
    AccessToken, Error, GrantKind, RefreshToken, TokenKey, TokenSet, TokenStore,
    clock::ManualClock,
    flow::FlowKind,
    provider::PkceVerifier,
    store::{KeyFilter, PendingAuthorization, Precondition, StateToken},
};
use grantkit_store_redis::RedisTokenStore;
use grantkit_store_redis::testing::{RedisServer, ServerOptions, TestRedis};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const ACCESS_SECRET: &str = "access-SECRET-7f3a9c";
const REFRESH_SECRET: &str = "refresh-SECRET-c0ffee";
const STATE_SECRET: &str = "state-SECRET-5eed5eed";
const VERIFIER_SECRET: &str = "verifier-SECRET-abcdef0123456789abcdef0123456789abcdef01";
const PASSWORD_SECRET: &str = "redis-password-SECRET-91";

fn secrets() -> [&'static str; 5] {
    [
        ACCESS_SECRET,
        REFRESH_SECRET,
        STATE_SECRET,
        VERIFIER_SECRET,
        PASSWORD_SECRET,
    ]
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in secrets() {
        assert!(!text.contains(secret), "{what} shows a secret: {text}");
    }
}

fn secret_tokens() -> TokenSet {
    TokenSet::new(
        AccessToken::new(ACCESS_SECRET),
        GrantKind::AuthorizationCode,
    )
    .with_refresh_token(RefreshToken::new(REFRESH_SECRET))
}

fn secret_pending() -> PendingAuthorization {
    let now = SystemTime::now();
    PendingAuthorization {
        state: StateToken::new(STATE_SECRET),
        flow: FlowKind::AuthorizationCode,
        provider: "joinme".to_owned(),
        client: "client".to_owned(),
        redirect_uri: "http://127.0.0.1:1/cb".to_owned(),
        scopes: vec!["scheduler".to_owned()],
        pkce_verifier: Some(PkceVerifier::new(VERIFIER_SECRET)),
        created_at: now,
        expires_at: now + Duration::from_secs(600),
        extras: BTreeMap::new(),
    }
}

async fn raw(redis: &TestRedis) -> redis::aio::MultiplexedConnection {
    let url = redis.topology().urls()[0].clone();
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn standalone() -> &'static TestRedis {
    tokio::task::spawn_blocking(TestRedis::standalone)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn pttl(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query_async(conn).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_expire_only_when_the_refresh_expiry_is_known() {
    let redis = standalone().await;
    // A clock far from the real one: the expiry must be relative to the store's clock.
    let start = SystemTime::now() + Duration::from_secs(400 * 24 * 3600);
    let clock = Arc::new(ManualClock::new(start));
    let store = redis
        .store_builder()
        .clock(clock.clone())
        .token_ttl_floor(Duration::from_secs(120))
        .build()
        .await
        .unwrap();
    let mut conn = raw(redis).await;
    let key = TokenKey::new("p", "c", "expiry");
    let record = store.record_key(&key);

    let mut tokens = secret_tokens();
    tokens.refresh_expires_at = Some(start + Duration::from_secs(3600));
    tokens.expires_at = Some(start + Duration::from_secs(60));
    store.put(&key, &tokens, Precondition::Any).await.unwrap();
    let ttl = pttl(&mut conn, &record).await;
    assert!(
        (3_590_000..=3_600_000).contains(&ttl),
        "refresh expiry 1 h: {ttl}"
    );

    // An access token that outlives its refresh token keeps the grant alive.
    tokens.expires_at = Some(start + Duration::from_secs(7200));
    store.put(&key, &tokens, Precondition::Any).await.unwrap();
    let ttl = pttl(&mut conn, &record).await;
    assert!(
        (7_190_000..=7_200_000).contains(&ttl),
        "access outlives refresh: {ttl}"
    );

    // Already past: the floor.
    clock.advance(Duration::from_secs(10 * 3600));
    store.put(&key, &tokens, Precondition::Any).await.unwrap();
    let ttl = pttl(&mut conn, &record).await;
    assert!((110_000..=120_000).contains(&ttl), "floor: {ttl}");

    // Unknown refresh expiry: no expiry at all, also after an earlier one.
    tokens.refresh_expires_at = None;
    store.put(&key, &tokens, Precondition::Any).await.unwrap();
    assert_eq!(pttl(&mut conn, &record).await, -1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_increase_and_a_deleted_grant_leaves_a_tombstone() {
    let redis = standalone().await;
    let store = redis
        .store_builder()
        .tombstone_ttl(Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    let key = TokenKey::new("p", "c", "versions");
    let v1 = store
        .put(&key, &secret_tokens(), Precondition::Absent)
        .await
        .unwrap();
    let v2 = store
        .put(&key, &secret_tokens(), Precondition::Version(v1))
        .await
        .unwrap();
    assert!(v2.as_u64() > v1.as_u64());
    assert!(store.delete(&key, Precondition::Version(v2)).await.unwrap());

    let mut conn = raw(redis).await;
    // The tombstone shares the record's hash tag: `<prefix>gone:{T}`.
    let record = store.record_key(&key);
    let tag = &record[record.find('{').unwrap()..];
    let tombstone = format!("{}gone:{tag}", store.key_prefix());
    let kept: Option<String> = redis::cmd("GET")
        .arg(&tombstone)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(kept, Some(v2.as_u64().to_string()));
    let ttl = pttl(&mut conn, &tombstone).await;
    assert!((1..=60_000).contains(&ttl), "tombstone TTL {ttl}");

    // Even if the server's clock stood still, the re-created grant starts above v2.
    redis::cmd("SET")
        .arg(&tombstone)
        .arg(u64::MAX / 4096)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let v3 = store
        .put(&key, &secret_tokens(), Precondition::Absent)
        .await
        .unwrap();
    assert_eq!(v3.as_u64(), u64::MAX / 4096 + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_or_corrupt_values_are_corrupt_records_without_quoting_them() {
    let redis = standalone().await;
    let store = redis.store().await.unwrap();
    let mut conn = raw(redis).await;

    let wrong_type = TokenKey::new("p", "c", "a string sits here");
    redis::cmd("SET")
        .arg(store.record_key(&wrong_type))
        .arg(ACCESS_SECRET)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let err = store.get(&wrong_type).await.unwrap_err();
    assert!(
        matches!(&err, Error::CorruptRecord { key, .. } if key == "p/c/a string sits here"),
        "{err:?}"
    );
    assert_no_secret("error", &format!("{err} {err:?}"));
    let err = store
        .put(&wrong_type, &secret_tokens(), Precondition::Any)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::CorruptRecord { .. }), "{err:?}");

    let garbage = TokenKey::new("p", "c", "garbage");
    redis::cmd("HSET")
        .arg(store.record_key(&garbage))
        .arg("v")
        .arg("12")
        .arg("d")
        .arg(format!("{{\"format\":\"grantkit.token_set\",\"version\":1,\"access_token\":7,\"x\":\"{ACCESS_SECRET}\"}}"))
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let err = store.get(&garbage).await.unwrap_err();
    assert!(matches!(err, Error::CorruptRecord { .. }), "{err:?}");
    assert_no_secret("error", &format!("{err} {err:?}"));

    let no_version = TokenKey::new("p", "c", "no version");
    redis::cmd("HSET")
        .arg(store.record_key(&no_version))
        .arg("d")
        .arg("{}")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    assert!(matches!(
        store.get(&no_version).await,
        Err(Error::CorruptRecord { .. })
    ));

    // Other keys keep working.
    let fine = TokenKey::new("p", "c", "fine");
    store
        .put(&fine, &secret_tokens(), Precondition::Absent)
        .await
        .unwrap();
    assert!(store.get(&fine).await.unwrap().is_some());
    let listed = store.list(&KeyFilter::provider("p")).await.unwrap();
    assert!(listed.contains(&fine), "{listed:?}");

    // Read in one batch, each bad record is its own key's error; the rest are answered.
    let answers = store
        .get_many(&[
            wrong_type.clone(),
            fine.clone(),
            garbage.clone(),
            TokenKey::new("p", "c", "nothing here"),
            no_version.clone(),
        ])
        .await
        .expect("one batch of reads");
    let shown: Vec<String> = answers
        .iter()
        .map(|answer| match answer {
            Ok(Some(_)) => "found".to_owned(),
            Ok(None) => "absent".to_owned(),
            Err(Error::CorruptRecord { key, .. }) => format!("corrupt {key}"),
            Err(other) => format!("other error {other}"),
        })
        .collect();
    assert_eq!(
        shown,
        [
            "corrupt p/c/a string sits here",
            "found",
            "corrupt p/c/garbage",
            "absent",
            "corrupt p/c/no version"
        ]
    );
    for answer in &answers {
        if let Err(err) = answer {
            assert_no_secret("error", &format!("{err} {err:?}"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_keys_debug_or_errors() {
    let server = tokio::task::spawn_blocking(|| {
        RedisServer::start_with(ServerOptions::new().config("requirepass", PASSWORD_SECRET))
    })
    .await
    .unwrap()
    .unwrap();
    let url = format!("redis://:{PASSWORD_SECRET}@127.0.0.1:{}", server.port());
    let store = RedisTokenStore::builder()
        .url(&url)
        .key_prefix("secrets-test:")
        .build()
        .await
        .unwrap();
    assert_no_secret("store Debug", &format!("{store:?}"));
    assert_no_secret(
        "builder Debug",
        &format!("{:?}", RedisTokenStore::builder().url(&url)),
    );

    let key = TokenKey::new("joinme", "client", "user@example.com");
    store
        .put(&key, &secret_tokens(), Precondition::Absent)
        .await
        .unwrap();
    let pending = secret_pending();
    store
        .put_pending(&pending, Duration::from_secs(600))
        .await
        .unwrap();
    let lease = store
        .try_lease(&key, Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert_no_secret("lease Debug", &format!("{lease:?}"));
    let read = store.get(&key).await.unwrap().unwrap();
    assert_no_secret("token set Debug", &format!("{read:?}"));

    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("secrets-test:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 3, "record, lease and pending: {keys:?}");
    for redis_key in &keys {
        assert_no_secret("a Redis key", redis_key);
        assert!(!redis_key.contains("user@example.com"), "{redis_key}");
    }
    assert!(keys.contains(&store.pending_key(&pending.state_hash())));

    // A wrong password: the error names no password.
    let wrong = format!(
        "redis://:wrong-{PASSWORD_SECRET}@127.0.0.1:{}",
        server.port()
    );
    let err = RedisTokenStore::builder()
        .url(&wrong)
        .operation_timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Store { .. }), "{err:?}");
    assert_no_secret("auth error", &format!("{err} {err:?}"));
    assert!(!err.to_string().contains("wrong-"), "{err}");

    // An outage: the errors name no secret either.
    drop(server);
    let err = store.get(&key).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert_no_secret("outage error", &format!("{err} {err:?}"));
    let err = store
        .get_many(std::slice::from_ref(&key))
        .await
        .expect_err("a batch of reads fails as a whole in an outage");
    assert!(err.is_retryable(), "{err:?}");
    assert_no_secret("outage error", &format!("{err} {err:?}"));
    let err = store
        .put(&key, &secret_tokens(), Precondition::Any)
        .await
        .unwrap_err();
    assert_no_secret("outage error", &format!("{err} {err:?}"));
    let err = store.take_pending(&pending.state_hash()).await.unwrap_err();
    assert_no_secret("outage error", &format!("{err} {err:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_gives_retryable_errors_and_the_store_recovers() {
    let mut server = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap()
        .unwrap();
    let store = RedisTokenStore::builder()
        .url(server.url())
        .operation_timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_millis(500))
        .build()
        .await
        .unwrap();
    let key = TokenKey::new("p", "c", "outage");
    store
        .put(&key, &secret_tokens(), Precondition::Any)
        .await
        .unwrap();
    server.crash();
    for _ in 0..3 {
        match store.get(&key).await {
            Err(Error::Store {
                retryable: true, ..
            }) => {}
            other => panic!("expected a retryable store error, got {other:?}"),
        }
        match store.try_lease(&key, Duration::from_secs(1)).await {
            Err(Error::Store {
                retryable: true, ..
            }) => {}
            other => panic!("expected a retryable store error, got {other:?}"),
        }
    }
    // Not durable: the data is gone, but the same store serves the new server.
    let mut server = tokio::task::spawn_blocking(move || server.restart().map(|()| server))
        .await
        .unwrap()
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match store.put(&key, &secret_tokens(), Precondition::Any).await {
            Ok(_) => break,
            Err(err) if err.is_retryable() && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => panic!("the store did not recover: {err:?}"),
        }
    }
    assert!(store.get(&key).await.unwrap().is_some());
    server.crash();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_fails_with_typed_errors() {
    // Nothing listens on a port just released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = RedisTokenStore::builder()
        .url(format!("redis://127.0.0.1:{port}"))
        .operation_timeout(Duration::from_secs(2))
        .reconnect_attempts(1)
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Store {
                retryable: true,
                ..
            }
        ),
        "{err:?}"
    );
    for bad in ["", "http://127.0.0.1", "redis://127.0.0.1:99999"] {
        let err = RedisTokenStore::connect(bad).await.unwrap_err();
        assert!(matches!(err, Error::Configuration { .. }), "{bad}: {err:?}");
    }
    let err = RedisTokenStore::builder()
        .url("redis://127.0.0.1")
        .key_prefix("tenant{1}:")
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Configuration { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_store_keeps_every_key_of_a_grant_in_one_slot() {
    let redis = tokio::task::spawn_blocking(TestRedis::cluster)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));
    let store = redis.store().await.unwrap();
    // Accounts whose braces would pick a hash tag of their own if used verbatim.
    for account in ["{a}", "}{", "{", "x{y}z", "{}"] {
        let key = TokenKey::new("p", "c", account);
        let version = store
            .put(&key, &secret_tokens(), Precondition::Absent)
            .await
            .unwrap();
        let lease = store
            .try_lease(&key, Duration::from_secs(10))
            .await
            .unwrap()
            .expect("lease");
        store
            .renew_lease(&lease, Duration::from_secs(10))
            .await
            .unwrap();
        store.release_lease(&lease).await.unwrap();
        assert!(
            store
                .delete(&key, Precondition::Version(version))
                .await
                .unwrap()
        );
    }
    // The grants of a list spread over every master.
    let keys: Vec<TokenKey> = (0..60)
        .map(|i| TokenKey::new("spread", "c", format!("user-{i}")))
        .collect();
    for key in &keys {
        store
            .put(key, &secret_tokens(), Precondition::Any)
            .await
            .unwrap();
    }
    let mut listed = store.list(&KeyFilter::provider("spread")).await.unwrap();
    listed.sort();
    let mut expected = keys.clone();
    expected.sort();
    assert_eq!(listed, expected);
    let mut masters_used = std::collections::HashSet::new();
    for node in redis.topology().urls() {
        let mut conn = redis::Client::open(node.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let found: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}tok:*", store.key_prefix()))
            .query_async(&mut conn)
            .await
            .unwrap();
        if !found.is_empty() {
            masters_used.insert(node.clone());
        }
    }
    if std::env::var(grantkit_store_redis::testing::ENV_TEST_CLUSTER_URLS).is_err() {
        assert_eq!(masters_used.len(), 3, "60 grants land on every master");
    }

    // A batch of reads goes to the masters that serve its keys: no node answers MOVED.
    let moved_before = moved_replies(redis).await;
    let answers = store.get_many(&keys).await.unwrap();
    assert_eq!(answers.len(), keys.len());
    for (key, answer) in keys.iter().zip(answers) {
        assert!(answer.unwrap().is_some(), "{key} was written");
    }
    assert_eq!(
        moved_replies(redis).await,
        moved_before,
        "a pipeline of reads was sent to a node that does not serve its keys"
    );
}

/// How many `MOVED` replies the nodes of `redis` have given (`INFO errorstats`).
async fn moved_replies(redis: &TestRedis) -> u64 {
    let mut total = 0;
    for node in redis.topology().urls() {
        let mut conn = redis::Client::open(node.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let info: String = redis::cmd("INFO")
            .arg("errorstats")
            .query_async(&mut conn)
            .await
            .unwrap();
        total += info
            .lines()
            .filter_map(|line| line.strip_prefix("errorstat_MOVED:count="))
            .filter_map(|count| count.trim().parse::<u64>().ok())
            .sum::<u64>();
    }
    total
}

/// A rolling upgrade meets records of format 1 (a hash): they are read and listed as
/// before, and the next write replaces them with format 3 (one string) under the same
/// compare-and-swap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_of_format_one_are_read_and_rewritten_by_the_next_write() {
    let redis = standalone().await;
    let store = redis.store().await.unwrap();
    let mut conn = raw(redis).await;
    let key = TokenKey::new("legacy", "client", "account {1}|2:3");
    let record = store.record_key(&key);
    let old = secret_tokens();
    redis::cmd("HSET")
        .arg(&record)
        .arg("v")
        .arg("1700000000000000")
        .arg("d")
        .arg(grantkit_core::store::codec::encode_token_set(&old))
        .arg("p")
        .arg(&key.provider)
        .arg("c")
        .arg(&key.client)
        .arg("a")
        .arg(&key.account)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let read = store.get(&key).await.unwrap().expect("the format-1 record");
    assert_eq!(read.version.as_u64(), 1_700_000_000_000_000);
    // A batch of reads meets it too (with a record of the current format beside it).
    let beside = TokenKey::new("legacy", "client", "current format");
    let beside_version = store
        .put(&beside, &old, Precondition::Absent)
        .await
        .unwrap();
    let answers = store
        .get_many(&[beside.clone(), key.clone()])
        .await
        .unwrap();
    let versions: Vec<u64> = answers
        .into_iter()
        .map(|answer| answer.unwrap().expect("stored").version.as_u64())
        .collect();
    assert_eq!(versions, [beside_version.as_u64(), read.version.as_u64()]);
    store.delete(&beside, Precondition::Any).await.unwrap();
    assert!(read.value.access_token == old.access_token);
    let listed = store.list(&KeyFilter::provider("legacy")).await.unwrap();
    assert_eq!(listed, std::slice::from_ref(&key));
    // A write based on another version is refused; one based on this version rewrites.
    let stale = store
        .put(
            &key,
            &old,
            Precondition::Version(grantkit_core::store::Version::from_u64(5)),
        )
        .await;
    assert!(matches!(stale, Err(Error::Conflict { .. })), "{stale:?}");
    let new = TokenSet::new(AccessToken::new("rewritten"), GrantKind::Password);
    let version = store
        .put(&key, &new, Precondition::Version(read.version))
        .await
        .unwrap();
    assert_eq!(version.as_u64(), read.version.as_u64() + 1);
    let kind: String = redis::cmd("TYPE")
        .arg(&record)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(kind, "string", "rewritten as format 3");
    let again = store.get(&key).await.unwrap().unwrap();
    assert_eq!(again.version, version);
    assert_eq!(again.value.access_token.expose_secret(), "rewritten");
    assert_eq!(
        store.list(&KeyFilter::provider("legacy")).await.unwrap(),
        std::slice::from_ref(&key)
    );
    assert!(
        store
            .delete(&key, Precondition::Version(version))
            .await
            .unwrap()
    );
}

/// Records of format 2 (the token set in JSON) are read, listed and refused a stale write
/// like any other, and both kinds of write replace them with format 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_of_format_two_are_read_and_rewritten_by_the_next_write() {
    let redis = standalone().await;
    let store = redis.store().await.unwrap();
    let mut conn = raw(redis).await;
    let old = secret_tokens();
    for (account, replaces_version) in [("replaced {x}", true), ("overwritten |2:", false)] {
        let key = TokenKey::new("format-two", "client", account);
        let record = store.record_key(&key);
        let mut value = format!(
            "v2|1700000000000042|{}:{}{}:{}{}:{}",
            key.provider.len(),
            key.provider,
            key.client.len(),
            key.client,
            key.account.len(),
            key.account
        )
        .into_bytes();
        value.extend_from_slice(&grantkit_core::store::codec::encode_token_set(&old));
        redis::cmd("SET")
            .arg(&record)
            .arg(value)
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
        let read = store.get(&key).await.unwrap().expect("the format-2 record");
        assert_eq!(read.version.as_u64(), 1_700_000_000_000_042);
        assert!(read.value == old);
        assert!(
            store
                .list(&KeyFilter::provider("format-two"))
                .await
                .unwrap()
                .contains(&key)
        );
        let stale = store
            .put(
                &key,
                &old,
                Precondition::Version(grantkit_core::store::Version::from_u64(41)),
            )
            .await;
        assert!(matches!(stale, Err(Error::Conflict { .. })), "{stale:?}");

        let new = TokenSet::new(AccessToken::new("rewritten"), GrantKind::Password);
        let precondition = if replaces_version {
            Precondition::Version(read.version)
        } else {
            Precondition::Any
        };
        let version = store.put(&key, &new, precondition).await.unwrap();
        assert_eq!(version.as_u64(), read.version.as_u64() + 1);
        let raw_value: Vec<u8> = redis::cmd("GET")
            .arg(&record)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(
            raw_value.starts_with(b"v3|1700000000000043|"),
            "rewritten as format 3"
        );
        let again = store.get(&key).await.unwrap().unwrap();
        assert_eq!(again.version, version);
        assert_eq!(again.value.access_token.expose_secret(), "rewritten");
        assert!(
            store
                .delete(&key, Precondition::Version(version))
                .await
                .unwrap()
        );
    }
}
