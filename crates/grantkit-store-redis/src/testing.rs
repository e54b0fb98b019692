//! Real Redis for tests, benchmarks and the conformance runner: `redis-server` processes
//! started on free loopback ports and stopped by their own handles (feature `testing`).
//!
//! - [`RedisServer`]: one standalone server in its own temporary directory. Dropping the
//!   handle kills the process and removes the directory; [`crash`](RedisServer::crash) and
//!   [`restart`](RedisServer::restart) kill it and bring it back on the same port and
//!   directory (for durability tests).
//! - [`RedisCluster`]: three (or more) masters with explicit cluster-bus ports, slots
//!   assigned and joined by this module, ready once every node reports `cluster_state:ok`.
//! - [`TestRedis`]: what a test binary shares: `GRANTKIT_TEST_REDIS_URL` /
//!   `GRANTKIT_TEST_REDIS_CLUSTER_URLS` when set, else servers started once per process.
//!   Each store it hands out has its own random key prefix, so tests never see each
//!   other's keys.
//!
//! Each server runs under a small `sh` watchdog that reads its standard input: when the
//! handle is dropped, or the owning process dies without dropping it (a `static`), the
//! pipe closes and the watchdog kills the server and removes its directory. No server
//! outlives its owner.
//!
//! The functions here block (they start processes and wait for them); from async code call
//! them in `tokio::task::spawn_blocking`, or use [`TestRedis::shared_standalone_store`] /
//! [`TestRedis::shared_cluster_store`].

use crate::{RedisTokenStore, RedisTokenStoreBuilder, Topology};
use rand::RngCore as _;
use std::fmt;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Environment variable: use this standalone server instead of starting one.
pub const ENV_TEST_URL: &str = "GRANTKIT_TEST_REDIS_URL";
/// Environment variable: use this cluster (comma-separated node URLs) instead of starting
/// one.
pub const ENV_TEST_CLUSTER_URLS: &str = "GRANTKIT_TEST_REDIS_CLUSTER_URLS";

const SERVER_BINARY: &str = "redis-server";
const INSTALL_HINT: &str = "install Redis 7 (Debian/Ubuntu: `apt-get install redis-server`, which also provides redis-cli), or point GRANTKIT_TEST_REDIS_URL / GRANTKIT_TEST_REDIS_CLUSTER_URLS at running servers";
const READY_TIMEOUT: Duration = Duration::from_secs(20);
const CLUSTER_READY_TIMEOUT: Duration = Duration::from_secs(60);
const START_ATTEMPTS: usize = 5;
const CLUSTER_SLOTS: u32 = 16384;

/// Kills the server when its standard input closes; keeps the directory only when told
/// `keep` first (a crash to be followed by a restart).
const WATCHDOG: &str = r#"
dir=$1; shift
redis-server "$@" >>"$dir/stdio.log" 2>&1 &
pid=$!
echo "$pid"
read -r command
kill -KILL "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
[ "$command" = keep ] || rm -rf -- "$dir"
"#;

/// Why the harness could not provide Redis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HarnessError(String);

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HarnessError {}

fn fail(message: impl Into<String>) -> HarnessError {
    HarnessError(message.into())
}

/// Whether `redis-server` can be started here (it is on `PATH`).
pub fn redis_server_installed() -> bool {
    Command::new(SERVER_BINARY)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn require_redis_server() -> Result<(), HarnessError> {
    if redis_server_installed() {
        Ok(())
    } else {
        Err(fail(format!(
            "`{SERVER_BINARY}` was not found on PATH: {INSTALL_HINT}"
        )))
    }
}

/// A port no one listens on right now. Another process could take it before the server
/// binds it; starting retries with new ports when that happens.
fn free_port() -> Result<u16, HarnessError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| fail(format!("no free loopback port: {e}")))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| fail(format!("no free loopback port: {e}")))
}

/// A random key prefix for one test or run: `grantkit-test:<16 hex>:`.
pub fn random_prefix() -> String {
    let mut bytes = [0u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("grantkit-test:{hex}:")
}

/// How a [`RedisServer`] is configured.
#[derive(Clone, Debug, Default)]
pub struct ServerOptions {
    durable: bool,
    cluster_port: Option<()>,
    extra: Vec<(String, String)>,
}

impl ServerOptions {
    /// Defaults: in memory only (no RDB snapshots, no append-only file).
    pub fn new() -> Self {
        Self::default()
    }

    /// `appendonly yes` and `appendfsync always`: every acknowledged write is on disk
    /// before the reply, so a crash loses nothing that was acknowledged.
    pub fn durable(mut self) -> Self {
        self.durable = true;
        self
    }

    /// Any other `redis.conf` directive, e.g. `("maxmemory", "64mb")`.
    pub fn config(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra.push((name.into(), value.into()));
        self
    }

    fn cluster(mut self) -> Self {
        self.cluster_port = Some(());
        self
    }
}

/// A running watchdog and the server it guards.
struct Watched {
    watchdog: Child,
    stdin: Option<ChildStdin>,
}

impl Watched {
    /// Tells the watchdog to kill the server (keeping its directory when `keep`) and waits
    /// until both are gone.
    fn stop(mut self, keep: bool) {
        if let Some(mut stdin) = self.stdin.take() {
            if keep {
                let _ = stdin.write_all(b"keep\n");
            }
            drop(stdin);
        }
        let _ = self.watchdog.wait();
    }
}

/// One `redis-server` process on a free loopback port, in its own temporary directory.
pub struct RedisServer {
    port: u16,
    cluster_port: Option<u16>,
    dir: tempfile::TempDir,
    options: ServerOptions,
    process: Option<Watched>,
}

impl fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisServer")
            .field("port", &self.port)
            .field("cluster_port", &self.cluster_port)
            .field("dir", &self.dir.path())
            .field("running", &self.process.is_some())
            .finish()
    }
}

impl RedisServer {
    /// Starts a server with the default options and waits until it answers.
    pub fn start() -> Result<Self, HarnessError> {
        Self::start_with(ServerOptions::new())
    }

    /// Starts a server with `options` and waits until it answers. Fails with a message
    /// naming the package to install when `redis-server` is missing.
    pub fn start_with(options: ServerOptions) -> Result<Self, HarnessError> {
        require_redis_server()?;
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            let dir = tempfile::Builder::new()
                .prefix("grantkit-redis-")
                .tempdir()
                .map_err(|e| fail(format!("cannot create a directory for Redis: {e}")))?;
            let port = free_port()?;
            let cluster_port = match options.cluster_port {
                Some(()) => loop {
                    let candidate = free_port()?;
                    if candidate != port {
                        break Some(candidate);
                    }
                },
                None => None,
            };
            let mut server = Self {
                port,
                cluster_port,
                dir,
                options: options.clone(),
                process: None,
            };
            match server.launch() {
                Ok(()) => return Ok(server),
                // Another process took the port meanwhile: try new ports.
                Err(err) if err.0.contains("Address already in use") => last_error = Some(err),
                Err(err) => return Err(err),
            }
        }
        Err(last_error.unwrap_or_else(|| fail("Redis did not start")))
    }

    /// The server's URL, `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster-bus port, for cluster nodes.
    pub fn cluster_port(&self) -> Option<u16> {
        self.cluster_port
    }

    /// The server's working directory (append-only file, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether the server process is running (it has not been crashed or stopped).
    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// Kills the server with SIGKILL, as a crash would, keeping its directory. Nothing is
    /// flushed on the way out: with [`ServerOptions::durable`] every acknowledged write is
    /// on disk already.
    pub fn crash(&mut self) {
        if let Some(process) = self.process.take() {
            process.stop(true);
        }
    }

    /// Starts the server again on the same port, in the same directory, with the same
    /// configuration, and waits until it answers (it may first load its append-only file).
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        self.crash();
        self.launch()
    }

    fn args(&self) -> Vec<String> {
        let dir = self.dir.path().display().to_string();
        let mut args = vec![
            ("port", self.port.to_string()),
            ("bind", "127.0.0.1".to_owned()),
            ("dir", dir.clone()),
            ("logfile", format!("{dir}/redis.log")),
            ("daemonize", "no".to_owned()),
            ("save", String::new()),
            (
                "appendonly",
                if self.options.durable { "yes" } else { "no" }.to_owned(),
            ),
        ];
        if self.options.durable {
            args.push(("appendfsync", "always".to_owned()));
        }
        if let Some(cluster_port) = self.cluster_port {
            args.push(("cluster-enabled", "yes".to_owned()));
            args.push(("cluster-port", cluster_port.to_string()));
            args.push(("cluster-config-file", format!("{dir}/nodes.conf")));
            args.push(("cluster-node-timeout", "5000".to_owned()));
            // Keys of slots whose master is down are refused rather than served stale.
            args.push(("cluster-require-full-coverage", "yes".to_owned()));
        }
        let mut flat = Vec::new();
        for (name, value) in args {
            flat.push(format!("--{name}"));
            flat.push(value);
        }
        for (name, value) in &self.options.extra {
            flat.push(format!("--{name}"));
            flat.push(value.clone());
        }
        flat
    }

    fn launch(&mut self) -> Result<(), HarnessError> {
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("grantkit-redis-watchdog")
            .arg(self.dir.path())
            .args(self.args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| fail(format!("cannot run `sh` to start {SERVER_BINARY}: {e}")))?;
        let stdin = watchdog.stdin.take();
        let stdout = watchdog.stdout.take();
        let process = Watched { watchdog, stdin };
        // The first line is the server's pid: the watchdog has started it.
        let mut line = String::new();
        if let Some(stdout) = stdout {
            let _ = BufReader::new(stdout).read_line(&mut line);
        }
        if line.trim().parse::<u32>().is_err() {
            process.stop(false);
            return Err(fail("the Redis watchdog did not start the server"));
        }
        self.process = Some(process);
        if let Err(err) = wait_until(READY_TIMEOUT, || ping(self.port)) {
            let log = self.log_tail();
            if let Some(process) = self.process.take() {
                process.stop(true);
            }
            return Err(fail(format!(
                "{SERVER_BINARY} on port {} did not answer within {READY_TIMEOUT:?} ({err}); its log ends with:\n{log}",
                self.port
            )));
        }
        Ok(())
    }

    fn log_tail(&self) -> String {
        let mut text = String::new();
        for name in ["stdio.log", "redis.log"] {
            if let Ok(log) = std::fs::read_to_string(self.dir.path().join(name)) {
                let lines: Vec<&str> = log.lines().collect();
                let start = lines.len().saturating_sub(10);
                text.push_str(&lines[start..].join("\n"));
                text.push('\n');
            }
        }
        text
    }

    fn connection(&self) -> Result<redis::Connection, HarnessError> {
        connect(self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(process) = self.process.take() {
            process.stop(false);
        }
    }
}

fn connect(port: u16) -> Result<redis::Connection, HarnessError> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .map_err(|e| fail(format!("bad test URL: {e}")))?;
    let conn = client
        .get_connection_with_timeout(Duration::from_secs(1))
        .map_err(|e| fail(format!("cannot connect to 127.0.0.1:{port}: {e}")))?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .and_then(|()| conn.set_write_timeout(Some(Duration::from_secs(5))))
        .map_err(|e| fail(format!("cannot set timeouts: {e}")))?;
    Ok(conn)
}

fn ping(port: u16) -> Result<(), HarnessError> {
    let mut conn = connect(port)?;
    match redis::cmd("PING").query::<String>(&mut conn) {
        Ok(_) => Ok(()),
        // A server with a password answers, and so is up.
        Err(e) if e.code() == Some("NOAUTH") => Ok(()),
        Err(e) => Err(fail(format!("PING failed: {e}"))),
    }
}

/// Polls `check` every 50 ms until it succeeds or `limit` passes.
fn wait_until<F>(limit: Duration, mut check: F) -> Result<(), HarnessError>
where
    F: FnMut() -> Result<(), HarnessError>,
{
    let deadline = Instant::now() + limit;
    loop {
        match check() {
            Ok(()) => return Ok(()),
            Err(err) if Instant::now() >= deadline => return Err(err),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// A Redis Cluster of masters on loopback, each a [`RedisServer`] with an explicit
/// cluster-bus port. Dropping it stops every node.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts a cluster of three masters and waits until it serves every slot.
    pub fn start() -> Result<Self, HarnessError> {
        Self::start_with_masters(3)
    }

    /// Starts a cluster of `masters` masters (at least 1), assigns the slots evenly, joins
    /// the nodes, and waits until every node reports `cluster_state:ok` and knows them all.
    pub fn start_with_masters(masters: usize) -> Result<Self, HarnessError> {
        if masters == 0 || masters > 64 {
            return Err(fail("a test cluster has between 1 and 64 masters"));
        }
        let mut nodes = Vec::with_capacity(masters);
        for _ in 0..masters {
            nodes.push(RedisServer::start_with(ServerOptions::new().cluster())?);
        }
        let cluster = Self { nodes };
        cluster.assign_slots()?;
        cluster.join()?;
        cluster.wait_ready()?;
        Ok(cluster)
    }

    /// The nodes' URLs.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The nodes.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    fn assign_slots(&self) -> Result<(), HarnessError> {
        let count = u32::try_from(self.nodes.len()).unwrap_or(1);
        for (i, node) in (0u32..).zip(&self.nodes) {
            let first = CLUSTER_SLOTS * i / count;
            let last = CLUSTER_SLOTS * (i + 1) / count - 1;
            let mut conn = node.connection()?;
            redis::cmd("CLUSTER")
                .arg("ADDSLOTSRANGE")
                .arg(first)
                .arg(last)
                .query::<()>(&mut conn)
                .map_err(|e| fail(format!("CLUSTER ADDSLOTSRANGE failed: {e}")))?;
        }
        Ok(())
    }

    fn join(&self) -> Result<(), HarnessError> {
        let mut first = self.nodes[0].connection()?;
        for node in &self.nodes[1..] {
            let bus = node
                .cluster_port
                .ok_or_else(|| fail("a cluster node has no cluster-bus port"))?;
            redis::cmd("CLUSTER")
                .arg("MEET")
                .arg("127.0.0.1")
                .arg(node.port)
                .arg(bus)
                .query::<()>(&mut first)
                .map_err(|e| fail(format!("CLUSTER MEET failed: {e}")))?;
        }
        Ok(())
    }

    fn wait_ready(&self) -> Result<(), HarnessError> {
        let expected = self.nodes.len();
        wait_until(CLUSTER_READY_TIMEOUT, || {
            for node in &self.nodes {
                let mut conn = node.connection()?;
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query(&mut conn)
                    .map_err(|e| fail(format!("CLUSTER INFO failed: {e}")))?;
                let ok = info.lines().any(|l| l.trim() == "cluster_state:ok");
                let known = info
                    .lines()
                    .any(|l| l.trim() == format!("cluster_known_nodes:{expected}"));
                if !(ok && known) {
                    return Err(fail(format!(
                        "node {} is not ready yet: {}",
                        node.port,
                        info.lines()
                            .filter(|l| l.starts_with("cluster_state")
                                || l.starts_with("cluster_known_nodes"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                // Every node must also see every slot range with its owner.
                let slots: Vec<redis::Value> = redis::cmd("CLUSTER")
                    .arg("SLOTS")
                    .query(&mut conn)
                    .map_err(|e| fail(format!("CLUSTER SLOTS failed: {e}")))?;
                if slots.len() != expected {
                    return Err(fail(format!(
                        "node {} sees {} slot ranges of {expected}",
                        node.port,
                        slots.len()
                    )));
                }
            }
            Ok(())
        })
        .map_err(|e| fail(format!("the test cluster did not become ready: {e}")))
    }
}

/// Redis for a test binary: an external server or cluster named by the environment, or
/// one started by this process and shared by all its tests.
#[derive(Debug)]
pub struct TestRedis {
    topology: Topology,
    _server: Option<RedisServer>,
    _cluster: Option<RedisCluster>,
}

static SHARED_STANDALONE: OnceLock<Result<TestRedis, HarnessError>> = OnceLock::new();
static SHARED_CLUSTER: OnceLock<Result<TestRedis, HarnessError>> = OnceLock::new();

fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl TestRedis {
    /// A standalone server of its own: `GRANTKIT_TEST_REDIS_URL` when set, else a new
    /// `redis-server` stopped when this value is dropped.
    pub fn start_standalone() -> Result<Self, HarnessError> {
        if let Some(url) = env_value(ENV_TEST_URL) {
            return Ok(Self {
                topology: Topology::Standalone(url.trim().to_owned()),
                _server: None,
                _cluster: None,
            });
        }
        let server = RedisServer::start()?;
        Ok(Self {
            topology: Topology::Standalone(server.url()),
            _server: Some(server),
            _cluster: None,
        })
    }

    /// A cluster of its own: `GRANTKIT_TEST_REDIS_CLUSTER_URLS` when set, else a new
    /// 3-master cluster stopped when this value is dropped.
    pub fn start_cluster() -> Result<Self, HarnessError> {
        if let Some(urls) = env_value(ENV_TEST_CLUSTER_URLS) {
            let urls = urls
                .split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_owned)
                .collect();
            return Ok(Self {
                topology: Topology::Cluster(urls),
                _server: None,
                _cluster: None,
            });
        }
        let cluster = RedisCluster::start()?;
        Ok(Self {
            topology: Topology::Cluster(cluster.urls()),
            _server: None,
            _cluster: Some(cluster),
        })
    }

    /// The standalone server shared by every test of this process (started on first use).
    pub fn standalone() -> Result<&'static Self, HarnessError> {
        SHARED_STANDALONE
            .get_or_init(Self::start_standalone)
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The cluster shared by every test of this process (started on first use).
    pub fn cluster() -> Result<&'static Self, HarnessError> {
        SHARED_CLUSTER
            .get_or_init(Self::start_cluster)
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Where it is.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// A store builder for it with a fresh random key prefix.
    pub fn store_builder(&self) -> RedisTokenStoreBuilder {
        RedisTokenStoreBuilder::new()
            .topology(self.topology.clone())
            .key_prefix(random_prefix())
    }

    /// The environment under which [`RedisTokenStoreBuilder::from_env`] connects to it
    /// with `prefix`: for worker processes of multi-process tests.
    pub fn store_env(&self, prefix: &str) -> Vec<(&'static str, String)> {
        let location = match &self.topology {
            Topology::Standalone(url) => (crate::ENV_URL, url.clone()),
            Topology::Cluster(urls) => (crate::ENV_CLUSTER_URLS, urls.join(",")),
        };
        vec![location, (crate::ENV_PREFIX, prefix.to_owned())]
    }

    /// Two stores on it with one fresh random key prefix, each on its own connection: two
    /// handles on the same grants, as two processes would have.
    pub async fn store_pair(&self) -> grantkit_core::Result<(RedisTokenStore, RedisTokenStore)> {
        let prefix = random_prefix();
        let builder = || {
            RedisTokenStoreBuilder::new()
                .topology(self.topology.clone())
                .key_prefix(prefix.clone())
        };
        Ok((builder().build().await?, builder().build().await?))
    }

    /// A store on it with a fresh random key prefix.
    pub async fn store(&self) -> grantkit_core::Result<RedisTokenStore> {
        self.store_builder().build().await
    }

    /// A store with its own prefix on the shared standalone server; panics with the
    /// harness's message (naming what to install) when there is no Redis. For tests.
    pub async fn shared_standalone_store() -> RedisTokenStore {
        let redis = tokio::task::spawn_blocking(Self::standalone)
            .await
            .expect("starting Redis panicked")
            .unwrap_or_else(|e| panic!("no Redis for the test: {e}"));
        redis
            .store()
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the test Redis: {e}"))
    }

    /// Two handles (connections) with one prefix of their own on the shared standalone
    /// server; panics with the harness's message when there is no Redis. For tests.
    pub async fn shared_standalone_pair() -> (RedisTokenStore, RedisTokenStore) {
        let redis = tokio::task::spawn_blocking(Self::standalone)
            .await
            .expect("starting Redis panicked")
            .unwrap_or_else(|e| panic!("no Redis for the test: {e}"));
        redis
            .store_pair()
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the test Redis: {e}"))
    }

    /// Two handles (connections) with one prefix of their own on the shared cluster;
    /// panics with the harness's message when there is no Redis. For tests.
    pub async fn shared_cluster_pair() -> (RedisTokenStore, RedisTokenStore) {
        let redis = tokio::task::spawn_blocking(Self::cluster)
            .await
            .expect("starting the Redis Cluster panicked")
            .unwrap_or_else(|e| panic!("no Redis Cluster for the test: {e}"));
        redis
            .store_pair()
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the test Redis Cluster: {e}"))
    }

    /// A store with its own prefix on the shared cluster; panics with the harness's
    /// message when there is no Redis. For tests.
    pub async fn shared_cluster_store() -> RedisTokenStore {
        let redis = tokio::task::spawn_blocking(Self::cluster)
            .await
            .expect("starting the Redis Cluster panicked")
            .unwrap_or_else(|e| panic!("no Redis Cluster for the test: {e}"));
        redis
            .store()
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the test Redis Cluster: {e}"))
    }
}
