//! `DeviceAuthorization`: a device authorization grant in progress (RFC 8628) — the code
//! the user enters on another device, and what polling for the tokens needs.

use crate::secret::DeviceCode;
use std::fmt;
use std::time::{Duration, SystemTime};

/// How long to wait between polls when the server names no interval (RFC 8628 §3.2).
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// A device authorization in progress: show [`user_code`](Self::user_code) and
/// [`verification_uri`](Self::verification_uri) to the user, then poll with
/// [`TokenManager::poll_device_authorization`](crate::TokenManager::poll_device_authorization)
/// every [`interval`](Self::interval) (or wait with
/// [`complete_device_authorization`](crate::TokenManager::complete_device_authorization)).
///
/// The device code that fetches the tokens stays inside: `Debug` redacts it.
#[derive(Clone)]
pub struct DeviceAuthorization {
    pub(crate) device_code: DeviceCode,
    user_code: String,
    verification_uri: String,
    verification_uri_complete: Option<String>,
    expires_at: SystemTime,
    pub(crate) interval: Duration,
    pub(crate) scopes: Vec<String>,
}

impl DeviceAuthorization {
    /// What a provider read from its device authorization endpoint (RFC 8628 §3.2), at
    /// `now`. A missing `interval` is five seconds.
    pub fn new(
        device_code: DeviceCode,
        user_code: impl Into<String>,
        verification_uri: impl Into<String>,
        verification_uri_complete: Option<String>,
        expires_in: Duration,
        interval: Option<Duration>,
        now: SystemTime,
    ) -> Self {
        Self {
            device_code,
            user_code: user_code.into(),
            verification_uri: verification_uri.into(),
            verification_uri_complete,
            expires_at: now + expires_in,
            interval: interval
                .unwrap_or(DEFAULT_INTERVAL)
                .max(Duration::from_secs(1)),
            scopes: Vec::new(),
        }
    }

    /// The code the user enters at the verification URI.
    pub fn user_code(&self) -> &str {
        &self.user_code
    }

    /// Where the user enters the code.
    pub fn verification_uri(&self) -> &str {
        &self.verification_uri
    }

    /// The verification URI with the code already in it, where the server gives one (for
    /// a QR code or a link).
    pub fn verification_uri_complete(&self) -> Option<&str> {
        self.verification_uri_complete.as_deref()
    }

    /// When the codes expire.
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// How long the codes live from now.
    pub fn expires_in(&self) -> Duration {
        self.expires_at
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    }

    /// How long to wait before the next poll; the server may lengthen it (`slow_down`).
    pub fn interval(&self) -> Duration {
        self.interval
    }
}

impl fmt::Debug for DeviceAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceAuthorization")
            .field("device_code", &self.device_code)
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri)
            .field("expires_at", &self.expires_at)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}
