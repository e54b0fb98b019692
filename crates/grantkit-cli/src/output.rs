//! `Output`: human text for people, JSON for scripts; colour only on a terminal and never
//! with `NO_COLOR`; logs to standard error, never with a secret.

use crate::fail::Failure;
use anstream::{eprintln, println};
use anstyle::{AnsiColor, Style};
use std::io::IsTerminal as _;

const ERROR: Style = AnsiColor::Red.on_default().bold();
const HINT: Style = AnsiColor::Yellow.on_default();
const GOOD: Style = AnsiColor::Green.on_default();

/// Where and how a command reports.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Output {
    json: bool,
}

impl Output {
    pub(crate) fn new(json: bool) -> Self {
        Self { json }
    }

    /// Whether JSON is wanted.
    pub(crate) fn json(&self) -> bool {
        self.json
    }

    /// Prints a result: `value` as JSON, or `text` for people.
    pub(crate) fn result(&self, value: &serde_json::Value, text: &str) {
        if self.json {
            println!("{value}");
        } else if !text.is_empty() {
            println!("{text}");
        }
    }

    /// Prints exactly `text` (a token, a header) on its own line: what scripts capture.
    pub(crate) fn raw(&self, value: &serde_json::Value, text: &str) {
        if self.json {
            println!("{value}");
        } else {
            // No colour, no decoration: `$(grantkit token x)` must be the token alone.
            std::println!("{text}");
        }
    }

    /// A success note for people (standard error, so it never mixes with what scripts read).
    pub(crate) fn done(&self, text: &str) {
        if !self.json {
            eprintln!("{GOOD}{text}{GOOD:#}");
        }
    }

    /// A note for people on standard error.
    pub(crate) fn note(&self, text: &str) {
        if !self.json {
            eprintln!("{text}");
        }
    }

    /// Reports a failure: on standard error for people (with what to do next), as JSON on
    /// standard output for scripts.
    pub(crate) fn failure(&self, failure: &Failure) {
        if self.json {
            let value = serde_json::json!({
                "error": {
                    "kind": failure.kind(),
                    "exit_code": failure.exit as i32,
                    "message": failure.message,
                    "hint": failure.hint,
                }
            });
            println!("{value}");
        } else {
            eprintln!("{ERROR}error:{ERROR:#} {}", failure.message);
            if let Some(hint) = &failure.hint {
                eprintln!("{HINT}hint:{HINT:#} {hint}");
            }
        }
    }

    /// Whether standard error is a terminal a spinner may draw on.
    pub(crate) fn interactive(&self) -> bool {
        !self.json && std::io::stderr().is_terminal()
    }
}

/// Logs to standard error at the level `-v` asks for (`GRANTKIT_LOG` overrides). grantkit
/// never logs a secret.
pub(crate) fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("GRANTKIT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("grantkit={level},grantkit_core={level},grantkit_joindin={level},grantkit_joinme={level},grantkit_standard={level},grantkit_store_file={level},grantkit_store_redis={level}")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .try_init();
}
