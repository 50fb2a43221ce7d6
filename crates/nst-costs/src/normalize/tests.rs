//! Unit tests of gradient normalization: hand values, the zero gradient, layouts, the role of ε.

use approx::assert_abs_diff_eq;
use ndarray::{Array3, array};

use super::*;

#[test]
fn scales_to_unit_l1_norm_and_returns_the_norm_it_had() {
    let mut g = array![[[0.5_f32, -1.5]], [[2.0, 0.0]]];
    let l1 = normalize_gradient(g.view_mut());
    assert_eq!(l1, 4.0);
    assert_abs_diff_eq!(g, array![[[0.125, -0.375]], [[0.5, 0.0]]], epsilon = 1e-7);
    let after: f64 = g.iter().map(|&x| f64::from(x).abs()).sum();
    assert_abs_diff_eq!(after, 1.0, epsilon = 1e-7);
    // Scaling the input does not change the result: only its direction is kept.
    let mut big = array![[[0.5_f32, -1.5]], [[2.0, 0.0]]] * 1e6;
    assert_eq!(normalize_gradient(big.view_mut()), 4e6);
    assert_abs_diff_eq!(big, g, epsilon = 1e-7);
}

#[test]
fn zero_gradient_stays_zero_and_eps_matters_only_near_it() {
    let mut z = Array3::<f32>::zeros((2, 3, 4));
    assert_eq!(normalize_gradient(z.view_mut()), 0.0);
    assert!(z.iter().all(|&x| x == 0.0));
    // ‖g‖₁ = ε: the result has L1 norm ½.
    let mut tiny = Array3::<f32>::from_elem((1, 1, 4), (NORMALIZE_GRADIENT_EPS / 4.0) as f32);
    normalize_gradient(tiny.view_mut());
    let l1: f64 = tiny.iter().map(|&x| f64::from(x)).sum();
    assert_abs_diff_eq!(l1, 0.5, epsilon = 1e-6);
}

#[test]
fn non_standard_layout() {
    let g = Array3::from_shape_fn((2, 3, 4), |(c, i, j)| (c as f32 - 0.5) * (i * 4 + j) as f32);
    let mut want = g.clone();
    let l1 = normalize_gradient(want.view_mut());
    let mut stored_t = g.view().permuted_axes([2, 1, 0]).to_owned();
    assert_eq!(
        normalize_gradient(stored_t.view_mut().permuted_axes([2, 1, 0])),
        l1
    );
    assert_abs_diff_eq!(
        stored_t.view().permuted_axes([2, 1, 0]),
        want,
        epsilon = 1e-7
    );
}
