//! `cargo xtask conformance-repeat`: the whole matrix several times in a row, each run a
//! fresh process with fresh backends, and a check that every cell ended the same way each
//! time: the proof that outcomes depend neither on order nor on neighbours.

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize)]
struct Report {
    summary: Summary,
    cells: Vec<Cell>,
}

#[derive(Deserialize)]
struct Summary {
    passed: usize,
    failed: usize,
    skipped: usize,
    wall_ms: u128,
    cell_ms: u128,
}

#[derive(Deserialize)]
struct Cell {
    suite: String,
    provider: Option<String>,
    store: Option<String>,
    test: String,
    outcome: String,
}

/// A cell's name: suite, provider, store and behaviour.
type CellName = (String, Option<String>, Option<String>, String);

pub(crate) fn run(runs: usize, jobs: usize) -> Result<(), String> {
    if runs < 2 {
        return Err("--runs must be at least 2: one run has nothing to compare with".to_owned());
    }
    let dir = crate::root().join("target/conformance-repeat");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut first: Option<BTreeMap<CellName, String>> = None;
    let mut differing: BTreeMap<CellName, Vec<String>> = BTreeMap::new();
    for run in 1..=runs {
        let path = dir.join(format!("run-{run}.json"));
        // A run that dies before writing its report must not be judged by an older one.
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot remove {}: {e}", path.display())),
        }
        let jobs = jobs.to_string();
        // A failing cell is reported below with the others; the outcomes are what count.
        let _ = crate::run_command(
            "cargo",
            &[
                "xtask",
                "conformance",
                "--strict",
                "--jobs",
                &jobs,
                "--json",
                path.to_str().ok_or("the target directory is not UTF-8")?,
            ],
            &[],
        );
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("run {run} wrote no report at {}: {e}", path.display()))?;
        let report: Report =
            serde_json::from_str(&text).map_err(|e| format!("run {run}'s report: {e}"))?;
        let s = &report.summary;
        println!(
            "run {run:>2}/{runs}: {} passed, {} failed, {} skipped; {:.1} s wall, {:.1} s of cell time",
            s.passed,
            s.failed,
            s.skipped,
            s.wall_ms as f64 / 1000.0,
            s.cell_ms as f64 / 1000.0
        );
        let outcomes: BTreeMap<CellName, String> = report
            .cells
            .into_iter()
            .map(|c| ((c.suite, c.provider, c.store, c.test), c.outcome))
            .collect();
        match &first {
            None => first = Some(outcomes),
            Some(first) => {
                for (name, outcome) in first {
                    let now = outcomes.get(name).map_or("absent", String::as_str);
                    if now != outcome {
                        differing
                            .entry(name.clone())
                            .or_insert_with(|| vec![format!("run 1: {outcome}")])
                            .push(format!("run {run}: {now}"));
                    }
                }
                for name in outcomes.keys().filter(|n| !first.contains_key(*n)) {
                    differing
                        .entry(name.clone())
                        .or_default()
                        .push(format!("run {run}: new cell"));
                }
            }
        }
    }
    if differing.is_empty() {
        println!("conformance-repeat: {runs} runs, every cell ended the same way each time");
        return Ok(());
    }
    for ((suite, provider, store, test), runs) in &differing {
        println!(
            "DIFFERS {suite} · {}+{} · {test}: {}",
            provider.as_deref().unwrap_or("-"),
            store.as_deref().unwrap_or("-"),
            runs.join(", ")
        );
    }
    Err(format!(
        "{} cell(s) did not end the same way in every run",
        differing.len()
    ))
}
