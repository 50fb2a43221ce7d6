//! End-to-end tests: the real `nst` binary on tiny images with small synthetic VGG-shaped weights that
//! the tests write with `vgg_weights::write::write_simplenn`.

mod batch;
mod controls;
mod corpus;
mod errors;
mod hostile;
mod inspect;
mod run;
mod scales;
mod serve;
mod slurm;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use image::{Rgb, RgbImage};
use ndarray::{Array1, Array4};
use test_utils::uniform_vec;
use vgg_weights::write::{Compression, write_simplenn};
use vgg_weights::{Conv, Layer, LayerKind, Layout, Pad, Pool, PoolMethod, VggModel};

/// A fresh folder for one test under cargo's per-target temp dir.
pub(crate) fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("nst-it")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A VGG-19-shaped chain up to `relu5_1` with `c` channels everywhere, seeded.
pub(crate) fn synthetic_model(seed: u64, c: usize) -> VggModel {
    let mut layers = Vec::new();
    let mut c_in = 3;
    let mut s = seed;
    for (block, convs) in [(1, 2), (2, 2), (3, 4), (4, 4), (5, 1)] {
        for i in 1..=convs {
            s += 1;
            // He-like scale so that activations neither vanish nor explode through 13 layers.
            let scale = (2.0 / (9.0 * c_in as f32)).sqrt() * 1.7;
            layers.push(Layer {
                name: format!("conv{block}_{i}"),
                kind: LayerKind::Conv(Conv {
                    weights: Array4::from_shape_vec(
                        (c, c_in, 3, 3),
                        uniform_vec(s, c * c_in * 9, -scale, scale),
                    )
                    .unwrap(),
                    bias: Array1::from(uniform_vec(s + 1000, c, 0.0, 0.1)),
                    stride: [1, 1],
                    pad: Pad::uniform(1),
                }),
            });
            layers.push(Layer {
                name: format!("relu{block}_{i}"),
                kind: LayerKind::Relu,
            });
            c_in = c;
        }
        if block < 5 {
            layers.push(Layer {
                name: format!("pool{block}"),
                kind: LayerKind::Pool(Pool {
                    method: PoolMethod::Max,
                    size: [2, 2],
                    stride: [2, 2],
                    pad: Pad::default(),
                }),
            });
        }
    }
    VggModel {
        layout: Layout::Beta16,
        mean_rgb: Some([123.68, 116.779, 103.939]),
        layers,
    }
}

/// Writes the synthetic weights and two small images into `dir`; returns (weights, content, style).
pub(crate) fn fixture(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let weights = dir.join("tiny-vgg.mat");
    write_simplenn(
        &weights,
        &synthetic_model(42, 6),
        Layout::Beta16,
        Compression::None,
    )
    .unwrap();
    let content = dir.join("content.png");
    RgbImage::from_fn(40, 32, |x, y| {
        Rgb([
            (x * 6) as u8,
            (y * 7) as u8,
            if (x / 8 + y / 8) % 2 == 0 { 40 } else { 220 },
        ])
    })
    .save(&content)
    .unwrap();
    let style = dir.join("style.jpg");
    RgbImage::from_fn(48, 36, |x, y| {
        let v = (((x as f32 * 0.7).sin() * (y as f32 * 0.5).cos()) * 120.0 + 128.0) as u8;
        Rgb([v, 255 - v, (x * 5) as u8])
    })
    .save(&style)
    .unwrap();
    (weights, content, style)
}

/// `nst` with `args`, run in `dir`, with the environment cleared of our variables.
pub(crate) fn nst(dir: &Path, args: &[&str]) -> Output {
    nst_command(dir, args).output().unwrap()
}

pub(crate) fn nst_command(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nst"));
    cmd.current_dir(dir)
        .args(args)
        .env_remove("NST_WEIGHTS")
        .env_remove("NST_OFFLINE")
        .env("NO_COLOR", "1");
    cmd
}

/// Stderr as text.
pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The common flags of a short run in `dir`.
pub(crate) fn base_args(weights: &Path, content: &Path, style: &Path) -> Vec<String> {
    vec![
        "stylize".into(),
        "--weights".into(),
        weights.display().to_string(),
        "--content".into(),
        content.display().to_string(),
        "--style".into(),
        style.display().to_string(),
        "--threads".into(),
        "1".into(),
    ]
}

/// The base flags of the fixture in `dir` plus `extra`; a flag in `extra` replaces the base flag of
/// the same name.
pub(crate) fn fixture_args_with(dir: &Path, extra: &[&str]) -> Vec<String> {
    let (w, c, s) = (
        dir.join("tiny-vgg.mat"),
        dir.join("content.png"),
        dir.join("style.jpg"),
    );
    let base = base_args(&w, &c, &s);
    let mut args = vec![base[0].clone()];
    for pair in base[1..].chunks(2) {
        if !extra.contains(&pair[0].as_str()) {
            args.extend_from_slice(pair);
        }
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Reads `child`'s stderr until a line contains `wait_for`, then sends SIGINT; asserts the exit status
/// 130 and returns the lines printed after the signal.
#[track_caller]
pub(crate) fn interrupt_when(mut child: std::process::Child, wait_for: &str) -> Vec<String> {
    use std::io::{BufRead as _, BufReader};
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    // Wait (by reading, not sleeping) until the run is under way.
    for line in lines.by_ref() {
        if line.unwrap().contains(wait_for) {
            break;
        }
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert_eq!(child.wait().unwrap().code(), Some(130), "{rest:?}");
    rest
}

/// `Vec<String>` → `Vec<&str>`.
pub(crate) fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}
