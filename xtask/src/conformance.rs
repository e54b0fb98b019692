//! `cargo xtask conformance`: the conformance matrix, every suite × every available backend.

mod providers;
pub(crate) mod repeat;
mod report;
mod stores;

use grantkit_conformance::{
    Outcome, PROVIDER_SUITE, ProviderBehavior, ProviderFixture, ProviderHarness, STORE_SUITE,
    StoreBehavior, StoreFixture, run_cell,
};
use grantkit_core::flow::FlowKind;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
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
    /// The run's wall time, backends' start-up included.
    wall_ms: u128,
    /// The cells' time added up: what the run would take one cell after another.
    cell_ms: u128,
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

tokio::task_local! {
    /// The cell whose behaviour is running (its index in the plan): the panic hook files
    /// a panic under it, so concurrent cells never see each other's.
    static CELL: usize;
}

/// Panic messages with their location, by cell, captured instead of printed, so a failing
/// cell shows where it failed and the progress output stays readable.
static PANICS: Mutex<BTreeMap<usize, Vec<String>>> = Mutex::new(BTreeMap::new());

fn capture_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // Panics outside a cell's behaviour (starting a backend, say) print as usual.
        let Ok(cell) = CELL.try_with(|cell| *cell) else {
            return default(info);
        };
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
            .entry(cell)
            .or_default()
            .push(format!("{message}{location}"));
    }));
}

/// The first panic of `cell`, forgetting the others.
fn take_first_panic(cell: usize) -> Option<String> {
    PANICS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&cell)
        .and_then(|panics| panics.into_iter().next())
}

/// Cells at once by default: most wait on servers, timeouts and lease TTLs rather than
/// the CPU, so many more than the cores.
pub(crate) const DEFAULT_JOBS: usize = 12;

/// How a run goes: which cells, how many at once, how long each may take, and where the
/// reports go.
pub(crate) struct Options {
    pub(crate) json: Option<PathBuf>,
    pub(crate) junit: Option<PathBuf>,
    pub(crate) html: Option<PathBuf>,
    pub(crate) filter: Option<String>,
    pub(crate) timeout: Duration,
    pub(crate) strict: bool,
    pub(crate) jobs: usize,
}

pub(crate) fn run(options: Options) -> Result<(), String> {
    let Options {
        json,
        junit,
        html,
        filter,
        timeout,
        strict,
        jobs,
    } = options;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    capture_panics();
    let started = Instant::now();
    let (cells, skipped, errors) =
        runtime.block_on(run_matrix(filter.as_deref(), timeout, jobs.max(1)))?;
    let _ = std::panic::take_hook();
    let wall = started.elapsed();

    let mut summary = Summary {
        wall_ms: wall.as_millis(),
        cell_ms: cells.iter().map(|c| c.duration_ms).sum(),
        ..Summary::default()
    };
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
        "conformance: {} passed, {} failed, {} skipped in {:.1}s ({:.1}s of cell time, {} at once)",
        summary.passed,
        summary.failed,
        summary.skipped,
        wall.as_secs_f32(),
        summary.cell_ms as f64 / 1000.0,
        jobs.max(1),
    );
    print_skipped(&skipped, strict);
    let failed = summary.failed;
    let skipped_backends = skipped.len();
    let report = Report {
        summary,
        skipped_backends: skipped,
        cells,
    };
    let write = |path: &PathBuf, text: String| {
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("conformance: wrote {}", path.display());
        Ok::<(), String>(())
    };
    if let Some(path) = &json {
        write(
            path,
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?,
        )?;
    }
    if let Some(path) = &junit {
        write(path, report::junit(&report))?;
    }
    if let Some(path) = &html {
        write(path, report::html(&report)?)?;
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
enum Planned {
    Store {
        target: Arc<stores::StoreTarget>,
        behaviour: &'static StoreBehavior,
    },
    Provider {
        harness: Arc<dyn ProviderHarness>,
        flow: FlowKind,
        target: Arc<stores::StoreTarget>,
        behaviour: &'static ProviderBehavior,
    },
}

impl Planned {
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
    /// Cells that share server state run one after another: a provider harness's cells
    /// (faults and switches are per server). Every other cell has a group of its own.
    fn group(&self, index: usize) -> String {
        match self {
            Self::Provider { harness, .. } => format!("provider {}", harness.name()),
            Self::Store { .. } => format!("cell {index}"),
        }
    }
}

/// Progress across concurrent cells: done, running, and an estimate of what is left.
struct Progress {
    total: usize,
    done: AtomicUsize,
    running: AtomicUsize,
    started: Instant,
}

impl Progress {
    fn line(&self, done: usize) -> String {
        let width = self.total.to_string().len();
        let running = self.running.load(Ordering::Relaxed);
        let elapsed = self.started.elapsed().as_secs_f64();
        let eta = if done == 0 {
            "--:--".to_owned()
        } else {
            let left = elapsed / done as f64 * (self.total - done) as f64;
            format!("{}:{:02}", left as u64 / 60, left as u64 % 60)
        };
        format!(
            "[{done:>width$}/{} · {running:>2} running · ETA {eta}]",
            self.total
        )
    }
}

/// What a run produced: its cells, the backends it skipped, and the backends that failed
/// to start.
type MatrixRun = (Vec<Cell>, Vec<SkippedBackend>, Vec<String>);

async fn run_matrix(
    filter: Option<&str>,
    timeout: Duration,
    jobs: usize,
) -> Result<MatrixRun, String> {
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
    let stores: Vec<Arc<stores::StoreTarget>> = targets.stores.into_iter().map(Arc::new).collect();
    let mut plan = Vec::new();
    for target in &stores {
        for behaviour in STORE_SUITE {
            plan.push(Planned::Store {
                target: target.clone(),
                behaviour,
            });
        }
    }
    for (index, harness) in providers.harnesses.iter().enumerate() {
        // Every harness runs with the memory store; each provider's first (default)
        // harness, and the standard provider's every harness, with every store.
        let first_of_provider = providers.harnesses[..index]
            .iter()
            .all(|h| h.provider().id() != harness.provider().id());
        let every_store = first_of_provider || harness.provider().id() == "standard";
        for target in &stores {
            if target.name != "memory" && !every_store {
                continue;
            }
            for flow in harness.flows() {
                for behaviour in PROVIDER_SUITE {
                    plan.push(Planned::Provider {
                        harness: harness.clone(),
                        flow,
                        target: target.clone(),
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

    // Groups of cells that must not overlap, the largest first: they set the wall time.
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (index, planned) in plan.iter().enumerate() {
        groups.entry(planned.group(index)).or_default().push(index);
    }
    let mut groups: Vec<Vec<usize>> = groups.into_values().collect();
    groups.sort_by_key(|cells| std::cmp::Reverse(cells.len()));

    let plan = Arc::new(plan);
    let progress = Arc::new(Progress {
        total: plan.len(),
        done: AtomicUsize::new(0),
        running: AtomicUsize::new(0),
        started: Instant::now(),
    });
    let slots = Arc::new(tokio::sync::Semaphore::new(jobs));
    let mut tasks = tokio::task::JoinSet::new();
    for group in groups {
        // Taken here, in order, so the largest groups start first whatever order the
        // runtime polls the tasks in.
        let slot = slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| "the cell slots closed".to_owned())?;
        let (plan, progress) = (plan.clone(), progress.clone());
        tasks.spawn(async move {
            let _slot = slot;
            let mut cells = Vec::with_capacity(group.len());
            for index in group {
                progress.running.fetch_add(1, Ordering::Relaxed);
                let planned = &plan[index];
                let (outcome, duration) = run_planned(index, planned, timeout).await;
                progress.running.fetch_sub(1, Ordering::Relaxed);
                let done = progress.done.fetch_add(1, Ordering::Relaxed) + 1;
                let column = match planned.provider() {
                    Some(provider) => format!("{provider}+{}", planned.store()),
                    None => planned.store().to_owned(),
                };
                eprintln!(
                    "{} {:<8} {:<44} {:<52} {} ({} ms)",
                    progress.line(done),
                    planned.suite(),
                    column,
                    planned.test(),
                    outcome.as_str(),
                    duration.as_millis()
                );
                cells.push((
                    index,
                    Cell {
                        suite: planned.suite(),
                        provider: planned.provider(),
                        store: Some(planned.store().to_owned()),
                        test: planned.test().to_owned(),
                        outcome: outcome.as_str(),
                        reason: outcome.reason().map(str::to_owned),
                        duration_ms: duration.as_millis(),
                    },
                ));
            }
            cells
        });
    }
    let mut cells: Vec<(usize, Cell)> = Vec::with_capacity(plan.len());
    while let Some(group) = tasks.join_next().await {
        cells.extend(group.map_err(|err| format!("a group of cells crashed: {err}"))?);
    }
    // The plan's order, whatever order the cells finished in.
    cells.sort_by_key(|(index, _)| *index);
    drop(plan);
    drop(providers);
    drop(stores);
    Ok((
        cells.into_iter().map(|(_, cell)| cell).collect(),
        skipped,
        errors,
    ))
}

/// How long opening a store or cleaning up after a cell may take.
const HOUSEKEEPING: Duration = Duration::from_secs(30);

async fn run_planned(index: usize, planned: &Planned, timeout: Duration) -> (Outcome, Duration) {
    let target = match planned {
        Planned::Store { target, .. } | Planned::Provider { target, .. } => target,
    };
    let handles = match tokio::time::timeout(HOUSEKEEPING, (target.make)(index)).await {
        Ok(Ok(handles)) => handles,
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
    run_in_cell(index, planned, handles, timeout).await
}

async fn run_in_cell(
    index: usize,
    planned: &Planned,
    (store, second): stores::Handles,
    timeout: Duration,
) -> (Outcome, Duration) {
    let result = match planned {
        Planned::Store { behaviour, .. } => {
            let mut fixture = StoreFixture::new(store);
            if let Some(second) = second {
                fixture = fixture.with_second_handle(second);
            }
            if let Some(reason) = behaviour.skip_reason(&fixture) {
                return (Outcome::Skipped(reason), Duration::ZERO);
            }
            let cleanup = fixture.clone();
            let result = run_cell(CELL.scope(index, (behaviour.run)(fixture)), timeout).await;
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
                harness: harness.clone(),
                flow: *flow,
                store,
            };
            if let Some(reason) = behaviour.skip_reason(&fixture) {
                return (Outcome::Skipped(reason), Duration::ZERO);
            }
            let result = run_cell(CELL.scope(index, (behaviour.run)(fixture)), timeout).await;
            // A cell that failed half-way must not leave its faults to the next one.
            let _ = tokio::time::timeout(HOUSEKEEPING, harness.clear_faults()).await;
            result
        }
    };
    let outcome = match result.outcome {
        Outcome::Failed(message) => Outcome::Failed(take_first_panic(index).unwrap_or(message)),
        other => {
            take_first_panic(index);
            other
        }
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
