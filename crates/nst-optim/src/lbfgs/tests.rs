//! Unit tests of L-BFGS's internals: two-loop recursion, interpolation, the non-descent reset.

use approx::assert_relative_eq;

use super::*;

/// `f(x) = ½·Σ dᵢ·xᵢ²`.
struct Diagonal(Vec<f64>);

impl Objective for Diagonal {
    type Error = std::convert::Infallible;
    fn value_and_grad(&mut self, x: &[f32], g: &mut [f32]) -> Result<f64, Self::Error> {
        let mut f = 0.0;
        for ((&xi, gi), &d) in x.iter().zip(g.iter_mut()).zip(&self.0) {
            f += 0.5 * d * f64::from(xi) * f64::from(xi);
            *gi = (d * f64::from(xi)) as f32;
        }
        Ok(f)
    }
}

#[test]
fn two_loop_with_empty_history_is_steepest_descent() {
    let mut opt = Lbfgs::new(LbfgsConfig::default()).unwrap();
    opt.direction(&[1.0, -2.0, 0.5]);
    assert_eq!(opt.work.p, [-1.0, 2.0, -0.5]);
}

#[test]
fn two_loop_with_one_exact_pair_inverts_a_scaled_identity() {
    // For f = ½·c·‖x‖², y = c·s, so H = I/c exactly and p = −g/c.
    let c = 4.0_f32;
    let mut opt = Lbfgs::new(LbfgsConfig::default()).unwrap();
    let s = vec![0.5_f32, -1.0, 2.0];
    let y: Vec<f32> = s.iter().map(|v| v * c).collect();
    let sy = dot_f32(&s, &y);
    let yy = dot_f32(&y, &y);
    opt.state.history.push_back(Pair {
        s,
        y,
        rho: 1.0 / sy,
        gamma: sy / yy,
    });
    opt.direction(&[1.0, 2.0, -3.0]);
    for (p, g) in opt.work.p.iter().zip([1.0_f32, 2.0, -3.0]) {
        assert_relative_eq!(*p, -g / c, max_relative = 1e-6);
    }
}

#[test]
fn a_non_descent_direction_resets_to_steepest_descent() {
    // A (corrupt) pair with negative curvature makes −H·g point uphill; the step must notice,
    // drop the history and still decrease f.
    let mut opt = Lbfgs::new(LbfgsConfig::default()).unwrap();
    let s = vec![1.0_f32, 1.0];
    let y = vec![-1.0_f32, -1.0];
    opt.state.history.push_back(Pair {
        s,
        y,
        rho: -0.5,
        gamma: -1.0,
    });
    let mut obj = Diagonal(vec![1.0, 3.0]);
    let mut x = [1.0_f32, 1.0];
    let mut g = [0.0_f32; 2];
    let f0 = obj.value_and_grad(&x, &mut g).unwrap();
    let r = opt.step(&mut x, &mut obj).unwrap();
    assert!(r.value < f0, "{} !< {f0}", r.value);
    // The corrupt pair is gone; the new one has positive curvature.
    assert_eq!(opt.state.history.len(), 1);
    assert!(opt.state.history[0].rho > 0.0);
}

#[test]
fn interpolation_finds_the_minimizer_of_a_quadratic() {
    // φ(α) = (α − 0.3)²: the cubic matching φ and φ' at two points of a quadratic is the
    // quadratic itself, so its minimizer is exactly 0.3.
    let phi = |a: f64| (a - 0.3) * (a - 0.3);
    let dphi = |a: f64| 2.0 * (a - 0.3);
    let lo = Trial {
        alpha: 0.0,
        value: phi(0.0),
        slope: dphi(0.0),
    };
    let hi = Trial {
        alpha: 1.0,
        value: phi(1.0),
        slope: dphi(1.0),
    };
    assert_relative_eq!(interpolate(&lo, &hi), 0.3, max_relative = 1e-12);
    // Quadratic fallback when φ'(hi) is unknown.
    let hi_nan = Trial {
        slope: f64::NAN,
        ..hi
    };
    assert_relative_eq!(interpolate(&lo, &hi_nan), 0.3, max_relative = 1e-12);
    // Bisection when φ(hi) is not finite.
    let hi_inf = Trial {
        alpha: 1.0,
        value: f64::INFINITY,
        slope: f64::NAN,
    };
    assert_eq!(interpolate(&lo, &hi_inf), 0.5);
    // Safeguard: a minimizer too close to an end is replaced by bisection.
    let phi2 = |a: f64| (a - 0.01) * (a - 0.01);
    let lo2 = Trial {
        alpha: 0.0,
        value: phi2(0.0),
        slope: -0.02,
    };
    let hi2 = Trial {
        alpha: 1.0,
        value: phi2(1.0),
        slope: 1.98,
    };
    assert_eq!(interpolate(&lo2, &hi2), 0.5);
}

#[test]
fn fingerprint_sees_single_bit_changes() {
    let x = [1.0_f32, 2.0, 3.0];
    let mut y = x;
    y[2] = f32::from_bits(y[2].to_bits() ^ 1);
    assert_ne!(fnv1a(&x), fnv1a(&y));
    assert_eq!(fnv1a(&x), fnv1a(&[1.0, 2.0, 3.0]));
    // −0.0 and 0.0 differ in bits, so they differ here too (the cache is per bit pattern).
    assert_ne!(fnv1a(&[0.0]), fnv1a(&[-0.0]));
}

/// Records every point it is evaluated at.
struct Recording(Diagonal, Vec<Vec<f32>>);

impl Objective for Recording {
    type Error = std::convert::Infallible;
    fn value_and_grad(&mut self, x: &[f32], g: &mut [f32]) -> Result<f64, Self::Error> {
        self.1.push(x.to_vec());
        self.0.value_and_grad(x, g)
    }
}

#[test]
fn the_cached_gradient_saves_an_evaluation_per_step() {
    let mut opt = Lbfgs::new(LbfgsConfig::default()).unwrap();
    let mut obj = Recording(Diagonal(vec![1.0, 2.0, 3.0, 4.0]), Vec::new());
    let start = [1.0_f32, -1.0, 0.5, 2.0];
    let mut x = start;
    let first = opt.step(&mut x, &mut obj).unwrap();
    assert_eq!(obj.1[0], start, "step 1 evaluates its start point first");
    assert_eq!(first.evaluations as usize, obj.1.len());
    let x1 = x;
    obj.1.clear();
    let second = opt.step(&mut x, &mut obj).unwrap();
    assert_eq!(second.evaluations as usize, obj.1.len());
    assert!(
        obj.1.iter().all(|p| p.as_slice() != x1.as_slice()),
        "step 2 re-evaluated its start point"
    );
    assert_eq!(opt.evaluations(), first.evaluations + second.evaluations);
}

#[test]
fn pairs_without_positive_curvature_are_skipped() {
    let mut history = VecDeque::new();
    // sᵀy < 0, sᵀy = 0, y = 0, and a non-finite product: none may enter the history.
    for (s, y) in [
        (vec![1.0_f32, 0.0], vec![-1.0_f32, 0.0]),
        (vec![1.0, 0.0], vec![0.0, 1.0]),
        (vec![1.0, 2.0], vec![0.0, 0.0]),
        (vec![f32::INFINITY, 0.0], vec![1.0, 0.0]),
        (vec![f32::NAN, 1.0], vec![1.0, 1.0]),
    ] {
        let what = format!("s = {s:?}, y = {y:?}");
        let (mut s, mut y) = (s, y);
        assert!(!push_pair(&mut history, 3, &mut s, &mut y), "{what}");
    }
    assert!(history.is_empty());
}

#[test]
fn pairs_store_rho_and_gamma_and_drop_the_oldest() {
    let mut history = VecDeque::new();
    for k in 1..=4 {
        let c = k as f32;
        // s = (1, 1), y = (c, 2c): sᵀy = 3c, yᵀy = 5c².
        let (mut s, mut y) = (vec![1.0_f32, 1.0], vec![c, 2.0 * c]);
        assert!(push_pair(&mut history, 3, &mut s, &mut y));
    }
    assert_eq!(history.len(), 3);
    for (pair, k) in history.iter().zip(2..=4) {
        let c = f64::from(k);
        assert_eq!(pair.y, [k as f32, 2.0 * k as f32]);
        assert_relative_eq!(pair.rho, 1.0 / (3.0 * c), max_relative = 1e-15);
        assert_relative_eq!(pair.gamma, 3.0 / (5.0 * c), max_relative = 1e-15);
    }
}

/// `n × n` matrix product in f64, row-major.
fn matmul(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
    let mut c = vec![0.0; n * n];
    for i in 0..n {
        for k in 0..n {
            for j in 0..n {
                c[i * n + j] += a[i * n + k] * b[k * n + j];
            }
        }
    }
    c
}

#[test]
fn two_loop_equals_the_dense_inverse_bfgs_update() {
    // Oracle: H₀ = γ·I with γ = sᵀy/yᵀy of the newest pair (N&W eq. 7.20), then for each pair,
    // oldest first, H ← (I − ρ·s·yᵀ)·H·(I − ρ·y·sᵀ) + ρ·s·sᵀ (eq. 6.17 / 7.19). The two-loop
    // recursion (Alg. 7.4) must give p = −H·g. Pairs come from y = B·s with a fixed SPD `B`, so
    // sᵀy > 0; 4 pairs into a history of 3 also checks that the oldest one is dropped.
    let n = 5;
    let b: Vec<f64> = (0..n * n)
        .map(|k| {
            let (i, j) = (k / n, k % n);
            if i == j {
                3.0 + i as f64
            } else {
                0.3 / (1.0 + (i + j) as f64)
            }
        })
        .collect();
    let mut opt = Lbfgs::new(LbfgsConfig {
        history_size: 3,
        ..LbfgsConfig::default()
    })
    .unwrap();
    for k in 0..4 {
        let mut s: Vec<f32> = (0..n)
            .map(|i| ((i * 7 + k * 3) as f32 * 0.9).sin())
            .collect();
        let mut y: Vec<f32> = (0..n)
            .map(|i| (0..n).map(|j| b[i * n + j] * f64::from(s[j])).sum::<f64>() as f32)
            .collect();
        assert!(push_pair(&mut opt.state.history, 3, &mut s, &mut y));
    }
    assert_eq!(opt.state.history.len(), 3);

    let newest = opt.state.history.back().unwrap();
    let mut h: Vec<f64> = (0..n * n)
        .map(|k| if k / n == k % n { newest.gamma } else { 0.0 })
        .collect();
    for pair in &opt.state.history {
        let s: Vec<f64> = pair.s.iter().map(|&v| f64::from(v)).collect();
        let y: Vec<f64> = pair.y.iter().map(|&v| f64::from(v)).collect();
        let rho = 1.0 / s.iter().zip(&y).map(|(a, b)| a * b).sum::<f64>();
        let v: Vec<f64> = (0..n * n)
            .map(|k| f64::from(u8::from(k / n == k % n)) - rho * y[k / n] * s[k % n])
            .collect();
        let vt: Vec<f64> = (0..n * n).map(|k| v[(k % n) * n + k / n]).collect();
        h = matmul(&matmul(&vt, &h, n), &v, n);
        for k in 0..n * n {
            h[k] += rho * s[k / n] * s[k % n];
        }
    }
    let g = [0.5_f32, -1.0, 2.0, 0.25, -0.75];
    opt.direction(&g);
    for i in 0..n {
        let want: f64 = -(0..n).map(|j| h[i * n + j] * f64::from(g[j])).sum::<f64>();
        assert_relative_eq!(f64::from(opt.work.p[i]), want, max_relative = 1e-6);
    }
}

/// A sum of squares on image-like values, `f = Σ λ_i (x_i − t_i)²` with `λ` spread over two
/// decades and `x` 0–255, whose minimum value is 0 as the style-transfer cost's lower bound is.
struct ImageLike {
    target: Vec<f32>,
}

impl Objective for ImageLike {
    type Error = std::convert::Infallible;
    fn value_and_grad(&mut self, x: &[f32], g: &mut [f32]) -> Result<f64, Self::Error> {
        let mut f = 0.0;
        for (i, ((gi, &xi), &ti)) in g.iter_mut().zip(x).zip(&self.target).enumerate() {
            let lambda = 1e3 * (1.0 + (i % 100) as f64);
            let d = f64::from(xi) - f64::from(ti);
            f += lambda * d * d;
            *gi = (2.0 * lambda * d) as f32;
        }
        Ok(f)
    }
}

fn first_iteration_evaluations(first_step: FirstStep) -> u64 {
    let n = 3000;
    let mut x: Vec<f32> = (0..n).map(|i| ((i * 37) % 256) as f32).collect();
    let mut obj = ImageLike {
        target: (0..n).map(|i| ((i * 91 + 17) % 256) as f32).collect(),
    };
    let mut opt = Lbfgs::new(LbfgsConfig {
        first_step,
        ..LbfgsConfig::default()
    })
    .unwrap();
    opt.step(&mut x, &mut obj).unwrap().evaluations
}

#[test]
fn zero_target_first_step_needs_fewer_evaluations_than_unit_length() {
    let unit = first_iteration_evaluations(FirstStep::UnitLength);
    let zero = first_iteration_evaluations(FirstStep::ZeroTarget);
    // The unit step is ~1e-7 of the good one here: the search doubles it about 20 times.
    assert!(unit >= 10, "unit-length first step: {unit} evaluations");
    assert!(zero <= 4, "zero-target first step: {zero} evaluations");
}

#[test]
fn first_step_rules() {
    assert_eq!(FirstStep::UnitLength.alpha(50.0, 4.0), 0.25);
    assert_eq!(FirstStep::UnitLength.alpha(50.0, 0.5), 1.0);
    assert_eq!(FirstStep::ZeroTarget.alpha(50.0, 4.0), 2.0 * 50.0 / 16.0);
    // Not positive or not finite: the unit-length rule.
    assert_eq!(FirstStep::ZeroTarget.alpha(-3.0, 4.0), 0.25);
    assert_eq!(FirstStep::ZeroTarget.alpha(f64::INFINITY, 4.0), 0.25);
    assert_eq!(LbfgsConfig::default().first_step, FirstStep::ZeroTarget);
}

#[test]
fn a_config_saved_without_first_step_reads_back_as_unit_length() {
    let mut json = serde_json::to_value(LbfgsConfig::default()).unwrap();
    json.as_object_mut().unwrap().remove("first_step");
    let cfg: LbfgsConfig = serde_json::from_value(json).unwrap();
    assert_eq!(cfg.first_step, FirstStep::UnitLength);
    let back: LbfgsConfig =
        serde_json::from_value(serde_json::to_value(LbfgsConfig::default()).unwrap()).unwrap();
    assert_eq!(back, LbfgsConfig::default());
}
