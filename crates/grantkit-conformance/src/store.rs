//! The store suite: one behaviour per `# Behavior` bullet of [`TokenStore`].
//!
//! Each behaviour is a plain `async fn` taking a [`StoreFixture`]; [`STORE_SUITE`] lists them
//! with the capabilities they need, and [`store_tests!`](crate::store_tests) stamps the same
//! list into named `#[tokio::test]`s.

use futures::future::BoxFuture;
use grantkit_core::{
    AccessToken, Error, GrantKind, RefreshToken, TokenKey, TokenSet, TokenStore,
    flow::FlowKind,
    provider::PkceVerifier,
    store::{KeyFilter, PendingAuthorization, Precondition, StateToken},
};
use rand::RngCore as _;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// A capability a behaviour needs from the store under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreRequirement {
    /// [`StoreCapabilities::leases`](grantkit_core::store::StoreCapabilities).
    Leases,
    /// [`StoreCapabilities::cross_process_leases`](grantkit_core::store::StoreCapabilities).
    CrossProcessLeases,
    /// [`StoreCapabilities::pending_authorizations`](grantkit_core::store::StoreCapabilities).
    PendingAuthorizations,
    /// A second handle on the same storage ([`StoreFixture::with_second_handle`]): a
    /// second store opened on the same directory, a second connection to the same Redis.
    SecondHandle,
}

/// One behaviour of the store suite.
#[derive(Clone, Copy)]
pub struct StoreBehavior {
    /// Its name, which is also the test's name.
    pub name: &'static str,
    /// The capabilities it needs; without them the cell is skipped.
    pub requires: &'static [StoreRequirement],
    /// Runs it.
    pub run: fn(StoreFixture) -> BoxFuture<'static, ()>,
}

impl std::fmt::Debug for StoreBehavior {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreBehavior")
            .field("name", &self.name)
            .field("requires", &self.requires)
            .finish()
    }
}

impl StoreBehavior {
    /// Why the behaviour cannot run on `fixture`, or `None` when it can.
    pub fn skip_reason(&self, fixture: &StoreFixture) -> Option<String> {
        let caps = fixture.store.capabilities();
        let missing: Vec<&str> = self
            .requires
            .iter()
            .filter(|r| match r {
                StoreRequirement::Leases => !caps.leases,
                StoreRequirement::CrossProcessLeases => !caps.cross_process_leases,
                StoreRequirement::PendingAuthorizations => !caps.pending_authorizations,
                StoreRequirement::SecondHandle => false,
            })
            .map(|r| match r {
                StoreRequirement::Leases => "leases",
                StoreRequirement::CrossProcessLeases => "cross_process_leases",
                StoreRequirement::PendingAuthorizations => "pending_authorizations",
                StoreRequirement::SecondHandle => "",
            })
            .collect();
        if !missing.is_empty() {
            return Some(format!(
                "the store does not declare the capability {}",
                missing.join(", ")
            ));
        }
        (self.requires.contains(&StoreRequirement::SecondHandle) && fixture.second.is_none()).then(
            || {
                "no second handle on the same storage was given (a store that lives in one \
                 process has none)"
                    .to_owned()
            },
        )
    }
}

/// The store under test, maybe a second handle on the same storage, and a random
/// namespace for this run's keys.
#[derive(Clone, Debug)]
pub struct StoreFixture {
    /// The store.
    pub store: Arc<dyn TokenStore>,
    second: Option<Arc<dyn TokenStore>>,
    namespace: String,
}

impl StoreFixture {
    /// A fixture with a fresh random namespace.
    pub fn new(store: Arc<dyn TokenStore>) -> Self {
        let mut id = [0u8; 6];
        rand::rng().fill_bytes(&mut id);
        let namespace = id.iter().map(|b| format!("{b:02x}")).collect();
        Self {
            store,
            second: None,
            namespace,
        }
    }

    /// Adds a second handle on the same storage, opened apart from `store` (a second
    /// `FileTokenStore` on the same directory, a second Redis connection with the same
    /// prefix): the behaviours that need [`StoreRequirement::SecondHandle`] prove
    /// compare-and-swap and leases between the two, as between two processes.
    pub fn with_second_handle(mut self, second: Arc<dyn TokenStore>) -> Self {
        self.second = Some(second);
        self
    }

    /// The second handle (the behaviours that need it are skipped without one).
    fn second(&self) -> &Arc<dyn TokenStore> {
        self.second
            .as_ref()
            .expect("a behaviour that needs a second handle runs only with one")
    }

    /// This run's provider id: every key of the run has it.
    pub fn provider(&self) -> String {
        format!("conformance-{}", self.namespace)
    }

    /// A key of this run.
    pub fn key(&self, account: &str) -> TokenKey {
        TokenKey::new(self.provider(), "client-a", account)
    }

    /// Deletes every key of this run.
    pub async fn cleanup(&self) {
        if let Ok(keys) = self.store.list(&KeyFilter::provider(self.provider())).await {
            for key in keys {
                let _ = self.store.delete(&key, Precondition::Any).await;
            }
        }
    }
}

/// Runs the behaviour `name` on `store` (and `second`, a second handle on the same
/// storage, when given) as a test: skipped (with a message) when the store lacks a
/// capability it needs, else run and cleaned up after.
pub async fn run_store_test(
    name: &str,
    store: Arc<dyn TokenStore>,
    second: Option<Arc<dyn TokenStore>>,
) {
    let behaviour = STORE_SUITE
        .iter()
        .find(|b| b.name == name)
        .unwrap_or_else(|| panic!("no store behaviour named {name}"));
    let mut fixture = StoreFixture::new(store);
    if let Some(second) = second {
        fixture = fixture.with_second_handle(second);
    }
    if let Some(reason) = behaviour.skip_reason(&fixture) {
        eprintln!("skipped {name}: {reason}");
        return;
    }
    // In its own task, so this run's keys are cleaned up even when the behaviour fails.
    let outcome = tokio::spawn((behaviour.run)(fixture.clone())).await;
    fixture.cleanup().await;
    if let Err(err) = outcome {
        match err.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(err) => panic!("the behaviour's task ended: {err}"),
        }
    }
}

/// The list of store behaviours, written once: expanded into [`STORE_SUITE`] here and into
/// named tests by [`store_tests!`](crate::store_tests).
#[doc(hidden)]
#[macro_export]
macro_rules! __store_suite {
    (@list $mode:ident [$($arg:tt)*]) => {
        $crate::__store_suite!(@expand $mode [$($arg)*]
            round_trip_every_field [],
            get_missing_is_none [],
            put_returns_the_version_get_reports [],
            every_write_gets_a_new_version [],
            versions_never_repeat_across_delete [],
            put_absent_conflicts_when_present [],
            put_version_conflicts_when_stale [],
            put_version_conflicts_when_absent [],
            delete_any_removes_and_reports [],
            delete_version_precondition [],
            delete_absent_precondition [],
            list_by_provider_and_client [],
            awkward_keys_are_isolated [],
            get_many_answers_as_get_in_order [],
            concurrent_cas_one_winner_per_version [],
            concurrent_increments_lose_nothing [],
            lease_is_exclusive [Leases],
            lease_renewal_keeps_it [Leases],
            lease_expires_without_renewal [Leases],
            lease_release_only_by_holder [Leases],
            leases_on_distinct_keys_are_independent [Leases],
            renewing_a_lost_lease_fails [Leases],
            concurrent_lease_has_one_winner [Leases],
            pending_round_trips_every_field [PendingAuthorizations],
            pending_take_is_single_use [PendingAuthorizations],
            pending_unknown_is_none [PendingAuthorizations],
            concurrent_pending_take_has_one_winner [PendingAuthorizations],
            handles_see_and_refuse_each_others_writes [SecondHandle],
            increments_across_handles_lose_nothing [SecondHandle],
            lease_is_exclusive_across_handles [CrossProcessLeases, SecondHandle],
            lease_expires_for_the_other_handle [CrossProcessLeases, SecondHandle],
        );
    };
    (@expand registry [] $($name:ident [$($req:ident),*]),* $(,)?) => {
        /// Every store behaviour, in order.
        pub static STORE_SUITE: &[StoreBehavior] = &[
            $(StoreBehavior {
                name: stringify!($name),
                requires: &[$(StoreRequirement::$req),*],
                run: |fixture| Box::pin($name(fixture)),
            }),*
        ];
    };
    (@expand tests [$make:expr] $($name:ident [$($req:ident),*]),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let store: $crate::__private::Arc<dyn $crate::__private::TokenStore> = $make;
                $crate::store::run_store_test(stringify!($name), store, None).await;
            }
        )*
    };
    (@expand pairs [$make:expr] $($name:ident [$($req:ident),*]),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let (store, second): (
                    $crate::__private::Arc<dyn $crate::__private::TokenStore>,
                    $crate::__private::Arc<dyn $crate::__private::TokenStore>,
                ) = $make;
                $crate::store::run_store_test(stringify!($name), store, Some(second)).await;
            }
        )*
    };
}

/// Stamps the store suite into one named `#[tokio::test]` per behaviour, for the store
/// the expression builds (it may `.await`; it runs once per test). The crate using it needs
/// `tokio` with the `macros` and `rt-multi-thread` features as a dev-dependency.
///
/// ```
/// //! tests/conformance.rs of a store crate (here the memory store)
/// grantkit_conformance::store_tests!(std::sync::Arc::new(grantkit_core::MemoryTokenStore::new()));
/// # fn main() {}
/// ```
///
/// A store that several processes share gives a pair instead: two handles opened apart on
/// the same storage, and the behaviours across handles run too.
///
/// ```
/// //! tests/conformance.rs of a store crate (here the memory store given twice: a
/// //! stand-in only — the same handle twice proves nothing across handles; a real pair
/// //! opens the storage twice)
/// grantkit_conformance::store_tests!(pair: {
///     let store = std::sync::Arc::new(grantkit_core::MemoryTokenStore::new());
///     (store.clone(), store)
/// });
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! store_tests {
    (pair: $make_pair:expr) => {
        $crate::__store_suite!(@list pairs [$make_pair]);
    };
    ($make:expr) => {
        $crate::__store_suite!(@list tests [$make]);
    };
}

crate::__store_suite!(@list registry []);

// ---- helpers ------------------------------------------------------------------------------

fn at_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

fn full_token_set(tag: &str) -> TokenSet {
    let extras = [
        ("user_uri", "https://api.example/v2.1/users/42"),
        ("ünïcode key", "välue {with} /odd: chars"),
    ]
    .into_iter()
    .collect();
    TokenSet {
        access_token: AccessToken::new(format!("access-{tag}-ÄÖ+/=")),
        refresh_token: Some(RefreshToken::new(format!("refresh-{tag}"))),
        token_type: "bearer".to_owned(),
        expires_at: Some(at_ms(1_900_000_000_123)),
        refresh_expires_at: Some(at_ms(2_000_000_000_456)),
        obtained_at: Some(at_ms(1_899_999_000_789)),
        scopes: vec![
            "user_info".to_owned(),
            "scheduler".to_owned(),
            "ümlaut".to_owned(),
        ],
        grant: GrantKind::AuthorizationCode,
        extras,
    }
}

fn small_token_set(access: &str) -> TokenSet {
    TokenSet::new(AccessToken::new(access), GrantKind::Password)
}

fn counter_token_set(count: u64) -> TokenSet {
    small_token_set(&format!("count-{count}"))
}

fn count_of(tokens: &TokenSet) -> u64 {
    tokens
        .access_token
        .expose_secret()
        .strip_prefix("count-")
        .and_then(|n| n.parse().ok())
        .expect("a counter token")
}

fn pending(fixture: &StoreFixture) -> PendingAuthorization {
    let now = SystemTime::now();
    let mut extras = BTreeMap::new();
    extras.insert("nonce-hint".to_owned(), "x".to_owned());
    PendingAuthorization {
        state: StateToken::generate(),
        flow: FlowKind::AuthorizationCode,
        provider: fixture.provider(),
        client: "client-a".to_owned(),
        redirect_uri: "http://127.0.0.1:8765/callback?x=1".to_owned(),
        scopes: vec!["user_info".to_owned(), "scheduler".to_owned()],
        pkce_verifier: Some(PkceVerifier::generate()),
        created_at: at_ms(to_ms(now)),
        expires_at: at_ms(to_ms(now + Duration::from_secs(600))),
        extras,
    }
}

fn to_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn assert_conflict<T: std::fmt::Debug>(result: grantkit_core::Result<T>, what: &str) {
    match result {
        Err(Error::Conflict { .. }) => {}
        other => panic!("{what}: expected Error::Conflict, got {other:?}"),
    }
}

async fn stored_access(fixture: &StoreFixture, key: &TokenKey) -> Option<String> {
    fixture
        .store
        .get(key)
        .await
        .expect("get")
        .map(|v| v.value.access_token.expose_secret().to_owned())
}

/// Takes the lease on `key`, which must be free.
async fn take(
    fixture: &StoreFixture,
    key: &TokenKey,
    ttl: Duration,
    what: &str,
) -> grantkit_core::store::Lease {
    fixture
        .store
        .try_lease(key, ttl)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{what}: the lease was not granted"))
}

/// Polls until the lease on `key` is free, takes it (for 30 s) and returns it; fails after
/// ten seconds of real time.
async fn take_when_free(
    fixture: &StoreFixture,
    key: &TokenKey,
    what: &str,
) -> grantkit_core::store::Lease {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(lease) = fixture
            .store
            .try_lease(key, Duration::from_secs(30))
            .await
            .unwrap()
        {
            return lease;
        }
        assert!(
            Instant::now() < deadline,
            "never happened within 10s: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---- tokens and versions ------------------------------------------------------------------

/// `get` returns every field exactly as written, with the version `put` returned.
pub async fn round_trip_every_field(fixture: StoreFixture) {
    let key = fixture.key("alice@example.com");
    let written = full_token_set("round-trip");
    let version = fixture
        .store
        .put(&key, &written, Precondition::Absent)
        .await
        .expect("put");
    let read = fixture.store.get(&key).await.expect("get").expect("stored");
    assert_eq!(read.version, version);
    assert!(
        read.value == written,
        "fields differ after a round trip: {:?} vs {:?}",
        read.value,
        written
    );
    assert_eq!(
        read.value.access_token.expose_secret(),
        written.access_token.expose_secret()
    );
    assert_eq!(read.value.extras, written.extras);

    // A minimal set (no refresh token, no expiry) round-trips too.
    let minimal = small_token_set("minimal");
    fixture
        .store
        .put(&key, &minimal, Precondition::Version(version))
        .await
        .expect("put minimal");
    let read = fixture.store.get(&key).await.expect("get").expect("stored");
    assert!(read.value == minimal);
    assert!(read.value.expires_at.is_none() && read.value.refresh_token.is_none());
}

/// `get` of a key never written is `Ok(None)`.
pub async fn get_missing_is_none(fixture: StoreFixture) {
    let got = fixture
        .store
        .get(&fixture.key("nobody"))
        .await
        .expect("get");
    assert!(got.is_none());
}

/// The version `put` returns is the one `get` reports.
pub async fn put_returns_the_version_get_reports(fixture: StoreFixture) {
    let key = fixture.key("versions");
    for i in 0..3 {
        let version = fixture
            .store
            .put(&key, &small_token_set(&format!("t{i}")), Precondition::Any)
            .await
            .expect("put");
        let read = fixture.store.get(&key).await.expect("get").expect("stored");
        assert_eq!(read.version, version);
    }
}

/// Every successful write gets a version distinct from all earlier ones.
pub async fn every_write_gets_a_new_version(fixture: StoreFixture) {
    let key = fixture.key("many-writes");
    let mut seen = HashSet::new();
    let mut last = None;
    for i in 0..20 {
        let precondition = last.map_or(Precondition::Absent, Precondition::Version);
        let version = fixture
            .store
            .put(&key, &small_token_set(&format!("t{i}")), precondition)
            .await
            .expect("put");
        assert!(
            seen.insert(version),
            "version {version} was handed out twice"
        );
        last = Some(version);
    }
}

/// A delete followed by a put never brings back an old version, so a writer holding a
/// version from before the delete cannot overwrite the new grant.
pub async fn versions_never_repeat_across_delete(fixture: StoreFixture) {
    let key = fixture.key("recycled");
    let mut seen = HashSet::new();
    for i in 0..10 {
        let version = fixture
            .store
            .put(
                &key,
                &small_token_set(&format!("t{i}")),
                Precondition::Absent,
            )
            .await
            .expect("put");
        assert!(
            seen.insert(version),
            "version {version} came back after a delete"
        );
        assert!(
            fixture
                .store
                .delete(&key, Precondition::Version(version))
                .await
                .expect("delete")
        );
    }
    let new = fixture
        .store
        .put(&key, &small_token_set("new grant"), Precondition::Absent)
        .await
        .expect("put");
    for old in seen {
        assert_conflict(
            fixture
                .store
                .put(&key, &small_token_set("stale"), Precondition::Version(old))
                .await,
            "a version from before the delete",
        );
    }
    assert_eq!(fixture.store.get(&key).await.unwrap().unwrap().version, new);
}

/// `Absent` fails with a conflict when a record exists, and leaves it as it was.
pub async fn put_absent_conflicts_when_present(fixture: StoreFixture) {
    let key = fixture.key("absent");
    let version = fixture
        .store
        .put(&key, &small_token_set("first"), Precondition::Absent)
        .await
        .expect("first put");
    assert_conflict(
        fixture
            .store
            .put(&key, &small_token_set("second"), Precondition::Absent)
            .await,
        "put Absent over a record",
    );
    let read = fixture.store.get(&key).await.unwrap().unwrap();
    assert_eq!(read.version, version);
    assert_eq!(read.value.access_token.expose_secret(), "first");
}

/// `Version(v)` fails with a conflict when the stored version is another, and leaves the
/// record as it was: a stale writer never overwrites a rotated refresh token.
pub async fn put_version_conflicts_when_stale(fixture: StoreFixture) {
    let key = fixture.key("stale");
    let v1 = fixture
        .store
        .put(&key, &small_token_set("v1"), Precondition::Absent)
        .await
        .unwrap();
    let v2 = fixture
        .store
        .put(&key, &full_token_set("rotated"), Precondition::Version(v1))
        .await
        .unwrap();
    assert_conflict(
        fixture
            .store
            .put(
                &key,
                &small_token_set("stale writer"),
                Precondition::Version(v1),
            )
            .await,
        "put with a stale version",
    );
    let read = fixture.store.get(&key).await.unwrap().unwrap();
    assert_eq!(read.version, v2);
    assert!(read.value == full_token_set("rotated"));
}

/// `Version(v)` fails with a conflict when nothing is stored.
pub async fn put_version_conflicts_when_absent(fixture: StoreFixture) {
    let key = fixture.key("vanished");
    let v1 = fixture
        .store
        .put(&key, &small_token_set("v1"), Precondition::Absent)
        .await
        .unwrap();
    fixture.store.delete(&key, Precondition::Any).await.unwrap();
    assert_conflict(
        fixture
            .store
            .put(
                &key,
                &small_token_set("resurrected"),
                Precondition::Version(v1),
            )
            .await,
        "put Version(v) on a deleted key",
    );
    assert!(fixture.store.get(&key).await.unwrap().is_none());
}

/// `delete(Any)` removes the record and says whether there was one.
pub async fn delete_any_removes_and_reports(fixture: StoreFixture) {
    let key = fixture.key("delete-any");
    fixture
        .store
        .put(&key, &small_token_set("x"), Precondition::Any)
        .await
        .unwrap();
    assert!(fixture.store.delete(&key, Precondition::Any).await.unwrap());
    assert!(fixture.store.get(&key).await.unwrap().is_none());
    assert!(!fixture.store.delete(&key, Precondition::Any).await.unwrap());
}

/// `delete(Version(v))` deletes only version `v`; otherwise conflict, nothing deleted.
pub async fn delete_version_precondition(fixture: StoreFixture) {
    let key = fixture.key("delete-version");
    let v1 = fixture
        .store
        .put(&key, &small_token_set("v1"), Precondition::Absent)
        .await
        .unwrap();
    let v2 = fixture
        .store
        .put(&key, &small_token_set("v2"), Precondition::Version(v1))
        .await
        .unwrap();
    assert_conflict(
        fixture.store.delete(&key, Precondition::Version(v1)).await,
        "delete with a stale version",
    );
    assert_eq!(stored_access(&fixture, &key).await.as_deref(), Some("v2"));
    assert!(
        fixture
            .store
            .delete(&key, Precondition::Version(v2))
            .await
            .unwrap()
    );
    assert_conflict(
        fixture.store.delete(&key, Precondition::Version(v2)).await,
        "delete Version(v) of a deleted key",
    );
}

/// `delete(Absent)` conflicts when a record exists and is a no-op otherwise.
pub async fn delete_absent_precondition(fixture: StoreFixture) {
    let key = fixture.key("delete-absent");
    assert!(
        !fixture
            .store
            .delete(&key, Precondition::Absent)
            .await
            .unwrap()
    );
    fixture
        .store
        .put(&key, &small_token_set("x"), Precondition::Any)
        .await
        .unwrap();
    assert_conflict(
        fixture.store.delete(&key, Precondition::Absent).await,
        "delete Absent of an existing record",
    );
    assert!(fixture.store.get(&key).await.unwrap().is_some());
}

/// `list` returns each key of a provider (and client) once, never another's.
pub async fn list_by_provider_and_client(fixture: StoreFixture) {
    let provider = fixture.provider();
    let other_provider = format!("{provider}-other");
    let keys = [
        TokenKey::new(&provider, "client-a", "one"),
        TokenKey::new(&provider, "client-a", "two"),
        TokenKey::new(&provider, "client-b", "one"),
        TokenKey::new(&other_provider, "client-a", "one"),
    ];
    for key in &keys {
        fixture
            .store
            .put(key, &small_token_set("x"), Precondition::Any)
            .await
            .unwrap();
        // Writing twice must not list a key twice.
        fixture
            .store
            .put(key, &small_token_set("y"), Precondition::Any)
            .await
            .unwrap();
    }
    let mut all = fixture
        .store
        .list(&KeyFilter::provider(&provider))
        .await
        .unwrap();
    all.sort();
    assert_eq!(all, keys[..3].to_vec());
    let mut client_a = fixture
        .store
        .list(&KeyFilter::provider(&provider).with_client("client-a"))
        .await
        .unwrap();
    client_a.sort();
    assert_eq!(client_a, keys[..2].to_vec());
    let none = fixture
        .store
        .list(&KeyFilter::provider(&provider).with_client("client-z"))
        .await
        .unwrap();
    assert!(none.is_empty());
    fixture
        .store
        .delete(&keys[3], Precondition::Any)
        .await
        .unwrap();
}

/// Keys with unicode, `/`, `:`, `{`, `}`, `..`, NUL-free control characters and 1 KiB parts
/// are valid, and distinct keys never share a record.
pub async fn awkward_keys_are_isolated(fixture: StoreFixture) {
    let provider = fixture.provider();
    let long = "x".repeat(1024);
    let accounts = [
        "plain".to_owned(),
        "ünïcødé 🦀 用户".to_owned(),
        "a/b/../../etc/passwd".to_owned(),
        "a:b:c".to_owned(),
        "{tag}".to_owned(),
        "}{".to_owned(),
        "{".to_owned(),
        "with space\tand\ttabs".to_owned(),
        "nul\0inside".to_owned(),
        "line\nbreak\r\n".to_owned(),
        ".".to_owned(),
        "..".to_owned(),
        "".to_owned(),
        "*".to_owned(),
        "https://api.joind.in/v2.1/users/42".to_owned(),
        long.clone(),
        format!("{long}y"),
    ];
    let mut keys: Vec<TokenKey> = accounts
        .iter()
        .map(|a| TokenKey::new(&provider, "client-a", a))
        .collect();
    // The same parts split differently must be different keys.
    keys.push(TokenKey::new(&provider, "client-a/b", "c"));
    keys.push(TokenKey::new(&provider, "client-a", "b/c"));
    keys.push(TokenKey::new(&provider, "client:a", "b"));
    keys.push(TokenKey::new(&provider, "client", ":ab"));
    keys.push(TokenKey::new(&provider, &long, &long));
    for (i, key) in keys.iter().enumerate() {
        fixture
            .store
            .put(
                key,
                &small_token_set(&format!("token-{i}")),
                Precondition::Absent,
            )
            .await
            .unwrap_or_else(|e| panic!("put of awkward key #{i} failed: {e}"));
    }
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(
            stored_access(&fixture, key).await.as_deref(),
            Some(format!("token-{i}").as_str()),
            "awkward key #{i} reads another's record"
        );
    }
    let mut listed = fixture
        .store
        .list(&KeyFilter::provider(&provider))
        .await
        .unwrap();
    listed.sort();
    let mut expected = keys.clone();
    expected.sort();
    assert_eq!(listed, expected, "list returns the awkward keys exactly");
    for key in &keys {
        assert!(fixture.store.delete(key, Precondition::Any).await.unwrap());
    }
}

/// `get_many` answers each key as `get` does, in the order asked (duplicates included),
/// across more keys than one batch of a pipelining store carries, and for no key at all.
pub async fn get_many_answers_as_get_in_order(fixture: StoreFixture) {
    assert!(
        fixture
            .store
            .get_many(&[])
            .await
            .expect("get_many of nothing")
            .is_empty(),
        "get_many of no key answers nothing"
    );
    // 600 keys: past a batch of 512. Every third is absent; one is awkward.
    let mut keys: Vec<TokenKey> = (0..600)
        .map(|i| fixture.key(&format!("many-{i}")))
        .collect();
    keys[7] = TokenKey::new(fixture.provider(), "client:a/{b}", "ünï {c}\tcode");
    let mut written = HashMap::new();
    for (i, key) in keys.iter().enumerate() {
        if i % 3 == 2 {
            continue;
        }
        let version = fixture
            .store
            .put(
                key,
                &small_token_set(&format!("many-token-{i}")),
                Precondition::Absent,
            )
            .await
            .unwrap_or_else(|e| panic!("put #{i}: {e}"));
        written.insert(i, version);
    }
    // Asked out of order, with a repeat and a key of another client.
    let mut asked: Vec<usize> = (0..keys.len()).rev().collect();
    asked.insert(10, 4);
    let mut asked_keys: Vec<TokenKey> = asked.iter().map(|&i| keys[i].clone()).collect();
    asked_keys.push(TokenKey::new(fixture.provider(), "client-b", "many-0"));
    let answers = fixture.store.get_many(&asked_keys).await.expect("get_many");
    assert_eq!(answers.len(), asked_keys.len(), "one answer per key asked");
    for (position, (key, answer)) in asked_keys.iter().zip(answers).enumerate() {
        let answer = answer.unwrap_or_else(|e| panic!("answer #{position}: {e}"));
        let single = fixture.store.get(key).await.expect("get");
        match (answer, single) {
            (None, None) => {}
            (Some(many), Some(one)) => {
                assert_eq!(
                    many.version, one.version,
                    "answer #{position}: the version get reports"
                );
                assert!(
                    many.value == one.value,
                    "answer #{position}: the token set get reads"
                );
            }
            (many, one) => panic!(
                "answer #{position}: get_many found {} where get found {}",
                if many.is_some() {
                    "a record"
                } else {
                    "nothing"
                },
                if one.is_some() { "a record" } else { "nothing" },
            ),
        }
    }
    // And the answers are the records written, in the order asked.
    let answers = fixture.store.get_many(&keys).await.expect("get_many");
    for (i, answer) in answers.into_iter().enumerate() {
        let answer = answer.expect("readable");
        match written.get(&i) {
            Some(version) => {
                let read = answer.unwrap_or_else(|| panic!("key #{i} was written"));
                assert_eq!(read.version, *version, "key #{i}");
                assert_eq!(
                    read.value.access_token.expose_secret(),
                    format!("many-token-{i}"),
                    "key #{i} answered with another key's record"
                );
            }
            None => assert!(answer.is_none(), "key #{i} was never written"),
        }
    }
    for key in &keys {
        fixture
            .store
            .delete(key, Precondition::Any)
            .await
            .expect("delete");
    }
}

/// Of 64 concurrent writers holding the same version, exactly one wins, round after round.
pub async fn concurrent_cas_one_winner_per_version(fixture: StoreFixture) {
    let key = fixture.key("cas-race");
    let mut version = fixture
        .store
        .put(&key, &small_token_set("round-start"), Precondition::Absent)
        .await
        .unwrap();
    for round in 0..10 {
        let mut writers = JoinSet::new();
        for writer in 0..64 {
            let store = fixture.store.clone();
            let key = key.clone();
            writers.spawn(async move {
                let tokens = small_token_set(&format!("round-{round}-writer-{writer}"));
                (
                    writer,
                    store
                        .put(&key, &tokens, Precondition::Version(version))
                        .await,
                )
            });
        }
        let mut winners = Vec::new();
        for (id, result) in writers.join_all().await {
            match result {
                Ok(new) => winners.push((id, new)),
                Err(Error::Conflict { .. }) => {}
                Err(other) => panic!("round {round}: a losing writer got {other}, not a conflict"),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: {} writers won the same version",
            winners.len()
        );
        let (id, new) = winners[0];
        let read = fixture.store.get(&key).await.unwrap().unwrap();
        assert_eq!(read.version, new);
        assert_eq!(
            read.value.access_token.expose_secret(),
            format!("round-{round}-writer-{id}")
        );
        version = new;
    }
}

/// 64 tasks each add 5 to a counter by read-modify-write with the version precondition,
/// retrying on conflict: no increment is lost.
pub async fn concurrent_increments_lose_nothing(fixture: StoreFixture) {
    let key = fixture.key("counter");
    fixture
        .store
        .put(&key, &counter_token_set(0), Precondition::Absent)
        .await
        .unwrap();
    let mut tasks = JoinSet::new();
    for _ in 0..64 {
        let store = fixture.store.clone();
        let key = key.clone();
        tasks.spawn(async move {
            for _ in 0..5 {
                loop {
                    let current = store.get(&key).await.unwrap().unwrap();
                    let next = counter_token_set(count_of(&current.value) + 1);
                    match store
                        .put(&key, &next, Precondition::Version(current.version))
                        .await
                    {
                        Ok(_) => break,
                        Err(Error::Conflict { .. }) => tokio::task::yield_now().await,
                        Err(other) => panic!("increment failed: {other}"),
                    }
                }
            }
        });
    }
    tasks.join_all().await;
    let read = fixture.store.get(&key).await.unwrap().unwrap();
    assert_eq!(count_of(&read.value), 320);
}

// ---- leases -------------------------------------------------------------------------------

/// While a lease is held, no one else can take it.
pub async fn lease_is_exclusive(fixture: StoreFixture) {
    let key = fixture.key("lease-exclusive");
    let lease = fixture
        .store
        .try_lease(&key, Duration::from_secs(30))
        .await
        .unwrap()
        .expect("a free lease is granted");
    assert_eq!(lease.key, key);
    for _ in 0..5 {
        assert!(
            fixture
                .store
                .try_lease(&key, Duration::from_secs(30))
                .await
                .unwrap()
                .is_none()
        );
    }
    fixture.store.release_lease(&lease).await.unwrap();
    let again = fixture
        .store
        .try_lease(&key, Duration::from_secs(30))
        .await
        .unwrap()
        .expect("a released lease can be taken");
    assert_ne!(
        again.holder, lease.holder,
        "each acquisition has its own holder"
    );
    fixture.store.release_lease(&again).await.unwrap();
}

/// A lease renewed before it expires stays held beyond its first TTL.
pub async fn lease_renewal_keeps_it(fixture: StoreFixture) {
    let key = fixture.key("lease-renewal");
    // Renewed every 250 ms with a 2 s TTL: a stall of up to 1.75 s goes unnoticed.
    let ttl = Duration::from_millis(2000);
    let lease = take(&fixture, &key, ttl, "lease").await;
    let until = Instant::now() + Duration::from_millis(3000);
    while Instant::now() < until {
        fixture
            .store
            .renew_lease(&lease, ttl)
            .await
            .expect("renewal while held");
        assert!(
            fixture.store.try_lease(&key, ttl).await.unwrap().is_none(),
            "a renewed lease was taken by someone else"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    fixture.store.release_lease(&lease).await.unwrap();
}

/// A lease nobody renews expires after its TTL, and another holder can take it: a dead
/// holder never blocks the key for good.
pub async fn lease_expires_without_renewal(fixture: StoreFixture) {
    let key = fixture.key("lease-expiry");
    // The short lease is only ever polled for its end, so a stalled machine cannot make
    // the behaviour fail: exclusivity is `lease_is_exclusive`'s to show.
    let dead = fixture
        .store
        .try_lease(&key, Duration::from_millis(300))
        .await
        .unwrap()
        .expect("lease");
    let successor = take_when_free(&fixture, &key, "the unrenewed lease expires").await;
    assert_ne!(successor.holder, dead.holder);
    fixture.store.release_lease(&successor).await.unwrap();
}

/// Releasing only ever releases the releaser's own lease; releasing a lease no longer held
/// is not an error.
pub async fn lease_release_only_by_holder(fixture: StoreFixture) {
    let key = fixture.key("lease-release");
    let ttl = Duration::from_millis(300);
    let old = take(&fixture, &key, ttl, "lease").await;
    let successor = take_when_free(&fixture, &key, "the old lease expires").await;
    // The old holder wakes up and releases: the successor's lease must survive.
    fixture
        .store
        .release_lease(&old)
        .await
        .expect("releasing a lost lease is not an error");
    assert!(
        fixture.store.try_lease(&key, ttl).await.unwrap().is_none(),
        "the old holder released the successor's lease"
    );
    fixture.store.release_lease(&successor).await.unwrap();
    fixture
        .store
        .release_lease(&successor)
        .await
        .expect("a second release is not an error");
}

/// Leases on distinct keys do not interfere.
pub async fn leases_on_distinct_keys_are_independent(fixture: StoreFixture) {
    let a = fixture.key("lease-a");
    let b = fixture.key("lease-b");
    let ttl = Duration::from_secs(30);
    let la = take(&fixture, &a, ttl, "lease a").await;
    let lb = take(&fixture, &b, ttl, "lease b").await;
    fixture.store.release_lease(&la).await.unwrap();
    assert!(fixture.store.try_lease(&b, ttl).await.unwrap().is_none());
    fixture.store.release_lease(&lb).await.unwrap();
}

/// Renewing a lease that expired and was taken, or was released, fails with `LeaseLost`.
pub async fn renewing_a_lost_lease_fails(fixture: StoreFixture) {
    let key = fixture.key("lease-lost");
    let ttl = Duration::from_millis(300);
    let released = take(&fixture, &key, ttl, "lease").await;
    fixture.store.release_lease(&released).await.unwrap();
    match fixture.store.renew_lease(&released, ttl).await {
        Err(Error::LeaseLost { .. }) => {}
        other => panic!("renewing a released lease: expected LeaseLost, got {other:?}"),
    }
    let old = take(&fixture, &key, ttl, "lease").await;
    let successor = take_when_free(&fixture, &key, "the old lease expires").await;
    match fixture.store.renew_lease(&old, ttl).await {
        Err(Error::LeaseLost { .. }) => {}
        other => panic!("renewing a lease taken by another: expected LeaseLost, got {other:?}"),
    }
    fixture.store.release_lease(&successor).await.unwrap();
}

/// Of 32 concurrent takers of a free lease, exactly one gets it.
pub async fn concurrent_lease_has_one_winner(fixture: StoreFixture) {
    let key = fixture.key("lease-race");
    let mut takers = JoinSet::new();
    for _ in 0..32 {
        let store = fixture.store.clone();
        let key = key.clone();
        takers.spawn(async move {
            store
                .try_lease(&key, Duration::from_secs(30))
                .await
                .unwrap()
        });
    }
    let winners: Vec<grantkit_core::store::Lease> =
        takers.join_all().await.into_iter().flatten().collect();
    assert_eq!(
        winners.len(),
        1,
        "{} takers got the same lease",
        winners.len()
    );
    fixture.store.release_lease(&winners[0]).await.unwrap();
}

// ---- pending authorizations ----------------------------------------------------------------

/// A pending authorization comes back with every field, under the hash of its state.
pub async fn pending_round_trips_every_field(fixture: StoreFixture) {
    let written = pending(&fixture);
    fixture
        .store
        .put_pending(&written, Duration::from_secs(600))
        .await
        .unwrap();
    let read = fixture
        .store
        .take_pending(&written.state_hash())
        .await
        .unwrap()
        .expect("stored");
    assert!(read == written, "fields differ: {read:?} vs {written:?}");
    assert_eq!(read.state.expose_secret(), written.state.expose_secret());
}

/// A pending authorization can be taken once; the second take finds nothing.
pub async fn pending_take_is_single_use(fixture: StoreFixture) {
    let written = pending(&fixture);
    fixture
        .store
        .put_pending(&written, Duration::from_secs(600))
        .await
        .unwrap();
    assert!(
        fixture
            .store
            .take_pending(&written.state_hash())
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        fixture
            .store
            .take_pending(&written.state_hash())
            .await
            .unwrap()
            .is_none()
    );
}

/// Taking a state never stored finds nothing.
pub async fn pending_unknown_is_none(fixture: StoreFixture) {
    let never = StateToken::generate().hash();
    assert!(fixture.store.take_pending(&never).await.unwrap().is_none());
}

/// Of 32 concurrent takers of one pending authorization, exactly one gets it.
pub async fn concurrent_pending_take_has_one_winner(fixture: StoreFixture) {
    let written = pending(&fixture);
    fixture
        .store
        .put_pending(&written, Duration::from_secs(600))
        .await
        .unwrap();
    let hash = written.state_hash();
    let mut takers = JoinSet::new();
    for _ in 0..32 {
        let store = fixture.store.clone();
        let hash = hash.clone();
        takers.spawn(async move { store.take_pending(&hash).await.unwrap() });
    }
    let mut winners = 0;
    for taken in takers.join_all().await {
        if taken.is_some() {
            winners += 1;
        }
    }
    assert_eq!(
        winners, 1,
        "{winners} takers got the same pending authorization"
    );
}

// ---- across two handles on one storage ---------------------------------------------------

/// A write through one handle is what the other reads, and a write based on a version the
/// other has replaced is refused: compare-and-swap holds between handles as within one.
async fn handles_see_and_refuse_each_others_writes(f: StoreFixture) {
    let (a, b) = (&f.store, f.second());
    let key = f.key("across-handles");
    let first = a
        .put(&key, &small_token_set("from-a"), Precondition::Absent)
        .await
        .unwrap();
    let seen = b.get(&key).await.unwrap().expect("b reads a's write");
    assert_eq!(seen.version, first);
    assert_eq!(seen.value.access_token.expose_secret(), "from-a");
    let err = b
        .put(&key, &small_token_set("b-too"), Precondition::Absent)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    let second = b
        .put(
            &key,
            &small_token_set("from-b"),
            Precondition::Version(first),
        )
        .await
        .unwrap();
    assert_ne!(second, first);
    let err = a
        .put(
            &key,
            &small_token_set("stale"),
            Precondition::Version(first),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Conflict { .. }),
        "a stale write: {err:?}"
    );
    let now = a.get(&key).await.unwrap().unwrap();
    assert_eq!(now.version, second);
    assert_eq!(now.value.access_token.expose_secret(), "from-b");
    let err = a
        .delete(&key, Precondition::Version(first))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Conflict { .. }),
        "a stale delete: {err:?}"
    );
    assert!(a.delete(&key, Precondition::Version(second)).await.unwrap());
    assert!(b.get(&key).await.unwrap().is_none());
}

/// Tasks on two handles increment one counter with compare-and-swap: no increment is lost.
async fn increments_across_handles_lose_nothing(f: StoreFixture) {
    const TASKS_PER_HANDLE: u64 = 4;
    const INCREMENTS: u64 = 25;
    let key = f.key("counter-across-handles");
    f.store
        .put(&key, &counter_token_set(0), Precondition::Absent)
        .await
        .unwrap();
    let mut tasks = JoinSet::new();
    for handle in [f.store.clone(), f.second().clone()] {
        for _ in 0..TASKS_PER_HANDLE {
            let (store, key) = (handle.clone(), key.clone());
            tasks.spawn(async move {
                for _ in 0..INCREMENTS {
                    loop {
                        let current = store.get(&key).await.unwrap().expect("the counter");
                        let next = counter_token_set(count_of(&current.value) + 1);
                        match store
                            .put(&key, &next, Precondition::Version(current.version))
                            .await
                        {
                            Ok(_) => break,
                            Err(Error::Conflict { .. }) => continue,
                            Err(err) => panic!("increment failed: {err}"),
                        }
                    }
                }
            });
        }
    }
    tasks.join_all().await;
    let total = f.second().get(&key).await.unwrap().unwrap().value;
    assert_eq!(count_of(&total), 2 * TASKS_PER_HANDLE * INCREMENTS);
}

/// A lease taken through one handle keeps the other out until released; the other handle
/// can neither renew nor release it.
async fn lease_is_exclusive_across_handles(f: StoreFixture) {
    let (a, b) = (&f.store, f.second());
    let key = f.key("lease-across-handles");
    let held = a
        .try_lease(&key, Duration::from_secs(30))
        .await
        .unwrap()
        .expect("a takes the lease");
    assert!(
        b.try_lease(&key, Duration::from_secs(30))
            .await
            .unwrap()
            .is_none()
    );
    // A holder b never issued: b's own attempt, not a's lease value.
    let imposter = grantkit_core::store::Lease::new_holder(key.clone());
    assert!(
        b.renew_lease(&imposter, Duration::from_secs(30))
            .await
            .is_err()
    );
    let _ = b.release_lease(&imposter).await;
    assert!(
        b.try_lease(&key, Duration::from_secs(30))
            .await
            .unwrap()
            .is_none(),
        "a release by someone else did not free it"
    );
    a.renew_lease(&held, Duration::from_secs(30)).await.unwrap();
    a.release_lease(&held).await.unwrap();
    let taken = b
        .try_lease(&key, Duration::from_secs(30))
        .await
        .unwrap()
        .expect("b takes the released lease");
    b.release_lease(&taken).await.unwrap();
}

/// A holder that stops renewing (a process that died) loses the lease to the other handle
/// once its TTL has passed: short TTL, polled, on real time.
async fn lease_expires_for_the_other_handle(f: StoreFixture) {
    let (a, b) = (&f.store, f.second());
    let key = f.key("lease-expiry-across-handles");
    let dead = a
        .try_lease(&key, Duration::from_secs(2))
        .await
        .unwrap()
        .expect("a takes the lease");
    assert!(
        b.try_lease(&key, Duration::from_secs(30))
            .await
            .unwrap()
            .is_none(),
        "the lease is held until it expires"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let taken = loop {
        if let Some(lease) = b.try_lease(&key, Duration::from_secs(30)).await.unwrap() {
            break lease;
        }
        assert!(
            Instant::now() < deadline,
            "the lease never expired for the other handle"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_ne!(taken.holder, dead.holder);
    b.release_lease(&taken).await.unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Outcome, run_cell};
    use grantkit_core::mock::MockTokenStore;
    use grantkit_core::store::{Version, Versioned};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A cell that times out takes the tasks its behaviour spawned with it: none of them
    /// calls the store once the cell has ended (a store whose writes always conflict keeps
    /// the increment tasks spinning until they are stopped).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_timed_out_cell_stops_the_tasks_its_behaviour_spawned() {
        let calls = Arc::new(AtomicUsize::new(0));
        let mut store = MockTokenStore::new();
        let counted = calls.clone();
        store.expect_put().returning(move |key, _, precondition| {
            counted.fetch_add(1, Ordering::Relaxed);
            match precondition {
                Precondition::Absent => Ok(Version::from_u64(1)),
                _ => Err(Error::Conflict {
                    key: key.to_string(),
                }),
            }
        });
        let counted = calls.clone();
        store.expect_get().returning(move |_| {
            counted.fetch_add(1, Ordering::Relaxed);
            Ok(Some(Versioned {
                value: counter_token_set(0),
                version: Version::from_u64(1),
            }))
        });
        let fixture = StoreFixture::new(Arc::new(store));
        let cell = run_cell(
            concurrent_increments_lose_nothing(fixture),
            Duration::from_millis(200),
        )
        .await;
        assert!(
            matches!(cell.outcome, Outcome::Failed(ref reason) if reason.contains("timed out")),
            "{}",
            cell.outcome
        );
        // A task in the middle of a step when the cell ended may finish that step: wait
        // (at most a few seconds) for the count to settle, then see that it stays.
        let mut ended = calls.load(Ordering::Relaxed);
        let settle_by = Instant::now() + Duration::from_secs(5);
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = calls.load(Ordering::Relaxed);
            if now == ended || Instant::now() > settle_by {
                break;
            }
            ended = now;
        }
        assert!(
            ended > 64,
            "the tasks ran before the timeout ({ended} calls)"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            calls.load(Ordering::Relaxed),
            ended,
            "tasks of a timed-out cell still call the store"
        );
    }
}
