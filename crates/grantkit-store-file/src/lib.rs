#![doc = include_str!("../README.md")]

mod config;
mod error;
mod fsio;
mod layout;
mod lock;
mod record;
mod store;

pub use config::{DEFAULT_LOCK_TIMEOUT, DIR_ENV, FileTokenStoreBuilder};
pub use error::FileStoreError;
pub use fsio::{Durability, MAX_RECORD_BYTES};
pub use store::{CleanupReport, FileTokenStore};

#[cfg(not(unix))]
compile_error!(
    "grantkit-store-file relies on Unix permissions and advisory locks; it supports Unix-like systems only"
);
