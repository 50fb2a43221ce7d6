//! Adam: hand-computed first steps of both forms, convergence on a quadratic, defaults and errors.

use std::ops::ControlFlow;

use approx::assert_relative_eq;
use nst_optim::{Adam, AdamConfig, AdamForm, Objective, OptimError, Optimizer, minimize};

use crate::problems::{Quadratic, max_error};

/// `f(x) = x²`.
struct Square;

impl Objective for Square {
    type Error = std::convert::Infallible;
    fn value_and_grad(&mut self, x: &[f32], g: &mut [f32]) -> Result<f64, Self::Error> {
        g[0] = 2.0 * x[0];
        Ok(f64::from(x[0]) * f64::from(x[0]))
    }
}

/// Three steps on `f(x) = x²` from `x = 1` with `α = 0.1`, `ε = 0.5` (large, so the two forms differ
/// visibly), against values computed by hand in f64 with this Python:
///
/// ```text
/// def tf(x, lr, b1, b2, eps, steps):          # the form before §2.1 (TF1 ApplyAdam)
///     m = v = 0.0; b1p = b2p = 1.0; out = []
///     for t in range(steps):
///         g = 2*x; b1p *= b1; b2p *= b2
///         m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g*g
///         a = lr*math.sqrt(1-b2p)/(1-b1p)
///         x = x - a*m/(math.sqrt(v)+eps); out.append(x)
///     return out
/// def alg1(x, lr, b1, b2, eps, steps):        # Kingma & Ba 2015, Algorithm 1
///     m = v = 0.0; out = []
///     for t in range(1, steps+1):
///         g = 2*x
///         m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g*g
///         x = x - lr*(m/(1-b1**t))/(math.sqrt(v/(1-b2**t))+eps); out.append(x)
///     return out
/// ```
#[test]
fn first_steps_match_a_hand_computation() {
    let cases = [
        (
            AdamForm::EpsilonHat,
            0.1,
            0.5,
            [0.9887712290237057, 0.973677163551597, 0.955914697847336],
            2e-6,
        ),
        (
            AdamForm::Algorithm1,
            0.1,
            0.5,
            [0.92, 0.8408882995653922, 0.7628760716160647],
            2e-6,
        ),
        // TensorFlow 1's settings with α = 2: the first step is ≈ −α·sign(g), i.e. 1 → −1. By step 3, f32's
        // `1 − β₂ᵗ` (= 1 − 0.997003, a cancellation worth ~2e-5 relative) shows: hence 1e-4.
        (
            AdamForm::EpsilonHat,
            2.0,
            1e-8,
            [
                -0.9999996837722842,
                -0.8947368538686766,
                -0.14253412743057137,
            ],
            1e-4,
        ),
    ];
    for (form, learning_rate, epsilon, want, tolerance) in cases {
        let cfg = AdamConfig {
            learning_rate,
            epsilon,
            form,
            ..AdamConfig::tensorflow_v1(2.0)
        };
        let mut adam = Adam::new(cfg).unwrap();
        let mut x = [1.0_f32];
        for (t, &w) in want.iter().enumerate() {
            let r = adam.step(&mut x, &mut Square).unwrap();
            assert_eq!(r.evaluations, 1);
            assert_relative_eq!(f64::from(x[0]), w, max_relative = tolerance, epsilon = 1e-6);
            assert_eq!(adam.iterations(), t as u64 + 1);
        }
    }
}

#[test]
fn reports_the_value_where_it_evaluated() {
    let mut adam = Adam::new(AdamConfig::tensorflow_v1(2.0)).unwrap();
    let mut x = [3.0_f32];
    let r = adam.step(&mut x, &mut Square).unwrap();
    assert_eq!(r.value, 9.0);
    assert_eq!(r.grad_norm, 6.0);
    assert_eq!(r.converged, None);
}

#[test]
fn converges_on_a_quadratic() {
    let mut obj = Quadratic::new(8);
    let mut x = vec![0.0_f32; 8];
    let cfg = AdamConfig {
        learning_rate: 0.01,
        ..AdamConfig::kingma_ba_2015()
    };
    let mut adam = Adam::new(cfg).unwrap();
    minimize(&mut adam, &mut x, &mut obj, 5000, |_| {
        ControlFlow::Continue(())
    })
    .unwrap();
    let center = obj.center.clone();
    let err = max_error(&x, |i| center[i]);
    assert!(err < 1e-4, "max error {err:e}");
}

#[test]
fn every_default_is_as_documented() {
    let k = AdamConfig::kingma_ba_2015();
    assert_eq!(k.learning_rate, 0.001);
    assert_eq!(k.beta1, 0.9);
    assert_eq!(k.beta2, 0.999);
    assert_eq!(k.epsilon, 1e-8);
    assert_eq!(k.form, AdamForm::Algorithm1);
    let s = AdamConfig::tensorflow_v1(2.0);
    assert_eq!(s.learning_rate, 2.0);
    assert_eq!(s.beta1, 0.9);
    assert_eq!(s.beta2, 0.999);
    assert_eq!(s.epsilon, 1e-8);
    assert_eq!(s.form, AdamForm::EpsilonHat);
    assert_eq!(AdamConfig::default(), k);
}

#[test]
fn invalid_configs_are_errors() {
    let s = AdamConfig::tensorflow_v1(2.0);
    let cases = [
        (
            AdamConfig {
                learning_rate: 0.0,
                ..s
            },
            "learning_rate",
        ),
        (
            AdamConfig {
                learning_rate: f32::INFINITY,
                ..s
            },
            "learning_rate",
        ),
        (AdamConfig { beta1: -0.1, ..s }, "beta1"),
        (AdamConfig { beta1: 1.0, ..s }, "beta1"),
        (
            AdamConfig {
                beta2: f32::NAN,
                ..s
            },
            "beta2",
        ),
        (
            AdamConfig {
                epsilon: -1e-8,
                ..s
            },
            "epsilon",
        ),
        (AdamConfig { epsilon: 0.0, ..s }, "epsilon"),
    ];
    for (cfg, field) in cases {
        match Adam::new(cfg) {
            Err(nst_optim::Error::InvalidConfig { name, .. }) => assert_eq!(name, field),
            other => panic!("{field}: expected InvalidConfig, got {other:?}"),
        }
    }
}

/// NaN from the second evaluation on.
struct NanAfterFirst(u32);

impl Objective for NanAfterFirst {
    type Error = std::convert::Infallible;
    fn value_and_grad(&mut self, x: &[f32], g: &mut [f32]) -> Result<f64, Self::Error> {
        self.0 += 1;
        g[0] = if self.0 > 1 { f32::NAN } else { 1.0 };
        Ok(f64::from(x[0]))
    }
}

#[test]
fn non_finite_gradient_is_an_error_and_keeps_x() {
    let mut adam = Adam::new(AdamConfig::tensorflow_v1(2.0)).unwrap();
    let mut x = [1.0_f32];
    let mut obj = NanAfterFirst(0);
    adam.step(&mut x, &mut obj).unwrap();
    let good = x;
    let err = adam.step(&mut x, &mut obj).unwrap_err();
    assert!(
        matches!(
            err,
            OptimError::NonFinite {
                evaluation: 2,
                non_finite_grad: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(x, good);
    assert_eq!(adam.iterations(), 1);
}

#[test]
fn length_change_is_an_error() {
    let mut adam = Adam::new(AdamConfig::tensorflow_v1(2.0)).unwrap();
    let mut x = [1.0_f32];
    adam.step(&mut x, &mut Square).unwrap();
    let mut y = [1.0_f32, 2.0];
    let err = adam.step(&mut y, &mut Square).unwrap_err();
    assert!(
        matches!(
            err,
            OptimError::DimensionMismatch {
                expected: 1,
                actual: 2
            }
        ),
        "{err:?}"
    );
}

/// `f(x) = Σ xᵢ²`, gradient `2·x` in f32.
struct SumOfSquares;

impl Objective for SumOfSquares {
    type Error = std::convert::Infallible;
    fn value_and_grad(&mut self, x: &[f32], g: &mut [f32]) -> Result<f64, Self::Error> {
        for (gi, &xi) in g.iter_mut().zip(x) {
            *gi = 2.0 * xi;
        }
        Ok(x.iter().map(|&v| f64::from(v) * f64::from(v)).sum())
    }
}

/// The `EpsilonHat` form is TensorFlow 1's `ApplyAdam` CPU kernel to the bit: six steps of
/// `AdamConfig::tensorflow_v1(2.0)` against that kernel's expressions evaluated in float32 by NumPy 2.4:
///
/// ```text
/// import numpy as np
/// f = np.float32
/// lr, b1, b2, eps = f(2.0), f(0.9), f(0.999), f(1e-8)
/// x = np.array([1.0, -0.3, 0.0, 250.0], dtype=np.float32)
/// m = np.zeros_like(x); v = np.zeros_like(x)
/// b1p, b2p = b1, b2                      # TF's beta1_power/beta2_power start at beta
/// for t in range(6):
///     g = f(2.0) * x
///     alpha = lr * np.sqrt(f(1) - b2p) / (f(1) - b1p)
///     m = m + (g - m) * (f(1) - b1)
///     v = v + (g * g - v) * (f(1) - b2)
///     x = x - (m * alpha) / (np.sqrt(v) + eps)
///     b1p = b1p * b1; b2p = b2p * b2      # the optimizer's _finish
///     print([hex(int(b)) for b in x.view(np.uint32)])
/// ```
#[test]
fn seed_form_matches_tensorflow_apply_adam_bit_for_bit() {
    let want: [[u32; 4]; 6] = [
        [0xbf7ffffc, 0x3fd99992, 0x0, 0x43780000],
        [0xbf650d7f, 0x3eef2c24, 0x0, 0x4376001d],
        [0xbe11f5d8, 0xbf496124, 0x0, 0x4374006a],
        [0x3f11f403, 0xbfa10da9, 0x0, 0x437200fa],
        [0x3f4a0df7, 0xbf804033, 0x0, 0x437001e0],
        [0x3f095d3c, 0xbec53dc2, 0x0, 0x436e0330],
    ];
    let mut adam = Adam::new(AdamConfig::tensorflow_v1(2.0)).unwrap();
    let mut x = [1.0_f32, -0.3, 0.0, 250.0];
    for (t, w) in want.iter().enumerate() {
        adam.step(&mut x, &mut SumOfSquares).unwrap();
        assert_eq!(x.map(f32::to_bits), *w, "step {}: {x:?}", t + 1);
    }
}
