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
        iteration: 0,
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
        checksums: None,
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
    assert_eq!(back.iteration, 0);
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
    c.save(&dir.path().join("good.json")).unwrap();
    let good = std::fs::read_to_string(dir.path().join("good.json")).unwrap();
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

/// Saves `c` (with fresh checksums) and loads it back: the error's text, if any.
fn reload(name: &str, c: &Checkpoint) -> Option<String> {
    let dir = TempDir::new(name);
    let path = dir.path().join(FILE_NAME);
    c.save(&path).unwrap();
    Checkpoint::load(&path).err().map(|e| e.to_string())
}

#[test]
fn an_edited_field_is_named_by_its_checksum() {
    let dir = TempDir::new("ckpt-edited");
    let path = dir.path().join(FILE_NAME);
    checkpoint().save(&path).unwrap();
    let good = std::fs::read_to_string(&path).unwrap();
    let bits = format!("{}", 3.0_f32.to_bits());
    for (from, to, field) in [
        ("\"iteration\":0", "\"iteration\":7", "`iteration`"),
        (bits.as_str(), "1300000000", "`image_bits`"),
        (
            "\"learning_rate\":2.0",
            "\"learning_rate\":3.0",
            "`settings`",
        ),
    ] {
        assert!(good.contains(from), "{from}");
        std::fs::write(&path, good.replacen(from, to, 1)).unwrap();
        let err = Checkpoint::load(&path).unwrap_err().to_string();
        assert!(
            err.contains(field) && err.contains("checksums"),
            "{field}: {err}"
        );
    }
}

#[test]
fn consistent_sums_do_not_hide_a_nan_pixel_or_a_setting_the_state_contradicts() {
    let mut c = checkpoint();
    c.image_bits[2] = f32::NAN.to_bits();
    let err = reload("ckpt-nan", &c).unwrap();
    assert!(
        err.contains("`image_bits`: value 2 is not a finite number"),
        "{err}"
    );
    let mut c = checkpoint();
    c.settings.learning_rate = 3.0;
    let err = reload("ckpt-lr", &c).unwrap();
    assert!(err.contains("`settings.learning_rate` is 3"), "{err}");
    let mut c = checkpoint();
    c.iteration = 5;
    let err = reload("ckpt-step", &c).unwrap();
    assert!(
        err.contains("`iteration` is 5 but the Adam state has taken 0 steps"),
        "{err}"
    );
    let mut c = checkpoint();
    c.settings.optimizer = crate::OptimizerKind::Lbfgs;
    let err = reload("ckpt-kind", &c).unwrap();
    assert!(err.contains("`settings.optimizer` is lbfgs"), "{err}");
    assert_eq!(reload("ckpt-ok", &checkpoint()), None);
}

#[test]
fn a_format_1_file_without_checksums_still_loads() {
    let dir = TempDir::new("ckpt-v1");
    let mut c = checkpoint();
    c.format = 1;
    let text = serde_json::to_string(&c).unwrap();
    assert!(!text.contains("checksums"));
    std::fs::write(dir.path().join(FILE_NAME), text).unwrap();
    let (back, _) = Checkpoint::load(dir.path()).unwrap();
    assert_eq!((back.format, back.stage), (1, 0));
}
