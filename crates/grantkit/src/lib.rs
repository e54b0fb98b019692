#![doc = include_str!("../README.md")]

pub use grantkit_core::*;

/// Token stores beyond the in-memory one, one cargo feature each.
pub mod store {
    pub use grantkit_core::MemoryTokenStore;
    /// `FileTokenStore` (feature `store-file`).
    #[cfg(feature = "store-file")]
    pub use grantkit_store_file as file;
    /// `RedisTokenStore` (feature `store-redis`).
    #[cfg(feature = "store-redis")]
    pub use grantkit_store_redis as redis;
}

/// Providers, one cargo feature each.
pub mod provider {
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
