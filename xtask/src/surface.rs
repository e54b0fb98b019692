//! The public surface of a crate, read from its source: what each public path exports.
//!
//! Used by tidy to hold `grantkit-core` to its layering — a short root for applications,
//! the rest in named modules — and to one name, one item: no name is exported at two public
//! paths (where a reader cannot tell whether they are the same item).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use syn::{Item, UseTree, Visibility};

/// Every public name of a crate, with the public paths that export it.
#[derive(Debug, Default)]
pub(crate) struct Surface {
    /// Name → the modules (`""` for the root) that export it.
    exports: BTreeMap<String, Vec<String>>,
}

impl Surface {
    /// Reads the crate whose root file is `lib_rs`.
    pub(crate) fn read(lib_rs: &Path) -> Result<Self, String> {
        let mut surface = Self::default();
        let file = parse(lib_rs)?;
        let dir = lib_rs.parent().unwrap_or(Path::new(".")).to_owned();
        surface.walk("", &file.items, &dir)?;
        Ok(surface)
    }

    /// The names exported at the crate root, modules included.
    pub(crate) fn root(&self) -> Vec<&str> {
        self.exports
            .iter()
            .filter(|(_, paths)| paths.iter().any(String::is_empty))
            .map(|(name, _)| name.as_str())
            .collect()
    }

    /// Names exported at more than one public path, with those paths.
    pub(crate) fn duplicates(&self) -> Vec<(String, Vec<String>)> {
        self.exports
            .iter()
            .filter(|(_, paths)| paths.len() > 1)
            .map(|(name, paths)| {
                let mut shown: Vec<String> = paths
                    .iter()
                    .map(|module| {
                        if module.is_empty() {
                            name.clone()
                        } else {
                            format!("{module}::{name}")
                        }
                    })
                    .collect();
                shown.sort();
                (name.clone(), shown)
            })
            .collect()
    }

    fn export(&mut self, module: &str, name: String) {
        self.exports
            .entry(name)
            .or_default()
            .push(module.to_owned());
    }

    /// Records the public items of `items`, the contents of `module` (whose nested module
    /// files live in `dir`).
    fn walk(&mut self, module: &str, items: &[Item], dir: &Path) -> Result<(), String> {
        for item in items {
            match item {
                Item::Use(used) if is_pub(&used.vis) => {
                    for name in leaves(&used.tree) {
                        if name != "_" {
                            self.export(module, name);
                        }
                    }
                }
                Item::Mod(sub) if is_pub(&sub.vis) => {
                    let name = sub.ident.to_string();
                    self.export(module, name.clone());
                    let path = join(module, &name);
                    match &sub.content {
                        Some((_, inline)) => self.walk(&path, inline, &dir.join(&name))?,
                        None => {
                            let (file, sub_dir) = module_file(dir, &name)?;
                            self.walk(&path, &parse(&file)?.items, &sub_dir)?;
                        }
                    }
                }
                other => {
                    if let Some(name) = public_item_name(other) {
                        self.export(module, name);
                    }
                }
            }
        }
        Ok(())
    }
}

fn parse(path: &Path) -> Result<syn::File, String> {
    let text =
        fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    syn::parse_file(&text).map_err(|e| format!("cannot parse {}: {e}", path.display()))
}

fn join(module: &str, name: &str) -> String {
    if module.is_empty() {
        name.to_owned()
    } else {
        format!("{module}::{name}")
    }
}

/// Where the file of module `name` declared in `dir` is, and where its own submodules are.
fn module_file(dir: &Path, name: &str) -> Result<(PathBuf, PathBuf), String> {
    let flat = dir.join(format!("{name}.rs"));
    if flat.exists() {
        return Ok((flat, dir.join(name)));
    }
    let nested = dir.join(name).join("mod.rs");
    if nested.exists() {
        return Ok((nested, dir.join(name)));
    }
    Err(format!("no file for module `{name}` in {}", dir.display()))
}

/// `pub` exactly: `pub(crate)` and narrower are not part of the surface.
fn is_pub(vis: &Visibility) -> bool {
    matches!(vis, Visibility::Public(_))
}

/// The names a `use` tree brings in.
fn leaves(tree: &UseTree) -> Vec<String> {
    match tree {
        UseTree::Path(path) => leaves(&path.tree),
        UseTree::Name(name) => vec![name.ident.to_string()],
        UseTree::Rename(rename) => vec![rename.rename.to_string()],
        UseTree::Glob(_) => vec!["*".to_owned()],
        UseTree::Group(group) => group.items.iter().flat_map(leaves).collect(),
    }
}

fn public_item_name(item: &Item) -> Option<String> {
    let (vis, ident) = match item {
        Item::Const(i) => (&i.vis, &i.ident),
        Item::Enum(i) => (&i.vis, &i.ident),
        Item::Fn(i) => (&i.vis, &i.sig.ident),
        Item::Static(i) => (&i.vis, &i.ident),
        Item::Struct(i) => (&i.vis, &i.ident),
        Item::Trait(i) => (&i.vis, &i.ident),
        Item::Type(i) => (&i.vis, &i.ident),
        Item::Union(i) => (&i.vis, &i.ident),
        Item::Macro(i) => {
            let exported = i.attrs.iter().any(|a| a.path().is_ident("macro_export"));
            return exported.then(|| i.ident.as_ref().map(ToString::to_string))?;
        }
        _ => return None,
    };
    is_pub(vis).then(|| ident.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn surface(lib: &str, files: &[(&str, &str)]) -> Surface {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("lib.rs"), lib).unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
        Surface::read(&dir.path().join("lib.rs")).unwrap()
    }

    #[test]
    fn re_exports_modules_and_items_are_read_and_private_ones_ignored() {
        let surface = surface(
            "mod private; pub mod store; pub use private::{A, B as C}; pub struct D; \
             pub(crate) struct Hidden; pub mod inline { pub fn f() {} }",
            &[
                ("private.rs", "pub struct A; pub struct B;"),
                ("store/mod.rs", "pub mod codec; pub use crate::private::A;"),
                ("store/codec.rs", "pub fn encode() {}"),
            ],
        );
        assert_eq!(surface.root(), ["A", "C", "D", "inline", "store"]);
        assert_eq!(
            surface.duplicates(),
            [("A".to_owned(), vec!["A".to_owned(), "store::A".to_owned()])]
        );
    }
}
