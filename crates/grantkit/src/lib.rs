#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "reqwest")]
pub use grantkit_core::AuthorizedClient;
#[cfg(feature = "loopback")]
pub use grantkit_core::loopback;
pub use grantkit_core::{
    AccessToken, Callback, CallbackError, ClientSecret, Error, GrantKind, Logout, ManagerConfig,
    MemoryTokenStore, Password, Provider, RedirectFlow, RefreshToken, Result, Revocation,
    SecretUrl, TokenKey, TokenManager, TokenManagerBuilder, TokenSet, TokenStore,
};
pub use grantkit_core::{clock, flow};

/// The `reqwest` grantkit is built on: build the clients you hand to grantkit with it, and
/// no second version of reqwest ends up in your program.
pub use reqwest;
/// The `url` grantkit's signatures use.
pub use url;

/// Token stores, one cargo feature each, and what a store author needs
/// ([`grantkit_core::store`]).
pub mod store {
    pub use grantkit_core::store::*;
    /// `EncryptedTokenStore`: any store's records sealed at rest (feature `store-encrypted`).
    #[cfg(feature = "store-encrypted")]
    pub use grantkit_store_encrypted as encrypted;
    /// `FileTokenStore` (feature `store-file`).
    #[cfg(feature = "store-file")]
    pub use grantkit_store_file as file;
    /// `RedisTokenStore` (feature `store-redis`).
    #[cfg(feature = "store-redis")]
    pub use grantkit_store_redis as redis;
    /// `SqlTokenStore` on PostgreSQL or SQLite (feature `store-sql`).
    #[cfg(feature = "store-sql")]
    pub use grantkit_store_sql as sql;
}

/// Providers, one cargo feature each, and what a provider author needs
/// ([`grantkit_core::provider`]).
pub mod provider {
    pub use grantkit_core::provider::*;
    /// `JoindinProvider` and its typed API client (feature `joindin`).
    #[cfg(feature = "joindin")]
    pub use grantkit_joindin as joindin;
    /// `JoinMeProvider` and its typed API client (feature `joinme`).
    #[cfg(feature = "joinme")]
    pub use grantkit_joinme as joinme;
    /// `StandardProvider` for any RFC 6749 server (feature `standard`).
    #[cfg(feature = "standard")]
    pub use grantkit_standard as standard;
}

/// The workspace README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct WorkspaceReadme;
