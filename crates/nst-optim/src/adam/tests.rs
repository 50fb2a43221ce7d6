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
    let mut adam = Adam::new(AdamConfig::seed()).unwrap();
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
    let mut adam = Adam::new(AdamConfig::seed()).unwrap();
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
    assert_eq!(cfg, AdamConfig::seed());
}
