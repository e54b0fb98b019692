//! The connection: a `ConnectionManager` to a standalone server or a `ClusterConnection`,
//! behind one type the commands and scripts run on.
//!
//! Both multiplex every caller's commands over long-lived connections (so 64 concurrent
//! tasks share a few sockets, pipelined) and reconnect by themselves after an outage.

use crate::config::{Settings, Topology};
use crate::error::{self, command_failed};
use grantkit_core::{Error, Result};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, Pipeline, RedisFuture, Value};
use std::collections::BTreeMap;

/// A connection to the store's Redis: cheap to clone, shared by every call.
#[derive(Clone)]
pub(crate) enum Connection {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Standalone(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Standalone(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Standalone(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}

#[cfg(feature = "tls")]
fn ensure_crypto_provider(settings: &Settings) {
    let uses_tls = settings
        .topology
        .urls()
        .iter()
        .any(|u| u.starts_with("rediss://") || u.starts_with("valkeys://"));
    // rustls needs a process-wide crypto provider; install ours unless the application
    // has chosen one. Losing the race to another installer is fine: one is installed.
    if uses_tls && rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
}

#[cfg(feature = "tls")]
fn tls_certificates(settings: &Settings) -> Option<redis::TlsCertificates> {
    settings
        .tls_root_certificates
        .clone()
        .map(|root_cert| redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(root_cert),
        })
}

fn standalone_client(url: &str, settings: &Settings) -> Result<redis::Client> {
    #[cfg(feature = "tls")]
    if let Some(certs) = tls_certificates(settings) {
        return redis::Client::build_with_tls(url, certs)
            .map_err(|e| command_failed("configuring TLS", e));
    }
    let _ = settings;
    redis::Client::open(url).map_err(|e| command_failed("reading the Redis URL", e))
}

impl Connection {
    /// Connects as `settings` say, within the operation timeout.
    pub(crate) async fn connect(settings: &Settings) -> Result<Self> {
        #[cfg(feature = "tls")]
        ensure_crypto_provider(settings);
        let limit = settings.operation_timeout;
        let connecting = async {
            match &settings.topology {
                Topology::Standalone(url) => {
                    let client = standalone_client(url, settings)?;
                    let config = ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(settings.connect_timeout))
                        .set_response_timeout(Some(settings.response_timeout))
                        .set_number_of_retries(settings.reconnect_attempts)
                        .set_min_delay(std::time::Duration::from_millis(50))
                        .set_max_delay(std::time::Duration::from_secs(1));
                    let manager = ConnectionManager::new_with_config(client, config)
                        .await
                        .map_err(|e| command_failed("connecting", e))?;
                    Ok(Self::Standalone(manager))
                }
                Topology::Cluster(urls) => {
                    let builder = ClusterClientBuilder::new(urls.iter().map(String::as_str))
                        .connection_timeout(settings.connect_timeout)
                        .response_timeout(settings.response_timeout)
                        // The client's own retries (redirects, reconnects) are bounded by
                        // the operation timeout rather than counted.
                        .overall_response_timeout(Some(settings.operation_timeout));
                    #[cfg(feature = "tls")]
                    let builder = match tls_certificates(settings) {
                        Some(certs) => builder.certs(certs),
                        None => builder,
                    };
                    let client = builder
                        .build()
                        .map_err(|e| command_failed("reading the Redis Cluster URLs", e))?;
                    let conn = client
                        .get_async_connection()
                        .await
                        .map_err(|e| command_failed("connecting to the cluster", e))?;
                    Ok(Self::Cluster(conn))
                }
            }
        };
        tokio::time::timeout(limit, connecting)
            .await
            .unwrap_or_else(|_| Err(error::timed_out("connecting", limit)))
    }

    /// One slot served by each master, to route a command to every master in turn: a slot
    /// names its master without depending on how the client spells node addresses.
    pub(crate) async fn master_slots(cluster: &mut ClusterConnection) -> Result<Vec<u16>> {
        let masters = Self::masters(cluster).await?;
        let mut first: Vec<u16> = masters.ranges.iter().map(|r| r.master).collect();
        first.sort_unstable();
        first.dedup();
        Ok(first)
    }

    /// Which master serves which slots, as `CLUSTER SLOTS` says now.
    pub(crate) async fn masters(cluster: &mut ClusterConnection) -> Result<Masters> {
        let what = "listing the cluster's masters";
        let reply = cluster
            .route_command(
                redis::cmd("CLUSTER").arg("SLOTS").clone(),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
            )
            .await
            .map_err(|e| command_failed(what, e))?;
        let Value::Array(ranges) = reply else {
            return Err(error::unexpected(
                what,
                "CLUSTER SLOTS did not return an array",
            ));
        };
        // (start, end, master): the master by its node id (or address, for servers that
        // omit the id).
        let mut read: Vec<(u16, u16, Vec<u8>)> = Vec::new();
        for range in ranges {
            let Value::Array(fields) = range else {
                continue;
            };
            let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(master))) =
                (fields.first(), fields.get(1), fields.get(2))
            else {
                continue;
            };
            let (Ok(start), Ok(end)) = (u16::try_from(*start), u16::try_from(*end)) else {
                continue;
            };
            let id = match (master.get(2), master.first(), master.get(1)) {
                (Some(Value::BulkString(id)), _, _) => id.clone(),
                (_, Some(Value::BulkString(host)), Some(Value::Int(port))) => {
                    let mut id = host.clone();
                    id.extend_from_slice(format!(":{port}").as_bytes());
                    id
                }
                _ => continue,
            };
            read.push((start, end.max(start), id));
        }
        if read.is_empty() {
            return Err(Error::Store {
                message: format!("{what}: no slot is served"),
                retryable: true,
                source: None,
            });
        }
        // Each master is named by the first slot it serves.
        let mut first_slot: BTreeMap<&[u8], u16> = BTreeMap::new();
        for (start, _, id) in &read {
            first_slot
                .entry(id.as_slice())
                .and_modify(|slot| *slot = (*slot).min(*start))
                .or_insert(*start);
        }
        let mut ranges: Vec<SlotRange> = read
            .iter()
            .map(|(start, end, id)| SlotRange {
                start: *start,
                end: *end,
                master: first_slot[id.as_slice()],
            })
            .collect();
        ranges.sort_unstable_by_key(|r| r.start);
        Ok(Masters { ranges })
    }

    /// Sends `pipeline` (of `count` commands) to the master serving `slot`. With
    /// `ignore_errors` set on it, each command's error comes back in its place.
    pub(crate) async fn pipeline_on_master(
        cluster: &mut ClusterConnection,
        slot: u16,
        pipeline: Pipeline,
        count: usize,
    ) -> redis::RedisResult<Vec<Value>> {
        cluster
            .route_pipeline(
                pipeline,
                0,
                count,
                SingleNodeRoutingInfo::SpecificNode(Route::new(slot, SlotAddr::Master)),
            )
            .await
    }

    /// Runs `cmd` on the master serving `slot`.
    pub(crate) async fn on_master(
        cluster: &mut ClusterConnection,
        slot: u16,
        cmd: Cmd,
    ) -> redis::RedisResult<Value> {
        cluster
            .route_command(
                cmd,
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::new(
                    slot,
                    SlotAddr::Master,
                ))),
            )
            .await
    }
}

/// Which master serves which slots: a snapshot, good for one batch of reads. A slot that
/// moves meanwhile answers `MOVED`, and the caller reads that key again on its own.
pub(crate) struct Masters {
    /// Sorted by `start`.
    ranges: Vec<SlotRange>,
}

struct SlotRange {
    start: u16,
    end: u16,
    /// The first slot its master serves: the master's name for routing.
    master: u16,
}

impl Masters {
    /// The master serving `slot`, named by the first slot it serves; `None` when no master
    /// serves it (the cluster is being resharded or is down).
    pub(crate) fn of(&self, slot: u16) -> Option<u16> {
        let after = self.ranges.partition_point(|r| r.start <= slot);
        let range = self.ranges.get(after.checked_sub(1)?)?;
        (slot <= range.end).then_some(range.master)
    }
}
