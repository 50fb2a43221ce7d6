//! Total-variation regularizer on the image (Mahendran & Vedaldi 2015), squared or smooth-absolute.

#[cfg(test)]
mod tests;

use ndarray::{Array3, ArrayView3, ArrayViewMut3};

use crate::{Error, LossAndGrad, Result, check_same_shape, with_contiguous_grad};

/// Penalty `φ` applied to each difference `d` of vertically or horizontally adjacent pixels
/// (same channel) in [`total_variation`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub enum TvKind {
    /// `φ(d) = d²`, `φ'(d) = 2d`: Mahendran & Vedaldi 2015, the `R_{V^β}` total-variation regularizer with
    /// β = 2, which then separates into the two directions. The default.
    #[default]
    Squared,
    /// `φ(d) = √(d² + ε²) − ε`, `φ'(d) = d/√(d² + ε²)`: the anisotropic absolute differences
    /// `Σ|d|` of `tf.image.total_variation` (Mahendran & Vedaldi's β = 1 is the isotropic
    /// `√(dx² + dy²)` instead), smoothed near 0 so the gradient exists, and shifted by `−ε` so a
    /// constant image costs exactly 0. `φ(d) → |d|` as `ε → 0`.
    Abs {
        /// Smoothing scale `ε`, in the image's units; must be finite and positive.
        eps: f32,
    },
}

/// Total variation of an image `[C, H, W]` (any `C`, e.g. the three planes of an RGB image), with its
/// gradient:
///
/// ```text
/// TV(x) = Σ_{c,i,j} φ(x[c,i+1,j] − x[c,i,j]) + φ(x[c,i,j+1] − x[c,i,j])
/// ∂TV/∂x[c,i,j] = φ'(x[c,i,j] − x[c,i−1,j]) − φ'(x[c,i+1,j] − x[c,i,j]) + (same along j)
/// ```
///
/// with `φ` from `kind` (Mahendran & Vedaldi 2015, `R_{V^β}`; terms that would leave the image are
/// dropped). No normalization: the caller weights it. Value in f64. Derivation:
/// [the crate docs](crate#gradients).
///
/// # Errors
/// [`Error::InvalidParameter`] when `kind` is [`TvKind::Abs`] with `eps` not finite and positive.
///
/// # Examples
/// ```
/// use approx::assert_abs_diff_eq;
/// use ndarray::array;
/// use nst_costs::{TvKind, total_variation};
///
/// let x = array![[[0.0_f32, 1.0], [3.0, 1.0]]]; // C = 1, H = 2, W = 2
/// let tv = total_variation(x.view(), TvKind::Squared)?;
/// // Vertical differences 3, 0; horizontal 1, −2.
/// assert_abs_diff_eq!(tv.value, 9.0 + 0.0 + 1.0 + 4.0);
/// assert_abs_diff_eq!(tv.grad, array![[[-8.0, 2.0], [10.0, -4.0]]]);
/// # Ok::<(), nst_costs::Error>(())
/// ```
pub fn total_variation(image: ArrayView3<'_, f32>, kind: TvKind) -> Result<LossAndGrad> {
    let mut grad = Array3::zeros(image.raw_dim());
    let value = total_variation_accumulate(image, kind, grad.view_mut())?;
    Ok(LossAndGrad { value, grad })
}

/// [`total_variation`] that **adds** `∂TV/∂x` into `grad` and returns `TV(x)`; it allocates nothing
/// when `image` and `grad` are in standard layout.
///
/// # Errors
/// [`Error::ShapeMismatch`] when `grad`'s shape differs from `image`'s, and the errors of
/// [`total_variation`].
///
/// # Examples
/// ```
/// use approx::assert_abs_diff_eq;
/// use ndarray::{Array3, array};
/// use nst_costs::{TvKind, total_variation_accumulate};
///
/// let x = array![[[0.0_f32, 4.0]]]; // one horizontal difference d = 4
/// let mut grad = Array3::<f32>::zeros((1, 1, 2));
/// let value = total_variation_accumulate(x.view(), TvKind::Abs { eps: 3.0 }, grad.view_mut())?;
/// assert_abs_diff_eq!(value, 5.0 - 3.0); // √(16 + 9) − 3
/// assert_abs_diff_eq!(grad, array![[[-0.8, 0.8]]]); // ∓ d/√(d² + ε²)
/// # Ok::<(), nst_costs::Error>(())
/// ```
pub fn total_variation_accumulate(
    image: ArrayView3<'_, f32>,
    kind: TvKind,
    grad: ArrayViewMut3<'_, f32>,
) -> Result<f64> {
    const OP: &str = "total_variation";
    check_same_shape(OP, "image", image.shape(), "grad", grad.shape())?;
    let penalty = match kind {
        TvKind::Squared => Penalty::Squared,
        TvKind::Abs { eps } => {
            if !(eps.is_finite() && eps > 0.0) {
                return Err(Error::InvalidParameter {
                    op: OP,
                    name: "eps",
                    expected: "finite and positive",
                    value: f64::from(eps),
                });
            }
            Penalty::Smooth {
                eps: f64::from(eps),
            }
        }
    };
    let (n_channels, height, width) = image.dim();
    let image = image.as_standard_layout();
    let x = image.as_slice().expect("standard layout is contiguous");
    Ok(with_contiguous_grad(grad, |g| {
        let mut value = 0.0_f64;
        let mut visit = |lo: usize, hi: usize| {
            let d = f64::from(x[hi]) - f64::from(x[lo]);
            let (phi, dphi) = penalty.eval(d);
            value += phi;
            let dphi = dphi as f32;
            g[hi] += dphi;
            g[lo] -= dphi;
        };
        for c in 0..n_channels {
            let plane = c * height * width;
            for i in 0..height {
                let row = plane + i * width;
                for j in 0..width {
                    if i + 1 < height {
                        visit(row + j, row + width + j);
                    }
                    if j + 1 < width {
                        visit(row + j, row + j + 1);
                    }
                }
            }
        }
        value
    }))
}

/// [`TvKind`] after validation, in f64.
#[derive(Clone, Copy)]
enum Penalty {
    Squared,
    Smooth { eps: f64 },
}

impl Penalty {
    /// `(φ(d), φ'(d))`.
    fn eval(self, d: f64) -> (f64, f64) {
        match self {
            Penalty::Squared => (d * d, 2.0 * d),
            Penalty::Smooth { eps } => {
                let r = (d * d + eps * eps).sqrt();
                // √(d² + ε²) − ε written without cancellation for small d.
                (d * d / (r + eps), d / r)
            }
        }
    }
}
