//! `RedisTokenStore`: the `TokenStore` contract on Redis, standalone or Redis Cluster.

use crate::config::{RedisTokenStoreBuilder, Settings, Topology};
use crate::connection::Connection;
use crate::error::{self, command_failed, is_wrong_type};
use crate::keys::{GrantKeys, KeyLayout};
use crate::record::{self, Record};
use crate::scripts;
use async_trait::async_trait;
use futures::{StreamExt as _, TryStreamExt as _};
use grantkit_core::store::codec;
use grantkit_core::{
    Error, Result, TokenKey, TokenSet, TokenStore,
    store::{
        KeyFilter, Lease, PendingAuthorization, Precondition, StateHash, StoreCapabilities,
        Version, Versioned,
    },
};
use redis::{RedisResult, Value};
use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Pending authorizations are kept at least this long, so a callback that arrives just as
/// its flow expires is refused as expired (the manager checks) rather than as unknown.
const PENDING_TTL_FLOOR: Duration = Duration::from_secs(1);

/// Expiries are capped at 100 years: Redis refuses one that overflows its clock.
const MAX_TTL_MS: u64 = 100 * 365 * 24 * 3600 * 1000;

/// How many keys one `SCAN` step asks for, and how many records `list` reads at once.
const SCAN_COUNT: usize = 512;
const LIST_READ_CONCURRENCY: usize = 32;

/// How many `GET`s one pipeline of a `get_many` carries, and how many such pipelines are in
/// flight at once.
const BATCH_SIZE: usize = 512;
const BATCH_CONCURRENCY: usize = 8;

/// A token store on Redis: every host that points at the same Redis (and prefix) shares
/// the same grants, leases and pending authorizations.
///
/// Works with a standalone server (through a connection manager that reconnects by
/// itself) and with Redis Cluster. Every check-then-write runs in one server-side script;
/// leases are `SET NX PX` with renewal and release checked against the holder on the
/// server; pending authorizations are taken with `GETDEL`. See the crate documentation for
/// the key layout and what a failover can lose.
///
/// Cloning is cheap and shares the connection.
#[derive(Clone)]
pub struct RedisTokenStore {
    conn: Connection,
    settings: Arc<Settings>,
    keys: Arc<KeyCache>,
}

/// The Redis keys of recently used grants: a SHA-256 per call cost more than the rest of a
/// read's client work. Bounded: when full it starts over rather than track use. Hashed with
/// foldhash, randomly seeded like the standard map's SipHash but several times cheaper on a
/// key's three strings (the lookup is on every call). foldhash resists flooding
/// less than SipHash; a flood could only slow this bounded cache, which starts over when
/// full.
#[derive(Default)]
struct KeyCache {
    grants: std::sync::RwLock<foldhash::HashMap<TokenKey, Arc<GrantKeys>>>,
}

/// How many grants' keys the cache holds (about 250 bytes each).
const KEY_CACHE_CAPACITY: usize = 16_384;

impl KeyCache {
    fn get(&self, layout: &KeyLayout, key: &TokenKey) -> Arc<GrantKeys> {
        use std::sync::PoisonError;
        if let Some(keys) = self
            .grants
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
        {
            return keys.clone();
        }
        let keys = Arc::new(layout.grant(key));
        let mut grants = self.grants.write().unwrap_or_else(PoisonError::into_inner);
        if grants.len() >= KEY_CACHE_CAPACITY {
            grants.clear();
        }
        grants.insert(key.clone(), keys.clone());
        keys
    }
}

impl fmt::Debug for RedisTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTokenStore")
            .field("topology", &self.settings.topology)
            .field("prefix", &self.settings.keys.prefix())
            .field("operation_timeout", &self.settings.operation_timeout)
            .finish_non_exhaustive()
    }
}

fn millis(duration: Duration) -> u64 {
    let ms = duration.as_nanos().div_ceil(1_000_000);
    u64::try_from(ms).unwrap_or(u64::MAX).clamp(1, MAX_TTL_MS)
}

fn conflict(key: &TokenKey) -> Error {
    Error::Conflict {
        key: key.to_string(),
    }
}

impl RedisTokenStore {
    /// A builder with the defaults.
    pub fn builder() -> RedisTokenStoreBuilder {
        RedisTokenStoreBuilder::new()
    }

    /// Connects with the defaults to `urls`: one URL is a standalone server, a
    /// comma-separated list a cluster's nodes (see [`Topology::parse`]).
    pub async fn connect(urls: &str) -> Result<Self> {
        Self::builder()
            .topology(Topology::parse(urls)?)
            .build()
            .await
    }

    /// Connects as the environment says (see [`RedisTokenStoreBuilder::from_env`]).
    pub async fn from_env() -> Result<Self> {
        RedisTokenStoreBuilder::from_env()?.build().await
    }

    pub(crate) async fn connect_with(settings: Settings) -> Result<Self> {
        let conn = Connection::connect(&settings).await?;
        Ok(Self {
            conn,
            settings: Arc::new(settings),
            keys: Arc::default(),
        })
    }

    /// The prefix of every key this store writes.
    pub fn key_prefix(&self) -> &str {
        self.settings.keys.prefix()
    }

    /// Where the store's Redis is.
    pub fn topology(&self) -> &Topology {
        &self.settings.topology
    }

    /// The Redis keys of `key`'s grant, computed once and reused.
    fn grant_keys(&self, key: &TokenKey) -> Arc<GrantKeys> {
        self.keys.get(&self.settings.keys, key)
    }

    /// The Redis key holding the record of `key`, for operators and tests (e.g. to read
    /// its TTL). Contains no key part: a hash of them.
    pub fn record_key(&self, key: &TokenKey) -> String {
        self.settings.keys.record(key)
    }

    /// The Redis key of the pending authorization stored under `state_hash`.
    pub fn pending_key(&self, state_hash: &StateHash) -> String {
        self.settings.keys.pending(state_hash)
    }

    /// Runs one Redis exchange within the operation timeout; `Err` only for the timeout.
    async fn timed<T>(
        &self,
        what: &str,
        exchange: impl Future<Output = RedisResult<T>>,
    ) -> Result<RedisResult<T>> {
        let limit = self.settings.operation_timeout;
        tokio::time::timeout(limit, exchange)
            .await
            .map_err(|_| error::timed_out(what, limit))
    }

    /// Runs one exchange about `key`, mapping a foreign value under the key to
    /// `CorruptRecord` and other failures to `Store`.
    async fn on_key<T>(
        &self,
        what: &str,
        key: &TokenKey,
        exchange: impl Future<Output = RedisResult<T>>,
    ) -> Result<T> {
        self.timed(what, exchange)
            .await?
            .map_err(|err| key_failed(what, key, err))
    }

    /// The expiry of a grant in ms, or 0 for none: only when the refresh token's expiry is
    /// known, from the later of it and the access token's, relative to now, at least the
    /// floor.
    fn expiry_ms(&self, tokens: &TokenSet) -> u64 {
        let Some(refresh_expires_at) = tokens.refresh_expires_at else {
            return 0;
        };
        let dead_at = tokens
            .expires_at
            .map_or(refresh_expires_at, |access| access.max(refresh_expires_at));
        let remaining = dead_at
            .duration_since(self.settings.clock.now())
            .unwrap_or(Duration::ZERO);
        millis(remaining.max(self.settings.token_ttl_floor))
    }

    /// Every record key matching `pattern`, scanning each master of a cluster.
    async fn scan(&self, pattern: &str) -> Result<HashSet<String>> {
        let what = "listing grants";
        let mut found = HashSet::new();
        match &self.conn {
            Connection::Standalone(conn) => {
                let mut conn = conn.clone();
                let mut cursor = 0u64;
                loop {
                    let (next, keys): (u64, Vec<String>) = self
                        .timed(
                            what,
                            redis::cmd("SCAN")
                                .arg(cursor)
                                .arg("MATCH")
                                .arg(pattern)
                                .arg("COUNT")
                                .arg(SCAN_COUNT)
                                .query_async(&mut conn),
                        )
                        .await?
                        .map_err(|e| command_failed(what, e))?;
                    found.extend(keys);
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
            }
            Connection::Cluster(conn) => {
                let mut conn = conn.clone();
                let limit = self.settings.operation_timeout;
                let slots = tokio::time::timeout(limit, Connection::master_slots(&mut conn))
                    .await
                    .map_err(|_| error::timed_out(what, limit))??;
                for slot in slots {
                    let mut cursor = 0u64;
                    loop {
                        let mut scan = redis::cmd("SCAN");
                        scan.arg(cursor)
                            .arg("MATCH")
                            .arg(pattern)
                            .arg("COUNT")
                            .arg(SCAN_COUNT);
                        let reply = self
                            .timed(what, Connection::on_master(&mut conn, slot, scan))
                            .await?
                            .map_err(|e| command_failed(what, e))?;
                        let (next, keys): (u64, Vec<String>) = redis::from_redis_value(reply)
                            .map_err(|_| {
                                error::unexpected(what, "SCAN answered with an unexpected shape")
                            })?;
                        found.extend(keys);
                        if next == 0 {
                            break;
                        }
                        cursor = next;
                    }
                }
            }
        }
        Ok(found)
    }

    /// The key parts stored in the record at `redis_key`, or `None` when it vanished
    /// (deleted or expired since the scan) or cannot be read.
    async fn key_of(&self, redis_key: String) -> Result<Option<TokenKey>> {
        let what = "listing grants";
        let mut conn = self.conn.clone();
        let reply: RedisResult<Option<Vec<u8>>> = self
            .timed(
                what,
                redis::cmd("GET").arg(&redis_key).query_async(&mut conn),
            )
            .await?;
        match reply {
            Ok(None) => Ok(None),
            Ok(Some(bytes)) => match Record::parse(&bytes).and_then(|record| record.key()) {
                Ok(key) => Ok(Some(key)),
                Err(reason) => {
                    tracing::warn!(redis_key = %redis_key, reason, "an unreadable grant record; not listed");
                    Ok(None)
                }
            },
            // A hash: a record of format 1.
            Err(err) if is_wrong_type(&err) => self.legacy_key_of(redis_key).await,
            Err(err) => Err(command_failed(what, err)),
        }
    }

    /// [`key_of`](Self::key_of) for a record of format 1 (a hash).
    async fn legacy_key_of(&self, redis_key: String) -> Result<Option<TokenKey>> {
        let what = "listing grants";
        let mut conn = self.conn.clone();
        let reply: RedisResult<(Option<String>, Option<String>, Option<String>)> = self
            .timed(
                what,
                redis::cmd("HMGET")
                    .arg(&redis_key)
                    .arg("p")
                    .arg("c")
                    .arg("a")
                    .query_async(&mut conn),
            )
            .await?;
        match reply {
            Ok((Some(provider), Some(client), Some(account))) => {
                Ok(Some(TokenKey::new(provider, client, account)))
            }
            Ok((None, None, None)) => Ok(None),
            Ok(_) => {
                tracing::warn!(redis_key = %redis_key, "a grant record lacks its key parts; not listed");
                Ok(None)
            }
            Err(err) if is_wrong_type(&err) => {
                tracing::warn!(redis_key = %redis_key, "a foreign value sits under a grant key; not listed");
                Ok(None)
            }
            Err(err) => Err(command_failed(what, err)),
        }
    }

    /// The batches of a [`get_many`](TokenStore::get_many): indices into `grants`, at most
    /// [`BATCH_SIZE`] each; on a cluster, grouped by the master serving them (named by a
    /// slot it serves), so each batch is one pipeline to one node.
    async fn batches(&self, grants: &[Arc<GrantKeys>]) -> Result<Vec<(Option<u16>, Vec<usize>)>> {
        let indices: Vec<usize> = (0..grants.len()).collect();
        let Connection::Cluster(conn) = &self.conn else {
            return Ok(indices
                .chunks(BATCH_SIZE)
                .map(|chunk| (None, chunk.to_vec()))
                .collect());
        };
        if grants.is_empty() {
            return Ok(Vec::new());
        }
        let what = "reading grants";
        let limit = self.settings.operation_timeout;
        let masters = tokio::time::timeout(limit, Connection::masters(&mut conn.clone()))
            .await
            .map_err(|_| error::timed_out(what, limit))??;
        let mut by_master: std::collections::BTreeMap<Option<u16>, Vec<usize>> =
            std::collections::BTreeMap::new();
        for (index, grant) in grants.iter().enumerate() {
            // A slot no master serves right now goes in a batch of its own kind: its
            // keys are read one by one (and fail as a single read would).
            by_master
                .entry(masters.of(grant.slot))
                .or_default()
                .push(index);
        }
        Ok(by_master
            .into_iter()
            .flat_map(|(master, indices)| {
                indices
                    .chunks(BATCH_SIZE)
                    .map(|chunk| (master, chunk.to_vec()))
                    .collect::<Vec<_>>()
            })
            .collect())
    }

    /// Reads the records of `indices` in one pipeline of `GET`s: one reply per key, an
    /// error reply in the place of a key that has one.
    async fn read_batch(
        &self,
        route: Option<u16>,
        indices: &[usize],
        grants: &[Arc<GrantKeys>],
    ) -> Result<Vec<Value>> {
        let what = "reading grants";
        let mut pipeline = redis::pipe();
        pipeline.ignore_errors();
        for &index in indices {
            pipeline.cmd("GET").arg(grants[index].record.as_str());
        }
        let reply = match &self.conn {
            Connection::Standalone(conn) => {
                pipeline.query_async::<Vec<Value>>(&mut conn.clone()).await
            }
            Connection::Cluster(conn) => match route {
                Some(slot) => {
                    Connection::pipeline_on_master(&mut conn.clone(), slot, pipeline, indices.len())
                        .await
                }
                // No master known for these slots: each key on its own.
                None => Ok(read_each_again(indices.len())),
            },
        };
        let values = match reply {
            Ok(values) => values,
            // The node refused the pipeline as a whole (it moved, it is loading): each key
            // is read again on its own.
            Err(err) if matches!(err.kind(), redis::ErrorKind::Server(_)) => {
                read_each_again(indices.len())
            }
            Err(err) => return Err(command_failed(what, err)),
        };
        if values.len() != indices.len() {
            return Err(error::unexpected(
                what,
                "a pipeline of reads answered with another number of replies",
            ));
        }
        Ok(values)
    }

    /// [`put`](TokenStore::put) replacing version `base`: the whole record, with the next
    /// version, written by the minimal compare-and-swap script.
    async fn replace(
        &self,
        key: &TokenKey,
        record_key: &str,
        tokens: &TokenSet,
        base: Version,
    ) -> Result<Version> {
        let next = base.as_u64().checked_add(1).ok_or_else(|| conflict(key))?;
        let mut call = scripts::evalsha(&scripts::REPLACE, &[record_key]);
        call.arg(base.as_u64())
            .arg(record::whole(next, key, tokens))
            .arg(self.expiry_ms(tokens));
        let mut conn = self.conn.clone();
        // One exchange (two if the server must load the script first), each bounded by the
        // connection's response timeout: as for `get`, no second timer on the hot path.
        let written: i64 = scripts::run(&scripts::REPLACE, &call, &mut conn)
            .await
            .map_err(|err| key_failed("writing a grant", key, err))?;
        match written {
            1 => Ok(Version::from_u64(next)),
            0 => Err(conflict(key)),
            _ => Err(error::unexpected(
                "writing a grant",
                "the write script returned an unknown outcome",
            )),
        }
    }

    /// [`get`](TokenStore::get) of a record of format 1: a hash with the version and the
    /// data (rewritten as format 3 by the next write).
    async fn legacy_get(
        &self,
        key: &TokenKey,
        record: &str,
    ) -> Result<Option<Versioned<TokenSet>>> {
        let mut conn = self.conn.clone();
        let (version, data): (Option<String>, Option<Vec<u8>>) = self
            .on_key(
                "reading a grant",
                key,
                redis::cmd("HMGET")
                    .arg(record)
                    .arg("v")
                    .arg("d")
                    .query_async(&mut conn),
            )
            .await?;
        let (version, data) = match (version, data) {
            (None, None) => return Ok(None),
            (Some(version), Some(data)) => (version, data),
            _ => {
                return Err(corrupt(key, "the record lacks its version or its data"));
            }
        };
        let version = version
            .parse::<u64>()
            .ok()
            .filter(|v| *v != 0)
            .ok_or_else(|| corrupt(key, "the record's version is not a positive integer"))?;
        let value = codec::decode_token_set(&data).map_err(|e| corrupt(key, e.to_string()))?;
        Ok(Some(Versioned {
            value,
            version: Version::from_u64(version),
        }))
    }
}

/// Replies for a batch whose keys are to be read one by one: a reply no `GET` gives, which
/// [`get_many`](TokenStore::get_many) answers with a single read of the key.
fn read_each_again(count: usize) -> Vec<Value> {
    vec![Value::Okay; count]
}

/// The token set in a record of format 2 or 3 read for `key`.
fn decode(key: &TokenKey, bytes: &[u8]) -> Result<Versioned<TokenSet>> {
    let read = Record::parse(bytes).map_err(|reason| corrupt(key, reason))?;
    if !read.is_of(key) {
        return Err(corrupt(key, "the record belongs to another grant"));
    }
    let value = read.tokens().map_err(|reason| corrupt(key, reason))?;
    Ok(Versioned {
        value,
        version: Version::from_u64(read.version),
    })
}

/// A failed exchange about `key`: a foreign value under the key is `CorruptRecord`, the
/// rest `Store`.
fn key_failed(what: &str, key: &TokenKey, err: redis::RedisError) -> Error {
    if is_wrong_type(&err) {
        Error::CorruptRecord {
            key: key.to_string(),
            reason: "the Redis key holds a value of another type".to_owned(),
        }
    } else {
        command_failed(what, err)
    }
}

fn corrupt(key: &TokenKey, reason: impl Into<String>) -> Error {
    Error::CorruptRecord {
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// The precondition as the scripts take it: `any`, `absent`, or the expected version.
fn precondition_arg(precondition: Precondition) -> std::borrow::Cow<'static, str> {
    match precondition {
        Precondition::Any => "any".into(),
        Precondition::Absent => "absent".into(),
        Precondition::Version(version) => version.as_u64().to_string().into(),
    }
}

#[async_trait]
impl TokenStore for RedisTokenStore {
    fn capabilities(&self) -> StoreCapabilities {
        StoreCapabilities::none()
            .with_cross_process_leases(true)
            .with_pending_authorizations(true)
            .with_shared_between_hosts(true)
    }

    async fn get(&self, key: &TokenKey) -> Result<Option<Versioned<TokenSet>>> {
        let keys = self.grant_keys(key);
        let record = keys.record.as_str();
        let mut conn = self.conn.clone();
        // One command: the connection's response timeout bounds it, no second timer.
        let reply: RedisResult<Option<Vec<u8>>> =
            redis::cmd("GET").arg(record).query_async(&mut conn).await;
        let bytes = match reply {
            Ok(None) => return Ok(None),
            Ok(Some(bytes)) => bytes,
            // A hash: a record of format 1, from before a rolling upgrade.
            Err(err) if is_wrong_type(&err) => return self.legacy_get(key, record).await,
            Err(err) => return Err(command_failed("reading a grant", err)),
        };
        decode(key, &bytes).map(Some)
    }

    async fn get_many(
        &self,
        keys: &[TokenKey],
    ) -> Result<Vec<Result<Option<Versioned<TokenSet>>>>> {
        let grants: Vec<Arc<GrantKeys>> = keys.iter().map(|key| self.grant_keys(key)).collect();
        let batches = self.batches(&grants).await?;
        let grants = grants.as_slice();
        let replies: Vec<(Vec<usize>, Vec<Value>)> = futures::stream::iter(batches)
            .map(|(route, indices)| async move {
                let values = self.read_batch(route, &indices, grants).await?;
                Ok::<_, Error>((indices, values))
            })
            .buffer_unordered(BATCH_CONCURRENCY)
            .try_collect()
            .await?;
        // Every index is in exactly one batch, and each batch answered for each of its keys.
        let mut answers: Vec<Result<Option<Versioned<TokenSet>>>> =
            std::iter::repeat_with(|| Ok(None))
                .take(keys.len())
                .collect();
        for (indices, values) in replies {
            for (index, value) in indices.into_iter().zip(values) {
                let key = &keys[index];
                answers[index] = match value {
                    Value::Nil => Ok(None),
                    Value::BulkString(bytes) => decode(key, &bytes).map(Some),
                    // A record of format 1, a slot that moved, or any other refusal: the
                    // key is read again on its own, which follows redirects and says what
                    // is wrong with it.
                    _ => match self.get(key).await {
                        Err(err) if !matches!(err, Error::CorruptRecord { .. }) => return Err(err),
                        answer => answer,
                    },
                };
            }
        }
        Ok(answers)
    }

    async fn put(
        &self,
        key: &TokenKey,
        tokens: &TokenSet,
        precondition: Precondition,
    ) -> Result<Version> {
        let keys = self.grant_keys(key);
        if let Precondition::Version(base) = precondition {
            return self.replace(key, &keys.record, tokens, base).await;
        }
        let mut conn = self.conn.clone();
        let payload = record::payload(key, tokens);
        let mut call = scripts::evalsha(&scripts::PUT, &[&keys.record, &keys.tombstone]);
        call.arg(precondition_arg(precondition).as_ref())
            .arg(payload)
            .arg(self.expiry_ms(tokens));
        let version: i64 = self
            .on_key(
                "writing a grant",
                key,
                scripts::run(&scripts::PUT, &call, &mut conn),
            )
            .await?;
        match u64::try_from(version) {
            Ok(0) => Err(conflict(key)),
            Ok(version) => Ok(Version::from_u64(version)),
            Err(_) => Err(error::unexpected(
                "writing a grant",
                "the write script returned a negative version",
            )),
        }
    }

    async fn delete(&self, key: &TokenKey, precondition: Precondition) -> Result<bool> {
        let keys = self.grant_keys(key);
        let mut conn = self.conn.clone();
        let mut call = scripts::evalsha(&scripts::DELETE, &[&keys.record, &keys.tombstone]);
        call.arg(precondition_arg(precondition).as_ref())
            .arg(millis(self.settings.tombstone_ttl));
        let outcome: i64 = self
            .on_key(
                "deleting a grant",
                key,
                scripts::run(&scripts::DELETE, &call, &mut conn),
            )
            .await?;
        match outcome {
            1 => Ok(true),
            0 => Ok(false),
            -1 => Err(conflict(key)),
            _ => Err(error::unexpected(
                "deleting a grant",
                "the delete script returned an unknown outcome",
            )),
        }
    }

    async fn list(&self, filter: &KeyFilter) -> Result<Vec<TokenKey>> {
        let pattern = self.settings.keys.record_pattern(filter);
        let found = self.scan(&pattern).await?;
        let keys: Vec<Option<TokenKey>> = futures::stream::iter(found)
            .map(|redis_key| self.key_of(redis_key))
            .buffer_unordered(LIST_READ_CONCURRENCY)
            .try_collect()
            .await?;
        // The key hashes in the pattern are short; the stored parts decide.
        let mut seen = HashSet::new();
        Ok(keys
            .into_iter()
            .flatten()
            .filter(|key| filter.matches(key) && seen.insert(key.clone()))
            .collect())
    }

    async fn try_lease(&self, key: &TokenKey, ttl: Duration) -> Result<Option<Lease>> {
        let lease = Lease::new_holder(key.clone());
        let lease_key = self.grant_keys(key).lease.clone();
        let mut conn = self.conn.clone();
        let reply: Option<String> = self
            .on_key(
                "taking a lease",
                key,
                redis::cmd("SET")
                    .arg(&lease_key)
                    .arg(&lease.holder)
                    .arg("NX")
                    .arg("PX")
                    .arg(millis(ttl))
                    .query_async(&mut conn),
            )
            .await?;
        Ok(reply.map(|_| lease))
    }

    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<()> {
        let lease_key = self.grant_keys(&lease.key).lease.clone();
        let mut conn = self.conn.clone();
        let mut call = scripts::evalsha(&scripts::RENEW_LEASE, &[&lease_key]);
        call.arg(&lease.holder).arg(millis(ttl));
        let renewed: i64 = self
            .on_key(
                "renewing a lease",
                &lease.key,
                scripts::run(&scripts::RENEW_LEASE, &call, &mut conn),
            )
            .await?;
        if renewed == 1 {
            Ok(())
        } else {
            Err(Error::LeaseLost {
                key: lease.key.to_string(),
            })
        }
    }

    async fn release_lease(&self, lease: &Lease) -> Result<()> {
        let lease_key = self.grant_keys(&lease.key).lease.clone();
        let mut conn = self.conn.clone();
        let mut call = scripts::evalsha(&scripts::RELEASE_LEASE, &[&lease_key]);
        call.arg(&lease.holder);
        let _released: i64 = self
            .on_key(
                "releasing a lease",
                &lease.key,
                scripts::run(&scripts::RELEASE_LEASE, &call, &mut conn),
            )
            .await?;
        Ok(())
    }

    async fn put_pending(&self, pending: &PendingAuthorization, ttl: Duration) -> Result<()> {
        let what = "storing a pending authorization";
        let redis_key = self.settings.keys.pending(&pending.state_hash());
        let data = codec::encode_pending(pending);
        let mut conn = self.conn.clone();
        let () = self
            .timed(
                what,
                redis::cmd("SET")
                    .arg(&redis_key)
                    .arg(data)
                    .arg("PX")
                    .arg(millis(ttl.max(PENDING_TTL_FLOOR)))
                    .query_async(&mut conn),
            )
            .await?
            .map_err(|e| command_failed(what, e))?;
        Ok(())
    }

    async fn take_pending(&self, state_hash: &StateHash) -> Result<Option<PendingAuthorization>> {
        let what = "taking a pending authorization";
        let redis_key = self.settings.keys.pending(state_hash);
        let mut conn = self.conn.clone();
        let data: Option<Vec<u8>> = self
            .timed(
                what,
                redis::cmd("GETDEL").arg(&redis_key).query_async(&mut conn),
            )
            .await?
            .map_err(|e| command_failed(what, e))?;
        let Some(data) = data else {
            return Ok(None);
        };
        let corrupt = |reason: String| Error::CorruptRecord {
            key: format!("pending authorization {state_hash}"),
            reason,
        };
        let pending = codec::decode_pending(&data).map_err(|e| corrupt(e.to_string()))?;
        if pending.state_hash() != *state_hash {
            return Err(corrupt(
                "the record belongs to another state (written by something else)".to_owned(),
            ));
        }
        Ok(Some(pending))
    }
}
