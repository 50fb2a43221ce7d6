//! Gram matrices and the per-layer style cost (Gatys et al. 2016, eq. 3–5), by GEMM.

#[cfg(test)]
mod tests;

use ndarray::{Array2, Array3, ArrayView2, ArrayView3, ArrayViewMut2, ArrayViewMut3, Axis, Ix2, s};
use rayon::prelude::*;
use tensor_ops::Gemm;

use crate::{Error, LossAndGrad, Result, check_same_shape};

/// Normalization of the per-layer style cost `J_s = k·Σ_{c,c'}(G_G − G_S)²[c,c']`, where `G = A·Aᵀ`
/// is the **unnormalized** Gram matrix of the `[C, H·W]` feature matrix `A` (`M = H·W` positions).
///
/// Every variant is the same cost up to the constant `k`; the gradient is `∂J_s/∂A = 4k·(G_G − G_S)·A`
/// ([derivation](crate#gradients)). `k` uses the generated map's `C` and `M`; for a style image of another size
/// see [`rescale_gram`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StyleNorm {
    /// `k = 1/(4·C²·M²)`: Gatys, Ecker & Bethge 2016, eq. 4 (`E_l = 1/(4·N_l²·M_l²)·Σ(G − A)²`),
    /// which the Coursera Deep Learning Specialization's neural style transfer assignment also uses
    /// (`compute_layer_style_cost`). The default.
    #[default]
    Gatys2016,
    /// `k = 1/(C·M)²`: Johnson, Alahi & Fei-Fei 2016, §3.2 (Gram divided by `C·H·W`, then the
    /// squared Frobenius distance). Its scale varies less across layers, so one weight fits all.
    Johnson2016,
    /// `k = 1/((C·M)²·C²)`: the PyTorch "Neural Transfer Using PyTorch" tutorial (`gram_matrix`
    /// divides by the number of elements `C·H·W`, then `F.mse_loss` averages over the `C²` entries).
    TorchTutorial,
}

impl StyleNorm {
    /// The former name of [`StyleNorm::Gatys2016`].
    #[deprecated(since = "0.1.0", note = "renamed to `StyleNorm::Gatys2016`")]
    #[allow(
        non_upper_case_globals,
        reason = "the former variant's name, kept as an alias"
    )]
    pub const Seed: StyleNorm = StyleNorm::Gatys2016;

    /// The factor `k` in `J_s = k·Σ(G_G − G_S)²` for `n_channels = C` and `n_positions = M = H·W`.
    ///
    /// An empty map (`C·M == 0`) has `k = 0`, so its cost is 0.
    ///
    /// # Examples
    /// ```
    /// use approx::assert_relative_eq;
    /// use nst_costs::StyleNorm;
    /// // C = 2, M = 3.
    /// assert_relative_eq!(StyleNorm::Gatys2016.coefficient(2, 3), 1.0 / (4.0 * 4.0 * 9.0));
    /// assert_relative_eq!(StyleNorm::Johnson2016.coefficient(2, 3), 1.0 / 36.0);
    /// assert_relative_eq!(StyleNorm::TorchTutorial.coefficient(2, 3), 1.0 / (36.0 * 4.0));
    /// ```
    pub fn coefficient(self, n_channels: usize, n_positions: usize) -> f64 {
        if n_channels == 0 || n_positions == 0 {
            return 0.0;
        }
        let c = n_channels as f64;
        let m = n_positions as f64;
        match self {
            StyleNorm::Gatys2016 => 1.0 / (4.0 * c * c * m * m),
            StyleNorm::Johnson2016 => 1.0 / (c * m * c * m),
            StyleNorm::TorchTutorial => 1.0 / (c * m * c * m * c * c),
        }
    }
}

/// Reusable buffers of [`style_layer_loss_accumulate`] and the other `*_accumulate` style costs
/// ([`guided_style_loss_accumulate`](crate::guided_style_loss_accumulate),
/// [`mean_cov_loss_accumulate`](crate::mean_cov_loss_accumulate),
/// [`w2_loss_accumulate`](crate::w2_loss_accumulate)), so the hot path allocates only when the
/// shape changes.
#[derive(Debug, Clone, Default)]
pub struct StyleScratch {
    /// `[C, C]`: the Gram, then `G − S` (or a covariance, then its gradient).
    pub(crate) gram: Array2<f32>,
    /// At least `C·H·W` values: the masked features `[C, H·W]` of the guided cost. A `Vec` that only
    /// grows, so alternating between layers of different sizes does not reallocate.
    pub(crate) features: Vec<f32>,
    /// f64 blocks of centered features and of products, for the moment-based costs.
    pub(crate) blocks: [Vec<f64>; 2],
}

impl StyleScratch {
    /// Empty scratch; the buffers grow on first use.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Gram matrix `G = A·Aᵀ` of a feature map, with `A` = `features` reshaped to `[C, H·W]`
/// (Gatys et al. 2016, eq. 3: `G_ij = Σ_k F_ik·F_jk`). No normalization is applied.
///
/// Computed by GEMMs on `gemm` over the blocks on and above the diagonal only (blocks of
/// 128 rows; for `C = 512` that is 10 of 16 blocks), then mirrored, so the result is
/// exactly symmetric whatever the backend. Features whose rows are not contiguous within each
/// channel are copied first (a band of rows of a standard-layout tensor is read in place).
///
/// # Examples
/// ```
/// use approx::assert_abs_diff_eq;
/// use ndarray::array;
/// let f = array![[[1.0_f32, 2.0]], [[3.0, 4.0]]]; // C = 2, H = 1, W = 2
/// let g = nst_costs::gram(f.view(), &tensor_ops::CpuGemm);
/// assert_abs_diff_eq!(g, array![[5.0, 11.0], [11.0, 25.0]], epsilon = 1e-6);
/// ```
pub fn gram(features: ArrayView3<'_, f32>, gemm: &dyn Gemm) -> Array2<f32> {
    let n_channels = features.shape()[0];
    let mut out = Array2::zeros((n_channels, n_channels));
    gram_into(features, gemm, out.view_mut())
        .expect("the output was allocated with the right shape");
    out
}

/// [`gram`] into a caller-provided `[C, C]` buffer (overwritten).
///
/// # Errors
/// [`Error::ShapeMismatch`] when `out` is not `[C, C]`.
///
/// # Examples
/// ```
/// use approx::assert_abs_diff_eq;
/// use ndarray::{Array2, array};
/// let f = array![[[1.0_f32, 0.0, 2.0]]]; // C = 1, H = 1, W = 3
/// let mut g = Array2::from_elem((1, 1), f32::NAN);
/// nst_costs::gram_into(f.view(), &tensor_ops::CpuGemm, g.view_mut())?;
/// assert_abs_diff_eq!(g[[0, 0]], 5.0);
/// # Ok::<(), nst_costs::Error>(())
/// ```
pub fn gram_into(
    features: ArrayView3<'_, f32>,
    gemm: &dyn Gemm,
    out: ArrayViewMut2<'_, f32>,
) -> Result<()> {
    let n_channels = features.shape()[0];
    check_same_shape(
        "gram",
        "gram output",
        out.shape(),
        "[C, C] of features",
        &[n_channels, n_channels],
    )?;
    // A band of rows of a standard-layout tensor (contiguous rows in each channel) is a strided
    // matrix already: merged in place, no copy. Anything else is copied once.
    let mut merged = features;
    let rows = merged.dim().1;
    if !merged.is_empty() && (rows == 1 || merged.merge_axes(Axis(1), Axis(2))) {
        gram_upper_mirrored(merged.index_axis_move(Axis(1), 0), gemm, out);
    } else {
        let features = features.as_standard_layout();
        gram_upper_mirrored(as_matrix(features.view()), gemm, out);
    }
    Ok(())
}

/// A `[rows, cols]` view of the front of `buffer`, grown (never shrunk) to fit; its contents are
/// stale, so callers overwrite it.
pub(crate) fn matrix_buffer<T: Clone + Default>(
    buffer: &mut Vec<T>,
    rows: usize,
    cols: usize,
) -> ArrayViewMut2<'_, T> {
    let len = rows * cols;
    if buffer.len() < len {
        buffer.resize(len, T::default());
    }
    ArrayViewMut2::from_shape((rows, cols), &mut buffer[..len]).expect("the length is rows·cols")
}

/// Row-block size of the Gram's block-triangular GEMMs.
pub(crate) const GRAM_BLOCK: usize = 128;

/// `out ← A·Aᵀ`: GEMMs on the blocks `(i, j)` with `i ≤ j`, then the upper triangle copied down.
pub(crate) fn gram_upper_mirrored(
    a: ArrayView2<'_, f32>,
    gemm: &dyn Gemm,
    mut out: ArrayViewMut2<'_, f32>,
) {
    let n = a.nrows();
    // Zero first so the result never depends on the backend's handling of β = 0 on stale contents.
    out.fill(0.0);
    for i0 in (0..n).step_by(GRAM_BLOCK) {
        let i1 = (i0 + GRAM_BLOCK).min(n);
        let a_i = a.slice(s![i0..i1, ..]);
        // One GEMM for the whole block row right of the diagonal: A_i · A[i0..]ᵀ.
        let a_rest = a.slice(s![i0.., ..]);
        gemm.gemm(1.0, a_i, a_rest.t(), 0.0, out.slice_mut(s![i0..i1, i0..]));
    }
    for i in 0..n {
        for j in 0..i {
            out[[i, j]] = out[[j, i]];
        }
    }
}

/// Per-layer style cost of the generated feature map against a target Gram matrix, with its gradient.
///
/// ```text
/// A = a_G reshaped to [C, M], M = H·W      G_G = A·Aᵀ
/// J_s = k · Σ_{c,c'} (G_G − G_S)²[c,c']     ∂J_s/∂A = 4k · (G_G − G_S) · A
/// ```
///
/// Gatys, Ecker & Bethge 2016, eq. 4 (and its gradient, eq. 6) with `k` from `norm`
/// ([`StyleNorm::Gatys2016`]: `1/(4·C²·M²)`). `target_gram` is the **unnormalized** `G_S` (from [`gram`],
/// possibly [`blend_grams`]ed or [`rescale_gram`]d). The formula above assumes `G_S` symmetric, as
/// those are exactly; for a target that is not, the gradient uses the symmetric part of
/// `G_G − G_S`, which is the exact gradient of the value returned. Both the Gram and the gradient are GEMMs on `gemm`
/// (`2·C²·M` flops each); the value is accumulated in f64. The weighted sum over layers is the
/// caller's. Derivation: [the crate docs](crate#gradients).
///
/// # Errors
/// [`Error::ShapeMismatch`] when `target_gram` is not `[C, C]`.
///
/// # Examples
/// ```
/// use approx::assert_abs_diff_eq;
/// use ndarray::array;
/// use nst_costs::{StyleNorm, style_layer_loss};
/// use tensor_ops::CpuGemm;
///
/// let a = array![[[1.0_f32, 2.0]]]; // C = 1, M = 2: G_G = [[5]]
/// let target = array![[3.0_f32]];
/// let cost = style_layer_loss(a.view(), target.view(), StyleNorm::Gatys2016, &CpuGemm)?;
/// // k = 1/(4·1·4) = 1/16; J = (5 − 3)²/16; ∂J/∂A = 4k·2·A = A/2.
/// assert_abs_diff_eq!(cost.value, 0.25);
/// assert_abs_diff_eq!(cost.grad, array![[[0.5, 1.0]]], epsilon = 1e-6);
/// # Ok::<(), nst_costs::Error>(())
/// ```
pub fn style_layer_loss(
    generated: ArrayView3<'_, f32>,
    target_gram: ArrayView2<'_, f32>,
    norm: StyleNorm,
    gemm: &dyn Gemm,
) -> Result<LossAndGrad> {
    let mut grad = Array3::zeros(generated.raw_dim());
    let mut scratch = StyleScratch::new();
    let value = style_layer_loss_accumulate(
        generated,
        target_gram,
        norm,
        gemm,
        &mut scratch,
        grad.view_mut(),
    )?;
    Ok(LossAndGrad { value, grad })
}

/// [`style_layer_loss`] that **adds** `∂J_s/∂a_G` into `grad` (by GEMM with `β = 1`) and returns
/// `J_s`. Its own code allocates nothing when `generated` and `grad` are in standard layout and
/// `scratch` has seen this channel count before; whether the two GEMMs allocate is up to the
/// [`Gemm`] backend (matrixmultiply, for one, allocates its packing buffers on every call).
///
/// # Errors
/// [`Error::ShapeMismatch`] when `target_gram` is not `[C, C]` or `grad` is not the shape of `generated`.
///
/// # Examples
/// ```
/// use approx::assert_abs_diff_eq;
/// use ndarray::{Array3, array};
/// use nst_costs::{StyleNorm, StyleScratch, style_layer_loss_accumulate};
/// use tensor_ops::CpuGemm;
///
/// let a = array![[[1.0_f32, 2.0]]];
/// let target = array![[3.0_f32]];
/// let mut scratch = StyleScratch::new();
/// let mut grad = Array3::from_elem((1, 1, 2), 10.0_f32);
/// let value = style_layer_loss_accumulate(
///     a.view(), target.view(), StyleNorm::Gatys2016, &CpuGemm, &mut scratch, grad.view_mut())?;
/// assert_abs_diff_eq!(value, 0.25);
/// assert_abs_diff_eq!(grad, array![[[10.5, 11.0]]], epsilon = 1e-6);
/// # Ok::<(), nst_costs::Error>(())
/// ```
pub fn style_layer_loss_accumulate(
    generated: ArrayView3<'_, f32>,
    target_gram: ArrayView2<'_, f32>,
    norm: StyleNorm,
    gemm: &dyn Gemm,
    scratch: &mut StyleScratch,
    grad: ArrayViewMut3<'_, f32>,
) -> Result<f64> {
    const OP: &str = "style_layer_loss";
    let n_channels = generated.shape()[0];
    let n_positions = generated.shape()[1] * generated.shape()[2];
    check_same_shape(
        OP,
        "target_gram",
        target_gram.shape(),
        "[C, C] of generated",
        &[n_channels, n_channels],
    )?;
    check_same_shape(OP, "generated", generated.shape(), "grad", grad.shape())?;
    let k = norm.coefficient(n_channels, n_positions);

    let generated = generated.as_standard_layout();
    let a = as_matrix(generated.view());
    let sum_sq = gram_minus_target(a, target_gram, gemm, scratch);
    gemm_add_into(gemm, (4.0 * k) as f32, scratch.gram.view(), a, grad);
    Ok(k * sum_sq)
}

/// `scratch.gram ← sym(G_G − G_S)` for `G_G = A·Aᵀ` (sized to `A`'s rows), returning `Σ (G_G − G_S)²`
/// from exact f64 differences: the part of the Gram style cost before its gradient GEMM.
fn gram_minus_target(
    a: ArrayView2<'_, f32>,
    target_gram: ArrayView2<'_, f32>,
    gemm: &dyn Gemm,
    scratch: &mut StyleScratch,
) -> f64 {
    let n_channels = a.nrows();
    if scratch.gram.dim() != (n_channels, n_channels) {
        scratch.gram = Array2::zeros((n_channels, n_channels));
    }
    let diff = &mut scratch.gram;
    gram_upper_mirrored(a, gemm, diff.view_mut());
    let mut sum_sq = 0.0_f64;
    ndarray::Zip::from(&mut *diff)
        .and(&target_gram)
        .for_each(|d, &s| {
            let e = f64::from(*d) - f64::from(s);
            sum_sq += e * e;
            *d -= s;
        });
    symmetrize(diff.view_mut());
    sum_sq
}

/// [`style_layer_loss`] that **replaces** the features with `weight · ∂J_s/∂a_G` and returns
/// `J_s`: no array besides the `[C, C]` scratch and one `[C, 256]` block per thread.
///
/// The gradient `4k·(G_G − G_S)·A` mixes channels, never positions, so once the Gram is taken it is
/// computed a block of 256 positions at a time and written over those positions (blocks run in
/// parallel). Each value is the one [`style_layer_loss_accumulate`] adds into a zeroed gradient,
/// times `weight` (the same GEMM calls on the same blocks).
///
/// # Errors
/// [`Error::ShapeMismatch`] when `target_gram` is not `[C, C]`; [`Error::NotContiguous`] when
/// `features` is not in standard layout.
///
/// # Examples
/// ```
/// use approx::assert_abs_diff_eq;
/// use ndarray::array;
/// use nst_costs::{StyleNorm, StyleScratch, style_layer_loss_in_place};
/// use tensor_ops::CpuGemm;
///
/// let mut a = array![[[1.0_f32, 2.0]]]; // G_G = [[5]]
/// let target = array![[3.0_f32]];
/// let mut scratch = StyleScratch::new();
/// let value = style_layer_loss_in_place(
///     a.view_mut(), target.view(), StyleNorm::Gatys2016, 2.0, &CpuGemm, &mut scratch)?;
/// assert_abs_diff_eq!(value, 0.25);
/// assert_abs_diff_eq!(a, array![[[1.0, 2.0]]], epsilon = 1e-6); // 2 · A/2
/// # Ok::<(), nst_costs::Error>(())
/// ```
pub fn style_layer_loss_in_place(
    mut features: ArrayViewMut3<'_, f32>,
    target_gram: ArrayView2<'_, f32>,
    norm: StyleNorm,
    weight: f32,
    gemm: &dyn Gemm,
    scratch: &mut StyleScratch,
) -> Result<f64> {
    const OP: &str = "style_layer_loss_in_place";
    let (n_channels, h, w) = features.dim();
    check_same_shape(
        OP,
        "target_gram",
        target_gram.shape(),
        "[C, C] of features",
        &[n_channels, n_channels],
    )?;
    if !features.is_standard_layout() {
        return Err(Error::NotContiguous {
            op: OP,
            what: "features",
        });
    }
    let k = norm.coefficient(n_channels, h * w);
    let mut a = features
        .view_mut()
        .into_shape_with_order((n_channels, h * w))
        .expect("standard layout");
    let sum_sq = gram_minus_target(a.view(), target_gram, gemm, scratch);
    let (diff, alpha) = (scratch.gram.view(), (4.0 * k) as f32);
    a.axis_chunks_iter_mut(Axis(1), IN_PLACE_BLOCK)
        .into_par_iter()
        .for_each(|mut block| {
            IN_PLACE.with(|cell| {
                // The buffer stays borrowed during the GEMM; if this thread steals another block
                // meanwhile (the GEMM may run in parallel itself), that one uses a buffer of its own.
                let mut own = Vec::new();
                let mut shared = cell.try_borrow_mut();
                let buf = match shared.as_deref_mut() {
                    Ok(b) => b,
                    Err(_) => &mut own,
                };
                let len = block.len();
                if buf.len() < len {
                    buf.resize(len, 0.0);
                }
                let mut out = ArrayViewMut2::from_shape(block.raw_dim(), &mut buf[..len])
                    .expect("sized to the block");
                gemm.gemm(alpha, diff, block.view(), 0.0, out.view_mut());
                ndarray::Zip::from(&mut block)
                    .and(&out)
                    .for_each(|a, &g| *a = g * weight);
            });
        });
    Ok(k * sum_sq)
}

/// Positions per block of [`style_layer_loss_in_place`]. Any width gives the accumulating
/// function's values: a GEMM's element is its own sum over the shared dimension, whatever the
/// blocking of the other two (the test checks widths that split and that do not).
const IN_PLACE_BLOCK: usize = 256;

thread_local! {
    /// A block of [`style_layer_loss_in_place`]'s gradient, per thread.
    static IN_PLACE: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `grad += α·L·R` for `grad` `[C, H, W]` seen as the `[C, H·W]` matrix `L·R`: one GEMM with
/// `β = 1` straight into `grad` when its layout allows, else through a temporary.
pub(crate) fn gemm_add_into(
    gemm: &dyn Gemm,
    alpha: f32,
    lhs: ArrayView2<'_, f32>,
    rhs: ArrayView2<'_, f32>,
    mut grad: ArrayViewMut3<'_, f32>,
) {
    let shape = (lhs.nrows(), rhs.ncols());
    if let Ok(grad2) = grad.view_mut().into_shape_with_order(shape) {
        gemm.gemm(alpha, lhs, rhs, 1.0, grad2);
    } else {
        let mut tmp = Array2::<f32>::zeros(shape);
        gemm.gemm(alpha, lhs, rhs, 0.0, tmp.view_mut());
        let tmp = tmp
            .into_shape_with_order(grad.raw_dim())
            .expect("same number of elements");
        grad += &tmp;
    }
}

/// Weighted blend of several style targets' Gram matrices: `G = Σ_i w_i·G_i / Σ_i w_i`.
///
/// The weights are **normalized** to sum to 1, so blending targets of one size keeps their scale
/// (`[(G, 3.0)]` gives `G`). Grams of style images of different sizes must first be brought to the
/// generated image's size with [`rescale_gram`]. Sums are taken in f64.
///
/// # Errors
/// - [`Error::InvalidBlendWeight`] for a negative, NaN or infinite weight;
/// - [`Error::NoBlendWeight`] when there are no targets or the weights sum to 0;
/// - [`Error::ShapeMismatch`] when the Grams differ in shape.
///
/// # Examples
/// ```
/// use approx::assert_abs_diff_eq;
/// use ndarray::array;
/// let g1 = array![[4.0_f32, 0.0], [0.0, 4.0]];
/// let g2 = array![[0.0_f32, 2.0], [2.0, 0.0]];
/// let blended = nst_costs::blend_grams(&[(g1.view(), 3.0), (g2.view(), 1.0)])?;
/// assert_abs_diff_eq!(blended, array![[3.0, 0.5], [0.5, 3.0]]);
/// assert!(nst_costs::blend_grams(&[(g1.view(), -1.0)]).is_err());
/// # Ok::<(), nst_costs::Error>(())
/// ```
pub fn blend_grams(targets: &[(ArrayView2<'_, f32>, f32)]) -> Result<Array2<f32>> {
    let mut total = 0.0_f64;
    for (index, &(_, weight)) in targets.iter().enumerate() {
        if !(weight.is_finite() && weight >= 0.0) {
            return Err(Error::InvalidBlendWeight { index, weight });
        }
        total += f64::from(weight);
    }
    let Some((first, _)) = targets.first() else {
        return Err(Error::NoBlendWeight);
    };
    if total <= 0.0 {
        return Err(Error::NoBlendWeight);
    }
    for (g, _) in &targets[1..] {
        check_same_shape(
            "blend_grams",
            "first gram",
            first.shape(),
            "another gram",
            g.shape(),
        )?;
    }
    let mut acc = ndarray::Array2::<f64>::zeros(first.raw_dim());
    for (g, w) in targets {
        let w = f64::from(*w) / total;
        ndarray::Zip::from(&mut acc)
            .and(g)
            .for_each(|a, &x| *a += w * f64::from(x));
    }
    Ok(acc.mapv(|x| x as f32))
}

/// Brings a Gram matrix computed on `source_positions = H_S·W_S` positions to the scale of one on
/// `target_positions = H·W` positions: `G·(target_positions / source_positions)`.
///
/// An unnormalized Gram is a sum over positions, so it grows with the image. Every [`StyleNorm`]
/// divides by the *generated* map's size, so a style image larger than the generated one would look
/// "stronger" without this. Rescaling compares the per-position Grams `G/M` instead, which do not
/// depend on the image size for a stationary texture. Use it when the style image's size differs
/// from the content image's, before [`blend_grams`].
///
/// # Errors
/// [`Error::InvalidParameter`] when a position count is 0.
///
/// # Examples
/// ```
/// use approx::assert_abs_diff_eq;
/// use ndarray::{Array3, array};
/// use nst_costs::{gram, rescale_gram};
/// use tensor_ops::CpuGemm;
///
/// // A constant "texture" on 4×4 positions and on 2×2 positions.
/// let big = Array3::<f32>::ones((1, 4, 4));
/// let small = Array3::<f32>::ones((1, 2, 2));
/// let scaled = rescale_gram(gram(big.view(), &CpuGemm).view(), 16, 4)?;
/// assert_abs_diff_eq!(scaled, gram(small.view(), &CpuGemm));
/// # Ok::<(), nst_costs::Error>(())
/// ```
pub fn rescale_gram(
    gram: ArrayView2<'_, f32>,
    source_positions: usize,
    target_positions: usize,
) -> Result<Array2<f32>> {
    for (name, value) in [
        ("source_positions", source_positions),
        ("target_positions", target_positions),
    ] {
        if value == 0 {
            return Err(Error::InvalidParameter {
                op: "rescale_gram",
                name,
                expected: "positive",
                value: 0.0,
            });
        }
    }
    let factor = target_positions as f64 / source_positions as f64;
    Ok(gram.mapv(|g| (f64::from(g) * factor) as f32))
}

/// Replaces the square `d` by its symmetric part `(D + Dᵀ)/2`, touching only the pairs that differ.
///
/// `∂/∂A Σ(G − S)² = 2·(D + Dᵀ)·A` with `D = G − S`, which is `4·D·A` only when `S` is symmetric.
/// Targets made by [`gram`], [`blend_grams`] and [`rescale_gram`] are exactly symmetric, so this is
/// then a no-op (bit for bit); for any other target (e.g. a Gram computed elsewhere, or loaded from
/// a file) it keeps the gradient exact for the value returned.
pub(crate) fn symmetrize(mut d: ArrayViewMut2<'_, f32>) {
    let n = d.nrows();
    for i in 0..n {
        for j in i + 1..n {
            let (upper, lower) = (d[[i, j]], d[[j, i]]);
            if upper != lower {
                let mean = 0.5 * upper + 0.5 * lower;
                d[[i, j]] = mean;
                d[[j, i]] = mean;
            }
        }
    }
}

/// A standard-layout `[C, H, W]` view as its `[C, H·W]` matrix.
pub(crate) fn as_matrix(features: ArrayView3<'_, f32>) -> ArrayView2<'_, f32> {
    let (c, h, w) = features.dim();
    features
        .into_shape_with_order((c, h * w))
        .expect("callers pass standard-layout views")
        .into_dimensionality::<Ix2>()
        .expect("two axes")
}
