//! `grantkit login`: signs in the way the provider allows — the authorization code with
//! PKCE through the loopback helper, the implicit grant where that is all there is, the
//! device authorization grant (RFC 8628) with `--device`, or Joind.in's password grant
//! (its `oauth_allow` page with `--browser`).

use crate::config::Config;
use crate::fail::Failure;
use crate::output::Output;
use crate::session::{Service, Session};
use clap::Args;
use grantkit::flow::FlowKind;
use grantkit::loopback::LoopbackRedirect;
use grantkit::{Password, RedirectFlow, TokenKey};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::BufRead as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub(crate) struct LoginArgs {
    /// The profile.
    profile: String,
    /// Print the sign-in URL instead of opening a browser.
    #[arg(long)]
    no_browser: bool,
    /// Sign in on another device: grantkit shows a code to enter there (RFC 8628).
    #[arg(long, conflicts_with = "browser")]
    device: bool,
    /// Sign in through the browser where a password would be asked for (Joind.in's
    /// `oauth_allow` page; the profile needs the registered redirect URI).
    #[arg(long, conflicts_with = "password_stdin")]
    browser: bool,
    /// Read the password from standard input instead of a prompt (Joind.in).
    #[arg(long)]
    password_stdin: bool,
    /// The user to log in as (Joind.in) [default: the profile's `username`].
    #[arg(long)]
    username: Option<String>,
    /// How many seconds to wait for the browser or the other device.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    timeout: u64,
}

pub(crate) async fn run(
    args: LoginArgs,
    config_path: &Path,
    out: &Output,
) -> Result<ExitCode, Failure> {
    let config = Config::load(config_path)?;
    let session = Session::open(&args.profile, config.profile(&args.profile)?).await?;
    let timeout = Duration::from_secs(args.timeout);
    let key = match &session.service {
        Service::Joindin(_) if !args.device && !args.browser => password(&session, &args).await?,
        _ if args.device => device(&session, timeout, out).await?,
        _ => browser(&session, &args, timeout, out).await?,
    };
    out.result(
        &serde_json::json!({"profile": session.name, "account": key.account}),
        "",
    );
    out.done(&format!(
        "Logged in to {} as {} (grant stored in {}). Tokens: grantkit token {}",
        session.name, key.account, session.store, session.name
    ));
    Ok(ExitCode::SUCCESS)
}

/// Joind.in's password grant: the password from a prompt that does not echo, or from
/// standard input; used once, never stored.
async fn password(session: &Session, args: &LoginArgs) -> Result<TokenKey, Failure> {
    let username = args
        .username
        .clone()
        .or_else(|| session.profile.username.clone())
        .ok_or_else(|| Failure::usage("name the user: --username, or `username` in the profile"))?;
    let password = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|err| Failure::usage(format!("cannot read the password: {err}")))?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        rpassword::prompt_password(format!("Joind.in password for {username}: ")).map_err(
            |err| {
                Failure::usage(format!("cannot prompt for the password ({err})"))
                    .with_hint("pipe it in with --password-stdin")
            },
        )?
    };
    if password.is_empty() {
        return Err(Failure::usage("the password is empty"));
    }
    session
        .manager
        .sign_in_with_password(username, Password::new(password))
        .await
        .map_err(|err| session.fail(err))
}

/// A flow through the browser, back to the loopback helper.
async fn browser(
    session: &Session,
    args: &LoginArgs,
    timeout: Duration,
    out: &Output,
) -> Result<TokenKey, Failure> {
    let caps = session.service.provider().capabilities().clone();
    let kind = if caps.supports(FlowKind::AuthorizationCode) {
        FlowKind::AuthorizationCode
    } else if caps.supports(FlowKind::Implicit) {
        FlowKind::Implicit
    } else if caps.supports(FlowKind::DeviceCode) {
        return device(session, timeout, out).await;
    } else {
        return Err(Failure::usage(format!(
            "{} offers no way to sign in through a browser",
            session.name
        )));
    };
    let listener = match (&session.profile.redirect_uri, &session.service) {
        (Some(uri), _) => LoopbackRedirect::bind_to(uri).await,
        // Any loopback port will do for a standard server (RFC 8252 §7.3).
        (None, Service::Standard(_)) => LoopbackRedirect::bind_any_port("/callback").await,
        (None, _) => {
            return Err(Failure::usage(format!(
                "profile `{}` has no redirect_uri: add the one registered with the service \
                 (`grantkit profile add {} --redirect-uri http://127.0.0.1:PORT/callback --force …`)",
                session.name, session.name
            )));
        }
    }
    .map_err(|err| session.fail(err))?
    .with_timeout(timeout);
    let flow = match kind {
        FlowKind::Implicit => RedirectFlow::implicit(listener.redirect_uri()),
        _ => RedirectFlow::authorization_code(listener.redirect_uri()),
    }
    .with_scopes(session.profile.scopes.clone());
    let url = session
        .manager
        .start_authorization(&flow)
        .await
        .map_err(|err| session.fail(err))?;
    let opened = !args.no_browser && webbrowser::open(url.expose_secret()).is_ok();
    let shown = url.expose_secret();
    if opened {
        out.note(&format!(
            "Opened your browser to sign in. If it did not open, visit:\n  {shown}"
        ));
    } else if out.json() {
        out.result(&serde_json::json!({"open": shown}), "");
    } else {
        out.note(&format!("Open this page to sign in:\n  {shown}"));
    }
    let callback = waiting(out, "Waiting for the browser", timeout, listener.wait()).await;
    let callback = callback.map_err(|err| session.fail(err))?;
    session
        .manager
        .complete_authorization(&callback)
        .await
        .map_err(|err| session.fail(err))
}

/// The device authorization grant: a code to enter on another device, then polling.
async fn device(session: &Session, timeout: Duration, out: &Output) -> Result<TokenKey, Failure> {
    let mut device = session
        .manager
        .start_device_authorization(session.profile.scopes.clone())
        .await
        .map_err(|err| session.fail(err))?;
    let complete = device.verification_uri_complete().map(str::to_owned);
    if out.json() {
        out.result(
            &serde_json::json!({
                "verification_uri": device.verification_uri(),
                "verification_uri_complete": complete,
                "user_code": device.user_code(),
            }),
            "",
        );
    } else {
        out.note(&format!(
            "On any device, open {} and enter the code {}",
            device.verification_uri(),
            device.user_code()
        ));
        if let Some(complete) = &complete {
            out.note(&format!("(or open {complete})"));
        }
    }
    let limit = timeout.min(device.expires_in());
    let polling = async {
        loop {
            tokio::time::sleep(device.interval()).await;
            if let Some(key) = session
                .manager
                .poll_device_authorization(&mut device)
                .await?
            {
                return Ok(key);
            }
        }
    };
    waiting(out, "Waiting for the other device", limit, polling)
        .await
        .map_err(|err| session.fail(err))
}

/// Runs `work` for at most `limit`, with a spinner and the time left on a terminal.
async fn waiting<T>(
    out: &Output,
    what: &str,
    limit: Duration,
    work: impl Future<Output = grantkit::Result<T>>,
) -> grantkit::Result<T> {
    let started = Instant::now();
    let spinner = out.interactive().then(|| {
        let bar = ProgressBar::new_spinner();
        bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("a static template"));
        bar.enable_steady_tick(Duration::from_millis(120));
        let shown = bar.clone();
        let what = what.to_owned();
        let ticker = tokio::spawn(async move {
            loop {
                let left = limit.saturating_sub(started.elapsed()).as_secs();
                shown.set_message(format!("{what}… {}:{:02} left", left / 60, left % 60));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        (bar, ticker)
    });
    let result = tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
        Err(grantkit::Error::Timeout {
            what: format!("{} ({} s)", what.to_lowercase(), limit.as_secs()),
        })
    });
    if let Some((bar, ticker)) = spinner {
        ticker.abort();
        bar.finish_and_clear();
    }
    result
}
