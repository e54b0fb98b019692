//! The traits a backend implements: [`Provider`] and [`TokenStore`] (and, in
//! [`crate::flow`], `Flow`). Re-exported at the crate root.

mod provider;
mod store;

pub use provider::{Provider, Revocation};
pub use store::TokenStore;

#[cfg(feature = "mock")]
pub use provider::MockProvider;
#[cfg(feature = "mock")]
pub use store::MockTokenStore;
