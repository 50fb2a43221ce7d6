//! The artistic controls end to end: colour matching, masks, style losses, gradient normalization and
//! the w2 preset, with the errors of each.

use image::{GrayImage, Luma};
use serde_json::Value;

use super::*;

/// A `w × h` mask: white left of column `split`, black from it (`flip`: the other way round).
fn write_mask(dir: &Path, name: &str, (w, h): (u32, u32), split: u32, flip: bool) -> PathBuf {
    let p = dir.join(name);
    GrayImage::from_fn(w, h, |x, _| {
        Luma([if (x < split) != flip { 255 } else { 0 }])
    })
    .save(&p)
    .unwrap();
    p
}

fn settings(dir: &Path, extra: &[&str]) -> Value {
    let mut args = fixture_args_with(dir, extra);
    args.push("--print-settings".into());
    let out = nst(dir, &strs(&args));
    assert!(out.status.success(), "{extra:?}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn run_ok(dir: &Path, extra: &[&str], out_dir: &str) {
    let mut args = fixture_args_with(dir, extra);
    args.extend(
        [
            "--iterations",
            "2",
            "--max-size",
            "40",
            "--out-dir",
            out_dir,
        ]
        .map(String::from),
    );
    let out = nst(dir, &strs(&args));
    assert!(out.status.success(), "{extra:?}: {}", stderr(&out));
    assert!(dir.join(out_dir).join("result.png").exists(), "{extra:?}");
}

#[track_caller]
fn fails_naming(dir: &Path, extra: &[&str], wanted: &str) {
    let mut args = fixture_args_with(dir, extra);
    args.extend(["--iterations", "2", "--max-size", "40"].map(String::from));
    let out = nst(dir, &strs(&args));
    let err = stderr(&out);
    assert!(!out.status.success(), "{extra:?} succeeded");
    assert!(
        err.contains(wanted),
        "{extra:?}: wanted `{wanted}` in: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn the_w2_preset_prints_its_recipe_and_runs() {
    let dir = temp_dir("preset-w2");
    fixture(&dir);
    let w2 = settings(&dir, &["--preset", "w2"]);
    assert_eq!(w2["objective"]["style_loss"], "w2");

    assert_eq!(w2["scales"], serde_json::json!({"auto": {"min": 128}}));
    assert_eq!(w2["average"].as_f64(), Some(0.99));
    assert_eq!(w2["init"], "content");
    assert_eq!(w2["scale_iterations"], 500);
    assert_eq!(w2["pooling"], "max");
    let weights: Vec<f64> = w2["objective"]["style_layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["weight"].as_f64().unwrap())
        .collect();
    let ratios: Vec<f64> = weights.windows(2).map(|p| p[0] / p[1]).collect();
    assert!(ratios.iter().all(|r| (r - 4.0).abs() < 1e-4), "{weights:?}");
    // An explicit flag overrides the preset's value.
    let gram = settings(&dir, &["--preset", "w2", "--style-loss", "gram"]);
    // (gram is the default, which the settings leave out.)
    assert!(gram["objective"].get("style_loss").is_none());

    run_ok(
        &dir,
        &["--preset", "w2", "--scale-iterations", "1"],
        "run-w2",
    );
    run_ok(
        &dir,
        &["--style-loss", "mean-cov", "--normalize-gradients"],
        "run-meancov",
    );
    let on = settings(&dir, &["--preset", "w2", "--normalize-gradients"]);
    assert_eq!(on["objective"]["normalize_gradients"], true);
    let off = settings(&dir, &["--preset", "w2", "--normalize-gradients", "false"]);
    assert!(
        off["objective"].get("normalize_gradients").is_none(),
        "turned off"
    );
    fails_naming(
        &dir,
        &["--preset", "jcjohnson", "--normalize-gradients"],
        "--normalize-gradients with --optimizer lbfgs",
    );
}

#[test]
fn colour_matching_runs_with_every_method_and_its_flags_are_checked() {
    let dir = temp_dir("color-match");
    fixture(&dir);
    let s = settings(&dir, &["--preserve-colors", "match"]);
    assert_eq!(s["color_match"], "pca", "the default method");
    assert_eq!(s["preserve_colors"], false);
    let s = settings(&dir, &["--preserve-colors"]);
    assert_eq!(s["preserve_colors"], true, "the flag alone is luminance");
    for method in ["chol", "pca", "sym"] {
        let out_dir = format!("run-{method}");
        run_ok(
            &dir,
            &["--preserve-colors", "match", "--color-match", method],
            &out_dir,
        );
    }
    fails_naming(
        &dir,
        &["--color-match", "chol"],
        "--color-match applies to --preserve-colors match",
    );
    fails_naming(
        &dir,
        &["--preserve-colors", "match", "--original-colors"],
        "contradict",
    );
}

#[test]
fn masks_split_two_styles_and_bad_masks_name_their_flag() {
    let dir = temp_dir("masks");
    let (_, _, style) = fixture(&dir);
    let left = write_mask(&dir, "left.png", (40, 32), 20, false);
    let right = write_mask(&dir, "right.png", (40, 32), 20, true);
    let region = write_mask(&dir, "region.png", (48, 36), 30, false);
    let black = write_mask(&dir, "black.png", (48, 36), 0, false);
    let style = style.display().to_string();
    let (left, right, region) = (
        left.display().to_string(),
        right.display().to_string(),
        region.display().to_string(),
    );
    let two = [
        "--style",
        &style,
        "--style",
        &style,
        "--style-mask",
        &left,
        "--style-mask",
        &right,
    ];
    run_ok(&dir, &two, "run-two");
    let mut with_regions = two.to_vec();
    with_regions.extend(["--style-image-mask", &region, "--style-image-mask", &region]);
    with_regions.extend(["--content-mask", &left]);
    run_ok(&dir, &with_regions, "run-regions");
    fails_naming(
        &dir,
        &["--style", &style, "--style", &style, "--style-mask", &left],
        "--style-mask was given 1 times for 2 --style images",
    );
    fails_naming(
        &dir,
        &["--style-mask", &left, "--style-loss", "w2"],
        "work with --style-loss gram",
    );
    // A mask with other proportions than its image.
    fails_naming(
        &dir,
        &["--style-mask", &region],
        "must have its image's proportions",
    );
    fails_naming(&dir, &["--content-mask", "missing.png"], "--content-mask");
    let black = black.display().to_string();
    fails_naming(&dir, &["--style-image-mask", &black], "is black");
    fails_naming(
        &dir,
        &["--style-image-mask", &left],
        "must have its image's proportions",
    );
    // A mask is an input: no output may overwrite it.
    fails_naming(
        &dir,
        &["--content-mask", &left, "-o", &left],
        "would overwrite the input",
    );
    // Masks over two scales (20 then 40 px).
    run_ok(
        &dir,
        &[two.as_slice(), &["--scales", "20", "--style-scale", "1.5"]].concat(),
        "run-scales",
    );
    fails_naming(
        &dir,
        &["--style-loss", "w2", "--device", "cuda"],
        "runs on the CPU only",
    );
}
