#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
mod error;
mod schema;
mod store;

#[cfg(feature = "testing")]
pub mod testing;

pub use config::{DEFAULT_TABLE_PREFIX, ENV_TABLE_PREFIX, ENV_URL, SqlTokenStoreBuilder};
pub use store::{Purged, SqlTokenStore};
