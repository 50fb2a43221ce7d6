//! L-BFGS on test functions, its monotone decrease, and its failure modes.

use std::convert::Infallible;
use std::ops::ControlFlow;

use nst_optim::{
    Lbfgs, LbfgsConfig, LineSearchConfig, Objective, OptimError, Optimizer, StopReason, minimize,
};

use crate::problems::{Quadratic, Rosenbrock, max_error, rosenbrock_start};

/// Runs L-BFGS with default settings, asserting a strict decrease at every iteration; returns the
/// report and the values seen.
#[track_caller]
fn run_monotone<O: Objective<Error = Infallible>>(
    x: &mut [f32],
    obj: &mut O,
    max_iterations: u64,
) -> (nst_optim::MinimizeReport, Vec<f64>) {
    let mut opt = Lbfgs::new(LbfgsConfig::default()).unwrap();
    let mut f0 = vec![0.0_f32; x.len()];
    let mut values = vec![obj.value_and_grad(x, &mut f0).unwrap()];
    let report = minimize(&mut opt, x, obj, max_iterations, |info| {
        values.push(info.value);
        ControlFlow::Continue(())
    })
    .unwrap();
    for (k, w) in values.windows(2).enumerate() {
        assert!(
            w[1] < w[0] || (w[1] == w[0] && k + 2 == values.len()),
            "value rose at iteration {}: {} → {}",
            k + 1,
            w[0],
            w[1]
        );
    }
    (report, values)
}

#[test]
fn quadratic_reaches_its_known_minimum() {
    let mut obj = Quadratic::new(20);
    let mut x = vec![0.0_f32; 20];
    let (report, _) = run_monotone(&mut x, &mut obj, 200);
    assert!(
        matches!(report.stop, StopReason::Converged(_)),
        "{report:?}"
    );
    let center = obj.center.clone();
    let err = max_error(&x, |i| center[i]);
    assert!(
        err < 1e-4,
        "max error {err:e} after {} iterations",
        report.iterations
    );
}

#[test]
fn rosenbrock_2d_to_1e_4() {
    let mut x = rosenbrock_start(2);
    let (report, _) = run_monotone(&mut x, &mut Rosenbrock, 200);
    let err = max_error(&x, |_| 1.0);
    assert!(err < 1e-4, "max error {err:e}, {report:?}");
    assert!(report.iterations < 100, "{report:?}");
}

#[test]
fn rosenbrock_10d_to_1e_4() {
    let mut x = rosenbrock_start(10);
    let (report, _) = run_monotone(&mut x, &mut Rosenbrock, 500);
    let err = max_error(&x, |_| 1.0);
    assert!(err < 1e-4, "max error {err:e}, {report:?}");
}

#[test]
fn counts_evaluations_separately_from_iterations() {
    let mut x = rosenbrock_start(2);
    let mut opt = Lbfgs::new(LbfgsConfig::default()).unwrap();
    let mut step_evals = 0;
    let report = minimize(&mut opt, &mut x, &mut Rosenbrock, 200, |info| {
        step_evals += info.step_evaluations;
        ControlFlow::Continue(())
    })
    .unwrap();
    // One evaluation at the start point, then the line searches'.
    assert_eq!(opt.evaluations(), step_evals);
    assert_eq!(opt.iterations(), report.iterations);
    assert!(
        opt.evaluations() > opt.iterations(),
        "Rosenbrock needs some line-search backtracking"
    );
}

#[test]
fn every_default_is_as_documented() {
    let c = LbfgsConfig::default();
    assert_eq!(c.history_size, 10);
    assert_eq!(c.grad_tolerance, 1e-5);
    assert_eq!(c.value_tolerance, 2.220446049250313e-9);
    assert_eq!(
        c.line_search,
        LineSearchConfig {
            c1: 1e-4,
            c2: 0.9,
            max_evaluations: 20
        }
    );
    assert_eq!(LineSearchConfig::default(), c.line_search);
}

#[test]
fn invalid_configs_are_errors() {
    let d = LbfgsConfig::default();
    let cases = [
        (
            LbfgsConfig {
                history_size: 0,
                ..d
            },
            "history_size",
        ),
        (
            LbfgsConfig {
                grad_tolerance: -1.0,
                ..d
            },
            "grad_tolerance",
        ),
        (
            LbfgsConfig {
                value_tolerance: f64::NAN,
                ..d
            },
            "value_tolerance",
        ),
        (
            LbfgsConfig {
                line_search: LineSearchConfig {
                    c1: 0.0,
                    ..d.line_search
                },
                ..d
            },
            "line_search.c1",
        ),
        (
            LbfgsConfig {
                line_search: LineSearchConfig {
                    c2: 1e-5,
                    ..d.line_search
                },
                ..d
            },
            "line_search.c2",
        ),
        (
            LbfgsConfig {
                line_search: LineSearchConfig {
                    c2: 1.0,
                    ..d.line_search
                },
                ..d
            },
            "line_search.c2",
        ),
        (
            LbfgsConfig {
                line_search: LineSearchConfig {
                    max_evaluations: 0,
                    ..d.line_search
                },
                ..d
            },
            "line_search.max_evaluations",
        ),
    ];
    for (cfg, field) in cases {
        match Lbfgs::new(cfg) {
            Err(nst_optim::Error::InvalidConfig { name, .. }) => assert_eq!(name, field),
            other => panic!("{field}: expected InvalidConfig, got {other:?}"),
        }
    }
}

/// Reports the negated gradient: every "descent" direction goes uphill.
struct LyingGradient;

impl Objective for LyingGradient {
    type Error = Infallible;
    fn value_and_grad(&mut self, x: &[f32], grad: &mut [f32]) -> Result<f64, Infallible> {
        let mut f = 0.0;
        for (&v, g) in x.iter().zip(grad.iter_mut()) {
            f += f64::from(v) * f64::from(v);
            *g = -2.0 * v;
        }
        Ok(f)
    }
}

#[test]
fn failed_line_search_is_an_error_and_restores_x() {
    let start = vec![1.5_f32, -0.25, 3.0];
    let mut x = start.clone();
    let mut opt = Lbfgs::new(LbfgsConfig::default()).unwrap();
    let err = opt.step(&mut x, &mut LyingGradient).unwrap_err();
    match err {
        OptimError::LineSearchFailed {
            evaluations,
            directional_derivative,
        } => {
            assert_eq!(evaluations, 1 + 20, "start point + one full search");
            assert!(directional_derivative < 0.0);
        }
        other => panic!("expected LineSearchFailed, got {other:?}"),
    }
    assert_eq!(x, start);
}

/// A bowl that is NaN beyond `|x| > 2`: the line search must back off instead of failing.
struct Cliff;

impl Objective for Cliff {
    type Error = Infallible;
    fn value_and_grad(&mut self, x: &[f32], grad: &mut [f32]) -> Result<f64, Infallible> {
        if x.iter().any(|v| v.abs() > 2.0) {
            grad.fill(f32::NAN);
            return Ok(f64::NAN);
        }
        let mut f = 0.0;
        for (&v, g) in x.iter().zip(grad.iter_mut()) {
            let e = f64::from(v) - 1.5;
            f += e * e * e * e + e * e;
            *g = (4.0 * e * e * e + 2.0 * e) as f32;
        }
        Ok(f)
    }
}

#[test]
fn non_finite_trial_points_shrink_the_step() {
    let mut x = vec![-1.9_f32, -1.0];
    let mut opt = Lbfgs::new(LbfgsConfig::default()).unwrap();
    let report = minimize(&mut opt, &mut x, &mut Cliff, 100, |_| {
        ControlFlow::Continue(())
    })
    .unwrap();
    assert!(
        matches!(report.stop, StopReason::Converged(_)),
        "{report:?}"
    );
    assert!(max_error(&x, |_| 1.5) < 1e-3, "{x:?}");
}

#[test]
fn non_finite_start_is_an_error() {
    let mut x = vec![5.0_f32];
    let mut opt = Lbfgs::new(LbfgsConfig::default()).unwrap();
    let err = opt.step(&mut x, &mut Cliff).unwrap_err();
    assert!(
        matches!(
            err,
            OptimError::NonFinite {
                evaluation: 1,
                non_finite_grad: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(x, [5.0]);
}

struct Failing;

#[derive(Debug, PartialEq)]
struct Boom(u32);

impl std::fmt::Display for Boom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "boom {}", self.0)
    }
}

impl Objective for Failing {
    type Error = Boom;
    fn value_and_grad(&mut self, _x: &[f32], _grad: &mut [f32]) -> Result<f64, Boom> {
        Err(Boom(7))
    }
}

#[test]
fn objective_errors_propagate() {
    let mut x = vec![1.0_f32];
    let mut opt = Lbfgs::new(LbfgsConfig::default()).unwrap();
    match opt.step(&mut x, &mut Failing) {
        Err(OptimError::Objective(Boom(7))) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn objective_errors_show_their_cause_and_convert_with_the_question_mark() {
    let mut x = vec![1.0_f32];
    let mut opt = Lbfgs::new(LbfgsConfig::default()).unwrap();
    let err = opt.step(&mut x, &mut Failing).unwrap_err();
    assert_eq!(err.to_string(), "the objective failed: boom 7");

    fn boxed(e: OptimError<Boom>) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Err(e)?
    }
    assert_eq!(
        boxed(err).unwrap_err().to_string(),
        "the objective failed: boom 7"
    );

    // An anyhow::Error objective error: `{:#}` of the optimizer's error shows the whole chain.
    fn with_anyhow(e: OptimError<anyhow::Error>) -> anyhow::Result<()> {
        Err(e)?
    }
    let cause = anyhow::anyhow!("no memory").context("evaluating the network");
    let err = with_anyhow(OptimError::Objective(cause)).unwrap_err();
    assert_eq!(
        format!("{err:#}"),
        "the objective failed: evaluating the network: no memory"
    );
}

#[test]
fn length_change_is_an_error() {
    let mut x = rosenbrock_start(4);
    let mut opt = Lbfgs::new(LbfgsConfig::default()).unwrap();
    opt.step(&mut x, &mut Rosenbrock).unwrap();
    let mut y = rosenbrock_start(2);
    let err = opt.step(&mut y, &mut Rosenbrock).unwrap_err();
    assert!(
        matches!(
            err,
            OptimError::DimensionMismatch {
                expected: 4,
                actual: 2
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_changed_x_is_re_evaluated() {
    let mut x = rosenbrock_start(2);
    let mut opt = Lbfgs::new(LbfgsConfig::default()).unwrap();
    opt.step(&mut x, &mut Rosenbrock).unwrap();
    let evals = opt.evaluations();
    x[0] += 0.125; // e.g. the caller clamped pixels
    let r = opt.step(&mut x, &mut Rosenbrock).unwrap();
    // One fresh evaluation at the changed point plus the line search's.
    assert!(r.evaluations >= 2, "{r:?}");
    assert_eq!(opt.evaluations(), evals + r.evaluations);
}

#[test]
fn callback_can_stop_the_run() {
    let mut x = rosenbrock_start(2);
    let mut opt = Lbfgs::new(LbfgsConfig::default()).unwrap();
    let report = minimize(&mut opt, &mut x, &mut Rosenbrock, 100, |info| {
        if info.iteration == 3 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .unwrap();
    assert_eq!(report.stop, StopReason::Callback);
    assert_eq!(report.iterations, 3);
    assert_eq!(opt.iterations(), 3);
    assert_eq!(report.last.unwrap().iteration, 3);
}

/// Fails on its `n`-th evaluation, else the quadratic `Σ xᵢ²`.
struct FailsAt(u32, u32);

impl Objective for FailsAt {
    type Error = Boom;
    fn value_and_grad(&mut self, x: &[f32], grad: &mut [f32]) -> Result<f64, Boom> {
        self.0 += 1;
        if self.0 == self.1 {
            return Err(Boom(self.0));
        }
        let mut f = 0.0;
        for (&v, g) in x.iter().zip(grad.iter_mut()) {
            f += f64::from(v) * f64::from(v);
            *g = 2.0 * v;
        }
        Ok(f)
    }
}

#[test]
fn an_objective_error_inside_the_line_search_restores_x() {
    let start = [0.75_f32, -1.5];
    let mut x = start;
    let mut opt = Lbfgs::new(LbfgsConfig::default()).unwrap();
    // Evaluation 1 is the start point, 2 the first trial of the line search.
    match opt.step(&mut x, &mut FailsAt(0, 2)) {
        Err(OptimError::Objective(Boom(2))) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(x.map(f32::to_bits), start.map(f32::to_bits));
    // The cached start point survives: continuing needs no re-evaluation there.
    let r = opt.step(&mut x, &mut FailsAt(0, u32::MAX)).unwrap();
    assert!(r.value < 0.75 * 0.75 + 1.5 * 1.5);
}

/// `f(x) = s·Σ dᵢ·(xᵢ − cᵢ)²` with `s = 1e4`, `dᵢ ∈ [1, 1000]`, `cᵢ` pixel-like in [28, 228]: the
/// scale and conditioning of an image problem, on 2000 parameters.
struct PixelBowl {
    d: Vec<f64>,
    c: Vec<f64>,
}

impl Objective for PixelBowl {
    type Error = Infallible;
    fn value_and_grad(&mut self, x: &[f32], grad: &mut [f32]) -> Result<f64, Infallible> {
        let mut f = 0.0;
        for (((&xi, g), &d), &c) in x.iter().zip(grad.iter_mut()).zip(&self.d).zip(&self.c) {
            let e = f64::from(xi) - c;
            f += 1e4 * d * e * e;
            *g = (2e4 * d * e) as f32;
        }
        Ok(f)
    }
}

#[test]
fn badly_scaled_pixel_sized_quadratic() {
    let n = 2000;
    let mut obj = PixelBowl {
        d: (0..n)
            .map(|i| 1.0 + 999.0 * ((i * 7919) % n) as f64 / n as f64)
            .collect(),
        c: (0..n)
            .map(|i| 128.0 + 100.0 * ((i as f64) * 0.37).sin())
            .collect(),
    };
    let mut x = vec![0.0_f32; n];
    let (report, values) = run_monotone(&mut x, &mut obj, 1000);
    // f32 cannot resolve the minimum of such a stiff problem: x ≈ 128 has ulp 1.5e-5, which with
    // curvature up to 2e7 leaves a noise floor of f ≈ 1e4 · Σdᵢ · ulp²/12 ≈ 0.2. The run must
    // get there from f ≈ 1e14 and then stop cleanly.
    assert!(
        matches!(
            report.stop,
            StopReason::Converged(_) | StopReason::NoDecrease { .. }
        ),
        "{report:?}"
    );
    let last = *values.last().unwrap();
    assert!(
        values[0] > 1e13 && last < 2.0,
        "from {:e} to {last:e}",
        values[0]
    );
    let c = obj.c.clone();
    let err = max_error(&x, |i| c[i]);
    assert!(
        err < 2e-2,
        "max error {err:e} after {} iterations",
        report.iterations
    );
}

#[test]
fn minimize_reports_a_failed_line_search_as_no_decrease() {
    let start = vec![1.5_f32, -0.25, 3.0];
    let mut x = start.clone();
    let mut opt = Lbfgs::new(LbfgsConfig::default()).unwrap();
    let mut calls = 0;
    let report = minimize(&mut opt, &mut x, &mut LyingGradient, 10, |_| {
        calls += 1;
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(report.stop, StopReason::NoDecrease { evaluations: 21 });
    assert_eq!((report.iterations, calls), (0, 0));
    assert_eq!(x, start);
}

/// Every accepted step satisfies the strong Wolfe conditions (Nocedal & Wright 2006, eq. 3.7) with
/// the configured `c₁`, `c₂`, checked from outside on the iterates themselves: with
/// `s = x_{k+1} − x_k`, `f_{k+1} ≤ f_k + c₁·∇f_kᵀs` and `|∇f_{k+1}ᵀs| ≤ c₂·|∇f_kᵀs|`.
#[test]
fn accepted_steps_satisfy_the_strong_wolfe_conditions() {
    for (n, c2) in [(2, 0.9), (6, 0.9), (6, 0.1)] {
        let cfg = LbfgsConfig {
            line_search: LineSearchConfig {
                c2,
                ..LineSearchConfig::default()
            },
            ..LbfgsConfig::default()
        };
        let c1 = cfg.line_search.c1;
        let mut opt = Lbfgs::new(cfg).unwrap();
        let mut x = rosenbrock_start(n);
        let eval = |x: &[f32]| {
            let mut g = vec![0.0_f32; x.len()];
            let f = Rosenbrock.value_and_grad(x, &mut g).unwrap();
            (f, g)
        };
        let dot = |g: &[f32], s: &[f64]| -> f64 {
            g.iter().zip(s).map(|(&a, &b)| f64::from(a) * b).sum()
        };
        let mut checked = 0;
        for k in 0..200 {
            let x0 = x.clone();
            let (f0, g0) = eval(&x0);
            let r = opt.step(&mut x, &mut Rosenbrock).unwrap();
            if r.converged == Some(nst_optim::Convergence::Gradient) && x == x0 {
                break;
            }
            let (f1, g1) = eval(&x);
            let s: Vec<f64> = x
                .iter()
                .zip(&x0)
                .map(|(&a, &b)| f64::from(a) - f64::from(b))
                .collect();
            let (d0, d1) = (dot(&g0, &s), dot(&g1, &s));
            // `s` is `α·p` rounded to f32: a relative slack of 1e-6 on the curvature side.
            assert!(d0 < 0.0, "n = {n}, step {k}: not a descent step ({d0:e})");
            assert!(
                f1 <= f0 + c1 * d0 + 1e-12 * f0.abs(),
                "n = {n}, step {k}: sufficient decrease fails: {f1:e} > {f0:e} + {c1}·{d0:e}"
            );
            assert!(
                d1.abs() <= c2 * d0.abs() * (1.0 + 1e-6),
                "n = {n}, step {k}: curvature fails: |{d1:e}| > {c2}·|{d0:e}|"
            );
            checked += 1;
            if r.converged.is_some() {
                break;
            }
        }
        assert!(checked > 15, "n = {n}: only {checked} steps checked");
    }
}

#[test]
fn a_start_at_the_minimum_converges_without_an_iteration() {
    let mut obj = Quadratic::new(3);
    let mut x: Vec<f32> = obj.center.iter().map(|&c| c as f32).collect();
    let mut g = vec![0.0_f32; 3];
    obj.value_and_grad(&x, &mut g).unwrap();
    let cfg = LbfgsConfig {
        grad_tolerance: 1e-3,
        ..LbfgsConfig::default()
    };
    assert!(
        g.iter().all(|v| f64::from(v.abs()) <= cfg.grad_tolerance),
        "{g:?}"
    );
    let mut opt = Lbfgs::new(cfg).unwrap();
    let report = minimize(
        &mut opt,
        &mut x,
        &mut obj,
        10,
        |_| ControlFlow::Continue(()),
    )
    .unwrap();
    assert_eq!(
        report.stop,
        StopReason::Converged(nst_optim::Convergence::Gradient)
    );
    assert_eq!(
        (report.iterations, opt.iterations(), opt.evaluations()),
        (0, 0, 1)
    );
}

/// `s·Quadratic`: the same problem with the objective scaled by `s`.
struct Scaled(f64, Quadratic);

impl Objective for Scaled {
    type Error = Infallible;
    fn value_and_grad(&mut self, x: &[f32], grad: &mut [f32]) -> Result<f64, Infallible> {
        let f = self.1.value_and_grad(x, grad)?;
        for g in grad.iter_mut() {
            *g = (f64::from(*g) * self.0) as f32;
        }
        Ok(f * self.0)
    }
}

#[test]
fn the_curvature_guard_does_not_depend_on_the_objective_scale() {
    // A style-transfer objective can be 1e12 times larger than a textbook one; scaling f must not
    // make L-BFGS drop its correction pairs (and degrade to steepest descent).
    let mut runs = Vec::new();
    for scale in [1.0, 1e12] {
        let mut obj = Scaled(scale, Quadratic::new(20));
        let mut x = vec![0.0_f32; 20];
        let mut opt = Lbfgs::new(LbfgsConfig {
            grad_tolerance: 1e-5 * scale,
            ..LbfgsConfig::default()
        })
        .unwrap();
        let report = minimize(&mut opt, &mut x, &mut obj, 200, |_| {
            ControlFlow::Continue(())
        })
        .unwrap();
        let center = obj.1.center.clone();
        assert!(
            max_error(&x, |i| center[i]) < 1e-4,
            "scale {scale:e}: {report:?}"
        );
        runs.push((report.iterations, opt.state().history_len()));
    }
    assert!(runs[1].1 > 0, "no pair kept at scale 1e12: {runs:?}");
    assert!(runs[1].0 <= runs[0].0 + 5, "{runs:?}");
}

#[test]
fn an_empty_parameter_vector_is_handled() {
    let mut x: Vec<f32> = Vec::new();
    let mut opt = Lbfgs::new(LbfgsConfig::default()).unwrap();
    let report = minimize(&mut opt, &mut x, &mut Rosenbrock, 5, |_| {
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(
        report.stop,
        StopReason::Converged(nst_optim::Convergence::Gradient)
    );
    let mut adam = nst_optim::Adam::new(nst_optim::AdamConfig::tensorflow_v1(2.0)).unwrap();
    let report = minimize(&mut adam, &mut x, &mut Rosenbrock, 3, |_| {
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(
        (report.stop, report.iterations),
        (StopReason::MaxIterations, 3)
    );
    let restored = nst_optim::Adam::from_state(adam.state()).unwrap();
    assert_eq!(restored.iterations(), 3);
}
