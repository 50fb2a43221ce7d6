//! Tidy tests: house rules checked over the source tree (run by `cargo test -p xtask`).
//!
//! - every `.rs` file under `crates/` and `xtask/` starts with a `//!` comment;
//! - the library crates do not print (`println!`, `eprintln!`, `print!`, `eprint!`, `dbg!`) outside their unit-test
//!   modules (`tests.rs`);
//! - each crate's `[dependencies]` on other workspace crates are allowed by the table in
//!   `docs/ARCHITECTURE.md`, and `test-utils` is only ever a dev-dependency;
//! - every member opts into the workspace lints with `[lints] workspace = true`.
//!
//! The manifests are read with a few lines of string handling, enough for the way this workspace
//! writes them (one dependency per line, or a `[dependencies.name]` table).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use crate::project_root;

/// The crates that are libraries for others to use: they return errors and never print.
const LIBRARY_CRATES: [&str; 5] = [
    "vgg-weights",
    "tensor-ops",
    "nst-costs",
    "nst-optim",
    "nst-engine",
];

/// The crate whose place is `[dev-dependencies]` only.
const DEV_ONLY_CRATE: &str = "test-utils";

/// Macros that print or debug-print.
const PRINT_MACROS: [&str; 5] = ["println!", "eprintln!", "print!", "eprint!", "dbg!"];

#[test]
fn every_rust_file_starts_with_an_inner_doc_comment() {
    let root = project_root();
    let mut offenders = Vec::new();
    for dir in ["crates", "xtask"] {
        for file in rust_files(&root.join(dir)) {
            let text = read(&file);
            if !text.starts_with("//!") {
                offenders.push(relative(&root, &file));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "these files do not start with a `//!` line saying what they are for:\n  {}",
        offenders.join("\n  ")
    );
}

#[test]
fn library_crates_do_not_print() {
    let root = project_root();
    let mut offenders = Vec::new();
    for krate in LIBRARY_CRATES {
        for file in rust_files(&root.join("crates").join(krate).join("src")) {
            // Unit-test modules (`tests.rs`) may say SKIPPED on stderr; they are not the library.
            if file.file_name().is_some_and(|n| n == "tests.rs") {
                continue;
            }
            for (idx, line) in read(&file).lines().enumerate() {
                if let Some(mac) = print_macro_in(line) {
                    offenders.push(format!("{}:{}: {mac}", relative(&root, &file), idx + 1));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "library crates return values and errors and never print; found:\n  {}",
        offenders.join("\n  ")
    );
}

#[test]
fn crate_dependencies_follow_the_architecture_table() {
    let root = project_root();
    let arch = read(&root.join("docs/ARCHITECTURE.md"));
    let table =
        allowed_edges(&arch).expect("docs/ARCHITECTURE.md has an allowed-dependencies table");
    let manifests = member_manifests(&root);
    let ours: BTreeSet<&str> = manifests.iter().map(|(_, m)| m.name.as_str()).collect();
    let mut problems = Vec::new();
    for (path, manifest) in &manifests {
        let Some((_, allowed)) = table.iter().find(|(name, _)| *name == manifest.name) else {
            problems.push(format!(
                "{}: crate `{}` has no row in the table of docs/ARCHITECTURE.md",
                relative(&root, path),
                manifest.name
            ));
            continue;
        };
        for dep in &manifest.deps {
            let edge_to_ours = ours.contains(dep.name.as_str()) && dep.name != DEV_ONLY_CRATE;
            if dep.kind == DepKind::Normal
                && edge_to_ours
                && !allowed.iter().any(|a| *a == dep.name)
            {
                problems.push(format!(
                    "{}: `{}` -> `{}` is not an allowed edge (docs/ARCHITECTURE.md)",
                    relative(&root, path),
                    manifest.name,
                    dep.name
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn test_utils_is_only_a_dev_dependency() {
    let root = project_root();
    let mut problems = Vec::new();
    for (path, manifest) in member_manifests(&root) {
        for dep in &manifest.deps {
            if dep.name == DEV_ONLY_CRATE && dep.kind != DepKind::Dev {
                problems.push(format!(
                    "{}: `{DEV_ONLY_CRATE}` in [{}]; it belongs in [dev-dependencies] only",
                    relative(&root, &path),
                    dep.section
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_member_uses_the_workspace_lints() {
    let root = project_root();
    let manifests = member_manifests(&root);
    assert!(
        manifests.len() >= 2,
        "found only {} member manifests under {}",
        manifests.len(),
        root.display()
    );
    let offenders: Vec<String> = manifests
        .iter()
        .filter(|(_, m)| !m.workspace_lints)
        .map(|(path, _)| relative(&root, path))
        .collect();
    assert!(
        offenders.is_empty(),
        "these manifests lack `[lints] workspace = true`:\n  {}",
        offenders.join("\n  ")
    );
}

/// The part of a `Cargo.toml` the tidy tests look at.
#[derive(Debug, Default, PartialEq)]
struct Manifest {
    name: String,
    deps: Vec<Dep>,
    workspace_lints: bool,
}

#[derive(Debug, PartialEq)]
struct Dep {
    name: String,
    kind: DepKind,
    /// The section it was found in, for messages (`dependencies`, `target.'cfg(unix)'.dependencies`).
    section: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DepKind {
    /// `[dependencies]` and `[build-dependencies]`, also target-specific: edges of the real graph.
    Normal,
    /// `[dev-dependencies]`.
    Dev,
}

/// Reads the package name, the dependency names by kind and the `[lints]` setting.
fn parse_manifest(text: &str) -> Manifest {
    let mut manifest = Manifest::default();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            section = header
                .split(']')
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned();
            // `[dependencies.foo]`: a dependency written as a table.
            if let Some((deps_section, name)) = split_dep_table(&section) {
                let kind = dep_kind(deps_section).expect("split_dep_table checked the kind");
                manifest.deps.push(Dep {
                    name: unquote(name).to_owned(),
                    kind,
                    section: deps_section.to_owned(),
                });
                section.clear();
            }
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        let value = value.trim();
        match section.as_str() {
            "package" if key == "name" => manifest.name = unquote(value).to_owned(),
            "lints" if key == "workspace" => manifest.workspace_lints = value == "true",
            _ => {
                if let Some(kind) = dep_kind(&section) {
                    let name = key.split('.').next().unwrap_or(key).trim();
                    manifest.deps.push(Dep {
                        name: unquote(name).to_owned(),
                        kind,
                        section: section.clone(),
                    });
                }
            }
        }
    }
    manifest
}

/// The kind of dependency a section declares, or `None` for a section that declares none.
fn dep_kind(section: &str) -> Option<DepKind> {
    // `target.'cfg(...)'.dependencies` counts like `dependencies`.
    let last = section.rsplit('.').next().unwrap_or(section);
    match last {
        "dependencies" | "build-dependencies" => Some(DepKind::Normal),
        "dev-dependencies" => Some(DepKind::Dev),
        _ => None,
    }
}

/// Splits `dependencies.foo` (or `target.x.dev-dependencies.foo`) into the section and `foo`.
fn split_dep_table(section: &str) -> Option<(&str, &str)> {
    let (head, name) = section.rsplit_once('.')?;
    dep_kind(head).map(|_| (head, name))
}

fn unquote(s: &str) -> &str {
    s.trim().trim_matches('"').trim_matches('\'')
}

/// Reads the allowed-dependencies table of `docs/ARCHITECTURE.md`: for each crate (first column,
/// in backticks), the crates it may depend on (backticked names in the second column, or every
/// crate of the rows above for "all of the above").
fn allowed_edges(arch: &str) -> Option<Vec<(&str, Vec<&str>)>> {
    let start = arch.find("## Allowed dependencies")?;
    let mut rows: Vec<(&str, Vec<&str>)> = Vec::new();
    let mut in_table = false;
    for line in arch[start..].lines().skip(1) {
        let line = line.trim();
        if !line.starts_with('|') {
            if in_table {
                break;
            }
            continue;
        }
        in_table = true;
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let [first, second, ..] = cells.as_slice() else {
            continue;
        };
        // The header and the `| --- |` rule have no backticked crate name.
        let Some(name) = backticked(first).next() else {
            continue;
        };
        let allowed = if second.contains("all of the above") {
            rows.iter().map(|(n, _)| *n).collect()
        } else {
            backticked(second).collect()
        };
        rows.push((name, allowed));
    }
    (!rows.is_empty()).then_some(rows)
}

/// The `backticked` words of a table cell.
fn backticked(cell: &str) -> impl Iterator<Item = &str> {
    cell.split('`').skip(1).step_by(2)
}

/// The first printing macro called on a line of code, ignoring `//` comments (doc examples too).
fn print_macro_in(line: &str) -> Option<&'static str> {
    let code = line.trim_start();
    if code.starts_with("//") {
        return None;
    }
    PRINT_MACROS.into_iter().find(|mac| {
        code.match_indices(mac).any(|(at, _)| {
            // `eprintln!` is reported as itself, not as a `println!` inside it.
            let before = code[..at].chars().next_back();
            !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
        })
    })
}

/// `crates/*/Cargo.toml` and `xtask/Cargo.toml`, parsed.
fn member_manifests(root: &Path) -> Vec<(PathBuf, Manifest)> {
    let mut paths: Vec<PathBuf> = fs::read_dir(root.join("crates"))
        .expect("the workspace has a crates/ folder")
        .map(|entry| {
            entry
                .expect("readable crates/ entry")
                .path()
                .join("Cargo.toml")
        })
        .filter(|path| path.is_file())
        .collect();
    paths.sort();
    paths.push(root.join("xtask/Cargo.toml"));
    paths
        .into_iter()
        .map(|path| {
            let manifest = parse_manifest(&read(&path));
            (path, manifest)
        })
        .collect()
}

/// Every `.rs` file under `dir`, sorted, skipping `target/` folders and hidden folders.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("readable directory entry").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if path.is_dir() {
                if name != "target" && !name.starts_with('.') {
                    stack.push(path);
                }
            } else if name.ends_with(".rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()))
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

// The checks above are only as good as these parsers; test them on fixed text too.

#[test]
fn manifest_parser_reads_names_kinds_and_lints() {
    let text = r#"
[package]
name = "nst-costs"
version.workspace = true

[features]
cuda = ["tensor-ops/cuda"]

[dependencies]
ndarray = { workspace = true, features = ["rayon"] }
tensor-ops.workspace = true   # for Gemm

[target.'cfg(unix)'.dependencies]
libc = "0.2"

[dev-dependencies]
test-utils.workspace = true

[build-dependencies.cc]
version = "1"

[lints]
workspace = true
"#;
    let m = parse_manifest(text);
    assert_eq!(m.name, "nst-costs");
    assert!(m.workspace_lints);
    let deps: Vec<(&str, DepKind)> = m.deps.iter().map(|d| (d.name.as_str(), d.kind)).collect();
    assert_eq!(
        deps,
        [
            ("ndarray", DepKind::Normal),
            ("tensor-ops", DepKind::Normal),
            ("libc", DepKind::Normal),
            ("test-utils", DepKind::Dev),
            ("cc", DepKind::Normal),
        ]
    );
}

#[test]
fn manifest_parser_sees_missing_lints() {
    let m = parse_manifest("[package]\nname = \"x\"\n[lints.rust]\nmissing_docs = \"warn\"\n");
    assert!(!m.workspace_lints);
    assert!(m.deps.is_empty());
}

#[test]
fn edge_table_parser_expands_all_of_the_above() {
    let arch = "\
# Architecture
## Allowed dependencies between our crates
| crate | may depend on |
| --- | --- |
| `a` | — |
| `b` | `a` |
| `c` | all of the above |
| `t` | — (dev-dependency only) |

## Next
| `z` | `a` |
";
    let table = allowed_edges(arch).unwrap();
    let expected: Vec<(&str, Vec<&str>)> = vec![
        ("a", vec![]),
        ("b", vec!["a"]),
        ("c", vec!["a", "b"]),
        ("t", vec![]),
    ];
    assert_eq!(table, expected);
    assert_eq!(allowed_edges("# no table here"), None);
}

#[test]
fn print_detector_skips_comments_and_lookalikes() {
    assert_eq!(print_macro_in("    println!(\"x\");"), Some("println!"));
    assert_eq!(print_macro_in("let _ = dbg!(x);"), Some("dbg!"));
    assert_eq!(print_macro_in("eprintln!(\"{e}\")"), Some("eprintln!"));
    assert_eq!(print_macro_in("/// println!(\"in a doc example\");"), None);
    assert_eq!(print_macro_in("// dbg!(x) was here"), None);
    assert_eq!(print_macro_in("my_println!(x)"), None);
    assert_eq!(print_macro_in("format!(\"{x}\")"), None);
}
