#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
mod connection;
mod error;
mod keys;
mod record;
mod scripts;
mod store;

#[cfg(feature = "testing")]
pub mod testing;

pub use config::{
    ENV_CLUSTER_URLS, ENV_CONNECT_TIMEOUT_MS, ENV_OPERATION_TIMEOUT_MS, ENV_PREFIX,
    ENV_RESPONSE_TIMEOUT_MS, ENV_URL, RedisTokenStoreBuilder, Topology,
};
pub use store::RedisTokenStore;
