//! `cargo xtask gpu-bundle`: everything a GPU machine without a Rust toolchain needs to validate the
//! `cuda` feature, in one folder: the release `nst` and the GPU test binaries (built here with the
//! feature, stripped), the `random_vgg19` example and the two sample images, and `run.sh` (`gpu_run.sh`),
//! which finds cuBLAS and NVRTC there and runs the tests, the 400×300 and 1024×768 benchmarks and an
//! end-to-end `nst stylize` on the GPU against the CPU.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::cmd::Cmd;

/// The script the bundle runs on the GPU machine.
const RUN_SH: &str = include_str!("gpu_run.sh");

/// The content and style images of `run.sh`'s end-to-end run (from `images/`).
const SAMPLE_IMAGES: [&str; 2] = ["louvre_pyramid.jpg", "hokusai_great_wave.jpg"];

/// Builds the bundle into `out` (replacing it) and returns its size in bytes.
pub(crate) fn bundle(root: &Path, out: &Path) -> Result<u64> {
    Cmd::cargo(["build", "--release", "-p", "nst-cli", "--features", "cuda"])
        .current_dir(root)
        .run()?;
    Cmd::cargo([
        "build",
        "--release",
        "-p",
        "nst-engine",
        "--example",
        "random_vgg19",
    ])
    .current_dir(root)
    .run()?;
    let tests = test_executables(root)?;
    if tests.len() != 3 {
        bail!(
            "expected the test binaries of tensor-ops (lib, tests/it) and nst-engine (lib), found {tests:?}"
        );
    }
    if out.exists() {
        std::fs::remove_dir_all(out).with_context(|| format!("removing {}", out.display()))?;
    }
    std::fs::create_dir_all(out.join("tests"))?;
    copy_stripped(&root.join("target/release/nst"), &out.join("nst"))?;
    copy_stripped(
        &root.join("target/release/examples/random_vgg19"),
        &out.join("random_vgg19"),
    )?;
    std::fs::create_dir_all(out.join("images"))?;
    for image in SAMPLE_IMAGES {
        let (from, to) = (
            root.join("images").join(image),
            out.join("images").join(image),
        );
        std::fs::copy(&from, &to).with_context(|| format!("copying {}", from.display()))?;
    }
    for (name, path) in &tests {
        copy_stripped(path, &out.join("tests").join(name))?;
    }
    let run = out.join("run.sh");
    std::fs::write(&run, RUN_SH).with_context(|| format!("writing {}", run.display()))?;
    // The newest glibc (and libstdc++: the test binaries hold the emulator's C++) symbol versions the
    // binaries need, for run.sh to compare with the GPU machine's.
    let binaries: Vec<PathBuf> = [out.join("nst"), out.join("random_vgg19")]
        .into_iter()
        .chain(tests.iter().map(|(name, _)| out.join("tests").join(name)))
        .collect();
    let needed = |prefix: &str| {
        binaries
            .iter()
            .filter_map(|b| symbol_versions(b, prefix))
            .max_by_key(|v| version_key(v))
    };
    match (needed("GLIBC_"), needed("GLIBCXX_")) {
        (Some(glibc), glibcxx) => {
            let glibcxx = glibcxx.unwrap_or_else(|| "none".to_owned());
            println!("the bundle needs glibc {glibc} or newer (libstdc++ GLIBCXX_{glibcxx})");
            std::fs::write(out.join("GLIBC_NEEDED"), format!("{glibc}\n"))?;
            std::fs::write(out.join("GLIBCXX_NEEDED"), format!("{glibcxx}\n"))?;
        }
        (None, _) => println!("(objdump unavailable: the glibc the bundle needs is not recorded)"),
    }
    let mut size = 0;
    for entry in walk(out)? {
        size += std::fs::metadata(&entry)?.len();
    }
    Ok(size)
}

/// `(bundle name, path)` of the release test binaries of tensor-ops' lib and `it` and nst-engine's lib, built with `cuda`.
fn test_executables(root: &Path) -> Result<Vec<(String, PathBuf)>> {
    let args = [
        "test",
        "--release",
        "-p",
        "tensor-ops",
        "-p",
        "nst-engine",
        "--features",
        "cuda",
        "--no-run",
        "--message-format=json",
    ];
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    println!("$ cargo {}", args.join(" "));
    let output = Command::new(&cargo)
        .args(args)
        .current_dir(root)
        .output()
        .context("could not start cargo")?;
    if !output.status.success() {
        bail!(
            "`cargo {}` failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(parse_executables(&String::from_utf8_lossy(&output.stdout)))
}

/// Picks the test executables out of cargo's JSON messages (one object per line): the lib and `it`
/// targets of tensor-ops and the lib target of nst-engine. A small scan rather than a JSON parser, since the fields
/// it reads are plain strings without escapes.
fn parse_executables(json_lines: &str) -> Vec<(String, PathBuf)> {
    let field = |line: &str, key: &str| -> Option<String> {
        let start = line.find(&format!("\"{key}\":\""))? + key.len() + 4;
        let end = line[start..].find('"')? + start;
        Some(line[start..end].to_owned())
    };
    let mut found = Vec::new();
    for line in json_lines.lines() {
        if !line.contains("\"reason\":\"compiler-artifact\"") || !line.contains("\"test\":true") {
            continue;
        }
        let (Some(exe), Some(name)) = (field(line, "executable"), field(line, "name")) else {
            continue;
        };
        let package = if line.contains("tensor-ops") {
            "tensor_ops"
        } else if line.contains("nst-engine") {
            "nst_engine"
        } else {
            continue;
        };
        let wanted = matches!(
            (package, name.as_str()),
            ("tensor_ops", "it" | "tensor_ops") | ("nst_engine", "nst_engine")
        );
        if wanted {
            found.push((format!("{package}_{name}"), PathBuf::from(exe)));
        }
    }
    found
}

/// The newest `PREFIXx.y` symbol version `binary` imports (from `objdump -T`), as `x.y`.
fn symbol_versions(binary: &Path, prefix: &str) -> Option<String> {
    let out = Command::new("objdump")
        .arg("-T")
        .arg(binary)
        .output()
        .ok()?;
    newest_version(&String::from_utf8_lossy(&out.stdout), prefix)
}

/// `x.y.z` as numbers, for comparing versions.
fn version_key(v: &str) -> Vec<u32> {
    v.split('.').filter_map(|p| p.parse().ok()).collect()
}

/// The newest `PREFIXx.y[.z]` version named in `objdump -T` output (`GLIBC_` does not match inside
/// `GLIBCXX_`).
fn newest_version(objdump: &str, prefix: &str) -> Option<String> {
    objdump
        .match_indices(prefix)
        .map(|(i, _)| &objdump[i + prefix.len()..])
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect::<String>()
        })
        .map(|v| v.trim_end_matches('.').to_owned())
        .filter(|v| !v.is_empty())
        .max_by_key(|v| version_key(v))
}

fn copy_stripped(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    // Symbols are most of a release binary's size; the carry to the GPU machine is limited.
    if !Cmd::new("strip", [to.display().to_string()]).succeeds_quietly() {
        println!("(strip unavailable: {} kept its symbols)", to.display());
    }
    Ok(())
}

fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files.extend(walk(&path)?);
        } else {
            files.push(path);
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_three_gpu_test_binaries_in_cargo_json() {
        let lines = [
            r#"{"reason":"compiler-artifact","package_id":"path+file:///w/crates/tensor-ops#0.1.0","target":{"kind":["test"],"name":"it"},"profile":{"test":true},"executable":"/w/target/release/deps/it-abc"}"#,
            r#"{"reason":"compiler-artifact","package_id":"path+file:///w/crates/tensor-ops#0.1.0","target":{"kind":["lib"],"name":"tensor_ops"},"profile":{"test":true},"executable":"/w/target/release/deps/tensor_ops-1"}"#,
            r#"{"reason":"compiler-artifact","package_id":"path+file:///w/crates/nst-engine#0.1.0","target":{"kind":["lib"],"name":"nst_engine"},"profile":{"test":true},"executable":"/w/target/release/deps/nst_engine-2"}"#,
            r#"{"reason":"compiler-artifact","package_id":"path+file:///w/crates/nst-engine#0.1.0","target":{"kind":["lib"],"name":"nst_engine"},"profile":{"test":false},"executable":null}"#,
            r#"{"reason":"build-finished","success":true}"#,
        ]
        .join("\n");
        assert_eq!(
            parse_executables(&lines),
            [
                (
                    "tensor_ops_it".to_owned(),
                    PathBuf::from("/w/target/release/deps/it-abc")
                ),
                (
                    "tensor_ops_tensor_ops".to_owned(),
                    PathBuf::from("/w/target/release/deps/tensor_ops-1")
                ),
                (
                    "nst_engine_nst_engine".to_owned(),
                    PathBuf::from("/w/target/release/deps/nst_engine-2")
                ),
            ]
        );
    }

    #[test]
    fn newest_version_compares_numerically_and_keeps_prefixes_apart() {
        let dump = "0 DF *UND* 0 (GLIBC_2.2.5) memcpy\n0 DF *UND* 0 (GLIBC_2.34) __libc_start_main\n\
                    0 DF *UND* 0 (GLIBC_2.9) pipe2\n0 DF *UND* 0 (GLIBCXX_3.4.30) _ZSt4cout\n";
        assert_eq!(newest_version(dump, "GLIBC_").as_deref(), Some("2.34"));
        assert_eq!(newest_version(dump, "GLIBCXX_").as_deref(), Some("3.4.30"));
        assert_eq!(newest_version("no versions here", "GLIBC_"), None);
    }

    #[test]
    fn the_run_script_runs_the_gpu_tests_and_both_benchmark_sizes() {
        for needle in [
            "NST_TEST_GPU=1",
            "--size 400x300",
            "--size 1024x768",
            "--device cuda",
            "LD_LIBRARY_PATH",
        ] {
            assert!(RUN_SH.contains(needle), "run.sh lacks {needle}");
        }
    }
}
