//! `grantkit`: log in once to Joind.in, join.me or any OAuth 2.0 server, then hand tokens to
//! any script — one refresh across every process on the machine (or across machines, with
//! a Redis store), nothing lost, nothing leaked.

mod config;
mod fail;
mod login;
mod output;
mod profiles;
mod session;
mod tokens;

use clap::{Args, Parser, Subcommand};
use fail::{Exit, Failure};
use output::Output;
use std::path::PathBuf;
use std::process::ExitCode;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  failure not listed below
  2  usage: a wrong argument or profile
  3  log in (again): no grant is stored, or the provider refused it — run `grantkit login PROFILE`
  4  renew: the token expired and must be renewed in the browser — run `grantkit login PROFILE`
  5  unavailable: the provider or the store is down or limits the rate — try again later

Secrets never appear on a command line: client secrets come from an environment variable,
a file or standard input (see `grantkit profile add --help`), passwords from a prompt or
standard input, and `curl`/`exec` pass the token in a private file or the environment.";

/// Log in once to Joind.in, join.me or any OAuth 2.0 server, then hand tokens to any
/// script.
#[derive(Debug, Parser)]
#[command(name = "grantkit", version, after_long_help = EXIT_CODES, after_help = EXIT_CODES)]
struct Cli {
    /// The profiles file [default: $XDG_CONFIG_HOME/grantkit/config.toml].
    #[arg(long, global = true, env = "GRANTKIT_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    /// Print JSON on standard output, for scripts (errors too, with their exit code).
    #[arg(long, global = true)]
    json: bool,
    /// Log what grantkit does to standard error (repeat for more); never a secret.
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Add, list or remove profiles.
    #[command(subcommand)]
    Profile(profiles::ProfileCommand),
    /// Sign in: through the browser (authorization code with PKCE), on another device
    /// (--device), or with a password (Joind.in).
    Login(login::LoginArgs),
    /// Print a valid access token, refreshing it when due.
    Token(AccountArgs),
    /// Print `Authorization: Bearer …` for the current token.
    Header(AccountArgs),
    /// Run curl with the token: it gets the header from a private file, never its
    /// command line.
    Curl(tokens::RunArgs),
    /// Run a command with the token in an environment variable (GRANTKIT_ACCESS_TOKEN).
    Exec(tokens::ExecArgs),
    /// Show the stored grants: accounts, expiry, scopes, store. No secret.
    Status(tokens::StatusArgs),
    /// Refresh the token now.
    Refresh(AccountArgs),
    /// Revoke the grant (or expire its access token) at the provider, then delete it.
    Logout(tokens::LogoutArgs),
}

/// A profile and, when it has several, the account.
#[derive(Debug, Args)]
pub(crate) struct AccountArgs {
    /// The profile.
    pub(crate) profile: String,
    /// The account, when the profile has signed in more than one.
    #[arg(long)]
    pub(crate) account: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    output::init_logging(cli.verbose);
    let out = Output::new(cli.json);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            out.failure(&Failure::failed(format!("cannot start: {err}")));
            return ExitCode::from(Exit::Failed as u8);
        }
    };
    match runtime.block_on(run(cli, &out)) {
        Ok(code) => code,
        Err(failure) => {
            out.failure(&failure);
            ExitCode::from(failure.exit as u8)
        }
    }
}

async fn run(cli: Cli, out: &Output) -> Result<ExitCode, Failure> {
    let config_path = config::path(cli.config.as_deref())?;
    match cli.command {
        Command::Profile(command) => profiles::run(command, &config_path, out).await,
        Command::Login(args) => login::run(args, &config_path, out).await,
        Command::Token(args) => tokens::token(args, &config_path, out).await,
        Command::Header(args) => tokens::header(args, &config_path, out).await,
        Command::Curl(args) => tokens::curl(args, &config_path, out).await,
        Command::Exec(args) => tokens::exec(args, &config_path, out).await,
        Command::Status(args) => tokens::status(args, &config_path, out).await,
        Command::Refresh(args) => tokens::refresh(args, &config_path, out).await,
        Command::Logout(args) => tokens::logout(args, &config_path, out).await,
    }
}
