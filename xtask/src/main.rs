//! `cargo xtask`: project automation, in Rust rather than shell scripts (the cargo-xtask pattern).
//!
//! ```text
//! cargo xtask download-weights [ARGS...]   forwards to `nst download-weights ARGS...`
//! cargo xtask test [--gpu] [--with-weights] [--quick]   the whole test matrix, then a summary table
//! cargo xtask gpu-bundle [--out DIR]        the release binary and GPU tests for a GPU machine
//! ```
//!
//! Every tool runs as a subprocess through `std::process::Command`; cargo is the one named by the
//! `CARGO` variable that `cargo xtask` sets. Each command is echoed before it runs.
//! `cargo test -p xtask` also runs the tidy tests in `tidy.rs`.

// A command-line tool prints; the workspace lints warn about printing for the library crates.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cmd;
mod gpu;
mod matrix;
mod packages;
#[cfg(test)]
mod tidy;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};

use crate::cmd::Cmd;
use crate::matrix::MatrixOptions;

const HELP: &str = "\
cargo xtask: automation for the nst workspace

USAGE:
    cargo xtask download-weights [--model vgg19|vgg16] [--variant beta16|current] [...]
        Download the pretrained network into pretrained-model/ (runs `nst download-weights`
        with the same arguments, in release mode).
    cargo xtask test [--gpu] [--with-weights] [--quick]
        Run the whole test matrix and print a summary table; exit non-zero if any leg fails.
        --gpu           run the cuda tests even if no GPU is detected
        --with-weights  run the smoke test on the real VGG-19 weights (fails if the file is missing)
        --quick         only fmt, clippy and the tests (skip the engine example, doctests, docs,
                        benches, packages, downstream crate, cuda legs)
    cargo xtask gpu-bundle [--out DIR]
        Build, with the cuda feature, the release `nst` and the GPU test binaries into DIR
        (default target/gpu-bundle) with run.sh, which runs the GPU tests, the benchmarks and an
        end-to-end `nst stylize` (GPU against CPU, a checkpoint resumed) on a GPU machine that has
        no Rust toolchain (see docs/performance.md).
    cargo xtask help
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<ExitCode> {
    let Some((task, rest)) = args.split_first() else {
        print!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    };
    match task.as_str() {
        "download-weights" => {
            download_weights(rest)?;
            Ok(ExitCode::SUCCESS)
        }
        "test" => {
            let opts = parse_test_args(rest)?;
            let report = matrix::run(&project_root(), &opts);
            Ok(if report.all_passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        "gpu-bundle" => {
            let out = match rest {
                [] => project_root().join("target/gpu-bundle"),
                [flag, dir] if flag == "--out" => PathBuf::from(dir),
                _ => bail!("usage: cargo xtask gpu-bundle [--out DIR]"),
            };
            let size = gpu::bundle(&project_root(), &out)?;
            println!(
                "gpu bundle: {} ({:.1} MiB); on the GPU machine run `bash {}/run.sh`",
                out.display(),
                size as f64 / (1024.0 * 1024.0),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        "help" | "-h" | "--help" => {
            print!("{HELP}");
            Ok(ExitCode::SUCCESS)
        }
        other => bail!("unknown task `{other}`; run `cargo xtask help`"),
    }
}

/// Runs the CLI's own `download-weights`, so that the download code lives in one module only.
fn download_weights(args: &[String]) -> Result<()> {
    let mut cmd = Cmd::cargo([
        "run",
        "--release",
        "-p",
        "nst-cli",
        "--",
        "download-weights",
    ]);
    cmd.args(args.iter().cloned());
    cmd.current_dir(project_root());
    cmd.run()
}

fn parse_test_args(args: &[String]) -> Result<MatrixOptions> {
    let mut opts = MatrixOptions::default();
    for arg in args {
        match arg.as_str() {
            "--gpu" => opts.gpu = true,
            "--with-weights" => opts.with_weights = true,
            "--quick" => opts.quick = true,
            other => {
                bail!("unknown argument `{other}` for `cargo xtask test`; run `cargo xtask help`")
            }
        }
    }
    Ok(opts)
}

/// The workspace root: the parent of this crate's directory.
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ sits inside the workspace root")
        .to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn test_flags_parse() {
        let opts = parse_test_args(&strings(&["--gpu", "--quick"])).unwrap();
        assert!(opts.gpu);
        assert!(opts.quick);
        assert!(!opts.with_weights);
        let opts = parse_test_args(&strings(&["--with-weights"])).unwrap();
        assert!(opts.with_weights && !opts.gpu && !opts.quick);
    }

    #[test]
    fn unknown_test_flag_is_an_error_naming_it() {
        let err = parse_test_args(&strings(&["--gpus"])).unwrap_err();
        assert!(err.to_string().contains("`--gpus`"), "{err}");
    }

    #[test]
    fn unknown_task_is_an_error_naming_it() {
        let err = run(&strings(&["tset"])).unwrap_err();
        assert!(err.to_string().contains("`tset`"), "{err}");
    }

    #[test]
    fn project_root_holds_the_workspace_manifest() {
        let manifest = std::fs::read_to_string(project_root().join("Cargo.toml")).unwrap();
        assert!(manifest.contains("[workspace]"));
    }
}
