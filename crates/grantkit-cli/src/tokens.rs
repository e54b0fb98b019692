//! The commands that use a stored grant: `token`, `header`, `curl`, `exec`, `status`,
//! `refresh`, `logout`.

use crate::AccountArgs;
use crate::config::{Config, Profile, ProviderKind};
use crate::fail::{Exit, Failure};
use crate::output::Output;
use crate::session::Session;
use clap::Args;
use grantkit::store::KeyFilter;
use grantkit::{Logout, Revocation, TokenSet};
use std::ffi::OsString;
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

/// `curl PROFILE -- ARGS…`
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    target: AccountArgs,
    /// curl's own arguments, after `--`.
    #[arg(last = true, required = true)]
    args: Vec<OsString>,
}

/// `exec PROFILE -- COMMAND…`
#[derive(Debug, Args)]
pub(crate) struct ExecArgs {
    #[command(flatten)]
    target: AccountArgs,
    /// The environment variable that carries the token.
    #[arg(long, default_value = "GRANTKIT_ACCESS_TOKEN", value_name = "NAME")]
    env: String,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true)]
    command: Vec<OsString>,
}

/// `status [PROFILE]`
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// One profile; every profile when left out.
    profile: Option<String>,
}

/// `logout PROFILE`
#[derive(Debug, Args)]
pub(crate) struct LogoutArgs {
    #[command(flatten)]
    target: AccountArgs,
    /// Delete the local copy even when revoking it at the provider fails.
    #[arg(long)]
    force: bool,
}

/// Opens the profile of `target` and returns the session and a valid token set.
async fn current(
    target: &AccountArgs,
    config_path: &Path,
) -> Result<(Session, grantkit::TokenKey, Arc<TokenSet>), Failure> {
    let config = Config::load(config_path)?;
    let session = Session::open(&target.profile, config.profile(&target.profile)?).await?;
    let key = session.account(target.account.as_deref()).await?;
    let tokens = session
        .manager
        .access_token(&key)
        .await
        .map_err(|err| session.fail(err))?;
    Ok((session, key, tokens))
}

pub(crate) async fn token(
    target: AccountArgs,
    config_path: &Path,
    out: &Output,
) -> Result<ExitCode, Failure> {
    let (_, key, tokens) = current(&target, config_path).await?;
    let value = serde_json::json!({
        "access_token": tokens.access_token.expose_secret(),
        "token_type": tokens.token_type,
        "expires_at": tokens.expires_at.map(rfc3339),
        "account": key.account,
    });
    out.raw(&value, tokens.access_token.expose_secret());
    Ok(ExitCode::SUCCESS)
}

/// The request headers that carry `tokens`, as the provider attaches them.
fn auth_headers(session: &Session, tokens: &TokenSet) -> Result<Vec<(String, String)>, Failure> {
    let mut headers = grantkit::reqwest::header::HeaderMap::new();
    session
        .service
        .provider()
        .authenticate(tokens, &mut headers)
        .map_err(|err| session.fail(err))?;
    headers
        .iter()
        .map(|(name, value)| {
            let value = value
                .to_str()
                .map_err(|_| Failure::failed("the provider's authorization header is not text"))?;
            Ok((canonical(name.as_str()), value.to_owned()))
        })
        .collect()
}

/// `authorization` → `Authorization`.
fn canonical(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

pub(crate) async fn header(
    target: AccountArgs,
    config_path: &Path,
    out: &Output,
) -> Result<ExitCode, Failure> {
    let (session, _, tokens) = current(&target, config_path).await?;
    let headers = auth_headers(&session, &tokens)?;
    let text = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}"))
        .collect::<Vec<_>>()
        .join("\n");
    let value = serde_json::Value::Object(
        headers
            .into_iter()
            .map(|(name, value)| (name, serde_json::Value::String(value)))
            .collect(),
    );
    out.raw(&value, &text);
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn curl(
    args: RunArgs,
    config_path: &Path,
    _out: &Output,
) -> Result<ExitCode, Failure> {
    let (session, _, tokens) = current(&args.target, config_path).await?;
    // curl reads the header from a config file only it and this user can read (0600),
    // deleted when curl ends: never from its command line, where `ps` would show it.
    let mut config = tempfile::Builder::new()
        .prefix("grantkit-curl-")
        .tempfile()
        .map_err(|err| Failure::failed(format!("cannot make curl's private config file: {err}")))?;
    for (name, value) in auth_headers(&session, &tokens)? {
        writeln!(config, "header = \"{}: {}\"", name, curl_quoted(&value))
            .map_err(|err| Failure::failed(format!("cannot write curl's config: {err}")))?;
    }
    config
        .flush()
        .map_err(|err| Failure::failed(format!("cannot write curl's config: {err}")))?;
    let mut command = tokio::process::Command::new("curl");
    command.arg("--config").arg(config.path()).args(&args.args);
    run_child(command, "curl").await
}

/// A value inside curl's double-quoted config syntax.
fn curl_quoted(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

pub(crate) async fn exec(
    args: ExecArgs,
    config_path: &Path,
    _out: &Output,
) -> Result<ExitCode, Failure> {
    let (_, _, tokens) = current(&args.target, config_path).await?;
    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| Failure::usage("name the command to run after `--`"))?;
    let mut command = tokio::process::Command::new(program);
    command
        .args(rest)
        .env(&args.env, tokens.access_token.expose_secret());
    run_child(command, &program.to_string_lossy()).await
}

/// Runs a child to its end and exits as it did.
///
/// grantkit outlives the child whatever signal arrives, so what it made for the child
/// (curl's private config file) is deleted afterwards: SIGTERM and SIGHUP are passed on to
/// the child; SIGINT from a terminal reaches the child directly (one process group), so
/// grantkit only waits for it.
async fn run_child(mut command: tokio::process::Command, what: &str) -> Result<ExitCode, Failure> {
    use tokio::signal::unix::{SignalKind, signal};
    let cannot = |err: std::io::Error| Failure::failed(format!("cannot run {what}: {err}"));
    let mut interrupt = signal(SignalKind::interrupt()).map_err(cannot)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(cannot)?;
    let mut hangup = signal(SignalKind::hangup()).map_err(cannot)?;
    let mut child = command.spawn().map_err(cannot)?;
    let pass_on = |child: &tokio::process::Child, sig: rustix::process::Signal| {
        let pid = child
            .id()
            .and_then(|id| rustix::process::Pid::from_raw(id as i32));
        if let Some(pid) = pid {
            // The child may have ended in between: nothing to pass on then.
            let _ = rustix::process::kill_process(pid, sig);
        }
    };
    let status = loop {
        tokio::select! {
            status = child.wait() => break status.map_err(cannot)?,
            _ = terminate.recv() => pass_on(&child, rustix::process::Signal::TERM),
            _ = hangup.recv() => pass_on(&child, rustix::process::Signal::HUP),
            _ = interrupt.recv() => {}
        }
    };
    Ok(match status.code() {
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        // Killed by a signal: the shell's convention.
        None => {
            use std::os::unix::process::ExitStatusExt as _;
            ExitCode::from(128u8.saturating_add(status.signal().unwrap_or(0) as u8))
        }
    })
}

pub(crate) async fn refresh(
    target: AccountArgs,
    config_path: &Path,
    out: &Output,
) -> Result<ExitCode, Failure> {
    let config = Config::load(config_path)?;
    let session = Session::open(&target.profile, config.profile(&target.profile)?).await?;
    let key = session.account(target.account.as_deref()).await?;
    let tokens = session
        .manager
        .refresh(&key)
        .await
        .map_err(|err| session.fail(err))?;
    let until = tokens.expires_at.map(rfc3339);
    out.result(
        &serde_json::json!({"account": key.account, "refreshed": true, "expires_at": until}),
        "",
    );
    out.done(&match until {
        Some(until) => format!("Refreshed {}: valid until {until}.", key.account),
        None => format!("Refreshed {}.", key.account),
    });
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn logout(
    args: LogoutArgs,
    config_path: &Path,
    out: &Output,
) -> Result<ExitCode, Failure> {
    let config = Config::load(config_path)?;
    let name = &args.target.profile;
    let session = Session::open(name, config.profile(name)?).await?;
    let key = session.account(args.target.account.as_deref()).await?;
    let logout = if args.force {
        session.manager.force_logout(&key).await
    } else {
        session.manager.logout(&key).await
    }
    .map_err(|err| session.fail(err))?;
    let (outcome, remote) = match &logout {
        Logout::Deleted { remote } => ("deleted", Some(revocation(*remote))),
        Logout::NotStored => ("not_stored", None),
        Logout::RevocationPending { .. } => ("revocation_pending", None),
        Logout::DeletedUnrevoked { .. } => ("deleted_unrevoked", None),
        _ => ("unknown", None),
    };
    if let Logout::RevocationPending { .. } = logout {
        return Err(Failure {
            exit: Exit::Unavailable,
            message: format!("{}: {logout}", key.account),
            hint: Some(format!(
                "run `grantkit logout {name}` again later, or `grantkit logout {name} --force` to delete it unrevoked"
            )),
        });
    }
    out.result(
        &serde_json::json!({"account": key.account, "outcome": outcome, "remote": remote}),
        "",
    );
    out.done(&format!("Logged out {}: {logout}.", key.account));
    Ok(ExitCode::SUCCESS)
}

fn revocation(remote: Revocation) -> &'static str {
    match remote {
        Revocation::Revoked => "revoked",
        Revocation::AccessExpired => "access_expired",
        Revocation::NotSupported => "not_supported",
    }
}

pub(crate) async fn status(
    args: StatusArgs,
    config_path: &Path,
    out: &Output,
) -> Result<ExitCode, Failure> {
    let config = Config::load(config_path)?;
    let names: Vec<String> = match args.profile {
        Some(name) => {
            config.profile(&name)?;
            vec![name]
        }
        None => config.profiles.keys().cloned().collect(),
    };
    let mut reports = Vec::new();
    let mut lines = Vec::new();
    for name in names {
        let profile = config.profile(&name)?;
        let (report, text) = profile_status(&name, profile).await?;
        reports.push(report);
        lines.push(text);
    }
    if lines.is_empty() {
        out.note("No profiles yet: add one with `grantkit profile add NAME --provider …`");
    }
    out.result(&serde_json::Value::Array(reports), &lines.join("\n"));
    Ok(ExitCode::SUCCESS)
}

/// One profile's grants, read from its store alone: no client secret, no network.
async fn profile_status(
    name: &str,
    profile: &Profile,
) -> Result<(serde_json::Value, String), Failure> {
    let (store, shown) = crate::session::open_store(name, profile).await?;
    let provider_id = provider_id(name, profile);
    let filter = KeyFilter::provider(provider_id.clone()).with_client(profile.client_id.clone());
    let mut keys = store
        .list(&filter)
        .await
        .map_err(|err| Failure::from_error(err, name))?;
    keys.sort();
    let now = SystemTime::now();
    let mut accounts = Vec::new();
    let mut text = format!(
        "{name} ({} client {}, store {shown})",
        profile.provider, profile.client_id
    );
    for key in keys {
        let Some(stored) = store
            .get(&key)
            .await
            .map_err(|err| Failure::from_error(err, name))?
        else {
            continue;
        };
        let tokens = stored.value;
        let state = match tokens.expires_at {
            Some(at) if at <= now => "expired",
            _ => "valid",
        };
        let pending_logout = tokens
            .extras
            .contains_key(grantkit::provider::REVOCATION_PENDING);
        accounts.push(serde_json::json!({
            "account": key.account,
            "state": if pending_logout { "logout_pending" } else { state },
            "expires_at": tokens.expires_at.map(rfc3339),
            "scopes": tokens.scopes,
            "refresh_token": tokens.refresh_token.is_some(),
            "grant": tokens.grant.as_str(),
        }));
        text.push_str(&format!(
            "\n  {}: {}{}, scopes [{}], {}",
            key.account,
            if pending_logout {
                "logout pending"
            } else {
                state
            },
            tokens
                .expires_at
                .map(|at| format!(" until {}", rfc3339(at)))
                .unwrap_or_else(|| " (no expiry)".to_owned()),
            tokens.scopes.join(" "),
            if tokens.refresh_token.is_some() {
                "refresh token stored"
            } else {
                "no refresh token"
            }
        ));
    }
    if accounts.is_empty() {
        text.push_str(&format!("\n  not signed in: run `grantkit login {name}`"));
    }
    let report = serde_json::json!({
        "profile": name,
        "provider": profile.provider.to_string(),
        "client_id": profile.client_id,
        "store": shown,
        "accounts": accounts,
    });
    Ok((report, text))
}

/// The provider id a profile's grants are stored under.
pub(crate) fn provider_id(name: &str, profile: &Profile) -> String {
    match profile.provider {
        ProviderKind::Joindin => grantkit::provider::joindin::PROVIDER_ID.to_owned(),
        ProviderKind::Joinme => grantkit::provider::joinme::PROVIDER_ID.to_owned(),
        ProviderKind::Standard => format!("standard:{name}"),
    }
}

fn rfc3339(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_canonical_and_curl_values_quoted() {
        assert_eq!(canonical("authorization"), "Authorization");
        assert_eq!(canonical("x-api-key"), "X-Api-Key");
        assert_eq!(curl_quoted(r#"a"b\c"#), r#"a\"b\\c"#);
    }
}
