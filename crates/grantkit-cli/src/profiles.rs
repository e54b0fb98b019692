//! `grantkit profile add | list | remove`: edits the profiles file, so nobody has to.

use crate::config::{Config, Endpoints, Profile, ProviderKind, SecretSource, StoreKey};
use crate::fail::Failure;
use crate::output::Output;
use clap::{ArgGroup, Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub(crate) enum ProfileCommand {
    /// Adds a profile (or, with --force, replaces one).
    Add(Box<AddArgs>),
    /// Lists the profiles; client secrets show only where they come from.
    List,
    /// Removes a profile (its stored grants stay until `grantkit logout`).
    Remove {
        /// The profile.
        name: String,
    },
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("secret").args(["client_secret_env", "client_secret_file", "client_secret_stdin"])))]
#[command(group(ArgGroup::new("store_key").args(["store_key_file", "store_key_env"])))]
pub(crate) struct AddArgs {
    /// The profile's name.
    name: String,
    /// The service.
    #[arg(long, value_enum)]
    provider: ProviderKind,
    /// The OAuth client id (join.me: the API key).
    #[arg(long)]
    client_id: String,
    /// Read the client secret from this environment variable on every run.
    #[arg(long, value_name = "VAR")]
    client_secret_env: Option<String>,
    /// Read the client secret from the first line of this file on every run.
    #[arg(long, value_name = "PATH")]
    client_secret_file: Option<PathBuf>,
    /// Read the client secret from the first line of standard input on every run.
    #[arg(long)]
    client_secret_stdin: bool,
    /// A scope to ask for (repeat for more).
    #[arg(long = "scope", value_name = "SCOPE")]
    scopes: Vec<String>,
    /// The redirect URI registered with the service, e.g. `http://127.0.0.1:8765/callback`
    /// (Joind.in and join.me compare it byte for byte).
    #[arg(long)]
    redirect_uri: Option<String>,
    /// Joind.in and join.me: every endpoint from this base URL (an emulator).
    #[arg(long)]
    base_url: Option<String>,
    /// A standard server's issuer, for discovery.
    #[arg(long)]
    issuer: Option<String>,
    /// A standard server without discovery: its token endpoint.
    #[arg(long)]
    token_endpoint: Option<String>,
    /// … its authorization endpoint.
    #[arg(long, requires = "token_endpoint")]
    authorization_endpoint: Option<String>,
    /// … its device authorization endpoint (RFC 8628).
    #[arg(long, requires = "token_endpoint")]
    device_authorization_endpoint: Option<String>,
    /// … its revocation endpoint (RFC 7009).
    #[arg(long, requires = "token_endpoint")]
    revocation_endpoint: Option<String>,
    /// … its userinfo endpoint.
    #[arg(long, requires = "token_endpoint")]
    userinfo_endpoint: Option<String>,
    /// Joind.in: the user name to log in as.
    #[arg(long)]
    username: Option<String>,
    /// Where tokens live: a directory, `redis://…` (comma-separated URLs for a Redis
    /// Cluster), `postgres://…` or `sqlite:path` [default: $XDG_DATA_HOME/grantkit/tokens].
    #[arg(long)]
    store: Option<String>,
    /// Seal the stored tokens (encryption at rest) with the key in this file: 32 bytes, or
    /// them as 64 hex digits or base64. Make one with
    /// `(umask 077; head -c 32 /dev/urandom > PATH)`.
    #[arg(long, value_name = "PATH")]
    store_key_file: Option<PathBuf>,
    /// Seal the stored tokens with the key in this environment variable (64 hex digits, or
    /// the base64 of 32 bytes), read on every run.
    #[arg(long, value_name = "VAR")]
    store_key_env: Option<String>,
    /// The sealing key's id, kept with every record it seals: give a new key a new id
    /// (1 to 32 of A-Z, a-z, 0-9, `_`, `-`) [default: cli-1].
    #[arg(long, value_name = "ID", requires = "store_key")]
    store_key_id: Option<String>,
    /// Replace a profile of the same name.
    #[arg(long)]
    force: bool,
}

pub(crate) async fn run(
    command: ProfileCommand,
    config_path: &Path,
    out: &Output,
) -> Result<ExitCode, Failure> {
    let mut config = Config::load(config_path)?;
    match command {
        ProfileCommand::Add(args) => {
            if config.profiles.contains_key(&args.name) && !args.force {
                return Err(Failure::usage(format!(
                    "profile `{}` exists; pass --force to replace it",
                    args.name
                )));
            }
            let name = args.name.clone();
            let profile = profile(*args)?;
            profile.check(&name)?;
            config.profiles.insert(name.clone(), profile);
            config.save(config_path)?;
            out.result(
                &serde_json::json!({"added": name, "config": config_path}),
                "",
            );
            out.done(&format!(
                "Added profile `{name}` to {}. Next: grantkit login {name}",
                config_path.display()
            ));
        }
        ProfileCommand::List => {
            let listed: Vec<serde_json::Value> = config
                .profiles
                .iter()
                .map(|(name, p)| {
                    serde_json::json!({
                        "name": name,
                        "provider": p.provider.to_string(),
                        "client_id": p.client_id,
                        "client_secret": p.client_secret.as_ref().map(ToString::to_string),
                        "scopes": p.scopes,
                        "redirect_uri": p.redirect_uri,
                        "base_url": p.base_url,
                        "issuer": p.issuer,
                        "store": p.store.as_deref().map(crate::session::shown_store),
                        "store_key": p.store_key.as_ref().map(ToString::to_string),
                    })
                })
                .collect();
            let text = config
                .profiles
                .iter()
                .map(|(name, p)| {
                    let secret = p
                        .client_secret
                        .as_ref()
                        .map(|s| format!(", secret from {s}"))
                        .unwrap_or_default();
                    let store = p
                        .store
                        .as_deref()
                        .map(|s| format!(", store {}", crate::session::shown_store(s)))
                        .unwrap_or_default();
                    let key = p
                        .store_key
                        .as_ref()
                        .map(|k| format!(", sealed with {k}"))
                        .unwrap_or_default();
                    format!(
                        "{name}\t{} client {}{secret}{store}{key}",
                        p.provider, p.client_id
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            out.result(&serde_json::Value::Array(listed), &text);
            if config.profiles.is_empty() {
                out.note("No profiles yet: add one with `grantkit profile add NAME --provider …`");
            }
        }
        ProfileCommand::Remove { name } => {
            if config.profiles.remove(&name).is_none() {
                return Err(config
                    .profile(&name)
                    .err()
                    .unwrap_or_else(|| Failure::usage(format!("no profile `{name}`"))));
            }
            config.save(config_path)?;
            out.result(&serde_json::json!({"removed": name}), "");
            out.done(&format!("Removed profile `{name}`."));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `path` made absolute: the profile is read from any working directory.
fn absolute(path: PathBuf) -> Result<PathBuf, Failure> {
    std::path::absolute(&path)
        .map_err(|err| Failure::usage(format!("cannot resolve {}: {err}", path.display())))
}

fn profile(args: AddArgs) -> Result<Profile, Failure> {
    let client_secret = match (args.client_secret_env, args.client_secret_file) {
        (Some(var), _) => Some(SecretSource::Env(var)),
        (None, Some(path)) => Some(SecretSource::File(absolute(path)?)),
        (None, None) if args.client_secret_stdin => Some(SecretSource::Stdin),
        (None, None) => None,
    };
    let endpoints = args.token_endpoint.map(|token| Endpoints {
        token,
        authorization: args.authorization_endpoint,
        device_authorization: args.device_authorization_endpoint,
        revocation: args.revocation_endpoint,
        userinfo: args.userinfo_endpoint,
        introspection: None,
    });
    let store_key = match (args.store_key_env, args.store_key_file) {
        (None, None) => None,
        (env, file) => Some(StoreKey {
            id: args.store_key_id.unwrap_or_else(|| "cli-1".to_owned()),
            env,
            file: file.map(absolute).transpose()?,
        }),
    };
    // A directory store is kept as an absolute path; URLs as they are.
    let store = match args.store {
        Some(store) if !store.contains("://") && !store.starts_with("sqlite:") => Some(
            absolute(PathBuf::from(store))?
                .to_string_lossy()
                .into_owned(),
        ),
        other => other,
    };
    Ok(Profile {
        provider: args.provider,
        client_id: args.client_id,
        client_secret,
        scopes: args.scopes,
        redirect_uri: args.redirect_uri,
        base_url: args.base_url,
        issuer: args.issuer,
        endpoints,
        username: args.username,
        store,
        store_key,
    })
}
