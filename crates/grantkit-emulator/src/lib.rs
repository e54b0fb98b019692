#![doc = include_str!("../README.md")]

mod clock;
mod control;
mod faults;
mod joindin;
mod joinme;
mod server;
pub mod switches;
mod telemetry;
mod time;
mod wire;

pub use clock::EmulatorClock;
pub use faults::{Fault, FaultId, FaultKind, FaultRule, Trigger};
pub use joindin::{
    CommentRateLimit, JoindinBuilder, JoindinClient, JoindinEmulator, JoindinEndpoint,
    JoindinEvent, JoindinFixtures, JoindinQuirks, JoindinTalk, JoindinUser,
};
pub use joinme::{
    InactiveBody, IssuedTokens, JoinMeApp, JoinMeBuilder, JoinMeConference, JoinMeEmulator,
    JoinMeEndpoint, JoinMeFixtures, JoinMeGrant, JoinMePlan, JoinMeQuirks, JoinMeRateLimit,
    JoinMeUser, TokenStatus,
};
pub use telemetry::{Counters, RequestRecord};

/// Makes the consent page decide at once, so a flow can be driven by a plain HTTP client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AutoConsent {
    /// Approve as this user: a Joind.in username or a join.me e-mail address.
    Approve(String),
    /// Decline.
    Deny,
}
