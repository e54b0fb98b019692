//! `SqlTokenStore`: the `TokenStore` contract as single conditional statements.

use crate::config::{DatabaseKind, Settings, SqlTokenStoreBuilder, redact_url};
use crate::error::{failed, timed_out};
use crate::schema::{MANY_KEYS_PER_STATEMENT, Statements};
use async_trait::async_trait;
use grantkit_core::store::{
    KeyFilter, Lease, PendingAuthorization, Precondition, StateHash, StoreCapabilities, Version,
    Versioned, codec,
};
use grantkit_core::{Error, Result, TokenKey, TokenSet, TokenStore};
use sha2::{Digest as _, Sha256};
use sqlx::Row as _;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::time::{Duration, UNIX_EPOCH};

#[cfg(not(any(feature = "postgres", feature = "sqlite")))]
compile_error!("grantkit-store-sql needs the `postgres` feature, the `sqlite` feature, or both");

/// Pending authorizations are kept at least this long, so a callback that arrives just as
/// its flow expires is refused as expired (the manager checks) rather than as unknown.
const PENDING_TTL_FLOOR: Duration = Duration::from_secs(1);

/// One in this many `put_pending` calls also deletes expired pending authorizations, so
/// flows never finished do not pile up between explicit clean-ups.
const PENDING_PURGE_EVERY: u64 = 64;

/// The connection pool of one database.
#[derive(Clone)]
enum Pool {
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
}

/// Runs `$body` with `$pool` bound to the concrete pool, whichever database it is: the
/// statements are the same, the driver types differ.
macro_rules! on_pool {
    ($pool_enum:expr, $pool:ident => $body:expr) => {
        match $pool_enum {
            #[cfg(feature = "postgres")]
            Pool::Postgres($pool) => $body,
            #[cfg(feature = "sqlite")]
            Pool::Sqlite($pool) => $body,
        }
    };
}

/// A token store in PostgreSQL or SQLite.
///
/// Every write is one conditional statement: `INSERT … ON CONFLICT DO NOTHING` for a new
/// grant, `UPDATE … WHERE version = $n` for a refresh, so of two writers holding the same
/// version exactly one wins. Leases are rows with a holder and an expiry read from the
/// database's clock, so hosts with skewed clocks agree; pending authorizations are taken
/// once with `DELETE … RETURNING`. A record's key is the SHA-256 of its [`TokenKey`];
/// the key's parts are kept beside it, as bytes (any string is a key part, NUL included),
/// for listing.
///
/// PostgreSQL is shared between hosts; SQLite is for a program on one host (several
/// processes may open the same file).
///
/// ```no_run
/// # async fn example() -> grantkit_core::Result<()> {
/// use grantkit_store_sql::SqlTokenStore;
///
/// let store = SqlTokenStore::connect("postgres://grantkit@localhost/app").await?;
/// let embedded = SqlTokenStore::connect("sqlite:/var/lib/my-app/tokens.db").await?;
/// # let _ = (store, embedded); Ok(()) }
/// ```
#[derive(Clone)]
pub struct SqlTokenStore {
    pool: Pool,
    sql: std::sync::Arc<Statements>,
    kind: DatabaseKind,
    url: String,
    operation_timeout: Duration,
}

impl fmt::Debug for SqlTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlTokenStore")
            .field("url", &redact_url(&self.url))
            .field("operation_timeout", &self.operation_timeout)
            .finish_non_exhaustive()
    }
}

/// What [`SqlTokenStore::purge_expired`] deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Purged {
    /// Grants whose refresh token (and access token) had expired.
    pub grants: u64,
    /// Leases past their expiry (their holders are gone).
    pub leases: u64,
    /// Pending authorizations whose flows expired.
    pub pending: u64,
}

impl SqlTokenStore {
    /// A builder with the defaults.
    pub fn builder() -> SqlTokenStoreBuilder {
        SqlTokenStoreBuilder::new()
    }

    /// Opens the store at `url` with the defaults: `postgres://…` or `sqlite:path`.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::builder().url(url).open().await
    }

    pub(crate) async fn open_with(settings: Settings) -> Result<Self> {
        let sql = Statements::new(settings.kind, &settings.tables);
        let pool = connect(&settings).await?;
        let store = Self {
            pool,
            sql: std::sync::Arc::new(sql),
            kind: settings.kind,
            url: settings.url,
            operation_timeout: settings.operation_timeout,
        };
        if let Err(err) = store.migrate(&settings.tables.migrations()).await {
            store.close().await;
            return Err(err);
        }
        Ok(store)
    }

    /// The PostgreSQL pool, for the benchmarks' raw statements on the same connections.
    #[cfg(feature = "testing")]
    pub(crate) fn postgres_pool(&self) -> Option<&sqlx::PgPool> {
        match &self.pool {
            Pool::Postgres(pool) => Some(pool),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// Whether this store is on PostgreSQL (else SQLite).
    pub fn is_postgres(&self) -> bool {
        self.kind == DatabaseKind::Postgres
    }

    /// Deletes what has expired: grants whose refresh token expired (only grants whose
    /// provider said when; the others are kept until deleted), leases whose holders are
    /// gone, and pending authorizations of flows never finished. Run it now and then, e.g.
    /// daily; nothing depends on it.
    pub async fn purge_expired(&self) -> Result<Purged> {
        let what = "deleting expired records";
        let sql = &self.sql;
        self.timed(what, async {
            on_pool!(&self.pool, pool => {
                let grants = sqlx::query(&sql.purge_tokens).execute(pool).await?.rows_affected();
                let leases = sqlx::query(&sql.purge_leases).execute(pool).await?.rows_affected();
                let pending = sqlx::query(&sql.purge_pending).execute(pool).await?.rows_affected();
                Ok(Purged { grants, leases, pending })
            })
        })
        .await
    }

    /// Closes the pool's connections: calls after this fail.
    pub async fn close(&self) {
        on_pool!(&self.pool, pool => pool.close().await);
    }

    /// Creates the tables or brings them to this version's schema, in one transaction that
    /// concurrent openers take in turn.
    async fn migrate(&self, lock_name: &str) -> Result<()> {
        let what = "creating the store's tables";
        let sql = &self.sql;
        let lock_id = i64::from_be_bytes(first_8(&Sha256::digest(lock_name.as_bytes())));
        let newest = sql.migrations.last().map_or(0, |(version, _)| *version);
        let found = self
            .timed(what, async {
                on_pool!(&self.pool, pool => {
                    let mut conn = pool.acquire().await?;
                    // Never back to the pool: if this call is cancelled (the timeout) inside
                    // the transaction, the connection closes and the server rolls back and
                    // lets go of the migration lock.
                    conn.close_on_drop();
                    sqlx::query(sql.begin_migration).execute(&mut *conn).await?;
                    let steps = async {
                        // Under the lock, even the version table's creation: PostgreSQL's
                        // `CREATE TABLE IF NOT EXISTS` is not safe against a concurrent one.
                        if let Some(lock) = sql.lock_migration {
                            sqlx::query(lock).bind(lock_id).execute(&mut *conn).await?;
                        }
                        sqlx::query(&sql.migrations_table).execute(&mut *conn).await?;
                        let current: Option<i64> =
                            sqlx::query_scalar(&sql.schema_version).fetch_one(&mut *conn).await?;
                        let current = current.unwrap_or(0);
                        for (version, statements) in &sql.migrations {
                            if *version <= current {
                                continue;
                            }
                            for statement in statements {
                                sqlx::query(statement).execute(&mut *conn).await?;
                            }
                            sqlx::query(&sql.record_migration).bind(*version).execute(&mut *conn).await?;
                        }
                        Ok::<_, sqlx::Error>(current)
                    }
                    .await;
                    let end = if steps.is_ok() { "COMMIT" } else { "ROLLBACK" };
                    let ended = sqlx::query(end).execute(&mut *conn).await;
                    steps.and_then(|found| ended.map(|_| found))
                })
            })
            .await?;
        if found > newest {
            return Err(Error::configuration(format!(
                "the tables were created by a newer grantkit-store-sql (schema version {found}, \
                 this one knows {newest})"
            )));
        }
        Ok(())
    }

    async fn timed<T>(
        &self,
        what: &str,
        call: impl Future<Output = std::result::Result<T, sqlx::Error>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.operation_timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(failed(what, err)),
            Err(_) => Err(timed_out(what, self.operation_timeout)),
        }
    }

    async fn write(
        &self,
        key: &TokenKey,
        tokens: &TokenSet,
        precondition: Precondition,
    ) -> Result<Version> {
        let what = "storing a grant";
        let sql = &self.sql;
        let hash = key_hash(key);
        let version = Version::random();
        let stored_version = version.as_u64() as i64;
        let record = codec::encode_token_set(tokens);
        let purge_after = purge_after_ms(tokens);
        let written = self
            .timed(what, async {
                on_pool!(&self.pool, pool => {
                    let result = match precondition {
                        Precondition::Version(expected) => {
                            sqlx::query(&sql.put_version)
                                .bind(&hash[..])
                                .bind(stored_version)
                                .bind(&record[..])
                                .bind(purge_after)
                                .bind(expected.as_u64() as i64)
                                .execute(pool)
                                .await?
                        }
                        Precondition::Any | Precondition::Absent => {
                            let statement = if precondition == Precondition::Any {
                                &sql.put_any
                            } else {
                                &sql.put_absent
                            };
                            sqlx::query(statement)
                                .bind(&hash[..])
                                .bind(&provider_hash(&key.provider)[..])
                                .bind(&client_hash(&key.provider, &key.client)[..])
                                .bind(key.provider.as_bytes())
                                .bind(key.client.as_bytes())
                                .bind(key.account.as_bytes())
                                .bind(stored_version)
                                .bind(&record[..])
                                .bind(purge_after)
                                .execute(pool)
                                .await?
                        }
                    };
                    Ok(result.rows_affected() > 0)
                })
            })
            .await?;
        if written {
            Ok(version)
        } else {
            Err(conflict(key))
        }
    }
}

async fn connect(settings: &Settings) -> Result<Pool> {
    let what = "connecting to the database";
    let bad_url = || {
        Error::configuration(
            "the database URL is not valid (check its host, port, database and options)",
        )
    };
    // The pool waits for a connection no longer than a call may take.
    let acquire = settings.operation_timeout;
    let connected = tokio::time::timeout(settings.connect_timeout + acquire, async {
        match settings.kind {
            #[cfg(feature = "postgres")]
            DatabaseKind::Postgres => {
                use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
                let timeout_ms = settings.operation_timeout.as_millis().to_string();
                let options: PgConnectOptions = settings.url.parse().map_err(|_| bad_url())?;
                // The server abandons a statement (and its locks) once the caller has
                // given up on it.
                let options = options.options([
                    ("statement_timeout", timeout_ms.as_str()),
                    ("lock_timeout", timeout_ms.as_str()),
                ]);
                let pool = PgPoolOptions::new()
                    .max_connections(settings.max_connections)
                    .acquire_timeout(acquire)
                    .connect_with(options)
                    .await
                    .map_err(|err| failed(what, err))?;
                Ok(Pool::Postgres(pool))
            }
            #[cfg(feature = "sqlite")]
            DatabaseKind::Sqlite => {
                use sqlx::sqlite::{
                    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
                };
                let options: SqliteConnectOptions = settings.url.parse().map_err(|_| bad_url())?;
                // WAL lets readers run beside the one writer; FULL makes an acknowledged
                // write survive a power cut; the busy timeout makes other processes'
                // writers wait their turn rather than fail.
                let options = options
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(settings.operation_timeout);
                // Switching a new database file to WAL takes an exclusive lock that SQLite
                // does not wait for (the busy timeout does not apply), so openers racing on
                // a fresh file can be told "busy" once; they try again for as long as a
                // connection may take. An open database is already in WAL and never asks
                // for that lock; a lock that never clears is reported as the busy it is.
                let deadline = tokio::time::Instant::now() + settings.connect_timeout;
                let mut pause = Duration::from_millis(5);
                loop {
                    match SqlitePoolOptions::new()
                        .max_connections(settings.max_connections)
                        .acquire_timeout(acquire)
                        .connect_with(options.clone())
                        .await
                    {
                        Ok(pool) => break Ok(Pool::Sqlite(pool)),
                        Err(err)
                            if crate::error::is_sqlite_busy(&err)
                                && tokio::time::Instant::now() + pause < deadline =>
                        {
                            tokio::time::sleep(pause).await;
                            pause = (pause * 2).min(Duration::from_millis(100));
                        }
                        Err(err) => break Err(failed(what, err)),
                    }
                }
            }
            #[allow(unreachable_patterns)]
            _ => Err(Error::configuration(
                "this database's feature is not enabled",
            )),
        }
    })
    .await;
    connected.unwrap_or_else(|_| Err(timed_out(what, settings.connect_timeout)))
}

#[async_trait]
impl TokenStore for SqlTokenStore {
    fn capabilities(&self) -> StoreCapabilities {
        StoreCapabilities::none()
            .with_cross_process_leases(true)
            .with_pending_authorizations(true)
            .with_shared_between_hosts(self.is_postgres())
    }

    async fn get(&self, key: &TokenKey) -> Result<Option<Versioned<TokenSet>>> {
        let hash = key_hash(key);
        let sql = &self.sql;
        let found = self
            .timed("reading a grant", async {
                on_pool!(&self.pool, pool => {
                    match sqlx::query(&sql.get).bind(&hash[..]).fetch_optional(pool).await? {
                        Some(row) => Ok(Some((row.try_get::<i64, _>(0)?, row.try_get::<Vec<u8>, _>(1)?))),
                        None => Ok(None),
                    }
                })
            })
            .await?;
        found
            .map(|(version, record)| decode(key, version, &record))
            .transpose()
    }

    async fn get_many(
        &self,
        keys: &[TokenKey],
    ) -> Result<Vec<Result<Option<Versioned<TokenSet>>>>> {
        let hashes: Vec<[u8; 32]> = keys.iter().map(key_hash).collect();
        let mut distinct: Vec<&[u8; 32]> = hashes.iter().collect();
        distinct.sort_unstable();
        distinct.dedup();
        let sql = &self.sql;
        let mut found: HashMap<Vec<u8>, (i64, Vec<u8>)> = HashMap::with_capacity(distinct.len());
        for chunk in distinct.chunks(MANY_KEYS_PER_STATEMENT) {
            let statement = sql.get_many(chunk.len());
            let rows = self
                .timed("reading grants", async {
                    on_pool!(&self.pool, pool => {
                        let mut query = sqlx::query(&statement);
                        for hash in chunk {
                            query = query.bind(&hash[..]);
                        }
                        let mut rows = Vec::new();
                        for row in query.fetch_all(pool).await? {
                            rows.push((
                                row.try_get::<Vec<u8>, _>(0)?,
                                row.try_get::<i64, _>(1)?,
                                row.try_get::<Vec<u8>, _>(2)?,
                            ));
                        }
                        Ok(rows)
                    })
                })
                .await?;
            found.extend(
                rows.into_iter()
                    .map(|(hash, version, record)| (hash, (version, record))),
            );
        }
        Ok(keys
            .iter()
            .zip(&hashes)
            .map(|(key, hash)| match found.get(&hash[..]) {
                Some((version, record)) => decode(key, *version, record).map(Some),
                None => Ok(None),
            })
            .collect())
    }

    async fn put(
        &self,
        key: &TokenKey,
        tokens: &TokenSet,
        precondition: Precondition,
    ) -> Result<Version> {
        self.write(key, tokens, precondition).await
    }

    async fn delete(&self, key: &TokenKey, precondition: Precondition) -> Result<bool> {
        let what = "deleting a grant";
        let hash = key_hash(key);
        let sql = &self.sql;
        let (deleted, refused) = self
            .timed(what, async {
                on_pool!(&self.pool, pool => {
                    Ok(match precondition {
                        Precondition::Any => {
                            let n = sqlx::query(&sql.delete_any).bind(&hash[..]).execute(pool).await?;
                            (n.rows_affected() > 0, false)
                        }
                        Precondition::Version(expected) => {
                            let n = sqlx::query(&sql.delete_version)
                                .bind(&hash[..])
                                .bind(expected.as_u64() as i64)
                                .execute(pool)
                                .await?;
                            // Nothing of this version: a newer one, or none at all.
                            (n.rows_affected() > 0, n.rows_affected() == 0)
                        }
                        Precondition::Absent => {
                            let row = sqlx::query(&sql.exists).bind(&hash[..]).fetch_optional(pool).await?;
                            (false, row.is_some())
                        }
                    })
                })
            })
            .await?;
        if refused {
            Err(conflict(key))
        } else {
            Ok(deleted)
        }
    }

    async fn list(&self, filter: &KeyFilter) -> Result<Vec<TokenKey>> {
        let sql = &self.sql;
        let by_provider = provider_hash(&filter.provider);
        let by_client = filter
            .client
            .as_ref()
            .map(|client| client_hash(&filter.provider, client));
        let rows = self
            .timed("listing grants", async {
                on_pool!(&self.pool, pool => {
                    let query = match &by_client {
                        Some(client) => sqlx::query(&sql.list_client).bind(&by_provider[..]).bind(&client[..]),
                        None => sqlx::query(&sql.list_provider).bind(&by_provider[..]),
                    };
                    let mut parts = Vec::new();
                    for row in query.fetch_all(pool).await? {
                        parts.push([
                            row.try_get::<Vec<u8>, _>(0)?,
                            row.try_get::<Vec<u8>, _>(1)?,
                            row.try_get::<Vec<u8>, _>(2)?,
                        ]);
                    }
                    Ok(parts)
                })
            })
            .await?;
        let mut keys = Vec::with_capacity(rows.len());
        for [provider, client, account] in rows {
            // Written from strings; anything else was written by someone else.
            let text = |bytes: Vec<u8>| {
                String::from_utf8(bytes).map_err(|_| {
                    Error::store(
                        "listing grants: a row's key is not UTF-8 (written by something else)",
                        false,
                        std::fmt::Error,
                    )
                })
            };
            let key = TokenKey::new(text(provider)?, text(client)?, text(account)?);
            if filter.matches(&key) {
                keys.push(key);
            }
        }
        Ok(keys)
    }

    async fn try_lease(&self, key: &TokenKey, ttl: Duration) -> Result<Option<Lease>> {
        let lease = Lease::new_holder(key.clone());
        let hash = key_hash(key);
        let sql = &self.sql;
        let taken = self
            .timed("taking a lease", async {
                on_pool!(&self.pool, pool => {
                    let row = sqlx::query(&sql.try_lease)
                        .bind(&hash[..])
                        .bind(&lease.holder)
                        .bind(millis(ttl))
                        .fetch_optional(pool)
                        .await?;
                    Ok(row.is_some())
                })
            })
            .await?;
        Ok(taken.then_some(lease))
    }

    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<()> {
        let hash = key_hash(&lease.key);
        let sql = &self.sql;
        let renewed = self
            .timed("renewing a lease", async {
                on_pool!(&self.pool, pool => {
                    let n = sqlx::query(&sql.renew_lease)
                        .bind(&hash[..])
                        .bind(&lease.holder)
                        .bind(millis(ttl))
                        .execute(pool)
                        .await?;
                    Ok(n.rows_affected() > 0)
                })
            })
            .await?;
        if renewed {
            Ok(())
        } else {
            Err(Error::LeaseLost {
                key: lease.key.to_string(),
            })
        }
    }

    async fn release_lease(&self, lease: &Lease) -> Result<()> {
        let hash = key_hash(&lease.key);
        let sql = &self.sql;
        self.timed("releasing a lease", async {
            on_pool!(&self.pool, pool => {
                sqlx::query(&sql.release_lease)
                    .bind(&hash[..])
                    .bind(&lease.holder)
                    .execute(pool)
                    .await?;
                Ok(())
            })
        })
        .await
    }

    async fn put_pending(&self, pending: &PendingAuthorization, ttl: Duration) -> Result<()> {
        let state_hash = pending.state_hash();
        let record = codec::encode_pending(pending);
        let ttl = millis(ttl.max(PENDING_TTL_FLOOR));
        let purge = rand_below(PENDING_PURGE_EVERY) == 0;
        let sql = &self.sql;
        self.timed("keeping a pending authorization", async {
            on_pool!(&self.pool, pool => {
                sqlx::query(&sql.put_pending)
                    .bind(state_hash.as_str())
                    .bind(&record[..])
                    .bind(ttl)
                    .execute(pool)
                    .await?;
                if purge {
                    sqlx::query(&sql.purge_pending).execute(pool).await?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn take_pending(&self, state_hash: &StateHash) -> Result<Option<PendingAuthorization>> {
        let sql = &self.sql;
        let taken = self
            .timed("taking a pending authorization", async {
                on_pool!(&self.pool, pool => {
                    match sqlx::query(&sql.take_pending)
                        .bind(state_hash.as_str())
                        .fetch_optional(pool)
                        .await?
                    {
                        Some(row) => Ok(Some((row.try_get::<Vec<u8>, _>(0)?, row.try_get::<i64, _>(1)?))),
                        None => Ok(None),
                    }
                })
            })
            .await?;
        match taken {
            // Kept past its time (clean-up is lazy): as good as forgotten.
            Some((_, remaining_ms)) if remaining_ms <= 0 => Ok(None),
            Some((record, _)) => {
                codec::decode_pending(&record)
                    .map(Some)
                    .map_err(|err| Error::CorruptRecord {
                        key: format!("pending authorization {state_hash}"),
                        reason: err.to_string(),
                    })
            }
            None => Ok(None),
        }
    }
}

fn decode(key: &TokenKey, version: i64, record: &[u8]) -> Result<Versioned<TokenSet>> {
    let value = codec::decode_token_set(record).map_err(|err| Error::CorruptRecord {
        key: key.to_string(),
        reason: err.to_string(),
    })?;
    Ok(Versioned {
        value,
        // Versions are u64 stored in a signed 64-bit column, bit for bit.
        version: Version::from_u64(version as u64),
    })
}

fn conflict(key: &TokenKey) -> Error {
    Error::Conflict {
        key: key.to_string(),
    }
}

/// When a grant is of no more use, in ms since the epoch: only when its refresh token's
/// expiry is known, the later of that and the access token's.
fn purge_after_ms(tokens: &TokenSet) -> Option<i64> {
    let refresh_expires_at = tokens.refresh_expires_at?;
    let dead_at = tokens
        .expires_at
        .map_or(refresh_expires_at, |access| access.max(refresh_expires_at));
    let ms = dead_at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    Some(i64::try_from(ms).unwrap_or(i64::MAX))
}

/// A duration in whole milliseconds, at least 1, for the database's clock arithmetic.
fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos().div_ceil(1_000_000))
        .unwrap_or(i64::MAX / 2)
        .clamp(1, i64::MAX / 2)
}

fn rand_below(n: u64) -> u64 {
    Version::random().as_u64() % n
}

/// Hashes length-prefixed parts: no two distinct lists of parts hash alike.
fn hash_parts(domain: &[u8], parts: &[&str]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(domain);
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().into()
}

/// The primary key of a grant's row and of its lease.
pub(crate) fn key_hash(key: &TokenKey) -> [u8; 32] {
    hash_parts(
        b"grantkit.key\0",
        &[&key.provider, &key.client, &key.account],
    )
}

fn provider_hash(provider: &str) -> [u8; 32] {
    hash_parts(b"grantkit.provider\0", &[provider])
}

fn client_hash(provider: &str, client: &str) -> [u8; 32] {
    hash_parts(b"grantkit.client\0", &[provider, client])
}

fn first_8(bytes: &[u8]) -> [u8; 8] {
    let mut out = [0u8; 8];
    out.copy_from_slice(&bytes[..8]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_parts_cannot_run_into_each_other() {
        let a = TokenKey::new("p", "ab", "c");
        let b = TokenKey::new("p", "a", "bc");
        assert_ne!(key_hash(&a), key_hash(&b));
        assert_ne!(client_hash("pa", "b"), client_hash("p", "ab"));
    }

    #[test]
    fn durations_become_positive_millis() {
        assert_eq!(millis(Duration::ZERO), 1);
        assert_eq!(millis(Duration::from_micros(1500)), 2);
        assert_eq!(millis(Duration::MAX), i64::MAX / 2);
    }
}
