#![doc = include_str!("../README.md")]

mod key;
mod seal;
mod store;

pub use key::{Keyring, SealingKey};
pub use store::{EncryptedTokenStore, ResealReport};
