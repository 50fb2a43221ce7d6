//! `--scales` through the binary: a two-stage run, its errors, and SIGINT in each stage followed by
//! `--resume`, which must end bit for bit where the uninterrupted run ends.

use std::path::Path;
use std::process::Stdio;

use serde_json::Value;

use crate::{base_args, fixture, interrupt_when, nst, nst_command, stderr, strs, temp_dir};

/// Two stages (24 px, then the 40x32 working size) with `first` and `later` iterations, a checkpoint at
/// the end, and a log every 10 iterations.
fn two_stage_args(dir: &Path, out_dir: &str, first: &str, later: &str) -> Vec<String> {
    let (w, c, s) = (
        dir.join("tiny-vgg.mat"),
        dir.join("content.png"),
        dir.join("style.jpg"),
    );
    let mut args = base_args(&w, &c, &s);
    args.extend(
        [
            "--max-size",
            "40",
            "--scales",
            "24",
            "--iterations",
            first,
            "--scale-iterations",
            later,
            "--print-every",
            "10",
            "--checkpoint-every",
            "1000000",
            "--out-dir",
            out_dir,
        ]
        .map(String::from),
    );
    args
}

fn checkpoint(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn a_two_stage_run_logs_its_stages_and_sizes() {
    let dir = temp_dir("scales-run");
    fixture(&dir);
    let out = nst(&dir, &strs(&two_stage_args(&dir, "out", "6", "4")));
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("stage 1/2: 24x19") && err.contains("stage 2/2: 40x32"),
        "{err}"
    );
    let c = checkpoint(&dir.join("out/checkpoint.json"));
    assert_eq!(
        (c["iteration"].as_u64(), c["stage"].as_u64()),
        (Some(10), Some(1))
    );
    assert_eq!(c["shape"], serde_json::json!([3, 32, 40]));
    let record: Value =
        serde_json::from_slice(&std::fs::read(dir.join("out/result.run.json")).unwrap()).unwrap();
    assert_eq!(record["final"]["stage"], 1);
    assert_eq!(record["final"]["size"]["width"], 40);
    let img = image::open(dir.join("out/iter-0000.png")).unwrap();
    assert_eq!(
        (img.width(), img.height()),
        (24, 19),
        "stage 1 images are 24x19"
    );
}

#[test]
fn scales_that_make_no_sense_name_the_flag() {
    let dir = temp_dir("scales-errors");
    fixture(&dir);
    let cases: [(&[&str], &str); 6] = [
        (&["--scales", "30,24"], "comes after a larger scale"),
        (&["--scales", "24,24"], "given twice"),
        (&["--scales", "0"], "0 px is not a usable long side"),
        (&["--scales", "24,99999"], "99999 px"),
        (
            &["--scales", "64", "--max-size", "40"],
            "larger than the working size",
        ),
        (
            &["--scales", "auto", "--size", "40x32"],
            "--size fixes one exact size",
        ),
    ];
    let (w, c, s) = (
        dir.join("tiny-vgg.mat"),
        dir.join("content.png"),
        dir.join("style.jpg"),
    );
    for (extra, needle) in cases {
        let mut args = base_args(&w, &c, &s);
        args.extend(extra.iter().map(|s| s.to_string()));
        let out = nst(&dir, &strs(&args));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {err}");
        assert!(
            err.contains("--scales") && err.contains(needle),
            "{extra:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    let out = nst(&dir, &["stylize", "--scales", "twelve"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

/// SIGINT once the line `wait_for` is printed, then `--resume`: the final checkpoint equals the
/// uninterrupted run's, bit for bit.
#[track_caller]
fn interrupt_and_resume(dir: &Path, out_dir: &str, wait_for: &str) -> Value {
    let args = two_stage_args(dir, out_dir, "200", "200");
    let child = nst_command(dir, &strs(&args))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    interrupt_when(child, wait_for);
    let cut = checkpoint(&dir.join(out_dir).join("checkpoint.json"));
    let out = nst(dir, &["stylize", "--resume", out_dir, "--threads", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    cut
}

#[test]
fn sigint_in_either_stage_then_resume_ends_bit_identical() {
    let dir = temp_dir("scales-sigint");
    fixture(&dir);
    let out = nst(&dir, &strs(&two_stage_args(&dir, "whole", "200", "200")));
    assert!(out.status.success(), "{}", stderr(&out));
    let whole = checkpoint(&dir.join("whole/checkpoint.json"));
    let first = interrupt_and_resume(&dir, "first", "iteration   10/");
    let second = interrupt_and_resume(&dir, "second", "stage 2/2");
    assert_eq!(first["stage"], 0, "interrupted in the first stage");
    assert_eq!(second["stage"], 1, "interrupted in the second stage");
    for out_dir in ["first", "second"] {
        let done = checkpoint(&dir.join(out_dir).join("checkpoint.json"));
        assert_eq!(done["iteration"], 400);
        assert_eq!(done["image_bits"], whole["image_bits"], "{out_dir}");
        assert_eq!(done["optimizer"], whole["optimizer"], "{out_dir}");
    }
}
