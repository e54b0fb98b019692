#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod clock;
pub mod codec;
mod error;
mod flow;
mod key;
mod manager;
mod memory;
mod net;
mod pending;
mod provider;
mod secret;
mod store;
pub mod text;
mod token;

#[cfg(feature = "reqwest")]
mod client;
#[cfg(feature = "reqwest")]
pub mod http;
#[cfg(feature = "loopback")]
pub mod loopback;

#[cfg(feature = "reqwest")]
pub use client::{AuthorizedClient, DEFAULT_MAX_BODY};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{CallbackError, Error, Result, Source};
pub use flow::{
    Callback, CallbackParams, ClientCredentialsFlow, DEFAULT_PENDING_TTL, Flow, FlowKind,
    FlowStart, MAX_CALLBACK_LEN, ParamLocation, PasswordFlow, RedirectFlow,
};
#[cfg(feature = "reqwest")]
pub use http::read_capped;
pub use key::{TokenKey, check_account};
pub use manager::{
    Authorization, Logout, ManagerConfig, REFRESH_OUTCOME_UNKNOWN, REVOCATION_PENDING,
    TokenManager, TokenManagerBuilder,
};
pub use memory::MemoryTokenStore;
pub use net::{ensure_safe_destination, is_loopback};
pub use pending::PendingAuthorization;
pub use provider::{
    ApiResponse, AuthorizationRequest, Capabilities, Grant, Issuer, Provider, Renewal,
    ResponseClass, Revocation, bearer_header, classify_rfc6750, retry_after,
    www_authenticate_param,
};
pub use secret::{
    AccessToken, AuthorizationCode, ClientSecret, Password, PkceVerifier, REDACTED, RefreshToken,
    SecretUrl, StateHash, StateToken,
};
pub use store::{
    KeyFilter, Lease, Precondition, StoreCapabilities, TokenStore, Version, Versioned,
};
pub use token::{GrantKind, TokenSet};

/// `mockall` mocks of the three traits, for unit tests of code built on them.
#[cfg(feature = "mock")]
pub mod mock {
    pub use crate::flow::MockFlow;
    pub use crate::provider::MockProvider;
    pub use crate::store::MockTokenStore;
}
