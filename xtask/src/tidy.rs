//! `cargo xtask tidy`: project policy as code.

use crate::root;
use std::fs;

/// Every store and provider crate runs the conformance suite; every crate has a README
/// (its crate docs).
pub(crate) fn run() -> Result<(), String> {
    let crates = root().join("crates");
    let mut problems = Vec::new();
    let entries =
        fs::read_dir(&crates).map_err(|e| format!("cannot read {}: {e}", crates.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| e.to_string())?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let dir = entry.path();
        if !dir.join("Cargo.toml").exists() {
            continue;
        }
        if !dir.join("README.md").exists() {
            problems.push(format!("crates/{name} has no README.md (its crate docs)"));
        }
        let is_backend = name.starts_with("grantkit-store-")
            || matches!(
                name.as_str(),
                "grantkit-joindin" | "grantkit-joinme" | "grantkit-standard"
            );
        if is_backend && !dir.join("tests/conformance.rs").exists() {
            problems.push(format!(
                "crates/{name} has no tests/conformance.rs: every store and provider runs the conformance suite"
            ));
        }
    }
    if problems.is_empty() {
        eprintln!("tidy: ok");
        Ok(())
    } else {
        Err(format!("tidy found problems:\n  {}", problems.join("\n  ")))
    }
}
