//! Where tokens may travel: HTTPS, or plain HTTP only to the loopback interface.

use crate::error::{Error, Result};
use url::{Host, Url};

/// Checks that a token may travel to `url`: over HTTPS, or over plain HTTP only to the
/// loopback interface.
pub fn ensure_safe_destination(url: &Url) -> Result<()> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        _ => Err(Error::configuration(format!(
            "refusing to send a token to {}://{}: only HTTPS, or plain HTTP to a loopback address",
            url.scheme(),
            url.host_str().unwrap_or("")
        ))),
    }
}

/// Whether `url` names the loopback interface.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}
