//! `cargo xtask conformance`: the conformance matrix, every suite × every available backend.

mod providers;
mod stores;

use grantkit_conformance::{
    Outcome, PROVIDER_SUITE, ProviderBehavior, ProviderFixture, ProviderHarness, STORE_SUITE,
    StoreBehavior, StoreFixture, run_cell,
};
use grantkit_core::flow::FlowKind;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One cell of the matrix, as written to `--json`.
#[derive(Debug, Serialize)]
struct Cell {
    suite: &'static str,
    provider: Option<String>,
    store: Option<String>,
    test: String,
    outcome: &'static str,
    reason: Option<String>,
    duration_ms: u128,
}

#[derive(Debug, Default, Serialize)]
struct Summary {
    passed: usize,
    failed: usize,
    skipped: usize,
}

#[derive(Debug, Serialize)]
struct Report {
    summary: Summary,
    /// Backends this machine could not run, and how to install what they need.
    skipped_backends: Vec<SkippedBackend>,
    cells: Vec<Cell>,
}

/// A backend left out because this machine lacks a tool it needs: the run goes on without
/// it (or fails, with `--strict`), and says how to install the tool.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct SkippedBackend {
    /// The matrix column(s) or row(s) left out.
    pub(crate) backend: String,
    /// What is missing.
    pub(crate) reason: String,
    /// The command that installs it (Debian).
    pub(crate) install: String,
}

/// Panic messages with their location, captured while a cell runs instead of printed, so a
/// failing cell shows where it failed and the progress output stays readable.
static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Whether a cell is running: panics outside cells (starting a backend, say) go to the
/// default hook and are printed as usual.
static IN_CELL: AtomicBool = AtomicBool::new(false);

fn capture_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !IN_CELL.load(Ordering::SeqCst) {
            return default(info);
        }
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_owned());
        let location = info
            .location()
            .map(|l| format!(" (at {}:{})", l.file(), l.line()))
            .unwrap_or_default();
        PANICS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("{message}{location}"));
    }));
}

fn take_first_panic() -> Option<String> {
    let mut panics = PANICS.lock().unwrap_or_else(|e| e.into_inner());
    let first = panics.first().cloned();
    panics.clear();
    first
}

pub(crate) fn run(
    json: Option<PathBuf>,
    filter: Option<String>,
    timeout: Duration,
    strict: bool,
) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    capture_panics();
    let started = Instant::now();
    let (cells, skipped, errors) = runtime.block_on(run_matrix(filter.as_deref(), timeout))?;
    let _ = std::panic::take_hook();

    let mut summary = Summary::default();
    for cell in &cells {
        match cell.outcome {
            "passed" => summary.passed += 1,
            "failed" => summary.failed += 1,
            _ => summary.skipped += 1,
        }
    }
    print_matrix(&cells);
    for cell in cells.iter().filter(|c| c.outcome == "failed") {
        println!(
            "FAILED {} · {} · {}: {}",
            cell.suite,
            column_label(cell),
            cell.test,
            cell.reason.as_deref().unwrap_or("")
        );
    }
    println!(
        "conformance: {} passed, {} failed, {} skipped in {:.1}s",
        summary.passed,
        summary.failed,
        summary.skipped,
        started.elapsed().as_secs_f32()
    );
    print_skipped(&skipped, strict);
    let failed = summary.failed;
    let skipped_backends = skipped.len();
    if let Some(path) = json {
        let report = Report {
            summary,
            skipped_backends: skipped,
            cells,
        };
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("conformance: wrote {}", path.display());
    }
    for error in &errors {
        println!("ERROR {error}");
    }
    if strict && skipped_backends > 0 {
        return Err(format!(
            "--strict: {skipped_backends} backend(s) skipped for want of a tool (see above){}",
            if failed > 0 || !errors.is_empty() {
                "; cells failed or backends could not run too"
            } else {
                ""
            }
        ));
    }
    match (failed, errors.len()) {
        (0, 0) => Ok(()),
        (0, n) => Err(format!("{n} backend(s) could not run")),
        (f, 0) => Err(format!("{f} conformance cell(s) failed")),
        (f, n) => Err(format!(
            "{f} conformance cell(s) failed and {n} backend(s) could not run"
        )),
    }
}

/// One planned cell.
enum Planned<'a> {
    Store {
        target: &'a stores::StoreTarget,
        behaviour: &'static StoreBehavior,
    },
    Provider {
        harness: &'a Arc<dyn ProviderHarness>,
        flow: FlowKind,
        target: &'a stores::StoreTarget,
        behaviour: &'static ProviderBehavior,
    },
}

impl Planned<'_> {
    fn suite(&self) -> &'static str {
        match self {
            Self::Store { .. } => "store",
            Self::Provider { .. } => "provider",
        }
    }
    fn provider(&self) -> Option<String> {
        match self {
            Self::Store { .. } => None,
            Self::Provider { harness, flow, .. } => Some(format!("{}/{flow}", harness.name())),
        }
    }
    fn store(&self) -> &str {
        match self {
            Self::Store { target, .. } | Self::Provider { target, .. } => &target.name,
        }
    }
    fn test(&self) -> &'static str {
        match self {
            Self::Store { behaviour, .. } => behaviour.name,
            Self::Provider { behaviour, .. } => behaviour.name,
        }
    }
}

/// What a run produced: its cells, the backends it skipped, and the backends that failed
/// to start.
type MatrixRun = (Vec<Cell>, Vec<SkippedBackend>, Vec<String>);

async fn run_matrix(filter: Option<&str>, timeout: Duration) -> Result<MatrixRun, String> {
    let targets = stores::available().await;
    let providers = providers::available().await;
    let skipped: Vec<SkippedBackend> = targets
        .skipped
        .iter()
        .chain(&providers.skipped)
        .cloned()
        .collect();
    for backend in &skipped {
        eprintln!("skipping {}: {}", backend.backend, backend.reason);
    }
    let errors: Vec<String> = targets
        .errors
        .iter()
        .chain(&providers.errors)
        .cloned()
        .collect();
    for error in &errors {
        eprintln!("error: {error}");
    }
    let mut plan = Vec::new();
    for target in &targets.stores {
        for behaviour in STORE_SUITE {
            plan.push(Planned::Store { target, behaviour });
        }
    }
    for (index, harness) in providers.harnesses.iter().enumerate() {
        // Every harness runs with the memory store; each provider's first (default)
        // harness, and the standard provider's every harness, with every store.
        let first_of_provider = providers.harnesses[..index]
            .iter()
            .all(|h| h.provider().id() != harness.provider().id());
        let every_store = first_of_provider || harness.provider().id() == "standard";
        for target in &targets.stores {
            if target.name != "memory" && !every_store {
                continue;
            }
            for flow in harness.flows() {
                for behaviour in PROVIDER_SUITE {
                    plan.push(Planned::Provider {
                        harness,
                        flow,
                        target,
                        behaviour,
                    });
                }
            }
        }
    }
    plan.retain(|cell| {
        filter.is_none_or(|f| {
            cell.store().contains(f)
                || cell.test().contains(f)
                || cell.provider().is_some_and(|p| p.contains(f))
        })
    });

    let total = plan.len();
    let width = total.to_string().len();
    let mut cells = Vec::with_capacity(total);
    for (index, planned) in plan.iter().enumerate() {
        let column = match planned.provider() {
            Some(provider) => format!("{provider}+{}", planned.store()),
            None => planned.store().to_owned(),
        };
        eprint!(
            "[{:>width$}/{total}] {:<8} {:<40} {:<52} ",
            index + 1,
            planned.suite(),
            column,
            planned.test()
        );
        let (outcome, duration) = run_planned(planned, timeout).await;
        take_first_panic();
        eprintln!("{} ({} ms)", outcome.as_str(), duration.as_millis());
        cells.push(Cell {
            suite: planned.suite(),
            provider: planned.provider(),
            store: Some(planned.store().to_owned()),
            test: planned.test().to_owned(),
            outcome: outcome.as_str(),
            reason: outcome.reason().map(str::to_owned),
            duration_ms: duration.as_millis(),
        });
    }
    drop(plan);
    drop(providers);
    drop(targets);
    Ok((cells, skipped, errors))
}

/// How long opening a store or cleaning up after a cell may take.
const HOUSEKEEPING: Duration = Duration::from_secs(30);

async fn run_planned(planned: &Planned<'_>, timeout: Duration) -> (Outcome, Duration) {
    let target = match planned {
        Planned::Store { target, .. } | Planned::Provider { target, .. } => target,
    };
    let store = match tokio::time::timeout(HOUSEKEEPING, (target.make)()).await {
        Ok(Ok(store)) => store,
        Ok(Err(reason)) => {
            return (
                Outcome::Failed(format!("could not open the store: {reason}")),
                Duration::ZERO,
            );
        }
        Err(_) => {
            return (
                Outcome::Failed("opening the store timed out".to_owned()),
                Duration::ZERO,
            );
        }
    };
    IN_CELL.store(true, Ordering::SeqCst);
    let outcome = run_in_cell(planned, store, timeout).await;
    IN_CELL.store(false, Ordering::SeqCst);
    outcome
}

async fn run_in_cell(
    planned: &Planned<'_>,
    store: Arc<dyn grantkit_core::TokenStore>,
    timeout: Duration,
) -> (Outcome, Duration) {
    let result = match planned {
        Planned::Store { behaviour, .. } => {
            if let Some(reason) = behaviour.skip_reason(store.as_ref()) {
                return (Outcome::Skipped(reason), Duration::ZERO);
            }
            let fixture = StoreFixture::new(store);
            let cleanup = fixture.clone();
            let result = run_cell((behaviour.run)(fixture), timeout).await;
            let _ = tokio::time::timeout(HOUSEKEEPING, cleanup.cleanup()).await;
            result
        }
        Planned::Provider {
            harness,
            flow,
            behaviour,
            ..
        } => {
            let fixture = ProviderFixture {
                harness: Arc::clone(harness),
                flow: *flow,
                store,
            };
            if let Some(reason) = behaviour.skip_reason(&fixture) {
                return (Outcome::Skipped(reason), Duration::ZERO);
            }
            let result = run_cell((behaviour.run)(fixture), timeout).await;
            // A cell that failed half-way must not leave its faults to the next one.
            let _ = tokio::time::timeout(HOUSEKEEPING, harness.clear_faults()).await;
            result
        }
    };
    let outcome = match result.outcome {
        Outcome::Failed(message) => Outcome::Failed(take_first_panic().unwrap_or(message)),
        other => other,
    };
    (outcome, result.duration)
}

fn column_label(cell: &Cell) -> String {
    match (&cell.provider, &cell.store) {
        (Some(p), Some(s)) => format!("{p}+{s}"),
        (Some(p), None) => p.clone(),
        (None, Some(s)) => s.clone(),
        (None, None) => "-".to_owned(),
    }
}

fn mark(outcome: &str) -> &'static str {
    match outcome {
        "passed" => "ok",
        "failed" => "FAIL",
        _ => "skip",
    }
}

/// Prints one table per suite. Narrow suites put behaviours down and backends across;
/// wide ones (many provider columns) put backends down and number the behaviours across,
/// with a legend.
fn print_matrix(cells: &[Cell]) {
    let mut suites: BTreeMap<&str, Vec<&Cell>> = BTreeMap::new();
    for cell in cells {
        suites.entry(cell.suite).or_default().push(cell);
    }
    for (suite, cells) in suites {
        let mut columns: Vec<String> = Vec::new();
        let mut rows: Vec<&str> = Vec::new();
        let mut grid: BTreeMap<(String, &str), &'static str> = BTreeMap::new();
        for cell in &cells {
            let column = column_label(cell);
            if !columns.contains(&column) {
                columns.push(column.clone());
            }
            if !rows.contains(&cell.test.as_str()) {
                rows.push(&cell.test);
            }
            grid.insert((column, cell.test.as_str()), mark(cell.outcome));
        }
        println!();
        if columns.len() <= 6 {
            let name_width = rows
                .iter()
                .map(|r| r.len())
                .max()
                .unwrap_or(0)
                .max(suite.len() + 6);
            print!("{:<name_width$}", format!("{suite} suite"));
            for column in &columns {
                print!("  {column:>width$}", width = column.len().max(4));
            }
            println!();
            for row in &rows {
                print!("{row:<name_width$}");
                for column in &columns {
                    let mark = grid.get(&(column.clone(), *row)).copied().unwrap_or("");
                    print!("  {mark:>width$}", width = column.len().max(4));
                }
                println!();
            }
        } else {
            println!("{suite} suite — behaviours:");
            for (i, row) in rows.iter().enumerate() {
                println!("  {:>2} {row}", i + 1);
            }
            let name_width = columns.iter().map(|c| c.len()).max().unwrap_or(0);
            print!("{:<name_width$}", "");
            for i in 0..rows.len() {
                print!(" {:>4}", i + 1);
            }
            println!();
            for column in &columns {
                print!("{column:<name_width$}");
                for row in &rows {
                    let mark = grid.get(&(column.clone(), *row)).copied().unwrap_or("");
                    print!(" {mark:>4}");
                }
                println!();
            }
        }
    }
    println!();
}

/// The closing section on backends left out: what, why, and the command that installs
/// what they need.
fn print_skipped(skipped: &[SkippedBackend], strict: bool) {
    if skipped.is_empty() {
        return;
    }
    let verdict = if strict {
        "a failure under --strict"
    } else {
        "the rest ran"
    };
    println!("Skipped backends ({} — {verdict}):", skipped.len());
    for backend in skipped {
        println!("  {}: {}", backend.backend, backend.reason);
        println!("      install: {}", backend.install);
    }
    println!();
}

/// Keeps a backend's servers alive for as long as the matrix runs.
pub(crate) type Guard = Arc<dyn std::any::Any + Send + Sync>;
