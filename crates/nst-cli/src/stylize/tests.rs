//! The run loop with device-resident Adam, in process on the `device-emu` emulator: logging, checkpoints
//! and resume see the device's iterate, and the outputs match the host run's.

use std::sync::atomic::AtomicBool;

use clap::Parser as _;
use image::{Rgb, RgbImage};
use vgg_weights::write::{Compression, write_simplenn};
use vgg_weights::{Layout, PoolMethod};

use super::*;
use crate::cli::{Cli, Command};
use crate::testing::TempDir;

/// Writes the weights (the pipeline tests' tiny VGG) and a content and a style image into `dir`.
fn fixture(dir: &std::path::Path) {
    let model = crate::pipeline::tests::tiny_model(1, 4, PoolMethod::Max);
    write_simplenn(
        &dir.join("w.mat"),
        &model,
        Layout::Beta16,
        Compression::None,
    )
    .unwrap();
    RgbImage::from_fn(16, 12, |x, y| Rgb([(x * 15) as u8, (y * 20) as u8, 90]))
        .save(dir.join("c.png"))
        .unwrap();
    RgbImage::from_fn(14, 10, |x, y| {
        Rgb([((x * y) % 255) as u8, 200 - (x * 9) as u8, (y * 25) as u8])
    })
    .save(dir.join("s.png"))
    .unwrap();
}

fn args(dir: &std::path::Path, out: &str, extra: &[&str]) -> StylizeArgs {
    let w = dir.join("w.mat").display().to_string();
    let c = dir.join("c.png").display().to_string();
    let s = dir.join("s.png").display().to_string();
    let o = dir.join(out);
    let mut v: Vec<String> = [
        "nst",
        "stylize",
        "--weights",
        &w,
        "--content",
        &c,
        "--style",
        &s,
        "--output",
        &o.join("out.png").display().to_string(),
        "--out-dir",
        &o.display().to_string(),
        "--content-layers",
        "relu2_1",
        "--style-layers",
        "relu1_1,relu2_1",
        "--print-every",
        "2",
        "--seed",
        "3",
        "--offline",
        "true",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if !extra.contains(&"--learning-rate") {
        v.extend(["--learning-rate".to_owned(), "1".to_owned()]);
    }
    v.extend(extra.iter().map(|s| s.to_string()));
    match Cli::try_parse_from(v).unwrap().command {
        Command::Stylize(a) => *a,
        _ => unreachable!("a stylize command"),
    }
}

fn pixels(path: &std::path::Path) -> Vec<u8> {
    image::open(path).unwrap().to_rgb8().into_raw()
}

fn adam_state(path: &std::path::Path) -> nst_optim::AdamState {
    match Checkpoint::load(path).unwrap().0.optimizer {
        OptimizerState::Adam(s) => s,
        OptimizerState::Lbfgs(_) => panic!("an Adam checkpoint"),
    }
}

#[test]
fn device_adam_run_matches_the_host_run_and_resumes_exactly() {
    let tmp = TempDir::new("stylize-device-adam");
    let dir = tmp.path();
    fixture(dir);
    let stop = AtomicBool::new(false);
    let emu: Place<'_> = &|o: StyleObjective| o.on_device(device_emu::Emulator::new(64, 1));

    let (mh_path, md_path) = (
        dir.join("host.jsonl").display().to_string(),
        dir.join("dev.jsonl").display().to_string(),
    );
    run_placed(
        &args(
            dir,
            "host",
            &[
                "--iterations",
                "6",
                "--checkpoint-every",
                "3",
                "--metrics",
                &mh_path,
            ],
        ),
        true,
        1,
        &stop,
        &Ok,
    )
    .unwrap();
    run_placed(
        &args(
            dir,
            "dev",
            &[
                "--iterations",
                "6",
                "--checkpoint-every",
                "3",
                "--metrics",
                &md_path,
            ],
        ),
        true,
        1,
        &stop,
        emu,
    )
    .unwrap();

    // The same run: images within one grey level, the same logged iterations with costs within rounding.
    let (host, dev) = (
        pixels(&dir.join("host/out.png")),
        pixels(&dir.join("dev/out.png")),
    );
    assert_eq!(host.len(), dev.len());
    let worst = host
        .iter()
        .zip(&dev)
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap();
    assert!(worst <= 1, "largest pixel difference {worst}");
    assert_ne!(
        host,
        pixels(&dir.join("c.png")),
        "the run changed the image"
    );
    let costs = |p: &str| -> Vec<(u64, f64)> {
        std::fs::read_to_string(dir.join(p))
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["iteration"].as_u64().unwrap(),
                    v["total"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    let (ch, cd) = (costs("host.jsonl"), costs("dev.jsonl"));
    assert_eq!(ch.len(), 4, "iterations 0, 2, 4, 6 logged: {ch:?}");
    for ((ih, th), (id, td)) in ch.iter().zip(&cd) {
        assert_eq!(ih, id);
        assert!(
            (th - td).abs() <= 1e-5 * th.abs(),
            "iteration {ih}: host {th}, device {td}"
        );
    }
    // The checkpoint holds the device's iterate and moments, in step with the host's.
    let (host_ckpt, dev_ckpt) = (
        Checkpoint::load(&dir.join("host").join(checkpoint::FILE_NAME))
            .unwrap()
            .0,
        Checkpoint::load(&dir.join("dev").join(checkpoint::FILE_NAME))
            .unwrap()
            .0,
    );
    let close = |what: &str, a: &[f32], b: &[f32], tol: f32| {
        assert_eq!(a.len(), b.len(), "{what}");
        let scale = a.iter().fold(0.0_f32, |m, v| m.max(v.abs()));
        assert!(scale > 0.0, "{what} is not all zero");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= tol * scale,
                "{what}[{i}]: host {x}, device {y} (scale {scale})"
            );
        }
    };
    close(
        "checkpoint image",
        &host_ckpt.image(),
        &dev_ckpt.image(),
        1e-4,
    );
    let (sh, sd) = (
        adam_state(&dir.join("host").join(checkpoint::FILE_NAME)),
        adam_state(&dir.join("dev").join(checkpoint::FILE_NAME)),
    );
    assert_eq!((sh.step(), sd.step()), (6, 6));
    close("first moments", sh.moments().0, sd.moments().0, 1e-3);
    close("second moments", sh.moments().1, sd.moments().1, 1e-3);

    // Resuming the device run at iteration 6 and going to 9 equals a device run of 9 from the start.
    let ckpt = dir
        .join("dev")
        .join(checkpoint::FILE_NAME)
        .display()
        .to_string();
    let resume =
        match Cli::try_parse_from(["nst", "stylize", "--resume", &ckpt, "--iterations", "9"])
            .unwrap()
            .command
        {
            Command::Stylize(a) => *a,
            _ => unreachable!("a stylize command"),
        };
    run_placed(&resume, true, 1, &stop, emu).unwrap();
    run_placed(
        &args(dir, "dev9", &["--iterations", "9"]),
        true,
        1,
        &stop,
        emu,
    )
    .unwrap();
    assert_eq!(
        pixels(&dir.join("dev/out.png")),
        pixels(&dir.join("dev9/out.png"))
    );
}

/// A step that blows up: both paths stop at the same iteration and write the last good image.
#[test]
fn device_adam_divergence_writes_the_last_good_image_as_the_host_does() {
    let tmp = TempDir::new("stylize-device-diverge");
    let dir = tmp.path();
    fixture(dir);
    let stop = AtomicBool::new(false);
    let emu: Place<'_> = &|o: StyleObjective| o.on_device(device_emu::Emulator::new(64, 1));
    // Adam's first step moves every pixel by about the learning rate: 1e30 makes the next cost infinite.
    let extra = ["--iterations", "5", "--learning-rate", "1e30"];
    let host = run_placed(&args(dir, "host", &extra), true, 1, &stop, &Ok)
        .unwrap_err()
        .to_string();
    let dev = run_placed(&args(dir, "dev", &extra), true, 1, &stop, emu)
        .unwrap_err()
        .to_string();
    for e in [&host, &dev] {
        assert!(
            e.contains("non-finite at iteration 1") && e.contains("iteration 0"),
            "{e}"
        );
    }
    let (h, d) = (
        pixels(&dir.join("host/out.png")),
        pixels(&dir.join("dev/out.png")),
    );
    let worst = h.iter().zip(&d).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
    assert!(worst <= 1, "largest pixel difference {worst}");
}
