#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

// What an application uses is at the root; what a provider, store or flow author needs is
// in `provider`, `store` and `flow`. Nothing is reachable by two paths.

pub mod clock;
pub mod flow;
pub mod provider;
pub mod store;

#[cfg(feature = "reqwest")]
mod client;
mod contract;
mod device;
mod error;
mod key;
#[cfg(feature = "loopback")]
pub mod loopback;
mod manager;
mod memory;
mod net;
mod pending;
#[cfg(feature = "reqwest")]
mod retry;
mod secret;
mod token;

#[cfg(feature = "reqwest")]
pub use client::AuthorizedClient;
pub use contract::{Provider, Revocation, TokenStore};
pub use device::DeviceAuthorization;
pub use error::{CallbackError, Error, Result};
pub use flow::redirect::{Callback, RedirectFlow};
pub use key::TokenKey;
pub use manager::{Logout, ManagerConfig, TokenManager, TokenManagerBuilder};
pub use memory::MemoryTokenStore;
#[cfg(feature = "reqwest")]
pub use retry::RetryPolicy;
pub use secret::{AccessToken, ClientSecret, Password, RefreshToken, SecretUrl};
pub use token::{GrantKind, TokenSet};

/// `mockall` mocks of the three traits, for unit tests of code built on them.
#[cfg(feature = "mock")]
pub mod mock {
    pub use crate::contract::{MockProvider, MockTokenStore};
    pub use crate::flow::MockFlow;
}
