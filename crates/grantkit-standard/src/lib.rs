#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod account;
mod metadata;
mod oauth;
mod provider;

#[cfg(feature = "testing")]
pub mod testing;

pub use account::{AccountClaims, DEFAULT_ACCOUNT_CLAIMS};
pub use metadata::ServerMetadata;
pub use provider::{
    ClientAuth, DEFAULT_ID, DEFAULT_TIMEOUT, StandardProvider, StandardProviderBuilder,
};
