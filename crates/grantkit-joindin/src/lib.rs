#![doc = include_str!("../README.md")]

mod client;
mod lenient;
pub mod model;
mod provider;
#[cfg(feature = "testing")]
pub mod testing;
mod wire;

pub use client::{
    Access, Anonymous, EventFilter, EventQuery, JoindinClient, NewComment, Paging, PostedComment,
    SignedIn, is_duplicate_comment,
};
pub use model::{
    Event, EventComment, EventTrack, Host, Language, Page, Talk, TalkComment, TalkType, User,
    UserRating, WhoAmI,
};
pub use provider::{
    ApplicationTokensRevoked, DEFAULT_API_BASE, DEFAULT_TIMEOUT, DEFAULT_WEB_BASE, JoindinProvider,
    JoindinProviderBuilder, OBTAINED_AT_EXTRA, PROVIDER_ID, USER_URI_EXTRA, obtained_at,
};
