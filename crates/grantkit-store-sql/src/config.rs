//! Configuration: which database, the table names, the pool and its timeouts, as a builder.

use crate::schema::Tables;
use crate::store::SqlTokenStore;
use grantkit_core::{Error, Result};
use std::fmt;
use std::time::Duration;

/// Environment variable: the database URL (`postgres://…` or `sqlite:…`).
pub const ENV_URL: &str = "GRANTKIT_SQL_URL";
/// Environment variable: the table-name prefix.
pub const ENV_TABLE_PREFIX: &str = "GRANTKIT_SQL_TABLE_PREFIX";

/// The default table-name prefix: tables are `grantkit_tokens`, `grantkit_leases`, …
pub const DEFAULT_TABLE_PREFIX: &str = "grantkit_";

/// Builds a [`SqlTokenStore`].
///
/// Defaults: table prefix `grantkit_`, no schema (PostgreSQL's search path), a pool of at
/// most 8 connections, 5 s for any one store call (waiting for a connection included),
/// 2 s to connect.
#[derive(Clone)]
pub struct SqlTokenStoreBuilder {
    url: Option<String>,
    prefix: String,
    schema: Option<String>,
    max_connections: u32,
    operation_timeout: Duration,
    connect_timeout: Duration,
}

impl Default for SqlTokenStoreBuilder {
    fn default() -> Self {
        Self {
            url: None,
            prefix: DEFAULT_TABLE_PREFIX.to_owned(),
            schema: None,
            max_connections: 8,
            operation_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
        }
    }
}

impl fmt::Debug for SqlTokenStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlTokenStoreBuilder")
            .field("url", &self.url.as_deref().map(redact_url))
            .field("prefix", &self.prefix)
            .field("schema", &self.schema)
            .field("max_connections", &self.max_connections)
            .field("operation_timeout", &self.operation_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl SqlTokenStoreBuilder {
    /// A builder with the defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The database: `postgres://user:password@host:port/database` (also `postgresql://`),
    /// or `sqlite:path/to/file.db` (created when missing).
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// Reads [`ENV_URL`] and, when set, [`ENV_TABLE_PREFIX`].
    pub fn from_env(mut self) -> Result<Self> {
        let url = std::env::var(ENV_URL)
            .ok()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| Error::configuration(format!("{ENV_URL} is not set")))?;
        self.url = Some(url);
        if let Some(prefix) = std::env::var(ENV_TABLE_PREFIX)
            .ok()
            .filter(|p| !p.is_empty())
        {
            self.prefix = prefix;
        }
        Ok(self)
    }

    /// The prefix of every table name, so several applications can share a database:
    /// lowercase ASCII letters, digits and `_`, starting with a letter, at most 32 bytes.
    pub fn table_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// PostgreSQL only: the schema the tables live in (it must exist). Same spelling rules
    /// as the prefix.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// The most connections the pool opens (at least 1).
    pub fn max_connections(mut self, max: u32) -> Self {
        self.max_connections = max;
        self
    }

    /// The longest any one store call takes, waiting for a pool connection included; past
    /// it the call fails with a retryable error.
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// The longest opening the first connection takes (when the store opens); connections
    /// the pool opens later count against the operation timeout of the call that waits.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Connects, creates or upgrades the tables, and returns the store.
    ///
    /// # Errors
    /// [`Error::Configuration`] for a bad URL, prefix or schema; a retryable
    /// [`Error::Store`] when the database cannot be reached.
    pub async fn open(self) -> Result<SqlTokenStore> {
        let settings = self.settings()?;
        SqlTokenStore::open_with(settings).await
    }

    fn settings(self) -> Result<Settings> {
        let url = self
            .url
            .ok_or_else(|| Error::configuration("no database URL given"))?;
        let kind = DatabaseKind::of(&url)?;
        if kind == DatabaseKind::Sqlite && (url.contains(":memory:") || url.contains("mode=memory"))
        {
            return Err(Error::configuration(
                "an in-memory SQLite database vanishes with its connections; use a file, or \
                 the memory store",
            ));
        }
        check_identifier("table prefix", &self.prefix)?;
        if let Some(schema) = &self.schema {
            check_identifier("schema", schema)?;
            if kind == DatabaseKind::Sqlite {
                return Err(Error::configuration(
                    "a schema applies to PostgreSQL only; use a table prefix with SQLite",
                ));
            }
        }
        if self.max_connections == 0 {
            return Err(Error::configuration(
                "the pool needs at least one connection",
            ));
        }
        if self.operation_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(Error::configuration("timeouts must be longer than zero"));
        }
        Ok(Settings {
            tables: Tables::new(self.schema.as_deref(), &self.prefix),
            url,
            kind,
            max_connections: self.max_connections,
            operation_timeout: self.operation_timeout,
            connect_timeout: self.connect_timeout,
        })
    }
}

/// Which database a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DatabaseKind {
    Postgres,
    Sqlite,
}

impl DatabaseKind {
    fn of(url: &str) -> Result<Self> {
        let scheme = url.split_once(':').map(|(scheme, _)| scheme);
        match scheme {
            Some("postgres" | "postgresql") if cfg!(feature = "postgres") => Ok(Self::Postgres),
            Some("sqlite") if cfg!(feature = "sqlite") => Ok(Self::Sqlite),
            Some("postgres" | "postgresql") => Err(Error::configuration(
                "postgres:// URLs need grantkit-store-sql's `postgres` feature",
            )),
            Some("sqlite") => Err(Error::configuration(
                "sqlite: URLs need grantkit-store-sql's `sqlite` feature",
            )),
            _ => Err(Error::configuration(
                "the database URL must start with postgres://, postgresql:// or sqlite:",
            )),
        }
    }
}

/// The checked settings a store opens with.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) url: String,
    pub(crate) kind: DatabaseKind,
    pub(crate) tables: Tables,
    pub(crate) max_connections: u32,
    pub(crate) operation_timeout: Duration,
    pub(crate) connect_timeout: Duration,
}

fn check_identifier(what: &str, name: &str) -> Result<()> {
    let mut bytes = name.bytes();
    let valid = name.len() <= 32
        && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(Error::configuration(format!(
            "the {what} must be lowercase ASCII letters, digits and `_`, start with a letter \
             and be at most 32 bytes"
        )))
    }
}

/// A URL with its password and its query (which may carry one, `?password=`) replaced,
/// for `Debug` and errors.
pub(crate) fn redact_url(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("redacted"));
            }
            if url.query().is_some() {
                url.set_query(Some("redacted"));
            }
            url.to_string()
        }
        Err(_) => "[not a URL]".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_passwords_in_debug() {
        let builder =
            SqlTokenStoreBuilder::new().url("postgres://app:s3cret@db:5432/tokens?password=x");
        let shown = format!("{builder:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("password=x"),
            "{shown}"
        );
        assert!(
            shown.contains("postgres://app:redacted@db:5432/tokens?redacted"),
            "{shown}"
        );
        assert_eq!(redact_url("sqlite:/tmp/t.db"), "sqlite:/tmp/t.db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        // A `?` in a password that was not percent-encoded: not a URL, nothing shown.
        assert!(!redact_url("postgres://u:pa?ss@h/db").contains("pa"));
    }

    #[test]
    fn bad_settings_are_configuration_errors() {
        let bad = [
            SqlTokenStoreBuilder::new(),
            SqlTokenStoreBuilder::new().url("mysql://db/x"),
            SqlTokenStoreBuilder::new()
                .url("sqlite:t.db")
                .table_prefix("Bad-Prefix"),
            SqlTokenStoreBuilder::new()
                .url("sqlite:t.db")
                .table_prefix("x\"; drop"),
            SqlTokenStoreBuilder::new()
                .url("sqlite:t.db")
                .schema("tokens"),
            SqlTokenStoreBuilder::new()
                .url("sqlite:t.db")
                .max_connections(0),
            SqlTokenStoreBuilder::new()
                .url("postgres://db/x")
                .operation_timeout(Duration::ZERO),
        ];
        for builder in bad {
            let shown = format!("{builder:?}");
            assert!(
                matches!(builder.settings(), Err(Error::Configuration { .. })),
                "{shown}"
            );
        }
        assert!(
            SqlTokenStoreBuilder::new()
                .url("sqlite:t.db")
                .table_prefix("app_1_")
                .settings()
                .is_ok()
        );
    }
}
