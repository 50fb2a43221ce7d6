//! From flags to the run specification: the defaults, flag checks, and what a resumed run may change.

use std::path::{Path, PathBuf};

use super::*;
use nst_engine::{DeviceKind, PoolingKind};

fn args() -> StylizeArgs {
    StylizeArgs {
        content: Some("c.png".into()),
        style: vec!["s.jpg".into()],
        ..StylizeArgs::default()
    }
}

#[test]
fn defaults_are_the_seed() {
    let s = from_args(&args()).unwrap();
    assert_eq!(s.iterations, 200);
    assert_eq!(s.print_every, 20);
    assert_eq!(s.learning_rate, 2.0);
    assert_eq!(s.optimizer, OptimizerKind::Adam);
    assert_eq!(
        (s.objective.alpha, s.objective.beta, s.objective.tv_weight),
        (10.0, 40.0, 0.0)
    );
    assert_eq!(s.objective.content_layers[0].name, "relu4_2");
    assert_eq!(
        s.objective
            .style_layers
            .iter()
            .map(|l| l.weight)
            .collect::<Vec<_>>(),
        vec![0.2; 5]
    );
    assert_eq!(s.noise_ratio, 0.6);
    assert_eq!(s.init, InitKind::Noise);
    assert_eq!(s.pooling, PoolingKind::Avg);
    assert_eq!(s.max_size, 400);
    assert_eq!(s.size, None);
    assert_eq!(
        s.weights,
        PathBuf::from("pretrained-model/imagenet-vgg-verydeep-19.mat")
    );
    assert_eq!(s.output, PathBuf::from("output/result.png"));
    assert_eq!(s.style_blend, vec![1.0]);
    assert_eq!(s.device, DeviceKind::Cpu);
    assert_eq!(s.checkpoint_every, 0);
}

#[test]
fn contradictions_and_ranges_name_the_flag() {
    let cases: Vec<(StylizeArgs, &str)> = vec![
        (
            StylizeArgs {
                content: None,
                ..args()
            },
            "--content",
        ),
        (
            StylizeArgs {
                style: vec![],
                ..args()
            },
            "--style",
        ),
        (
            StylizeArgs {
                style_blend: vec![0.0],
                ..args()
            },
            "--style-blend",
        ),
        (
            StylizeArgs {
                noise_ratio: Some(1.5),
                ..args()
            },
            "--noise-ratio",
        ),
        (
            StylizeArgs {
                noise_ratio: Some(0.5),
                init: Some(InitKind::Content),
                ..args()
            },
            "--noise-ratio",
        ),
        (
            StylizeArgs {
                alpha: Some(f32::NAN),
                ..args()
            },
            "--alpha",
        ),
        (
            StylizeArgs {
                beta: Some(-1.0),
                ..args()
            },
            "--beta",
        ),
        (
            StylizeArgs {
                max_size: Some(0),
                ..args()
            },
            "--max-size",
        ),
        (
            StylizeArgs {
                size: Some("4x".into()),
                ..args()
            },
            "--size",
        ),
        (
            StylizeArgs {
                learning_rate: Some(0.0),
                ..args()
            },
            "--learning-rate",
        ),
    ];
    for (a, flag) in cases {
        let err = from_args(&a).unwrap_err();
        assert!(err.contains(flag), "{flag}: {err}");
    }
}

#[test]
fn resume_takes_only_harmless_flags() {
    let s = from_args(&args()).unwrap();
    let r = resumed(
        s.clone(),
        &StylizeArgs {
            iterations: Some(500),
            out_dir: Some("elsewhere".into()),
            checkpoint_every: Some(7),
            ..StylizeArgs::default()
        },
        Path::new("output"),
    )
    .unwrap();
    assert_eq!(r.iterations, 500);
    assert_eq!(r.output, PathBuf::from("elsewhere/result.png"));
    assert_eq!(r.checkpoint_every, 7);
    assert_eq!(r.objective, s.objective);
    let err = resumed(
        s,
        &StylizeArgs {
            pooling: Some(PoolingKind::Max),
            ..StylizeArgs::default()
        },
        Path::new("output"),
    )
    .unwrap_err();
    assert!(err.contains("--pooling"), "{err}");
}

/// A hand-edited checkpoint's settings are checked as the flags would be, instead of panicking later.
#[test]
fn resumed_settings_out_of_range_are_errors() {
    let good = from_args(&args()).unwrap();
    type Edit = fn(&mut RunSpec);
    let edits: [(&str, Edit); 7] = [
        ("--style is required", |s| {
            s.styles.clear();
            s.style_blend.clear();
        }),
        ("--style-blend", |s| s.style_blend.push(1.0)),
        ("--content-layers: no layer", |s| {
            s.objective.content_layers.clear()
        }),
        ("--style-layers: no layer", |s| {
            s.objective.style_layers.clear()
        }),
        ("weight NaN", |s| {
            s.objective.style_layers[0].weight = f32::NAN
        }),
        ("--learning-rate", |s| s.learning_rate = -1.0),
        ("--noise-ratio", |s| s.noise_ratio = 2.0),
    ];
    for (needle, edit) in edits {
        let mut s = good.clone();
        edit(&mut s);
        let err = resumed(s, &StylizeArgs::default(), Path::new("output")).unwrap_err();
        assert!(err.contains(needle), "{needle}: {err}");
    }
    assert!(resumed(good, &StylizeArgs::default(), Path::new("output")).is_ok());
}

/// A copied checkpoint folder resumes where it is, not where it was written.
#[test]
fn resume_without_out_dir_continues_next_to_the_checkpoint() {
    let s = from_args(&args()).unwrap();
    assert_eq!(s.out_dir, PathBuf::from("output"));
    let r = resumed(s.clone(), &StylizeArgs::default(), Path::new("copy/of/run")).unwrap();
    assert_eq!(r.out_dir, PathBuf::from("copy/of/run"));
    assert_eq!(r.output, PathBuf::from("copy/of/run/result.png"));
    let mut elsewhere = s;
    elsewhere.output = PathBuf::from("pictures/final.png");
    let r = resumed(elsewhere, &StylizeArgs::default(), Path::new("copy")).unwrap();
    assert_eq!(
        r.output,
        PathBuf::from("pictures/final.png"),
        "an output outside the folder stays"
    );
}
