//! Gradient normalization (`--normalize-gradients`): a layer's own gradient scaled to unit L1 norm.

#[cfg(test)]
mod tests;

use ndarray::ArrayViewMut3;

/// The `ε` of [`normalize_gradient`]: `1e-8`, as in jcjohnson/neural-style.
pub const NORMALIZE_GRADIENT_EPS: f64 = 1e-8;

/// Scales one cost's gradient to (almost) unit L1 norm and returns the norm it had:
///
/// ```text
/// g ← g / (‖g‖₁ + ε),   ‖g‖₁ = Σ |g_i|,   ε = NORMALIZE_GRADIENT_EPS = 1e-8
/// ```
///
/// This is `-normalize_gradients` of Johnson's neural-style (`gradInput:div(torch.norm(gradInput, 1)
/// + 1e-8)` in its `ContentLoss` and `StyleLoss` modules): apply it to the gradient of **one** layer's
/// cost alone (not to a buffer that other costs have already added into), then multiply by the
/// layer's weight and add into the layer's gradient. `ε` only keeps an all-zero gradient at 0
/// instead of dividing by zero; it is absolute, so it matters only for norms near `1e-8`.
///
/// The return value is `‖g‖₁` before scaling, summed in f64, for logging. The cost's **value** is not
/// changed by this: report the cost as computed, as neural-style does. The scaled gradient is then no
/// longer the gradient of the reported objective, which is fine for Adam but can break the line search
/// of L-BFGS. A NaN or infinite entry makes the norm NaN or infinite and the gradient NaN or 0.
///
/// # Examples
/// ```
/// use approx::assert_abs_diff_eq;
/// use ndarray::array;
/// let mut g = array![[[1.0_f32, -2.0], [3.0, -4.0]]];
/// let l1 = nst_costs::normalize_gradient(g.view_mut());
/// assert_eq!(l1, 10.0);
/// assert_abs_diff_eq!(g, array![[[0.1, -0.2], [0.3, -0.4]]], epsilon = 1e-7);
/// ```
pub fn normalize_gradient(mut grad: ArrayViewMut3<'_, f32>) -> f64 {
    let l1: f64 = grad.iter().map(|&g| f64::from(g).abs()).sum();
    let scale = 1.0 / (l1 + NORMALIZE_GRADIENT_EPS);
    grad.mapv_inplace(|g| (f64::from(g) * scale) as f32);
    l1
}
