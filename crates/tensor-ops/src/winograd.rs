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
//! rows (and, on small images, groups of output channels: `Split`), so results do not depend on the
//! thread count. The GEMMs run on `packed_gemm`'s microkernel:
//! the transforms write `U` and `V` directly in its panel layouts, so nothing is packed per call.
//! Agreement with im2col: see the `winograd` tests (relative error below 1e-5 per unit of `Σ|w·x|` on
//! VGG-like inputs) and `winograd/tests.rs` (every microkernel against the direct convolution).

use std::cell::RefCell;

use ndarray::{ArrayView1, ArrayView2, ArrayView3, ArrayViewMut3, Axis};
use rayon::prelude::*;

use crate::Padding;
use crate::packed_gemm::{Kernel, PanelGemm};

/// Target number of tiles (GEMM columns) per work item, bounded by the scratch size below.
const TILES: usize = 256;
/// Target size of each per-thread transform buffer, in floats (4 MiB); a work item is rounded up to
/// whole tile rows, so a buffer can exceed it by less than one tile row.
const SCRATCH_FLOATS: usize = 1 << 20;
/// The widest panel of `V` a microkernel may ask for (`transform_rows` keeps two rows of it on the stack).
const MAX_NR: usize = 64;

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

/// `U_e[r, s] = (G g_{r,s} Gᵀ)_e` into `u` in the microkernel's packed-A layout: panels of `mr` rows,
/// each holding its 16 matrices one after the other, `u[p][e][s][r % mr]` with `p = r / mr` (rows past
/// `rows` zero), so that `U_e`'s panel `p` starts at `(16·p + e)·mr·cols`. `(rows, cols)` is
/// `(C_out, C_in)` forward and `(C_in, C_out)` backward.
fn transform_weights(weight: ArrayView2<'_, f32>, dir: Direction, mr: usize, u: &mut [f32]) {
    let (c_out, k) = weight.dim();
    let c_in = k / 9;
    let (rows, cols) = match dir {
        Direction::Forward => (c_out, c_in),
        Direction::Backward => (c_in, c_out),
    };
    let w = weight.as_standard_layout();
    let w = w.as_slice().expect("standard layout");
    // The panel height is a constant inside the loops, so that the `mr` lanes are vectorized and
    // stored without a `memcpy` call.
    let panel: PanelFn = match mr {
        4 => transform_panel::<4>,
        6 => transform_panel::<6>,
        8 => transform_panel::<8>,
        12 => transform_panel::<12>,
        16 => transform_panel::<16>,
        _ => unreachable!("no microkernel has {mr} rows per panel"),
    };
    u.par_chunks_mut(16 * mr * cols)
        .enumerate()
        .for_each(|(p, out)| panel(w, k, dir, (rows, cols), p, out));
}

/// [`transform_panel`] for one panel height.
type PanelFn = fn(&[f32], usize, Direction, (usize, usize), usize, &mut [f32]);

/// Panel `p` of [`transform_weights`] (rows `p·MR … p·MR + MR − 1`) into `out`, a column at a time.
fn transform_panel<const MR: usize>(
    w: &[f32],
    k: usize,
    dir: Direction,
    (rows, cols): (usize, usize),
    p: usize,
    out: &mut [f32],
) {
    let live = rows.saturating_sub(p * MR).min(MR);
    // g[tap][lane]: the (flipped, when backward) 3×3 kernels of the panel's rows; rows past `rows` stay 0.
    let mut g = [[0.0_f32; MR]; 9];
    for s in 0..cols {
        for (rl, r) in (p * MR..p * MR + live).enumerate() {
            kernel_taps(w, k, dir, (r, s), |tap, v| g[tap][rl] = v);
        }
        for (i, e) in kernel_transform(&g).iter().enumerate() {
            out[(i * cols + s) * MR..][..MR].copy_from_slice(e);
        }
    }
}

/// Calls `put(tap, value)` for the nine taps (row-major) of the 3×3 kernel at row `r`, column `s` of
/// a transform in direction `dir` (`W[r, s]` forward, `W[s, r]` flipped backward), `w` being the
/// `[C_out, k = C_in·9]` weights.
#[inline(always)]
pub(crate) fn kernel_taps(
    w: &[f32],
    k: usize,
    dir: Direction,
    (r, s): (usize, usize),
    mut put: impl FnMut(usize, f32),
) {
    let (o, c) = match dir {
        Direction::Forward => (r, s),
        Direction::Backward => (s, r),
    };
    for (tap, &v) in w[o * k + c * 9..][..9].iter().enumerate() {
        put(
            match dir {
                Direction::Forward => tap,
                Direction::Backward => 8 - tap,
            },
            v,
        );
    }
}

/// `G g Gᵀ` (row-major 4×4, per lane) of `L` 3×3 kernels `g[tap][lane]` (taps row-major).
fn kernel_transform<const L: usize>(g: &[[f32; L]; 9]) -> [[f32; L]; 16] {
    // t = G g (4×3), then t Gᵀ (4×4).
    let mut t = [[[0.0_f32; L]; 3]; 4];
    for j in 0..3 {
        for l in 0..L {
            let (g0, g1, g2) = (g[j][l], g[3 + j][l], g[6 + j][l]);
            t[0][j][l] = g0;
            t[1][j][l] = 0.5 * (g0 + g1 + g2);
            t[2][j][l] = 0.5 * (g0 - g1 + g2);
            t[3][j][l] = g2;
        }
    }
    let mut e = [[0.0_f32; L]; 16];
    for (i, ti) in t.iter().enumerate() {
        for l in 0..L {
            let (t0, t1, t2) = (ti[0][l], ti[1][l], ti[2][l]);
            e[4 * i][l] = t0;
            e[4 * i + 1][l] = 0.5 * (t0 + t1 + t2);
            e[4 * i + 2][l] = 0.5 * (t0 - t1 + t2);
            e[4 * i + 3][l] = t2;
        }
    }
    e
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
    output: ArrayViewMut3<'_, f32>,
    accumulate: bool,
) {
    conv3x3_with(
        Kernel::best(),
        dir,
        weight,
        bias,
        input,
        pad,
        output,
        accumulate,
    );
}

/// [`conv3x3`] with a given GEMM microkernel (the tests run every kernel the CPU has; F(4×4) hands
/// small outputs over with its own).
#[expect(
    clippy::too_many_arguments,
    reason = "conv3x3's operands, plus the microkernel the tests choose"
)]
pub(crate) fn conv3x3_with(
    kernel: Kernel,
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
    let (mr, nr) = (kernel.mr, kernel.nr);
    assert!(nr <= MAX_NR, "{kernel:?} has panels wider than {MAX_NR}");
    let split = Split::new((nty, ntx), (c_a, c_b), mr);
    let c_b_pad = c_b.div_ceil(mr) * mr;
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
        grow(buf, 16 * c_b_pad * c_a);
        let u = &mut buf[..16 * c_b_pad * c_a];
        transform_weights(weight, dir, mr, u);
        let u: &[f32] = u;
        let job = Job {
            kernel,
            x,
            input: (c_a, h_a, w_a),
            pad,
            ntx,
            nty,
            u,
            bias,
            accumulate,
        };
        output
            .axis_chunks_iter_mut(Axis(0), split.group)
            .into_par_iter()
            .enumerate()
            .for_each(|(g, mut out_g)| {
                out_g
                    .axis_chunks_iter_mut(Axis(1), 2 * split.rows)
                    .into_par_iter()
                    .enumerate()
                    .for_each(|(item, out)| {
                        let ty0 = item * split.rows;
                        job.item(g * split.group, (ty0, (ty0 + split.rows).min(nty)), out);
                    });
            });
    });
}

/// How a convolution's output is cut into work items: blocks of `rows` tile rows, as equal as the
/// row count allows, times groups of `group` output channels. Both follow from the shapes alone,
/// so results do not depend on the thread count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Split {
    rows: usize,
    group: usize,
}

/// Fewest work items a convolution is cut into where its shapes allow (so that a few threads all
/// have work on the deep layers of a small image).
const MIN_ITEMS: usize = 4;
/// Fewest output channels per group: each group repeats the input transform (conv5_1 at 400×300,
/// forward, one thread: 4 groups of 128 took 20–27 ms of CPU time against 16.7 ms for one item;
/// groups of 256 repeat it half as often).
const GROUP_MIN_CHANNELS: usize = 256;

impl Split {
    /// Tile-row blocks of at most [`TILES`] tiles and [`SCRATCH_FLOATS`] per buffer, made equal;
    /// fewer than [`MIN_ITEMS`] blocks also split the output channels into groups of whole
    /// `mr`-row panels, of at least [`GROUP_MIN_CHANNELS`] (each group transforms the input itself).
    fn new((nty, ntx): (usize, usize), (c_a, c_b): (usize, usize), mr: usize) -> Split {
        let per_item = (SCRATCH_FLOATS / (16 * c_a.max(c_b))).clamp(1, TILES);
        let blocks = nty.div_ceil(per_item.div_ceil(ntx).max(1)).max(1);
        let rows = nty.div_ceil(blocks).max(1);
        let panels = c_b.div_ceil(mr).max(1);
        let groups = MIN_ITEMS
            .div_ceil(blocks)
            .min(c_b.div_ceil(GROUP_MIN_CHANNELS))
            .clamp(1, panels);
        let group = panels.div_ceil(groups) * mr;
        Split { rows, group }
    }
}

/// What every work item of one [`conv3x3_with`] call shares.
struct Job<'a> {
    kernel: Kernel,
    /// The input, `[C_a, H_a, W_a]` in standard layout.
    x: &'a [f32],
    input: (usize, usize, usize),
    pad: Padding,
    ntx: usize,
    nty: usize,
    /// The transformed weights, in [`transform_weights`]'s layout.
    u: &'a [f32],
    bias: ArrayView1<'a, f32>,
    accumulate: bool,
}

impl Job<'_> {
    /// The output channels `o0 ..` (as many as `out` has) of tile rows `[ty0, ty1)`: input transform,
    /// 16 GEMMs, output transform, in the calling thread's scratch buffers.
    fn item(&self, o0: usize, (ty0, ty1): (usize, usize), out: ArrayViewMut3<'_, f32>) {
        debug_assert!(ty1 <= self.nty);
        let (mr, nr) = (self.kernel.mr, self.kernel.nr);
        let c_a = self.input.0;
        let c_b = out.dim().0;
        let c_b_pad = c_b.div_ceil(mr) * mr;
        let n = (ty1 - ty0) * self.ntx;
        let n_pad = n.div_ceil(nr) * nr;
        let bias = if self.bias.is_empty() {
            self.bias
        } else {
            self.bias.slice_move(ndarray::s![o0..o0 + c_b])
        };
        // Panels of U start at multiples of 16·mr·C_a; this group's rows start at panel o0 / mr.
        let u = &self.u[o0 / mr * 16 * mr * c_a..];
        SCRATCH.with(|cell| {
            let mut guard = cell.borrow_mut();
            let (v, m) = &mut *guard;
            grow(v, 16 * c_a * n_pad);
            grow(m, 16 * c_b_pad * n_pad);
            let v = &mut v[..16 * c_a * n_pad];
            let m = &mut m[..16 * c_b_pad * n_pad];
            input_transform(self.x, self.input, self.pad, (ty0, ty1, self.ntx), nr, v);
            let g = PanelGemm {
                m_panels: c_b_pad / mr,
                n_panels: n_pad / nr,
                k: c_a,
                a_stride: 16 * mr * c_a,
                b_stride: nr * c_a,
                ldc: n_pad,
                // Columns past the item's tiles are never read (`output_transform` reads `ntx` tiles
                // a row).
                n,
            };
            for ((e, ve), me) in v
                .chunks_exact(c_a * n_pad)
                .enumerate()
                .zip(m.chunks_exact_mut(c_b_pad * n_pad))
            {
                self.kernel.gemm(&g, &u[e * mr * c_a..], ve, me);
            }
            let rows = ty1 - ty0;
            output_transform(
                m,
                (c_b, c_b_pad),
                rows,
                self.ntx,
                bias,
                out,
                self.accumulate,
            );
        });
    }
}

/// `row[k]` = input column `k − left` of row `iy` of the `h × w` `plane`, 0 outside the plane (above,
/// below, left and right): one zero-padded input row of a tile row.
#[inline(always)]
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

/// `V_e[c, t] = (Bᵀ d B)_e` for the tiles of tile rows `[ty0, ty1)`, `t = (ty − ty0)·ntx + tx`, in the
/// microkernel's packed-B layout: `v[e][t / nr][c][t % nr]`, with the `n_pad = ⌈n / nr⌉·nr` tiles of
/// the last panel past `n` set to zero.
///
/// Panels are the outer loop and channels the inner one, so that each of the 16 matrices is written
/// front to back in runs of `nr` floats (16 write streams); a panel's tiles fall into one segment per
/// tile row they touch.
fn input_transform(
    x: &[f32],
    (c_a, h_a, w_a): (usize, usize, usize),
    pad: Padding,
    (ty0, ty1, ntx): (usize, usize, usize),
    nr: usize,
    v: &mut [f32],
) {
    let n = (ty1 - ty0) * ntx;
    let n_pad = n.div_ceil(nr) * nr;
    let ve_len = c_a * n_pad;
    let width = 2 * nr + 2;
    // Four zero-padded input rows of a segment, then their transform along x: xt[i][j][lane].
    let mut rows = vec![0.0_f32; 4 * width];
    let mut xt = vec![0.0_f32; 16 * nr];
    for q in 0..n_pad / nr {
        let (t_begin, t_end) = (q * nr, ((q + 1) * nr).min(n));
        for c in 0..c_a {
            let plane = &x[c * h_a * w_a..(c + 1) * h_a * w_a];
            let dst = q * nr * c_a + c * nr;
            let mut t = t_begin;
            while t < t_end {
                let (ty, tx0) = (ty0 + t / ntx, t % ntx);
                let len = (ntx - tx0).min(t_end - t);
                let (col0, cols) = ((2 * tx0).wrapping_sub(pad.left), 2 * len + 2);
                let mut d: [&[f32]; 4] = [&[]; 4];
                for (i, (di, buf)) in d.iter_mut().zip(rows.chunks_exact_mut(width)).enumerate() {
                    let iy = (2 * ty + i).wrapping_sub(pad.top);
                    *di = if iy < h_a && col0 < w_a && col0 + cols <= w_a {
                        // Inside the plane: read it in place.
                        &plane[iy * w_a + col0..][..cols]
                    } else {
                        patch_row(&mut buf[..cols], plane, (h_a, w_a), iy, 2 * tx0, pad.left);
                        &buf[..cols]
                    };
                }
                transform_rows(d, len, &mut xt);
                let lane = t - t_begin;
                for j in 0..4 {
                    let r = |i: usize| &xt[(i * 4 + j) * nr..][..len];
                    let (r0, r1, r2, r3) = (r(0), r(1), r(2), r(3));
                    let at = |i: usize| (i * 4 + j) * ve_len + dst + lane;
                    sub(&mut v[at(0)..][..len], r0, r2);
                    add(&mut v[at(1)..][..len], r1, r2);
                    sub(&mut v[at(2)..][..len], r2, r1);
                    sub(&mut v[at(3)..][..len], r1, r3);
                }
                t += len;
            }
            if t_end - t_begin < nr {
                for e in 0..16 {
                    v[e * ve_len + dst + t_end - t_begin..][..nr - (t_end - t_begin)].fill(0.0);
                }
            }
        }
    }
}

/// `row[k]` = column `col0 + k − left` of row `iy` of the `h × w` `plane`, 0 outside the plane.
fn patch_row(
    row: &mut [f32],
    plane: &[f32],
    (h, w): (usize, usize),
    iy: usize,
    col0: usize,
    left: usize,
) {
    if iy >= h {
        row.fill(0.0);
        return;
    }
    let src = &plane[iy * w..(iy + 1) * w];
    // Destination indices whose source column lies in [0, w).
    let lo = left.saturating_sub(col0).min(row.len());
    let hi = (left + w).saturating_sub(col0).clamp(lo, row.len());
    row[..lo].fill(0.0);
    row[lo..hi].copy_from_slice(&src[col0 + lo - left..col0 + hi - left]);
    row[hi..].fill(0.0);
}

/// `xt[i][j][tx]`: the transform along x of the four input rows `d[i]` of `len` tiles,
/// `[d0 − d2, d1 + d2, d2 − d1, d1 − d3]` of the columns `2·tx … 2·tx + 3`; each row is split into
/// its even and odd columns first, so that the four are element-wise operations the compiler vectorizes.
fn transform_rows(d: [&[f32]; 4], len: usize, xt: &mut [f32]) {
    let nr = xt.len() / 16;
    let mut even = [0.0_f32; MAX_NR + 1];
    let mut odd = [0.0_f32; MAX_NR + 1];
    for (i, row) in d.into_iter().enumerate() {
        for ((pair, e), o) in row[..2 * len + 2]
            .chunks_exact(2)
            .zip(&mut even)
            .zip(&mut odd)
        {
            *e = pair[0];
            *o = pair[1];
        }
        let (u0, rest) = xt[i * 4 * nr..(i + 1) * 4 * nr].split_at_mut(nr);
        let (u1, rest) = rest.split_at_mut(nr);
        let (u2, u3) = rest.split_at_mut(nr);
        let (e0, e1) = (&even[..len], &even[1..=len]);
        let (o0, o1) = (&odd[..len], &odd[1..=len]);
        sub(&mut u0[..len], e0, e1);
        add(&mut u1[..len], o0, e1);
        sub(&mut u2[..len], e1, o0);
        sub(&mut u3[..len], o0, o1);
    }
}

fn add(out: &mut [f32], a: &[f32], b: &[f32]) {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = x + y;
    }
}

fn sub(out: &mut [f32], a: &[f32], b: &[f32]) {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = x - y;
    }
}

/// `Y = Aᵀ m A + b` for every tile of the work item, clipped to the output (odd sizes); `m` holds the
/// 16 matrices `M_e: [c_b_pad, n_pad]` one after the other (rows past `c_b` and columns past the
/// work item's tiles are not read). With `accumulate`, `Y` is added to `out`.
fn output_transform(
    m: &[f32],
    (c_b, c_b_pad): (usize, usize),
    n_rows: usize,
    ntx: usize,
    bias: ArrayView1<'_, f32>,
    mut out: ArrayViewMut3<'_, f32>,
    accumulate: bool,
) {
    let n_pad = m.len() / (16 * c_b_pad);
    let (_, h_out, w_out) = out.dim();
    let mut s = vec![0.0_f32; 8 * ntx];
    let mut y = vec![0.0_f32; 4 * ntx];
    for o in 0..c_b {
        let b = bias.get(o).copied().unwrap_or(0.0);
        let mut plane = out.index_axis_mut(Axis(0), o);
        for r in 0..n_rows {
            let t0 = r * ntx;
            let me = |e: usize| &m[(e * c_b_pad + o) * n_pad + t0..][..ntx];
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
                // Whole pairs first (a branch-free interleave the compiler vectorizes), then the
                // last column of an odd width.
                let pairs = w_out / 2;
                let row_pairs = row[..2 * pairs].chunks_exact_mut(2).zip(y0).zip(y1);
                if accumulate {
                    for ((pair, &a0), &a1) in row_pairs {
                        pair[0] += a0;
                        pair[1] += a1;
                    }
                    if w_out % 2 == 1 {
                        row[w_out - 1] += y0[pairs];
                    }
                } else {
                    for ((pair, &a0), &a1) in row_pairs {
                        pair[0] = a0;
                        pair[1] = a1;
                    }
                    if w_out % 2 == 1 {
                        row[w_out - 1] = y0[pairs];
                    }
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
