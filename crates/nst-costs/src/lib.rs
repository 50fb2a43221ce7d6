//! Neural style transfer losses with exact gradients: content, Gram/style (plain, guided, mean–covariance,
//! 2-Wasserstein) and total variation, plus colour matching.
//!
//! Every cost returns its value (accumulated in `f64`) and its gradient with respect to its input in
//! one call, as a [`LossAndGrad`]. Each has an allocating form (`content_loss`, `style_layer_loss`,
//! `total_variation`, …) and a hot-path form that **adds** the gradient into a caller-provided buffer
//! and allocates nothing in steady state (`*_accumulate`).
//!
//! | cost | formula (default normalization) | source |
//! | --- | --- | --- |
//! | [`content_loss`] | `J_c = 1/(4·C·H·W)·Σ(a_G − a_C)²` | [`ContentNorm::QuarterMean`]; Gatys et al. 2016 eq. 1 is [`ContentNorm::Half`] |
//! | [`style_layer_loss`] | `J_s = 1/(4·C²·(H·W)²)·Σ(G_G − G_S)²`, `G = A·Aᵀ` | [`StyleNorm::Gatys2016`], Gatys et al. 2016 eq. 3–4 |
//! | [`guided_style_loss`] | `1/(4·C²)·Σ(Ĝ_G − Ĝ_S)²`, `Ĝ = (A∘m)·(A∘m)ᵀ/Σm²` ([`guided_gram`]) | Gatys et al. 2017, spatial control |
//! | [`mean_cov_loss`] | `‖μ_G − μ_S‖²/C + ‖Σ_G − Σ_S‖²_F/C²` ([`FeatureStats`]) | per-entry means, as Li et al. 2017 |
//! | [`w2_loss`] | `(‖μ_G − μ_S‖² + tr Σ_G + tr Σ_S − 2·tr(Σ_S^{1/2}·Σ_G·Σ_S^{1/2})^{1/2})/C` ([`W2Target`]) | Gaussian 2-Wasserstein (Dowson & Landau 1982) |
//! | [`total_variation`] | `Σ (x[c,i+1,j] − x[c,i,j])² + (x[c,i,j+1] − x[c,i,j])²` | Mahendran & Vedaldi 2015, β = 2 |
//!
//! Around them:
//! - [`StyleLoss`] selects Gram, mean–covariance or W2 at run time; [`StyleTarget::from_features`]
//!   builds the matching target and [`style_loss`] / [`style_loss_accumulate`] dispatch.
//! - [`gram`], [`gram_into`], [`blend_grams`] and [`rescale_gram`] make Gram targets;
//!   [`downsample_mask`] brings a region mask to a layer's grid for [`guided_gram`].
//! - [`normalize_gradient`] scales one cost's gradient to unit L1 norm (`--normalize-gradients`).
//! - [`color`]: mean and covariance of RGB pixels and the affine map that matches them
//!   ([`color::ColorMap`]; Cholesky, PCA/image-analogies or symmetric), for colour preservation
//!   (Gatys et al. 2016, "Preserving Color in Neural Artistic Style Transfer").
//!
//! Feature maps and images are [`ndarray`] arrays of shape `[C, H, W]`, row-major `f32`. The crate
//! re-exports the `ndarray` it is built with (version 0.17), so `nst_costs::ndarray` always matches
//! its signatures; a program that uses another `ndarray` major version gets "mismatched types" errors
//! and should depend on `ndarray = "0.17"` or use the re-export.
//!
//! What this crate does not do: it does not know which network or which layers are used, and it does
//! not weight or sum the per-layer costs; that is the caller's objective (Gatys et al. weight five
//! layers `conv1_1 … conv5_1` equally, 0.2 each). It depends on `tensor-ops` only for the
//! [`tensor_ops::Gemm`] trait, through which the Gram matrices and the style gradient are computed.
//!
//! ## Gradients
//! A feature map `a` is `[C, H, W]`; `A` is it reshaped to the `C × M` matrix, `M = H·W`.
//!
//! - **Content**, `J_c = k·Σ(a_G − a_C)²`: each term depends on one entry, so
//!   `∂J_c/∂a_G = 2k·(a_G − a_C)`. With `k = ½` this is Gatys et al.'s eq. 2, `∂L/∂F = F − P`
//!   (their mask `F > 0` is the ReLU's backward pass, not the cost's).
//! - **Style**, `J_s = k·Σ_{c,d}(G − S)²[c,d]` with `G = A·Aᵀ`: let `D = G − S`, symmetric because
//!   every Gram (and any blend of Grams) is. Then `dJ_s = 2k·⟨D, dG⟩` and `dG = dA·Aᵀ + A·dAᵀ`, so
//!   `dJ_s = 2k·(⟨D·A, dA⟩ + ⟨Dᵀ·A, dA⟩) = 4k·⟨D·A, dA⟩`, i.e. `∂J_s/∂A = 4k·(G − S)·A` (Gatys et
//!   al.'s eq. 6 for `k = 1/(4·C²·M²)`). For a target `S` that is not exactly symmetric the same
//!   steps give `2k·(D + Dᵀ)·A`, and [`style_layer_loss`] uses the symmetric part of `D`. Dividing both
//!   Grams by `n` multiplies the sum by `1/n²`, so every [`StyleNorm`] is the same cost up to `k`.
//! - **Total variation**, `TV = Σ φ(d)` over the differences `d = x[hi] − x[lo]` of vertically and
//!   horizontally adjacent pixels: each `d` adds `φ'(d)` to `∂TV/∂x[hi]` and `−φ'(d)` to
//!   `∂TV/∂x[lo]`; `φ` and `φ'` are listed under [`TvKind`].
//!
//! Every gradient is checked against central finite differences in the tests of the source repository.
//!
//! ## Features
//! None. Parallelism comes from the [`tensor_ops::Gemm`] backend the caller passes in; the
//! mean–covariance and W2 costs and [`color`] work in f64 through `ndarray`'s own (single-threaded)
//! products instead.
//!
//! # Examples
//! ```
//! use approx::assert_abs_diff_eq;
//! use nst_costs::ndarray::Array3;
//! use nst_costs::{StyleNorm, gram, style_layer_loss};
//! use tensor_ops::CpuGemm;
//!
//! let style = Array3::from_shape_fn((4, 5, 6), |(c, i, j)| (c + i * j) as f32 * 0.1);
//! let target = gram(style.view(), &CpuGemm);
//! // The style cost of the style image itself is 0, and so is its gradient.
//! let cost = style_layer_loss(style.view(), target.view(), StyleNorm::Gatys2016, &CpuGemm)?;
//! assert_abs_diff_eq!(cost.value, 0.0);
//! assert!(cost.grad.iter().all(|&g| g == 0.0));
//! # Ok::<(), nst_costs::Error>(())
//! ```

#![warn(missing_docs)]

pub mod color;
mod content;
mod guided;
mod linalg;
mod moments;
mod normalize;
mod select;
mod style;
#[cfg(test)]
mod testing;
mod tv;

use ndarray::{Array3, ArrayViewMut3};

/// The `ndarray` crate (version 0.17) whose arrays this crate's functions take and return.
pub use ndarray;

pub use content::{
    ContentNorm, content_loss, content_loss_accumulate, masked_content_loss_accumulate,
};
pub use guided::{downsample_mask, guided_gram, guided_style_loss, guided_style_loss_accumulate};
pub use moments::{
    FeatureStats, W2Target, mean_cov_loss, mean_cov_loss_accumulate, w2_loss, w2_loss_accumulate,
};
pub use normalize::{NORMALIZE_GRADIENT_EPS, normalize_gradient};
pub use select::{StyleLoss, StyleTarget, style_loss, style_loss_accumulate};
pub use style::{
    StyleNorm, StyleScratch, blend_grams, gram, gram_into, rescale_gram, style_layer_loss,
    style_layer_loss_accumulate, style_layer_loss_in_place,
};
pub use tv::{TvKind, total_variation, total_variation_accumulate};

/// The errors of this crate: every one comes from caller input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Two arrays that must have the same shape do not.
    #[error(
        "{op}: shape mismatch: {left_name} has shape {left:?} but {right_name} has shape {right:?}"
    )]
    ShapeMismatch {
        /// The function that was called.
        op: &'static str,
        /// What the first array is.
        left_name: &'static str,
        /// Its shape.
        left: Vec<usize>,
        /// What the second array is.
        right_name: &'static str,
        /// Its shape.
        right: Vec<usize>,
    },
    /// A blend weight is negative, NaN or infinite.
    #[error("blend_grams: weight {weight} of target {index} is not a finite non-negative number")]
    InvalidBlendWeight {
        /// Index of the target in the slice.
        index: usize,
        /// The offending weight.
        weight: f32,
    },
    /// The blend weights sum to zero (or there are no targets).
    #[error("blend_grams: the blend weights sum to zero or there are no targets")]
    NoBlendWeight,
    /// A numeric parameter is outside its domain.
    #[error("{op}: {name} must be {expected}, got {value}")]
    InvalidParameter {
        /// The function that was called.
        op: &'static str,
        /// The parameter.
        name: &'static str,
        /// Its domain, in words.
        expected: &'static str,
        /// The value given.
        value: f64,
    },
    /// An input holds a NaN or an infinity where finite numbers are needed.
    #[error("{op}: {what} holds a NaN or an infinity")]
    NonFinite {
        /// The function that was called.
        op: &'static str,
        /// What holds it.
        what: &'static str,
    },
    /// An array that a function works in place is not in standard (row-major, contiguous) layout.
    #[error("{op}: {what} is not in standard (row-major, contiguous) layout")]
    NotContiguous {
        /// The function that was called.
        op: &'static str,
        /// The array.
        what: &'static str,
    },
    /// A mask value is outside `[0, 1]` (or is NaN).
    #[error("{op}: mask value {value} at flat index {index} is not in [0, 1]")]
    InvalidMask {
        /// The function that was called.
        op: &'static str,
        /// Row-major index of the value in the mask.
        index: usize,
        /// The value.
        value: f32,
    },
    /// A mask is too small to go through the requested number of 2×2 poolings.
    #[error("downsample_mask: a {height}×{width} mask cannot go through {n_pools} 2×2 poolings")]
    MaskTooSmall {
        /// The mask's height.
        height: usize,
        /// The mask's width.
        width: usize,
        /// The poolings asked for.
        n_pools: usize,
    },
    /// An input that needs at least one element (pixel, position) has none.
    #[error("{op}: {what} is empty")]
    EmptyInput {
        /// The function that was called.
        op: &'static str,
        /// What is empty.
        what: &'static str,
    },
    /// The symmetric eigen solver did not converge (not seen in practice on finite input).
    #[error(
        "{op}: the eigen solver did not converge on a {size}×{size} matrix in {iterations} iterations"
    )]
    NoConvergence {
        /// The function that was called.
        op: &'static str,
        /// The matrix's order.
        size: usize,
        /// The iterations done: Jacobi sweeps, or QL iterations for one eigenvalue.
        iterations: usize,
    },
}

/// `Result` with this crate's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The value of a cost and its gradient with respect to the cost's input, computed together.
#[derive(Debug, Clone, PartialEq)]
pub struct LossAndGrad {
    /// The cost, accumulated in f64.
    pub value: f64,
    /// `∂value/∂input`, with the input's shape.
    pub grad: Array3<f32>,
}

/// Checks that two shapes agree, naming both in the error.
fn check_same_shape(
    op: &'static str,
    left_name: &'static str,
    left: &[usize],
    right_name: &'static str,
    right: &[usize],
) -> Result<()> {
    if left == right {
        Ok(())
    } else {
        Err(Error::ShapeMismatch {
            op,
            left_name,
            left: left.to_vec(),
            right_name,
            right: right.to_vec(),
        })
    }
}

/// Runs `f` on `grad` as one contiguous row-major slice. When `grad` is not in standard layout, `f`
/// runs on a zeroed temporary that is then added into `grad`, so `f` must *add* into its slice.
fn with_contiguous_grad<R>(mut grad: ArrayViewMut3<'_, f32>, f: impl FnOnce(&mut [f32]) -> R) -> R {
    if let Some(slice) = grad.as_slice_mut() {
        f(slice)
    } else {
        let mut tmp = Array3::<f32>::zeros(grad.raw_dim());
        let r = f(tmp.as_slice_mut().expect("a fresh array is contiguous"));
        grad += &tmp;
        r
    }
}

/// The README's examples, run as doctests so that they keep compiling and passing.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
