//! `Session`: a profile made real — its provider, its store, and the token manager over
//! both — and the account a command works on.

use crate::config::{self, Endpoints, Profile, ProviderKind, SecretSource};
use crate::fail::Failure;
use grantkit::provider::joindin::JoindinProvider;
use grantkit::provider::joinme::JoinMeProvider;
use grantkit::provider::standard::{ServerMetadata, StandardProvider};
use grantkit::store::encrypted::{EncryptedTokenStore, Keyring, SealingKey};
use grantkit::store::file::FileTokenStore;
use grantkit::store::redis::RedisTokenStore;
use grantkit::store::sql::SqlTokenStore;
use grantkit::url::Url;
use grantkit::{ClientSecret, Provider, TokenKey, TokenManager, TokenStore};
use std::io::BufRead as _;
use std::sync::Arc;

/// The provider of a session, typed where a command needs more than the trait.
pub(crate) enum Service {
    Joindin(Arc<JoindinProvider>),
    Joinme(Arc<JoinMeProvider>),
    Standard(Arc<StandardProvider>),
}

impl Service {
    pub(crate) fn provider(&self) -> Arc<dyn Provider> {
        match self {
            Self::Joindin(p) => p.clone(),
            Self::Joinme(p) => p.clone(),
            Self::Standard(p) => p.clone(),
        }
    }
}

/// A profile opened: what every command works with.
pub(crate) struct Session {
    pub(crate) name: String,
    pub(crate) profile: Profile,
    pub(crate) service: Service,
    pub(crate) manager: TokenManager,
    /// Where the tokens live, as shown to the user (never a password in a URL).
    pub(crate) store: String,
}

impl Session {
    /// Opens `name`: reads its client secret, builds its provider and store.
    pub(crate) async fn open(name: &str, profile: &Profile) -> Result<Self, Failure> {
        profile.check(name)?;
        let fail = |err| Failure::from_error(err, name);
        let secret = match &profile.client_secret {
            Some(source) => read_secret(source, name)?,
            None => ClientSecret::new(""),
        };
        let service = match profile.provider {
            ProviderKind::Joindin => {
                let mut builder = JoindinProvider::builder(profile.client_id.clone(), secret);
                if let Some(base) = &profile.base_url {
                    builder = builder.base_url(base);
                }
                Service::Joindin(Arc::new(builder.build().map_err(fail)?))
            }
            ProviderKind::Joinme => {
                let mut builder = JoinMeProvider::builder(profile.client_id.clone(), secret);
                if let Some(base) = &profile.base_url {
                    builder = builder.base_url(base);
                }
                Service::Joinme(Arc::new(builder.build().map_err(fail)?))
            }
            ProviderKind::Standard => {
                let builder = StandardProvider::builder(profile.client_id.clone(), secret)
                    .id(format!("standard:{name}"));
                let builder = match (&profile.endpoints, &profile.issuer) {
                    (Some(endpoints), issuer) => {
                        builder.metadata(manual_metadata(endpoints, issuer.as_deref(), name)?)
                    }
                    (None, issuer) => builder.issuer(issuer.clone().unwrap_or_default()),
                };
                Service::Standard(Arc::new(builder.build().await.map_err(fail)?))
            }
        };
        let (store, shown) = open_store(name, profile).await?;
        let manager = TokenManager::builder(service.provider(), store)
            .build()
            .map_err(fail)?;
        Ok(Self {
            name: name.to_owned(),
            profile: profile.clone(),
            service,
            manager,
            store: shown,
        })
    }

    /// The account to work on: `--account`, else the profile's only one.
    pub(crate) async fn account(&self, account: Option<&str>) -> Result<TokenKey, Failure> {
        match account {
            Some(account) => Ok(self.manager.key_for(account)),
            None => self.manager.account().await.map_err(|err| self.fail(err)),
        }
    }

    /// A grantkit error, with the next step for this profile.
    pub(crate) fn fail(&self, err: grantkit::Error) -> Failure {
        Failure::from_error(err, &self.name)
    }
}

/// The store a profile names: a directory, `redis://…`, `postgres://…`, `sqlite:…`, or the
/// default directory, sealed when the profile has a store key; and how to show it (never a
/// password in a URL, never a key).
pub(crate) async fn open_store(
    name: &str,
    profile: &Profile,
) -> Result<(Arc<dyn TokenStore>, String), Failure> {
    let fail = |err| Failure::from_error(err, name);
    // The key first: a missing key fails before the store is opened.
    let keys = profile
        .store_key
        .as_ref()
        .map(|key| match (&key.env, &key.file) {
            (Some(var), _) => SealingKey::from_env(&key.id, var),
            (None, Some(path)) => SealingKey::from_file(&key.id, path),
            (None, None) => Err(grantkit::Error::configuration(
                "the store key names no source",
            )),
        })
        .transpose()
        .map_err(fail)?
        .map(Keyring::new);
    let (store, shown) = match profile.store.as_deref() {
        Some(urls) if urls.starts_with("redis://") || urls.starts_with("rediss://") => {
            let store = RedisTokenStore::connect(urls).await.map_err(fail)?;
            (sealed(store, keys), redacted_url(urls))
        }
        Some(url) if is_sql_url(url) => {
            let store = SqlTokenStore::connect(url).await.map_err(fail)?;
            (sealed(store, keys), redacted_url(url))
        }
        Some(dir) => {
            let store = FileTokenStore::open(dir).await.map_err(fail)?;
            (sealed(store, keys), dir.to_owned())
        }
        None => {
            let dir = config::default_store_dir()?;
            let store = FileTokenStore::open(&dir).await.map_err(fail)?;
            (sealed(store, keys), dir.display().to_string())
        }
    };
    let shown = match &profile.store_key {
        Some(key) => format!("{shown} (sealed with key `{}`)", key.id),
        None => shown,
    };
    Ok((store, shown))
}

/// `store`, sealed with `keys` when there are any.
fn sealed<S: TokenStore + 'static>(store: S, keys: Option<Keyring>) -> Arc<dyn TokenStore> {
    match keys {
        Some(keys) => Arc::new(EncryptedTokenStore::new(store, keys)),
        None => Arc::new(store),
    }
}

/// Whether a store names a SQL database rather than a directory.
fn is_sql_url(store: &str) -> bool {
    ["postgres://", "postgresql://", "sqlite:"]
        .iter()
        .any(|scheme| store.starts_with(scheme))
}

/// The client secret from where the profile says; never from the command line.
fn read_secret(source: &SecretSource, profile: &str) -> Result<ClientSecret, Failure> {
    let read = match source {
        SecretSource::Env(name) => std::env::var(name).map_err(|_| {
            format!("the environment variable {name} (the client secret of profile `{profile}`) is not set")
        }),
        SecretSource::File(path) => std::fs::read_to_string(path)
            .map(|text| text.lines().next().unwrap_or_default().to_owned())
            .map_err(|err| format!("cannot read the client secret from {}: {err}", path.display())),
        SecretSource::Stdin => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map(|_| line.trim_end_matches(['\r', '\n']).to_owned())
                .map_err(|err| format!("cannot read the client secret from standard input: {err}"))
        }
    };
    match read {
        Ok(secret) if !secret.is_empty() => Ok(ClientSecret::new(secret)),
        Ok(_) => Err(Failure::usage(format!(
            "the client secret of profile `{profile}` ({source}) is empty"
        ))),
        Err(message) => Err(Failure::usage(message)),
    }
}

/// Metadata from a profile's explicit endpoints.
fn manual_metadata(
    endpoints: &Endpoints,
    issuer: Option<&str>,
    profile: &str,
) -> Result<ServerMetadata, Failure> {
    let url = |what: &str, text: &str| {
        Url::parse(text).map_err(|_| {
            Failure::usage(format!(
                "profile `{profile}`: the {what} endpoint is not a URL"
            ))
        })
    };
    let mut metadata = ServerMetadata::manual(url("token", &endpoints.token)?);
    if let Some(issuer) = issuer {
        metadata = metadata.with_issuer(issuer);
    }
    if let Some(text) = &endpoints.authorization {
        metadata = metadata.with_authorization_endpoint(url("authorization", text)?);
    }
    if let Some(text) = &endpoints.device_authorization {
        metadata = metadata.with_device_authorization_endpoint(url("device authorization", text)?);
    }
    if let Some(text) = &endpoints.revocation {
        metadata = metadata.with_revocation_endpoint(url("revocation", text)?);
    }
    if let Some(text) = &endpoints.userinfo {
        metadata = metadata.with_userinfo_endpoint(url("userinfo", text)?);
    }
    if let Some(text) = &endpoints.introspection {
        metadata = metadata.with_introspection_endpoint(url("introspection", text)?);
    }
    Ok(metadata)
}

/// A store URL without a password (`redis://:secret@host` → `redis://:…@host`) or a
/// query (which may carry one: `?password=`).
pub(crate) fn redacted_url(urls: &str) -> String {
    urls.split(',')
        .map(|text| match Url::parse(text.trim()) {
            Ok(mut url) => {
                if url.password().is_some() {
                    let _ = url.set_password(Some("…"));
                }
                if url.query().is_some() {
                    url.set_query(Some("…"));
                }
                url.to_string()
            }
            Err(_) => "(an unreadable URL)".to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A profile's store as it may be shown: a URL redacted, a directory as it is.
pub(crate) fn shown_store(store: &str) -> String {
    if store.contains("://") || is_sql_url(store) {
        redacted_url(store)
    } else {
        store.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_are_shown_without_their_password() {
        assert_eq!(
            redacted_url("redis://:hunter2@127.0.0.1:6379/0"),
            "redis://:%E2%80%A6@127.0.0.1:6379/0"
        );
        assert!(!redacted_url("redis://u:hunter2@a:1,redis://u:hunter2@b:2").contains("hunter2"));
        let shown = shown_store("postgres://app:hunter2@db/app?password=hunter3&sslmode=require");
        assert!(!shown.contains("hunter"), "{shown}");
        assert_eq!(shown_store("/var/lib/tokens"), "/var/lib/tokens");
    }
}
