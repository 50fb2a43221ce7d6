//! Test objectives with known minimizers, evaluated in f64 from the f32 point.

use std::convert::Infallible;

use nst_optim::Objective;

/// `f(x) = Σ dᵢ·(xᵢ − cᵢ)²` with `dᵢ = 1 + i` (condition number `n`), minimum 0 at `c`.
pub(crate) struct Quadratic {
    pub(crate) center: Vec<f64>,
}

impl Quadratic {
    pub(crate) fn new(n: usize) -> Self {
        Quadratic {
            center: (0..n).map(|i| (i as f64 * 0.7).sin() * 3.0).collect(),
        }
    }
}

impl Objective for Quadratic {
    type Error = Infallible;
    fn value_and_grad(&mut self, x: &[f32], grad: &mut [f32]) -> Result<f64, Infallible> {
        let mut f = 0.0;
        for (i, ((&xi, g), &c)) in x.iter().zip(grad.iter_mut()).zip(&self.center).enumerate() {
            let d = 1.0 + i as f64;
            let e = f64::from(xi) - c;
            f += d * e * e;
            *g = (2.0 * d * e) as f32;
        }
        Ok(f)
    }
}

/// The extended Rosenbrock function `Σᵢ 100·(xᵢ₊₁ − xᵢ²)² + (1 − xᵢ)²`, minimum 0 at `(1, …, 1)`.
pub(crate) struct Rosenbrock;

impl Objective for Rosenbrock {
    type Error = Infallible;
    fn value_and_grad(&mut self, x: &[f32], grad: &mut [f32]) -> Result<f64, Infallible> {
        let x: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        let mut g = vec![0.0_f64; x.len()];
        let mut f = 0.0;
        for i in 0..x.len().saturating_sub(1) {
            let a = x[i + 1] - x[i] * x[i];
            let b = 1.0 - x[i];
            f += 100.0 * a * a + b * b;
            g[i] += -400.0 * x[i] * a - 2.0 * b;
            g[i + 1] += 200.0 * a;
        }
        for (o, v) in grad.iter_mut().zip(g) {
            *o = v as f32;
        }
        Ok(f)
    }
}

/// The classic start `(−1.2, 1, −1.2, 1, …)`.
pub(crate) fn rosenbrock_start(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| if i % 2 == 0 { -1.2 } else { 1.0 })
        .collect()
}

/// Largest `|xᵢ − tᵢ|`.
pub(crate) fn max_error(x: &[f32], target: impl Fn(usize) -> f64) -> f64 {
    x.iter()
        .enumerate()
        .map(|(i, &v)| (f64::from(v) - target(i)).abs())
        .fold(0.0, f64::max)
}
