//! `cargo xtask conformance`: the conformance matrix, every suite × every available backend.

mod stores;

use grantkit_conformance::{Outcome, STORE_SUITE, StoreFixture, run_cell};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
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
    cells: Vec<Cell>,
}

/// Panic messages with their location, captured instead of printed, so a failing cell
/// shows where it failed and the progress output stays readable.
static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn capture_panics() {
    std::panic::set_hook(Box::new(|info| {
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
) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    capture_panics();
    let started = Instant::now();
    let cells = runtime.block_on(run_matrix(filter.as_deref(), timeout))?;
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
    let failed = summary.failed;
    if let Some(path) = json {
        let report = Report { summary, cells };
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("conformance: wrote {}", path.display());
    }
    if failed > 0 {
        Err(format!("{failed} conformance cell(s) failed"))
    } else {
        Ok(())
    }
}

async fn run_matrix(filter: Option<&str>, timeout: Duration) -> Result<Vec<Cell>, String> {
    let targets = stores::available().await;
    for note in &targets.notes {
        eprintln!("note: {note}");
    }
    let mut plan = Vec::new();
    for target in &targets.stores {
        for behaviour in STORE_SUITE {
            let selected =
                filter.is_none_or(|f| target.name.contains(f) || behaviour.name.contains(f));
            if selected {
                plan.push((target, behaviour));
            }
        }
    }
    let total = plan.len();
    let width = total.to_string().len();
    let mut cells = Vec::with_capacity(total);
    for (index, (target, behaviour)) in plan.into_iter().enumerate() {
        eprint!(
            "[{:>width$}/{total}] store {:<14} {:<45} ",
            index + 1,
            target.name,
            behaviour.name
        );
        let (outcome, duration) = match (target.make)().await {
            Err(reason) => (
                Outcome::Failed(format!("could not open the store: {reason}")),
                Duration::ZERO,
            ),
            Ok(store) => match behaviour.skip_reason(store.as_ref()) {
                Some(reason) => (Outcome::Skipped(reason), Duration::ZERO),
                None => {
                    let fixture = StoreFixture::new(store);
                    let cleanup = fixture.clone();
                    let result = run_cell((behaviour.run)(fixture), timeout).await;
                    cleanup.cleanup().await;
                    let outcome = match result.outcome {
                        Outcome::Failed(message) => {
                            Outcome::Failed(take_first_panic().unwrap_or(message))
                        }
                        other => other,
                    };
                    (outcome, result.duration)
                }
            },
        };
        take_first_panic();
        eprintln!("{} ({} ms)", outcome.as_str(), duration.as_millis());
        cells.push(Cell {
            suite: "store",
            provider: None,
            store: Some(target.name.clone()),
            test: behaviour.name.to_owned(),
            outcome: outcome.as_str(),
            reason: outcome.reason().map(str::to_owned),
            duration_ms: duration.as_millis(),
        });
    }
    drop(targets);
    Ok(cells)
}

fn column_label(cell: &Cell) -> String {
    match (&cell.provider, &cell.store) {
        (Some(p), Some(s)) => format!("{p}+{s}"),
        (Some(p), None) => p.clone(),
        (None, Some(s)) => s.clone(),
        (None, None) => "-".to_owned(),
    }
}

/// Prints one table per suite: behaviours down, backends across.
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
            let mark = match cell.outcome {
                "passed" => "ok",
                "failed" => "FAIL",
                _ => "skip",
            };
            grid.insert((column, cell.test.as_str()), mark);
        }
        let name_width = rows
            .iter()
            .map(|r| r.len())
            .max()
            .unwrap_or(0)
            .max(suite.len() + 6);
        println!();
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
    }
    println!();
}

/// Keeps a backend's servers alive for as long as the matrix runs.
pub(crate) type Guard = Arc<dyn std::any::Any + Send + Sync>;
