//! Content cost: squared distance between two feature maps (Gatys et al. 2016, eq. 1).

#[cfg(test)]
mod tests;

use ndarray::{Array3, ArrayView2, ArrayView3, ArrayViewMut3};

use crate::{Error, LossAndGrad, Result, check_same_shape, with_contiguous_grad};

/// Normalization of the content cost `J_c = k·Σ(a_G − a_C)²` over the `N = C·H·W` elements of a
/// feature map. The gradient is `∂J_c/∂a_G = 2k·(a_G − a_C)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ContentNorm {
    /// `k = 1/(4·C·H·W)`, a quarter of the mean squared error: the neural style transfer
    /// assignment of the Coursera Deep Learning Specialization ("Art generation with neural style
    /// transfer", `compute_content_cost`). The default.
    #[default]
    QuarterMean,
    /// `k = ½`: Gatys, Ecker & Bethge 2016, eq. 1, `L_content = ½·Σ(F − P)²`.
    Half,
    /// `k = 1/(C·H·W)`: the mean squared error, as `F.mse_loss` in the PyTorch neural-transfer tutorial.
    Mean,
}

impl ContentNorm {
    /// The former name of [`ContentNorm::QuarterMean`].
    #[deprecated(since = "0.1.0", note = "renamed to `ContentNorm::QuarterMean`")]
    #[allow(
        non_upper_case_globals,
        reason = "the former variant's name, kept as an alias"
    )]
    pub const Seed: ContentNorm = ContentNorm::QuarterMean;

    /// The factor `k` in `J_c = k·Σ(a_G − a_C)²` for a feature map of `n_elements = C·H·W` values.
    ///
    /// An empty map (`n_elements == 0`) has `k = 0` for the size-dependent norms, so its cost is 0.
    ///
    /// # Examples
    /// ```
    /// use approx::assert_relative_eq;
    /// use nst_costs::ContentNorm;
    /// assert_relative_eq!(ContentNorm::QuarterMean.coefficient(8), 1.0 / 32.0);
    /// assert_relative_eq!(ContentNorm::Half.coefficient(8), 0.5);
    /// assert_relative_eq!(ContentNorm::Mean.coefficient(8), 1.0 / 8.0);
    /// ```
    pub fn coefficient(self, n_elements: usize) -> f64 {
        if n_elements == 0 {
            return match self {
                ContentNorm::Half => 0.5,
                ContentNorm::QuarterMean | ContentNorm::Mean => 0.0,
            };
        }
        let n = n_elements as f64;
        match self {
            ContentNorm::QuarterMean => 1.0 / (4.0 * n),
            ContentNorm::Half => 0.5,
            ContentNorm::Mean => 1.0 / n,
        }
    }
}

/// Content cost of the generated feature map against the content target, with its gradient.
///
/// ```text
/// J_c = k · Σ_{c,i,j} (a_G[c,i,j] − a_C[c,i,j])²        ∂J_c/∂a_G = 2k · (a_G − a_C)
/// ```
///
/// `k` comes from `norm` ([`ContentNorm::QuarterMean`]: `1/(4·C·H·W)`; Gatys et al. 2016, eq. 1 is
/// [`ContentNorm::Half`]). Both maps are `[C, H, W]`. The value is accumulated in f64 from exact f64
/// differences; the gradient is computed in f32. Derivation: [the crate docs](crate#gradients).
///
/// # Errors
/// [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) when the two shapes differ.
///
/// # Examples
/// ```
/// use approx::assert_abs_diff_eq;
/// use ndarray::array;
/// use nst_costs::{ContentNorm, content_loss};
///
/// let generated = array![[[1.0_f32, 2.0]]]; // C = 1, H = 1, W = 2
/// let target = array![[[0.0_f32, 0.0]]];
/// let cost = content_loss(generated.view(), target.view(), ContentNorm::QuarterMean)?;
/// assert_abs_diff_eq!(cost.value, (1.0 + 4.0) / 8.0); // 1/(4·1·1·2) · (1² + 2²)
/// assert_abs_diff_eq!(cost.grad, array![[[0.25, 0.5]]]); // 2/8 · (a_G − a_C)
/// # Ok::<(), nst_costs::Error>(())
/// ```
pub fn content_loss(
    generated: ArrayView3<'_, f32>,
    target: ArrayView3<'_, f32>,
    norm: ContentNorm,
) -> Result<LossAndGrad> {
    let mut grad = Array3::zeros(generated.raw_dim());
    let value = content_loss_accumulate(generated, target, norm, grad.view_mut())?;
    Ok(LossAndGrad { value, grad })
}

/// [`content_loss`] that **adds** `∂J_c/∂a_G` into `grad` and returns `J_c`; it allocates nothing when
/// `generated`, `target` and `grad` are in standard layout (a non-standard one is copied).
///
/// # Errors
/// [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) when `generated`, `target` and `grad` do not
/// all have the same shape.
///
/// # Examples
/// ```
/// use approx::assert_abs_diff_eq;
/// use ndarray::{Array3, array};
/// use nst_costs::{ContentNorm, content_loss_accumulate};
///
/// let generated = array![[[1.0_f32, 2.0]]];
/// let target = array![[[1.0_f32, 0.0]]];
/// let mut grad = Array3::from_elem((1, 1, 2), 1.0_f32); // e.g. the style gradient of the same layer
/// let value = content_loss_accumulate(generated.view(), target.view(), ContentNorm::Half, grad.view_mut())?;
/// assert_abs_diff_eq!(value, 2.0); // ½ · 2²
/// assert_abs_diff_eq!(grad, array![[[1.0, 3.0]]]); // 1 + (a_G − a_C)
/// # Ok::<(), nst_costs::Error>(())
/// ```
pub fn content_loss_accumulate(
    generated: ArrayView3<'_, f32>,
    target: ArrayView3<'_, f32>,
    norm: ContentNorm,
    grad: ArrayViewMut3<'_, f32>,
) -> Result<f64> {
    weighted_content_loss("content_loss", (generated, target), norm, grad, |_| 1.0)
}

/// Content cost weighted per position by a mask (`--content-mask`), with its gradient:
///
/// ```text
/// J_c = k · Σ_{c,i,j} m[i,j] · (a_G[c,i,j] − a_C[c,i,j])²        ∂J_c/∂a_G = 2k · m · (a_G − a_C)
/// ```
///
/// `k` is `norm`'s for the whole map (`C·H·W` elements), so an all-ones mask gives exactly
/// [`content_loss`] and a mask of zeros gives 0: the mask moves the content cost's weight between
/// positions, it does not renormalize it. `mask` is `[H, W]` on the feature map's grid (see
/// [`downsample_mask`](crate::downsample_mask)), values in `[0, 1]`.
///
/// # Errors
/// [`Error::ShapeMismatch`] when the shapes do not fit; [`Error::InvalidMask`] for a mask value
/// outside `[0, 1]` or NaN.
///
/// # Examples
/// ```
/// use approx::assert_abs_diff_eq;
/// use ndarray::{Array3, array};
/// use nst_costs::{ContentNorm, masked_content_loss_accumulate};
///
/// let generated = array![[[1.0_f32, 2.0]]];
/// let target = array![[[0.0_f32, 0.0]]];
/// let mask = array![[1.0_f32, 0.0]]; // only the left position counts
/// let mut grad = Array3::zeros((1, 1, 2));
/// let value = masked_content_loss_accumulate(
///     generated.view(), target.view(), mask.view(), ContentNorm::Half, grad.view_mut())?;
/// assert_abs_diff_eq!(value, 0.5); // ½ · 1 · 1²
/// assert_abs_diff_eq!(grad, array![[[1.0, 0.0]]]);
/// # Ok::<(), nst_costs::Error>(())
/// ```
pub fn masked_content_loss_accumulate(
    generated: ArrayView3<'_, f32>,
    target: ArrayView3<'_, f32>,
    mask: ArrayView2<'_, f32>,
    norm: ContentNorm,
    grad: ArrayViewMut3<'_, f32>,
) -> Result<f64> {
    const OP: &str = "masked_content_loss";
    let (_, h, w) = generated.dim();
    check_same_shape(OP, "mask", mask.shape(), "[H, W] of generated", &[h, w])?;
    let mask = mask.as_standard_layout();
    let m = mask.as_slice().expect("standard layout is contiguous");
    if let Some((index, &value)) = m
        .iter()
        .enumerate()
        .find(|(_, v)| !(0.0..=1.0).contains(*v))
    {
        return Err(Error::InvalidMask {
            op: OP,
            index,
            value,
        });
    }
    let plane = h * w;
    weighted_content_loss(OP, (generated, target), norm, grad, |i| m[i % plane])
}

/// `k·Σ wᵢ·(gᵢ − tᵢ)²` over the elements in standard order, `2k·wᵢ·(gᵢ − tᵢ)` added into `grad`;
/// `weight(i)` is element `i`'s weight (1.0 for the plain cost, which then rounds exactly as without
/// it: `1.0·x = x`).
fn weighted_content_loss(
    op: &'static str,
    (generated, target): (ArrayView3<'_, f32>, ArrayView3<'_, f32>),
    norm: ContentNorm,
    grad: ArrayViewMut3<'_, f32>,
    weight: impl Fn(usize) -> f32,
) -> Result<f64> {
    check_same_shape(op, "generated", generated.shape(), "target", target.shape())?;
    check_same_shape(op, "generated", generated.shape(), "grad", grad.shape())?;
    let k = norm.coefficient(generated.len());
    let two_k = (2.0 * k) as f32;
    let generated = generated.as_standard_layout();
    let target = target.as_standard_layout();
    let g = generated.as_slice().expect("standard layout is contiguous");
    let t = target.as_slice().expect("standard layout is contiguous");
    let sum_sq = with_contiguous_grad(grad, |out| {
        let mut sum_sq = 0.0_f64;
        for (i, ((o, &gv), &tv)) in out.iter_mut().zip(g).zip(t).enumerate() {
            let wv = weight(i);
            let d = f64::from(gv) - f64::from(tv);
            sum_sq += f64::from(wv) * d * d;
            *o += two_k * wv * (gv - tv);
        }
        sum_sq
    });
    Ok(k * sum_sq)
}
