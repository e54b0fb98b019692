//! Several real processes sharing one database:
//!
//! - compare-and-swap: 4 processes × 500 read-modify-write increments end at exactly 2,000,
//!   on PostgreSQL and on one SQLite file;
//! - one refresh: 4 processes × 250 tasks asking for an expired token through the join.me
//!   provider cause exactly one call to the join.me emulator's token endpoint (PostgreSQL).
//!
//! This binary is its own harness (`harness = false`): run normally it is the coordinator;
//! started with `GRANTKIT_SQL_TEST_ROLE` set it is a worker, configured by environment
//! variables (the store's URL and prefix, the client secret: never in argv), reporting on
//! stdout.

use grantkit_conformance::processes::{Scenario, Worker, run_scenarios};
use grantkit_core::{
    AccessToken, ClientSecret, Error, GrantKind, ManagerConfig, RefreshToken, TokenKey,
    TokenManager, TokenSet, TokenStore, store::Precondition,
};
use grantkit_emulator::{JoinMeEmulator, JoinMeEndpoint, JoinMeGrant};
use grantkit_joinme::JoinMeProvider;
use grantkit_store_sql::testing::{TestPostgres, random_prefix};
use grantkit_store_sql::{ENV_TABLE_PREFIX, ENV_URL, SqlTokenStore};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const ROLE: &str = "GRANTKIT_SQL_TEST_ROLE";
const INCREMENTS: &str = "GRANTKIT_SQL_TEST_INCREMENTS";
const TASKS: &str = "GRANTKIT_SQL_TEST_TASKS";
const TOKEN_URL: &str = "GRANTKIT_SQL_TEST_TOKEN_URL";
const CLIENT_ID: &str = "GRANTKIT_SQL_TEST_CLIENT_ID";
const CLIENT_SECRET: &str = "GRANTKIT_SQL_TEST_CLIENT_SECRET";
const ACCOUNT: &str = "GRANTKIT_SQL_TEST_ACCOUNT";

const SCENARIO_TIMEOUT: Duration = Duration::from_secs(240);
const WORKER_TIMEOUT: Duration = Duration::from_secs(180);
/// Long enough that a slow machine never lets a live holder's lease lapse between
/// renewals (which would allow a second refresh).
const LEASE_TTL: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match std::env::var(ROLE) {
        Ok(role) => runtime.block_on(worker::run(&role)),
        Err(_) => coordinator::run(&runtime),
    }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("the worker needs {name}"))
}

fn env_number(name: &str) -> u64 {
    env(name)
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number"))
}

fn counter_tokens(count: u64) -> TokenSet {
    TokenSet::new(
        AccessToken::new(format!("count-{count}")),
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

fn counter_key() -> TokenKey {
    TokenKey::new("multiprocess", "client", "counter")
}

mod worker {
    use super::*;

    pub(super) async fn run(role: &str) -> ExitCode {
        match role {
            "cas" => cas().await,
            "refresh" => refresh().await,
            other => panic!("unknown worker role {other}"),
        }
        ExitCode::SUCCESS
    }

    async fn store() -> SqlTokenStore {
        SqlTokenStore::builder()
            .from_env()
            .expect("the coordinator sets the store's environment")
            .open()
            .await
            .expect("the worker opens the store")
    }

    /// Adds 1 to the counter `INCREMENTS` times by read-modify-write with the version
    /// precondition, retrying on conflict.
    async fn cas() {
        let store = store().await;
        let key = counter_key();
        let mut conflicts = 0u64;
        for _ in 0..env_number(INCREMENTS) {
            loop {
                let current = store.get(&key).await.expect("get").expect("the counter");
                let next = counter_tokens(count_of(&current.value) + 1);
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
        println!("DONE conflicts={conflicts}");
    }

    /// `TASKS` tasks ask the manager for the token at once; reports what each got.
    async fn refresh() {
        let store: Arc<dyn TokenStore> = Arc::new(store().await);
        let provider =
            JoinMeProvider::builder(env(CLIENT_ID), ClientSecret::new(env(CLIENT_SECRET)))
                .token_url(env(TOKEN_URL))
                .timeout(Duration::from_secs(2))
                .build()
                .expect("a join.me provider");
        let key = TokenKey::new("joinme", env(CLIENT_ID), env(ACCOUNT));
        let manager = TokenManager::builder(Arc::new(provider), store)
            .config(ManagerConfig::default().with_lease_ttl(LEASE_TTL))
            .build()
            .expect("a manager");
        let mut tasks = Vec::new();
        for _ in 0..env_number(TASKS) {
            let manager = manager.clone();
            let key = key.clone();
            tasks.push(tokio::spawn(
                async move { manager.access_token(&key).await },
            ));
        }
        let mut tokens: BTreeMap<String, u64> = BTreeMap::new();
        let mut errors = Vec::new();
        for task in tasks {
            match task.await.expect("a task panicked") {
                Ok(got) => {
                    *tokens
                        .entry(got.access_token.expose_secret().to_owned())
                        .or_default() += 1;
                }
                Err(other) => errors.push(other.to_string()),
            }
        }
        let report = serde_json::json!({ "tokens": tokens, "errors": errors });
        println!("RESULT {report}");
    }
}

mod coordinator {
    use super::*;

    const SCENARIOS: &[(&str, Scenario)] = &[
        ("cas_across_processes_postgres", || {
            Box::pin(cas_across_processes(Database::Postgres))
        }),
        ("cas_across_processes_sqlite", || {
            Box::pin(cas_across_processes(Database::Sqlite))
        }),
        ("one_refresh_across_processes_postgres", || {
            Box::pin(one_refresh_across_processes())
        }),
    ];

    pub(super) fn run(runtime: &tokio::runtime::Runtime) -> ExitCode {
        run_scenarios(runtime, SCENARIOS, SCENARIO_TIMEOUT)
    }

    #[derive(Clone, Copy, Debug)]
    enum Database {
        Postgres,
        Sqlite,
    }

    /// The store's URL and a fresh table prefix, as the workers' environment, and the
    /// directory of a SQLite file (removed when dropped).
    async fn database(
        database: Database,
    ) -> (Vec<(&'static str, String)>, Option<tempfile::TempDir>) {
        let (url, dir) = match database {
            Database::Postgres => {
                let postgres = tokio::task::spawn_blocking(TestPostgres::shared)
                    .await
                    .expect("starting PostgreSQL panicked")
                    .unwrap_or_else(|e| panic!("no PostgreSQL: {e}"));
                (postgres.url().to_owned(), None)
            }
            Database::Sqlite => {
                let dir = tempfile::tempdir().expect("a directory for SQLite");
                let url = format!("sqlite:{}", dir.path().join("tokens.db").display());
                (url, Some(dir))
            }
        };
        (
            vec![(ENV_URL, url), (ENV_TABLE_PREFIX, random_prefix())],
            dir,
        )
    }

    async fn open(vars: &[(&'static str, String)]) -> SqlTokenStore {
        let value = |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
                .expect("a store variable")
        };
        SqlTokenStore::builder()
            .url(value(ENV_URL))
            .table_prefix(value(ENV_TABLE_PREFIX))
            .open()
            .await
            .expect("the coordinator opens the store")
    }

    /// A worker process: this executable in the worker `role`.
    fn spawn_worker(role: &str, vars: &[(&str, String)]) -> Worker {
        let mut vars = vars.to_vec();
        vars.push((ROLE, role.to_owned()));
        Worker::spawn(&vars, WORKER_TIMEOUT)
    }

    async fn cas_across_processes(kind: Database) {
        let (mut vars, _dir) = database(kind).await;
        let store = open(&vars).await;
        let key = counter_key();
        store
            .put(&key, &counter_tokens(0), Precondition::Absent)
            .await
            .unwrap();
        vars.push((INCREMENTS, "500".to_owned()));
        let mut workers: Vec<Worker> = (0..4).map(|_| spawn_worker("cas", &vars)).collect();
        for worker in &mut workers {
            worker.line_starting("DONE").await;
        }
        for worker in workers {
            worker.succeed().await;
        }
        let stored = store.get(&key).await.unwrap().unwrap();
        assert_eq!(
            count_of(&stored.value),
            2000,
            "increments were lost or doubled"
        );
    }

    async fn one_refresh_across_processes() {
        let (mut vars, _dir) = database(Database::Postgres).await;
        let store = open(&vars).await;
        let emulator = tokio::task::spawn_blocking(|| {
            JoinMeEmulator::builder()
                .with_quirks(|q| {
                    q.refresh_rotation = true;
                    q.token_expires_in = Some(3600);
                })
                .start()
        })
        .await
        .unwrap()
        .expect("the join.me emulator starts");
        let fixtures = emulator.fixtures().clone();
        let issued = emulator
            .issue_tokens(
                &fixtures.email,
                &fixtures.client_id,
                &["user_info", "scheduler"],
                JoinMeGrant::Code,
            )
            .expect("the emulator issues a token pair");
        let key = TokenKey::new("joinme", &fixtures.client_id, &fixtures.email);
        let mut expired = TokenSet::new(
            AccessToken::new(issued.access_token.clone()),
            GrantKind::AuthorizationCode,
        )
        .with_refresh_token(RefreshToken::new(
            issued
                .refresh_token
                .clone()
                .expect("a code grant has a refresh token"),
        ));
        expired.expires_at = Some(SystemTime::now() - Duration::from_secs(3600));
        store
            .put(&key, &expired, Precondition::Absent)
            .await
            .unwrap();
        vars.extend([
            (ACCOUNT, fixtures.email.clone()),
            (TOKEN_URL, emulator.token_url()),
            (CLIENT_ID, fixtures.client_id.clone()),
            (CLIENT_SECRET, fixtures.client_secret.clone()),
            (TASKS, "250".to_owned()),
        ]);
        let mut workers: Vec<Worker> = (0..4).map(|_| spawn_worker("refresh", &vars)).collect();
        let mut served: BTreeMap<String, u64> = BTreeMap::new();
        for worker in &mut workers {
            let line = worker.line_starting("RESULT").await;
            let report: serde_json::Value = serde_json::from_str(&line).expect("a JSON report");
            let errors = report["errors"].as_array().expect("errors");
            assert!(errors.is_empty(), "errors: {errors:?}");
            for (token, n) in report["tokens"].as_object().expect("tokens") {
                *served.entry(token.clone()).or_default() += n.as_u64().unwrap();
            }
        }
        for worker in workers {
            worker.succeed().await;
        }
        assert_eq!(served.values().sum::<u64>(), 1000, "every task got a token");
        assert_eq!(
            served.len(),
            1,
            "the processes were served different tokens"
        );
        assert_eq!(
            emulator.count(JoinMeEndpoint::Token),
            1,
            "4 processes × 250 tasks made more than one token-endpoint call"
        );
        let stored = store.get(&key).await.unwrap().unwrap();
        assert!(served.contains_key(stored.value.access_token.expose_secret()));
        assert!(!stored.value.is_expired(SystemTime::now()));
    }
}
