//! Unit tests of the Jacobi eigen solver, spectral functions and Cholesky: hand values and identities.

use approx::assert_abs_diff_eq;
use ndarray::{Array1, Array2, array};

use super::*;

fn random_matrix(rows: usize, cols: usize, seed: u64) -> Array2<f64> {
    let v = crate::testing::uniform_vec(seed, rows * cols, -1.0, 1.0);
    Array2::from_shape_vec((rows, cols), v.into_iter().map(f64::from).collect()).unwrap()
}

/// Both solvers on `s`: Jacobi, then Householder + QL.
fn both(s: &Array2<f64>) -> [SymEigen; 2] {
    let n = s.nrows();
    [
        jacobi("test", symmetric_part(s.view()), n).unwrap(),
        tridiagonal_ql("test", symmetric_part(s.view()), n).unwrap(),
    ]
}

/// Checks, for both solvers, `V·diag(λ)·Vᵀ = sym(S)`, `VᵀV = I` and ascending eigenvalues, to
/// `tol` relative to ‖S‖, and that the two agree on the eigenvalues; returns Jacobi's result.
#[track_caller]
fn check_decomposition(s: &Array2<f64>, tol: f64) -> SymEigen {
    let n = s.nrows();
    let norm = s.iter().map(|x| x * x).sum::<f64>().sqrt().max(1.0);
    let mut sym = s.clone();
    symmetrize(&mut sym);
    let [jacobi, ql] = both(s);
    for eig in [&jacobi, &ql] {
        let back = spectral(eig, |l| l);
        assert_abs_diff_eq!(back, sym, epsilon = tol * norm);
        let gram = eig.vectors.t().dot(&eig.vectors);
        assert_abs_diff_eq!(gram, Array2::eye(n), epsilon = tol);
        assert!(eig.values.windows(2).into_iter().all(|w| w[0] <= w[1]));
    }
    assert_abs_diff_eq!(jacobi.values, ql.values, epsilon = tol * norm);
    jacobi
}

#[test]
fn hand_values_of_small_matrices() {
    // [[5, 4], [4, 5]]: eigenvalues 1 and 9, eigenvectors (1, −1)/√2 and (1, 1)/√2.
    let eig = check_decomposition(&array![[5.0, 4.0], [4.0, 5.0]], 1e-14);
    assert_abs_diff_eq!(eig.values, array![1.0, 9.0], epsilon = 1e-14);
    let h = std::f64::consts::FRAC_1_SQRT_2;
    assert_abs_diff_eq!(eig.vectors[[0, 1]].abs(), h, epsilon = 1e-14);
    assert_abs_diff_eq!(
        eig.vectors[[0, 0]] * eig.vectors[[1, 0]],
        -0.5,
        epsilon = 1e-14
    );
    // Diagonal input: no rotation at all, the values sorted.
    let eig = check_decomposition(
        &array![[3.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 2.0]],
        0.0,
    );
    assert_eq!(eig.values, array![-1.0, 2.0, 3.0]);
    // Its square root through `spectral`.
    let root = spectral(
        &sym_eigen("test", array![[5.0, 4.0], [4.0, 5.0]].view()).unwrap(),
        f64::sqrt,
    );
    assert_abs_diff_eq!(root, array![[2.0, 1.0], [1.0, 2.0]], epsilon = 1e-14);
}

#[test]
fn random_dense_rank_deficient_and_repeated_spectra() {
    for (n, seed) in [(1, 1), (2, 2), (3, 3), (7, 4), (40, 5)] {
        let b = random_matrix(n, n, seed);
        check_decomposition(&(&b + &b.t()), 1e-13);
    }
    // B·Bᵀ of rank 5 in 30 dimensions, and of rank 40 in 120: the rest are 0 to rounding.
    for (n, rank, seed) in [(30, 5, 6), (120, 40, 7)] {
        let b = random_matrix(n, rank, seed);
        let s = b.dot(&b.t());
        check_decomposition(&s, 1e-13);
        for eig in both(&s) {
            let zeros = n - rank;
            assert!(eig.values.iter().take(zeros).all(|l| l.abs() < 1e-12));
            assert!(eig.values.iter().skip(zeros).all(|&l| l > 1e-3));
        }
    }
    // A covariance-like spectrum decaying over ten orders of magnitude, in 64 dimensions.
    let q = both(&{
        let b = random_matrix(64, 64, 8);
        &b + &b.t()
    })[0]
        .vectors
        .clone();
    let spectrum = Array1::from_iter((0..64).map(|i| 10f64.powf(-10.0 * i as f64 / 63.0)));
    check_decomposition(&(&q * &spectrum).dot(&q.t()), 1e-13);
    // Repeated eigenvalues, and the empty and zero matrices.
    check_decomposition(&(Array2::eye(5) * 2.0), 1e-15);
    check_decomposition(&Array2::zeros((0, 0)), 0.0);
    check_decomposition(&Array2::zeros((4, 4)), 0.0);
}

#[test]
fn graded_matrix_keeps_its_tiny_eigenvalue_under_jacobi() {
    // Eigenvalues 1e-12 and about 1: Jacobi finds the small one to about its own relative accuracy
    // (QL only to about ε·‖S‖ absolute, enough for the W2 floor).
    let s = array![[1.0, 1e-7], [1e-7, 1e-12 + 1e-14]];
    check_decomposition(&s, 1e-15);
    let eig = jacobi("test", symmetric_part(s.view()), 2).unwrap();
    let det = s[[0, 0]] * s[[1, 1]] - s[[0, 1]] * s[[1, 0]];
    assert_abs_diff_eq!(eig.values[0] * eig.values[1], det, epsilon = 1e-26);
}

#[test]
fn asymmetric_input_uses_its_symmetric_part() {
    let eig = sym_eigen("test", array![[5.0, 3.0], [5.0, 5.0]].view()).unwrap();
    assert_abs_diff_eq!(eig.values, array![1.0, 9.0], epsilon = 1e-14);
}

#[test]
fn errors_for_bad_input() {
    let err = sym_eigen("op", Array2::<f64>::zeros((2, 3)).view()).unwrap_err();
    assert!(
        matches!(err, Error::ShapeMismatch { op: "op", .. }),
        "{err}"
    );
    let err = sym_eigen("op", array![[1.0, f64::NAN], [0.0, 1.0]].view()).unwrap_err();
    assert!(matches!(err, Error::NonFinite { op: "op", .. }), "{err}");
    let err = sym_eigen("op", array![[f64::INFINITY]].view()).unwrap_err();
    assert!(matches!(err, Error::NonFinite { .. }), "{err}");
}

#[test]
fn cholesky_and_triangular_inverse() {
    // [[4, 2, 0], [2, 2, 0], [0, 0, 9]] = L·Lᵀ with L = [[2, 0, 0], [1, 1, 0], [0, 0, 3]].
    let s = array![[4.0, 2.0, 0.0], [2.0, 2.0, 0.0], [0.0, 0.0, 9.0]];
    let l = cholesky(s.view()).unwrap();
    assert_eq!(l, array![[2.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 3.0]]);
    let inv = lower_triangular_inverse(&l);
    assert_abs_diff_eq!(l.dot(&inv), Array2::eye(3), epsilon = 1e-15);
    assert_abs_diff_eq!(inv[[0, 1]], 0.0);
    // Not positive definite: None, never a NaN factor.
    assert!(cholesky(array![[1.0, 2.0], [2.0, 1.0]].view()).is_none());
    assert!(cholesky(array![[0.0]].view()).is_none());
    assert!(cholesky(array![[f64::NAN]].view()).is_none());
}

#[test]
fn sym_eigen_uses_jacobi_up_to_its_order_and_ql_above() {
    for n in [JACOBI_MAX_ORDER, JACOBI_MAX_ORDER + 1, 100] {
        let b = random_matrix(n, n, 20 + n as u64);
        let s = &b + &b.t();
        let eig = sym_eigen("test", s.view()).unwrap();
        let [jacobi, ql] = both(&s);
        let want = if n <= JACOBI_MAX_ORDER { jacobi } else { ql };
        assert_eq!(eig.values, want.values);
        assert_eq!(eig.vectors, want.vectors);
    }
}
