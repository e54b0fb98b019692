//! FileTokenStore beyond the store suite: opening and its checks, corrupt and foreign files,
//! lock timeouts, leftovers of crashed writers, and clean-up.

mod support;

use grantkit_core::{
    AccessToken, Error, GrantKind, TokenKey, TokenSet, TokenStore,
    flow::FlowKind,
    store::{KeyFilter, PendingAuthorization, Precondition, StateToken},
};
use grantkit_store_file::{Durability, FileStoreError, FileTokenStore, MAX_RECORD_BYTES};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use support::{store_path, test_dir};

fn tokens(access: &str) -> TokenSet {
    TokenSet::new(AccessToken::new(access), GrantKind::Password)
}

fn key(account: &str) -> TokenKey {
    TokenKey::new("joindin", "client", account)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().mode() & 0o7777
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// The files of one sub-directory of the store.
fn files(store: &Path, sub: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(store.join(sub))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

/// The record file of the only key written so far.
fn only_record(store: &Path) -> PathBuf {
    let records: Vec<PathBuf> = files(store, "tokens")
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    records[0].clone()
}

fn file_store_error(err: &Error) -> &FileStoreError {
    FileStoreError::find(err).unwrap_or_else(|| panic!("not a file store error: {err:?}"))
}

#[tokio::test]
async fn opening_creates_private_directories_and_a_layout_marker() {
    let dir = test_dir("open");
    let root = dir.path().join("a/b/store");
    let store = FileTokenStore::open(&root).await.unwrap();
    assert_eq!(store.root(), root);
    assert_eq!(mode(&root), 0o700);
    for sub in ["tokens", "leases", "locks", "pending"] {
        assert_eq!(mode(&root.join(sub)), 0o700, "{sub}");
    }
    let marker: serde_json::Value =
        serde_json::from_slice(&fs::read(root.join("grantkit-file-store.json")).unwrap()).unwrap();
    assert_eq!(marker["layout"], 1);
    assert!(store.capabilities().cross_process_leases);
    assert!(!store.capabilities().shared_between_hosts);

    store
        .put(&key("a"), &tokens("t"), Precondition::Any)
        .await
        .unwrap();
    for file in files(&root, "tokens").iter().chain(&files(&root, "locks")) {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    // Opening again reads the same store; nothing is left in the root but what belongs.
    let again = FileTokenStore::open(&root).await.unwrap();
    assert!(again.get(&key("a")).await.unwrap().is_some());
    let mut entries: Vec<String> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        [
            "grantkit-file-store.json",
            "leases",
            "locks",
            "pending",
            "tokens"
        ]
    );
}

#[tokio::test]
async fn directories_others_can_enter_are_refused() {
    let dir = test_dir("insecure");
    let root = store_path(dir.path());
    FileTokenStore::open(&root).await.unwrap();
    for bad in [0o750, 0o705, 0o755, 0o777, 0o710] {
        chmod(&root, bad);
        let err = FileTokenStore::open(&root).await.unwrap_err();
        match file_store_error(&err) {
            FileStoreError::InsecurePermissions { path, mode } => {
                assert_eq!(path, &root);
                assert_eq!(*mode, bad);
            }
            other => panic!("mode {bad:o}: {other:?}"),
        }
        assert!(!err.is_retryable());
        assert!(matches!(err, Error::Store { .. }));
    }
    chmod(&root, 0o700);
    chmod(&root.join("tokens"), 0o755);
    let err = FileTokenStore::open(&root).await.unwrap_err();
    assert!(
        matches!(file_store_error(&err), FileStoreError::InsecurePermissions { path, .. } if path.ends_with("tokens")),
        "{err:?}"
    );
    chmod(&root.join("tokens"), 0o700);
    FileTokenStore::open(&root).await.unwrap();
}

#[tokio::test]
async fn what_is_not_a_store_directory_is_refused() {
    let dir = test_dir("not-a-store");
    let file = dir.path().join("file");
    fs::write(&file, b"x").unwrap();
    let err = FileTokenStore::open(&file).await.unwrap_err();
    assert!(
        matches!(file_store_error(&err), FileStoreError::NotADirectory { .. }),
        "{err:?}"
    );

    let missing = dir.path().join("missing");
    let err = FileTokenStore::builder(&missing)
        .create_missing(false)
        .open()
        .await
        .unwrap_err();
    assert!(
        matches!(file_store_error(&err), FileStoreError::Missing { .. }),
        "{err:?}"
    );
    assert!(!missing.exists());

    let root = store_path(dir.path());
    FileTokenStore::open(&root).await.unwrap();
    let marker = root.join("grantkit-file-store.json");
    fs::write(&marker, br#"{"format":"grantkit.file_store","layout":2}"#).unwrap();
    let err = FileTokenStore::open(&root).await.unwrap_err();
    match file_store_error(&err) {
        FileStoreError::UnsupportedLayout { reason, .. } => {
            assert!(reason.contains("layout 2"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    fs::write(&marker, b"{}").unwrap();
    let err = FileTokenStore::open(&root).await.unwrap_err();
    assert!(matches!(
        file_store_error(&err),
        FileStoreError::UnsupportedLayout { .. }
    ));

    fs::remove_file(&marker).unwrap();
    fs::remove_dir(root.join("pending")).unwrap();
    fs::write(root.join("pending"), b"").unwrap();
    let err = FileTokenStore::open(&root).await.unwrap_err();
    assert!(
        matches!(file_store_error(&err), FileStoreError::NotADirectory { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_corrupt_record_is_an_error_naming_its_key_and_other_keys_keep_working() {
    let dir = test_dir("corrupt");
    let root = store_path(dir.path());
    let store = FileTokenStore::open(&root).await.unwrap();
    let broken = key("broken@example.com");
    let v = store
        .put(&broken, &tokens("b"), Precondition::Any)
        .await
        .unwrap();
    let record = only_record(&root);
    let good = key("good@example.com");
    store
        .put(&good, &tokens("g"), Precondition::Any)
        .await
        .unwrap();

    let garbage: [&[u8]; 6] = [
        b"",
        b"{\"format\":\"grantkit.file_store.token\",\"vers",
        b"\xff\xfe\x00garbage",
        b"[]",
        br#"{"format":"something.else","version":1}"#,
        br#"{"format":"grantkit.file_store.token","version":7}"#,
    ];
    for bytes in garbage {
        fs::write(&record, bytes).unwrap();
        let err = store.get(&broken).await.unwrap_err();
        match &err {
            Error::CorruptRecord { key, reason } => {
                assert_eq!(key, &broken.to_string());
                assert!(!reason.is_empty());
            }
            other => panic!("expected CorruptRecord, got {other:?}"),
        }
        assert!(err.to_string().contains("broken@example.com"), "{err}");
        // Other keys are unaffected, and listing skips the unreadable record.
        assert_eq!(
            store
                .get(&good)
                .await
                .unwrap()
                .unwrap()
                .value
                .access_token
                .expose_secret(),
            "g"
        );
        assert_eq!(
            store.list(&KeyFilter::provider("joindin")).await.unwrap(),
            vec![good.clone()]
        );
        // Preconditions that need to read it report the corruption; `Any` repairs it.
        for precondition in [Precondition::Absent, Precondition::Version(v)] {
            assert!(matches!(
                store.put(&broken, &tokens("x"), precondition).await,
                Err(Error::CorruptRecord { .. })
            ));
            assert!(matches!(
                store.delete(&broken, precondition).await,
                Err(Error::CorruptRecord { .. })
            ));
        }
    }
    let repaired = store
        .put(&broken, &tokens("new"), Precondition::Any)
        .await
        .unwrap();
    assert_eq!(store.get(&broken).await.unwrap().unwrap().version, repaired);

    // A directory or an oversized file where the record should be.
    fs::remove_file(&record).unwrap();
    fs::create_dir(&record).unwrap();
    assert!(matches!(
        store.get(&broken).await,
        Err(Error::CorruptRecord { .. })
    ));
    fs::remove_dir(&record).unwrap();
    let huge = File::create(&record).unwrap();
    huge.set_len(MAX_RECORD_BYTES as u64 * 64).unwrap();
    match store.get(&broken).await {
        Err(Error::CorruptRecord { reason, .. }) => assert!(reason.contains("bytes"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(store.delete(&broken, Precondition::Any).await.unwrap());
    assert!(store.get(&broken).await.unwrap().is_none());
}

#[tokio::test]
async fn a_record_copied_under_another_keys_name_is_foreign() {
    let dir = test_dir("foreign");
    let root = store_path(dir.path());
    let store = FileTokenStore::open(&root).await.unwrap();
    let (alice, bob) = (key("alice"), key("bob"));
    store
        .put(&alice, &tokens("alice's"), Precondition::Any)
        .await
        .unwrap();
    let alice_file = only_record(&root);
    store
        .put(&bob, &tokens("bob's"), Precondition::Any)
        .await
        .unwrap();
    let bob_file = files(&root, "tokens")
        .into_iter()
        .find(|p| *p != alice_file && p.extension().is_some_and(|e| e == "json"))
        .unwrap();
    fs::copy(&alice_file, &bob_file).unwrap();
    match store.get(&bob).await {
        Err(Error::CorruptRecord { key, reason }) => {
            assert_eq!(key, bob.to_string());
            assert!(reason.contains("foreign"), "{reason}");
        }
        other => panic!("bob must not read alice's tokens: {other:?}"),
    }
    assert_eq!(
        store.list(&KeyFilter::provider("joindin")).await.unwrap(),
        vec![alice]
    );
}

#[tokio::test]
async fn a_symlinked_record_file_is_never_followed() {
    let dir = test_dir("symlink");
    let root = store_path(dir.path());
    let store = FileTokenStore::open(&root).await.unwrap();
    let alice = key("alice");
    store
        .put(&alice, &tokens("alice's own"), Precondition::Any)
        .await
        .unwrap();
    let record = only_record(&root);
    // A valid record of the very key, planted outside the store, linked in its place.
    let outside = dir.path().join("planted.json");
    fs::copy(&record, &outside).unwrap();
    fs::remove_file(&record).unwrap();
    std::os::unix::fs::symlink(&outside, &record).unwrap();
    let planted = fs::read(&outside).unwrap();

    match store.get(&alice).await {
        Err(Error::CorruptRecord { key, reason }) => {
            assert_eq!(key, alice.to_string());
            assert!(reason.contains("symbolic link"), "{reason}");
        }
        other => panic!("a symlinked record must not be read: {other:?}"),
    }
    let err = store
        .put(&alice, &tokens("new"), Precondition::Any)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::CorruptRecord { .. }), "{err}");
    assert!(
        store
            .list(&KeyFilter::provider("joindin"))
            .await
            .unwrap()
            .is_empty(),
        "an untrusted file is not listed"
    );
    assert_eq!(
        fs::read(&outside).unwrap(),
        planted,
        "nothing was written through the link"
    );
    // Deleting removes the link itself, never what it points to.
    assert!(store.delete(&alice, Precondition::Any).await.unwrap());
    assert!(fs::symlink_metadata(&record).is_err());
    assert_eq!(fs::read(&outside).unwrap(), planted);
}

#[tokio::test]
async fn a_record_file_writable_by_others_is_refused_not_silently_repaired() {
    let dir = test_dir("writable");
    let root = store_path(dir.path());
    let store = FileTokenStore::open(&root).await.unwrap();
    let alice = key("alice");
    let version = store
        .put(&alice, &tokens("alice's"), Precondition::Any)
        .await
        .unwrap();
    let record = only_record(&root);
    for loose in [0o666, 0o620, 0o602] {
        chmod(&record, loose);
        match store.get(&alice).await {
            Err(Error::CorruptRecord { key, reason }) => {
                assert_eq!(key, alice.to_string());
                assert!(reason.contains("writable by group or others"), "{reason}");
            }
            other => panic!("mode {loose:o}: {other:?}"),
        }
        for precondition in [Precondition::Any, Precondition::Version(version)] {
            let err = store
                .put(&alice, &tokens("over it"), precondition)
                .await
                .unwrap_err();
            assert!(matches!(err, Error::CorruptRecord { .. }), "{err}");
        }
        assert_eq!(mode(&record), loose, "the mode is not silently reset");
    }
    // Once an operator has looked and made it private again, it is read as it was.
    chmod(&record, 0o600);
    let stored = store.get(&alice).await.unwrap().unwrap();
    assert_eq!(stored.version, version);
    assert_eq!(stored.value.access_token.expose_secret(), "alice's");
}

#[tokio::test]
async fn a_writer_stuck_holding_a_lock_times_out_the_others_and_their_writes_never_happen_later() {
    let dir = test_dir("lock-timeout");
    let root = store_path(dir.path());
    let store = FileTokenStore::builder(&root)
        .lock_timeout(Duration::from_millis(200))
        .open()
        .await
        .unwrap();
    let k = key("locked");
    let v1 = store
        .put(&k, &tokens("v1"), Precondition::Any)
        .await
        .unwrap();

    // Someone (here: this test, as another process would) holds the key's lock.
    let lock_files = files(&root, "locks");
    assert_eq!(lock_files.len(), 1);
    let held = File::options().write(true).open(&lock_files[0]).unwrap();
    held.lock().unwrap();

    let err = store
        .put(&k, &tokens("late"), Precondition::Version(v1))
        .await
        .unwrap_err();
    assert!(
        matches!(file_store_error(&err), FileStoreError::LockTimeout { .. }),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert!(matches!(
        store.try_lease(&k, Duration::from_secs(1)).await,
        Err(ref e) if matches!(FileStoreError::find(e), Some(FileStoreError::LockTimeout { .. }))
    ));
    // Readers take no lock, and other keys' writers are not held up.
    assert_eq!(store.get(&k).await.unwrap().unwrap().version, v1);
    store
        .put(&key("other"), &tokens("o"), Precondition::Any)
        .await
        .unwrap();

    held.unlock().unwrap();
    drop(held);
    // The timed-out put's thread now gets the lock and must not write. The next put of the
    // key queues behind that thread (same key, same in-process queue), and holds the same
    // precondition: it can only succeed if the late write never happened.
    let mut attempts = 0;
    let v2 = loop {
        match store
            .put(&k, &tokens("v2"), Precondition::Version(v1))
            .await
        {
            Ok(version) => break version,
            Err(err)
                if matches!(
                    FileStoreError::find(&err),
                    Some(FileStoreError::LockTimeout { .. })
                ) && attempts < 50 =>
            {
                attempts += 1;
            }
            Err(err) => panic!("a write reported as timed out happened later: {err:?}"),
        }
    };
    assert_eq!(store.get(&k).await.unwrap().unwrap().version, v2);
    assert!(
        fs::read_dir(root.join("leases")).unwrap().next().is_none(),
        "a lease reported as timed out was taken later"
    );
}

fn pending(ttl_from_now: Duration) -> PendingAuthorization {
    let now = SystemTime::now();
    PendingAuthorization {
        state: StateToken::generate(),
        flow: FlowKind::AuthorizationCode,
        provider: "joindin".to_owned(),
        client: "client".to_owned(),
        redirect_uri: "http://127.0.0.1:1/cb".to_owned(),
        scopes: Vec::new(),
        pkce_verifier: None,
        created_at: now,
        expires_at: now + ttl_from_now,
        extras: BTreeMap::new(),
    }
}

#[tokio::test]
async fn leftovers_of_crashed_writers_break_nothing_and_clean_up_removes_them() {
    let dir = test_dir("leftovers");
    let root = store_path(dir.path());
    let store = FileTokenStore::open(&root).await.unwrap();
    let (kept, crashed, deleted) = (key("kept"), key("crashed"), key("deleted"));
    store
        .put(&kept, &tokens("kept"), Precondition::Any)
        .await
        .unwrap();
    let kept_record = only_record(&root);
    let kept_tmp = PathBuf::from(format!("{}.tmp", kept_record.display()));

    // A crash mid-write leaves a temporary file: reads ignore it, the next write replaces it.
    fs::write(&kept_tmp, b"half a rec").unwrap();
    chmod(&kept_tmp, 0o644);
    assert_eq!(
        store
            .get(&kept)
            .await
            .unwrap()
            .unwrap()
            .value
            .access_token
            .expose_secret(),
        "kept"
    );
    assert_eq!(
        store.list(&KeyFilter::provider("joindin")).await.unwrap(),
        vec![kept.clone()]
    );
    store
        .put(&kept, &tokens("kept 2"), Precondition::Any)
        .await
        .unwrap();
    assert!(
        !kept_tmp.exists(),
        "the write replaced the stale temporary file"
    );
    assert_eq!(mode(&kept_record), 0o600);

    // A writer that crashed on its first write leaves only a temporary file and a lock file.
    store
        .put(&crashed, &tokens("c"), Precondition::Any)
        .await
        .unwrap();
    let crashed_record = files(&root, "tokens")
        .into_iter()
        .find(|p| *p != kept_record)
        .unwrap();
    fs::rename(&crashed_record, format!("{}.tmp", crashed_record.display())).unwrap();
    assert!(store.get(&crashed).await.unwrap().is_none());

    // A dead holder's expired lease, a deleted key, an expired pending authorization.
    let lease = store
        .try_lease(&kept, Duration::from_millis(1))
        .await
        .unwrap()
        .unwrap();
    let live = store
        .try_lease(&key("busy"), Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    store
        .put(&deleted, &tokens("d"), Precondition::Any)
        .await
        .unwrap();
    store.delete(&deleted, Precondition::Any).await.unwrap();
    // (The first put_pending of a process sweeps; the expired one comes after it.)
    let fresh = pending(Duration::from_secs(600));
    store
        .put_pending(&fresh, Duration::from_secs(600))
        .await
        .unwrap();
    let expired = pending(Duration::from_secs(600));
    store.put_pending(&expired, Duration::ZERO).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;

    let report = store.clean_up().await.unwrap();
    assert_eq!(report.temporary_files, 1, "{report:?}");
    assert_eq!(report.expired_leases, 1, "{report:?}");
    assert_eq!(
        report.unused_lock_files, 0,
        "the deleted key's lock file went with it: {report:?}"
    );
    assert_eq!(report.expired_pending, 1, "{report:?}");
    // Exactly the files of live things remain: the kept record and lock, the busy lease
    // and its lock, the fresh pending authorization.
    assert_eq!(files(&root, "tokens"), vec![kept_record]);
    assert_eq!(files(&root, "locks").len(), 2);
    assert_eq!(files(&root, "leases").len(), 1);
    assert_eq!(files(&root, "pending").len(), 1);
    assert!(
        store
            .take_pending(&expired.state_hash())
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
    // Cleaning up never takes a live lease away or breaks the one that expired.
    assert!(
        store
            .try_lease(&key("busy"), Duration::from_secs(1))
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        store.renew_lease(&lease, Duration::from_secs(1)).await,
        Err(Error::LeaseLost { .. })
    ));
    store.release_lease(&live).await.unwrap();
    assert_eq!(files(&root, "leases").len(), 0);
    assert_eq!(files(&root, "locks").len(), 1);
}

#[tokio::test]
async fn keys_whose_provider_is_not_a_plain_name_still_list() {
    let dir = test_dir("opaque");
    let root = store_path(dir.path());
    let store = FileTokenStore::open(&root).await.unwrap();
    let odd = TokenKey::new("Join Me/../x", "c", "a");
    let plain = TokenKey::new("joinme", "c", "a");
    store
        .put(&odd, &tokens("odd"), Precondition::Any)
        .await
        .unwrap();
    store
        .put(&plain, &tokens("plain"), Precondition::Any)
        .await
        .unwrap();
    assert_eq!(
        store
            .list(&KeyFilter::provider("Join Me/../x"))
            .await
            .unwrap(),
        vec![odd.clone()]
    );
    assert_eq!(
        store.list(&KeyFilter::provider("joinme")).await.unwrap(),
        vec![plain]
    );
    for file in files(&root, "tokens") {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("_.") || name.starts_with("joinme."),
            "{name}"
        );
        assert_eq!(file.parent().unwrap(), root.join("tokens"));
    }
}

#[tokio::test]
async fn without_fsync_writes_are_still_atomic_replacements() {
    let dir = test_dir("nofsync");
    let root = store_path(dir.path());
    let store = FileTokenStore::builder(&root)
        .durability(Durability::NoFsync)
        .open()
        .await
        .unwrap();
    let k = key("fast");
    let v1 = store
        .put(&k, &tokens("1"), Precondition::Absent)
        .await
        .unwrap();
    let v2 = store
        .put(&k, &tokens("2"), Precondition::Version(v1))
        .await
        .unwrap();
    assert_ne!(v1, v2);
    assert_eq!(
        store
            .get(&k)
            .await
            .unwrap()
            .unwrap()
            .value
            .access_token
            .expose_secret(),
        "2"
    );
    assert!(
        files(&root, "tokens")
            .iter()
            .all(|p| p.extension().is_some_and(|e| e == "json"))
    );
    // Another store on the same directory sees the writes.
    let other = FileTokenStore::open(&root).await.unwrap();
    assert_eq!(other.get(&k).await.unwrap().unwrap().version, v2);
}

#[tokio::test]
async fn an_oversized_token_set_is_refused_before_anything_is_written() {
    let dir = test_dir("oversized");
    let root = store_path(dir.path());
    let store = FileTokenStore::open(&root).await.unwrap();
    let huge = tokens("t").with_extra("blob", "x".repeat(MAX_RECORD_BYTES));
    let err = store
        .put(&key("huge"), &huge, Precondition::Any)
        .await
        .unwrap_err();
    assert!(
        matches!(
            file_store_error(&err),
            FileStoreError::RecordTooLarge { .. }
        ),
        "{err:?}"
    );
    assert!(files(&root, "tokens").is_empty());
}
