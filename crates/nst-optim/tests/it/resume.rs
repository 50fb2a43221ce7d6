//! Save → serde_json → restore → continue gives bit-identical iterates to an uninterrupted run.

use std::ops::ControlFlow;

use nst_optim::{Adam, AdamConfig, Lbfgs, LbfgsConfig, Objective, Optimizer, minimize};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::problems::{Rosenbrock, rosenbrock_start};

/// Per-iteration trace: bit patterns of `x`, of the value and of the gradient norm, and the counters.
type Trace = Vec<(Vec<u32>, u64, u64, u64, u64)>;

/// Runs `minimize` for `n` iterations, appending the bit patterns of what the callback saw.
fn run<P: Optimizer, O: Objective<Error = std::convert::Infallible>>(
    opt: &mut P,
    x: &mut [f32],
    obj: &mut O,
    n: u64,
    seen: &mut Vec<(u64, u64, u64, u64)>,
) {
    minimize(opt, x, obj, n, |info| {
        seen.push((
            info.value.to_bits(),
            info.grad_norm.to_bits(),
            info.iteration,
            info.evaluations,
        ));
        ControlFlow::Continue(())
    })
    .unwrap();
}

/// Steps one at a time, recording everything after each step.
fn trace_steps<P: Optimizer, O: Objective<Error = std::convert::Infallible>>(
    opt: &mut P,
    x: &mut [f32],
    obj: &mut O,
    n: u64,
    trace: &mut Trace,
) {
    for _ in 0..n {
        let r = opt.step(x, obj).unwrap();
        trace.push((
            x.iter().map(|v| v.to_bits()).collect(),
            r.value.to_bits(),
            r.grad_norm.to_bits(),
            opt.iterations(),
            opt.evaluations(),
        ));
    }
}

/// Runs `total` steps uninterrupted, and `split` steps + JSON round trip + the rest, and compares.
#[track_caller]
fn check_resume<P>(make: impl Fn() -> P, start: &[f32], split: u64, total: u64)
where
    P: Optimizer,
    P::State: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let mut x_a = start.to_vec();
    let mut a = make();
    let mut trace_a = Trace::new();
    trace_steps(&mut a, &mut x_a, &mut Rosenbrock, total, &mut trace_a);

    let mut x_b = start.to_vec();
    let mut b = make();
    let mut trace_b = Trace::new();
    trace_steps(&mut b, &mut x_b, &mut Rosenbrock, split, &mut trace_b);
    let saved = b.state();
    let json = serde_json::to_string(&saved).unwrap();
    let x_saved: Vec<u32> = x_b.iter().map(|v| v.to_bits()).collect();
    drop(b);

    let restored_state: P::State = serde_json::from_str(&json).unwrap();
    assert_eq!(
        restored_state, saved,
        "the state changed through serde_json"
    );
    let mut c = P::from_state(restored_state).unwrap();
    let mut x_c: Vec<f32> = x_saved.iter().map(|&b| f32::from_bits(b)).collect();
    trace_steps(
        &mut c,
        &mut x_c,
        &mut Rosenbrock,
        total - split,
        &mut trace_b,
    );

    assert_eq!(trace_a.len(), trace_b.len());
    for (k, (ta, tb)) in trace_a.iter().zip(&trace_b).enumerate() {
        assert_eq!(
            ta,
            tb,
            "iteration {} differs after resuming at {split}",
            k + 1
        );
    }
    assert_eq!(a.state(), c.state(), "final states differ");
}

#[test]
fn adam_resumes_bit_identically() {
    let cfg = AdamConfig {
        learning_rate: 0.01,
        ..AdamConfig::tensorflow_v1(2.0)
    };
    for split in [1, 7, 20] {
        check_resume(|| Adam::new(cfg).unwrap(), &rosenbrock_start(6), split, 40);
    }
    let cfg = AdamConfig {
        learning_rate: 0.01,
        ..AdamConfig::kingma_ba_2015()
    };
    check_resume(|| Adam::new(cfg).unwrap(), &rosenbrock_start(6), 13, 40);
}

#[test]
fn lbfgs_resumes_bit_identically() {
    // Rosenbrock in 6-D: line searches with several evaluations, a full history (m = 4) that wraps.
    let cfg = LbfgsConfig {
        history_size: 4,
        grad_tolerance: 0.0,
        value_tolerance: 0.0,
        ..LbfgsConfig::default()
    };
    for split in [1, 5, 17] {
        check_resume(|| Lbfgs::new(cfg).unwrap(), &rosenbrock_start(6), split, 30);
    }
    // A strict curvature condition with a budget of 3 evaluations: searches often end at their
    // budget and take an earlier trial point, the path that restores x and its gradient from g_lo.
    let cfg = LbfgsConfig {
        line_search: nst_optim::LineSearchConfig {
            c2: 0.01,
            max_evaluations: 3,
            ..Default::default()
        },
        ..cfg
    };
    for split in [2, 11] {
        check_resume(|| Lbfgs::new(cfg).unwrap(), &rosenbrock_start(6), split, 30);
    }
}

#[test]
fn minimize_in_two_calls_equals_one_call() {
    let cfg = LbfgsConfig::default();
    let mut x1 = rosenbrock_start(4);
    let mut o1 = Lbfgs::new(cfg).unwrap();
    let mut seen1 = Vec::new();
    run(&mut o1, &mut x1, &mut Rosenbrock, 25, &mut seen1);

    let mut x2 = rosenbrock_start(4);
    let mut o2 = Lbfgs::new(cfg).unwrap();
    let mut seen2 = Vec::new();
    run(&mut o2, &mut x2, &mut Rosenbrock, 10, &mut seen2);
    let json = serde_json::to_string(&o2.state()).unwrap();
    let mut o3 = Lbfgs::from_state(serde_json::from_str(&json).unwrap()).unwrap();
    run(&mut o3, &mut x2, &mut Rosenbrock, 15, &mut seen2);
    assert_eq!(seen1.len(), 25);
    assert_eq!(seen1, seen2);
    assert_eq!(
        x1.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        x2.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    assert_eq!(o1.evaluations(), o3.evaluations());
}

#[test]
fn tampered_states_are_rejected() {
    let mut opt = Lbfgs::new(LbfgsConfig {
        history_size: 3,
        ..LbfgsConfig::default()
    })
    .unwrap();
    let mut x = rosenbrock_start(2);
    for _ in 0..5 {
        opt.step(&mut x, &mut Rosenbrock).unwrap();
    }
    let mut json: serde_json::Value = serde_json::to_value(opt.state()).unwrap();
    json["config"]["history_size"] = 2.into();
    let err = Lbfgs::from_state(serde_json::from_value(json).unwrap()).unwrap_err();
    assert!(
        matches!(err, nst_optim::Error::InvalidState { .. }),
        "{err:?}"
    );

    let mut adam = Adam::new(AdamConfig::tensorflow_v1(2.0)).unwrap();
    adam.step(&mut x, &mut Rosenbrock).unwrap();
    let good: serde_json::Value = serde_json::to_value(adam.state()).unwrap();
    // Vectors may also be written as u32 bit patterns, which makes tampering easy here.
    let bits = |v: &[f32]| serde_json::json!(v.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
    let tampered: [(&str, serde_json::Value); 5] = [
        ("v", serde_json::json!([])),
        ("v", bits(&[1.0, -1e-3])),
        ("m", bits(&[f32::NAN, 0.0])),
        ("beta1_power", "1.5".into()),
        ("beta2_power", "NaN".into()),
    ];
    for (field, value) in tampered {
        let mut json = good.clone();
        json[field] = value;
        let err = Adam::from_state(serde_json::from_value(json).unwrap()).unwrap_err();
        assert!(
            matches!(err, nst_optim::Error::InvalidState { .. }),
            "{field}: {err:?}"
        );
    }
    assert!(Adam::from_state(serde_json::from_value(good).unwrap()).is_ok());

    let good: serde_json::Value = serde_json::to_value(opt.state()).unwrap();
    let mut json = good.clone();
    json["current"]["value"] = "inf".into();
    let mut json2 = good.clone();
    json2["history"][0]["y"] = bits(&[1.0, f32::NAN]);
    for json in [json, json2] {
        let err = Lbfgs::from_state(serde_json::from_value(json).unwrap()).unwrap_err();
        assert!(
            matches!(err, nst_optim::Error::InvalidState { .. }),
            "{err:?}"
        );
    }
    assert!(Lbfgs::from_state(serde_json::from_value(good).unwrap()).is_ok());
}

#[test]
fn the_saved_lbfgs_state_is_compact() {
    // History 10 plus the cached gradient: 21 vectors of n values. As base64 of their bytes they
    // take 4·⌈4n/3⌉ symbols each (≈ 5.3 bytes per f32; the older u32 form took about 11).
    let n = 3000;
    let mut obj = crate::problems::Quadratic::new(n);
    let mut x = vec![0.0_f32; n];
    let mut opt = Lbfgs::new(LbfgsConfig {
        grad_tolerance: 0.0,
        value_tolerance: 0.0,
        ..LbfgsConfig::default()
    })
    .unwrap();
    for _ in 0..12 {
        opt.step(&mut x, &mut obj).unwrap();
    }
    let state = opt.state();
    assert_eq!(state.history_len(), 10);
    let json = serde_json::to_string(&state).unwrap();
    let vectors = 21 * (4 * n).div_ceil(3) * 4;
    assert!(
        json.len() <= vectors + 2048,
        "{} bytes for {vectors} bytes of base64",
        json.len()
    );
    let back: nst_optim::LbfgsState = serde_json::from_str(&json).unwrap();
    assert_eq!(back, state);
}

/// Rosenbrock that **adds** its gradient into `grad`, as a pipeline built on `*_accumulate` does.
struct AccumulatingRosenbrock;

impl Objective for AccumulatingRosenbrock {
    type Error = std::convert::Infallible;
    fn value_and_grad(&mut self, x: &[f32], grad: &mut [f32]) -> Result<f64, Self::Error> {
        let mut g = vec![0.0_f32; x.len()];
        let f = Rosenbrock.value_and_grad(x, &mut g)?;
        for (o, v) in grad.iter_mut().zip(g) {
            *o += v;
        }
        Ok(f)
    }
}

/// The optimizers zero the gradient buffer before every evaluation, so an accumulating objective
/// gives the same iterates as an overwriting one (and a resumed run, whose fresh buffers start at
/// zero, the same as an uninterrupted one).
#[test]
fn an_objective_that_adds_into_grad_gives_the_same_iterates() {
    fn check<P: Optimizer>(make: impl Fn() -> P) {
        let (mut xa, mut xb) = (rosenbrock_start(6), rosenbrock_start(6));
        let (mut a, mut b) = (make(), make());
        let (mut ta, mut tb) = (Trace::new(), Trace::new());
        trace_steps(&mut a, &mut xa, &mut Rosenbrock, 25, &mut ta);
        trace_steps(&mut b, &mut xb, &mut AccumulatingRosenbrock, 25, &mut tb);
        assert_eq!(ta, tb);
    }
    let cfg = LbfgsConfig {
        grad_tolerance: 0.0,
        value_tolerance: 0.0,
        ..LbfgsConfig::default()
    };
    check(|| Lbfgs::new(cfg).unwrap());
    let cfg = AdamConfig {
        learning_rate: 0.01,
        ..AdamConfig::tensorflow_v1(2.0)
    };
    check(|| Adam::new(cfg).unwrap());
}
