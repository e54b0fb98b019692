#![doc = include_str!("../README.md")]

mod classify;
mod client;
mod model;
mod provider;
mod scope;
#[cfg(feature = "testing")]
pub mod testing;

pub use classify::classify_response;
pub use client::{DEFAULT_API_TIMEOUT, JoinMeClient};
pub use model::{
    ConferenceSettings, Meeting, MeetingId, MeetingUpdate, NewMeeting, Presenter, StartMeeting,
    StartedMeeting, User, ViewerMode, Webhook, Webhooks, WebhooksStatus,
};
pub use provider::{
    DEFAULT_API_BASE, DEFAULT_AUTHORIZE_URL, DEFAULT_EXPIRE_ACCESS_URL,
    DEFAULT_RENEW_AUTHORIZATION_URL, DEFAULT_REQUEST_TIMEOUT, DEFAULT_TOKEN_LIFETIME,
    DEFAULT_TOKEN_URL, Endpoints, JoinMeProvider, JoinMeProviderBuilder, PROVIDER_ID,
};
pub use scope::{Scope, Scopes};
