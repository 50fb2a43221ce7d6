//! A standing guard against what a hostile afternoon found: each case asserts the exit status, the
//! message's key words, and that every input and earlier output is byte-identical afterwards.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use image::{Rgb, RgbImage};

use crate::{fixture, fixture_args_with, nst, nst_command, stderr, strs, temp_dir};

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                files.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// Runs `nst` with `args` in `dir`; asserts the exit code, that stderr holds every needle, and that no
/// file in `dir` changed, appeared or disappeared. Returns stderr.
#[track_caller]
fn refused(dir: &Path, args: &[String], code: i32, needles: &[&str]) -> String {
    let before = snapshot(dir);
    let out = nst(dir, &strs(args));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
    for needle in needles {
        assert!(
            err.contains(needle),
            "{args:?}: expected `{needle}` in: {err}"
        );
    }
    assert!(!err.contains("panicked"), "{err}");
    let after = snapshot(dir);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "{args:?}: files appeared or disappeared"
    );
    for (path, bytes) in &before {
        assert!(
            after[path] == *bytes,
            "{args:?}: {} changed",
            path.display()
        );
    }
    err
}

/// The fixture's base flags plus `extra` (see [`fixture_args_with`]).
fn with(dir: &Path, extra: &[&str]) -> Vec<String> {
    fixture_args_with(dir, extra)
}

/// Case 1: an output that is an input, by name, through a symbolic link, and for every output flag.
#[test]
fn outputs_never_replace_inputs() {
    let dir = temp_dir("hostile-same-file");
    fixture(&dir);
    std::fs::copy(dir.join("content.png"), dir.join("start.png")).unwrap();
    std::os::unix::fs::symlink(dir.join("content.png"), dir.join("alias.png")).unwrap();
    let c = dir.join("content.png").display().to_string();
    let s = dir.join("style.jpg").display().to_string();
    let cases: [(&[&str], &str); 6] = [
        (&["-o", &c], "--output would overwrite the input"),
        (&["-o", "style.jpg"], "--output would overwrite the input"),
        (&["-o", "alias.png"], "(--content)"),
        (
            &["--init-image", "start.png", "-o", "start.png"],
            "(--init-image)",
        ),
        (&["--metrics", &s], "--metrics would overwrite"),
        (&["--plot", "alias.png"], "--plot would overwrite"),
    ];
    for (extra, needle) in cases {
        refused(&dir, &with(&dir, extra), 1, &[needle]);
    }
}

/// Case 2: a folder another run holds is refused, naming the process; a lock left by a dead process is
/// taken over.
#[test]
fn a_second_run_on_the_same_folder_is_refused_until_the_first_ends() {
    let dir = temp_dir("hostile-lock");
    fixture(&dir);
    let mut first = nst_command(
        &dir,
        &strs(&with(
            &dir,
            &["--iterations", "100000000", "--print-every", "5"],
        )),
    )
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(first.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().contains("iteration    5/") {
            break;
        }
    }
    let pid = first.id().to_string();
    let err = {
        let out = nst(&dir, &strs(&with(&dir, &["--iterations", "2"])));
        assert_eq!(out.status.code(), Some(1));
        stderr(&out)
    };
    assert!(
        err.contains("in use by another nst run") && err.contains(&pid),
        "{err}"
    );
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let _rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert_eq!(first.wait().unwrap().code(), Some(130));
    assert!(!dir.join("output/.nst.lock").exists(), "released on exit");
    // A lock whose owner is gone (as after a second Ctrl-C or a kill -9).
    std::fs::write(dir.join("output/.nst.lock"), "4194303\n").unwrap();
    let out = nst(&dir, &strs(&with(&dir, &["--iterations", "2"])));
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Case 3: a copied checkpoint folder resumes into itself, never into the folder it was copied from.
#[test]
fn a_copied_checkpoint_resumes_where_it_is() {
    let dir = temp_dir("hostile-copied");
    fixture(&dir);
    let args = with(
        &dir,
        &[
            "--iterations",
            "4",
            "--checkpoint-every",
            "2",
            "--out-dir",
            "orig",
        ],
    );
    assert!(nst(&dir, &strs(&args)).status.success());
    std::fs::create_dir(dir.join("copy")).unwrap();
    std::fs::copy(
        dir.join("orig/checkpoint.json"),
        dir.join("copy/checkpoint.json"),
    )
    .unwrap();
    let orig = snapshot(&dir.join("orig"));
    let out = nst(&dir, &["stylize", "--resume", "copy", "--iterations", "6"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        dir.join("copy/result.png").exists(),
        "the result is written next to the checkpoint"
    );
    assert_eq!(
        snapshot(&dir.join("orig")),
        orig,
        "the original run's folder is untouched"
    );
}

/// Cases 4 and 6: edited or damaged checkpoints are refused, naming the field, and nothing is written.
#[test]
fn edited_checkpoints_name_the_field_and_write_nothing() {
    let dir = temp_dir("hostile-edited");
    fixture(&dir);
    let args = with(&dir, &["--iterations", "4", "--checkpoint-every", "2"]);
    assert!(nst(&dir, &strs(&args)).status.success());
    let path = dir.join("output/checkpoint.json");
    let good: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    type Edit = fn(&mut serde_json::Value);
    let edits: [(Edit, &str); 4] = [
        // A pixel set to 1e26, then to NaN (as f32 bit patterns).
        (
            |v| v["image_bits"][0] = 1e26_f32.to_bits().into(),
            "`image_bits`",
        ),
        (
            |v| v["image_bits"][0] = f32::NAN.to_bits().into(),
            "`image_bits`",
        ),
        (|v| v["iteration"] = 3.into(), "`iteration`"),
        (
            |v| v["settings"]["learning_rate"] = 0.5.into(),
            "`settings`",
        ),
    ];
    let resume = ["stylize", "--resume", "output", "--iterations", "8"].map(String::from);
    for (edit, field) in edits {
        let mut v = good.clone();
        edit(&mut v);
        std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        let err = refused(&dir, &resume, 1, &[field, "checksums"]);
        assert!(
            !err.contains("--learning-rate"),
            "no advice about the learning rate: {err}"
        );
    }
}

/// Case 5: weights so large that the image overflows are a clear error, not a black picture.
#[test]
fn weights_that_overflow_are_an_error_not_a_black_picture() {
    let dir = temp_dir("hostile-weights");
    fixture(&dir);
    for extra in [["--beta", "1e38"], ["--alpha", "3e38"]] {
        let out = nst(
            &dir,
            &strs(&with(&dir, &[&extra[..], &["--iterations", "3"]].concat())),
        );
        let err = stderr(&out);
        if out.status.success() {
            // Finished: then the picture must be a picture, not black.
            let img = image::open(dir.join("output/result.png"))
                .unwrap()
                .to_rgb8();
            let mean: f64 =
                img.as_raw().iter().map(|&v| f64::from(v)).sum::<f64>() / img.as_raw().len() as f64;
            assert!(
                mean > 5.0,
                "{extra:?}: a black result ({mean}) reported as {err}"
            );
        } else {
            assert_eq!(out.status.code(), Some(1), "{extra:?}: {err}");
            assert!(
                err.contains("not finite") || err.contains("non-finite"),
                "{err}"
            );
            assert!(!err.contains("panicked"), "{err}");
        }
    }
}

/// Cases 7, 8, 9 and 12: messages that blame the right flag and say what would work, before any work.
#[test]
fn messages_blame_the_flag_and_say_what_works() {
    let dir = temp_dir("hostile-messages");
    fixture(&dir);
    RgbImage::from_fn(1600, 10, |x, _| Rgb([(x % 255) as u8, 9, 9]))
        .save(dir.join("strip.png"))
        .unwrap();
    RgbImage::from_pixel(1, 1, Rgb([9, 9, 9]))
        .save(dir.join("dot.png"))
        .unwrap();
    refused(
        &dir,
        &with(&dir, &["--style-layers", "relu9_9"]),
        1,
        &["--style-layers", "has no layer `relu9_9`", "relu1_1"],
    );
    refused(
        &dir,
        &with(&dir, &["--style", "strip.png"]),
        1,
        &[
            "--style",
            "strip.png",
            "too small for the network",
            "--style-scale",
        ],
    );
    refused(
        &dir,
        &with(&dir, &["--content", "dot.png"]),
        1,
        &[
            "--content",
            "dot.png",
            "too small for the network",
            "--max-size",
        ],
    );
    refused(
        &dir,
        &with(&dir, &["--learning-rate", "1e-50"]),
        2,
        &["--learning-rate", "cannot be held in a 32-bit float"],
    );
    refused(
        &dir,
        &with(&dir, &["--max-size", "16384", "--upscale"]),
        1,
        &["--content", "64 MP", "choose a smaller --max-size"],
    );
}

/// Case 10: a checkpoint past `--iterations` is refused without writing; a resumed run that completes
/// leaves no out-of-date checkpoint behind.
#[test]
fn resume_past_the_end_is_refused_and_a_finished_resume_leaves_no_stale_checkpoint() {
    let dir = temp_dir("hostile-past-end");
    fixture(&dir);
    let args = with(&dir, &["--iterations", "4", "--checkpoint-every", "2"]);
    assert!(nst(&dir, &strs(&args)).status.success());
    let resume = |n: &str| ["stylize", "--resume", "output", "--iterations", n].map(String::from);
    refused(
        &dir,
        &resume("3"),
        1,
        &["already at iteration 4", "nothing to do"],
    );
    let out = nst(
        &dir,
        &strs(&[&resume("6")[..], &["--checkpoint-every".into(), "0".into()]].concat()),
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("removed the out-of-date checkpoint"), "{err}");
    assert!(!dir.join("output/checkpoint.json").exists());
}
