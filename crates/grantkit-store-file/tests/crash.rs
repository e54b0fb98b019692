//! Crash atomicity: a writer process SIGKILLed at random moments during puts never leaves a
//! record unreadable or older than the last write it acknowledged.

mod support;

use grantkit_core::{
    AccessToken, GrantKind, TokenKey, TokenSet, TokenStore as _,
    store::{KeyFilter, Precondition},
};
use grantkit_store_file::FileTokenStore;
use rand::Rng as _;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::{Worker, report, run_worker, runtime, store_path, test_dir, worker_args};

const KEYS: u64 = 4;
const ROUNDS: usize = 200;
const WAIT: Duration = Duration::from_secs(30);

fn key(k: u64) -> TokenKey {
    TokenKey::new("crash", "client", format!("account-{k}"))
}

/// The record written for sequence number `n`, on key `n % KEYS`; the refresh token is
/// long so that a write is more than one page and a torn write would show.
fn tokens(n: u64) -> TokenSet {
    TokenSet::new(
        AccessToken::new(format!("value-{n}")),
        GrantKind::AuthorizationCode,
    )
    .with_refresh_token(grantkit_core::RefreshToken::new(
        format!("{n:08}").repeat(700),
    ))
    .with_extra("n", n.to_string())
}

fn value_of(tokens: &TokenSet) -> u64 {
    let n: u64 = tokens
        .access_token
        .expose_secret()
        .strip_prefix("value-")
        .and_then(|n| n.parse().ok())
        .expect("a sequence number");
    assert_eq!(
        tokens
            .refresh_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned()),
        Some(format!("{n:08}").repeat(700)),
        "the record mixes two writes"
    );
    n
}

/// Worker: `write <store> <first>` — writes sequence numbers `first, first + 1, …` with
/// read-modify-write puts, acknowledging each once `put` returned, until killed.
fn writer(args: &[String]) {
    let store_dir = PathBuf::from(&args[1]);
    let first: u64 = args[2].parse().expect("a sequence number");
    runtime().block_on(async move {
        let store = FileTokenStore::open(&store_dir).await.expect("open");
        report("ready");
        for n in first.. {
            let key = key(n % KEYS);
            let precondition = match store.get(&key).await.expect("get") {
                Some(current) => Precondition::Version(current.version),
                None => Precondition::Absent,
            };
            store
                .put(&key, &tokens(n), precondition)
                .await
                .expect("put by the only writer");
            report(&format!("ack {n}"));
        }
    });
}

/// The latest sequence number up to `upto` written on key `k`, if any, from `first` on.
fn latest_on(k: u64, first: u64, upto: u64) -> Option<u64> {
    (first..=upto).rev().find(|n| n % KEYS == k)
}

fn temporary_files(store_dir: &Path) -> usize {
    ["tokens", "leases", "pending"]
        .iter()
        .flat_map(|sub| std::fs::read_dir(store_dir.join(sub)).expect("list"))
        .filter(|entry| {
            entry
                .as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        })
        .count()
}

#[test]
fn a_writer_killed_at_random_moments_loses_no_acknowledged_write() {
    const TEST: &str = "a_writer_killed_at_random_moments_loses_no_acknowledged_write";
    if let Some(args) = worker_args() {
        run_worker(|| writer(&args));
    }
    let dir = test_dir("crash");
    let store_dir = store_path(dir.path());
    let path = store_dir.to_str().expect("a UTF-8 path").to_owned();
    let rt = runtime();
    let store = rt.block_on(FileTokenStore::open(&store_dir)).expect("open");
    let mut rng = rand::rng();

    // What each key must hold: the last acknowledged sequence number (None: never written).
    let mut acknowledged: [Option<u64>; KEYS as usize] = [None; KEYS as usize];
    let mut next = 0u64;
    let mut in_flight_landed = 0;
    let mut rounds_with_temporary_files = 0;
    for round in 0..ROUNDS {
        let mut worker = Worker::spawn(TEST, &["write", &path, &next.to_string()]);
        worker.expect("ready", WAIT);
        // Somewhere in the next few puts (each is a few fsyncs).
        std::thread::sleep(Duration::from_micros(rng.random_range(0..12_000)));
        worker.kill();
        let last_ack = worker
            .rest(WAIT)
            .iter()
            .filter_map(|line| line.strip_prefix("ack ")?.parse::<u64>().ok())
            .max();
        // The write after the last acknowledged one may have landed or not; nothing else.
        let in_flight = last_ack.map_or(next, |n| n + 1);
        if temporary_files(&store_dir) > 0 {
            rounds_with_temporary_files += 1;
        }
        for k in 0..KEYS {
            let newest_acked = last_ack
                .and_then(|upto| latest_on(k, next, upto))
                .or(acknowledged[k as usize]);
            let stored = rt
                .block_on(store.get(&key(k)))
                .unwrap_or_else(|e| panic!("round {round}: key {k} unreadable after a kill: {e}"))
                .map(|v| value_of(&v.value));
            let in_flight_here = (in_flight % KEYS == k).then_some(in_flight);
            assert!(
                stored == newest_acked || (stored.is_some() && stored == in_flight_here),
                "round {round}: key {k} holds {stored:?}; last acknowledged {newest_acked:?}, \
                 in flight {in_flight_here:?}"
            );
            if stored.is_some() && stored == in_flight_here {
                in_flight_landed += 1;
            }
            acknowledged[k as usize] = stored;
        }
        // Sequence numbers stay unique: skip the one that may have been in flight.
        next = in_flight + 1;
    }

    // Every record parses and is listed once; stale temporary files break nothing and
    // clean-up removes them.
    let mut keys = rt
        .block_on(store.list(&KeyFilter::provider("crash")))
        .expect("list");
    keys.sort();
    let expected: Vec<TokenKey> = (0..KEYS)
        .filter(|k| acknowledged[*k as usize].is_some())
        .map(key)
        .collect();
    assert_eq!(keys, expected);
    for k in 0..KEYS {
        let v = rt.block_on(store.get(&key(k))).expect("get");
        let written = rt
            .block_on(store.put(
                &key(k),
                &tokens(next + k),
                v.map_or(Precondition::Absent, |v| Precondition::Version(v.version)),
            ))
            .expect("a put after the crashes");
        assert_eq!(
            rt.block_on(store.get(&key(k))).unwrap().unwrap().version,
            written
        );
    }
    rt.block_on(store.clean_up()).expect("clean up");
    assert_eq!(
        temporary_files(&store_dir),
        0,
        "temporary files survived clean-up"
    );
    eprintln!(
        "{ROUNDS} kills: {next} sequence numbers, {in_flight_landed} unacknowledged writes landed, \
         {rounds_with_temporary_files} rounds left a temporary file"
    );
}
