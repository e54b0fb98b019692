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
