//! Style costs on the per-channel mean and covariance of the features: mean–covariance and 2-Wasserstein (Gaussian fits).

#[cfg(test)]
mod tests;

use ndarray::linalg::general_mat_mul;
use ndarray::{
    Array1, Array2, Array3, ArrayView2, ArrayView3, ArrayViewMut2, ArrayViewMut3, Axis, Zip, s,
};

use crate::linalg::{spectral, sym_eigen, symmetric_product, symmetrize};
use crate::style::{as_matrix, matrix_buffer};
use crate::{Error, LossAndGrad, Result, StyleScratch, check_same_shape, with_contiguous_grad};

/// Per-channel mean `μ` and covariance `Σ` of a feature map over its positions, in f64:
///
/// ```text
/// A = features as [C, M], M = H·W
/// μ = A·1 / M                 Σ = (A − μ·1ᵀ)·(A − μ·1ᵀ)ᵀ / M
/// ```
///
/// `Σ` divides by `M` (the population covariance of the positions, not `M − 1`), so `Σ = G/M − μ·μᵀ`
/// with `G` the Gram matrix, and a single position is allowed. Neither depends on the image's size
/// for a stationary texture, so a style image of any size can be compared without rescaling.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureStats {
    /// `μ`, `[C]`.
    pub mean: Array1<f64>,
    /// `Σ`, `[C, C]`, symmetric positive semi-definite.
    pub cov: Array2<f64>,
}

impl FeatureStats {
    /// The mean and covariance of `features` `[C, H, W]`, both in f64: the covariance is the Gram
    /// of the features centered in f64, by f64 GEMMs over blocks of positions (centering first
    /// avoids the cancellation of `G/M − μ·μᵀ`; why f64: [`w2_loss`]).
    ///
    /// # Errors
    /// [`Error::EmptyInput`] when `H·W = 0`; [`Error::NonFinite`] for a NaN or infinite feature.
    ///
    /// # Examples
    /// ```
    /// use approx::assert_abs_diff_eq;
    /// use ndarray::array;
    /// use nst_costs::FeatureStats;
    /// // Two channels at four positions.
    /// let f = array![[[1.0_f32, 3.0], [1.0, 3.0]], [[0.0, 0.0], [2.0, 2.0]]];
    /// let s = FeatureStats::from_features(f.view())?;
    /// assert_abs_diff_eq!(s.mean, array![2.0, 1.0]);
    /// assert_abs_diff_eq!(s.cov, array![[1.0, 0.0], [0.0, 1.0]]);
    /// # Ok::<(), nst_costs::Error>(())
    /// ```
    pub fn from_features(features: ArrayView3<'_, f32>) -> Result<Self> {
        let features = features.as_standard_layout();
        moments(
            "FeatureStats::from_features",
            as_matrix(features.view()),
            &mut Vec::new(),
        )
    }

    /// The number of channels `C`.
    pub fn n_channels(&self) -> usize {
        self.mean.len()
    }

    /// Checks that `mean` is `[C]` and `cov` `[C, C]`, both finite.
    fn check(&self, op: &'static str) -> Result<()> {
        let c = self.n_channels();
        check_same_shape(
            op,
            "target cov",
            self.cov.shape(),
            "[C, C] of the mean",
            &[c, c],
        )?;
        if self.mean.iter().chain(&self.cov).any(|x| !x.is_finite()) {
            return Err(Error::NonFinite {
                op,
                what: "the target statistics",
            });
        }
        Ok(())
    }
}

/// Mean–covariance style cost of the generated features against a target's statistics, with its
/// gradient:
///
/// ```text
/// J = ‖μ_G − μ_S‖² / C  +  ‖Σ_G − Σ_S‖²_F / C²
/// ∂J/∂A = (2/M)·Γ·(A − μ_G·1ᵀ) + (1/M)·g·1ᵀ,   g = 2(μ_G − μ_S)/C,   Γ = 2·sym(Σ_G − Σ_S)/C²
/// ```
///
/// with `μ`, `Σ` as in [`FeatureStats`]. Each term is the mean of its squared entries, as in the
/// batch-normalization statistics loss of Li et al. 2017 ("Demystifying Neural Style Transfer",
/// which averages over the `C` channels); the covariance term is
/// [`StyleNorm::Johnson2016`](crate::StyleNorm::Johnson2016)'s Gram cost of the centered features.
/// `sym(D) = (D + Dᵀ)/2` keeps the gradient exact for a target `Σ_S` that is not exactly symmetric.
/// The gradient is derived in the repository's gradient notes (mean–covariance section).
///
/// # Errors
/// [`Error::ShapeMismatch`] when the target is not `[C]`/`[C, C]`; [`Error::NonFinite`] for a NaN or
/// infinite feature or target; [`Error::EmptyInput`] when `H·W = 0`.
///
/// # Examples
/// ```
/// use approx::assert_abs_diff_eq;
/// use ndarray::array;
/// use nst_costs::{FeatureStats, mean_cov_loss};
///
/// let f = array![[[1.0_f32, 3.0]]]; // C = 1: μ = 2, Σ = 1
/// let target = FeatureStats { mean: array![0.0], cov: array![[3.0]] };
/// let cost = mean_cov_loss(f.view(), &target)?;
/// assert_abs_diff_eq!(cost.value, 4.0 + 4.0); // (2 − 0)² + (1 − 3)²
/// // ∂J/∂a = (2/2)·(−4)·(a − 2) + (1/2)·4 = [6, −2]
/// assert_abs_diff_eq!(cost.grad, array![[[6.0, -2.0]]], epsilon = 1e-6);
/// # Ok::<(), nst_costs::Error>(())
/// ```
pub fn mean_cov_loss(generated: ArrayView3<'_, f32>, target: &FeatureStats) -> Result<LossAndGrad> {
    let mut grad = Array3::zeros(generated.raw_dim());
    let mut scratch = StyleScratch::new();
    let value = mean_cov_loss_accumulate(generated, target, &mut scratch, grad.view_mut())?;
    Ok(LossAndGrad { value, grad })
}

/// [`mean_cov_loss`] that **adds** `∂J/∂a_G` into `grad` and returns `J`.
///
/// # Errors
/// As [`mean_cov_loss`]; [`Error::ShapeMismatch`] when `grad` is not the shape of `generated`.
pub fn mean_cov_loss_accumulate(
    generated: ArrayView3<'_, f32>,
    target: &FeatureStats,
    scratch: &mut StyleScratch,
    grad: ArrayViewMut3<'_, f32>,
) -> Result<f64> {
    const OP: &str = "mean_cov_loss";
    check_target_and_grad(OP, generated, target, grad.shape())?;
    let features = generated.as_standard_layout();
    let a = as_matrix(features.view());
    let stats = moments(OP, a, &mut scratch.blocks[0])?;
    if stats.n_channels() == 0 {
        return Ok(0.0);
    }
    let c = stats.n_channels() as f64;
    let d_mean = &stats.mean - &target.mean;
    let mut d_cov = &stats.cov - &target.cov;
    let value = d_mean.dot(&d_mean) / c + d_cov.iter().map(|x| x * x).sum::<f64>() / (c * c);
    symmetrize(&mut d_cov);
    let g_mean = d_mean * (2.0 / c);
    let g_cov = d_cov * (2.0 / (c * c));
    moments_backward(a, &stats.mean, (&g_mean, &g_cov), &mut scratch.blocks, grad);
    Ok(value)
}

/// The part of the 2-Wasserstein cost that depends only on the style: `μ_S`, `Σ_S`, `Σ_S^{1/2}`,
/// `tr Σ_S` and the eigenvalue floor. Build it once per style image and layer.
#[derive(Debug, Clone)]
pub struct W2Target {
    stats: FeatureStats,
    sqrt_cov: Array2<f64>,
    trace_cov: f64,
    floor: f64,
}

impl W2Target {
    /// Relative eigenvalue floor: `ε = FLOOR_RELATIVE·(tr Σ_S / C)²`, or `FLOOR_RELATIVE` itself when
    /// `tr Σ_S = 0` (see [`w2_loss`]).
    pub const FLOOR_RELATIVE: f64 = 1e-8;

    /// The target for style statistics `stats`. `Σ_S^{1/2} = U·max(Λ, 0)^{1/2}·Uᵀ` from the
    /// symmetric eigen decomposition `sym(Σ_S) = U·Λ·Uᵀ` (in f64), with the rounding-level
    /// negative eigenvalues of a singular covariance clamped to 0.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when `cov` is not `[C, C]`; [`Error::NonFinite`] for a NaN or infinity.
    ///
    /// # Examples
    /// ```
    /// use approx::assert_abs_diff_eq;
    /// use ndarray::array;
    /// use nst_costs::{FeatureStats, W2Target};
    /// // [[5, 4], [4, 5]] has eigenvalues 9 and 1, so its square root is [[2, 1], [1, 2]].
    /// let t = W2Target::new(FeatureStats { mean: array![0.0, 0.0], cov: array![[5.0, 4.0], [4.0, 5.0]] })?;
    /// assert_abs_diff_eq!(t.sqrt_cov(), array![[2.0, 1.0], [1.0, 2.0]], epsilon = 1e-12);
    /// # Ok::<(), nst_costs::Error>(())
    /// ```
    pub fn new(stats: FeatureStats) -> Result<Self> {
        const OP: &str = "W2Target::new";
        stats.check(OP)?;
        let eig = sym_eigen(OP, stats.cov.view())?;
        let sqrt_cov = spectral(&eig, |l| l.max(0.0).sqrt());
        let trace_cov = stats.cov.diag().sum();
        let c = stats.n_channels().max(1) as f64;
        let scale = (trace_cov / c).powi(2);
        let floor = if scale > 0.0 {
            Self::FLOOR_RELATIVE * scale
        } else {
            Self::FLOOR_RELATIVE
        };
        Ok(W2Target {
            stats,
            sqrt_cov,
            trace_cov,
            floor,
        })
    }

    /// [`W2Target::new`] of [`FeatureStats::from_features`].
    ///
    /// # Errors
    /// As those two.
    pub fn from_features(features: ArrayView3<'_, f32>) -> Result<Self> {
        Self::new(FeatureStats::from_features(features)?)
    }

    /// The style statistics `μ_S`, `Σ_S`.
    pub fn stats(&self) -> &FeatureStats {
        &self.stats
    }

    /// `Σ_S^{1/2}`, symmetric.
    pub fn sqrt_cov(&self) -> ArrayView2<'_, f64> {
        self.sqrt_cov.view()
    }

    /// The eigenvalue floor `ε` of [`w2_loss`].
    pub fn floor(&self) -> f64 {
        self.floor
    }
}

/// Squared 2-Wasserstein distance between Gaussian fits of the generated and the style features,
/// per channel, with its gradient:
///
/// ```text
/// W₂² = ‖μ_G − μ_S‖² + tr Σ_G + tr Σ_S − 2·tr (R·Σ_G·R)^{1/2},   R = Σ_S^{1/2}
/// J = W₂² / C
/// ∂J/∂A = (2/M)·Γ·(A − μ_G·1ᵀ) + (1/M)·g·1ᵀ,   g = 2(μ_G − μ_S)/C,   Γ = (I − R·(R·Σ_G·R)^{-1/2}·R)/C
/// ```
///
/// (Dowson & Landau 1982; Givens & Shortt 1984), with `μ`, `Σ` as in [`FeatureStats`]. Dividing by
/// `C` puts layers of 64 and 512 channels on one scale; for uncorrelated channels `J` is the mean
/// over channels of `(μ_G − μ_S)² + (σ_G − σ_S)²`, the statistics loss of Li et al. 2017.
///
/// **Eigenvalue floor.** `tr X^{1/2}` and `X^{-1/2}` for `X = R·Σ_G·R` come from its eigen
/// decomposition `V·Λ·Vᵀ` in f64 (cyclic Jacobi up to 32 channels, Householder tridiagonalization
/// and implicit QL above), with the square root applied to each eigenvalue as the C¹ function
///
/// ```text
/// φ(λ) = √λ                    for λ ≥ ε
/// φ(λ) = √ε·(3t − t²)/2        for λ < ε, t = λ/ε   (meets √λ at ε with the same slope; φ(0) = 0)
/// ```
///
/// so that `X^{-1/2}` becomes `V·diag(2φ'(λ))·Vᵀ`, whose eigenvalues are `1/√λ` above the floor and
/// at most `3/√ε` below it, where `1/√λ` would blow up. The floor is
/// `ε = 10⁻⁸·(tr Σ_S / C)²` ([`W2Target::floor`]): `X` scales as `Σ²`, so the eigenvalues affected
/// are those of covariances below about `10⁻⁴` of their mean. The gradient is the exact gradient of
/// the value returned; the value
/// differs from the true `W₂²/C` only where `X` has eigenvalues strictly between 0 and `ε` (singular
/// or near-singular covariances: fewer positions than channels, dead channels), by less than
/// `0.2·√ε` each. Rounding may leave `J` a little below 0 near the target.
///
/// Cost per call: two f64 products of `2·C²·M` flops (the covariance and the gradient, through
/// `ndarray`, single-threaded), three f64 `C × C` products and the eigen decomposition of a
/// `C × C` matrix, which dominates at VGG-19's deep layers: measured on the 2-core development
/// machine at 400×300, 0.1–0.15 s per call at `conv1_1` to `conv3_1` and 0.35–0.45 s at `conv4_1`
/// and `conv5_1` (512 channels), against 0.02–0.15 s for the Gram cost.
///
/// # Errors
/// As [`mean_cov_loss`]; [`Error::NoConvergence`] if the eigen solver fails (not seen in practice).
///
/// # Examples
/// ```
/// use approx::assert_abs_diff_eq;
/// use ndarray::array;
/// use nst_costs::{W2Target, w2_loss};
///
/// let style = array![[[1.0_f32, -1.0, 1.0, -1.0]]]; // μ_S = 0, σ_S = 1
/// let target = W2Target::from_features(style.view())?;
/// let f = array![[[4.0_f32, 0.0, 4.0, 0.0]]]; // μ_G = 2, σ_G = 2
/// let cost = w2_loss(f.view(), &target)?;
/// assert_abs_diff_eq!(cost.value, 4.0 + 1.0, epsilon = 1e-12); // (2 − 0)² + (2 − 1)²
/// # Ok::<(), nst_costs::Error>(())
/// ```
pub fn w2_loss(generated: ArrayView3<'_, f32>, target: &W2Target) -> Result<LossAndGrad> {
    let mut grad = Array3::zeros(generated.raw_dim());
    let mut scratch = StyleScratch::new();
    let value = w2_loss_accumulate(generated, target, &mut scratch, grad.view_mut())?;
    Ok(LossAndGrad { value, grad })
}

/// [`w2_loss`] that **adds** `∂J/∂a_G` into `grad` and returns `J`.
///
/// # Errors
/// As [`w2_loss`]; [`Error::ShapeMismatch`] when `grad` is not the shape of `generated`.
pub fn w2_loss_accumulate(
    generated: ArrayView3<'_, f32>,
    target: &W2Target,
    scratch: &mut StyleScratch,
    grad: ArrayViewMut3<'_, f32>,
) -> Result<f64> {
    const OP: &str = "w2_loss";
    check_target_and_grad(OP, generated, &target.stats, grad.shape())?;
    let features = generated.as_standard_layout();
    let a = as_matrix(features.view());
    let stats = moments(OP, a, &mut scratch.blocks[0])?;
    if stats.n_channels() == 0 {
        return Ok(0.0);
    }
    let c = stats.n_channels() as f64;
    let r = &target.sqrt_cov;
    let x = symmetric_product(&r.dot(&stats.cov), r);
    let eig = sym_eigen(OP, x.view())?;
    let floor = target.floor;
    let trace_root: f64 = eig.values.iter().map(|&l| floored_sqrt(l, floor)).sum();
    let d_mean = &stats.mean - &target.stats.mean;
    let w2 = d_mean.dot(&d_mean) + stats.cov.diag().sum() + target.trace_cov - 2.0 * trace_root;
    // Γ = (I − R·V·diag(2φ'(λ))·Vᵀ·R)/C, with R·V computed once.
    let rv = r.dot(&eig.vectors);
    let scaled = &rv * &eig.values.mapv(|l| 2.0 * floored_sqrt_derivative(l, floor));
    let mut g_cov = symmetric_product(&scaled, &rv).mapv(|v| -v / c);
    g_cov.diag_mut().mapv_inplace(|v| v + 1.0 / c);
    let g_mean = d_mean * (2.0 / c);
    moments_backward(a, &stats.mean, (&g_mean, &g_cov), &mut scratch.blocks, grad);
    Ok(w2 / c)
}

/// `φ(λ)`: `√λ` for `λ ≥ ε`; below, `√ε·(3t − t²)/2` with `t = λ/ε`, the quadratic through 0 that
/// meets `√λ` at `ε` with the same slope, so `φ` is C¹ and `φ(0) = 0`.
fn floored_sqrt(lambda: f64, eps: f64) -> f64 {
    if lambda >= eps {
        lambda.sqrt()
    } else {
        let t = lambda / eps;
        0.5 * eps.sqrt() * (3.0 * t - t * t)
    }
}

/// `φ'(λ)`: `1/(2√λ)` for `λ ≥ ε`; below, `(3 − 2λ/ε)/(2√ε)`, at most `3/(2√ε)` on `[0, ε]`.
fn floored_sqrt_derivative(lambda: f64, eps: f64) -> f64 {
    if lambda >= eps {
        0.5 / lambda.sqrt()
    } else {
        (3.0 - 2.0 * lambda / eps) / (2.0 * eps.sqrt())
    }
}

/// Checks a target's statistics against the generated features and the gradient's shape.
fn check_target_and_grad(
    op: &'static str,
    generated: ArrayView3<'_, f32>,
    target: &FeatureStats,
    grad_shape: &[usize],
) -> Result<()> {
    let c = generated.shape()[0];
    check_same_shape(
        op,
        "target mean",
        target.mean.shape(),
        "[C] of generated",
        &[c],
    )?;
    target.check(op)?;
    check_same_shape(op, "generated", generated.shape(), "grad", grad_shape)
}

/// `μ` and `Σ` of the `[C, M]` features `a`, in f64, with `block` as scratch.
fn moments(op: &'static str, a: ArrayView2<'_, f32>, block: &mut Vec<f64>) -> Result<FeatureStats> {
    let m = a.ncols();
    if m == 0 {
        return Err(Error::EmptyInput {
            op,
            what: "the feature map (no positions)",
        });
    }
    if a.iter().any(|x| !x.is_finite()) {
        return Err(Error::NonFinite {
            op,
            what: "the features",
        });
    }
    let mean = a.map_axis(Axis(1), |row| {
        row.iter().map(|&x| f64::from(x)).sum::<f64>() / m as f64
    });
    let mut cov = Array2::<f64>::zeros((a.nrows(), a.nrows()));
    for j0 in (0..m).step_by(BLOCK) {
        let b = centered_block(a, &mean, j0, block);
        general_mat_mul(1.0, &b, &b.t(), 1.0, &mut cov);
    }
    symmetrize(&mut cov);
    cov /= m as f64;
    Ok(FeatureStats { mean, cov })
}

/// Positions per f64 block of [`moments`] and [`moments_backward`].
const BLOCK: usize = 512;

/// The centered features `a[:, j0..j0 + BLOCK] − μ` in f64, in the front of `buf`.
///
/// The moment costs work in f64 from here on. The W2 cost needs it: its gradient holds
/// `(R·Σ_G·R)^{-1/2}`, whose eigenvalues reach `3/√ε` in the null space of a singular `Σ_G`, where
/// they cancel against the features' own zero components in exact arithmetic; f32 products would
/// leave rounding of about `10⁻⁷` on both sides of that cancellation, and errors of 1 % in the
/// gradient (seen in `fd_w2_loss_rank_deficient_features_along_their_span`).
fn centered_block<'b>(
    a: ArrayView2<'_, f32>,
    mean: &Array1<f64>,
    j0: usize,
    buf: &'b mut Vec<f64>,
) -> ArrayViewMut2<'b, f64> {
    let (c, m) = a.dim();
    let j1 = (j0 + BLOCK).min(m);
    let mut b = matrix_buffer(buf, c, j1 - j0);
    Zip::from(b.rows_mut())
        .and(a.slice(s![.., j0..j1]).rows())
        .and(mean)
        .for_each(|mut out, row, &mu| {
            out.zip_mut_with(&row, |o, &x| *o = f64::from(x) - mu);
        });
    b
}

/// Adds `∂L/∂A = (2/M)·Γ·(A − μ·1ᵀ) + (1/M)·g·1ᵀ` into `grad`, for `g = ∂L/∂μ` and a symmetric
/// `Γ = ∂L/∂Σ`, by f64 GEMMs over blocks of positions, rounded to f32 once.
fn moments_backward(
    a: ArrayView2<'_, f32>,
    mean: &Array1<f64>,
    (g_mean, g_cov): (&Array1<f64>, &Array2<f64>),
    [block, product]: &mut [Vec<f64>; 2],
    grad: ArrayViewMut3<'_, f32>,
) {
    let (c, m) = a.dim();
    let gamma = g_cov * (2.0 / m as f64);
    let shift = g_mean / m as f64;
    with_contiguous_grad(grad, |out| {
        let mut out = ArrayViewMut2::from_shape((c, m), out).expect("grad is [C, H, W]");
        for j0 in (0..m).step_by(BLOCK) {
            let b = centered_block(a, mean, j0, block);
            let cols = b.ncols();
            let mut r = matrix_buffer(product, c, cols);
            r.fill(0.0);
            general_mat_mul(1.0, &gamma, &b, 0.0, &mut r);
            Zip::from(out.slice_mut(s![.., j0..j0 + cols]).rows_mut())
                .and(r.rows())
                .and(&shift)
                .for_each(|mut o, r, &g| o.zip_mut_with(&r, |o, &r| *o += (r + g) as f32));
        }
    });
}
