//! Small dense symmetric linear algebra in f64: a cyclic Jacobi eigen solver, spectral functions and Cholesky.

#[cfg(test)]
mod tests;

use ndarray::{Array1, Array2, ArrayView2};

use crate::{Error, Result, check_same_shape};

/// Eigen decomposition `S = V·diag(λ)·Vᵀ` of a symmetric matrix `S`.
#[derive(Debug, Clone)]
pub(crate) struct SymEigen {
    /// The eigenvalues `λ`, ascending.
    pub(crate) values: Array1<f64>,
    /// `V`: column `i` is the unit eigenvector of `values[i]`.
    pub(crate) vectors: Array2<f64>,
}

/// Sweeps after which [`sym_eigen`] gives up. Cyclic Jacobi converges quadratically; matrices of
/// a few hundred rows take about ten sweeps, so reaching this means the input is not what it seems.
const MAX_SWEEPS: usize = 64;

/// Eigen decomposition of the symmetric part `(S + Sᵀ)/2` of `s` by the cyclic Jacobi method
/// (Golub & Van Loan, *Matrix Computations*, 4th ed., Alg. 8.5.3), in f64.
///
/// A rotation is skipped (and its entry set to 0) when `|s_pq| ≤ ε·√|s_pp·s_qq|` with `ε` the f64
/// machine epsilon, which keeps the small eigenvalues of graded matrices accurate to about their
/// own size (Demmel & Veselić 1992), or when `|s_pq|` is below `10⁻³·ε·‖S‖_F/n`, far below any
/// rounding of the entries; the iteration stops after a sweep with no rotation.
///
/// # Errors
/// [`Error::ShapeMismatch`] when `s` is not square, [`Error::NonFinite`] when it holds a NaN or an
/// infinity, [`Error::NoConvergence`] after [`MAX_SWEEPS`] sweeps (not seen in practice).
pub(crate) fn sym_eigen(op: &'static str, s: ArrayView2<'_, f64>) -> Result<SymEigen> {
    let n = s.nrows();
    check_same_shape(op, "matrix", s.shape(), "a square matrix", &[n, n])?;
    if s.iter().any(|x| !x.is_finite()) {
        return Err(Error::NonFinite {
            op,
            what: "a matrix to decompose",
        });
    }
    // Row-major working copies: `a` holds the rotated matrix (both triangles kept equal), row `i`
    // of `vt` the current estimate of eigenvector `i`, so every rotation updates contiguous rows.
    let mut a: Vec<f64> = Array2::from_shape_fn((n, n), |(i, j)| 0.5 * s[[i, j]] + 0.5 * s[[j, i]])
        .into_raw_vec_and_offset()
        .0;
    let mut vt: Vec<f64> = Array2::eye(n).into_raw_vec_and_offset().0;
    let norm = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let floor = 1e-3 * f64::EPSILON * norm / n.max(1) as f64;
    let mut converged = false;
    for _ in 0..MAX_SWEEPS {
        let mut rotated = false;
        for p in 0..n {
            for q in p + 1..n {
                rotated |= rotate(&mut a, &mut vt, n, (p, q), floor);
            }
        }
        if !rotated {
            converged = true;
            break;
        }
    }
    if !converged {
        return Err(Error::NoConvergence {
            op,
            size: n,
            sweeps: MAX_SWEEPS,
        });
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| a[i * n + i].total_cmp(&a[j * n + j]));
    let values = Array1::from_iter(order.iter().map(|&i| a[i * n + i]));
    let vectors = Array2::from_shape_fn((n, n), |(row, col)| vt[order[col] * n + row]);
    Ok(SymEigen { values, vectors })
}

/// One Jacobi rotation in the plane `(p, q)` that zeroes `a[p][q]`; returns whether it rotated.
///
/// With `θ = (a_qq − a_pp)/(2·a_pq)`, `t = sign(θ)/(|θ| + √(θ² + 1))` (the smaller root, so the
/// rotation angle is at most π/4), `c = 1/√(t² + 1)`, `s = t·c`: rows and columns `p`, `q` become
/// `c·a_p − s·a_q` and `s·a_p + c·a_q`, `a_pp −= t·a_pq`, `a_qq += t·a_pq` (Golub & Van Loan, Alg. 8.5.1).
fn rotate(a: &mut [f64], vt: &mut [f64], n: usize, (p, q): (usize, usize), floor: f64) -> bool {
    let apq = a[p * n + q];
    let (app, aqq) = (a[p * n + p], a[q * n + q]);
    if apq.abs() <= f64::EPSILON * (app * aqq).abs().sqrt() || apq.abs() <= floor {
        a[p * n + q] = 0.0;
        a[q * n + p] = 0.0;
        return false;
    }
    let theta = (aqq - app) / (2.0 * apq);
    // For huge θ, θ² overflows; t → 1/(2θ) then.
    let t = if theta.abs() > 1e150 {
        0.5 / theta
    } else {
        theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt())
    };
    let c = 1.0 / (t * t + 1.0).sqrt();
    let s = t * c;
    let (row_p, row_q) = two_rows(a, n, p, q);
    for (x, y) in row_p.iter_mut().zip(row_q.iter_mut()) {
        let (xp, xq) = (*x, *y);
        *x = c * xp - s * xq;
        *y = s * xp + c * xq;
    }
    a[p * n + p] = app - t * apq;
    a[q * n + q] = aqq + t * apq;
    a[p * n + q] = 0.0;
    a[q * n + p] = 0.0;
    // Mirror the two updated rows into the two columns.
    for k in 0..n {
        if k != p && k != q {
            a[k * n + p] = a[p * n + k];
            a[k * n + q] = a[q * n + k];
        }
    }
    let (v_p, v_q) = two_rows(vt, n, p, q);
    for (x, y) in v_p.iter_mut().zip(v_q.iter_mut()) {
        let (xp, xq) = (*x, *y);
        *x = c * xp - s * xq;
        *y = s * xp + c * xq;
    }
    true
}

/// Rows `p < q` of a row-major `n`-column matrix, both mutable.
fn two_rows(m: &mut [f64], n: usize, p: usize, q: usize) -> (&mut [f64], &mut [f64]) {
    let (head, tail) = m.split_at_mut(q * n);
    (&mut head[p * n..(p + 1) * n], &mut tail[..n])
}

/// `V·diag(f(λ))·Vᵀ`: the spectral function `f` of the decomposed matrix.
pub(crate) fn spectral(eig: &SymEigen, f: impl Fn(f64) -> f64) -> Array2<f64> {
    let scaled = &eig.vectors * &eig.values.mapv(f);
    symmetric_product(&scaled, &eig.vectors)
}

/// `X·Yᵀ` for `X = V·D` and `Y = V` (so the product is symmetric in exact arithmetic), with the two
/// triangles made equal so callers get an exactly symmetric matrix.
pub(crate) fn symmetric_product(x: &Array2<f64>, y: &Array2<f64>) -> Array2<f64> {
    let mut out = x.dot(&y.t());
    symmetrize(&mut out);
    out
}

/// Replaces a square matrix by its symmetric part `(M + Mᵀ)/2`.
pub(crate) fn symmetrize(m: &mut Array2<f64>) {
    let n = m.nrows();
    for i in 0..n {
        for j in i + 1..n {
            let mean = 0.5 * m[[i, j]] + 0.5 * m[[j, i]];
            m[[i, j]] = mean;
            m[[j, i]] = mean;
        }
    }
}

/// Lower-triangular Cholesky factor `L` with `S = L·Lᵀ` (Golub & Van Loan, Alg. 4.2.1), or `None`
/// when a pivot is not positive (`S` not positive definite to working precision).
pub(crate) fn cholesky(s: ArrayView2<'_, f64>) -> Option<Array2<f64>> {
    let n = s.nrows();
    let mut l = Array2::<f64>::zeros((n, n));
    for j in 0..n {
        let pivot = s[[j, j]] - (0..j).map(|k| l[[j, k]] * l[[j, k]]).sum::<f64>();
        if pivot.is_nan() || pivot <= 0.0 {
            return None;
        }
        let d = pivot.sqrt();
        l[[j, j]] = d;
        for i in j + 1..n {
            let dot = (0..j).map(|k| l[[i, k]] * l[[j, k]]).sum::<f64>();
            l[[i, j]] = (s[[i, j]] - dot) / d;
        }
    }
    Some(l)
}

/// Inverse of a lower-triangular matrix with a non-zero diagonal, by forward substitution.
pub(crate) fn lower_triangular_inverse(l: &Array2<f64>) -> Array2<f64> {
    let n = l.nrows();
    let mut inv = Array2::<f64>::zeros((n, n));
    for col in 0..n {
        for i in col..n {
            let rhs = if i == col { 1.0 } else { 0.0 };
            let dot = (col..i).map(|k| l[[i, k]] * inv[[k, col]]).sum::<f64>();
            inv[[i, col]] = (rhs - dot) / l[[i, i]];
        }
    }
    inv
}
