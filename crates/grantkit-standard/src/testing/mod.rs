//! Test support (feature `testing`): the independent authorization server
//! `grantkit-standard` is proven against, and the `ProviderHarness`es that run grantkit's
//! provider suite on it.
//!
//! - **The server** is [`oidc-provider`](https://www.npmjs.com/package/oidc-provider)
//!   `9.13.3` from npm — an OpenID Certified implementation nobody here wrote — started by
//!   the crate's own launcher (`authserver/authserver.mjs`) with in-memory storage, the
//!   fixed [test clients](BASIC_CLIENT), one [test user](TEST_ACCOUNT) and a headless
//!   consent step. [`ensure_installed`] runs `npm ci` from the committed lock file when
//!   `node_modules` is missing (a lock file keeps concurrent test binaries from installing
//!   at once); Node.js 20.18 or newer and npm must be on `PATH`.
//! - [`AuthServer::start`] launches it on a free loopback port, reads its ready line, and
//!   puts a [`FaultProxy`] in front of it; the proxy's address is the issuer. Dropping the
//!   `AuthServer` kills the process.
//! - The proxy counts and records token requests, answers with injected faults in the
//!   server's place (a faulted request never reaches it), and can pair two token requests
//!   so that a race is replayed the same way every time.
//! - [`harnesses`] gives one [`StandardHarness`] per [`HarnessVariant`], each with its own
//!   server, for `cargo xtask conformance`.
//!
//! The server keeps its data in an LRU of a few thousand entries: start a fresh server per
//! test (about 0.3 s) rather than sharing one across a long run.

mod browser;
mod harness;
mod install;
mod proxy;
mod server;

pub use harness::{
    HARNESS_TIMEOUT, HarnessVariant, StandardHarness, harness, harnesses, try_harnesses,
};
pub use install::{MIN_NODE_VERSION, OIDC_PROVIDER_VERSION, authserver_dir, ensure_installed};
pub use proxy::{
    API_PATHS, CannedAnswer, FaultProxy, REVOCATION_PATH, Route, TOKEN_PATH, TokenRequest,
};
pub use server::{AuthServer, AuthServerOptions};

use std::fmt;

/// A client registered with the test server.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TestClient {
    /// The client id.
    pub id: &'static str,
    /// The client secret.
    pub secret: &'static str,
}

impl fmt::Debug for TestClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestClient")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A code-flow client that authenticates with `client_secret_basic`. Its secret holds
/// every character RFC 6749 §2.3.1's form-urlencoding changes (`: @ + % & = /`, a space):
/// the server refuses it sent unencoded.
pub const BASIC_CLIENT: TestClient = TestClient {
    id: "grantkit-basic",
    secret: "b:a@s+i%c&s=e/c r~e!t",
};

/// A code-flow client registered for `client_secret_post`.
pub const POST_CLIENT: TestClient = TestClient {
    id: "grantkit-post",
    secret: "post-secret-0123456789",
};

/// A service client: client credentials only.
pub const SERVICE_CLIENT: TestClient = TestClient {
    id: "grantkit-service",
    secret: "service-secret-0123456789",
};

/// A device client: the device authorization grant (RFC 8628) and refresh only.
pub const DEVICE_CLIENT: TestClient = TestClient {
    id: "grantkit-device",
    secret: "device-secret-0123456789",
};

/// The `sub` of the one test user every authorization signs in as.
pub const TEST_ACCOUNT: &str = "grantkit-test-user";
/// The `username` the test server's introspection answers carry for the test user.
pub const TEST_USERNAME: &str = "grantkit-tester";

/// A redirect URI the code-flow clients may use. The server accepts any port on
/// `http://127.0.0.1/callback` (RFC 8252 §7.3), so a loopback listener's URI works too.
pub const REDIRECT_URI: &str = "http://127.0.0.1:8765/callback";

/// Why the test server could not be installed, started or driven.
#[derive(Debug)]
#[non_exhaustive]
pub enum AuthServerError {
    /// `node` is not on `PATH`.
    NodeMissing,
    /// `node` is older than [`MIN_NODE_VERSION`].
    NodeTooOld {
        /// What `node --version` printed.
        found: String,
    },
    /// `npm` is not on `PATH`.
    NpmMissing,
    /// `npm ci` failed, or left no server behind.
    Install(String),
    /// The server did not start.
    Start(String),
    /// A control request failed.
    Control(String),
    /// Playing the browser failed.
    Browser(String),
}

impl fmt::Display for AuthServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (major, minor) = MIN_NODE_VERSION;
        match self {
            Self::NodeMissing => write!(
                f,
                "Node.js (`node`) is not on PATH: the test authorization server needs Node.js \
                 {major}.{minor} or newer and npm (Debian: apt-get install nodejs npm)"
            ),
            Self::NodeTooOld { found } => write!(
                f,
                "Node.js {found} is too old: the test authorization server (oidc-provider \
                 {OIDC_PROVIDER_VERSION}) needs {major}.{minor} or newer"
            ),
            Self::NpmMissing => f.write_str(
                "npm is not on PATH: it installs the test authorization server (Debian: \
                 apt-get install npm)",
            ),
            Self::Install(why) => write!(f, "installing the test authorization server: {why}"),
            Self::Start(why) => write!(f, "starting the test authorization server: {why}"),
            Self::Control(why) => write!(f, "controlling the test authorization server: {why}"),
            Self::Browser(why) => write!(f, "the headless browser: {why}"),
        }
    }
}

impl std::error::Error for AuthServerError {}
