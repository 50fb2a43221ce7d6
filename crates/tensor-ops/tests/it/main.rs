//! Integration tests of tensor-ops: fast paths against naive references, adjoint identities,
//! finite-difference checks (`fd_*`), error paths, determinism and the GEMM conformance suite.

mod conv;
mod device;
mod errors;
mod fusion;
mod gemm;
mod network;
mod pool;
mod relu;

use ndarray::{Array1, Array3, Array4, ArrayView3};
use tensor_ops::{Layer, Saved, Shape};

/// A seeded `[c, h, w]` array, uniform in `[lo, hi)`.
fn arr3(seed: u64, (c, h, w): (usize, usize, usize), lo: f32, hi: f32) -> Array3<f32> {
    Array3::from_shape_vec((c, h, w), test_utils::uniform_vec(seed, c * h * w, lo, hi)).unwrap()
}

/// A seeded `[o, c, kh, kw]` array, uniform in `[lo, hi)`.
fn arr4(seed: u64, dims: (usize, usize, usize, usize), lo: f32, hi: f32) -> Array4<f32> {
    let n = dims.0 * dims.1 * dims.2 * dims.3;
    Array4::from_shape_vec(dims, test_utils::uniform_vec(seed, n, lo, hi)).unwrap()
}

/// A seeded vector as an `Array1`.
fn arr1(seed: u64, n: usize, lo: f32, hi: f32) -> Array1<f32> {
    Array1::from(test_utils::uniform_vec(seed, n, lo, hi))
}

/// Runs a layer forward into a fresh array, keeping what backward needs.
fn forward(layer: &dyn Layer, x: ArrayView3<'_, f32>) -> (Array3<f32>, Saved) {
    let shape = layer.output_shape(Shape::of(&x)).unwrap();
    let mut out = Array3::zeros(shape.dim());
    let mut saved = Saved::default();
    layer.forward(x, out.view_mut(), Some(&mut saved)).unwrap();
    (out, saved)
}

/// Runs a layer's input backward into a fresh array of the input's shape.
fn backward(
    layer: &dyn Layer,
    saved: &Saved,
    input_shape: Shape,
    grad_out: ArrayView3<'_, f32>,
) -> Array3<f32> {
    let mut gi = Array3::from_elem(input_shape.dim(), f32::NAN); // backward must overwrite everything
    layer
        .backward_input(saved, grad_out, gi.view_mut())
        .unwrap();
    gi
}

/// `⟨a, b⟩` in f64.
fn dot(a: &Array3<f32>, b: &Array3<f32>) -> f64 {
    test_utils::project(a.as_slice().unwrap(), b.as_slice().unwrap())
}

/// Finite-difference check of a layer's input gradient: `L(x) = Σ R ⊙ layer(x)` with a seeded random `R`.
#[track_caller]
fn check_layer_fd(layer: &dyn Layer, x: &Array3<f32>, seed: u64) {
    let shape = Shape::of(x);
    let (y, saved) = forward(layer, x.view());
    let r = arr3(seed, y.dim(), -1.0, 1.0);
    let analytic = backward(layer, &saved, shape, r.view());
    let f = |v: &[f32]| {
        let xv = ArrayView3::from_shape(shape.dim(), v).unwrap();
        let (y, _) = forward(layer, xv);
        test_utils::project(r.as_slice().unwrap(), y.as_slice().unwrap())
    };
    if let Err(e) = test_utils::check_grad(
        x.as_slice().unwrap(),
        analytic.as_slice().unwrap(),
        f,
        test_utils::GradCheck::default(),
    ) {
        panic!("layer `{}` on {shape}: {e}", layer.name());
    }
}
