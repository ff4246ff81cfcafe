//! The crate's layers import downwards only (docs/architecture.md, "Layers"): a module may name
//! `crate::<m>` only for an `m` of its own layer or a lower one. The HTTP/1.1 codec and client know
//! nothing of routing, slots or APIs; routing knows nothing of the API; discovery nothing of the
//! handlers; nothing below the proxy layer knows the request's phases.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each top-level module of `src/` and its layer, lowest first.
const LAYERS: &[(&str, u32)] = &[
    ("config", 0),
    ("rt", 0),
    ("translate", 0),
    ("logging", 0),
    ("cli", 0),
    ("http", 1),
    ("routing", 2),
    ("cache", 2),
    ("accounting", 2),
    ("metrics", 2),
    ("state", 3),
    ("reload", 3),
    ("discovery", 4),
    ("api", 5),
    ("auth", 5),
    ("proxy", 6),
    ("server", 7),
    ("lib", 8),
];

fn layer(module: &str) -> u32 {
    LAYERS
        .iter()
        .find(|(m, _)| *m == module)
        .map(|(_, l)| *l)
        .unwrap_or_else(|| {
            panic!("module `{module}` has no layer: add it to LAYERS and to docs/architecture.md")
        })
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to.
fn module_of(src: &Path, file: &Path) -> String {
    let first = file
        .strip_prefix(src)
        .expect("under src")
        .components()
        .next()
        .expect("a path");
    let name = first.as_os_str().to_string_lossy();
    name.strip_suffix(".rs").unwrap_or(&name).to_string()
}

/// Every `crate::<m>` a file names (in `use` lines and in paths alike).
fn crate_references(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        // `nomyo_crate::` or the like is not a reference to this crate.
        let before = text[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &text[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            found.insert(name);
        }
    }
    found
}

#[test]
fn every_module_imports_only_its_own_layer_or_lower_ones() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut upward = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        if module == "main" {
            continue; // the binary: it sees the library from outside
        }
        let text = std::fs::read_to_string(file).expect("read a source file");
        for target in crate_references(&text) {
            if layer(&target) > layer(&module) {
                upward.push(format!(
                    "{} ({module}, layer {}) names crate::{target} (layer {})",
                    file.strip_prefix(&src).unwrap().display(),
                    layer(&module),
                    layer(&target)
                ));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that go up a layer:\n{}",
        upward.join("\n")
    );
    assert!(
        files.len() > 50,
        "found only {} files under src/",
        files.len()
    );
}

#[test]
fn the_reference_scanner_sees_paths_and_use_lines() {
    let text =
        "use crate::http::body;\nlet x = crate::routing::fetch::get(); my_crate::x(); crate::api";
    let found: Vec<String> = crate_references(text).into_iter().collect();
    assert_eq!(found, ["api", "http", "routing"]);
}
