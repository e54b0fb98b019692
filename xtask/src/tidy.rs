//! `cargo xtask tidy`: project policy as code.

use crate::root;
use crate::surface::Surface;
use std::fs;
use std::path::Path;

/// The most names `grantkit-core` exports at its root: what an application author needs,
/// modules included. Provider, store and flow authors' items live in modules.
const MAX_CORE_ROOT: usize = 30;

/// Every crate has a README (its crate docs); every crate that implements `TokenStore` or
/// `Provider` runs the conformance suite in its own tests and is registered in the
/// matrix (a dependency of xtask, which builds it in `xtask/src/conformance`). Backends
/// are found in the code, not in a list of names, so a new one cannot be forgotten.
pub(crate) fn run() -> Result<(), String> {
    let crates = root().join("crates");
    let registered = fs::read_to_string(root().join("xtask/Cargo.toml"))
        .map_err(|e| format!("cannot read xtask/Cargo.toml: {e}"))?;
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
        let Some(kind) = backend_kind(&dir.join("src"))? else {
            continue;
        };
        if !dir.join("tests/conformance.rs").exists() {
            problems.push(format!(
                "crates/{name} implements {kind} but has no tests/conformance.rs: every store and provider runs the conformance suite"
            ));
        }
        let in_matrix = registered.lines().any(|line| {
            line.trim_start().starts_with(&format!("{name} "))
                || line.trim_start().starts_with(&format!("{name}."))
        });
        if !in_matrix {
            problems.push(format!(
                "crates/{name} implements {kind} but is not in the conformance matrix: add it to xtask/Cargo.toml and register it in xtask/src/conformance"
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

/// Which backend trait the sources under `src` implement (`TokenStore` or `Provider`),
/// outside tests and mocks.
fn backend_kind(src: &Path) -> Result<Option<&'static str>, String> {
    let mut pending = vec![src.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            // `testing` modules hold harnesses and doubles, not backends.
            if path.components().any(|c| c.as_os_str() == "testing")
                || path.file_stem().is_some_and(|s| s == "testing")
            {
                continue;
            }
            for (pattern, kind) in [
                ("impl TokenStore for ", "TokenStore"),
                ("impl Provider for ", "Provider"),
            ] {
                if text
                    .lines()
                    .any(|line| line.trim_start().starts_with(pattern))
                {
                    return Ok(Some(kind));
                }
            }
        }
    }
    Ok(None)
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
    use super::*;

    #[test]
    fn the_project_is_tidy() {
        super::run().unwrap();
    }

    #[test]
    fn backends_are_found_in_the_code() {
        let crates = root().join("crates");
        for (name, kind) in [
            ("grantkit-core", Some("TokenStore")),
            ("grantkit-store-file", Some("TokenStore")),
            ("grantkit-store-redis", Some("TokenStore")),
            ("grantkit-joindin", Some("Provider")),
            ("grantkit-joinme", Some("Provider")),
            ("grantkit-standard", Some("Provider")),
            ("grantkit-emulator", None),
            ("grantkit-cli", None),
        ] {
            assert_eq!(
                backend_kind(&crates.join(name).join("src")).unwrap(),
                kind,
                "{name}"
            );
        }
    }
}
