//! Test oracles shared by the workspace's tests: a seeded RNG and a finite-difference gradient checker.
//!
//! This crate is only ever a `[dev-dependency]`. It holds "simple, slow, correct" code that the fast
//! paths are checked against.

pub mod reference;

use std::fmt;

use rand::{Rng, SeedableRng, rngs::SmallRng};

/// A seeded small RNG. Tests never use unseeded randomness.
pub fn rng(seed: u64) -> SmallRng {
    SmallRng::seed_from_u64(seed)
}

/// `n` values drawn uniformly from `[lo, hi)` with the given seed.
pub fn uniform_vec(seed: u64, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut r = rng(seed);
    (0..n).map(|_| r.random_range(lo..hi)).collect()
}

/// `n` distinct values `lo, lo + step, …` in a seeded random order. Use it for inputs of ops with
/// kinks (max pooling, ReLU), so that every window holds distinct values spaced by `step`.
pub fn shuffled_linspace(seed: u64, n: usize, lo: f32, step: f32) -> Vec<f32> {
    let mut v: Vec<f32> = (0..n).map(|i| lo + step * i as f32).collect();
    let mut r = rng(seed);
    // Fisher–Yates.
    for i in (1..n).rev() {
        let j = r.random_range(0..=i);
        v.swap(i, j);
    }
    v
}

/// Settings of [`check_grad`].
#[derive(Debug, Clone, Copy)]
pub struct GradCheck {
    /// Step of the central difference.
    pub h: f64,
    /// Absolute tolerance (`approx::relative_eq!`'s `epsilon`).
    pub epsilon: f64,
    /// Relative tolerance (`approx::relative_eq!`'s `max_relative`).
    pub max_relative: f64,
    /// At most this many coordinates are checked (a seeded random subset when the input is larger).
    pub max_coords: usize,
    /// Seed of the coordinate subset.
    pub seed: u64,
}

impl Default for GradCheck {
    /// `h = 1e-2`, `epsilon = 5e-3`, `max_relative = 1e-2`, 64 coordinates: the house settings for O(1) f32 inputs.
    fn default() -> Self {
        GradCheck {
            h: 1e-2,
            epsilon: 5e-3,
            max_relative: 1e-2,
            max_coords: 64,
            seed: 0x5eed,
        }
    }
}

/// The worst coordinate of a failed gradient check.
#[derive(Debug, Clone, PartialEq)]
pub struct GradMismatch {
    /// Flat index of the coordinate.
    pub index: usize,
    /// The analytic gradient there.
    pub analytic: f64,
    /// The central-difference estimate there.
    pub numeric: f64,
    /// How many of the checked coordinates failed.
    pub n_failed: usize,
    /// How many coordinates were checked.
    pub n_checked: usize,
}

impl fmt::Display for GradMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of {} coordinates differ; worst at index {}: analytic {:e}, numeric {:e}",
            self.n_failed, self.n_checked, self.index, self.analytic, self.numeric
        )
    }
}

/// Checks an analytic gradient against central differences.
///
/// `f` evaluates the scalar objective at a point (accumulate it in f64, e.g. `Σ R ⊙ op(x)` with a
/// fixed random `R`). `analytic` is the claimed gradient of `f` at `x`. Every coordinate is checked
/// when `x.len() <= cfg.max_coords`, else a seeded random subset of `cfg.max_coords` coordinates.
/// The comparison is `approx::relative_eq!(analytic, numeric, epsilon, max_relative)`.
///
/// # Errors
/// The worst failing coordinate (largest absolute difference), with the count of failures.
pub fn check_grad(
    x: &[f32],
    analytic: &[f32],
    mut f: impl FnMut(&[f32]) -> f64,
    cfg: GradCheck,
) -> Result<(), GradMismatch> {
    assert_eq!(
        x.len(),
        analytic.len(),
        "x and its gradient differ in length"
    );
    let coords: Vec<usize> = if x.len() <= cfg.max_coords {
        (0..x.len()).collect()
    } else {
        let mut r = rng(cfg.seed);
        let mut picked: Vec<usize> = Vec::with_capacity(cfg.max_coords);
        while picked.len() < cfg.max_coords {
            let i = r.random_range(0..x.len());
            if !picked.contains(&i) {
                picked.push(i);
            }
        }
        picked
    };
    let mut work = x.to_vec();
    let mut worst: Option<GradMismatch> = None;
    let mut worst_diff = -1.0_f64;
    let mut n_failed = 0;
    for &i in &coords {
        let orig = work[i];
        work[i] = (orig as f64 + cfg.h) as f32;
        let up_step = work[i] as f64 - orig as f64;
        let f_up = f(&work);
        work[i] = (orig as f64 - cfg.h) as f32;
        let down_step = orig as f64 - work[i] as f64;
        let f_down = f(&work);
        work[i] = orig;
        // Divide by the step actually taken in f32, not the nominal one.
        let numeric = (f_up - f_down) / (up_step + down_step);
        let a = analytic[i] as f64;
        if !approx::relative_eq!(
            a,
            numeric,
            epsilon = cfg.epsilon,
            max_relative = cfg.max_relative
        ) {
            n_failed += 1;
            let diff = (a - numeric).abs();
            if diff > worst_diff || diff.is_nan() {
                worst_diff = diff;
                worst = Some(GradMismatch {
                    index: i,
                    analytic: a,
                    numeric,
                    n_failed: 0,
                    n_checked: 0,
                });
            }
        }
    }
    match worst {
        None => Ok(()),
        Some(mut w) => {
            w.n_failed = n_failed;
            w.n_checked = coords.len();
            Err(w)
        }
    }
}

/// `Σ r[i]·y[i]` accumulated in f64: the random projection that turns an op's output into a scalar.
pub fn project(r: &[f32], y: &[f32]) -> f64 {
    assert_eq!(r.len(), y.len(), "projection and output differ in length");
    r.iter().zip(y).map(|(&a, &b)| a as f64 * b as f64).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_a_right_gradient_and_rejects_a_wrong_one() {
        // f(x) = Σ x_i³, f'(x) = 3 x_i².
        let x = uniform_vec(1, 10, -1.5, 1.5);
        let f = |v: &[f32]| v.iter().map(|&a| (a as f64).powi(3)).sum::<f64>();
        let good: Vec<f32> = x.iter().map(|a| 3.0 * a * a).collect();
        assert_eq!(check_grad(&x, &good, f, GradCheck::default()), Ok(()));
        let mut bad = good.clone();
        bad[7] += 0.5;
        let err = check_grad(&x, &bad, f, GradCheck::default()).unwrap_err();
        assert_eq!(err.index, 7);
        assert_eq!(err.n_failed, 1);
        assert_eq!(err.n_checked, 10);
    }

    #[test]
    fn samples_a_subset_of_large_inputs() {
        let x = uniform_vec(2, 1000, -1.0, 1.0);
        let f = |v: &[f32]| v.iter().map(|&a| a as f64 * 2.0).sum::<f64>();
        let mut calls = 0;
        let g = vec![2.0; 1000];
        check_grad(
            &x,
            &g,
            |v| {
                calls += 1;
                f(v)
            },
            GradCheck::default(),
        )
        .unwrap();
        assert_eq!(calls, 2 * 64);
    }

    #[test]
    fn shuffled_linspace_is_a_permutation() {
        let mut v = shuffled_linspace(3, 50, 0.0, 0.5);
        v.sort_by(f32::total_cmp);
        let want: Vec<f32> = (0..50).map(|i| i as f32 * 0.5).collect();
        assert_eq!(v, want);
    }
}
