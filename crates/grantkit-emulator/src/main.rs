//! `grantkit-emulator`: serve a Joind.in or join.me emulator on loopback until killed.
//!
//! Prints exactly one JSON line on stdout when ready (endpoints and seeded credentials),
//! then logs each request (method, path, status; never secrets) on stderr.

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use grantkit_emulator::{AutoConsent, JoinMeEmulator, JoindinEmulator};
use serde_json::json;

/// Local emulators of the Joind.in API v2.1 and the join.me OAuth 2.0 server and API.
#[derive(Debug, Parser)]
#[command(name = "grantkit-emulator", version)]
struct Cli {
    /// Which provider to emulate.
    provider: Provider,
    /// Port on 127.0.0.1 (default: a free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Approve authorization requests at once as this user (Joind.in username or join.me
    /// e-mail), so a flow can be driven without a browser.
    #[arg(long, value_name = "USER", conflicts_with = "deny")]
    auto_approve: Option<String>,
    /// Decline authorization requests at once.
    #[arg(long)]
    deny: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Provider {
    /// Joind.in API v2.1 and the legacy oauth_allow page.
    Joindin,
    /// join.me OAuth 2.0 server and REST API.
    Joinme,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("grantkit_emulator=info")),
        )
        .init();
    let consent = match (&cli.auto_approve, cli.deny) {
        (Some(user), _) => Some(AutoConsent::Approve(user.clone())),
        (None, true) => Some(AutoConsent::Deny),
        (None, false) => None,
    };
    let started = match cli.provider {
        Provider::Joindin => {
            let mut builder = JoindinEmulator::builder().port(cli.port);
            if let Some(c) = consent {
                builder = builder.auto_consent(c);
            }
            builder.start().map(|emu| {
                let fx = emu.fixtures().clone();
                let line = json!({
                    "provider": "joindin",
                    "base_url": emu.base_url(),
                    "authorize_url": emu.authorize_url(),
                    "token_url": emu.token_url(),
                    "api_base": emu.api_base(),
                    "client_id": fx.client_id,
                    "client_secret": fx.client_secret,
                    "redirect_uri": fx.redirect_uri,
                    "username": fx.username,
                    "password": fx.password,
                });
                (Box::new(emu) as Box<dyn std::any::Any>, line)
            })
        }
        Provider::Joinme => {
            let mut builder = JoinMeEmulator::builder().port(cli.port);
            if let Some(c) = consent {
                builder = builder.auto_consent(c);
            }
            builder.start().map(|emu| {
                let fx = emu.fixtures().clone();
                let line = json!({
                    "provider": "joinme",
                    "base_url": emu.base_url(),
                    "authorize_url": emu.authorize_url(),
                    "token_url": emu.token_url(),
                    "api_base": emu.api_base(),
                    "client_id": fx.client_id,
                    "client_secret": fx.client_secret,
                    "redirect_uri": fx.redirect_uri,
                    "username": fx.email,
                    "password": fx.password,
                });
                (Box::new(emu) as Box<dyn std::any::Any>, line)
            })
        }
    };
    let (_running, line) = match started {
        Ok(started) => started,
        Err(e) => {
            eprintln!("grantkit-emulator: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    drop(stdout);
    // Serve until killed; `_running` keeps the emulator (and its server thread) alive.
    loop {
        std::thread::park();
    }
}
