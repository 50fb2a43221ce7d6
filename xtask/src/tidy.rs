//! Tidy tests: house rules checked over the source tree (run by `cargo test -p xtask`).
//!
//! - every `.rs` file under `crates/` and `xtask/` starts with a `//!` comment;
//! - the library crates do not print (`println!`, `eprintln!`, `print!`, `eprint!`, `dbg!`) outside their unit-test
//!   modules (`tests.rs`);
//! - each crate's `[dependencies]` on other workspace crates are allowed by the table in
//!   `docs/ARCHITECTURE.md`, and `test-utils` is only ever a dev-dependency;
//! - every member opts into the workspace lints with `[lints] workspace = true`;
//! - the publishable crates are ready to publish: the metadata crates.io shows, a README and the
//!   license files, dependencies that carry the workspace's version, and a publish order in which
//!   each crate comes after the crates it depends on;
//! - their documentation stands on its own: no paths into this repository's `docs/`, no in-house
//!   words ("the seed", "the pipeline");
//! - no committed file is a program's or a test's output, and no document names an absolute path
//!   of a build machine;
//! - the downstream crate's lockfile pins the workspace's versions.
//!
//! The manifests are read with a few lines of string handling, enough for the way this workspace
//! writes them (one dependency per line, or a `[dependencies.name]` table).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use crate::packages::{PUBLISH_ORDER, workspace_version};
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

/// What crates.io shows of a crate, which every publishable manifest must set (directly or from
/// the workspace).
const PACKAGE_METADATA: [&str; 9] = [
    "description",
    "license",
    "repository",
    "documentation",
    "readme",
    "keywords",
    "categories",
    "rust-version",
    "include",
];

/// The test-only crates: workspace dependencies without a version, so that `cargo package` drops
/// them from the packages' dev-dependencies.
const UNPUBLISHED_CRATES: [&str; 2] = ["test-utils", "device-emu"];

/// Extensions of the files that programs and tests write: images, plots, animations, metrics,
/// run records and checkpoints, weights, partial downloads, logs.
const OUTPUT_EXTENSIONS: [&str; 12] = [
    "png", "jpg", "jpeg", "gif", "svg", "json", "jsonl", "mat", "part", "log", "csv", "npy",
];

/// Where files with those extensions are committed on purpose (inputs and fixtures); a path
/// matches when it starts with one of these or, for the `/`-framed ones, contains it.
const DATA_PLACES: [&str; 6] = [
    "images/",
    "docs/images/",
    "fuzz/corpus/",
    "/tests/data/",
    "/src/",
    "/assets/",
];

/// Beginnings of absolute paths that only exist on some machine (a home, a build workspace).
const MACHINE_PATHS: [&str; 7] = [
    "/work/",
    "/home/",
    "/root/",
    "/Users/",
    "/mnt/",
    "/scratch/",
    "C:\\Users",
];

/// Words of this repository that mean nothing to a reader of one crate's documentation.
const IN_HOUSE_WORDS: [&str; 5] = ["the seed", "seed's", "the pipeline", "the CLI", "docs/"];

#[test]
fn publishable_crates_carry_their_metadata_readme_and_licenses() {
    let root = project_root();
    let mut problems = Vec::new();
    for krate in PUBLISH_ORDER {
        let dir = root.join("crates").join(krate);
        let text = read(&dir.join("Cargo.toml"));
        let keys = package_keys(&text);
        for key in PACKAGE_METADATA {
            if !keys.contains(key) {
                problems.push(format!(
                    "crates/{krate}/Cargo.toml: no `{key}` in [package]"
                ));
            }
        }
        if keys.contains("publish") {
            problems.push(format!("crates/{krate}/Cargo.toml: sets `publish`"));
        }
        for file in ["README.md", "LICENSE-MIT", "LICENSE-APACHE"] {
            if !dir.join(file).is_file() {
                problems.push(format!("crates/{krate}/{file} is missing"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn publish_order_puts_each_crate_after_its_dependencies() {
    let root = project_root();
    let ours: BTreeSet<String> = member_manifests(&root)
        .into_iter()
        .map(|(_, m)| m.name)
        .collect();
    let mut problems = Vec::new();
    for (idx, krate) in PUBLISH_ORDER.iter().enumerate() {
        let manifest = parse_manifest(&read(&root.join("crates").join(krate).join("Cargo.toml")));
        for dep in manifest.deps.iter().filter(|d| d.kind == DepKind::Normal) {
            if ours.contains(&dep.name) && !PUBLISH_ORDER[..idx].contains(&dep.name.as_str()) {
                problems.push(format!(
                    "`{krate}` depends on `{}`, which does not come before it in PUBLISH_ORDER \
                     (xtask/src/packages.rs)",
                    dep.name
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn workspace_dependencies_on_our_crates_carry_the_workspace_version() {
    let root = project_root();
    let text = read(&root.join("Cargo.toml"));
    let version = workspace_version(&text).expect("[workspace.package] has a version");
    let deps = workspace_path_dependencies(&text);
    assert!(
        PUBLISH_ORDER
            .iter()
            .all(|k| deps.iter().any(|(n, _)| n == k)),
        "every publishable crate is in [workspace.dependencies]: {deps:?}"
    );
    let mut problems = Vec::new();
    for (name, dep_version) in &deps {
        let unpublished = UNPUBLISHED_CRATES.contains(&name.as_str());
        match (unpublished, dep_version) {
            (false, Some(v)) if *v == version => {}
            (false, _) => problems.push(format!(
                "[workspace.dependencies] `{name}` needs `version = \"{version}\"` (the workspace's)"
            )),
            (true, None) => {}
            (true, Some(_)) => problems.push(format!(
                "[workspace.dependencies] `{name}` is test-only: without a version, `cargo package` \
                 drops it from the packages"
            )),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn library_docs_stand_on_their_own() {
    let root = project_root();
    let mut offenders = Vec::new();
    for krate in PUBLISH_ORDER {
        let dir = root.join("crates").join(krate);
        let mut texts: Vec<(PathBuf, Vec<(usize, String)>)> = Vec::new();
        let readme = dir.join("README.md");
        texts.push((readme.clone(), numbered(&read(&readme))));
        for file in rust_files(&dir.join("src")) {
            let docs = numbered(&read(&file))
                .into_iter()
                .filter(|(_, line)| {
                    let line = line.trim_start();
                    line.starts_with("//!") || line.starts_with("///")
                })
                .collect();
            texts.push((file, docs));
        }
        for (file, lines) in texts {
            for (idx, line) in lines {
                let lower = line.replace("docs.rs", "");
                if let Some(word) = IN_HOUSE_WORDS.iter().find(|w| lower.contains(*w)) {
                    offenders.push(format!("{}:{idx}: `{word}`", relative(&root, &file)));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "the publishable crates' docs are read on docs.rs and crates.io, without this repository; \
         say what is meant instead of:\n  {}",
        offenders.join("\n  ")
    );
}

#[test]
fn no_committed_file_is_a_program_output() {
    let root = project_root();
    let offenders: Vec<String> = tracked_files(&root)
        .into_iter()
        .filter(|path| is_output_file(path))
        .collect();
    assert!(
        offenders.is_empty(),
        "these committed files look like the output of a run or a test (metrics, images, \
         checkpoints, weights, partial downloads); remove them, and make the test write into its \
         temporary folder:\n  {}",
        offenders.join("\n  ")
    );
}

#[test]
fn documents_name_no_absolute_paths_of_a_machine() {
    let root = project_root();
    let mut offenders = Vec::new();
    for path in tracked_files(&root) {
        let markdown = path.ends_with(".md");
        if !markdown && !path.ends_with(".rs") {
            continue;
        }
        for (idx, line) in numbered(&read(&root.join(&path))) {
            let trimmed = line.trim_start();
            let prose = markdown || trimmed.starts_with("//!") || trimmed.starts_with("///");
            if let Some(prefix) = MACHINE_PATHS.iter().find(|p| prose && line.contains(*p)) {
                offenders.push(format!("{path}:{idx}: `{prefix}…`"));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "documents name paths that exist on one machine only; use a path in the repository or \
         describe the file:\n  {}",
        offenders.join("\n  ")
    );
}

#[test]
fn downstream_lockfile_matches_the_workspace() {
    let root = project_root();
    let workspace = lock_versions(&read(&root.join("Cargo.lock")));
    let downstream = lock_versions(&read(&root.join("examples/downstream/Cargo.lock")));
    let mut problems = Vec::new();
    for (name, version) in &downstream {
        if name == "nst-downstream" {
            continue;
        }
        if !workspace.contains(&(name.clone(), version.clone())) {
            problems.push(format!("{name} {version}"));
        }
    }
    for krate in PUBLISH_ORDER {
        if !downstream.iter().any(|(name, _)| name == krate) {
            problems.push(format!("{krate} (missing)"));
        }
    }
    assert!(
        problems.is_empty(),
        "examples/downstream/Cargo.lock holds versions the workspace's Cargo.lock does not; refresh \
         it as examples/downstream/README.md says:\n  {}",
        problems.join("\n  ")
    );
}

/// The keys set in `[package]` (`repository.workspace = true` counts as `repository`).
fn package_keys(manifest: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut in_package = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package && let Some((key, _)) = line.split_once('=') {
            let key = key.trim();
            keys.insert(key.split('.').next().unwrap_or(key).to_owned());
        }
    }
    keys
}

/// `[workspace.dependencies]` entries with a `path`, and their `version` if any.
fn workspace_path_dependencies(manifest: &str) -> Vec<(String, Option<String>)> {
    let mut deps = Vec::new();
    let mut in_section = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_section = line == "[workspace.dependencies]";
            continue;
        }
        let Some((name, value)) = line.split_once('=').filter(|_| in_section) else {
            continue;
        };
        if !value.contains("path") {
            continue;
        }
        let version = value.split_once("version").and_then(|(_, rest)| {
            let rest = rest
                .trim_start()
                .strip_prefix('=')?
                .trim_start()
                .strip_prefix('"')?;
            rest.split('"').next().map(str::to_owned)
        });
        deps.push((name.trim().to_owned(), version));
    }
    deps
}

/// `(name, version)` of every package in a `Cargo.lock`.
fn lock_versions(lockfile: &str) -> BTreeSet<(String, String)> {
    lockfile
        .split("[[package]]")
        .skip(1)
        .filter_map(|block| {
            let field = |key: &str| {
                block.lines().find_map(|line| {
                    let (k, v) = line.split_once('=')?;
                    (k.trim() == key).then(|| v.trim().trim_matches('"').to_owned())
                })
            };
            Some((field("name")?, field("version")?))
        })
        .collect()
}

/// Whether a committed path (relative, `/`-separated) looks like something a run or a test wrote.
fn is_output_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let extension = name.rsplit_once('.').map_or("", |(_, e)| e);
    // Written by every run, never an input: metrics, run records, checkpoints, partial downloads,
    // and anything in an `output/` folder (the default output folder of `nst stylize`).
    let always = matches!(extension, "jsonl" | "part")
        || name.ends_with(".run.json")
        || name == "checkpoint.json"
        || path.split('/').any(|part| part == "output");
    let data = OUTPUT_EXTENSIONS.contains(&extension.to_ascii_lowercase().as_str());
    let in_data_place = DATA_PLACES.iter().any(|place| {
        if place.starts_with('/') {
            path.contains(place)
        } else {
            path.starts_with(place)
        }
    });
    always || (data && !in_data_place)
}

/// The files git tracks, as paths relative to `root` with `/` separators.
fn tracked_files(root: &Path) -> Vec<String> {
    let out = std::process::Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root)
        .output()
        .expect("the tidy tests run `git ls-files` in the repository (is git installed?)");
    assert!(
        out.status.success(),
        "`git ls-files` failed in {}: {}",
        root.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("tracked paths are UTF-8")
        .split('\0')
        .filter(|p| !p.is_empty())
        // A file deleted in the working tree but not yet in the index is no longer there.
        .filter(|p| root.join(p).is_file())
        .map(str::to_owned)
        .collect()
}

/// The lines of a text with their 1-based numbers.
fn numbered(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .enumerate()
        .map(|(idx, line)| (idx + 1, line.to_owned()))
        .collect()
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

#[test]
fn output_detector_knows_outputs_from_fixtures() {
    for output in [
        "crates/nst-cli/m.jsonl",
        "result.png",
        "crates/nst-engine/out.png",
        "output/result.run.json",
        "crates/nst-cli/output/iter-0002.png",
        "run/checkpoint.json",
        "pretrained-model/imagenet-vgg-verydeep-19.mat.part",
        "weights.mat",
    ] {
        assert!(is_output_file(output), "{output}");
    }
    for input in [
        "images/louvre_pyramid.jpg",
        "docs/images/louvre_hokusai_vgg16_costs.svg",
        "crates/vgg-weights/tests/data/octave_v6.mat",
        "crates/nst-engine/src/image_io/cmyk.jpg",
        "crates/nst-cli/assets/DejaVuSans.ttf",
        "fuzz/corpus/mat_reader/seed-1",
        "Cargo.lock",
        "crates/nst-cli/src/metrics.rs",
    ] {
        assert!(!is_output_file(input), "{input}");
    }
}

#[test]
fn manifest_helpers_read_package_keys_dependency_versions_and_lockfiles() {
    let keys = package_keys(
        "[package]\nname = \"a\"\nrepository.workspace = true\nreadme = \"README.md\"\n\
         [dependencies]\nserde = \"1\"\n",
    );
    assert_eq!(
        keys.into_iter().collect::<Vec<_>>(),
        ["name", "readme", "repository"]
    );
    let deps = workspace_path_dependencies(
        "[workspace.dependencies]\na = { path = \"crates/a\", version = \"0.2.0\" }\n\
         t = { path = \"crates/t\" }\nserde = \"1\"\n[profile.dev]\nb = { path = \"x\" }\n",
    );
    assert_eq!(
        deps,
        [
            ("a".to_owned(), Some("0.2.0".to_owned())),
            ("t".to_owned(), None)
        ]
    );
    let lock = "version = 4\n\n[[package]]\nname = \"a\"\nversion = \"1.0.0\"\n\
                dependencies = [\n \"b\",\n]\n\n[[package]]\nname = \"b\"\nversion = \"0.3.1\"\n";
    let versions: Vec<(String, String)> = lock_versions(lock).into_iter().collect();
    assert_eq!(
        versions,
        [
            ("a".to_owned(), "1.0.0".to_owned()),
            ("b".to_owned(), "0.3.1".to_owned())
        ]
    );
}
