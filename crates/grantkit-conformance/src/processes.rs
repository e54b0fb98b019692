//! Behaviours across real processes: a test binary that is its own harness
//! (`harness = false`) runs named scenarios, each starting copies of itself as workers.
//!
//! What a store crate writes: a `main` that runs the worker role named in an environment
//! variable when it is set, and otherwise [`run_scenarios`]; scenarios that start
//! [`Worker`]s with their settings in the environment (never in argv, where secrets would
//! show) and read what they print.

use std::future::Future;
use std::pin::Pin;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

/// One scenario: a function returning its future.
pub type Scenario = fn() -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs the scenarios the command line selects — substring filters, `--exact` for exact
/// names, `--list` to list them; other libtest options and their values are accepted and
/// ignored — one after another on `runtime`, each within `timeout`, and prints a
/// libtest-style report. A scenario that runs out of time is stopped, and its workers
/// with it (killed when dropped), before the next one starts.
pub fn run_scenarios(
    runtime: &tokio::runtime::Runtime,
    scenarios: &[(&str, Scenario)],
    timeout: Duration,
) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let exact = args.iter().any(|a| a == "--exact");
    let filters = name_filters(&args);
    let selected: Vec<&(&str, Scenario)> = scenarios
        .iter()
        .filter(|(name, _)| {
            filters.is_empty()
                || filters.iter().any(|f| {
                    if exact {
                        *name == f.as_str()
                    } else {
                        name.contains(f.as_str())
                    }
                })
        })
        .collect();
    if args.iter().any(|a| a == "--list") {
        for (name, _) in &selected {
            println!("{name}: test");
        }
        return ExitCode::SUCCESS;
    }
    // `--ignored` asks for ignored tests only: there are none.
    let selected = if args.iter().any(|a| a == "--ignored") {
        Vec::new()
    } else {
        selected
    };
    println!("\nrunning {} tests", selected.len());
    let started = Instant::now();
    let (mut passed, mut failed) = (0, Vec::new());
    for (name, scenario) in selected {
        match runtime.block_on(run_one(*scenario, timeout)) {
            Ok(()) => {
                println!("test {name} ... ok");
                passed += 1;
            }
            Err(message) => {
                println!("test {name} ... FAILED\n    {message}");
                failed.push(name);
            }
        }
    }
    let verdict = if failed.is_empty() { "ok" } else { "FAILED" };
    println!(
        "\ntest result: {verdict}. {passed} passed; {} failed; 0 ignored; 0 measured; 0 filtered out; finished in {:.2}s\n",
        failed.len(),
        started.elapsed().as_secs_f64()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The arguments that name scenarios: neither options nor an option's value (`--skip
/// NAME`, `--test-threads N`, …).
fn name_filters(args: &[String]) -> Vec<&String> {
    let mut filters = Vec::new();
    let mut after_option_with_value = false;
    for arg in args {
        if after_option_with_value {
            after_option_with_value = false;
        } else if arg.starts_with('-') {
            after_option_with_value = !arg.contains('=')
                && matches!(
                    arg.as_str(),
                    "--skip" | "--test-threads" | "--format" | "--color" | "--logfile" | "-Z"
                );
        } else {
            filters.push(arg);
        }
    }
    filters
}

async fn run_one(scenario: Scenario, timeout: Duration) -> Result<(), String> {
    let task = tokio::spawn(scenario());
    let abort = task.abort_handle();
    let outcome = tokio::time::timeout(timeout, task).await;
    if outcome.is_err() {
        abort.abort();
    }
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) if err.is_panic() => Err(crate::panic_message(err.into_panic())),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err(format!("timed out after {timeout:?}")),
    }
}

/// A worker process: this executable again, with `vars` in its environment (its role
/// among them), its standard output read line by line, killed if dropped.
#[derive(Debug)]
pub struct Worker {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    timeout: Duration,
}

impl Worker {
    /// Starts a worker; each wait on it ([`line_starting`](Self::line_starting),
    /// [`succeed`](Self::succeed)) lasts at most `timeout`.
    pub fn spawn(vars: &[(&str, String)], timeout: Duration) -> Self {
        let mut command =
            tokio::process::Command::new(std::env::current_exe().expect("this executable"));
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (name, value) in vars {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("a worker process");
        let stdout = child.stdout.take().expect("the worker's stdout");
        Self {
            child,
            lines: BufReader::new(stdout).lines(),
            timeout,
        }
    }

    /// The rest of the next line starting with `prefix`, trimmed.
    ///
    /// # Panics
    /// When the worker ends or runs out of time first.
    pub async fn line_starting(&mut self, prefix: &str) -> String {
        let read = async {
            while let Some(line) = self.lines.next_line().await.expect("worker output") {
                if let Some(rest) = line.strip_prefix(prefix) {
                    return Some(rest.trim().to_owned());
                }
            }
            None
        };
        match tokio::time::timeout(self.timeout, read).await {
            Ok(Some(rest)) => rest,
            Ok(None) => panic!("a worker ended without printing {prefix}"),
            Err(_) => panic!("a worker did not print {prefix} within {:?}", self.timeout),
        }
    }

    /// Waits for the worker to exit successfully.
    ///
    /// # Panics
    /// When it fails or runs out of time.
    pub async fn succeed(mut self) {
        let status = tokio::time::timeout(self.timeout, self.child.wait())
            .await
            .expect("a worker did not exit in time")
            .expect("waiting for a worker");
        assert!(status.success(), "a worker failed: {status}");
    }

    /// SIGKILL: the process dies wherever it is (holding a lease, say).
    pub async fn kill(mut self) {
        self.child.kill().await.expect("killing a worker");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_values_are_not_names() {
        let args: Vec<String> = [
            "cas",
            "--skip",
            "refresh",
            "--test-threads",
            "1",
            "--exact",
            "x",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        assert_eq!(name_filters(&args), ["cas", "x"]);
    }
}
