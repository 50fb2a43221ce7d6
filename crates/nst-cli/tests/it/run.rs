//! Runs that succeed (or are interrupted): defaults, metrics, outputs, resume, Ctrl-C, determinism.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;

use serde_json::Value;

use crate::{base_args, fixture, nst, nst_command, stderr, strs, temp_dir};

fn checkpoint_bits(path: &Path) -> (u64, Vec<u64>) {
    let v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let bits = v["image_bits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_u64().unwrap())
        .collect();
    (v["iteration"].as_u64().unwrap(), bits)
}

#[test]
fn seed_defaults_run_and_save_every_20_iterations() {
    let dir = temp_dir("defaults");
    let (w, c, s) = fixture(&dir);
    let out = nst(&dir, &strs(&base_args(&w, &c, &s)));
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("smaller than --max-size 400"), "{err}");
    let result = image::open(dir.join("output/result.png")).unwrap();
    assert_eq!((result.width(), result.height()), (40, 32));
    for i in (0..200).step_by(20) {
        assert!(
            dir.join(format!("output/iter-{i:04}.png")).is_file(),
            "iteration {i}"
        );
    }
    assert!(!dir.join("output/iter-0010.png").exists());
    let record: Value =
        serde_json::from_slice(&std::fs::read(dir.join("output/result.run.json")).unwrap())
            .unwrap();
    assert_eq!(record["outcome"], "completed");
    assert_eq!(record["iterations"], 200);
    let settings = &record["settings"];
    assert_eq!(settings["learning_rate"], 2.0);
    assert_eq!(settings["objective"]["alpha"], 10.0);
    assert_eq!(settings["objective"]["beta"], 40.0);
    assert_eq!(settings["noise_ratio"].as_f64().unwrap() as f32, 0.6);
    assert_eq!(settings["pooling"], "avg");
    assert_eq!(
        settings["objective"]["content_layers"][0]["name"],
        "relu4_2"
    );
    assert_eq!(
        settings["objective"]["style_layers"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert_eq!(record["weights"]["md5"].as_str().unwrap().len(), 32);
}

#[test]
fn seed_flag_spellings_and_images_folder_lookup() {
    let dir = temp_dir("aliases");
    let (w, _, _) = fixture(&dir);
    std::fs::create_dir_all(dir.join("images")).unwrap();
    std::fs::rename(dir.join("content.png"), dir.join("images/content.png")).unwrap();
    std::fs::rename(dir.join("style.jpg"), dir.join("images/style.jpg")).unwrap();
    let w = w.display().to_string();
    let out = nst(
        &dir,
        &[
            "stylize",
            "--weights",
            &w,
            "--content_image_filename",
            "content.png",
            "--style_image_filename",
            "style.jpg",
            "--epochs",
            "4",
            "--print_every",
            "2",
            "--learning_rate",
            "1.5",
            "--alpha",
            "5",
            "--beta",
            "20",
            "-q",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).is_empty(),
        "quiet prints nothing: {}",
        stderr(&out)
    );
    let record: Value =
        serde_json::from_slice(&std::fs::read(dir.join("output/result.run.json")).unwrap())
            .unwrap();
    assert_eq!(record["settings"]["iterations"], 4);
    assert_eq!(record["settings"]["learning_rate"], 1.5);
    assert_eq!(record["settings"]["objective"]["alpha"], 5.0);
    assert!(dir.join("output/iter-0002.png").is_file());
}

#[test]
fn metrics_plot_and_animation() {
    let dir = temp_dir("metrics");
    let (w, c, s) = fixture(&dir);
    let mut args = base_args(&w, &c, &s);
    args.extend(
        [
            "--iterations",
            "30",
            "--print-every",
            "5",
            "--metrics",
            "m.jsonl",
            "--plot",
            "p.png",
            "--animate",
            "a.gif",
        ]
        .map(String::from),
    );
    let out = nst(&dir, &strs(&args));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(dir.join("m.jsonl")).unwrap();
    let recs: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let iters: Vec<u64> = recs
        .iter()
        .map(|r| r["iteration"].as_u64().unwrap())
        .collect();
    assert_eq!(iters, vec![0, 5, 10, 15, 20, 25, 30]);
    let mut last_seconds = -1.0;
    for r in &recs {
        for k in ["total", "content", "style", "tv", "seconds"] {
            assert!(r[k].as_f64().unwrap().is_finite(), "{k} in {r}");
        }
        let layers = r["style_layers"].as_object().unwrap();
        assert_eq!(layers.len(), 5);
        assert!(layers.contains_key("relu3_1"));
        let total = 10.0 * r["content"].as_f64().unwrap() + 40.0 * r["style"].as_f64().unwrap();
        assert!(
            (total - r["total"].as_f64().unwrap()).abs() <= 1e-9 * total.abs().max(1.0),
            "{r}"
        );
        let secs = r["seconds"].as_f64().unwrap();
        assert!(secs >= last_seconds);
        last_seconds = secs;
    }
    let first = recs[0]["total"].as_f64().unwrap();
    let last = recs.last().unwrap()["total"].as_f64().unwrap();
    assert!(last < 0.5 * first, "the cost goes down: {first} → {last}");
    let plot = image::open(dir.join("p.png")).unwrap();
    assert_eq!((plot.width(), plot.height()), (800, 500));
    let gif = std::fs::File::open(dir.join("a.gif")).unwrap();
    let frames = image::AnimationDecoder::into_frames(
        image::codecs::gif::GifDecoder::new(BufReader::new(gif)).unwrap(),
    )
    .collect_frames()
    .unwrap();
    assert_eq!(frames.len(), 7);
}

#[test]
fn same_seed_same_threads_is_bit_identical_and_resume_equals_uninterrupted() {
    let dir = temp_dir("resume");
    let (w, c, s) = fixture(&dir);
    let run = |out_dir: &str, extra: &[&str]| {
        let mut args = base_args(&w, &c, &s);
        args.extend(
            [
                "--out-dir",
                out_dir,
                "--print-every",
                "3",
                "--checkpoint-every",
                "4",
            ]
            .map(String::from),
        );
        args.extend(extra.iter().map(|s| s.to_string()));
        let out = nst(&dir, &strs(&args));
        assert!(out.status.success(), "{}", stderr(&out));
    };
    run("a", &["--iterations", "10"]);
    run("b", &["--iterations", "10"]);
    run("c", &["--iterations", "5"]);
    let (ia, bits_a) = checkpoint_bits(&dir.join("a/checkpoint.json"));
    let (ib, bits_b) = checkpoint_bits(&dir.join("b/checkpoint.json"));
    assert_eq!((ia, ib), (10, 10));
    assert!(bits_a == bits_b, "two runs with the same seed differ");

    let out = nst(
        &dir,
        &[
            "stylize",
            "--resume",
            "c",
            "--iterations",
            "10",
            "--weights",
            &w.display().to_string(),
            "--threads",
            "1",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("resuming"), "{}", stderr(&out));
    let (ic, bits_c) = checkpoint_bits(&dir.join("c/checkpoint.json"));
    assert_eq!(ic, 10);
    assert!(
        bits_a == bits_c,
        "the resumed run differs from the uninterrupted one"
    );
    let a = image::open(dir.join("a/result.png")).unwrap().to_rgb8();
    let c = image::open(dir.join("c/result.png")).unwrap().to_rgb8();
    assert_eq!(a, c);
    // Settings that change the optimization cannot change on resume.
    let out = nst(&dir, &["stylize", "--resume", "c", "--alpha", "3"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--alpha cannot be changed when resuming"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn lbfgs_resume_equals_uninterrupted() {
    let dir = temp_dir("resume-lbfgs");
    let (w, c, s) = fixture(&dir);
    let run = |out_dir: &str, n: &str| {
        let mut args = base_args(&w, &c, &s);
        args.extend(
            [
                "--out-dir",
                out_dir,
                "--optimizer",
                "lbfgs",
                "--checkpoint-every",
                "3",
                "--iterations",
                n,
                "--metrics",
            ]
            .map(String::from),
        );
        args.push(format!("{out_dir}.jsonl"));
        let out = nst(&dir, &strs(&args));
        assert!(out.status.success(), "{}", stderr(&out));
    };
    run("a", "6");
    run("b", "3");
    let out = nst(
        &dir,
        &[
            "stylize",
            "--resume",
            "b",
            "--iterations",
            "6",
            "--threads",
            "1",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        checkpoint_bits(&dir.join("a/checkpoint.json")),
        checkpoint_bits(&dir.join("b/checkpoint.json"))
    );
    let recs: Vec<Value> = std::fs::read_to_string(dir.join("a.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let totals: Vec<f64> = recs.iter().map(|r| r["total"].as_f64().unwrap()).collect();
    assert!(
        totals.windows(2).all(|p| p[1] <= p[0]),
        "L-BFGS decreases the cost: {totals:?}"
    );
}

#[test]
fn sigint_saves_the_image_and_a_checkpoint_and_exits_130() {
    check_signal("-INT");
}

#[test]
fn sigterm_saves_the_image_and_a_checkpoint_and_exits_130() {
    check_signal("-TERM");
}

#[track_caller]
fn check_signal(signal: &str) {
    let dir = temp_dir(&format!("signal{signal}"));
    let (w, c, s) = fixture(&dir);
    let mut args = base_args(&w, &c, &s);
    args.extend(["--iterations", "100000000", "--print-every", "5"].map(String::from));
    let mut child = nst_command(&dir, &strs(&args))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    // Wait (by reading, not sleeping) until the run is under way.
    for line in lines.by_ref() {
        if line.unwrap().contains("iteration   10/") {
            break;
        }
    }
    let kill = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest:?}");
    let said = rest.join("\n");
    assert!(
        said.contains("interrupted after iteration") && said.contains("--resume"),
        "{said}"
    );
    let img = image::open(dir.join("output/result.png")).unwrap();
    assert_eq!((img.width(), img.height()), (40, 32));
    let (iteration, bits) = checkpoint_bits(&dir.join("output/checkpoint.json"));
    assert!(iteration >= 10, "{iteration}");
    assert_eq!(bits.len(), 3 * 40 * 32);
    let record: Value =
        serde_json::from_slice(&std::fs::read(dir.join("output/result.run.json")).unwrap())
            .unwrap();
    assert_eq!(record["outcome"], "interrupted");
}

#[test]
fn too_large_for_memory_is_refused_with_a_size_that_fits_unless_forced() {
    let dir = temp_dir("memory");
    let (w, c, s) = fixture(&dir);
    let mut args = base_args(&w, &c, &s);
    args.extend(["--iterations", "1", "--size", "400x320", "--upscale"].map(String::from));
    let out = nst_command(&dir, &strs(&args))
        .env("NST_MEMORY_LIMIT_MB", "80")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("the largest size that would fit is about") && err.contains("--force"),
        "{err}"
    );
    assert!(!dir.join("output/result.png").exists());
    args.push("--force".into());
    let out = nst_command(&dir, &strs(&args))
        .env("NST_MEMORY_LIMIT_MB", "80")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn preserve_colors_keeps_the_content_chroma() {
    let dir = temp_dir("colors");
    let (w, c, s) = fixture(&dir);
    let content = image::open(&c).unwrap().to_rgb8();
    let iq = |p: &image::Rgb<u8>| {
        let [r, g, b] = p.0.map(f32::from);
        (
            0.596 * r - 0.274 * g - 0.322 * b,
            0.211 * r - 0.523 * g + 0.312 * b,
        )
    };
    let chroma_change = |extra: &[&str]| {
        let mut args = base_args(&w, &c, &s);
        args.extend(["--iterations", "10"].map(String::from));
        args.extend(extra.iter().map(|s| s.to_string()));
        let out = nst(&dir, &strs(&args));
        assert!(out.status.success(), "{}", stderr(&out));
        let result = image::open(dir.join("output/result.png"))
            .unwrap()
            .to_rgb8();
        let mut diff = 0.0;
        for (a, b) in result.pixels().zip(content.pixels()) {
            let ((ia, qa), (ib, qb)) = (iq(a), iq(b));
            diff += (ia - ib).abs() + (qa - qb).abs();
        }
        diff / (40.0 * 32.0 * 2.0)
    };
    let kept = chroma_change(&["--preserve-colors"]);
    let free = chroma_change(&[]);
    // Clipping to 0–255 and rounding move the chroma a little where the luminance is extreme.
    assert!(
        kept < 3.0 && free > 3.0 * kept,
        "mean chroma change {kept} with, {free} without --preserve-colors"
    );
}

#[test]
fn bench_with_random_weights_needs_no_file() {
    let dir = temp_dir("bench-random");
    let out = nst(
        &dir,
        &[
            "bench",
            "--random-weights",
            "--size",
            "32x24",
            "--iterations",
            "1",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(
        text.contains("32x24: weights loaded") && text.contains("(cpu backend"),
        "{text}"
    );
    assert!(stderr(&out).contains("device: cpu"), "{}", stderr(&out));
    let both = nst(&dir, &["bench", "--random-weights", "--weights", "x.mat"]);
    assert_eq!(both.status.code(), Some(2), "a clap usage error");
    assert!(
        stderr(&both).contains("--random-weights"),
        "{}",
        stderr(&both)
    );
}

#[test]
fn bench_times_iterations() {
    let dir = temp_dir("bench");
    let (w, _, _) = fixture(&dir);
    let out = nst(
        &dir,
        &[
            "bench",
            "--weights",
            &w.display().to_string(),
            "--size",
            "40x32",
            "--iterations",
            "2",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("median Adam iteration") && text.contains("over 2 iterations"),
        "{text}"
    );
}

#[test]
fn start_images_and_blended_styles() {
    let dir = temp_dir("inits");
    let (w, c, s) = fixture(&dir);
    let run = |out_dir: &str, extra: &[&str]| {
        let mut args = base_args(&w, &c, &s);
        args.extend(["--iterations", "2", "--out-dir", out_dir].map(String::from));
        args.extend(extra.iter().map(|s| s.to_string()));
        let out = nst(&dir, &strs(&args));
        assert!(out.status.success(), "{extra:?}: {}", stderr(&out));
        image::open(dir.join(out_dir).join("iter-0000.png"))
            .unwrap()
            .to_rgb8()
    };
    let content = image::open(&c).unwrap().to_rgb8();
    // The start image of `--init content` is the content image, exactly (no clipping, no resizing here).
    assert_eq!(run("content", &["--init", "content"]), content);
    let noise = run("noise", &[]);
    assert_ne!(noise, content);
    assert_ne!(run("random", &["--init", "random"]), noise);
    let style_start = run("style", &["--init", "style"]);
    assert_eq!(style_start.dimensions(), (40, 32));
    assert_eq!(
        run("image", &["--init-image", &s.display().to_string()]),
        style_start
    );
    // Two styles, blended 1:3.
    let s2 = dir.join("style2.png");
    image::RgbImage::from_fn(30, 30, |x, y| {
        image::Rgb([(x * 8) as u8, 100, (y * 8) as u8])
    })
    .save(&s2)
    .unwrap();
    run(
        "blend",
        &["--style", &s2.display().to_string(), "--style-blend", "1,3"],
    );
    let record: Value =
        serde_json::from_slice(&std::fs::read(dir.join("blend/result.run.json")).unwrap()).unwrap();
    assert_eq!(
        record["settings"]["style_blend"],
        serde_json::json!([1.0, 3.0])
    );
    assert_eq!(record["settings"]["styles"].as_array().unwrap().len(), 2);
}

#[test]
fn device_auto_without_a_gpu_build_says_it_uses_the_cpu() {
    let dir = temp_dir("device-auto");
    let (w, c, s) = fixture(&dir);
    let mut args = base_args(&w, &c, &s);
    args.extend(["--iterations", "1", "--device", "auto"].map(String::from));
    let out = nst(&dir, &strs(&args));
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    if cfg!(feature = "cuda") {
        assert!(err.contains("device: "), "{err}");
    } else {
        assert!(
            err.contains("device: cpu (--device auto:") && err.contains("cuda"),
            "{err}"
        );
    }
    let record: Value =
        serde_json::from_slice(&std::fs::read(dir.join("output/result.run.json")).unwrap())
            .unwrap();
    assert_eq!(record["settings"]["device"], "auto");
}

/// `--bit-depth 16`: a 16-bit PNG whose values are not an 8-bit picture's, with the run's settings in
/// a text chunk; refused for a JPEG.
#[test]
fn sixteen_bit_results_carry_their_settings() {
    let dir = temp_dir("bit-depth");
    let (w, c, s) = fixture(&dir);
    let mut args = base_args(&w, &c, &s);
    args.extend(["--iterations", "3", "--bit-depth", "16", "-o", "deep.png"].map(String::from));
    let out = nst(&dir, &strs(&args));
    assert!(out.status.success(), "{}", stderr(&out));
    let img = image::open(dir.join("deep.png")).unwrap();
    assert_eq!(img.color(), image::ColorType::Rgb16);
    let samples = img.into_rgb16().into_raw();
    assert!(
        samples.iter().any(|v| v % 257 != 0),
        "some value is not an 8-bit value scaled up"
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(dir.join("deep.png")).unwrap(),
    ));
    let reader = decoder.read_info().unwrap();
    let settings = reader
        .info()
        .utf8_text
        .iter()
        .find(|t| t.keyword == "nst-settings")
        .map(|t| t.get_text().unwrap())
        .unwrap();
    let v: Value = serde_json::from_str(&settings).unwrap();
    assert_eq!(v["iterations"], 3);
    assert_eq!(v["bit_depth"], 16);
    let mut jpeg = base_args(&w, &c, &s);
    jpeg.extend(["--bit-depth", "16", "-o", "deep.jpg"].map(String::from));
    let out = nst(&dir, &strs(&jpeg));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--bit-depth 16 needs a PNG"),
        "{}",
        stderr(&out)
    );
}

/// `--original-colors`: the written result's chrominance is the content's in the chosen space.
#[test]
fn original_colors_give_the_result_the_contents_chrominance() {
    use nst_engine::color::{ColorSpace, to_space};
    let dir = temp_dir("original-colors");
    let (w, c, s) = fixture(&dir);
    let content = image::open(&c).unwrap().to_rgb8();
    for space in ["ycbcr", "lab"] {
        let mut args = base_args(&w, &c, &s);
        args.extend(
            [
                "--iterations",
                "5",
                "--original-colors",
                "--color-space",
                space,
            ]
            .map(String::from),
        );
        let out = nst(&dir, &strs(&args));
        assert!(out.status.success(), "{}", stderr(&out));
        let result = image::open(dir.join("output/result.png"))
            .unwrap()
            .to_rgb8();
        let sp: ColorSpace = space.parse().unwrap();
        let (mut worst, mut counted) = (0.0_f32, 0);
        for (a, b) in result.pixels().zip(content.pixels()) {
            // Pixels clipped to 0 or 255 cannot carry any chrominance exactly.
            if a.0.iter().any(|&v| v == 0 || v == 255) {
                continue;
            }
            let [_, a1, a2] = to_space(sp, a.0.map(f32::from));
            let [_, b1, b2] = to_space(sp, b.0.map(f32::from));
            worst = worst.max((a1 - b1).abs().max((a2 - b2).abs()));
            counted += 1;
        }
        assert!(counted > 100, "{space}: only {counted} unclipped pixels");
        // Rounding to 8 bits moves a chroma coordinate by at most a few units.
        assert!(worst < 3.0, "{space}: chroma differs by {worst}");
    }
}

/// `--preset`: each preset's printed settings, a flag that overrides one, and a short run of each on
/// the tiny model.
#[test]
fn presets_print_their_settings_and_run() {
    let dir = temp_dir("presets");
    let (w, c, s) = fixture(&dir);
    let settings = |extra: &[&str]| -> Value {
        let mut args = base_args(&w, &c, &s);
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push("--print-settings".into());
        let out = nst(&dir, &strs(&args));
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let seed = settings(&[]);
    assert_eq!(
        (
            &seed["optimizer"],
            &seed["iterations"],
            &seed["objective"]["beta"]
        ),
        (&Value::from("adam"), &Value::from(200), &Value::from(40.0))
    );
    let gatys = settings(&["--preset", "gatys"]);
    assert_eq!(gatys["optimizer"], "lbfgs");
    assert_eq!(gatys["init"], "content");
    assert_eq!(gatys["pooling"], "avg");
    assert_eq!(gatys["objective"]["content_norm"], "half");
    assert_eq!(
        (
            gatys["objective"]["alpha"].as_f64(),
            gatys["objective"]["beta"].as_f64()
        ),
        (Some(1.0), Some(1000.0))
    );
    let jc = settings(&["--preset", "jcjohnson", "--iterations", "7"]);
    assert_eq!(jc["iterations"], 7, "a flag overrides the preset");
    assert_eq!(jc["pooling"], "max");
    assert_eq!(jc["objective"]["style_norm"], "mean-gram");
    assert_eq!(jc["objective"]["tv_weight"].as_f64(), Some(5e-4));
    assert!(
        !dir.join("output").exists(),
        "--print-settings runs nothing"
    );
    for preset in ["seed", "gatys", "jcjohnson"] {
        let mut args = base_args(&w, &c, &s);
        let out_dir = format!("run-{preset}");
        args.extend(
            [
                "--preset",
                preset,
                "--iterations",
                "2",
                "--max-size",
                "40",
                "--out-dir",
                &out_dir,
            ]
            .map(String::from),
        );
        let out = nst(&dir, &strs(&args));
        assert!(out.status.success(), "{preset}: {}", stderr(&out));
        assert!(dir.join(&out_dir).join("result.png").exists(), "{preset}");
    }
}
