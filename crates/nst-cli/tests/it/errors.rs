//! Bad input: every case names the file or flag and exits non-zero, before any long work.

use std::path::Path;

use vgg_weights::write::{Compression, write_simplenn};
use vgg_weights::{Layer, LayerKind, Layout};

use crate::{fixture, fixture_args_with, nst, stderr, strs, synthetic_model, temp_dir};

/// Runs with the base flags plus `extra`; asserts the exit code and that stderr contains `needle`.
#[track_caller]
fn check(dir: &Path, extra: &[&str], code: i32, needle: &str) -> String {
    let args = fixture_args_with(dir, extra);
    let out = nst(dir, &strs(&args));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(code), "{extra:?}: {err}");
    assert!(
        err.contains(needle),
        "{extra:?}: expected `{needle}` in: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn bad_inputs_name_the_file_or_flag() {
    let dir = temp_dir("errors");
    fixture(&dir);
    std::fs::write(dir.join("notes.png"), b"hello, not an image").unwrap();
    std::fs::write(dir.join("empty.jpg"), b"").unwrap();
    check(&dir, &["--content", "nowhere.png"], 1, "nowhere.png");
    check(
        &dir,
        &["--style", "notes.png"],
        1,
        "notes.png is not a PNG, JPEG or GIF image",
    );
    check(
        &dir,
        &["--content", "empty.jpg"],
        1,
        "empty.jpg is an empty file",
    );
    check(
        &dir,
        &["--size", "20x10", "--max-size", "30"],
        2,
        "--max-size",
    );
    check(
        &dir,
        &["--init", "content", "--init-image", "style.jpg"],
        1,
        "contradict",
    );
    check(
        &dir,
        &["--style-blend", "1,2"],
        1,
        "--style-blend has 2 weights but 1 --style images",
    );
    check(
        &dir,
        &["--optimizer", "lbfgs", "--learning-rate", "1"],
        1,
        "--learning-rate applies to --optimizer adam",
    );
    check(&dir, &["--size", "80x60"], 1, "--upscale");
    check(&dir, &["--size", "80"], 1, "--size");
    check(&dir, &["--style-layers", "relu1_1:x"], 1, "--style-layers");
    check(&dir, &["--content-layers", "relu9_1"], 1, "relu9_1");
    check(&dir, &["--output", "out.bmp"], 1, "out.bmp");
    check(&dir, &["--plot", "p.pdf"], 1, "--plot");
    check(&dir, &["--animate", "a.png"], 1, "--animate");
    // Without the feature the message names it; with it (and no GPU here) it says what is missing.
    let device_needle = if cfg!(feature = "cuda") {
        "--device cuda"
    } else {
        "`cuda` feature"
    };
    check(&dir, &["--device", "cuda"], 1, device_needle);
    check(&dir, &["--learning-rate=-2"], 1, "--learning-rate must be");
    check(&dir, &["--bogus-flag"], 2, "--bogus-flag");
}

#[test]
fn unwritable_output_folder_fails_before_the_run() {
    let dir = temp_dir("unwritable");
    fixture(&dir);
    std::fs::write(dir.join("a-file"), b"x").unwrap();
    let err = check(&dir, &["--out-dir", "a-file/out"], 1, "a-file");
    assert!(
        !err.contains("iteration"),
        "no work before the check: {err}"
    );
    assert!(
        !err.contains("working size"),
        "no work before the check: {err}"
    );
}

#[test]
fn weights_that_are_not_a_vgg_chain() {
    let dir = temp_dir("not-vgg");
    fixture(&dir);
    let mut m = synthetic_model(1, 4);
    m.layers.insert(
        1,
        Layer {
            name: "drop1".into(),
            kind: LayerKind::Other {
                type_name: "dropout".into(),
            },
        },
    );
    write_simplenn(dir.join("odd.mat"), &m, Layout::Current, Compression::Zlib).unwrap();
    check(&dir, &["--weights", "odd.mat"], 1, "not a VGG chain");
    std::fs::write(dir.join("junk.mat"), vec![7_u8; 300]).unwrap();
    check(&dir, &["--weights", "junk.mat"], 1, "junk.mat");
    check(
        &dir,
        &["--weights", "missing.mat"],
        1,
        "missing.mat does not exist",
    );
}

#[test]
fn diverging_run_keeps_the_last_good_image_and_says_what_to_change() {
    let dir = temp_dir("nan");
    fixture(&dir);
    let err = check(
        &dir,
        &["--learning-rate", "1e36", "--iterations", "50"],
        1,
        "lower --learning-rate",
    );
    assert!(err.contains("non-finite"), "{err}");
    assert!(image::open(dir.join("output/result.png")).is_ok());
}

#[test]
fn offline_without_weights_says_where_to_get_them() {
    let dir = temp_dir("offline");
    let (_, c, s) = fixture(&dir);
    let (c, s) = (c.display().to_string(), s.display().to_string());
    for (args, env) in [
        (
            vec!["stylize", "--content", &c, "--style", &s, "--offline"],
            None,
        ),
        (
            vec!["stylize", "--content", &c, "--style", &s],
            Some(("NST_OFFLINE", "1")),
        ),
    ] {
        let mut cmd = crate::nst_command(&dir, &args);
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("https://www.vlfeat.org/matconvnet/models/imagenet-vgg-verydeep-19.mat"),
            "{err}"
        );
        assert!(
            err.contains("pretrained-model/imagenet-vgg-verydeep-19.mat"),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "one message: {err}");
    }
}

/// First use without weights: `nst stylize` downloads the default file (here from a mirror on 127.0.0.1
/// that serves the wrong bytes), verifies it, refuses it, and does no work.
#[test]
fn first_use_downloads_and_verifies_the_default_weights() {
    use std::io::{BufRead, BufReader, Write};
    let dir = temp_dir("first-use");
    let (_, c, s) = fixture(&dir);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                line.clear();
            }
            let body = b"not the VGG-19 weights";
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(body);
        }
    });
    let (c, s) = (c.display().to_string(), s.display().to_string());
    let out = crate::nst_command(&dir, &["stylize", "--content", &c, "--style", &s])
        .env(
            "NST_WEIGHTS_URL",
            format!("http://127.0.0.1:{port}/imagenet-vgg-verydeep-19.mat"),
        )
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("downloading http://127.0.0.1"), "{err}");
    assert!(
        err.contains("not the published 106118b7cf60435e6d8e04f6a6dc3657"),
        "{err}"
    );
    assert!(
        !dir.join("pretrained-model/imagenet-vgg-verydeep-19.mat")
            .exists()
    );
    assert!(
        !dir.join("pretrained-model/imagenet-vgg-verydeep-19.mat.part")
            .exists()
    );
    assert!(
        !err.contains("working size"),
        "no work after a failed download: {err}"
    );
}

/// Cases found by review: each names the file or flag, exits 1, and never panics.
#[test]
fn review_cases_name_the_file_or_flag() {
    let dir = temp_dir("errors-review");
    let (_, _, style) = fixture(&dir);
    // A JPEG cut short: the decoder would fill it with gray; it must be refused.
    let bytes = std::fs::read(&style).unwrap();
    std::fs::write(dir.join("cut.jpg"), &bytes[..bytes.len() * 2 / 3]).unwrap();
    check(&dir, &["--content", "cut.jpg"], 1, "cut.jpg is truncated");
    // A 1x1 content image: the message gives the working size and the file.
    image::RgbImage::from_pixel(1, 1, image::Rgb([9, 9, 9]))
        .save(dir.join("dot.png"))
        .unwrap();
    let err = check(&dir, &["--content", "dot.png"], 1, "working size 1x1");
    assert!(err.contains("dot.png"), "{err}");
    // Zero iterations would only write the start image as the result.
    check(
        &dir,
        &["--iterations", "0"],
        1,
        "--iterations must be at least 1",
    );
    // A folder given as the weights file.
    std::fs::create_dir_all(dir.join("weights-dir")).unwrap();
    check(
        &dir,
        &["--weights", "weights-dir"],
        1,
        "weights-dir is a folder",
    );
    // A folder given as the content image.
    std::fs::create_dir_all(dir.join("folder.png")).unwrap();
    check(
        &dir,
        &["--content", "folder.png"],
        1,
        "folder.png: it is a folder",
    );
    // Working sizes whose arithmetic could overflow are refused up front.
    check(
        &dir,
        &["--size", "4294967295x4294967295", "--upscale"],
        1,
        "larger than 16384 pixels on a side",
    );
    check(
        &dir,
        &["--max-size", "4294967295"],
        1,
        "--max-size must be between",
    );
    // A regular file where a folder is needed.
    std::fs::write(dir.join("plain"), b"x").unwrap();
    check(
        &dir,
        &["--metrics", "plain/m.jsonl"],
        1,
        "plain is a file, not a folder",
    );
    check(
        &dir,
        &["--out-dir", "plain/out"],
        1,
        "plain is a file, not a folder",
    );
    // A missing file: the OS reason once, not twice.
    let err = check(&dir, &["--content", "nowhere.png"], 1, "nowhere.png");
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
    // Corrupted checkpoints.
    std::fs::write(dir.join("cut.json"), br#"{"format": 1, "vers"#).unwrap();
    let out = nst(&dir, &["stylize", "--resume", "cut.json"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cut.json is not a valid nst checkpoint"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let out = nst(&dir, &["stylize", "--resume", "no-checkpoint-here"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no-checkpoint-here"), "{err}");
}
