//! Checkpoint files: exact round trip, and clear errors for files that are not ours.

use super::*;
use crate::testing::TempDir;
use rand::SeedableRng as _;

fn checkpoint() -> Checkpoint {
    let image = [0.1_f32, -0.0, f32::MIN_POSITIVE, 1.0e-40, 3.0, -7.25];
    Checkpoint {
        format: FORMAT_VERSION,
        version: "test".into(),
        settings: RunSpec::new("c.png", vec!["s.png".into()], "w.mat"),
        iteration: 4,
        shape: [3, 1, 2],
        image_bits: image.iter().map(|v| v.to_bits()).collect(),
        optimizer: OptimizerState::Adam(nst_optim::Optimizer::state(
            &nst_optim::Adam::new(nst_optim::AdamConfig::tensorflow_v1(2.0)).unwrap(),
        )),
        rng: Xoshiro256PlusPlus::seed_from_u64(3),
        history: Vec::new(),
        seconds: 1.5,
        stage: 0,
        average: None,
    }
}

#[test]
fn round_trip_is_exact() {
    let dir = TempDir::new("ckpt-roundtrip");
    let c = checkpoint();
    c.save(&dir.path().join(FILE_NAME)).unwrap();
    let (back, path) = Checkpoint::load(dir.path()).unwrap();
    assert_eq!(path, dir.path().join(FILE_NAME));
    assert_eq!(back.image_bits, c.image_bits);
    assert_eq!(back.image()[1].to_bits(), (-0.0_f32).to_bits());
    assert_eq!(back.settings, c.settings);
    assert_eq!(back.rng, c.rng);
    assert_eq!(back.iteration, 4);
}

#[test]
fn foreign_or_broken_files_are_errors_naming_the_file() {
    let dir = TempDir::new("ckpt-bad");
    let missing = Checkpoint::load(&dir.path().join("nope.json")).unwrap_err();
    assert!(
        matches!(missing, CheckpointError::Read { .. })
            && missing.to_string().contains("nope.json")
    );
    let c = checkpoint();
    let good = serde_json::to_string(&c).unwrap();
    let cases = [
        ("cut.json", good[..good.len() / 2].to_owned()),
        ("other.json", "{\"hello\": 1}".to_owned()),
        (
            "format.json",
            good.replacen(&format!("\"format\":{FORMAT_VERSION}"), "\"format\":99", 1),
        ),
        (
            "shape.json",
            good.replacen("\"shape\":[3,1,2]", "\"shape\":[3,2,2]", 1),
        ),
        // A shape whose product overflows `usize`.
        (
            "overflow.json",
            good.replacen(
                "\"shape\":[3,1,2]",
                "\"shape\":[3,4611686018427387904,4]",
                1,
            ),
        ),
    ];
    for (name, text) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let err = Checkpoint::load(&path).unwrap_err();
        assert!(
            matches!(err, CheckpointError::Invalid { .. }),
            "{name}: {err}"
        );
        assert!(err.to_string().contains(name), "{err}");
    }
}
