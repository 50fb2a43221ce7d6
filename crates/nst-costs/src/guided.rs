//! Guided (masked) Gram matrices and their style cost (Gatys et al. 2017, spatial control), and masks brought to a layer's grid.

#[cfg(test)]
mod tests;

use ndarray::{Array2, Array3, ArrayView2, ArrayView3, ArrayViewMut2, ArrayViewMut3, Zip};
use tensor_ops::Gemm;

use crate::style::{as_matrix, gemm_add_into, gram_upper_mirrored, matrix_buffer, symmetrize};
use crate::{Error, LossAndGrad, Result, StyleNorm, StyleScratch, check_same_shape};

/// Guided Gram matrix of a feature map under a spatial mask, normalized by the mask's energy:
///
/// ```text
/// A = features as [C, M], M = H·W        m = mask as [M], values in [0, 1]
/// Ĝ = (A∘m)·(A∘m)ᵀ / Σ_p m_p²            (Ĝ = 0 when Σ m² = 0)
/// ```
///
/// This is Gatys et al. 2017 ("Controlling Perceptual Factors in Neural Style Transfer", §4), whose
/// guided Gram is `(F∘T_r)·(F∘T_r)ᵀ` for a guidance channel `T_r`, divided here by `Σ m²` so that
/// `Ĝ = Σ_p w_p·f_p·f_pᵀ` with weights `w_p = m_p²/Σ m²` summing to 1: a weighted **mean** of the
/// per-position outer products. A region covering half of the image then has statistics on the same
/// scale as a whole image (for a binary mask, `Ĝ` is the plain Gram of the masked positions divided
/// by their count), and the style image's region and the generated image's region may differ in size.
/// With an all-ones mask, `Ĝ = G/M`. Dividing by `Σ m²` rather than the position count keeps a masked region's statistics those of its own features, whatever its area.
///
/// `mask` must already be on the layer's `[H, W]` grid ([`downsample_mask`]). The product runs
/// on `gemm`, over the block triangle as [`gram`](crate::gram).
///
/// # Errors
/// [`Error::ShapeMismatch`] when `mask` is not `[H, W]`; [`Error::InvalidMask`] for a value outside
/// `[0, 1]` or NaN.
///
/// # Examples
/// ```
/// use approx::assert_abs_diff_eq;
/// use ndarray::array;
/// use nst_costs::guided_gram;
/// use tensor_ops::CpuGemm;
///
/// let f = array![[[1.0_f32, 2.0, 3.0, 4.0]]]; // C = 1, H = 1, W = 4
/// let left = array![[1.0_f32, 1.0, 0.0, 0.0]];
/// // The left half alone: (1² + 2²)/2 positions.
/// assert_abs_diff_eq!(guided_gram(f.view(), left.view(), &CpuGemm)?, array![[2.5]]);
/// # Ok::<(), nst_costs::Error>(())
/// ```
pub fn guided_gram(
    features: ArrayView3<'_, f32>,
    mask: ArrayView2<'_, f32>,
    gemm: &dyn Gemm,
) -> Result<Array2<f32>> {
    let (n_channels, h, w) = features.dim();
    let energy = check_mask("guided_gram", mask, [h, w])?;
    let mut out = Array2::<f32>::zeros((n_channels, n_channels));
    if energy == 0.0 {
        return Ok(out);
    }
    let mut masked = Array2::<f32>::zeros((n_channels, h * w));
    mask_features(features, mask, masked.view_mut());
    gram_upper_mirrored(masked.view(), gemm, out.view_mut());
    out.mapv_inplace(|g| (f64::from(g) / energy) as f32);
    Ok(out)
}

/// Guided style cost of one region at one layer, with its gradient:
///
/// ```text
/// Ĝ = (A∘m)·(A∘m)ᵀ / s,  s = Σ_p m_p²          (guided_gram)
/// J = k · Σ_{c,c'} (Ĝ − Ŝ)²[c,c']               k = norm.coefficient(C, 1)
/// ∂J/∂A = (4k/s) · (Ĝ − Ŝ) · (A∘m²)
/// ```
///
/// `target` is the style image's guided Gram `Ŝ` for the same region ([`guided_gram`] of the style
/// features and the style's mask), so the two images may differ in size. Because `Ĝ` is already a
/// per-position mean, `k` is the [`StyleNorm`] coefficient for `M = 1`
/// ([`StyleNorm::Gatys2016`]: `1/(4·C²)`); with an all-ones mask on both images this is exactly
/// [`style_layer_loss`](crate::style_layer_loss) against the style Gram brought to this size by
/// [`rescale_gram`](crate::rescale_gram) (tested). For several regions, call it once per region and
/// add the costs. A region absent from the generated image's mask (`s = 0`) costs 0 and adds
/// nothing to the gradient. The gradient follows as for the plain Gram cost, with the mask applied twice.
///
/// # Errors
/// As [`guided_gram`]; [`Error::ShapeMismatch`] when `target` is not `[C, C]`.
///
/// # Examples
/// ```
/// use approx::assert_abs_diff_eq;
/// use ndarray::{Array2, array};
/// use nst_costs::{StyleNorm, guided_style_loss};
/// use tensor_ops::CpuGemm;
///
/// let f = array![[[1.0_f32, 2.0, 3.0, 4.0]]];
/// let left = array![[1.0_f32, 1.0, 0.0, 0.0]];
/// let target = array![[0.5_f32]];
/// let cost = guided_style_loss(f.view(), left.view(), target.view(), StyleNorm::Gatys2016, &CpuGemm)?;
/// // Ĝ = 2.5, k = 1/4: J = (2.5 − 0.5)²/4; ∂J/∂A = (4k/s)·2·(A∘m²) = (A∘m)
/// assert_abs_diff_eq!(cost.value, 1.0);
/// assert_abs_diff_eq!(cost.grad, array![[[1.0, 2.0, 0.0, 0.0]]], epsilon = 1e-6);
/// // A black mask: nothing to match.
/// let black = Array2::<f32>::zeros((1, 4));
/// let cost = guided_style_loss(f.view(), black.view(), target.view(), StyleNorm::Gatys2016, &CpuGemm)?;
/// assert_eq!(cost.value, 0.0);
/// assert!(cost.grad.iter().all(|&g| g == 0.0));
/// # Ok::<(), nst_costs::Error>(())
/// ```
pub fn guided_style_loss(
    generated: ArrayView3<'_, f32>,
    mask: ArrayView2<'_, f32>,
    target: ArrayView2<'_, f32>,
    norm: StyleNorm,
    gemm: &dyn Gemm,
) -> Result<LossAndGrad> {
    let mut grad = Array3::zeros(generated.raw_dim());
    let mut scratch = StyleScratch::new();
    let value = guided_style_loss_accumulate(
        generated,
        mask,
        target,
        norm,
        gemm,
        &mut scratch,
        grad.view_mut(),
    )?;
    Ok(LossAndGrad { value, grad })
}

/// [`guided_style_loss`] that **adds** `∂J/∂a_G` into `grad` and returns `J`; its own code allocates
/// nothing once `scratch` has seen this shape (beyond a copy of a non-standard-layout input).
///
/// # Errors
/// As [`guided_style_loss`]; [`Error::ShapeMismatch`] when `grad` is not the shape of `generated`.
pub fn guided_style_loss_accumulate(
    generated: ArrayView3<'_, f32>,
    mask: ArrayView2<'_, f32>,
    target: ArrayView2<'_, f32>,
    norm: StyleNorm,
    gemm: &dyn Gemm,
    scratch: &mut StyleScratch,
    grad: ArrayViewMut3<'_, f32>,
) -> Result<f64> {
    const OP: &str = "guided_style_loss";
    let (n_channels, h, w) = generated.dim();
    let energy = check_mask(OP, mask, [h, w])?;
    let cc = [n_channels, n_channels];
    check_same_shape(OP, "target", target.shape(), "[C, C] of generated", &cc)?;
    check_same_shape(OP, "generated", generated.shape(), "grad", grad.shape())?;
    if energy == 0.0 {
        return Ok(0.0);
    }
    let k = norm.coefficient(n_channels, 1);
    let StyleScratch {
        gram: diff,
        features,
        ..
    } = scratch;
    if diff.dim() != (n_channels, n_channels) {
        *diff = Array2::zeros((n_channels, n_channels));
    }
    let mut masked = matrix_buffer(features, n_channels, h * w);
    mask_features(generated, mask, masked.view_mut());
    gram_upper_mirrored(masked.view(), gemm, diff.view_mut());

    // diff ← Ĝ − Ŝ, and Σ diff² from f64 differences. Ĝ is rounded to f32 first, exactly as
    // `guided_gram` returns it, so the cost against a target made by it is exactly 0.
    let mut sum_sq = 0.0_f64;
    Zip::from(&mut *diff).and(&target).for_each(|d, &t| {
        let g = (f64::from(*d) / energy) as f32;
        let e = f64::from(g) - f64::from(t);
        sum_sq += e * e;
        *d = e as f32;
    });
    symmetrize(diff.view_mut());

    // masked ← A∘m², the factor the gradient multiplies.
    let m = mask.iter().copied().cycle();
    masked.iter_mut().zip(m).for_each(|(x, m)| *x *= m);
    gemm_add_into(
        gemm,
        (4.0 * k / energy) as f32,
        diff.view(),
        masked.view(),
        grad,
    );
    Ok(k * sum_sq)
}

/// A mask `[h, w]` brought to the grid of a layer that sits after `n_pools` of VGG's poolings, by
/// averaging it through each of them:
///
/// ```text
/// m'[i, j] = ¼ · (m[2i, 2j] + m[2i, 2j+1] + m[2i+1, 2j] + m[2i+1, 2j+1]),   [h, w] → [⌊h/2⌋, ⌊w/2⌋]
/// ```
///
/// The rule follows the network: VGG-19's 3×3 convolutions have stride 1 and padding 1 and ReLUs
/// act per position, so both keep the grid; each pooling has a 2×2 window, stride 2 and no padding,
/// so it halves the grid, rounding down (an odd last row or column reaches no output, as in
/// `tensor_ops::AvgPool2d` with `Padding::ZERO`). The layers `conv{k}_1 … conv{k}_4` / `relu{k}_*`
/// come after `k − 1` poolings. Averaging keeps values in `[0, 1]`, keeps complementary masks
/// complementary (they still sum to 1), and gives each position of the layer the fraction of its
/// 2ⁿ×2ⁿ block of pixels that lies in the region.
///
/// # Errors
/// [`Error::InvalidMask`] for a value outside `[0, 1]` or NaN; [`Error::MaskTooSmall`] when a side
/// would fall below 1.
///
/// # Examples
/// ```
/// use approx::assert_abs_diff_eq;
/// use ndarray::array;
/// let m = array![[1.0_f32, 1.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0, 1.0]];
/// let one = nst_costs::downsample_mask(m.view(), 1)?; // 3×5 → 1×2; the last row and column drop
/// assert_abs_diff_eq!(one, array![[0.75, 0.0]]);
/// assert!(nst_costs::downsample_mask(m.view(), 2).is_err()); // 1×2 cannot be pooled again
/// # Ok::<(), nst_costs::Error>(())
/// ```
pub fn downsample_mask(mask: ArrayView2<'_, f32>, n_pools: usize) -> Result<Array2<f32>> {
    let (height, width) = mask.dim();
    check_mask("downsample_mask", mask, [height, width])?;
    let mut out = mask.to_owned();
    for _ in 0..n_pools {
        let (h, w) = (out.nrows() / 2, out.ncols() / 2);
        if h == 0 || w == 0 {
            return Err(Error::MaskTooSmall {
                height,
                width,
                n_pools,
            });
        }
        out = Array2::from_shape_fn((h, w), |(i, j)| {
            let sum = out[[2 * i, 2 * j]]
                + out[[2 * i, 2 * j + 1]]
                + out[[2 * i + 1, 2 * j]]
                + out[[2 * i + 1, 2 * j + 1]];
            0.25 * sum
        });
    }
    Ok(out)
}

/// Checks that `mask` is `[h, w]` with values in `[0, 1]`, and returns `Σ m²` in f64.
fn check_mask(op: &'static str, mask: ArrayView2<'_, f32>, hw: [usize; 2]) -> Result<f64> {
    check_same_shape(op, "mask", mask.shape(), "[H, W] of the features", &hw)?;
    let mut energy = 0.0_f64;
    for (index, &value) in mask.iter().enumerate() {
        if !(0.0..=1.0).contains(&value) {
            return Err(Error::InvalidMask { op, index, value });
        }
        energy += f64::from(value) * f64::from(value);
    }
    Ok(energy)
}

/// `out ← A∘m`: each channel of `features` times the mask, as a `[C, H·W]` matrix.
fn mask_features(
    features: ArrayView3<'_, f32>,
    mask: ArrayView2<'_, f32>,
    mut out: ArrayViewMut2<'_, f32>,
) {
    let features = features.as_standard_layout();
    let a = as_matrix(features.view());
    let mask = mask.as_standard_layout();
    let m = mask.as_slice().expect("standard layout is contiguous");
    Zip::from(out.rows_mut())
        .and(a.rows())
        .for_each(|mut o, x| {
            Zip::from(&mut o)
                .and(&x)
                .and(m)
                .for_each(|o, &x, &m| *o = x * m);
        });
}
