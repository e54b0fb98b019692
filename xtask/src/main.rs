//! grantkit's project tasks: `cargo xtask ci | conformance | bench`.

mod bench;
mod ci;
mod conformance;
mod surface;
mod tidy;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "grantkit's project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// The CI gates: tidy, fmt, clippy, docs, tests, conformance.
    Ci {
        /// Skip the tests and the conformance matrix (the quick gates only).
        #[arg(long)]
        no_test: bool,
    },
    /// Runs the conformance matrix: every suite against every available provider and store.
    Conformance {
        /// Also write the results as JSON to this path.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Also write the results as JUnit XML (one testcase per cell) to this path.
        #[arg(long)]
        junit: Option<PathBuf>,
        /// Also write the matrix as one self-contained HTML page to this path.
        #[arg(long)]
        html: Option<PathBuf>,
        /// Run only cells whose backend or behaviour name contains this text.
        #[arg(long)]
        filter: Option<String>,
        /// Seconds before a cell is failed as hung.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        /// Cells run at once. Most wait on servers, timeouts and lease TTLs rather than
        /// the CPU, so many more than the cores.
        #[arg(long, default_value_t = conformance::DEFAULT_JOBS)]
        jobs: usize,
        /// Fail when a backend is skipped because a tool it needs (Node.js, redis-server)
        /// is missing, instead of running the rest and listing what was skipped.
        #[arg(long)]
        strict: bool,
    },
    /// Runs the whole conformance matrix several times, each in a fresh process, and
    /// fails when a cell does not end the same way every time.
    ConformanceRepeat {
        /// How many runs.
        #[arg(long, default_value_t = 10)]
        runs: usize,
        /// Cells at once in each run.
        #[arg(long, default_value_t = conformance::DEFAULT_JOBS)]
        jobs: usize,
    },
    /// Runs the benchmarks and prints each as a ratio to its baseline.
    Bench {
        /// Also write the figures as JSON to this path.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Only the benchmarks of this package.
        #[arg(long, short)]
        package: Option<String>,
        /// Seconds of measurement per benchmark.
        #[arg(long, default_value_t = 3)]
        measurement_time: u64,
        /// Runs of every benchmark: with more than one, each ratio is printed as the
        /// median with its spread.
        #[arg(long, default_value_t = 1)]
        runs: usize,
    },
    /// Project policy checks (also part of `ci`).
    Tidy,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Ci { no_test } => ci::run(!no_test),
        Task::Conformance {
            json,
            junit,
            html,
            filter,
            timeout,
            strict,
            jobs,
        } => conformance::run(conformance::Options {
            json,
            junit,
            html,
            filter,
            timeout: std::time::Duration::from_secs(timeout),
            strict,
            jobs,
        }),
        Task::ConformanceRepeat { runs, jobs } => conformance::repeat::run(runs, jobs),
        Task::Bench {
            json,
            package,
            measurement_time,
            runs,
        } => bench::run(json, package, measurement_time, runs),
        Task::Tidy => tidy::run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: xtask lives one level below it.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_path_buf()
}

/// Runs a command in the workspace root, echoing it; `Err` names it when it fails.
fn run_command(program: &str, args: &[&str], envs: &[(&str, &str)]) -> Result<(), String> {
    let shown = format!("{program} {}", args.join(" "));
    eprintln!("==> {shown}");
    let status = std::process::Command::new(program)
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(root())
        .status()
        .map_err(|err| format!("could not start `{shown}`: {err}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{shown}` failed ({status})"))
    }
}
