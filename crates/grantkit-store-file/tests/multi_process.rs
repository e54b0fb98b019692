//! Compare-and-swap, leases and pending authorizations across real processes sharing one
//! store directory.

mod support;

use grantkit_core::{
    AccessToken, Error, GrantKind, TokenKey, TokenSet, TokenStore as _,
    flow::FlowKind,
    store::{PendingAuthorization, Precondition, StateHash, StateToken},
};
use grantkit_store_file::FileTokenStore;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};
use support::{
    Worker, eventually, report, run_worker, runtime, store_path, test_dir, wait_for_parent,
    worker_args,
};

const WAIT: Duration = Duration::from_secs(60);

fn counter_key() -> TokenKey {
    TokenKey::new("counter", "client", "shared/counter")
}

fn counter(value: u64) -> TokenSet {
    TokenSet::new(
        AccessToken::new(format!("count-{value}")),
        GrantKind::Password,
    )
}

fn count_of(tokens: &TokenSet) -> u64 {
    tokens
        .access_token
        .expose_secret()
        .strip_prefix("count-")
        .and_then(|n| n.parse().ok())
        .expect("a counter token")
}

/// Worker: `increments <store> <n>` — after `go`, adds 1 to the counter `n` times by
/// get → put(Version), retrying on conflict.
fn increment_worker(args: &[String]) {
    let store_dir = PathBuf::from(&args[1]);
    let increments: u64 = args[2].parse().expect("a count");
    runtime().block_on(async move {
        let store = FileTokenStore::open(&store_dir).await.expect("open");
        report("ready");
        wait_for_parent();
        let key = counter_key();
        let mut conflicts = 0u64;
        for _ in 0..increments {
            loop {
                let current = store.get(&key).await.expect("get").expect("the counter");
                let next = counter(count_of(&current.value) + 1);
                match store
                    .put(&key, &next, Precondition::Version(current.version))
                    .await
                {
                    Ok(_) => break,
                    Err(Error::Conflict { .. }) => conflicts += 1,
                    Err(other) => panic!("increment failed: {other}"),
                }
            }
        }
        report(&format!("done {conflicts}"));
    });
}

#[test]
fn four_processes_increment_a_counter_2000_times() {
    const TEST: &str = "four_processes_increment_a_counter_2000_times";
    if let Some(args) = worker_args() {
        run_worker(|| increment_worker(&args));
    }
    let dir = test_dir("cas");
    let store_dir = store_path(dir.path());
    let rt = runtime();
    let store = rt.block_on(FileTokenStore::open(&store_dir)).expect("open");
    rt.block_on(store.put(&counter_key(), &counter(0), Precondition::Absent))
        .expect("the counter");

    let path = store_dir.to_str().expect("a UTF-8 path");
    let mut workers: Vec<Worker> = (0..4)
        .map(|_| Worker::spawn(TEST, &["increments", path, "500"]))
        .collect();
    for worker in &mut workers {
        worker.expect("ready", WAIT);
    }
    for worker in &mut workers {
        worker.send("go");
    }
    let mut conflicts = 0;
    for worker in &mut workers {
        conflicts += worker
            .expect("done", Duration::from_secs(180))
            .parse::<u64>()
            .expect("a count");
        worker.succeed(WAIT);
    }
    let stored = rt
        .block_on(store.get(&counter_key()))
        .expect("get")
        .expect("the counter");
    assert_eq!(
        count_of(&stored.value),
        2000,
        "increments were lost or doubled"
    );
    eprintln!("4 processes × 500 increments: {conflicts} conflicts retried");
}

/// Worker: `lease <store> <ttl ms>` — takes the lease on the counter key, says so, and
/// renews it until killed.
fn lease_worker(args: &[String]) {
    let store_dir = PathBuf::from(&args[1]);
    let ttl = Duration::from_millis(args[2].parse().expect("a TTL"));
    runtime().block_on(async move {
        let store = FileTokenStore::open(&store_dir).await.expect("open");
        let lease = store
            .try_lease(&counter_key(), ttl)
            .await
            .expect("try_lease")
            .expect("the lease is free");
        report(&format!("leased {}", lease.holder));
        loop {
            tokio::time::sleep(ttl / 3).await;
            store.renew_lease(&lease, ttl).await.expect("renew");
            report("renewed");
        }
    });
}

#[test]
fn a_lease_excludes_other_processes_until_its_holder_dies_and_it_expires() {
    const TEST: &str = "a_lease_excludes_other_processes_until_its_holder_dies_and_it_expires";
    if let Some(args) = worker_args() {
        run_worker(|| lease_worker(&args));
    }
    let dir = test_dir("lease");
    let store_dir = store_path(dir.path());
    let rt = runtime();
    let store = rt.block_on(FileTokenStore::open(&store_dir)).expect("open");
    let ttl = Duration::from_millis(600);

    let mut holder = Worker::spawn(TEST, &["lease", store_dir.to_str().unwrap(), "600"]);
    let holder_id = holder.expect("leased", WAIT);
    assert!(
        holder_id.starts_with(&format!("{}-", holder.pid())),
        "the lease names its holder's process: {holder_id}"
    );
    // Renewed across several TTLs, the lease stays with the other process.
    for _ in 0..4 {
        holder.expect("renewed", WAIT);
        assert!(
            rt.block_on(store.try_lease(&counter_key(), ttl))
                .unwrap()
                .is_none(),
            "a lease held and renewed by another process was granted"
        );
    }
    holder.kill();

    // Dead, it no longer renews: the lease expires and can be taken.
    let mut successor = None;
    eventually(
        "the dead holder's lease expires",
        Duration::from_secs(10),
        || {
            successor = rt
                .block_on(store.try_lease(&counter_key(), Duration::from_secs(30)))
                .unwrap();
            successor.is_some()
        },
    );
    let successor = successor.unwrap();
    assert_ne!(successor.holder, holder_id);
    rt.block_on(store.release_lease(&successor)).unwrap();
}

fn pending(n: usize) -> PendingAuthorization {
    let now = SystemTime::now();
    PendingAuthorization {
        state: StateToken::generate(),
        flow: FlowKind::AuthorizationCode,
        provider: "p".to_owned(),
        client: "c".to_owned(),
        redirect_uri: format!("http://127.0.0.1/callback/{n}"),
        scopes: vec!["user_info".to_owned()],
        pkce_verifier: None,
        created_at: now,
        expires_at: now + Duration::from_secs(600),
        extras: BTreeMap::new(),
    }
}

/// Worker: `take <store> <hash>…` — after `go`, takes every pending authorization and
/// reports the ones it got.
fn take_worker(args: &[String]) {
    let store_dir = PathBuf::from(&args[1]);
    let hashes: Vec<StateHash> = args[2..]
        .iter()
        .map(|h| StateHash::from_hex(h).expect("a state hash"))
        .collect();
    runtime().block_on(async move {
        let store = FileTokenStore::open(&store_dir).await.expect("open");
        report("ready");
        wait_for_parent();
        let mut tasks = Vec::new();
        for hash in hashes {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .take_pending(&hash)
                    .await
                    .expect("take")
                    .map(|p| (hash, p))
            }));
        }
        for task in tasks {
            if let Some((hash, pending)) = task.await.expect("task") {
                assert_eq!(pending.state_hash(), hash);
                report(&format!("took {hash} {}", pending.redirect_uri));
            }
        }
        report("done");
    });
}

#[test]
fn each_pending_authorization_is_taken_once_across_processes() {
    const TEST: &str = "each_pending_authorization_is_taken_once_across_processes";
    if let Some(args) = worker_args() {
        run_worker(|| take_worker(&args));
    }
    let dir = test_dir("pending");
    let store_dir = store_path(dir.path());
    let rt = runtime();
    let store = rt.block_on(FileTokenStore::open(&store_dir)).expect("open");
    let written: Vec<PendingAuthorization> = (0..50).map(pending).collect();
    for p in &written {
        rt.block_on(store.put_pending(p, Duration::from_secs(600)))
            .unwrap();
    }
    let hashes: Vec<String> = written.iter().map(|p| p.state_hash().to_string()).collect();
    let mut args = vec!["take", store_dir.to_str().unwrap()];
    args.extend(hashes.iter().map(String::as_str));
    let mut workers: Vec<Worker> = (0..4).map(|_| Worker::spawn(TEST, &args)).collect();
    for worker in &mut workers {
        worker.expect("ready", WAIT);
    }
    for worker in &mut workers {
        worker.send("go");
    }
    let mut taken: HashMap<String, usize> = HashMap::new();
    for worker in &mut workers {
        worker.succeed(WAIT);
        for line in worker.rest(WAIT) {
            if let Some(rest) = line.strip_prefix("took ") {
                let (hash, uri) = rest.split_once(' ').unwrap();
                let expected = written
                    .iter()
                    .find(|p| p.state_hash().as_str() == hash)
                    .unwrap();
                assert_eq!(uri, expected.redirect_uri, "the record of another state");
                *taken.entry(hash.to_owned()).or_default() += 1;
            }
        }
    }
    for hash in &hashes {
        assert_eq!(
            taken.get(hash),
            Some(&1),
            "pending {hash} taken {:?} times",
            taken.get(hash)
        );
    }
    for p in &written {
        assert!(
            rt.block_on(store.take_pending(&p.state_hash()))
                .unwrap()
                .is_none()
        );
    }
}

/// Worker: `churn <store> <n>` — after `go`, claims the key `n` times: `put(Absent)`
/// (retrying while another process holds it), then deletes it with the version it wrote.
/// Each delete also removes the key's lock file, so every claim races on a fresh one.
fn churn_worker(args: &[String]) {
    let store_dir = PathBuf::from(&args[1]);
    let claims: u64 = args[2].parse().expect("a count");
    runtime().block_on(async move {
        let store = FileTokenStore::open(&store_dir).await.expect("open");
        report("ready");
        wait_for_parent();
        let key = counter_key();
        let me = std::process::id();
        for claim in 0..claims {
            let mine = counter(u64::from(me) * 1_000_000 + claim);
            let version = loop {
                match store.put(&key, &mine, Precondition::Absent).await {
                    Ok(version) => break version,
                    Err(Error::Conflict { .. }) => tokio::task::yield_now().await,
                    Err(other) => panic!("claim failed: {other}"),
                }
            };
            // Nobody else may have written in between: the claim is exclusive.
            let read = store
                .get(&key)
                .await
                .expect("get")
                .expect("the claimed key");
            assert_eq!(
                read.version, version,
                "another process overwrote a claimed key"
            );
            assert!(
                store
                    .delete(&key, Precondition::Version(version))
                    .await
                    .expect("delete of a claimed key"),
                "a claimed key vanished"
            );
        }
        report("done");
    });
}

#[test]
fn claims_stay_exclusive_while_lock_files_come_and_go() {
    const TEST: &str = "claims_stay_exclusive_while_lock_files_come_and_go";
    if let Some(args) = worker_args() {
        run_worker(|| churn_worker(&args));
    }
    let dir = test_dir("churn");
    let store_dir = store_path(dir.path());
    let rt = runtime();
    let store = rt.block_on(FileTokenStore::open(&store_dir)).expect("open");
    let path = store_dir.to_str().unwrap();
    let mut workers: Vec<Worker> = (0..4)
        .map(|_| Worker::spawn(TEST, &["churn", path, "150"]))
        .collect();
    for worker in &mut workers {
        worker.expect("ready", WAIT);
    }
    for worker in &mut workers {
        worker.send("go");
    }
    for worker in &mut workers {
        worker.expect("done", Duration::from_secs(180));
        worker.succeed(WAIT);
    }
    assert!(rt.block_on(store.get(&counter_key())).unwrap().is_none());
    let leftovers: Vec<_> = std::fs::read_dir(store_dir.join("locks"))
        .unwrap()
        .collect();
    assert!(
        leftovers.is_empty(),
        "the last delete removes the lock file: {leftovers:?}"
    );
}
