//! The `packages` leg of `cargo xtask test`: the publishable library crates packaged in publish
//! order, and each package built and tested from what it ships.
//!
//! `cargo package --no-verify` packs every crate of [`PUBLISH_ORDER`] in one call (cargo resolves a
//! package's dependencies on the crates packed before it from a temporary local registry, so
//! nothing needs to be on crates.io yet). It fails when a crate cannot be published, e.g. when a
//! dependency has no version. The `.crate` files are then unpacked into `target/package-check/`, a
//! workspace of their own whose `[patch.crates-io]` points each crate's registry dependencies at the
//! unpacked neighbours, with the root's lockfile (so every version is the workspace's) and profiles.
//! There `cargo test --all-targets --no-run` builds the library, the tests, the benches and the
//! examples that each package ships, and `cargo test --lib --tests --examples` runs the tests.
//! Everything is `--offline`: the earlier legs have fetched every crate. The build shares the
//! workspace's `target/` folder, so only the four packages are compiled again.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::cmd::Cmd;

/// The publishable library crates, each after the crates it depends on: publish them in this order
/// (docs/crates.md). A tidy test checks the order against the manifests.
pub(crate) const PUBLISH_ORDER: [&str; 4] = ["vgg-weights", "tensor-ops", "nst-optim", "nst-costs"];

/// Where the packages are unpacked and built, under the workspace root.
const CHECK_DIR: &str = "target/package-check";

/// The command the leg starts with, for the plan and its tests.
pub(crate) fn package_cmd() -> Cmd {
    let mut cmd = Cmd::cargo(["package", "--no-verify", "--offline", "--allow-dirty"]);
    for krate in PUBLISH_ORDER {
        cmd.args(["-p", krate]);
    }
    cmd
}

/// Runs the whole leg in `root` (the commands it runs are echoed).
pub(crate) fn check(root: &Path, env: &[(String, String)]) -> Result<()> {
    let version = workspace_version(&read(&root.join("Cargo.toml"))?)
        .context("no `version` in [workspace.package] of Cargo.toml")?;
    let with_env = |mut cmd: Cmd, dir: &Path| {
        cmd.current_dir(dir);
        for (key, value) in env {
            cmd.quiet_env(key, value);
        }
        cmd
    };
    with_env(package_cmd(), root).run()?;

    let dir = root.join(CHECK_DIR);
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut unpacked = Vec::new();
    for krate in PUBLISH_ORDER {
        let file = root.join(format!("target/package/{krate}-{version}.crate"));
        if !file.is_file() {
            bail!("`cargo package` wrote no {}", file.display());
        }
        // `-m`: the files get the time of unpacking. cargo package stamps them all with one fixed
        // date, older than the last build, and cargo would then take that build as up to date.
        let tar = Cmd::new("tar", ["-xzmf".to_owned(), file.display().to_string()]);
        with_env(tar, &dir).run()?;
        unpacked.push(format!("{krate}-{version}"));
    }
    let manifest = check_manifest(&unpacked, &read(&root.join("Cargo.toml"))?);
    write(&dir.join("Cargo.toml"), &manifest)?;
    fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock"))
        .context("copying Cargo.lock into the package check")?;

    let target = root.join("target").display().to_string();
    for args in [
        &["test", "--offline", "--all-targets", "--no-run"][..],
        &[
            "test",
            "--offline",
            "--lib",
            "--tests",
            "--examples",
            "--no-fail-fast",
        ],
    ] {
        let mut cmd = Cmd::cargo(args.iter().copied());
        cmd.env("CARGO_TARGET_DIR", &target);
        with_env(cmd, &dir).run()?;
    }
    Ok(())
}

/// The manifest of the package-check workspace: the unpacked crates as members, each crate's
/// crates.io dependencies on the others patched to them, and the root manifest's `[profile.*]`
/// sections (the same settings make the registry crates' artifacts shared with the workspace's).
fn check_manifest(unpacked: &[String], root_manifest: &str) -> String {
    let mut out = String::from(
        "# Written by `cargo xtask test` (xtask/src/packages.rs): the published packages, unpacked.\n\
         [workspace]\nresolver = \"3\"\nmembers = [",
    );
    let members: Vec<String> = unpacked.iter().map(|dir| format!("\"{dir}\"")).collect();
    out.push_str(&members.join(", "));
    out.push_str("]\n\n[patch.crates-io]\n");
    for (krate, dir) in PUBLISH_ORDER.iter().zip(unpacked) {
        out.push_str(&format!("{krate} = {{ path = \"{dir}\" }}\n"));
    }
    for section in profile_sections(root_manifest) {
        out.push('\n');
        out.push_str(&section);
    }
    out
}

/// The `[profile...]` sections of a manifest, each with its lines up to the next section.
fn profile_sections(manifest: &str) -> Vec<String> {
    let mut sections = Vec::new();
    let mut current: Option<String> = None;
    for line in manifest.lines() {
        if line.starts_with('[') {
            sections.extend(current.take());
            if line.starts_with("[profile") {
                current = Some(String::new());
            }
        }
        if let Some(section) = &mut current {
            section.push_str(line);
            section.push('\n');
        }
    }
    sections.extend(current);
    sections
}

/// `version` of `[workspace.package]`.
pub(crate) fn workspace_version(root_manifest: &str) -> Option<String> {
    let mut in_section = false;
    for line in root_manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_section = line == "[workspace.package]";
        } else if in_section
            && let Some((key, value)) = line.split_once('=')
            && key.trim() == "version"
        {
            return Some(value.trim().trim_matches('"').to_owned());
        }
    }
    None
}

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn write(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = r#"
[workspace]
members = ["crates/*"]

[workspace.package]
version = "0.3.1"
edition = "2024"

[workspace.dependencies]
tensor-ops = { path = "crates/tensor-ops", version = "0.3.1" }

[profile.dev]
debug = "line-tables-only"

[profile.dev.package."*"]
opt-level = 2

[workspace.lints.rust]
missing_docs = "warn"
"#;

    #[test]
    fn reads_the_workspace_version() {
        assert_eq!(workspace_version(ROOT).as_deref(), Some("0.3.1"));
        assert_eq!(workspace_version("[package]\nversion = \"1.0.0\"\n"), None);
    }

    #[test]
    fn the_check_manifest_patches_every_crate_and_keeps_the_profiles() {
        let unpacked: Vec<String> = PUBLISH_ORDER.iter().map(|k| format!("{k}-0.3.1")).collect();
        let manifest = check_manifest(&unpacked, ROOT);
        assert!(manifest.contains("members = [\"vgg-weights-0.3.1\", \"tensor-ops-0.3.1\""));
        for krate in PUBLISH_ORDER {
            assert!(
                manifest.contains(&format!("{krate} = {{ path = \"{krate}-0.3.1\" }}")),
                "{manifest}"
            );
        }
        assert!(manifest.contains("[profile.dev]\ndebug = \"line-tables-only\"\n"));
        assert!(manifest.contains("[profile.dev.package.\"*\"]\nopt-level = 2\n"));
        assert!(!manifest.contains("lints"), "{manifest}");
    }

    #[test]
    fn the_leg_packages_in_publish_order() {
        assert_eq!(
            package_cmd().to_string(),
            "cargo package --no-verify --offline --allow-dirty -p vgg-weights -p tensor-ops \
             -p nst-optim -p nst-costs"
        );
    }
}
