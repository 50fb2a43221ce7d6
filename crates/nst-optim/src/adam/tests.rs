//! Unit tests of Adam's internals: the running β powers and the state layout.

use super::*;

struct Constant(f32);

impl Objective for Constant {
    type Error = std::convert::Infallible;
    fn value_and_grad(&mut self, _x: &[f32], g: &mut [f32]) -> Result<f64, Self::Error> {
        g.fill(self.0);
        Ok(0.0)
    }
}

#[test]
fn beta_powers_are_running_f32_products() {
    let mut adam = Adam::new(AdamConfig::tensorflow_v1(2.0)).unwrap();
    let mut x = [0.0_f32; 3];
    let mut want1 = 1.0_f32;
    let mut want2 = 1.0_f32;
    for _ in 0..25 {
        adam.step(&mut x, &mut Constant(0.5)).unwrap();
        want1 *= 0.9;
        want2 *= 0.999;
        assert_eq!(adam.state.beta1_power.to_bits(), want1.to_bits());
        assert_eq!(adam.state.beta2_power.to_bits(), want2.to_bits());
    }
    assert_eq!(adam.state.step, 25);
    assert_eq!(adam.state.evaluations, 25);
}

#[test]
fn state_json_holds_exact_strings_and_bits() {
    let mut adam = Adam::new(AdamConfig::tensorflow_v1(2.0)).unwrap();
    let mut x = [0.0_f32; 2];
    adam.step(&mut x, &mut Constant(0.1)).unwrap();
    let json = serde_json::to_value(adam.state()).unwrap();
    assert_eq!(json["config"]["learning_rate"], "2.0");
    assert_eq!(json["beta1_power"], "0.9");
    // Vectors are the base64 of their little-endian bytes: 2 values, 8 bytes, 12 symbols.
    let m: Vec<u8> = adam.state.m.iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(json["m"], crate::exact::base64::encode(&m));
    assert_eq!(json["m"].as_str().unwrap().len(), 12);
}

#[test]
fn config_reads_plain_numbers_too() {
    let cfg: AdamConfig = serde_json::from_str(
        r#"{"learning_rate": 2, "beta1": 0.9, "beta2": "0.999", "epsilon": 1e-8, "form": "EpsilonHat"}"#,
    )
    .unwrap();
    assert_eq!(cfg, AdamConfig::tensorflow_v1(2.0));
}

#[test]
#[allow(deprecated)]
fn the_former_name_seed_is_tensorflow_v1_at_learning_rate_2() {
    assert_eq!(AdamConfig::seed(), AdamConfig::tensorflow_v1(2.0));
}

/// `step_external` refuses a step with a non-finite cost or gradient entry as `step` does, and leaves the
/// state as it was; a finite step advances it exactly as `step` would.
#[test]
fn step_external_refuses_non_finite_steps_and_keeps_the_state() {
    let mut adam = Adam::new(AdamConfig::tensorflow_v1(2.0)).unwrap();
    let before = adam.state();
    let err = adam
        .step_external(4, |_| Ok::<_, std::convert::Infallible>((1.0, 3)))
        .unwrap_err();
    assert!(
        matches!(err, OptimError::NonFinite { value, non_finite_grad: 3, .. } if value == 1.0),
        "{err:?}"
    );
    let err = adam
        .step_external(4, |_| Ok::<_, std::convert::Infallible>((f64::INFINITY, 0)))
        .unwrap_err();
    assert!(
        matches!(
            err,
            OptimError::NonFinite {
                non_finite_grad: 0,
                ..
            }
        ),
        "{err:?}"
    );
    let after = adam.state();
    assert_eq!(after.step(), before.step());
    assert_eq!(after.moments().0.len(), 4, "sized, still zero");
    assert!(after.moments().0.iter().all(|&m| m == 0.0));
    let scalars_before = adam.next_step_scalars();
    adam.step_external(4, |_| Ok::<_, std::convert::Infallible>((1.0, 0)))
        .unwrap();
    assert_eq!(adam.state().step(), 1);
    assert_ne!(adam.next_step_scalars(), scalars_before, "t advanced");
    assert!(matches!(
        adam.step_external(5, |_| Ok::<_, std::convert::Infallible>((1.0, 0))),
        Err(OptimError::DimensionMismatch {
            expected: 4,
            actual: 5
        })
    ));
}
