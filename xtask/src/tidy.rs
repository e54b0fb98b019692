//! `cargo xtask tidy`: project policy as code.

use crate::root;
use crate::surface::Surface;
use std::fs;

/// The most names `grantkit-core` exports at its root: what an application author needs,
/// modules included. Provider, store and flow authors' items live in modules.
const MAX_CORE_ROOT: usize = 30;

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
    check_core_surface(&mut problems)?;
    if problems.is_empty() {
        eprintln!("tidy: ok");
        Ok(())
    } else {
        Err(format!("tidy found problems:\n  {}", problems.join("\n  ")))
    }
}

/// `grantkit-core`'s root is short, and no name is exported at two public paths.
fn check_core_surface(problems: &mut Vec<String>) -> Result<(), String> {
    let surface = Surface::read(&root().join("crates/grantkit-core/src/lib.rs"))?;
    let names = surface.root();
    eprintln!(
        "tidy: grantkit-core exports {} names at its root (at most {MAX_CORE_ROOT})",
        names.len()
    );
    if names.len() > MAX_CORE_ROOT {
        problems.push(format!(
            "grantkit-core exports {} names at its root (at most {MAX_CORE_ROOT}): {}",
            names.len(),
            names.join(", ")
        ));
    }
    for (name, paths) in surface.duplicates() {
        problems.push(format!(
            "grantkit-core exports `{name}` twice: {}",
            paths.join(" and ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_project_is_tidy() {
        super::run().unwrap();
    }
}
