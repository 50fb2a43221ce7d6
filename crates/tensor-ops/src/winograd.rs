//! Winograd F(2×2, 3×3) for 3×3 stride-1 convolutions (Lavin & Gray 2016): 16 multiplies per 2×2
//! output tile and input channel instead of 36, as 16 GEMMs `M_e = U_e · V_e` (`e` = position in the 4×4 tile).
//!
//! ```text
//! Y_tile = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A,      Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1]
//! G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1],          Aᵀ = [1 1 1 0; 0 1 −1 −1]
//! ```
//! `d` is the 4×4 input patch at `(2·ty − pt, 2·tx − pl)` (zero outside), `g` a 3×3 kernel. The input
//! gradient of such a layer is again a 3×3 stride-1 convolution, of `dY` with the flipped, transposed
//! kernel and padding `2 − p`, so it runs through the same code. Work items are fixed blocks of tile
//! rows, so results do not depend on the thread count. Agreement with im2col: see the `winograd` tests
//! (relative error below 1e-5 per unit of `Σ|w·x|` on VGG-like inputs).

use std::cell::RefCell;

use ndarray::{
    ArrayView1, ArrayView2, ArrayView3, ArrayViewMut2, ArrayViewMut3, Axis, ShapeBuilder,
};
use rayon::prelude::*;

use crate::Padding;
use crate::gemm::sgemm;

/// Target number of tiles (GEMM columns) per work item, bounded by the scratch size below.
const TILES: usize = 256;
/// Target size of each per-thread transform buffer, in floats (4 MiB); a work item is rounded up to
/// whole tile rows, so a buffer can exceed it by less than one tile row.
const SCRATCH_FLOATS: usize = 1 << 20;

thread_local! {
    /// Per-thread `V` and `M` buffers of a work item, grown once and reused.
    static SCRATCH: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
    /// The calling thread's transformed weights `U` (16 · rows · cols), grown once and reused.
    /// Unlike `SCRATCH`, it stays borrowed across a parallel section (see `conv3x3`).
    static WEIGHTS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Whether Winograd applies: 3×3 kernel, stride 1, and padding at most 2 on every side (so the
/// flipped convolution of the backward pass has non-negative padding).
pub(crate) fn applies(kernel: [usize; 2], stride: [usize; 2], pad: Padding) -> bool {
    kernel == [3, 3] && stride == [1, 1] && pad.to_array().iter().all(|&p| p <= 2)
}

/// Which kernel a layer of weights `W: [C_out, C_in·9]` contributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// `g[o][c] = W[o, c]`: the forward convolution.
    Forward,
    /// `g[c][o] = flip(W[o, c])`: the input gradient.
    Backward,
}

/// `U_e[r, s] = (G g_{r,s} Gᵀ)_e` into `u`, laid out `[rows][16][cols]` (so `U_e` is the strided matrix
/// at offset `e·cols` with row stride `16·cols`), with `(rows, cols) = (C_out, C_in)` forward and
/// `(C_in, C_out)` backward.
fn transform_weights(weight: ArrayView2<'_, f32>, dir: Direction, u: &mut [f32]) {
    let (c_out, k) = weight.dim();
    let c_in = k / 9;
    let cols = match dir {
        Direction::Forward => c_in,
        Direction::Backward => c_out,
    };
    let w = weight.as_standard_layout();
    let w = w.as_slice().expect("standard layout");
    u.par_chunks_mut(16 * cols)
        .enumerate()
        .for_each(|(r, out)| {
            for s in 0..cols {
                let (o, c) = match dir {
                    Direction::Forward => (r, s),
                    Direction::Backward => (s, r),
                };
                let base = o * k + c * 9;
                let mut g = [[0.0_f32; 3]; 3];
                for (i, row) in g.iter_mut().enumerate() {
                    for (j, v) in row.iter_mut().enumerate() {
                        *v = match dir {
                            Direction::Forward => w[base + i * 3 + j],
                            Direction::Backward => w[base + (2 - i) * 3 + (2 - j)],
                        };
                    }
                }
                // t = G g (4×3), then t Gᵀ (4×4).
                let mut t = [[0.0_f32; 3]; 4];
                for j in 0..3 {
                    t[0][j] = g[0][j];
                    t[1][j] = 0.5 * (g[0][j] + g[1][j] + g[2][j]);
                    t[2][j] = 0.5 * (g[0][j] - g[1][j] + g[2][j]);
                    t[3][j] = g[2][j];
                }
                for (i, ti) in t.iter().enumerate() {
                    let e = [
                        ti[0],
                        0.5 * (ti[0] + ti[1] + ti[2]),
                        0.5 * (ti[0] - ti[1] + ti[2]),
                        ti[2],
                    ];
                    for (j, v) in e.into_iter().enumerate() {
                        out[(i * 4 + j) * cols + s] = v;
                    }
                }
            }
        });
}

/// A 3×3 stride-1 convolution `output = conv(input, W) + bias` (forward) or its input gradient
/// `output = conv(input = dY, flip(Wᵀ))` (backward, `bias` empty), with padding `pad` on `input`.
///
/// `input` is `[C_a, H_a, W_a]` in standard layout, `output` `[C_b, H_a + pt + pb − 2, W_a + pl + pr − 2]`.
/// With `accumulate`, the result is added to `output` instead of replacing it.
pub(crate) fn conv3x3(
    dir: Direction,
    weight: ArrayView2<'_, f32>,
    bias: ArrayView1<'_, f32>,
    input: ArrayView3<'_, f32>,
    pad: Padding,
    mut output: ArrayViewMut3<'_, f32>,
    accumulate: bool,
) {
    let (c_a, h_a, w_a) = input.dim();
    let (c_b, h_b, w_b) = output.dim();
    debug_assert_eq!(h_b + 2, h_a + pad.top + pad.bottom);
    debug_assert_eq!(w_b + 2, w_a + pad.left + pad.right);
    let input = input.as_standard_layout();
    let x = input.as_slice().expect("standard layout");
    let ntx = w_b.div_ceil(2);
    let nty = h_b.div_ceil(2);
    let per_item = (SCRATCH_FLOATS / (16 * c_a.max(c_b))).clamp(1, TILES);
    let rows_per_item = per_item.div_ceil(ntx).max(1);
    WEIGHTS.with(|cell| {
        // This buffer stays borrowed while the work items run; if this thread steals the work of
        // another Winograd convolution meanwhile (callers that run networks inside rayon jobs), that
        // one finds it borrowed and uses a buffer of its own.
        let mut own = Vec::new();
        let mut shared = cell.try_borrow_mut();
        let buf: &mut Vec<f32> = match shared.as_deref_mut() {
            Ok(b) => b,
            Err(_) => &mut own,
        };
        if buf.len() < 16 * c_a * c_b {
            buf.resize(16 * c_a * c_b, 0.0);
        }
        let u = &mut buf[..16 * c_a * c_b];
        transform_weights(weight, dir, u);
        let u: &[f32] = u;
        output
            .axis_chunks_iter_mut(Axis(1), 2 * rows_per_item)
            .into_par_iter()
            .enumerate()
            .for_each(|(item, out)| {
                let ty0 = item * rows_per_item;
                let ty1 = (ty0 + rows_per_item).min(nty);
                let n = (ty1 - ty0) * ntx;
                SCRATCH.with(|cell| {
                    let mut guard = cell.borrow_mut();
                    let (v, m) = &mut *guard;
                    grow(v, 16 * c_a * n);
                    grow(m, 16 * c_b * n);
                    let v = &mut v[..16 * c_a * n];
                    let m = &mut m[..16 * c_b * n];
                    input_transform(x, (c_a, h_a, w_a), pad, ty0, ty1, ntx, v);
                    for e in 0..16 {
                        let ue = ArrayView2::from_shape(
                            (c_b, c_a).strides((16 * c_a, 1)),
                            &u[e * c_a..],
                        )
                        .expect("sized");
                        let ve =
                            ArrayView2::from_shape((c_a, n), &v[e * c_a * n..(e + 1) * c_a * n])
                                .expect("sized");
                        let me = ArrayViewMut2::from_shape(
                            (c_b, n),
                            &mut m[e * c_b * n..(e + 1) * c_b * n],
                        )
                        .expect("sized");
                        sgemm(1.0, ue, ve, 0.0, me);
                    }
                    output_transform(m, c_b, ty1 - ty0, ntx, bias, out, accumulate);
                });
            });
    });
}

/// `row[k]` = input column `k − left` of row `iy` of the `h × w` `plane`, 0 outside the plane (above,
/// below, left and right): one zero-padded input row of a tile row.
pub(crate) fn padded_row(
    row: &mut [f32],
    plane: &[f32],
    (h, w): (usize, usize),
    iy: usize,
    left: usize,
) {
    if iy >= h {
        row.fill(0.0);
        return;
    }
    let src = &plane[iy * w..(iy + 1) * w];
    let lo = left.min(row.len());
    let hi = (left + w).min(row.len());
    row[..lo].fill(0.0);
    row[lo..hi].copy_from_slice(&src[..hi - lo]);
    row[hi..].fill(0.0);
}

fn grow(buf: &mut Vec<f32>, len: usize) {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
}

/// `V_e[c, t] = (Bᵀ d B)_e` for the tiles of tile rows `[ty0, ty1)`, `t = (ty − ty0)·ntx + tx`.
fn input_transform(
    x: &[f32],
    (c_a, h_a, w_a): (usize, usize, usize),
    pad: Padding,
    ty0: usize,
    ty1: usize,
    ntx: usize,
    v: &mut [f32],
) {
    let n = (ty1 - ty0) * ntx;
    let width = 2 * ntx + 2;
    // Four padded input rows, then their transform along x: u[j][i][tx] for patch row i, column index j.
    let mut rows = vec![0.0_f32; 4 * width];
    let mut u = vec![0.0_f32; 16 * ntx];
    for c in 0..c_a {
        let plane = &x[c * h_a * w_a..(c + 1) * h_a * w_a];
        for ty in ty0..ty1 {
            for i in 0..4 {
                let row = &mut rows[i * width..(i + 1) * width];
                padded_row(
                    row,
                    plane,
                    (h_a, w_a),
                    (2 * ty + i).wrapping_sub(pad.top),
                    pad.left,
                );
            }
            for i in 0..4 {
                let row = &rows[i * width..(i + 1) * width];
                let (u0, rest) = u[i * 4 * ntx..(i + 1) * 4 * ntx].split_at_mut(ntx);
                let (u1, rest) = rest.split_at_mut(ntx);
                let (u2, u3) = rest.split_at_mut(ntx);
                for tx in 0..ntx {
                    let d = &row[2 * tx..2 * tx + 4];
                    u0[tx] = d[0] - d[2];
                    u1[tx] = d[1] + d[2];
                    u2[tx] = d[2] - d[1];
                    u3[tx] = d[1] - d[3];
                }
            }
            let t0 = (ty - ty0) * ntx;
            for j in 0..4 {
                let r = |i: usize| &u[(i * 4 + j) * ntx..(i * 4 + j + 1) * ntx];
                let (r0, r1, r2, r3) = (r(0), r(1), r(2), r(3));
                for (e, f) in [(0, 0), (1, 1), (2, 2), (3, 3)] {
                    let dst = &mut v[((e * 4 + j) * c_a + c) * n + t0..][..ntx];
                    match f {
                        0 => dst
                            .iter_mut()
                            .enumerate()
                            .for_each(|(k, d)| *d = r0[k] - r2[k]),
                        1 => dst
                            .iter_mut()
                            .enumerate()
                            .for_each(|(k, d)| *d = r1[k] + r2[k]),
                        2 => dst
                            .iter_mut()
                            .enumerate()
                            .for_each(|(k, d)| *d = r2[k] - r1[k]),
                        _ => dst
                            .iter_mut()
                            .enumerate()
                            .for_each(|(k, d)| *d = r1[k] - r3[k]),
                    }
                }
            }
        }
    }
}

/// `Y = Aᵀ m A + b` for every tile of the work item, clipped to the output (odd sizes); added to `out`
/// with `accumulate`.
fn output_transform(
    m: &[f32],
    c_b: usize,
    n_rows: usize,
    ntx: usize,
    bias: ArrayView1<'_, f32>,
    mut out: ArrayViewMut3<'_, f32>,
    accumulate: bool,
) {
    let n = n_rows * ntx;
    let (_, h_out, _) = out.dim();
    let mut s = vec![0.0_f32; 8 * ntx];
    let mut y = vec![0.0_f32; 4 * ntx];
    for o in 0..c_b {
        let b = bias.get(o).copied().unwrap_or(0.0);
        let mut plane = out.index_axis_mut(Axis(0), o);
        for r in 0..n_rows {
            let t0 = r * ntx;
            let me = |e: usize| &m[(e * c_b + o) * n + t0..][..ntx];
            // Along the patch rows: s0[j] = m0j + m1j + m2j, s1[j] = m1j − m2j − m3j.
            for j in 0..4 {
                let (m0, m1, m2, m3) = (me(j), me(4 + j), me(8 + j), me(12 + j));
                let (s0, s1) = s[2 * j * ntx..(2 * j + 2) * ntx].split_at_mut(ntx);
                for k in 0..ntx {
                    s0[k] = m0[k] + m1[k] + m2[k];
                    s1[k] = m1[k] - m2[k] - m3[k];
                }
            }
            // Along the patch columns.
            for a in 0..2 {
                let sj = |j: usize| &s[(2 * j + a) * ntx..(2 * j + a + 1) * ntx];
                let (q0, q1, q2, q3) = (sj(0), sj(1), sj(2), sj(3));
                let (y0, y1) = y[2 * a * ntx..(2 * a + 2) * ntx].split_at_mut(ntx);
                for k in 0..ntx {
                    y0[k] = q0[k] + q1[k] + q2[k] + b;
                    y1[k] = q1[k] - q2[k] - q3[k] + b;
                }
            }
            for a in 0..2 {
                let oy = 2 * r + a;
                if oy >= h_out {
                    break;
                }
                let mut row = plane.row_mut(oy);
                let row = row.as_slice_mut().expect("output rows are contiguous");
                let (y0, y1) = y[2 * a * ntx..(2 * a + 2) * ntx].split_at(ntx);
                let pairs = row.chunks_mut(2).zip(y0.iter().zip(y1));
                if accumulate {
                    for (pair, (&v0, &v1)) in pairs {
                        pair[0] += v0;
                        if let Some(p1) = pair.get_mut(1) {
                            *p1 += v1;
                        }
                    }
                } else {
                    for (pair, (&v0, &v1)) in pairs {
                        pair[0] = v0;
                        if let Some(p1) = pair.get_mut(1) {
                            *p1 = v1;
                        }
                    }
                }
            }
        }
    }
}
