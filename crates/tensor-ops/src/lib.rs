//! Convolution, ReLU and pooling with backprop for `[C, H, W]` f32 activations. Under construction: see issue 3.
//!
//! PLACEHOLDER (branch `costs`): this file holds only the [`Gemm`] trait and a plain [`CpuGemm`], with the
//! signature fixed in `docs/ARCHITECTURE.md`, so that `nst-costs` compiles before the tensor-ops branch lands.
//! The tensor-ops branch replaces this whole file; keep its version when merging.

#![warn(missing_docs)]

use ndarray::{ArrayView2, ArrayViewMut2};

/// General matrix multiply `C ← α·A·B + β·C` on f32 matrices of any strides.
///
/// With `β = 0` the previous contents of `C` are not read (BLAS convention).
pub trait Gemm: Send + Sync {
    /// `C ← α·A·B + β·C`, with `A: [m, k]`, `B: [k, n]`, `C: [m, n]`.
    ///
    /// # Panics
    /// If the shapes do not agree.
    fn gemm(
        &self,
        alpha: f32,
        a: ArrayView2<f32>,
        b: ArrayView2<f32>,
        beta: f32,
        c: ArrayViewMut2<f32>,
    );
}

/// CPU GEMM. PLACEHOLDER: plain `ndarray::linalg::general_mat_mul` (matrixmultiply, single-threaded);
/// the tensor-ops branch replaces it with the parallel, deterministic implementation.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuGemm;

impl Gemm for CpuGemm {
    #[track_caller]
    fn gemm(
        &self,
        alpha: f32,
        a: ArrayView2<f32>,
        b: ArrayView2<f32>,
        beta: f32,
        mut c: ArrayViewMut2<f32>,
    ) {
        ndarray::linalg::general_mat_mul(alpha, &a, &b, beta, &mut c);
    }
}
