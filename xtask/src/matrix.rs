//! `cargo xtask test`: the test matrix, run leg by leg, with a summary table at the end.
//!
//! Every leg runs even after an earlier one failed, so the table is always complete.
//! The test legs pass `--lib --bins --tests --examples` rather than `--all-targets`: with
//! `--all-targets` cargo would also run the criterion benches as tests and hand them libtest's
//! `--skip`, which criterion's argument parser rejects. The benches are compiled by their own leg.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Result, bail};

use crate::cmd::Cmd;
use crate::packages;

/// What `cargo xtask test` was asked to do beyond the default matrix.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct MatrixOptions {
    /// Run the GPU tests even if no GPU is detected.
    pub(crate) gpu: bool,
    /// Run the smoke test on the real VGG-19 weights.
    pub(crate) with_weights: bool,
    /// Skip the slow legs that rarely break while iterating (the engine example, doctests, docs,
    /// benches, packages, the downstream crate, cuda).
    pub(crate) quick: bool,
}

/// Test counts summed over the `test result:` lines a cargo test run printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TestCounts {
    pub(crate) passed: u64,
    pub(crate) failed: u64,
    pub(crate) ignored: u64,
}

/// How one leg ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    Pass,
    /// Why it failed (it names the command).
    Fail(String),
    /// Why it did not run.
    Skipped(String),
}

/// One row of the summary table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LegResult {
    pub(crate) name: &'static str,
    pub(crate) outcome: Outcome,
    /// Wall time; `None` for a leg that did not run.
    pub(crate) seconds: Option<f64>,
    /// Test counts, for the legs that run tests and got as far as running them.
    pub(crate) counts: Option<TestCounts>,
}

/// The outcome of the whole matrix.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Report {
    pub(crate) legs: Vec<LegResult>,
    pub(crate) seconds: f64,
}

impl Report {
    /// True when no leg failed (skipped legs do not count as failures).
    pub(crate) fn all_passed(&self) -> bool {
        !self
            .legs
            .iter()
            .any(|leg| matches!(leg.outcome, Outcome::Fail(_)))
    }

    /// The test counts summed over every leg that ran tests.
    pub(crate) fn total_counts(&self) -> TestCounts {
        self.legs
            .iter()
            .filter_map(|leg| leg.counts)
            .fold(TestCounts::default(), |sum, c| sum.plus(c))
    }

    /// The summary table and the closing lines; the very last line is `tests: N passed, N failed`.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let rule = "-".repeat(78);
        let _ = writeln!(out, "{rule}");
        let _ = writeln!(
            out,
            "{:>2}  {:<24} {:<8} {:>8}  tests / note",
            "#", "leg", "result", "seconds"
        );
        let _ = writeln!(out, "{rule}");
        for (idx, leg) in self.legs.iter().enumerate() {
            let (result, note) = match &leg.outcome {
                Outcome::Pass => ("PASS", String::new()),
                Outcome::Fail(why) => ("FAIL", short_reason(why)),
                Outcome::Skipped(why) => ("SKIPPED", why.clone()),
            };
            let seconds = leg
                .seconds
                .map_or_else(|| "-".to_owned(), |s| format!("{s:.1}"));
            let detail = match (leg.counts, note.is_empty()) {
                (Some(c), true) => c.to_string(),
                (Some(c), false) => format!("{c}; {note}"),
                (None, _) => note,
            };
            let _ = writeln!(
                out,
                "{:>2}  {:<24} {:<8} {:>8}  {detail}",
                idx + 1,
                leg.name,
                result,
                seconds
            );
        }
        let _ = writeln!(out, "{rule}");
        let count = |f: fn(&Outcome) -> bool| self.legs.iter().filter(|l| f(&l.outcome)).count();
        let n_pass = count(|o| matches!(o, Outcome::Pass));
        let n_fail = count(|o| matches!(o, Outcome::Fail(_)));
        let n_skip = count(|o| matches!(o, Outcome::Skipped(_)));
        let _ = writeln!(
            out,
            "legs: {n_pass} PASS, {n_fail} FAIL, {n_skip} SKIPPED in {:.1} s",
            self.seconds
        );
        let failed: Vec<&LegResult> = self
            .legs
            .iter()
            .filter(|l| matches!(l.outcome, Outcome::Fail(_)))
            .collect();
        for leg in &failed {
            if let Outcome::Fail(why) = &leg.outcome {
                let _ = writeln!(out, "FAILED {}: {why}", leg.name);
            }
        }
        let total = self.total_counts();
        let _ = write!(
            out,
            "tests: {} passed, {} failed",
            total.passed, total.failed
        );
        if total.ignored > 0 {
            let _ = write!(out, ", {} ignored", total.ignored);
        }
        if !failed.is_empty() {
            let names: Vec<&str> = failed.iter().map(|l| l.name).collect();
            let _ = write!(
                out,
                " (matrix FAILED: {} leg(s) failed: {})",
                failed.len(),
                names.join(", ")
            );
        }
        out.push('\n');
        out
    }
}

impl TestCounts {
    fn plus(self, other: TestCounts) -> TestCounts {
        TestCounts {
            passed: self.passed + other.passed,
            failed: self.failed + other.failed,
            ignored: self.ignored + other.ignored,
        }
    }
}

impl std::fmt::Display for TestCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} passed, {} failed", self.passed, self.failed)?;
        if self.ignored > 0 {
            write!(f, ", {} ignored", self.ignored)?;
        }
        Ok(())
    }
}

/// Parses libtest's summary line,
/// `test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 2 filtered out; finished in 0.01s`.
pub(crate) fn parse_test_result(line: &str) -> Option<TestCounts> {
    let rest = line.trim().strip_prefix("test result: ")?;
    // Skip the verdict (`ok.` or `FAILED.`).
    let (_, fields) = rest.split_once(". ")?;
    let mut counts = TestCounts::default();
    let mut seen_passed = false;
    for field in fields.split(';') {
        let mut words = field.split_whitespace();
        let (Some(number), Some(what)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(number) = number.parse::<u64>() else {
            continue;
        };
        match what {
            "passed" => {
                counts.passed = number;
                seen_passed = true;
            }
            "failed" => counts.failed = number,
            "ignored" => counts.ignored = number,
            _ => {}
        }
    }
    seen_passed.then_some(counts)
}

/// The name prefix of every finite-difference gradient test in the workspace.
const FD_PREFIX: &str = "fd_";

/// The name of the test a libtest line reports as run (`test a::b ... ok`, or `FAILED`).
fn test_ran(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("test ")?;
    let (name, verdict) = rest.rsplit_once(" ... ")?;
    matches!(verdict.trim(), "ok" | "FAILED").then_some(name.trim())
}

/// The last `::` segment of a test path.
fn own_name(path: &str) -> &str {
    path.rsplit("::").next().unwrap_or(path)
}

/// Runs the matrix in `root`, printing as it goes and the summary at the end.
pub(crate) fn run(root: &Path, opts: &MatrixOptions) -> Report {
    let env = quiet_env();
    if !env.is_empty() {
        let shown: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("xtask: running the test matrix with {}", shown.join(" "));
    }
    let started = Instant::now();
    let mut legs = Vec::new();
    for leg in plan(root, opts, gpu_detected()) {
        println!();
        println!("==> [{}] {}", legs.len() + 1, leg.name);
        let result = run_leg(leg, root, &env);
        match &result.outcome {
            Outcome::Pass => println!("PASS {}", result.name),
            Outcome::Fail(why) => println!("FAIL {}: {why}", result.name),
            Outcome::Skipped(why) => println!("SKIPPED {why}"),
        }
        legs.push(result);
    }
    let report = Report {
        legs,
        seconds: started.elapsed().as_secs_f64(),
    };
    println!();
    print!("{}", report.render());
    report
}

/// What a leg runs and how its success is judged.
#[derive(Debug)]
struct Leg {
    name: &'static str,
    cmd: Cmd,
    kind: LegKind,
    skip: Option<String>,
}

#[derive(Debug)]
enum LegKind {
    /// Passes when the command exits with 0.
    Status,
    /// Like `Status`, for a command that writes into `dir`: the folder is made before the command
    /// runs (the command expects it) and removed after.
    WritesInto { dir: PathBuf },
    /// A cargo test run: passes on exit 0; counts are parsed from its output. With
    /// `require_prefix`, it also fails unless some test whose own name (the last `::` segment)
    /// starts with that prefix ran: libtest's filter matches anywhere in the path, so the count
    /// alone could be made of lookalikes such as `tests::check_fd_helper`.
    Tests {
        require_prefix: Option<&'static str>,
    },
    /// The real-weights smoke test: the weights file must exist and the run must write a file.
    Smoke { weights: PathBuf, out_dir: PathBuf },
    /// The publishable crates packaged and built from their packages (`packages::check`; `cmd` is
    /// its first command).
    Packages,
    /// A script that runs tests where it can set them up: exit status [`SKIP_STATUS`] with a line
    /// `SKIPPED: why` makes the leg SKIPPED with that reason; otherwise as [`LegKind::Tests`].
    SkippableTests,
}

/// The exit status of a script that could not set its tests up (automake's convention).
const SKIP_STATUS: i32 = 77;

/// The legs, in order, with the skip decisions made here, visibly, rather than inside tests.
fn plan(root: &Path, opts: &MatrixOptions, gpu_detected: bool) -> Vec<Leg> {
    let quick_skip = |what: &str| opts.quick.then(|| format!("{what}: --quick"));
    // Unit and integration tests of every member; not the benches (see the module doc).
    let test_targets = [
        "test",
        "--workspace",
        "--lib",
        "--bins",
        "--tests",
        "--examples",
        "--no-fail-fast",
    ];
    let mut downstream = Cmd::cargo([
        "run",
        "--locked",
        "--offline",
        "--manifest-path",
        "examples/downstream/Cargo.toml",
    ]);
    downstream.env("CARGO_TARGET_DIR", "target");
    let mut doc = Cmd::cargo(["doc", "--workspace", "--no-deps"]);
    doc.env("RUSTDOCFLAGS", "-D warnings");
    let mut gpu_tests = Cmd::cargo([
        "test",
        "-p",
        "tensor-ops",
        "-p",
        "nst-engine",
        "--features",
        "cuda",
    ]);
    gpu_tests.args(["--no-fail-fast"]).env("NST_TEST_GPU", "1");
    let weights = std::env::var_os("NST_WEIGHTS").map_or_else(
        || root.join("pretrained-model/imagenet-vgg-verydeep-19.mat"),
        PathBuf::from,
    );
    let out_dir = std::env::temp_dir().join(format!("nst-xtask-smoke-{}", std::process::id()));
    let mut smoke = Cmd::cargo(["run", "--release", "-p", "nst-cli", "--", "stylize"]);
    smoke.args([
        "--content",
        "images/louvre_pyramid.jpg",
        "--style",
        "images/hokusai_great_wave.jpg",
        "--iterations",
        "2",
        "--out-dir",
    ]);
    smoke.args([out_dir.display().to_string()]);
    let example_out =
        std::env::temp_dir().join(format!("nst-xtask-example-{}", std::process::id()));
    let mut example = Cmd::cargo([
        "run",
        "-p",
        "nst-engine",
        "--example",
        "stylize",
        "--",
        "--random-model",
        "images/louvre_pyramid.jpg",
        "images/hokusai_great_wave.jpg",
    ]);
    example.args([
        example_out.join("out.png").display().to_string(),
        "3".into(),
    ]);

    vec![
        Leg {
            name: "fmt",
            cmd: Cmd::cargo(["fmt", "--all", "--check"]),
            kind: LegKind::Status,
            skip: None,
        },
        Leg {
            name: "clippy",
            cmd: Cmd::cargo([
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]),
            kind: LegKind::Status,
            skip: None,
        },
        Leg {
            name: "tests (unit, integ.)",
            cmd: {
                let mut cmd = Cmd::cargo(test_targets);
                cmd.args(["--", "--skip", FD_PREFIX]);
                cmd
            },
            kind: LegKind::Tests {
                require_prefix: None,
            },
            skip: None,
        },
        Leg {
            name: "gradient checks (fd_)",
            cmd: {
                let mut cmd = Cmd::cargo(test_targets);
                cmd.args(["--", FD_PREFIX]);
                cmd
            },
            kind: LegKind::Tests {
                require_prefix: Some(FD_PREFIX),
            },
            skip: None,
        },
        Leg {
            name: "engine example",
            // The library used alone, as its docs show: a run on a random model, no weights file.
            cmd: example,
            kind: LegKind::WritesInto { dir: example_out },
            skip: quick_skip("engine example"),
        },
        Leg {
            name: "slurm (batch array)",
            // Installs slurm-wlm and munge where it can, starts a one-node cluster and runs
            // `nst batch` as an array job on it (docs/scale-out.md).
            cmd: Cmd::new("bash", [".ci/slurm-test"]),
            kind: LegKind::SkippableTests,
            skip: quick_skip("slurm"),
        },
        Leg {
            name: "browser (nst serve)",
            // Installs chromium and chromium-driver where it can and drives the studio's page in
            // headless Chromium through WebDriver (docs/serve.md); the screenshot is kept in
            // target/nst-serve-browser/.
            cmd: Cmd::new("bash", [".ci/browser-test"]),
            kind: LegKind::SkippableTests,
            skip: quick_skip("browser"),
        },
        Leg {
            name: "doctests",
            cmd: Cmd::cargo(["test", "--workspace", "--doc", "--no-fail-fast"]),
            kind: LegKind::Tests {
                require_prefix: None,
            },
            skip: quick_skip("doctests"),
        },
        Leg {
            name: "doc",
            cmd: doc,
            kind: LegKind::Status,
            skip: quick_skip("doc"),
        },
        Leg {
            name: "bench build",
            // `--benches`: the bench targets and what they need, not every binary in release.
            cmd: Cmd::cargo(["bench", "--workspace", "--benches", "--no-run"]),
            kind: LegKind::Status,
            skip: quick_skip("bench build"),
        },
        Leg {
            name: "packages",
            // Every publishable crate packed in publish order, then built and tested from its package.
            cmd: packages::package_cmd(),
            kind: LegKind::Packages,
            skip: quick_skip("packages"),
        },
        Leg {
            name: "downstream crate",
            // The library crates used from outside the workspace, pinned to the workspace's versions;
            // it shares `target/` (and so the built dependencies) with the workspace.
            cmd: downstream,
            kind: LegKind::Status,
            skip: quick_skip("downstream crate"),
        },
        Leg {
            name: "cuda feature (clippy)",
            // Builds without a GPU or CUDA toolkit: cudarc loads its libraries at run time.
            cmd: Cmd::cargo([
                "clippy",
                "-p",
                "tensor-ops",
                "-p",
                "nst-engine",
                "-p",
                "nst-cli",
                "--features",
                "cuda",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]),
            kind: LegKind::Status,
            skip: quick_skip("cuda feature"),
        },
        Leg {
            name: "cuda feature (CPU tests)",
            // The feature's pure functions (the cuBLAS call mapping, launch shapes) and the kernels
            // compiled by NVRTC (which needs no GPU; `.ci/run` installs it); the GPU tests say SKIPPED
            // here and run in the next leg.
            cmd: Cmd::cargo([
                "test",
                "-p",
                "tensor-ops",
                "--features",
                "cuda",
                "--lib",
                "--tests",
                "--no-fail-fast",
            ]),
            kind: LegKind::Tests {
                require_prefix: None,
            },
            skip: quick_skip("cuda feature"),
        },
        Leg {
            name: "cuda tests (GPU)",
            cmd: gpu_tests,
            kind: LegKind::Tests {
                require_prefix: None,
            },
            skip: (!opts.gpu && !gpu_detected).then(|| {
                "cuda tests: no GPU (nvidia-smi -L failed, no /dev/nvidia0; --gpu forces)"
                    .to_owned()
            }),
        },
        Leg {
            name: "smoke (real weights)",
            cmd: smoke,
            kind: LegKind::Smoke { weights, out_dir },
            skip: (!opts.with_weights)
                .then(|| "real-weights smoke test: needs --with-weights".to_owned()),
        },
    ]
}

fn run_leg(leg: Leg, root: &Path, env: &[(String, String)]) -> LegResult {
    let skipped = |why: String| LegResult {
        name: leg.name,
        outcome: Outcome::Skipped(why),
        seconds: None,
        counts: None,
    };
    if let Some(why) = leg.skip.clone() {
        return skipped(why);
    }
    let mut cmd = leg.cmd.clone();
    cmd.current_dir(root);
    for (key, value) in env {
        cmd.quiet_env(key, value);
    }
    let started = Instant::now();
    let mut counts: Option<TestCounts> = None;
    let result = match &leg.kind {
        LegKind::Status => cmd.run(),
        LegKind::WritesInto { dir } => run_writing_into(&cmd, dir),
        LegKind::Tests { require_prefix } => {
            let mut n_prefixed = 0_u64;
            let ran = cmd.run_tee(|line| {
                if let Some(c) = parse_test_result(line) {
                    counts = Some(counts.unwrap_or_default().plus(c));
                }
                if let Some(prefix) = require_prefix
                    && test_ran(line).is_some_and(|name| own_name(name).starts_with(prefix))
                {
                    n_prefixed += 1;
                }
            });
            ran.and_then(|()| match require_prefix {
                Some(prefix) if n_prefixed == 0 => bail!(
                    "`{cmd}` ran no test named `{prefix}*`; every finite-difference gradient \
                     test is named with the prefix `{prefix}`"
                ),
                _ => Ok(()),
            })
        }
        LegKind::Smoke { weights, out_dir } => smoke(&cmd, weights, out_dir),
        LegKind::Packages => packages::check(root, env),
        LegKind::SkippableTests => match skippable(&cmd, &mut counts) {
            Ok(Some(why)) => {
                return LegResult {
                    name: leg.name,
                    outcome: Outcome::Skipped(why),
                    seconds: Some(started.elapsed().as_secs_f64()),
                    counts: None,
                };
            }
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        },
    };
    LegResult {
        name: leg.name,
        outcome: match result {
            Ok(()) => Outcome::Pass,
            Err(err) => Outcome::Fail(format!("{err:#}")),
        },
        seconds: Some(started.elapsed().as_secs_f64()),
        counts,
    }
}

/// Runs `cmd` with `dir` made first and removed after, whatever the outcome.
fn run_writing_into(cmd: &Cmd, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let result = cmd.run();
    let removed = std::fs::remove_dir_all(dir);
    result?;
    Ok(removed?)
}

/// Runs a [`LegKind::SkippableTests`] script, summing the test counts it prints; `Some(why)` when it
/// skipped.
fn skippable(cmd: &Cmd, counts: &mut Option<TestCounts>) -> Result<Option<String>> {
    let mut why = None;
    let status = cmd.run_tee_status(|line| {
        if let Some(c) = parse_test_result(line) {
            *counts = Some(counts.unwrap_or_default().plus(c));
        }
        if let Some(reason) = line.strip_prefix("SKIPPED: ") {
            why = Some(reason.to_owned());
        }
    })?;
    match (status.code(), why) {
        (Some(0), _) => Ok(None),
        (Some(SKIP_STATUS), Some(why)) => Ok(Some(why)),
        (Some(SKIP_STATUS), None) => Ok(Some(format!("`{cmd}` skipped without saying why"))),
        _ => bail!("`{cmd}` failed ({status})"),
    }
}

/// The real-weights smoke test: a two-iteration run of the README's first command.
fn smoke(cmd: &Cmd, weights: &Path, out_dir: &Path) -> Result<()> {
    if !weights.is_file() {
        bail!(
            "weights file missing: {}; run `cargo xtask download-weights` or place it by hand \
             (see pretrained-model/README.md)",
            weights.display()
        );
    }
    if out_dir.exists() {
        std::fs::remove_dir_all(out_dir)?;
    }
    std::fs::create_dir_all(out_dir)?;
    cmd.run()?;
    let written = std::fs::read_dir(out_dir)?.count();
    if written == 0 {
        bail!(
            "`{cmd}` exited with 0 but wrote nothing into {}",
            out_dir.display()
        );
    }
    std::fs::remove_dir_all(out_dir)?;
    Ok(())
}

/// Environment for every leg that changes how output looks, not what is built: backtraces for
/// panics (but not captured by every `anyhow` error, which is slow), and no colour on CI.
/// A variable the user already set is left alone.
fn quiet_env() -> Vec<(String, String)> {
    let mut env = Vec::new();
    let mut default = |key: &str, value: &str| {
        if std::env::var_os(key).is_none() {
            env.push((key.to_owned(), value.to_owned()));
        }
    };
    default("RUST_BACKTRACE", "1");
    default("RUST_LIB_BACKTRACE", "0");
    if std::env::var_os("CI").is_some() {
        default("CARGO_TERM_COLOR", "never");
    }
    env
}

/// A GPU is there if `nvidia-smi -L` succeeds or the device node exists.
fn gpu_detected() -> bool {
    Path::new("/dev/nvidia0").exists() || Cmd::new("nvidia-smi", ["-L"]).succeeds_quietly()
}

/// The first line of a failure, for the table (the full reason is printed below it).
fn short_reason(why: &str) -> String {
    let first = why.lines().next().unwrap_or_default();
    if first.chars().count() > 60 {
        let cut: String = first.chars().take(57).collect();
        format!("{cut}...")
    } else {
        first.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_passing_summary_line() {
        let line = "test result: ok. 12 passed; 0 failed; 3 ignored; 0 measured; \
                    5 filtered out; finished in 0.03s";
        assert_eq!(
            parse_test_result(line),
            Some(TestCounts {
                passed: 12,
                failed: 0,
                ignored: 3
            })
        );
    }

    #[test]
    fn parses_a_failing_summary_line() {
        let line = "test result: FAILED. 7 passed; 2 failed; 0 ignored; 0 measured; \
                    0 filtered out; finished in 1.20s";
        assert_eq!(
            parse_test_result(line),
            Some(TestCounts {
                passed: 7,
                failed: 2,
                ignored: 0
            })
        );
    }

    #[test]
    fn ignores_other_lines() {
        for line in [
            "test foo::bar ... ok",
            "running 3 tests",
            "   Doc-tests vgg_weights",
            "test result: garbage",
            "",
        ] {
            assert_eq!(parse_test_result(line), None, "{line:?}");
        }
    }

    #[test]
    fn recognises_run_tests_and_their_own_names() {
        assert_eq!(
            test_ran("test conv::tests::fd_input ... ok"),
            Some("conv::tests::fd_input")
        );
        assert_eq!(test_ran("test fd_tv ... FAILED"), Some("fd_tv"));
        assert_eq!(test_ran("test skipped_one ... ignored"), None);
        assert_eq!(test_ran("test result: ok. 1 passed; 0 failed"), None);
        assert_eq!(own_name("conv::tests::fd_input"), "fd_input");
        assert!(!own_name("tests::check_fd_helper").starts_with(FD_PREFIX));
    }

    fn leg(name: &'static str, outcome: Outcome, counts: Option<TestCounts>) -> LegResult {
        LegResult {
            name,
            seconds: (!matches!(outcome, Outcome::Skipped(_))).then_some(1.25),
            outcome,
            counts,
        }
    }

    fn counts(passed: u64, failed: u64) -> Option<TestCounts> {
        Some(TestCounts {
            passed,
            failed,
            ignored: 0,
        })
    }

    #[test]
    fn summary_ends_with_the_total_test_count() {
        let report = Report {
            legs: vec![
                leg("fmt", Outcome::Pass, None),
                leg("tests", Outcome::Pass, counts(40, 0)),
                leg("fd", Outcome::Pass, counts(2, 0)),
                leg("gpu", Outcome::Skipped("cuda tests: no GPU".into()), None),
            ],
            seconds: 3.0,
        };
        assert!(report.all_passed());
        let text = report.render();
        assert_eq!(text.lines().last(), Some("tests: 42 passed, 0 failed"));
        assert!(text.contains("legs: 3 PASS, 0 FAIL, 1 SKIPPED"), "{text}");
        let gpu_row = text.lines().find(|l| l.contains("gpu")).unwrap();
        assert!(gpu_row.contains("SKIPPED") && gpu_row.contains("cuda tests: no GPU"));
        let fd_row = text.lines().find(|l| l.contains(" fd ")).unwrap();
        assert!(fd_row.contains("PASS") && fd_row.contains("1.2") && fd_row.contains("2 passed"));
    }

    #[test]
    fn a_failed_leg_fails_the_report_and_is_named_last() {
        let report = Report {
            legs: vec![
                leg(
                    "fmt",
                    Outcome::Fail("`cargo fmt --all --check` failed".into()),
                    None,
                ),
                leg(
                    "tests",
                    Outcome::Fail("`cargo test` failed".into()),
                    counts(9, 1),
                ),
            ],
            seconds: 2.0,
        };
        assert!(!report.all_passed());
        let text = report.render();
        assert!(
            text.contains("FAILED fmt: `cargo fmt --all --check` failed"),
            "{text}"
        );
        assert_eq!(
            text.lines().last(),
            Some("tests: 9 passed, 1 failed (matrix FAILED: 2 leg(s) failed: fmt, tests)")
        );
    }

    fn names(legs: &[Leg]) -> Vec<&'static str> {
        legs.iter().map(|l| l.name).collect()
    }

    fn skipped(legs: &[Leg]) -> Vec<&'static str> {
        legs.iter()
            .filter(|l| l.skip.is_some())
            .map(|l| l.name)
            .collect()
    }

    #[test]
    fn default_plan_skips_only_gpu_and_weights_legs() {
        let root = Path::new("/repo");
        let plan = plan(root, &MatrixOptions::default(), false);
        assert_eq!(
            names(&plan),
            [
                "fmt",
                "clippy",
                "tests (unit, integ.)",
                "gradient checks (fd_)",
                "engine example",
                "slurm (batch array)",
                "browser (nst serve)",
                "doctests",
                "doc",
                "bench build",
                "packages",
                "downstream crate",
                "cuda feature (clippy)",
                "cuda feature (CPU tests)",
                "cuda tests (GPU)",
                "smoke (real weights)",
            ]
        );
        assert_eq!(skipped(&plan), ["cuda tests (GPU)", "smoke (real weights)"]);
        let gpu = plan.iter().find(|l| l.name == "cuda tests (GPU)").unwrap();
        assert!(
            gpu.skip
                .as_deref()
                .unwrap()
                .starts_with("cuda tests: no GPU")
        );
    }

    #[test]
    fn gpu_leg_runs_when_detected_or_forced() {
        let root = Path::new("/repo");
        let detected = plan(root, &MatrixOptions::default(), true);
        assert!(!skipped(&detected).contains(&"cuda tests (GPU)"));
        let forced = MatrixOptions {
            gpu: true,
            ..MatrixOptions::default()
        };
        assert!(!skipped(&plan(root, &forced, false)).contains(&"cuda tests (GPU)"));
        let gpu = plan(root, &forced, false)
            .into_iter()
            .find(|l| l.name == "cuda tests (GPU)")
            .unwrap();
        assert_eq!(
            gpu.cmd.to_string(),
            "NST_TEST_GPU=1 cargo test -p tensor-ops -p nst-engine --features cuda --no-fail-fast"
        );
    }

    #[test]
    fn quick_plan_keeps_fmt_clippy_and_tests() {
        let opts = MatrixOptions {
            quick: true,
            with_weights: true,
            ..MatrixOptions::default()
        };
        let plan = plan(Path::new("/repo"), &opts, false);
        assert_eq!(
            skipped(&plan),
            [
                "engine example",
                "slurm (batch array)",
                "browser (nst serve)",
                "doctests",
                "doc",
                "bench build",
                "packages",
                "downstream crate",
                "cuda feature (clippy)",
                "cuda feature (CPU tests)",
                "cuda tests (GPU)"
            ]
        );
    }

    #[test]
    fn gradient_leg_selects_the_finite_difference_tests_and_the_other_skips_them() {
        let plan = plan(Path::new("/repo"), &MatrixOptions::default(), false);
        let unit = plan[2].cmd.to_string();
        let fd = plan[3].cmd.to_string();
        assert!(unit.ends_with("-- --skip fd_"), "{unit}");
        assert!(fd.ends_with("-- fd_"), "{fd}");
        assert!(matches!(
            plan[3].kind,
            LegKind::Tests {
                require_prefix: Some("fd_")
            }
        ));
    }

    #[test]
    fn a_leg_that_writes_gets_its_folder_and_leaves_nothing_behind() {
        let dir = std::env::temp_dir().join(format!("xtask-writes-into-{}", std::process::id()));
        let probe = dir.join("probe");
        run_writing_into(&Cmd::new("touch", [probe.display().to_string()]), &dir).unwrap();
        assert!(!dir.exists());
        let err = run_writing_into(&Cmd::new("sh", ["-c", "exit 4"]), &dir).unwrap_err();
        assert!(err.to_string().contains("exit 4"), "{err}");
        assert!(!dir.exists());
    }

    #[test]
    fn smoke_fails_naming_a_missing_weights_file() {
        let dir = std::env::temp_dir().join(format!("xtask-smoke-test-{}", std::process::id()));
        let missing = dir.join("no-such-weights.mat");
        let err = smoke(&Cmd::new("true", ["unused"]), &missing, &dir).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("weights file missing"), "{msg}");
        assert!(msg.contains("no-such-weights.mat"), "{msg}");
        assert!(
            !dir.exists(),
            "nothing is created before the weights are found"
        );
    }

    #[test]
    fn a_script_that_cannot_set_up_is_skipped_with_its_reason() {
        let mut counts = None;
        let cmd = Cmd::new("sh", ["-c", "echo 'SKIPPED: slurm: no apt-get'; exit 77"]);
        assert_eq!(
            skippable(&cmd, &mut counts).unwrap(),
            Some("slurm: no apt-get".to_owned())
        );
        let ran = Cmd::new(
            "sh",
            [
                "-c",
                "echo 'test result: ok. 1 passed; 0 failed; 0 ignored'",
            ],
        );
        assert_eq!(skippable(&ran, &mut counts).unwrap(), None);
        assert_eq!(counts.map(|c| c.passed), Some(1));
        let failed = Cmd::new("sh", ["-c", "echo 'SKIPPED: not really'; exit 1"]);
        let e = skippable(&failed, &mut counts).unwrap_err();
        assert!(e.to_string().contains("failed"), "{e}");
    }
}
