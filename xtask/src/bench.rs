//! `cargo xtask bench`: runs the criterion benchmarks and reports each subject as a ratio to
//! the baseline measured in the same run.
//!
//! Convention: in a criterion group, the benchmark whose id starts with `baseline` is the
//! baseline; every other id is a subject. The ratio is subject time / baseline time (lower is
//! better; 1.0 is parity).
//!
//! A benchmark that measures something other than time (bytes kept, say) writes each of its
//! figures to `<target>/grantkit-bench/<group>/<id>.json` as `{"value": …, "unit": …}`;
//! its groups follow the same convention.

use crate::{root, run_command};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

#[derive(Clone, Debug, Serialize)]
struct Figure {
    name: String,
    ratio: f64,
    what: String,
    baseline: String,
    /// The subject's and the baseline's value: a median time in ns, or a count in `unit`.
    what_value: f64,
    baseline_value: f64,
    unit: String,
}

/// One figure over several runs: the median ratio, and the smallest and largest.
#[derive(Debug, Serialize)]
struct Spread {
    name: String,
    median: f64,
    min: f64,
    max: f64,
    /// Each run's ratio, in run order.
    ratios: Vec<f64>,
}

pub(crate) fn run(
    json: Option<PathBuf>,
    package: Option<String>,
    measurement_time: u64,
    runs: usize,
) -> Result<(), String> {
    let targets = bench_targets(package.as_deref())?;
    if targets.is_empty() {
        return Err(format!(
            "no benchmark targets{}",
            package.map(|p| format!(" in {p}")).unwrap_or_default()
        ));
    }
    let runs = runs.max(1);
    let mut all: Vec<Vec<Figure>> = Vec::with_capacity(runs);
    for run in 1..=runs {
        if runs > 1 {
            eprintln!("==> bench run {run}/{runs}");
        }
        all.push(run_once(&targets, measurement_time)?);
    }
    println!();
    for figure in all.last().into_iter().flatten() {
        println!(
            "bench {}: {:.2} ({} / {}; {} vs {})",
            figure.name,
            figure.ratio,
            figure.what,
            figure.baseline,
            human(figure.what_value, &figure.unit),
            human(figure.baseline_value, &figure.unit)
        );
    }
    let spreads = spreads(&all);
    if runs > 1 {
        println!();
        for spread in &spreads {
            println!(
                "bench {}: median {:.2} over {runs} runs (spread {:.2}–{:.2})",
                spread.name, spread.median, spread.min, spread.max
            );
        }
    }
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&serde_json::json!({
            "benches": all.last(),
            "runs": runs,
            "spreads": spreads,
        }))
        .map_err(|e| e.to_string())?;
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("bench: wrote {}", path.display());
    }
    Ok(())
}

/// Runs every target once and reads the ratios of that run.
fn run_once(targets: &[(String, String)], measurement_time: u64) -> Result<Vec<Figure>, String> {
    let started = SystemTime::now();
    let measurement = measurement_time.to_string();
    // One target at a time: naming each keeps criterion's arguments away from the libtest
    // harness of library targets.
    for (package, bench) in targets {
        run_command(
            "cargo",
            &[
                "bench",
                "--package",
                package,
                "--bench",
                bench,
                "--",
                "--warm-up-time",
                "1",
                "--measurement-time",
                measurement.as_str(),
                "--noplot",
            ],
            &[],
        )?;
    }
    let target = target_directory()?;
    let mut figures = collect(&target.join("criterion"), started)?;
    figures.extend(collect_counts(&target.join(COUNTS_DIR), started)?);
    if figures.is_empty() {
        return Err("no benchmark with a baseline ran".to_owned());
    }
    Ok(figures)
}

/// The median, smallest and largest ratio of each figure across runs.
fn spreads(runs: &[Vec<Figure>]) -> Vec<Spread> {
    let mut by_name: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for figure in runs.iter().flatten() {
        by_name.entry(&figure.name).or_default().push(figure.ratio);
    }
    by_name
        .into_iter()
        .map(|(name, ratios)| {
            let mut sorted = ratios.clone();
            sorted.sort_by(f64::total_cmp);
            let middle = sorted.len() / 2;
            let median = if sorted.len() % 2 == 0 {
                (sorted[middle - 1] + sorted[middle]) / 2.0
            } else {
                sorted[middle]
            };
            Spread {
                name: name.to_owned(),
                median,
                min: sorted[0],
                max: sorted[sorted.len() - 1],
                ratios,
            }
        })
        .collect()
}

fn metadata() -> Result<serde_json::Value, String> {
    let output = std::process::Command::new("cargo")
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(root())
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| format!("cargo metadata: {e}"))
}

/// Where cargo builds (and criterion writes): `CARGO_TARGET_DIR` and config included.
fn target_directory() -> Result<PathBuf, String> {
    metadata()?["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .ok_or_else(|| "cargo metadata names no target directory".to_owned())
}

/// The `(package, bench target)` pairs of the workspace, or of one package.
fn bench_targets(package: Option<&str>) -> Result<Vec<(String, String)>, String> {
    let metadata = metadata()?;
    let mut targets = Vec::new();
    for pkg in metadata["packages"].as_array().into_iter().flatten() {
        let name = pkg["name"].as_str().unwrap_or_default();
        if package.is_some_and(|p| p != name) {
            continue;
        }
        for target in pkg["targets"].as_array().into_iter().flatten() {
            let is_bench = target["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|k| k == "bench"));
            if is_bench {
                let bench = target["name"].as_str().unwrap_or_default();
                targets.push((name.to_owned(), bench.to_owned()));
            }
        }
    }
    Ok(targets)
}

fn human(value: f64, unit: &str) -> String {
    if unit != "ns" {
        return format!("{value:.0} {unit}");
    }
    let ns = value;
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

/// Reads the medians criterion wrote in this run (`new/estimates.json` newer than `since`),
/// grouped by criterion group.
fn collect(dir: &Path, since: SystemTime) -> Result<Vec<Figure>, String> {
    let mut groups: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
    for benchmark in find_files(dir, "benchmark.json") {
        let new = benchmark.parent().expect("a file has a parent");
        if new.file_name().and_then(|n| n.to_str()) != Some("new") {
            continue;
        }
        let estimates = new.join("estimates.json");
        let fresh = std::fs::metadata(&estimates)
            .and_then(|m| m.modified())
            .is_ok_and(|modified| modified >= since);
        if !fresh {
            continue;
        }
        let meta = read_json(&benchmark)?;
        let estimate = read_json(&estimates)?;
        let group = meta["group_id"].as_str().unwrap_or_default().to_owned();
        let id = meta["function_id"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| meta["value_str"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let Some(median) = estimate["median"]["point_estimate"].as_f64() else {
            continue;
        };
        groups.entry(group).or_default().push((id, median));
    }
    Ok(figures_of(groups, "ns"))
}

/// Where benchmarks write figures other than times.
const COUNTS_DIR: &str = "grantkit-bench";

/// Reads the figures benchmarks wrote in this run as `<group>/<id>.json` under `dir`
/// (a missing `dir` holds none), grouped by unit and group.
fn collect_counts(dir: &Path, since: SystemTime) -> Result<Vec<Figure>, String> {
    let mut by_unit: BTreeMap<String, BTreeMap<String, Vec<(String, f64)>>> = BTreeMap::new();
    let Ok(groups) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    for group in groups.flatten() {
        let group_name = group.file_name().to_string_lossy().into_owned();
        let Ok(entries) = std::fs::read_dir(group.path()) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let fresh = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|modified| modified >= since);
            let Some(id) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            if !fresh || path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let figure = read_json(&path)?;
            let (Some(value), Some(unit)) = (figure["value"].as_f64(), figure["unit"].as_str())
            else {
                return Err(format!("{} lacks a value or a unit", path.display()));
            };
            by_unit
                .entry(unit.to_owned())
                .or_default()
                .entry(group_name.clone())
                .or_default()
                .push((id.to_owned(), value));
        }
    }
    Ok(by_unit
        .into_iter()
        .flat_map(|(unit, groups)| figures_of(groups, &unit))
        .collect())
}

/// Each subject of each group against its group's baseline.
fn figures_of(groups: BTreeMap<String, Vec<(String, f64)>>, unit: &str) -> Vec<Figure> {
    let mut figures = Vec::new();
    for (group, entries) in groups {
        let Some((baseline, baseline_value)) = entries
            .iter()
            .find(|(id, _)| id.starts_with("baseline"))
            .cloned()
        else {
            continue;
        };
        for (id, value) in entries.iter().filter(|(id, _)| !id.starts_with("baseline")) {
            figures.push(Figure {
                name: format!("{group}/{id}"),
                ratio: value / baseline_value,
                what: id.clone(),
                baseline: baseline.clone(),
                what_value: *value,
                baseline_value,
                unit: unit.to_owned(),
            });
        }
    }
    figures
}

fn read_json(path: &Path) -> Result<serde_json::Value, String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_slice(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))
}

fn find_files(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().and_then(|n| n.to_str()) == Some(name) {
                found.push(path);
            }
        }
    }
    found
}
