//! The GEMM seam: `C ← α·A·B + β·C` on row-major (or any-strided) f32 matrices, and its CPU backend.

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis, s};
use rayon::prelude::*;

/// General matrix multiply `C ← α·A·B + β·C`, with `A: [m, k]`, `B: [k, n]`, `C: [m, n]`.
///
/// Views may have any strides (a transposed view is a valid operand). When `β = 0`, `C` is not
/// read, so it need not be initialized. Implementations are deterministic: the same operands
/// give bit-identical results on every call.
///
/// # Panics
/// Implementations panic when the shapes do not agree (a programming error, not outside input).
pub trait Gemm: Send + Sync {
    /// `C ← α·A·B + β·C`.
    fn gemm(
        &self,
        alpha: f32,
        a: ArrayView2<'_, f32>,
        b: ArrayView2<'_, f32>,
        beta: f32,
        c: ArrayViewMut2<'_, f32>,
    );

    /// A short name of the backend, for reports (`"cpu"`, `"cublas"`).
    fn name(&self) -> &'static str {
        "unnamed"
    }
}

/// The CPU GEMM: `matrixmultiply` (single-threaded per block) over fixed blocks of `C`, run in parallel with rayon.
///
/// The blocking depends only on `m`, `n` and `k`, never on the number of threads, so results are
/// bit-identical from run to run and across thread counts. When `C` is small and `k` large (the Gram
/// matrix `F·Fᵀ` of an early VGG layer: `m = n = 64`, `k = H·W`), `k` is split into fixed chunks whose
/// partial products are summed in chunk order.
///
/// # Examples
/// ```
/// use approx::assert_abs_diff_eq;
/// use ndarray::{array, Array2};
/// use tensor_ops::{CpuGemm, Gemm};
/// let a = array![[1.0_f32, 2.0], [3.0, 4.0]];
/// let mut c = Array2::zeros((2, 2));
/// CpuGemm.gemm(1.0, a.view(), a.t(), 0.0, c.view_mut()); // A·Aᵀ
/// assert_abs_diff_eq!(c, array![[5.0, 11.0], [11.0, 25.0]], epsilon = 1e-6);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuGemm;

/// Rows of `C` per block.
const BLOCK_M: usize = 128;
/// Columns of `C` per block.
const BLOCK_N: usize = 256;
/// Output blocks enough to keep two threads busy: with fewer default blocks and a long `k`, `k` is
/// split instead; otherwise the block path makes at least this many where [`MIN_BLOCK`] allows.
const MIN_BLOCKS: usize = 4;
/// The smallest side of a block of `C` that [`output_blocks`] makes.
const MIN_BLOCK: usize = 32;
/// Length of a `k` chunk when `k` is split.
const CHUNK_K: usize = 8192;
/// Below this many multiply-adds, run in one call on the current thread.
const SMALL: usize = 1 << 18;

impl Gemm for CpuGemm {
    #[track_caller]
    fn gemm(
        &self,
        alpha: f32,
        a: ArrayView2<'_, f32>,
        b: ArrayView2<'_, f32>,
        beta: f32,
        mut c: ArrayViewMut2<'_, f32>,
    ) {
        let (m, k, n) = gemm_dims(&a, &b, &c);
        if m == 0 || n == 0 {
            return;
        }
        if k == 0 {
            scale(beta, c);
            return;
        }
        let n_blocks = m.div_ceil(BLOCK_M) * n.div_ceil(BLOCK_N);
        if m * n * k <= SMALL {
            sgemm(alpha, a, b, beta, c);
        } else if n_blocks >= MIN_BLOCKS || k < 2 * CHUNK_K {
            // Independent output blocks: rows of C in bands, each band split in column blocks.
            let (block_m, block_n) = output_blocks(m, n);
            c.axis_chunks_iter_mut(Axis(0), block_m)
                .into_par_iter()
                .zip(a.axis_chunks_iter(Axis(0), block_m))
                .for_each(|(mut c_band, a_band)| {
                    c_band
                        .axis_chunks_iter_mut(Axis(1), block_n)
                        .into_par_iter()
                        .zip(b.axis_chunks_iter(Axis(1), block_n))
                        .for_each(|(c_block, b_block)| {
                            sgemm(alpha, a_band, b_block, beta, c_block)
                        });
                });
        } else {
            // Few output blocks and a long k: fixed k chunks, partial products summed in order.
            let n_chunks = k.div_ceil(CHUNK_K);
            let partials: Vec<Array2<f32>> = (0..n_chunks)
                .into_par_iter()
                .map(|i| {
                    let range = i * CHUNK_K..((i + 1) * CHUNK_K).min(k);
                    let mut p = Array2::<f32>::zeros((m, n));
                    sgemm(
                        1.0,
                        a.slice(s![.., range.clone()]),
                        b.slice(s![range, ..]),
                        0.0,
                        p.view_mut(),
                    );
                    p
                })
                .collect();
            let mut sum = Array2::<f32>::zeros((m, n));
            for p in &partials {
                sum += p;
            }
            scale(beta, c.view_mut());
            c.scaled_add(alpha, &sum);
        }
    }

    fn name(&self) -> &'static str {
        "cpu"
    }
}

/// The output blocks of [`CpuGemm`]'s block path: [`BLOCK_M`] × [`BLOCK_N`], halved (columns first,
/// down to [`MIN_BLOCK`]) while `C` would have fewer than [`MIN_BLOCKS`] of them, so that a product
/// of one or two blocks (a Gram's `128 × 256` block row at `k` = a few thousand) still keeps two
/// threads busy. Every element of `C` is one `sgemm` over the whole of `k`, whatever the blocks, so
/// the bits do not depend on them.
fn output_blocks(m: usize, n: usize) -> (usize, usize) {
    let (mut block_m, mut block_n) = (BLOCK_M, BLOCK_N);
    while m.div_ceil(block_m) * n.div_ceil(block_n) < MIN_BLOCKS {
        if block_n > MIN_BLOCK && block_n >= block_m {
            block_n /= 2;
        } else if block_m > MIN_BLOCK {
            block_m /= 2;
        } else {
            break;
        }
    }
    (block_m, block_n)
}

/// `(m, k, n)` of `C[m×n] = A[m×k]·B[k×n]`, shared by every backend.
///
/// # Panics
/// If the inner dimensions or `C`'s shape disagree (a caller bug: [`Gemm::gemm`] documents the shapes).
#[track_caller]
pub(crate) fn gemm_dims(
    a: &ArrayView2<'_, f32>,
    b: &ArrayView2<'_, f32>,
    c: &ArrayViewMut2<'_, f32>,
) -> (usize, usize, usize) {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    assert_eq!(k, k2, "gemm: A is {m}×{k} but B is {k2}×{n}");
    assert_eq!(
        c.dim(),
        (m, n),
        "gemm: C is {:?}, expected {m}×{n}",
        c.dim()
    );
    (m, k, n)
}

/// `C ← β·C`, with `β = 0` overwriting (so NaN in an uninitialized `C` does not survive).
fn scale(beta: f32, mut c: ArrayViewMut2<'_, f32>) {
    if beta == 0.0 {
        c.fill(0.0);
    } else if beta != 1.0 {
        c.mapv_inplace(|v| v * beta);
    }
}

/// One single-threaded `matrixmultiply::sgemm` call on strided views.
pub(crate) fn sgemm(
    alpha: f32,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    beta: f32,
    mut c: ArrayViewMut2<'_, f32>,
) {
    let (m, k) = a.dim();
    let (_, n) = b.dim();
    debug_assert_eq!(b.dim().0, k);
    debug_assert_eq!(c.dim(), (m, n));
    let [rsa, csa] = [a.strides()[0], a.strides()[1]];
    let [rsb, csb] = [b.strides()[0], b.strides()[1]];
    let [rsc, csc] = [c.strides()[0], c.strides()[1]];
    // SAFETY: the pointers and strides come from live ndarray views of shapes [m, k], [k, n] and
    // [m, n] (checked above), so every element matrixmultiply addresses lies inside its view; `c` is
    // borrowed mutably and cannot alias `a` or `b`.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            beta,
            c.as_mut_ptr(),
            rsc,
            csc,
        );
    }
}

#[cfg(test)]
mod tests;
