//! Real databases for tests, benchmarks and the conformance runner (feature `testing`).
//!
//! - [`PostgresServer`]: a PostgreSQL server of its own, made by `initdb` in a temporary
//!   directory and run on a free loopback port. `initdb` and `postgres` refuse to run as
//!   root, so under root they run as the `postgres` system user. [`stop`](PostgresServer::stop)
//!   shuts it down (fast or immediate) keeping its data, [`start`](PostgresServer::start)
//!   brings it back on the same port (for outage tests). Dropping the handle stops it and
//!   removes the directory.
//! - [`TestPostgres`]: what a test binary shares: `GRANTKIT_TEST_POSTGRES_URL` when set,
//!   else one server started once per process. Each store it hands out has its own random
//!   table prefix, so tests never see each other's grants.
//! - [`sqlite_store_pair`]: two stores (two pools, as two processes would have) on one
//!   SQLite file in a temporary directory.
//!
//! The server runs under a small `sh` watchdog reading its standard input: when the handle
//! is dropped, or the owning process dies without dropping it (a `static`), the pipe closes
//! and the watchdog shuts the server down and removes its data. No server outlives its
//! owner.
//!
//! The functions that start servers block; from async code call them in
//! `tokio::task::spawn_blocking`, or use the async helpers of [`TestPostgres`].

use crate::{SqlTokenStore, SqlTokenStoreBuilder};
use rand::RngCore as _;
use std::fmt;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Names a running server for the tests instead of starting one: a `postgres://` URL of a
/// database the tests may create tables, schemas and (for the command line's tests)
/// databases in. Tables there get random prefixes and are left behind.
pub const ENV_TEST_URL: &str = "GRANTKIT_TEST_POSTGRES_URL";
/// Names the directory holding `initdb` and `postgres`, when they are not found by
/// themselves (on `PATH`, or Debian's `/usr/lib/postgresql/<version>/bin`).
pub const ENV_BIN_DIR: &str = "GRANTKIT_POSTGRES_BIN_DIR";

const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the server in the background, prints its pid, and on a line from its owner (or
/// the pipe closing) sends the signal named on it — `INT` for a fast shutdown, `QUIT` for
/// an immediate one — waits for the server to end, and removes its directory unless told
/// `keep`.
const WATCHDOG: &str = r#"
dir=$1; shift
"$@" >>"$dir/postgres.log" 2>&1 &
pid=$!
trap '' INT
echo "$pid"
read -r signal keep
kill -"${signal:-QUIT}" "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
[ "$keep" = keep ] || rm -rf -- "$dir"
"#;

/// Why the harness could not provide a database.
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

/// The directory holding PostgreSQL's server programs, if this machine has them.
pub fn postgres_bin_dir() -> Option<PathBuf> {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Some(dir) = std::env::var_os(ENV_BIN_DIR).map(PathBuf::from) {
        return has_server(&dir).then_some(dir);
    }
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    if let Some(dir) = on_path.into_iter().find(|dir| has_server(dir)) {
        return Some(dir);
    }
    // Debian installs the server programs off PATH, one directory per major version.
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_server(dir))
        .collect();
    versions.sort();
    versions.pop().map(|(_, dir)| dir)
}

/// Whether the tests can use PostgreSQL here: a URL names one, or the server programs are
/// installed.
pub fn postgres_available() -> bool {
    env_url().is_some() || postgres_bin_dir().is_some()
}

fn env_url() -> Option<String> {
    std::env::var(ENV_TEST_URL).ok().filter(|u| !u.is_empty())
}

fn free_port() -> Result<u16, HarnessError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| fail(format!("cannot find a free port: {e}")))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| fail(format!("cannot find a free port: {e}")))
}

/// A random table prefix: `t` and 16 hex digits and `_`.
pub fn random_prefix() -> String {
    let mut bytes = [0u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("t{hex}_")
}

/// The user and group the server runs as: `postgres` when this process is root (the
/// server refuses root), else this process's own.
#[derive(Clone, Copy, Debug)]
struct RunAs {
    uid: u32,
    gid: u32,
}

fn run_as() -> Result<Option<RunAs>, HarnessError> {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            line.split_whitespace().nth(2).map(|euid| euid == "0")
        })
        .unwrap_or(false);
    if !root {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd")
        .map_err(|e| fail(format!("cannot read /etc/passwd: {e}")))?;
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&"postgres") && fields.len() > 3).then(|| {
                Some(RunAs {
                    uid: fields[2].parse().ok()?,
                    gid: fields[3].parse().ok()?,
                })
            })?
        })
        .map(Some)
        .ok_or_else(|| {
            fail("running as root, and there is no `postgres` user to run the server as (install Debian's postgresql package)")
        })
}

fn command(program: &Path, user: Option<RunAs>) -> Command {
    let mut command = Command::new(program);
    if let Some(user) = user {
        command.uid(user.uid).gid(user.gid);
    }
    command
}

/// A PostgreSQL server on a free loopback port, in its own temporary directory.
pub struct PostgresServer {
    port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
    user: Option<RunAs>,
    process: Option<Watched>,
}

impl fmt::Debug for PostgresServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresServer")
            .field("port", &self.port)
            .field("dir", &self.dir.path())
            .field("running", &self.process.is_some())
            .finish()
    }
}

/// How a server is shut down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// Fast: open transactions are rolled back, clients disconnected, data flushed.
    Fast,
    /// Immediate: the server stops at once, as a crash would; the next start recovers from
    /// the write-ahead log.
    Immediate,
}

struct Watched {
    watchdog: Child,
    stdin: Option<ChildStdin>,
}

impl Watched {
    fn stop(mut self, shutdown: Shutdown, keep: bool) {
        if let Some(mut stdin) = self.stdin.take() {
            let signal = match shutdown {
                Shutdown::Fast => "INT",
                Shutdown::Immediate => "QUIT",
            };
            let keep = if keep { "keep" } else { "" };
            let _ = writeln!(stdin, "{signal} {keep}");
        }
        let _ = self.watchdog.wait();
    }
}

impl PostgresServer {
    /// Creates a database cluster with `initdb` and starts the server on it.
    pub fn start_new() -> Result<Self, HarnessError> {
        let bin = postgres_bin_dir().ok_or_else(|| {
            fail(format!(
                "PostgreSQL's server programs (initdb, postgres) are not installed: \
                 `apt-get install postgresql`, or set {ENV_BIN_DIR} or {ENV_TEST_URL}"
            ))
        })?;
        let user = run_as()?;
        let dir = tempfile::Builder::new()
            .prefix("grantkit-postgres-")
            .tempdir()
            .map_err(|e| fail(format!("cannot create a directory for PostgreSQL: {e}")))?;
        if let Some(user) = user {
            std::os::unix::fs::chown(dir.path(), Some(user.uid), Some(user.gid))
                .map_err(|e| fail(format!("cannot hand the directory to `postgres`: {e}")))?;
        }
        let data = dir.path().join("data");
        let output = command(&bin.join("initdb"), user)
            .arg("--pgdata")
            .arg(&data)
            .args([
                "--username",
                "postgres",
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
            ])
            .args(["--locale", "C", "--no-sync"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| fail(format!("cannot run initdb: {e}")))?;
        if !output.status.success() {
            return Err(fail(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        let mut server = Self {
            port: free_port()?,
            dir,
            bin,
            user,
            process: None,
        };
        server.start()?;
        Ok(server)
    }

    /// Starts the server (again) on its port and data.
    pub fn start(&mut self) -> Result<(), HarnessError> {
        if self.process.is_some() {
            return Ok(());
        }
        let dir = self.dir.path();
        let mut watchdog = command(Path::new("sh"), self.user);
        watchdog
            .arg("-c")
            .arg(WATCHDOG)
            .arg("grantkit-postgres-watchdog")
            .arg(dir)
            .arg(self.bin.join("postgres"))
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-p", &self.port.to_string()])
            .arg("-k")
            .arg(dir)
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "max_connections=300"])
            .args(["-c", "fsync=on"])
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            // Its own process group: a Ctrl-C at the terminal stops the tests, whose exit
            // closes the pipe, and the watchdog then cleans up rather than dying with them.
            .process_group(0);
        let mut watchdog = watchdog
            .spawn()
            .map_err(|e| fail(format!("cannot run `sh` to start PostgreSQL: {e}")))?;
        let stdin = watchdog.stdin.take();
        let stdout = watchdog.stdout.take();
        let process = Watched { watchdog, stdin };
        let mut line = String::new();
        if let Some(stdout) = stdout {
            let _ = BufReader::new(stdout).read_line(&mut line);
        }
        let Ok(pid) = line.trim().parse::<u32>() else {
            process.stop(Shutdown::Immediate, true);
            return Err(fail("the PostgreSQL watchdog did not start the server"));
        };
        self.process = Some(process);
        let started = Instant::now();
        while !self.accepts_connections() {
            if started.elapsed() > READY_TIMEOUT || !is_running(pid) {
                let log = self.log_tail();
                if let Some(process) = self.process.take() {
                    process.stop(Shutdown::Immediate, true);
                }
                return Err(fail(format!(
                    "PostgreSQL on port {} ended or did not accept connections within {READY_TIMEOUT:?}; its log ends with:\n{log}",
                    self.port
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Shuts the server down, keeping its data for [`start`](Self::start).
    pub fn stop(&mut self, shutdown: Shutdown) {
        if let Some(process) = self.process.take() {
            process.stop(shutdown, true);
        }
    }

    /// Whether the server is up and past its start-up (or crash recovery).
    fn accepts_connections(&self) -> bool {
        // `pg_isready` would do, but is not always beside the server programs: a startup
        // packet's answer tells the same. A server still starting refuses the TCP
        // connection or answers with an error; a ready one asks for nothing (trust) and
        // says `R` (authentication ok).
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let mut body = Vec::new();
        body.extend_from_slice(&196_608u32.to_be_bytes()); // protocol 3.0
        for (name, value) in [("user", "postgres"), ("database", "postgres")] {
            body.extend_from_slice(name.as_bytes());
            body.push(0);
            body.extend_from_slice(value.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut packet = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        packet.extend_from_slice(&body);
        if stream.write_all(&packet).is_err() {
            return false;
        }
        let mut first = [0u8; 1];
        matches!(std::io::Read::read_exact(&mut stream, &mut first), Ok(())) && first[0] == b'R'
    }

    /// The URL of the `postgres` database as the `postgres` user.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

/// Whether process `pid` is alive (not gone, not a zombie).
fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The state follows the command name, which is in parentheses.
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X'))
    })
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        if let Some(process) = self.process.take() {
            process.stop(Shutdown::Immediate, false);
        }
    }
}

/// The PostgreSQL a test binary shares.
#[derive(Debug)]
pub struct TestPostgres {
    url: String,
    _server: Option<PostgresServer>,
}

static SHARED: OnceLock<Result<Arc<TestPostgres>, HarnessError>> = OnceLock::new();

impl TestPostgres {
    /// `GRANTKIT_TEST_POSTGRES_URL` when set, else a new server of its own.
    pub fn start() -> Result<Self, HarnessError> {
        if let Some(url) = env_url() {
            return Ok(Self { url, _server: None });
        }
        let server = PostgresServer::start_new()?;
        Ok(Self {
            url: server.url(),
            _server: Some(server),
        })
    }

    /// The one this process shares, started on first use.
    pub fn shared() -> Result<Arc<Self>, HarnessError> {
        SHARED.get_or_init(|| Self::start().map(Arc::new)).clone()
    }

    /// The database URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A builder on this database with a fresh random table prefix.
    pub fn store_builder(&self) -> SqlTokenStoreBuilder {
        SqlTokenStore::builder()
            .url(self.url.clone())
            .table_prefix(random_prefix())
    }

    /// Two stores (two pools) on one fresh set of tables, as two processes would have.
    pub async fn store_pair(&self) -> grantkit_core::Result<(SqlTokenStore, SqlTokenStore)> {
        let builder = self.store_builder();
        let first = builder.clone().open().await?;
        let second = builder.open().await?;
        Ok((first, second))
    }

    /// A pair on the shared server; panics (it is for tests) when there is none.
    pub async fn shared_pair() -> (SqlTokenStore, SqlTokenStore) {
        let shared = tokio::task::spawn_blocking(Self::shared)
            .await
            .expect("the PostgreSQL harness panicked")
            .unwrap_or_else(|e| panic!("PostgreSQL for the tests: {e}"));
        shared
            .store_pair()
            .await
            .unwrap_or_else(|e| panic!("opening a store on the test PostgreSQL: {e}"))
    }
}

/// The connection pool of a PostgreSQL store: for benchmarks that compare the store with
/// raw statements on the same connections. `None` for SQLite.
pub fn postgres_pool(store: &SqlTokenStore) -> Option<sqlx::PgPool> {
    store.postgres_pool().cloned()
}

/// Two stores (two pools) on one new SQLite file in `dir`.
pub async fn sqlite_store_pair(
    dir: &Path,
) -> grantkit_core::Result<(SqlTokenStore, SqlTokenStore)> {
    let url = format!("sqlite:{}", dir.join("tokens.db").display());
    let first = SqlTokenStore::connect(&url).await?;
    let second = SqlTokenStore::connect(&url).await?;
    Ok((first, second))
}
