//! Configuration: where Redis is, the key prefix, timeouts and expiry, as a builder.

use crate::keys::{DEFAULT_PREFIX, KeyLayout};
use crate::store::RedisTokenStore;
use grantkit_core::{
    Error, Result,
    clock::{Clock, SystemClock},
};
use redis::IntoConnectionInfo as _;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Environment variable: the URL of a standalone server (`redis://…` or `rediss://…`).
pub const ENV_URL: &str = "GRANTKIT_REDIS_URL";
/// Environment variable: comma-separated URLs of Redis Cluster nodes (any subset of them).
pub const ENV_CLUSTER_URLS: &str = "GRANTKIT_REDIS_CLUSTER_URLS";
/// Environment variable: the key prefix.
pub const ENV_PREFIX: &str = "GRANTKIT_REDIS_PREFIX";
/// Environment variable: the connection timeout in milliseconds.
pub const ENV_CONNECT_TIMEOUT_MS: &str = "GRANTKIT_REDIS_CONNECT_TIMEOUT_MS";
/// Environment variable: the response timeout in milliseconds.
pub const ENV_RESPONSE_TIMEOUT_MS: &str = "GRANTKIT_REDIS_RESPONSE_TIMEOUT_MS";
/// Environment variable: the operation timeout in milliseconds.
pub const ENV_OPERATION_TIMEOUT_MS: &str = "GRANTKIT_REDIS_OPERATION_TIMEOUT_MS";

/// Where the store's Redis is.
///
/// `Debug` hides passwords in the URLs.
#[derive(Clone, PartialEq, Eq)]
pub enum Topology {
    /// One server (with or without replicas behind it): `redis://[user[:password]@]host[:port][/db]`
    /// or `rediss://…` for TLS. The connection reconnects by itself.
    Standalone(String),
    /// A Redis Cluster, reached through any of these nodes; the client discovers the others.
    Cluster(Vec<String>),
}

impl Topology {
    /// Reads a topology from text: one URL is a standalone server; a comma-separated list of
    /// URLs is a cluster's nodes. (For a cluster reached through a single node use
    /// [`Topology::Cluster`] or [`RedisTokenStoreBuilder::cluster_nodes`].)
    pub fn parse(text: &str) -> Result<Self> {
        let urls: Vec<String> = text
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect();
        let topology = match urls.len() {
            0 => return Err(Error::configuration("no Redis URL given")),
            1 => Self::Standalone(urls.into_iter().next().unwrap_or_default()),
            _ => Self::Cluster(urls),
        };
        topology.validate()?;
        Ok(topology)
    }

    /// The URLs.
    pub fn urls(&self) -> &[String] {
        match self {
            Self::Standalone(url) => std::slice::from_ref(url),
            Self::Cluster(urls) => urls,
        }
    }

    /// Whether it is a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    fn validate(&self) -> Result<()> {
        if self.urls().is_empty() {
            return Err(Error::configuration(
                "a Redis Cluster needs at least one node URL",
            ));
        }
        for (i, url) in self.urls().iter().enumerate() {
            // The redis crate's parse error may quote the URL, which may hold a password:
            // describe the problem here instead.
            let parsed = url::Url::parse(url).map_err(|_| {
                Error::configuration(format!("Redis URL #{} is not a valid URL", i + 1))
            })?;
            match parsed.scheme() {
                "redis" | "valkey" => {}
                "rediss" | "valkeys" if cfg!(feature = "tls") => {}
                "rediss" | "valkeys" => {
                    return Err(Error::configuration(
                        "rediss:// needs grantkit-store-redis's `tls` feature",
                    ));
                }
                other => {
                    return Err(Error::configuration(format!(
                        "Redis URL #{} has the scheme `{other}`; expected redis:// or rediss://",
                        i + 1
                    )));
                }
            }
            if self.is_cluster() && !parsed.path().trim_matches('/').is_empty() {
                return Err(Error::configuration(
                    "Redis Cluster has only database 0: remove the database from the node URLs",
                ));
            }
            url.as_str().into_connection_info().map_err(|_| {
                Error::configuration(format!(
                    "Redis URL #{} is not a valid Redis URL (host, port or database)",
                    i + 1
                ))
            })?;
        }
        Ok(())
    }
}

/// A URL with its password replaced, for `Debug`.
pub(crate) fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("[redacted]"));
            }
            // A password can also ride in the query (`?pass=`): drop the query from Debug.
            if parsed.query().is_some() {
                parsed.set_query(Some("[redacted]"));
            }
            parsed.to_string()
        }
        Err(_) => "[not a URL]".to_owned(),
    }
}

impl fmt::Debug for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Standalone(url) => f.debug_tuple("Standalone").field(&redact_url(url)).finish(),
            Self::Cluster(urls) => f
                .debug_tuple("Cluster")
                .field(&urls.iter().map(|u| redact_url(u)).collect::<Vec<_>>())
                .finish(),
        }
    }
}

/// The checked settings a store runs with.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) topology: Topology,
    pub(crate) keys: KeyLayout,
    pub(crate) connect_timeout: Duration,
    pub(crate) response_timeout: Duration,
    pub(crate) operation_timeout: Duration,
    pub(crate) reconnect_attempts: usize,
    pub(crate) token_ttl_floor: Duration,
    pub(crate) tombstone_ttl: Duration,
    pub(crate) clock: Arc<dyn Clock>,
    #[cfg(feature = "tls")]
    pub(crate) tls_root_certificates: Option<Vec<u8>>,
}

/// Builds a [`RedisTokenStore`].
///
/// Defaults: prefix `grantkit:`, connection timeout 2 s, response timeout 2 s, operation
/// timeout 5 s (the longest any store call takes, waiting for a reconnect included), token
/// expiry floor 10 minutes, tombstones kept 7 days, the system clock.
#[derive(Clone)]
pub struct RedisTokenStoreBuilder {
    topology: Option<Topology>,
    prefix: String,
    connect_timeout: Duration,
    response_timeout: Duration,
    operation_timeout: Duration,
    reconnect_attempts: usize,
    token_ttl_floor: Duration,
    tombstone_ttl: Duration,
    clock: Arc<dyn Clock>,
    #[cfg(feature = "tls")]
    tls_root_certificates: Option<Vec<u8>>,
}

impl Default for RedisTokenStoreBuilder {
    fn default() -> Self {
        Self {
            topology: None,
            prefix: DEFAULT_PREFIX.to_owned(),
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(2),
            operation_timeout: Duration::from_secs(5),
            reconnect_attempts: 4,
            token_ttl_floor: Duration::from_secs(600),
            tombstone_ttl: Duration::from_secs(7 * 24 * 3600),
            clock: Arc::new(SystemClock),
            #[cfg(feature = "tls")]
            tls_root_certificates: None,
        }
    }
}

impl fmt::Debug for RedisTokenStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("RedisTokenStoreBuilder");
        s.field("topology", &self.topology)
            .field("prefix", &self.prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .field("reconnect_attempts", &self.reconnect_attempts)
            .field("token_ttl_floor", &self.token_ttl_floor)
            .field("tombstone_ttl", &self.tombstone_ttl)
            .field("clock", &self.clock);
        #[cfg(feature = "tls")]
        s.field(
            "tls_root_certificates",
            &self.tls_root_certificates.as_ref().map(|_| "set"),
        );
        s.finish()
    }
}

fn env_millis(name: &str) -> Result<Option<Duration>> {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|ms| *ms > 0)
            .map(|ms| Some(Duration::from_millis(ms)))
            .ok_or_else(|| {
                Error::configuration(format!("{name} must be a positive number of milliseconds"))
            }),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(Error::configuration(format!("{name} is not valid UTF-8")))
        }
    }
}

fn env_text(name: &str) -> Result<Option<String>> {
    match std::env::var(name) {
        Ok(text) if text.trim().is_empty() => Ok(None),
        Ok(text) => Ok(Some(text)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(Error::configuration(format!("{name} is not valid UTF-8")))
        }
    }
}

impl RedisTokenStoreBuilder {
    /// A builder with the defaults and no server yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder configured from the environment:
    /// `GRANTKIT_REDIS_URL` (a standalone server) or `GRANTKIT_REDIS_CLUSTER_URLS`
    /// (comma-separated cluster nodes), and optionally `GRANTKIT_REDIS_PREFIX`,
    /// `GRANTKIT_REDIS_CONNECT_TIMEOUT_MS`, `GRANTKIT_REDIS_RESPONSE_TIMEOUT_MS`,
    /// `GRANTKIT_REDIS_OPERATION_TIMEOUT_MS`. Anything set later on the builder wins.
    pub fn from_env() -> Result<Self> {
        let mut builder = Self::new();
        match (env_text(ENV_URL)?, env_text(ENV_CLUSTER_URLS)?) {
            (Some(_), Some(_)) => {
                return Err(Error::configuration(format!(
                    "set either {ENV_URL} or {ENV_CLUSTER_URLS}, not both"
                )));
            }
            (Some(url), None) => builder = builder.url(url.trim()),
            (None, Some(urls)) => {
                builder = builder.cluster_nodes(
                    urls.split(',')
                        .map(str::trim)
                        .filter(|u| !u.is_empty())
                        .map(str::to_owned)
                        .collect::<Vec<_>>(),
                );
            }
            (None, None) => {
                return Err(Error::configuration(format!(
                    "neither {ENV_URL} nor {ENV_CLUSTER_URLS} is set"
                )));
            }
        }
        if let Some(prefix) = env_text(ENV_PREFIX)? {
            builder = builder.key_prefix(prefix);
        }
        if let Some(timeout) = env_millis(ENV_CONNECT_TIMEOUT_MS)? {
            builder = builder.connect_timeout(timeout);
        }
        if let Some(timeout) = env_millis(ENV_RESPONSE_TIMEOUT_MS)? {
            builder = builder.response_timeout(timeout);
        }
        if let Some(timeout) = env_millis(ENV_OPERATION_TIMEOUT_MS)? {
            builder = builder.operation_timeout(timeout);
        }
        Ok(builder)
    }

    /// A standalone server: `redis://…` or `rediss://…`.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.topology = Some(Topology::Standalone(url.into()));
        self
    }

    /// A Redis Cluster reached through these nodes.
    pub fn cluster_nodes<I, S>(mut self, urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.topology = Some(Topology::Cluster(
            urls.into_iter().map(Into::into).collect(),
        ));
        self
    }

    /// The topology.
    pub fn topology(mut self, topology: Topology) -> Self {
        self.topology = Some(topology);
        self
    }

    /// The prefix of every key (default `grantkit:`), so several applications or tenants can
    /// share a server. It must not contain `{` or `}`.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long one connection attempt may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long the server may take to answer one command.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// The longest one store call may take, including waiting for a reconnect; after it
    /// the call fails with a retryable [`Error::Store`].
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// How many times a lost connection to a standalone server is retried (with backoff)
    /// before the calls waiting for it fail; the next call starts a new round. A cluster
    /// client retries within the operation timeout instead.
    pub fn reconnect_attempts(mut self, attempts: usize) -> Self {
        self.reconnect_attempts = attempts;
        self
    }

    /// The least expiry given to a grant whose refresh token's expiry is known (default
    /// 10 minutes), so a grant about to expire is still there for the manager to see and
    /// report re-authorization rather than vanishing mid-refresh. Grants without a known
    /// refresh expiry never expire in Redis.
    pub fn token_ttl_floor(mut self, floor: Duration) -> Self {
        self.token_ttl_floor = floor;
        self
    }

    /// How long the last version of a deleted grant is kept (default 7 days), so a grant
    /// re-created under the same key never reuses a version a stale writer may still hold.
    pub fn tombstone_ttl(mut self, ttl: Duration) -> Self {
        self.tombstone_ttl = ttl;
        self
    }

    /// The clock the expiry of grants is computed from (for tests with a manual clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Trust these PEM root certificates for `rediss://` instead of the platform's.
    #[cfg(feature = "tls")]
    pub fn tls_root_certificates(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root_certificates = Some(pem.into());
        self
    }

    pub(crate) fn settings(self) -> Result<Settings> {
        let topology = self.topology.ok_or_else(|| {
            Error::configuration(
                "no Redis server configured: call url(), cluster_nodes() or from_env()",
            )
        })?;
        topology.validate()?;
        for (name, value) in [
            ("connect_timeout", self.connect_timeout),
            ("response_timeout", self.response_timeout),
            ("operation_timeout", self.operation_timeout),
            ("tombstone_ttl", self.tombstone_ttl),
        ] {
            if value.is_zero() {
                return Err(Error::configuration(format!("{name} must not be zero")));
            }
        }
        Ok(Settings {
            topology,
            keys: KeyLayout::new(self.prefix)?,
            connect_timeout: self.connect_timeout,
            response_timeout: self.response_timeout,
            operation_timeout: self.operation_timeout,
            reconnect_attempts: self.reconnect_attempts,
            token_ttl_floor: self.token_ttl_floor,
            tombstone_ttl: self.tombstone_ttl,
            clock: self.clock,
            #[cfg(feature = "tls")]
            tls_root_certificates: self.tls_root_certificates,
        })
    }

    /// Checks the configuration and connects. Fails with [`Error::Configuration`] for a
    /// bad configuration, and with a retryable [`Error::Store`] when Redis cannot be
    /// reached within the operation timeout.
    pub async fn build(self) -> Result<RedisTokenStore> {
        RedisTokenStore::connect_with(self.settings()?).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_tells_standalone_from_cluster() {
        assert_eq!(
            Topology::parse("redis://127.0.0.1:6379/2").unwrap(),
            Topology::Standalone("redis://127.0.0.1:6379/2".into())
        );
        assert_eq!(
            Topology::parse(" redis://a:7000 , redis://b:7001 ").unwrap(),
            Topology::Cluster(vec!["redis://a:7000".into(), "redis://b:7001".into()])
        );
        for bad in [
            "",
            "http://x",
            "not a url",
            "redis://a:7000,redis://b:7001/3",
        ] {
            assert!(
                matches!(Topology::parse(bad), Err(Error::Configuration { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn debug_and_errors_hide_passwords() {
        let topology = Topology::parse("redis://user:hunter2-secret@127.0.0.1:6379").unwrap();
        let text = format!("{topology:?}");
        assert!(
            !text.contains("hunter2-secret") && text.contains("user"),
            "{text}"
        );
        let builder = RedisTokenStoreBuilder::new()
            .url("redis://:hunter2-secret@127.0.0.1/?pass=hunter2-secret");
        assert!(!format!("{builder:?}").contains("hunter2-secret"));
        let err = Topology::parse("redis://:hunter2-secret@[::1/").unwrap_err();
        assert!(!err.to_string().contains("hunter2-secret"), "{err}");
        let err = Topology::parse("ftp://:hunter2-secret@h/").unwrap_err();
        assert!(!err.to_string().contains("hunter2-secret"), "{err}");
    }

    #[test]
    fn settings_need_a_server_and_sane_values() {
        assert!(matches!(
            RedisTokenStoreBuilder::new().settings(),
            Err(Error::Configuration { .. })
        ));
        let base = || RedisTokenStoreBuilder::new().url("redis://127.0.0.1");
        assert!(base().settings().is_ok());
        assert!(base().operation_timeout(Duration::ZERO).settings().is_err());
        assert!(base().key_prefix("a{b").settings().is_err());
        assert!(
            RedisTokenStoreBuilder::new()
                .cluster_nodes(Vec::<String>::new())
                .settings()
                .is_err()
        );
    }
}
