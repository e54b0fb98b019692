//! `grantkit-emulator`: serve a Joind.in or join.me emulator on loopback until killed.
//!
//! Prints exactly one JSON line on stdout when ready (endpoints, seeded credentials and the
//! effective quirk switches), then logs each request (method, path, status; never secrets)
//! on stderr. `--quirk`, `--fault` and `--list-quirks` reach every switch and fault of the
//! library, so a person testing by hand or another project's CI gets the same behaviours an
//! in-process test does.

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use grantkit_emulator::switches::{self, Switch, SwitchError};
use grantkit_emulator::{
    AutoConsent, JoinMeEmulator, JoinMeQuirks, JoindinEmulator, JoindinQuirks,
};
use serde_json::{Value, json};

/// Local emulators of the Joind.in API v2.1 and the join.me OAuth 2.0 server and API.
#[derive(Debug, Parser)]
#[command(name = "grantkit-emulator", version, after_long_help = switches::fault_help())]
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
    /// Set a quirk switch before start, e.g. `development_mode=off` (repeatable; names,
    /// values and accepted forms with `--list-quirks`).
    #[arg(long = "quirk", value_name = "NAME=VALUE")]
    quirks: Vec<String>,
    /// Inject a fault rule once started, e.g. `token:server-error=503@2` (repeatable; the
    /// syntax is at the end of `--help`).
    #[arg(long = "fault", value_name = "SPEC")]
    faults: Vec<String>,
    /// Print the provider's quirk switches (name, value, what each reproduces), after any
    /// `--quirk`, and exit without starting.
    #[arg(long)]
    list_quirks: bool,
    /// With `--list-quirks`: print a JSON array of `{name, value, default, form, help}`.
    #[arg(long, requires = "list_quirks")]
    json: bool,
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
            let (quirks, faults) =
                match prepare(&cli, JoindinQuirks::set, switches::parse_joindin_fault) {
                    Ok(prepared) => prepared,
                    Err(message) => return usage_error(&message),
                };
            if cli.list_quirks {
                return list(&quirks.switches(), cli.json);
            }
            let mut builder = JoindinEmulator::builder().port(cli.port).quirks(quirks);
            if let Some(c) = consent {
                builder = builder.auto_consent(c);
            }
            builder.start().map(|emu| {
                for rule in faults {
                    tracing::info!(?rule, "fault injected");
                    emu.inject(rule);
                }
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
                    "quirks": quirk_map(&emu.quirks().switches()),
                });
                (Box::new(emu) as Box<dyn std::any::Any>, line)
            })
        }
        Provider::Joinme => {
            let (quirks, faults) =
                match prepare(&cli, JoinMeQuirks::set, switches::parse_joinme_fault) {
                    Ok(prepared) => prepared,
                    Err(message) => return usage_error(&message),
                };
            if cli.list_quirks {
                return list(&quirks.switches(), cli.json);
            }
            let mut builder = JoinMeEmulator::builder().port(cli.port).quirks(quirks);
            if let Some(c) = consent {
                builder = builder.auto_consent(c);
            }
            builder.start().map(|emu| {
                for rule in faults {
                    tracing::info!(?rule, "fault injected");
                    emu.inject(rule);
                }
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
                    "quirks": quirk_map(&emu.quirks().switches()),
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

/// Applies the `--quirk`s to the provider's defaults and parses the `--fault`s, so that
/// every mistake is reported before anything listens. `Err` is the message.
fn prepare<Q: Default, R>(
    cli: &Cli,
    set: fn(&mut Q, &str, &str) -> Result<(), SwitchError>,
    parse_fault: fn(&str) -> Result<R, SwitchError>,
) -> Result<(Q, Vec<R>), String> {
    let mut quirks = Q::default();
    for arg in &cli.quirks {
        let (name, value) = arg
            .split_once('=')
            .ok_or_else(|| format!("--quirk {arg}: expected NAME=VALUE"))?;
        set(&mut quirks, name.trim(), value).map_err(|e| format!("--quirk {arg}: {e}"))?;
    }
    let faults = cli
        .faults
        .iter()
        .map(|spec| {
            parse_fault(spec).map_err(|e| format!("--fault {spec}: {e} (the syntax is in --help)"))
        })
        .collect::<Result<_, _>>()?;
    Ok((quirks, faults))
}

/// A bad switch is a usage error: exit 2, as clap does for bad flags.
fn usage_error(message: &str) -> ExitCode {
    eprintln!("grantkit-emulator: {message}");
    ExitCode::from(2)
}

/// The effective switches as `{name: value}`, for the ready line.
fn quirk_map(switches: &[Switch]) -> Value {
    Value::Object(
        switches
            .iter()
            .map(|s| (s.name.to_owned(), Value::String(s.value.clone())))
            .collect(),
    )
}

/// Prints the switches as an aligned table (the accepted form and, when changed, the
/// default after the help), or as JSON for scripts.
fn list(switches: &[Switch], as_json: bool) -> ExitCode {
    let shown = |value: &str| {
        if value.is_empty() {
            "\"\"".to_owned()
        } else {
            value.to_owned()
        }
    };
    let text = if as_json {
        let rows: Vec<Value> = switches
            .iter()
            .map(|s| {
                json!({"name": s.name, "value": s.value, "default": s.default, "form": s.form, "help": s.help})
            })
            .collect();
        format!("{}\n", Value::Array(rows))
    } else {
        let name_width = switches.iter().map(|s| s.name.len()).max().unwrap_or(0);
        let value_width = switches
            .iter()
            .map(|s| shown(&s.value).len())
            .max()
            .unwrap_or(0);
        let mut text = format!(
            "{:name_width$}  {:value_width$}  HELP [ACCEPTS]\n",
            "NAME", "VALUE"
        );
        for s in switches {
            let changed = if s.value == s.default {
                String::new()
            } else {
                format!(" (default {})", shown(&s.default))
            };
            text.push_str(&format!(
                "{:name_width$}  {:value_width$}  {} [{}]{changed}\n",
                s.name,
                shown(&s.value),
                s.help,
                s.form
            ));
        }
        text
    };
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}
