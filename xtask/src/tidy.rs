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
    let manifest = fs::read_to_string(root().join("xtask/Cargo.toml"))
        .map_err(|e| format!("cannot read xtask/Cargo.toml: {e}"))?;
    let registration = [
        "conformance.rs",
        "conformance/providers.rs",
        "conformance/stores.rs",
    ]
    .iter()
    .map(|file| fs::read_to_string(root().join("xtask/src").join(file)))
    .collect::<Result<Vec<_>, _>>()
    .map_err(|e| format!("cannot read the matrix's registration: {e}"))?
    .join("\n");
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
        let in_matrix = in_matrix(&name, &manifest, &registration);
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
/// read with `syn`: any `impl … TokenStore for …` or `impl … Provider for …` (generic or
/// path-qualified), outside `testing` modules and `#[cfg(test)]` items, which hold
/// harnesses and doubles rather than backends.
fn backend_kind(src: &Path) -> Result<Option<&'static str>, String> {
    let mut pending = vec![src.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.map_err(|e| e.to_string())?.path();
            let relative = path.strip_prefix(src).unwrap_or(&path);
            if relative.components().any(|c| c.as_os_str() == "testing")
                || path.file_stem().is_some_and(|s| s == "testing")
            {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let file = syn::parse_file(&text)
                .map_err(|e| format!("cannot parse {}: {e}", path.display()))?;
            if let Some(kind) = implemented(&file.items) {
                return Ok(Some(kind));
            }
        }
    }
    Ok(None)
}

/// The backend trait implemented among `items`, inline modules included.
fn implemented(items: &[syn::Item]) -> Option<&'static str> {
    let for_tests = |attrs: &[syn::Attribute]| {
        attrs.iter().any(|a| {
            a.path().is_ident("cfg")
                && a.parse_args::<syn::Meta>()
                    .is_ok_and(|m| m.path().is_ident("test"))
        })
    };
    items.iter().find_map(|item| match item {
        syn::Item::Impl(item) if !for_tests(&item.attrs) => {
            let (_, path, _) = item.trait_.as_ref()?;
            match path.segments.last()?.ident.to_string().as_str() {
                "TokenStore" => Some("TokenStore"),
                "Provider" => Some("Provider"),
                _ => None,
            }
        }
        syn::Item::Mod(module) if !for_tests(&module.attrs) && module.ident != "testing" => {
            implemented(&module.content.as_ref()?.1)
        }
        _ => None,
    })
}

/// Whether the crate `name` is in the matrix: a `[dependencies]` entry of xtask, used by
/// the matrix's registration in `xtask/src/conformance`.
fn in_matrix(name: &str, manifest: &str, registration: &str) -> bool {
    let dependencies = manifest
        .split("\n[")
        .find(|table| table.starts_with("dependencies]"))
        .unwrap_or("");
    let declared = dependencies.lines().any(|line| {
        let key = line.split(['=', '.', ' ']).next().unwrap_or("");
        key == name
    });
    declared && registration.contains(&name.replace('-', "_"))
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
    fn mocks_generic_and_qualified_impls_are_told_apart() {
        let items = |code: &str| syn::parse_file(code).unwrap().items;
        assert_eq!(
            implemented(&items(
                "impl<S: TokenStore> grantkit_core::TokenStore for Sealed<S> {}"
            )),
            Some("TokenStore")
        );
        assert_eq!(
            implemented(&items("mod inner { impl Provider for P {} }")),
            Some("Provider")
        );
        assert_eq!(
            implemented(&items(
                "#[cfg(test)] mod tests { impl TokenStore for Fake {} }"
            )),
            None
        );
        assert_eq!(implemented(&items("impl Clone for P {}")), None);
    }

    #[test]
    fn the_matrix_is_read_from_dependencies_and_registration() {
        let manifest = "[package]\nname = \"xtask\"\n\n[dependencies]\ngrantkit-store-a.workspace = true\ngrantkit-store-b = { workspace = true }\n\n[dev-dependencies]\ngrantkit-store-c = \"1\"\n";
        let registration = "use grantkit_store_a::A; use grantkit_store_c::C;";
        assert!(in_matrix("grantkit-store-a", manifest, registration));
        assert!(
            !in_matrix("grantkit-store-b", manifest, registration),
            "declared, never registered"
        );
        assert!(
            !in_matrix("grantkit-store-c", manifest, registration),
            "a dev-dependency"
        );
    }

    #[test]
    fn backends_are_found_in_the_code() {
        let crates = root().join("crates");
        for (name, kind) in [
            ("grantkit-core", Some("TokenStore")),
            ("grantkit-store-file", Some("TokenStore")),
            ("grantkit-store-redis", Some("TokenStore")),
            ("grantkit-store-sql", Some("TokenStore")),
            ("grantkit-store-encrypted", Some("TokenStore")),
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
