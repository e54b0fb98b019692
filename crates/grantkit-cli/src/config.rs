//! Profiles: the TOML file that says how to reach each service.
//!
//! ```toml
//! [profiles.joinme]
//! provider = "joinme"
//! client_id = "abcdefghijklmnopqrstuvwx"
//! client_secret = { env = "JOINME_CLIENT_SECRET" }
//! redirect_uri = "http://127.0.0.1:8765/callback"
//! scopes = ["user_info", "scheduler"]
//! ```
//!
//! A client secret is never written here: a profile names where it comes from — an
//! environment variable, a file, or standard input.

use crate::fail::Failure;
use grantkit::store::encrypted::SealingKey;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// The profiles file.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// Profiles by name.
    #[serde(default)]
    pub(crate) profiles: BTreeMap<String, Profile>,
}

/// Which provider a profile uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ProviderKind {
    /// Joind.in (password grant).
    Joindin,
    /// join.me (authorization code, refresh, Expire Access).
    Joinme,
    /// Any RFC 6749 server (discovery or explicit endpoints).
    Standard,
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Joindin => "joindin",
            Self::Joinme => "joinme",
            Self::Standard => "standard",
        })
    }
}

/// Where a client secret comes from. Never the secret itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SecretSource {
    /// The environment variable of this name.
    Env(String),
    /// The first line of this file.
    File(PathBuf),
    /// The first line of standard input.
    Stdin,
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env(name) => write!(f, "environment variable {name}"),
            Self::File(path) => write!(f, "file {}", path.display()),
            Self::Stdin => f.write_str("standard input"),
        }
    }
}

/// The key that seals a profile's stored tokens, named by where it lives: never written in
/// the profiles file, never taken from the command line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoreKey {
    /// The key's id, kept with every record it seals: a new key needs a new id.
    pub(crate) id: String,
    /// An environment variable holding the key (64 hex digits, or the base64 of 32 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) env: Option<String>,
    /// A file holding the key (32 bytes, or them in hex or base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) file: Option<PathBuf>,
}

impl fmt::Display for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key `{}` from ", self.id)?;
        match (&self.env, &self.file) {
            (Some(name), _) => write!(f, "environment variable {name}"),
            (None, Some(path)) => write!(f, "file {}", path.display()),
            (None, None) => f.write_str("nowhere"),
        }
    }
}

/// The endpoints of a standard server that publishes no metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Endpoints {
    pub(crate) token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) authorization: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) device_authorization: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) revocation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) userinfo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) introspection: Option<String>,
}

/// How to reach one service as one client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Profile {
    pub(crate) provider: ProviderKind,
    pub(crate) client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) client_secret: Option<SecretSource>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) scopes: Vec<String>,
    /// The redirect URI registered with the service (a loopback one for `login`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) redirect_uri: Option<String>,
    /// Joind.in and join.me: every endpoint from one base URL (an emulator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) base_url: Option<String>,
    /// Standard: the issuer to discover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) issuer: Option<String>,
    /// Standard: explicit endpoints, for a server without discovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) endpoints: Option<Endpoints>,
    /// Joind.in: the user who logs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) username: Option<String>,
    /// Where tokens live: a directory, `redis://…` (several comma-separated URLs for a
    /// Redis Cluster), `postgres://…` or `sqlite:path`. Default: a private directory under
    /// the data directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) store: Option<String>,
    /// Seal the stored tokens with this key (encryption at rest, whatever the store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) store_key: Option<StoreKey>,
}

impl Profile {
    /// Checks what each provider needs.
    pub(crate) fn check(&self, name: &str) -> Result<(), Failure> {
        let missing = |what: &str| {
            Failure::usage(format!(
                "profile `{name}` has no {what}: run `grantkit profile add {name} …` again with it"
            ))
        };
        if self.client_id.trim().is_empty() {
            return Err(missing("client id"));
        }
        if let Some(key) = &self.store_key {
            if key.env.is_some() == key.file.is_some() {
                return Err(Failure::usage(format!(
                    "profile `{name}`: its store key comes from an environment variable or a file, one of the two"
                )));
            }
            if !SealingKey::is_valid_id(&key.id) {
                return Err(Failure::usage(format!(
                    "profile `{name}`: a store key id is 1 to 32 characters of A-Z, a-z, 0-9, `_` and `-`"
                )));
            }
        }
        match self.provider {
            ProviderKind::Joinme if self.client_secret.is_none() => Err(missing("client secret")),
            ProviderKind::Standard if self.issuer.is_none() && self.endpoints.is_none() => {
                Err(missing("issuer (or endpoints)"))
            }
            ProviderKind::Standard if self.base_url.is_some() => Err(Failure::usage(format!(
                "profile `{name}`: a standard profile names an issuer or endpoints, not a base URL"
            ))),
            _ => Ok(()),
        }
    }
}

/// Where the profiles file is: `--config`, else `GRANTKIT_CONFIG`, else
/// `$XDG_CONFIG_HOME/grantkit/config.toml`.
pub(crate) fn path(explicit: Option<&Path>) -> Result<PathBuf, Failure> {
    if let Some(path) = explicit {
        return Ok(path.to_owned());
    }
    dirs::config_dir()
        .map(|dir| dir.join("grantkit").join("config.toml"))
        .ok_or_else(|| {
            Failure::usage("no configuration directory: set GRANTKIT_CONFIG or pass --config")
        })
}

/// Where tokens live by default: `$XDG_DATA_HOME/grantkit/tokens`.
pub(crate) fn default_store_dir() -> Result<PathBuf, Failure> {
    dirs::data_dir()
        .map(|dir| dir.join("grantkit").join("tokens"))
        .ok_or_else(|| Failure::usage("no data directory: name a store in the profile"))
}

impl Config {
    /// Reads the file; a missing file is an empty configuration.
    pub(crate) fn load(path: &Path) -> Result<Self, Failure> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(err) => {
                return Err(Failure::usage(format!(
                    "cannot read {}: {err}",
                    path.display()
                )));
            }
        };
        toml::from_str(&text).map_err(|err| {
            Failure::usage(format!(
                "{} is not a valid profiles file: {}",
                path.display(),
                err.message()
            ))
        })
    }

    /// Writes the file atomically (a private temporary file renamed over it), in a
    /// private directory.
    pub(crate) fn save(&self, path: &Path) -> Result<(), Failure> {
        let fail = |what: &str, err: std::io::Error| {
            Failure::usage(format!("cannot {what} {}: {err}", path.display()))
        };
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        if let Some(dir) = dir
            && !dir.exists()
        {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| fail("create the directory of", e))?;
        }
        let text = toml::to_string_pretty(self)
            .map_err(|err| Failure::usage(format!("cannot write the profiles: {err}")))?;
        let tmp = path.with_extension("toml.tmp");
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| fail("write", e))?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))
            .map_err(|e| fail("write", e))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| fail("write", e))?;
        fs::rename(&tmp, path).map_err(|e| fail("replace", e))
    }

    /// The profile `name`, or an error that lists the others.
    pub(crate) fn profile(&self, name: &str) -> Result<&Profile, Failure> {
        self.profiles.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.profiles.keys().map(String::as_str).collect();
            Failure::usage(if known.is_empty() {
                format!("no profile `{name}`: add one with `grantkit profile add {name} --provider …`")
            } else {
                format!(
                    "no profile `{name}` (profiles: {}); add it with `grantkit profile add {name} --provider …`",
                    known.join(", ")
                )
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_round_trips_and_names_no_secret() {
        let mut config = Config::default();
        config.profiles.insert(
            "joinme".into(),
            Profile {
                provider: ProviderKind::Joinme,
                client_id: "key".into(),
                client_secret: Some(SecretSource::Env("JOINME_SECRET".into())),
                scopes: vec!["user_info".into()],
                redirect_uri: Some("http://127.0.0.1:8765/callback".into()),
                base_url: None,
                issuer: None,
                endpoints: None,
                username: None,
                store: None,
                store_key: None,
            },
        );
        let text = toml::to_string_pretty(&config).unwrap();
        // The secret is named by where it lives, never written down.
        assert!(text.contains("env = \"JOINME_SECRET\""), "{text}");
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back.profiles, config.profiles);
        let stdin: Profile =
            toml::from_str("provider = \"joindin\"\nclient_id = \"k\"\nclient_secret = \"stdin\"")
                .unwrap();
        assert_eq!(stdin.client_secret, Some(SecretSource::Stdin));
    }

    #[test]
    fn files_are_private_and_unknown_keys_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conf/config.toml");
        Config::default().save(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        fs::write(
            &path,
            "[profiles.x]\nprovider = \"joinme\"\nclient_id = \"k\"\nsecret = \"oops\"\n",
        )
        .unwrap();
        let err = Config::load(&path).unwrap_err();
        assert!(
            err.to_string().contains("not a valid profiles file"),
            "{err}"
        );
        assert!(!err.to_string().contains("oops"));
    }
}
