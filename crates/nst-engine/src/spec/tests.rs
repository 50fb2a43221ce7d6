//! The specification's defaults and checks.

use super::*;

fn spec() -> RunSpec {
    RunSpec::new("c.png", vec!["s.jpg".into()], "w.mat")
}

#[test]
fn defaults_are_the_course_program() {
    let s = spec();
    assert_eq!((s.iterations, s.print_every), (200, 20));
    assert_eq!(
        (s.learning_rate, s.noise_ratio, s.max_size),
        (2.0, 0.6, 400)
    );
    assert_eq!(
        (s.optimizer, s.init, s.pooling),
        (OptimizerKind::Adam, InitKind::Noise, PoolingKind::Avg)
    );
    assert_eq!((s.objective.alpha, s.objective.beta), (10.0, 40.0));
    assert_eq!(s.scales, Scales::Single);
    assert_eq!(
        (s.average, s.style_scale_of(0), s.later_iterations()),
        (None, 1.0, 50)
    );
    assert_eq!(s.output, PathBuf::from("output/result.png"));
    assert!(s.validate().is_ok());
}

#[test]
fn settings_out_of_range_name_the_flag() {
    type Edit = fn(&mut RunSpec);
    let edits: [(&str, Edit); 12] = [
        ("--style is required", |s| {
            s.styles.clear();
            s.style_blend.clear();
        }),
        ("--style-blend", |s| s.style_blend.push(1.0)),
        ("--content-layers", |s| s.objective.content_layers.clear()),
        ("--style-layers", |s| {
            s.objective.style_layers[0].weight = f32::NAN
        }),
        ("--learning-rate", |s| s.learning_rate = -1.0),
        ("--noise-ratio", |s| s.noise_ratio = 2.0),
        ("--iterations", |s| s.iterations = 0),
        ("--style-scale", |s| s.style_scale = vec![0.0]),
        ("--style-scale", |s| s.style_scale = vec![1.0, 2.0]),
        ("--average", |s| s.average = Some(1.0)),
        ("--scales", |s| {
            s.scales = Scales::Auto { min: 256 };
            s.size = Some(Size {
                width: 40,
                height: 30,
            });
        }),
        ("--scales", |s| s.scales = Scales::List(vec![300, 200])),
    ];
    for (needle, edit) in edits {
        let mut s = spec();
        edit(&mut s);
        let err = s.validate().unwrap_err();
        assert!(err.contains(needle), "{needle}: {err}");
    }
}

#[test]
fn named_settings_parse_their_names_and_nothing_else() {
    for name in OptimizerKind::NAMES {
        assert_eq!(name.parse::<OptimizerKind>().unwrap().to_string(), *name);
    }
    assert_eq!("style".parse::<InitKind>().unwrap(), InitKind::Style);
    let err = "sgd".parse::<OptimizerKind>().unwrap_err();
    assert!(err.contains("adam, lbfgs"), "{err}");
}
