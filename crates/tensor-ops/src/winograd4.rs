//! Winograd F(4×4, 3×3) for 3×3 stride-1 convolutions (Lavin & Gray 2016): 36 multiplies per 4×4
//! output tile and input channel instead of 144 (F(2×2)'s `winograd` module: 16 per 2×2 tile, 64 per
//! 16 outputs), as 36 GEMMs `M_e = U_e · V_e` (`e` the position in the 6×6 tile):
//!
//! ```text
//! Y_tile = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A
//! Bᵀ = [4 0 −5 0 1 0; 0 −4 −4 1 1 0; 0 4 −4 −1 1 0; 0 −2 −1 2 1 0; 0 2 −1 −2 1 0; 0 4 0 −5 0 1]
//! G  = [¼ 0 0; −⅙ −⅙ −⅙; −⅙ ⅙ −⅙; 1/24 1/12 ⅙; 1/24 −1/12 ⅙; 0 0 1]
//! Aᵀ = [1 1 1 1 1 0; 0 1 −1 2 −2 0; 0 1 1 4 4 0; 0 1 −1 8 −8 1]
//! ```
//! `d` is the 6×6 input patch at `(4·ty − pt, 4·tx − pl)` (zero outside), `g` a 3×3 kernel. The input
//! gradient is, as for F(2×2), the same convolution of `dY` with the flipped, transposed kernel and
//! padding `2 − p`. The code is written for a tile type ([`Tile`]), so that other sizes can be tried.
//!
//! The output is computed in fixed blocks of tile rows, chosen from the shapes only (so results do
//! not depend on the thread count). With many blocks, blocks run in parallel, each whole on one
//! thread; with few (deep layers of small images), each block's three phases run in parallel: the
//! input transform (one item per input channel), the 36 GEMMs (one item per `e`; for a block whose
//! weights are transformed a tile row at a time, `Weights::ByRow`, six rounds of six), the output
//! transform (one item per output channel). The GEMMs run on `packed_gemm`'s microkernel: the
//! transforms write `U` and `V` directly in its panel layouts, as F(2×2)'s do, so nothing is packed
//! per call. Agreement with im2col: `winograd4_agrees_with_im2col_on_vgg_like_layers`, and
//! `winograd4/tests.rs` (every microkernel).

mod isa;

use std::cell::RefCell;
use std::ops::{Add, Mul, Sub};
use std::thread::LocalKey;

use ndarray::{ArrayView1, ArrayView2, ArrayView3, ArrayViewMut2, ArrayViewMut3, Axis};
use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use self::isa::Avx2;
use self::isa::{Isa, Portable, Simd};
use crate::Padding;
use crate::packed_gemm::{Kernel, PanelGemm};
use crate::row_mask::{self, RowBits};
use crate::winograd::Direction;

/// Most tiles (GEMM columns) per block.
const TILES: usize = 256;
/// Target size of a block's `V` and `M` buffers, in floats (4 MiB each); a block is rounded up to
/// whole tile rows, so a buffer can exceed it by less than one tile row.
const BLOCK_FLOATS: usize = 1 << 20;
/// Fewest blocks for which blocks run in parallel, one per thread (see `convolve`).
const LOCAL_MIN_BLOCKS: usize = 4;
/// Target size of a block's `V` and `M` buffers when a block's phases run in parallel (16 MiB each).
const PHASED_BLOCK_FLOATS: usize = 1 << 22;
/// Below this many 4×4 tiles, F(2×2) is used instead: the per-call weight transform (36 floats per
/// kernel) then costs more than F(4×4) saves in the GEMMs (VGG's conv5_1 at 400×300 has 35 tiles).
const MIN_TILES: usize = 64;

/// Fewest floats of `U` (16 MiB) for which a convolution of one block transforms its weights a tile
/// row at a time ([`Weights::ByRow`]) rather than whole before its GEMMs.
const BY_ROW_MIN_FLOATS: usize = 1 << 22;

/// [`BY_ROW_MIN_FLOATS`]; in unit tests any `U` but the smallest, so that the test layers run both
/// ways.
const fn by_row_min() -> usize {
    if cfg!(test) {
        1 << 12
    } else {
        BY_ROW_MIN_FLOATS
    }
}

/// Target size of the input phase's staging buffer, in floats (256 KiB): it stays in the core's L2
/// cache while a chunk of channels is transformed into it.
#[cfg(not(test))]
const STAGE_FLOATS: usize = 1 << 16;
/// In unit tests, a few channels per chunk (and a last chunk of fewer), so that the small test
/// layers run several chunks.
#[cfg(test)]
const STAGE_FLOATS: usize = 1 << 12;

/// Floats left unused after each matrix `M_e`: the output transform reads a row of each of the 36
/// side by side, and with `c_b_pad·n_pad` a multiple of 1024 (most layers) their rows would lie a
/// multiple of 4 KiB apart, all in the same sets of the L1 and L2 caches (more streams than ways).
/// A cache line more puts row `e` of them in the `e`-th set after the first.
const M_SKEW: usize = 16;

/// How many columns ahead the backward weight transform asks for the kernels it reads.
const WEIGHT_PREFETCH_COLS: usize = 4;

/// How far ahead (in floats) the output transform asks for the rows of `M` it reads.
const PREFETCH_AHEAD: usize = 32;

/// Largest `α` of the tile types (the size of the fixed arrays the 1-D transforms work on).
const MAX_A: usize = 6;
/// Largest `m` of the tile types.
const MAX_M: usize = 4;

/// What the 1-D input and output transforms compute on: one `f32`, or [`L8`] (eight tiles at once,
/// which the compiler keeps in vector registers).
pub(crate) trait Lane:
    Copy + Default + Add<Output = Self> + Sub<Output = Self> + Mul<f32, Output = Self>
{
}

impl Lane for f32 {}
impl Lane for L8 {}

/// Eight lanes of `f32` with element-wise arithmetic.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct L8([f32; 8]);

impl L8 {
    /// The first eight values of `src`.
    #[inline(always)]
    fn load(src: &[f32]) -> L8 {
        let a: &[f32; 8] = src[..8].try_into().expect("eight values");
        L8(*a)
    }
    /// The first `min(8, src.len())` values of `src`, the rest 0.
    #[inline(always)]
    fn load_partial(src: &[f32]) -> L8 {
        if src.len() >= 8 {
            return L8::load(src);
        }
        let mut v = [0.0; 8];
        for (d, &s) in v.iter_mut().zip(src) {
            *d = s;
        }
        L8(v)
    }
}

impl Add for L8 {
    type Output = L8;
    #[inline(always)]
    fn add(self, o: L8) -> L8 {
        L8(std::array::from_fn(|i| self.0[i] + o.0[i]))
    }
}

impl Sub for L8 {
    type Output = L8;
    #[inline(always)]
    fn sub(self, o: L8) -> L8 {
        L8(std::array::from_fn(|i| self.0[i] - o.0[i]))
    }
}

impl Mul<f32> for L8 {
    type Output = L8;
    #[inline(always)]
    fn mul(self, k: f32) -> L8 {
        L8(self.0.map(|v| v * k))
    }
}

/// One Winograd tile type F(m×m, 3×3): its size and its three 1-D transforms (`Bᵀ`, `G`, `Aᵀ`).
pub(crate) trait Tile {
    /// Output tile side `m`.
    const M: usize;
    /// Input tile side `α = m + 2`.
    const A: usize;
    /// `Bᵀ d` for `d` of length `α` (entries past `α` are ignored and left 0).
    fn input<V: Lane>(d: &[V; MAX_A]) -> [V; MAX_A];
    /// `G g` for a kernel row or column `g` of length 3, giving `α` values.
    fn weight<V: Lane>(g: [V; 3]) -> [V; MAX_A];
    /// `Aᵀ s` for `s` of length `α`, giving `m` values.
    fn output<V: Lane>(s: &[V; MAX_A]) -> [V; MAX_A];
}

/// F(4×4, 3×3): interpolation points 0, 1, −1, 2, −2, ∞.
#[derive(Debug, Clone, Copy)]
pub(crate) struct F4;

impl Tile for F4 {
    const M: usize = 4;
    const A: usize = 6;
    #[inline(always)]
    fn input<V: Lane>(d: &[V; MAX_A]) -> [V; MAX_A] {
        // Shared terms: Bᵀ rows 1–4 are (d4 − 4 d2) ± (d3 − 4 d1) and (d4 − d2) ± 2 (d3 − d1).
        let a = d[4] - d[2] * 4.0;
        let b = d[3] - d[1] * 4.0;
        let c = d[4] - d[2];
        let e = (d[3] - d[1]) * 2.0;
        [
            d[0] * 4.0 - d[2] * 5.0 + d[4],
            a + b,
            a - b,
            c + e,
            c - e,
            d[1] * 4.0 - d[3] * 5.0 + d[5],
        ]
    }
    #[inline(always)]
    fn weight<V: Lane>(g: [V; 3]) -> [V; MAX_A] {
        // Multiplications by the rounded reciprocals, not divisions: this runs for every kernel
        // on every call.
        let (even, odd) = (g[0] + g[2], g[1]);
        let (q, h) = (
            g[0] * (1.0 / 24.0) + g[2] * (1.0 / 6.0),
            g[1] * (1.0 / 12.0),
        );
        [
            g[0] * 0.25,
            (even + odd) * (-1.0 / 6.0),
            (even - odd) * (-1.0 / 6.0),
            q + h,
            q - h,
            g[2],
        ]
    }
    #[inline(always)]
    fn output<V: Lane>(s: &[V; MAX_A]) -> [V; MAX_A] {
        let z = V::default();
        let (p1, m1) = (s[1] + s[2], s[1] - s[2]);
        let (p2, m2) = (s[3] + s[4], s[3] - s[4]);
        [
            s[0] + p1 + p2,
            m1 + m2 * 2.0,
            p1 + p2 * 4.0,
            m1 + m2 * 8.0 + s[5],
            z,
            z,
        ]
    }
}

thread_local! {
    /// The calling thread's `U`, `V` and `M` buffers, grown once and reused. They stay borrowed
    /// while a convolution's parallel phases run (see `conv3x3`).
    static BUFFERS: RefCell<[Vec<f32>; 3]> = const { RefCell::new([Vec::new(), Vec::new(), Vec::new()]) };
    /// Per-thread `V` and `M` buffers of the blocks that run whole on one thread.
    static LOCAL: RefCell<[Vec<f32>; 2]> = const { RefCell::new([Vec::new(), Vec::new()]) };
    /// Per-thread staging `V` of a chunk of channels (`input_phase`).
    static STAGE: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// Per-thread row scratch of the input transform.
    static ROWS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's buffers `key`, or on fresh ones where they are borrowed already. They
/// stay borrowed while `f` runs, parallel phases included; if this thread steals the work of another
/// Winograd convolution meanwhile (callers that run networks inside rayon jobs), that one finds them
/// borrowed and uses buffers of its own.
fn with_buffers<B: Default, R>(
    key: &'static LocalKey<RefCell<B>>,
    f: impl FnOnce(&mut B) -> R,
) -> R {
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut shared) => f(&mut shared),
        Err(_) => f(&mut B::default()),
    })
}

/// `U_e[r, s] = (G g_{r,s} Gᵀ)_e` into `u` in the microkernel's packed-A layout, as F(2×2) does
/// (`winograd::transform_weights`) with `α²` matrices: panels of `mr` rows, each holding its `α²`
/// matrices one after the other, `u[p][e][s][r % mr]` with `p = r / mr` (rows past `rows` zero), so
/// that `U_e`'s panel `p` starts at `(α²·p + e)·mr·cols`. `(rows, cols)` is `(C_out, C_in)` forward
/// and `(C_in, C_out)` backward.
///
/// With `i_rows = (i0, i1)` other than `(0, α)`, only the matrices `U_e` of the tile rows
/// `i0 ≤ i < i1` (`e = i·α + j`) are made, each with the same bits, in the same layout with
/// `(i1 − i0)·α` matrices per panel instead of `α²` (see [`Weights::ByRow`]).
fn transform_weights<T: Tile>(
    simd: Simd,
    kernels: &Kernels<'_>,
    mr: usize,
    i_rows: (usize, usize),
    u: &mut [f32],
) {
    debug_assert!(i_rows.0 < i_rows.1 && i_rows.1 <= T::A, "tile rows of U");
    let per_panel = (i_rows.1 - i_rows.0) * T::A;
    // The panel height is a constant inside the loops, so that the lanes are stored without a
    // `memcpy` call.
    let panel: PanelFn = match mr {
        4 => transform_panel_with::<T, 4>,
        6 => transform_panel_with::<T, 6>,
        8 => transform_panel_with::<T, 8>,
        _ => unreachable!("no microkernel has {mr} rows per panel (at most 8 here)"),
    };
    u.par_chunks_mut(per_panel * mr * kernels.cols)
        .enumerate()
        .for_each(|(p, out)| panel(simd, kernels, p, i_rows, out));
}

/// The 3×3 kernels as [`transform_weights`] reads them: the weights `[C_out, C_in·9]` (`k = C_in·9`
/// floats a row), the direction, and the `rows × cols` matrices `U_e` they make.
#[derive(Clone, Copy)]
struct Kernels<'a> {
    w: &'a [f32],
    k: usize,
    dir: Direction,
    rows: usize,
    cols: usize,
}

impl<'a> Kernels<'a> {
    /// The kernels of `w`, the weights `[C_out, C_in·9]` of `dims` in standard layout, in
    /// direction `dir`.
    fn new(w: &'a [f32], dims: (usize, usize), dir: Direction) -> Kernels<'a> {
        let (c_out, k) = dims;
        let c_in = k / 9;
        let (rows, cols) = match dir {
            Direction::Forward => (c_out, c_in),
            Direction::Backward => (c_in, c_out),
        };
        Kernels {
            w,
            k,
            dir,
            rows,
            cols,
        }
    }
}

/// [`transform_panel_with`] for one tile type and panel height.
type PanelFn = fn(Simd, &Kernels<'_>, usize, (usize, usize), &mut [f32]);

/// [`transform_panel`] with the instruction set `simd`.
fn transform_panel_with<T: Tile, const MR: usize>(
    simd: Simd,
    kernels: &Kernels<'_>,
    p: usize,
    i_rows: (usize, usize),
    out: &mut [f32],
) {
    match simd {
        Simd::Portable => transform_panel::<T, MR, _>(Portable, kernels, p, i_rows, out),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: an `Avx2` exists only where the CPU has AVX2 and FMA (`Avx2::detect`).
        Simd::Avx2(isa) => unsafe { transform_panel_avx2::<T, MR>(isa, kernels, p, i_rows, out) },
    }
}

/// [`transform_panel`] compiled with AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn transform_panel_avx2<T: Tile, const MR: usize>(
    isa: Avx2,
    kernels: &Kernels<'_>,
    p: usize,
    i_rows: (usize, usize),
    out: &mut [f32],
) {
    transform_panel::<T, MR, _>(isa, kernels, p, i_rows, out);
}

/// Panel `p` of [`transform_weights`] (rows `p·MR … p·MR + MR − 1`, `MR ≤ 8`; the matrices of the
/// tile rows `i_rows`) into `out`, a column at a time, the panel's rows in the lanes of an `I::V`.
#[inline(always)]
fn transform_panel<T: Tile, const MR: usize, I: Isa>(
    isa: I,
    kernels: &Kernels<'_>,
    p: usize,
    i_rows: (usize, usize),
    out: &mut [f32],
) {
    let Kernels {
        w,
        k,
        dir,
        rows,
        cols,
    } = *kernels;
    let live = rows.saturating_sub(p * MR).min(MR);
    for s in 0..cols {
        // g[tap]: the (flipped, when backward) 3×3 kernels of the panel's rows; rows past `rows` are
        // 0. Forward, row r's kernel is w[r·k + 9s ..]; backward, w[s·k + 9r ..], flipped.
        let g = match dir {
            Direction::Forward => isa.taps(&w[p * MR * k + 9 * s..], k, live),
            Direction::Backward => {
                // Each column's kernels are a row of the weights further on (18 KiB apart for 512
                // input channels, a new page each time, which the hardware prefetchers do not
                // follow): ask for a later column's `9·MR` floats while this one is transformed.
                let later = (s + WEIGHT_PREFETCH_COLS) * k + 9 * p * MR;
                if let Some(ahead) = w.get(later..).and_then(|a| a.get(..9 * live)) {
                    for x in ahead.iter().step_by(16).chain(ahead.last()) {
                        isa.prefetch(x);
                    }
                }
                let mut g = isa.taps(&w[s * k + 9 * p * MR..], 9, live);
                g.reverse();
                g
            }
        };
        // t = G g (α×3), column by column; then each row of t times Gᵀ. (Arrays built whole, not
        // zeroed and then filled: the zeroing was a `memset` call per column.)
        let t: [[I::V; MAX_A]; 3] = std::array::from_fn(|j| T::weight([g[j], g[3 + j], g[6 + j]]));
        let t_rows = (i_rows.0..i_rows.1).map(|i| [t[0][i], t[1][i], t[2][i]]);
        for (di, t_row) in t_rows.enumerate() {
            for (j, v) in T::weight(t_row).iter().enumerate().take(T::A) {
                let e = di * T::A + j;
                out[(e * cols + s) * MR..][..MR].copy_from_slice(&isa.lanes(*v)[..MR]);
            }
        }
    }
}

/// A 3×3 stride-1 convolution `output = conv(input, W) + bias` (forward) or its input gradient
/// `output = conv(input = dY, flip(Wᵀ))` (backward, `bias` empty), with padding `pad` on `input`;
/// outputs of fewer than [`MIN_TILES`] 4×4 tiles go to F(2×2) (`winograd::conv3x3`).
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
    let kernel = Kernel::best();
    let (_, h_b, w_b) = output.dim();
    if h_b.div_ceil(F4::M) * w_b.div_ceil(F4::M) < MIN_TILES {
        crate::winograd::conv3x3_with(kernel, dir, weight, bias, input, pad, output, accumulate);
    } else {
        conv3x3_tiles::<F4>(kernel, dir, weight, bias, input, pad, output, accumulate);
    }
}

/// Whether [`conv3x3`] computes an output of `h × w` with F(4×4) tiles (else it hands it to F(2×2)).
pub(crate) fn uses_tiles(h: usize, w: usize) -> bool {
    h.div_ceil(F4::M) * w.div_ceil(F4::M) >= MIN_TILES
}

/// What the tile path does besides the convolution: a ReLU after the forward pass's bias (its mask
/// written by rows, see `row_mask`, when a writer is given) and maybe a 2×2 average pooling after
/// it; or, backward, the input `dY` read through the row mask of such a ReLU (`dY ⊙ mask`, the
/// ReLU's input gradient), from the pooling's output gradient when it pooled. Neither the ReLU's
/// output (when pooling) nor its input gradient is ever written out.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fusion<'a> {
    /// The plain convolution.
    None,
    /// Forward: `max(conv + b, 0)`, keeping the mask in the writer's mask when there is one; with
    /// `pool`, 2×2 average pooled (the output array is the pooled one).
    Relu {
        bits: Option<RowBits<'a>>,
        pool: bool,
    },
    /// Backward: the convolution of `dY ⊙ mask`, `mask` that of `dY`'s shape; `dY` is the input
    /// array, or with `unpool = Some((h, w))` the 2×2 average pooling's input gradient (of an `h × w`
    /// input) of the input array.
    MaskedInput {
        mask: &'a [u32],
        unpool: Option<(usize, usize)>,
    },
}

/// [`conv3x3`] on F(4×4) tiles with a [`Fusion`] (a ReLU does not go with `accumulate`): for
/// outputs where [`uses_tiles`] holds, which the caller checks.
///
/// # Panics
/// When the output is too small for the tiles, or a fused mask does not fit its shape.
pub(crate) fn conv3x3_fused(args: ConvArgs<'_>, accumulate: bool, fusion: Fusion<'_>) {
    let ((_, h_b, w_b), _) = full_dims(&args, fusion);
    assert!(uses_tiles(h_b, w_b), "an output of F(4×4) tiles");
    let how = (Kernel::best(), Simd::best(), by_row_min());
    conv3x3_tiles_fused::<F4>(how, args, accumulate, fusion);
}

/// The convolution's own output and input dimensions (the arrays are the pooled output, or the
/// pooled output's gradient as the input, under a pooling [`Fusion`]).
fn full_dims(
    (_, _, _, input, pad, output): &ConvArgs<'_>,
    fusion: Fusion<'_>,
) -> ((usize, usize, usize), (usize, usize, usize)) {
    let (c_in, h_in, w_in) = input.dim();
    let (h_a, w_a) = match fusion {
        Fusion::MaskedInput {
            unpool: Some(full), ..
        } => full,
        _ => (h_in, w_in),
    };
    let c_out = output.dim().0;
    let (h_b, w_b) = match fusion {
        Fusion::Relu { pool: true, .. } => (
            (h_a + pad.top + pad.bottom).saturating_sub(2),
            (w_a + pad.left + pad.right).saturating_sub(2),
        ),
        _ => (output.dim().1, output.dim().2),
    };
    ((c_out, h_b, w_b), (c_in, h_a, w_a))
}

/// [`conv3x3`] for any tile type and a given GEMM microkernel (the tests run every kernel the CPU
/// has), without the hand-over to F(2×2).
#[expect(
    clippy::too_many_arguments,
    reason = "conv3x3's operands, plus the microkernel the tests choose"
)]
pub(crate) fn conv3x3_tiles<T: Tile>(
    kernel: Kernel,
    dir: Direction,
    weight: ArrayView2<'_, f32>,
    bias: ArrayView1<'_, f32>,
    input: ArrayView3<'_, f32>,
    pad: Padding,
    output: ArrayViewMut3<'_, f32>,
    accumulate: bool,
) {
    let args = (dir, weight, bias, input, pad, output);
    let how = (kernel, Simd::best(), by_row_min());
    conv3x3_tiles_fused::<T>(how, args, accumulate, Fusion::None);
}

/// The operands of one convolution: direction, weights, bias, input, its padding, output.
pub(crate) type ConvArgs<'a> = (
    Direction,
    ArrayView2<'a, f32>,
    ArrayView1<'a, f32>,
    ArrayView3<'a, f32>,
    Padding,
    ArrayViewMut3<'a, f32>,
);

/// [`conv3x3_tiles`] with a [`Fusion`] (a ReLU does not go with `accumulate`), on a given GEMM
/// microkernel and the transforms of a given instruction set, transforming the weights by tile
/// rows ([`Weights::ByRow`]) in a convolution of one phased block when `U` has at least
/// `by_row_min` floats ([`Plan::by_row`]; the callers pass [`by_row_min`], the tests also 0 and
/// `usize::MAX`).
fn conv3x3_tiles_fused<T: Tile>(
    (kernel, simd, by_row_min): (Kernel, Simd, usize),
    (dir, weight, bias, input, pad, output): ConvArgs<'_>,
    accumulate: bool,
    fusion: Fusion<'_>,
) {
    assert!(
        !(matches!(fusion, Fusion::Relu { .. }) && accumulate),
        "a fused ReLU does not accumulate"
    );
    let args = (dir, weight, bias, input, pad, output);
    let (out_dims, in_dims) = full_dims(&args, fusion);
    let (dir, weight, bias, input, pad, output) = args;
    if let Fusion::MaskedInput { mask, .. } = fusion {
        let (c, h, w) = in_dims;
        let len = row_mask::mask_len(crate::Shape::new(c, h, w));
        assert_eq!(mask.len(), len, "the input's mask");
    }
    if let Fusion::Relu { pool: true, .. } = fusion {
        let (c, h, w) = out_dims;
        assert_eq!(output.dim(), (c, h / 2, w / 2), "the pooled output");
    }
    let w = weight.as_standard_layout();
    let kernels = Kernels::new(w.as_slice().expect("standard layout"), weight.dim(), dir);
    // The GEMMs' shared dimension is the kernels' columns, their output channels its rows.
    let (c_a, c_b) = (kernels.cols, kernels.rows);
    let mut geo = Geometry::new::<T>((kernel, simd), (c_a, c_b), in_dims, pad, out_dims);
    geo.plane = (input.dim().1, input.dim().2);
    let plan = Plan::new::<T>(&geo);
    with_buffers(&BUFFERS, |[u, v, m]| {
        let whole = geo.u_floats::<T>(T::A);
        let threads = rayon::current_num_threads();
        let weights = if plan.by_row::<T>(&geo, by_row_min, threads) {
            let row = geo.u_floats::<T>(1);
            grow(u, row);
            Weights::ByRow(kernels, &mut u[..row])
        } else {
            grow(u, whole);
            let u = &mut u[..whole];
            transform_weights::<T>(simd, &kernels, kernel.mr, (0, T::A), u);
            Weights::Whole(u)
        };
        let x = input.as_standard_layout();
        let x = x.as_slice().expect("standard layout");
        convolve::<T>(
            &geo,
            &plan,
            weights,
            (x, bias),
            output,
            (accumulate, fusion),
            v,
            m,
        );
    });
}

/// Where a convolution's GEMMs find the transformed weights `U` (packed, see [`transform_weights`]).
enum Weights<'a> {
    /// All `α²` matrices, transformed before the blocks run.
    Whole(&'a [f32]),
    /// For a convolution of one block whose `U` is large ([`Plan::by_row`]: conv4_1 … conv4_4 of
    /// VGG at 400×300, whose `U` is 18.9 and 37.7 MB): the `α` matrices of one tile row `i` at a
    /// time (`U_{i·α} … U_{i·α + α − 1}`, [`transform_weights`] with `(i, i + 1)`), each row
    /// transformed into the buffer just before its GEMMs. The block's GEMMs then read `U` from a
    /// buffer a sixth the size (6.3 MB at most for VGG, which a last-level cache of 32 MiB keeps)
    /// instead of from memory. Every `U_e` has the same bits either way.
    ByRow(Kernels<'a>, &'a mut [f32]),
}

/// How [`convolve`] cuts a convolution into blocks: a fixed number of tile rows per block, chosen
/// from the shapes only. With at least [`LOCAL_MIN_BLOCKS`] blocks, blocks run in parallel, each on
/// one thread with that thread's buffers (they stay in its caches); with fewer (deep layers of small
/// images), blocks run one after the other and each one's three phases run in parallel.
struct Plan {
    rows_per_block: usize,
    blocks: usize,
    local: bool,
}

impl Plan {
    fn new<T: Tile>(g: &Geometry) -> Plan {
        let a2 = T::A * T::A;
        let rows_for = |floats: usize| {
            let per_block = (floats / (a2 * g.c_a.max(g.c_b))).clamp(1, TILES);
            per_block.div_ceil(g.ntx).max(1)
        };
        let mut rows_per_block = rows_for(BLOCK_FLOATS);
        let local = g.nty.div_ceil(rows_per_block) >= LOCAL_MIN_BLOCKS;
        if !local {
            // Phases in parallel: the buffers need not fit one core's cache.
            rows_per_block = rows_for(PHASED_BLOCK_FLOATS);
        }
        Plan {
            rows_per_block,
            blocks: g.nty.div_ceil(rows_per_block),
            local,
        }
    }

    /// Whether [`Weights::ByRow`] is the way for the convolution `g` on `threads` threads: for one
    /// block (so not blocks run whole, which take at least [`LOCAL_MIN_BLOCKS`]) whose `U` has at
    /// least `min_floats`, where the `α` GEMMs of a tile row keep the threads busy (with
    /// more threads than that, the whole `U`'s `α²` GEMMs run side by side instead). Both ways give
    /// the same bits, so the results still do not depend on the thread count.
    fn by_row<T: Tile>(&self, g: &Geometry, min_floats: usize, threads: usize) -> bool {
        self.blocks == 1 && g.u_floats::<T>(T::A) >= min_floats && threads <= T::A
    }
}

/// Shapes of one Winograd convolution: the microkernel and the transforms' instruction set, channels
/// in and out (and out rounded up to whole panels), input size and padding, tiles per row and per
/// column.
struct Geometry {
    kernel: Kernel,
    simd: Simd,
    c_a: usize,
    c_b: usize,
    c_b_pad: usize,
    h_a: usize,
    w_a: usize,
    /// Rows and columns of the input array's planes (`h_a × w_a`, or pooled: see [`Fusion`]).
    plane: (usize, usize),
    /// Rows and columns of the convolution's output (before any pooling).
    out: (usize, usize),
    pad: Padding,
    ntx: usize,
    nty: usize,
}

impl Geometry {
    fn new<T: Tile>(
        (kernel, simd): (Kernel, Simd),
        (c_a, c_b): (usize, usize),
        (c_in, h_a, w_a): (usize, usize, usize),
        pad: Padding,
        (c_out, h_b, w_b): (usize, usize, usize),
    ) -> Geometry {
        debug_assert_eq!((c_in, c_out), (c_a, c_b));
        debug_assert_eq!(h_b + 2, h_a + pad.top + pad.bottom);
        debug_assert_eq!(w_b + 2, w_a + pad.left + pad.right);
        Geometry {
            kernel,
            simd,
            c_a,
            c_b,
            c_b_pad: c_b.div_ceil(kernel.mr) * kernel.mr,
            h_a,
            w_a,
            plane: (h_a, w_a),
            out: (h_b, w_b),
            pad,
            ntx: w_b.div_ceil(T::M),
            nty: h_b.div_ceil(T::M),
        }
    }

    /// Floats of the transformed weights of `tile_rows` tile rows (`tile_rows·α` matrices `U_e`,
    /// `c_b_pad × c_a` each): `α` rows make the whole `U`.
    fn u_floats<T: Tile>(&self, tile_rows: usize) -> usize {
        tile_rows * T::A * self.c_b_pad * self.c_a
    }

    /// `n` tiles rounded up to whole panels of `V`.
    fn n_pad(&self, n: usize) -> usize {
        n.div_ceil(self.kernel.nr) * self.kernel.nr
    }

    /// Floats from one matrix `M_e` to the next, for `n_pad` columns: `c_b_pad·n_pad` and
    /// [`M_SKEW`].
    fn m_stride(&self, n_pad: usize) -> usize {
        self.c_b_pad * n_pad + M_SKEW
    }
}

/// The blocks of [`conv3x3`] as `plan` cuts them, on the input `x` (standard layout) with the
/// transformed weights `weights` (a [`Weights::ByRow`] only for a plan of one phased block). Every
/// output element is computed by the same operations whatever the plan, so results do not depend
/// on the thread count.
#[expect(
    clippy::too_many_arguments,
    reason = "the operands, and the buffers of the calling thread"
)]
fn convolve<T: Tile>(
    g: &Geometry,
    plan: &Plan,
    mut weights: Weights<'_>,
    (x, bias): (&[f32], ArrayView1<'_, f32>),
    mut output: ArrayViewMut3<'_, f32>,
    (accumulate, fusion): (bool, Fusion<'_>),
    v: &mut Vec<f32>,
    m: &mut Vec<f32>,
) {
    let a2 = T::A * T::A;
    let (ntx, nty) = (g.ntx, g.nty);
    let Plan {
        rows_per_block,
        local,
        ..
    } = *plan;
    let n_pad_max = g.n_pad(rows_per_block.min(nty) * ntx);
    let (v_len, m_len) = (a2 * g.c_a * n_pad_max, a2 * g.m_stride(n_pad_max));
    // Output rows per tile row: m, or m / 2 when the output is pooled.
    let out_rows = match fusion {
        Fusion::Relu { pool: true, .. } => T::M / 2,
        _ => T::M,
    };
    let blocks = output.axis_chunks_iter_mut(Axis(1), out_rows * rows_per_block);
    if local {
        let Weights::Whole(u) = weights else {
            unreachable!("blocks run whole only on the whole U")
        };
        blocks.into_par_iter().enumerate().for_each(|(b, out)| {
            with_buffers(&LOCAL, |[v, m]| {
                grow(v, v_len);
                grow(m, m_len);
                let rows = (b * rows_per_block, ((b + 1) * rows_per_block).min(nty));
                let (weights, how) = (&mut Weights::Whole(u), (accumulate, fusion));
                block::<T>(g, weights, (x, bias), rows, out, how, (v, m), false);
            });
        });
    } else {
        grow(v, v_len);
        grow(m, m_len);
        for (b, out) in blocks.into_iter().enumerate() {
            let rows = (b * rows_per_block, ((b + 1) * rows_per_block).min(nty));
            let how = (accumulate, fusion);
            block::<T>(g, &mut weights, (x, bias), rows, out, how, (v, m), true);
        }
    }
}

/// One block of tile rows `[ty0, ty1)`: input transform, `α²` GEMMs, output transform, each phase
/// in parallel when `parallel` is set.
#[expect(
    clippy::too_many_arguments,
    reason = "the operands, the block, and the buffers it works in"
)]
fn block<T: Tile>(
    g: &Geometry,
    weights: &mut Weights<'_>,
    (x, bias): (&[f32], ArrayView1<'_, f32>),
    (ty0, ty1): (usize, usize),
    mut out: ArrayViewMut3<'_, f32>,
    (accumulate, fusion): (bool, Fusion<'_>),
    (v, m): (&mut [f32], &mut [f32]),
    parallel: bool,
) {
    let (c_a, c_b_pad, a2) = (g.c_a, g.c_b_pad, T::A * T::A);
    let (mr, nr) = (g.kernel.mr, g.kernel.nr);
    debug_assert!(ty1 <= g.nty);
    let n = (ty1 - ty0) * g.ntx;
    let n_pad = g.n_pad(n);
    // V in the microkernel's packed-B layout, `v[e][t / nr][c][t % nr]`, as F(2×2)'s
    // `winograd::input_transform` writes it; M row-major `[e][c_b_pad][n_pad]`, the matrices
    // `m_stride` floats apart (see `M_SKEW`).
    let v = &mut v[..a2 * c_a * n_pad];
    let dest = Scatter::new(v, c_a, n_pad, nr, n);
    input_phase::<T>(g, x, fusion, (ty0, ty1), &dest, parallel);
    let v: &[f32] = v;
    let m_stride = g.m_stride(n_pad);
    let m = &mut m[..a2 * m_stride];
    let pg = PanelGemm {
        m_panels: c_b_pad / mr,
        n_panels: n_pad / nr,
        k: c_a,
        a_stride: a2 * mr * c_a,
        b_stride: nr * c_a,
        ldc: n_pad,
        // Columns past the block's tiles are never read (`output_transform` stops at `n`).
        n,
    };
    match weights {
        Weights::Whole(u) => gemms(g, &pg, u, v, (m, m_stride), 0, parallel),
        Weights::ByRow(kernels, buf) => {
            // The α matrices of tile row i, then their GEMMs, row by row.
            let pg = PanelGemm {
                a_stride: T::A * mr * c_a,
                ..pg
            };
            for (i, m_row) in m.chunks_mut(T::A * m_stride).enumerate() {
                transform_weights::<T>(g.simd, kernels, mr, (i, i + 1), buf);
                gemms(g, &pg, buf, v, (m_row, m_stride), i * T::A, parallel);
            }
        }
    }
    let m: &[f32] = m;
    let relu = match fusion {
        Fusion::Relu { bits, pool } => Some(ReluOut {
            bits,
            y0: T::M * ty0,
            full: g.out,
            pool,
        }),
        _ => None,
    };
    let transform_out = |(o, plane): (usize, ArrayViewMut2<'_, f32>)| {
        let b = bias.get(o).copied().unwrap_or(0.0);
        let rows = (ty1 - ty0, g.ntx, n_pad);
        output_transform_with::<T>(g.simd, m, (o, m_stride), rows, b, plane, (accumulate, relu));
    };
    if parallel {
        out.axis_iter_mut(Axis(0))
            .into_par_iter()
            .enumerate()
            .for_each(transform_out);
    } else {
        out.axis_iter_mut(Axis(0))
            .enumerate()
            .for_each(transform_out);
    }
}

/// The GEMMs `M_e = U_e·V_e` of a block into `m`, the matrices `M_e` for `e = e0, e0 + 1, …` (each
/// `m_stride` floats, `pg.ldc` floats a row), in parallel when `parallel` is set; `u` starts with
/// `U_{e0}`'s first panel (`pg.a_stride` floats from one panel of a matrix to the next), `v` is the
/// block's whole `V`.
fn gemms(
    g: &Geometry,
    pg: &PanelGemm,
    u: &[f32],
    v: &[f32],
    (m, m_stride): (&mut [f32], usize),
    e0: usize,
    parallel: bool,
) {
    let v_len = g.c_a * pg.ldc;
    let gemm = |(i, me): (usize, &mut [f32])| {
        let e = e0 + i;
        let v_e = &v[e * v_len..][..v_len];
        g.kernel.gemm(pg, &u[i * g.kernel.mr * g.c_a..], v_e, me);
    };
    if parallel {
        m.par_chunks_mut(m_stride).enumerate().for_each(gemm);
    } else {
        m.chunks_mut(m_stride).enumerate().for_each(gemm);
    }
}

/// The input transforms of a block (tile rows `[ty0, ty1)`) into `dest`, by chunks of channels (in
/// parallel when `parallel` is set): each chunk is transformed into a staging `V` of its own
/// channels, small enough to stay in the core's cache, and then copied into `dest` a panel at a
/// time, the chunk's channels of a panel being one contiguous run there. Written directly, the 36
/// matrices' scattered rows cost more than the transform (a store missing the cache for every
/// few values); the copy writes long runs instead.
fn input_phase<T: Tile>(
    g: &Geometry,
    x: &[f32],
    fusion: Fusion<'_>,
    (ty0, ty1): (usize, usize),
    dest: &Scatter,
    parallel: bool,
) {
    let a2 = T::A * T::A;
    let nr = dest.nr;
    let n_pad = g.n_pad(dest.n);
    let per_chunk = (STAGE_FLOATS / (a2 * n_pad)).clamp(1, g.c_a);
    let chunk = |c0: usize| {
        let c1 = (c0 + per_chunk).min(g.c_a);
        let k = c1 - c0;
        with_buffers(&STAGE, |stage| {
            grow(stage, a2 * k * n_pad);
            let stage = &mut stage[..a2 * k * n_pad];
            let staged = Scatter::new(stage, k, n_pad, nr, dest.n);
            for c in c0..c1 {
                let source = Source::of_channel(x, g, fusion, c);
                // Each channel writes only its own rows of the staging panels (see `Scatter`).
                let rows = staged.channel(c - c0);
                let tiles = ((ty0, ty1), g.ntx);
                input_transform::<T>(g.simd, &source, (g.h_a, g.w_a), g.pad, tiles, &rows);
            }
            // Staged panel (e, q) is the chunk's rows of `dest`'s panel (e, q), in the same order.
            for (e, staged_e) in stage.chunks_exact(k * n_pad).enumerate() {
                for (q, run) in staged_e.chunks_exact(nr * k).enumerate() {
                    dest.put_channels(e, q, c0, run);
                }
            }
        });
    };
    let chunks = g.c_a.div_ceil(per_chunk);
    if parallel {
        (0..chunks)
            .into_par_iter()
            .for_each(|i| chunk(i * per_chunk));
    } else {
        (0..chunks).for_each(|i| chunk(i * per_chunk));
    }
}

/// Where the input transforms write `V` (packed-B layout, see `block`): element `(e, c, t)` at
/// `ptr + e·stride + (t / nr)·panel + c·nr + t % nr`, inside a buffer of `len` floats, for the `n`
/// tiles `t < n` of the block; `panel = nr·C_a`. (`input_phase` also makes one over its staging
/// buffer, for the `C_a` channels of a chunk.)
///
/// A transform writes one channel through its own [`Scatter::channel`], which writes only elements
/// of its channel `c` (lanes at `t ≥ n` are dropped, and a group of lanes is split where it crosses
/// into the next panel, so `t % nr < nr` never reaches the next channel's run); a chunk of channels
/// copies its staged panels into its own channels' runs ([`Scatter::put_channels`]): no two tasks
/// write the same element.
#[derive(Clone, Copy)]
struct Scatter {
    ptr: *mut f32,
    len: usize,
    stride: usize,
    panel: usize,
    nr: usize,
    n: usize,
}

// SAFETY: a `Scatter` is only a base pointer into a buffer that outlives the parallel section
// (`block`'s `v`, borrowed mutably for the whole input phase); the tasks that share it write
// disjoint elements (one channel each, see the type's docs and `store`).
unsafe impl Send for Scatter {}
// SAFETY: as for `Send`: shared use only writes disjoint elements.
unsafe impl Sync for Scatter {}

/// Where tile `t` lies in a matrix `V_e` of a channel's [`Scatter`] (`Scatter::at`).
#[derive(Clone, Copy)]
struct At {
    /// Offset of tile `t` from the start of `V_e`, in the channel's run of its panel.
    offset: usize,
    /// Whether the eight tiles `t … t + 7` are all `< n` and in the same panel (one 8-float write).
    whole: bool,
    /// The tile.
    t: usize,
}

impl Scatter {
    /// The `V` of `channels` channels and `n` tiles (`n_pad` rounded up to panels of `nr`) in `buf`
    /// (at least `α²·channels·n_pad` floats), which it writes while the input phase runs.
    fn new(buf: &mut [f32], channels: usize, n_pad: usize, nr: usize, n: usize) -> Scatter {
        Scatter {
            ptr: buf.as_mut_ptr(),
            len: buf.len(),
            stride: channels * n_pad,
            panel: nr * channels,
            nr,
            n,
        }
    }

    /// The elements of channel `c` (its `nr` floats in each panel).
    fn channel(self, c: usize) -> Scatter {
        let by = c * self.nr;
        assert!(by + self.nr <= self.panel, "a channel of the buffer");
        Scatter {
            // SAFETY: `by < panel ≤ len` (an empty buffer has no channels to ask for), so the pointer
            // stays inside the buffer.
            ptr: unsafe { self.ptr.add(by) },
            len: self.len - by,
            ..self
        }
    }

    /// Copies `run` (`k·nr` floats: channels `c0 … c0 + k − 1` of panel `q` of `V_e`, in order) into
    /// place: a task that owns those channels writes them whole.
    ///
    /// # Panics
    /// If the run is not whole channels, or leaves the panel or the buffer.
    fn put_channels(&self, e: usize, q: usize, c0: usize, run: &[f32]) {
        assert!(
            run.len().is_multiple_of(self.nr) && c0 * self.nr + run.len() <= self.panel,
            "whole channels inside the panel"
        );
        let i = e * self.stride + q * self.panel + c0 * self.nr;
        self.run(i, run.len()).copy_from_slice(run);
    }

    /// Where the group of eight tiles starting at `t` goes (the same for every `e`).
    #[inline(always)]
    fn at(&self, t: usize) -> At {
        let (q, j) = (t / self.nr, t % self.nr);
        At {
            offset: q * self.panel + j,
            whole: j + 8 <= self.nr && t + 8 <= self.n,
            t,
        }
    }

    /// Writes the lanes of `v` into `(e, t) … (e, t + 7)` of the channel, dropping those at `t ≥ n`:
    /// one vector store where the eight are whole, else the lanes up to the panel's end and the rest
    /// at the start of the next panel, each a masked store.
    #[inline(always)]
    fn store<I: Isa>(&self, isa: I, e: usize, at: At, v: I::V) {
        let base = e * self.stride + at.offset;
        if at.whole {
            isa.store(v, self.run(base, 8));
            return;
        }
        let live = self.n.saturating_sub(at.t).min(8);
        let first = live.min(self.nr - at.t % self.nr);
        if first > 0 {
            isa.store_lanes(v, (0, first), self.run(base, first));
        }
        if live > first {
            // The next panel's run of this channel starts `panel − j` floats on, `j = t % nr`.
            let next = base - at.t % self.nr + self.panel;
            isa.store_lanes(v, (first, live), self.run(next, live - first));
        }
    }

    /// The `len` floats at offset `i`, elements that only the calling task writes: a run of its
    /// channel inside one panel (`store`), or its chunk's whole channels of a panel (`put_channels`).
    ///
    /// # Panics
    /// If the run leaves the buffer.
    #[inline(always)]
    #[expect(
        clippy::mut_from_ref,
        reason = "tasks share a `Scatter` and each writes only its own channel's elements"
    )]
    fn run(&self, i: usize, len: usize) -> &mut [f32] {
        assert!(i + len <= self.len, "store inside the buffer");
        // SAFETY: `i + len ≤ len` (checked above) keeps the run inside the buffer. The callers pass
        // runs of the elements of their own channels (see the type's docs), which no other task
        // reads or writes while the input phase runs, and the slice lives only for one store.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(i), len) }
    }

    /// Sets the columns `t ∈ [n, n_pad)` of the last panel of each of the `a2` matrices to zero: the
    /// GEMM reads them (they only make columns of `M` that are never read, but keep them finite).
    fn zero_tail(&self, a2: usize) {
        let (q, j0) = (self.n / self.nr, self.n % self.nr);
        if j0 == 0 {
            return;
        }
        for e in 0..a2 {
            for j in j0..self.nr {
                self.write(e * self.stride + q * self.panel + j, 0.0);
            }
        }
    }

    /// Writes `x` at offset `i`, an element of this channel (`i % panel < nr`).
    #[inline(always)]
    fn write(&self, i: usize, x: f32) {
        assert!(i < self.len, "store inside the buffer");
        // SAFETY: `i < len` (checked above); the callers pass offsets `e·stride + q·panel + j` with
        // `j < nr`, this channel's elements, which no other task writes (see the type's docs).
        unsafe { self.ptr.add(i).write(x) };
    }
}

fn grow(buf: &mut Vec<f32>, len: usize) {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
}

/// `V_e[t] = (Bᵀ d B)_e` of one input channel's `plane` for the tiles of tile rows `[ty0, ty1)`,
/// `t = (ty − ty0)·ntx + tx` (`dest.n` tiles in all), written through `dest` (the channel's part of
/// `V`), with the padding columns of the last panel set to zero.
fn input_transform<T: Tile>(
    simd: Simd,
    source: &Source<'_>,
    (h_a, w_a): (usize, usize),
    pad: Padding,
    ((ty0, ty1), ntx): ((usize, usize), usize),
    dest: &Scatter,
) {
    let (a, mm) = (T::A, T::M);
    debug_assert_eq!(dest.n, (ty1 - ty0) * ntx);
    // Row length: the tiles of a row, rounded up to whole groups of 8 tiles, plus the overlap.
    let width = (mm * ntx.next_multiple_of(8) + 2).next_multiple_of(8);
    ROWS.with(|cell| {
        let mut scratch = cell.borrow_mut();
        grow(&mut scratch, 2 * a * width);
        // α padded input rows, then their transform down the patch rows (`Bᵀ d`), row by row.
        let (rows, w) = scratch.split_at_mut(a * width);
        for ty in ty0..ty1 {
            let fill = Fill {
                source,
                dims: (h_a, w_a),
                pad,
                y0: mm * ty,
            };
            let tiles = (ntx, (ty - ty0) * ntx);
            match simd {
                Simd::Portable => {
                    tile_row_input::<T, _>(Portable, (&fill, rows), w, width, tiles, dest);
                }
                #[cfg(target_arch = "x86_64")]
                // SAFETY: an `Avx2` exists only where the CPU has AVX2 and FMA (`Avx2::detect`).
                Simd::Avx2(isa) => unsafe {
                    tile_row_input_avx2::<T>(isa, (&fill, rows), w, width, tiles, dest);
                },
            }
        }
    });
    dest.zero_tail(a * a);
}

/// [`tile_row_input`] compiled with AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn tile_row_input_avx2<T: Tile>(
    isa: Avx2,
    rows: (&Fill<'_>, &mut [f32]),
    w: &mut [f32],
    width: usize,
    tiles: (usize, usize),
    dest: &Scatter,
) {
    tile_row_input::<T, _>(isa, rows, w, width, tiles, dest);
}

/// The input transform of one tile row: its `α` padded input rows `rows` (each `width` floats,
/// filled from `fill`, with the transform's instruction set) down the patch rows into `w` (`Bᵀ d`), then along the patch columns
/// (`(Bᵀ d) B`) into `dest`, for the `ntx` tiles from tile `t0` (`tiles = (ntx, t0)`).
///
/// Eight tiles are transformed at a time; a group that runs past its tile row writes into the next
/// row's places, which the next call overwrites when it transforms that row.
#[inline(always)]
fn tile_row_input<T: Tile, I: Isa>(
    isa: I,
    (fill, rows): (&Fill<'_>, &mut [f32]),
    w: &mut [f32],
    width: usize,
    (ntx, t0): (usize, usize),
    dest: &Scatter,
) {
    let (a, mm) = (T::A, T::M);
    for (i, row) in rows.chunks_exact_mut(width).enumerate().take(a) {
        fill.source.row(
            isa,
            row,
            fill.dims,
            (fill.y0 + i).wrapping_sub(fill.pad.top),
            fill.pad.left,
        );
    }
    for c0 in (0..width).step_by(8) {
        let mut d = [I::V::default(); MAX_A];
        for (i, di) in d.iter_mut().enumerate().take(a) {
            *di = isa.load(&rows[i * width + c0..]);
        }
        let r = T::input(&d);
        for (i, &ri) in r.iter().enumerate().take(a) {
            isa.store(ri, &mut w[i * width + c0..]);
        }
    }
    // The eight tiles from tx0 read the window `wi[m·tx0 .. m·tx0 + 8m + 2]` (inside the row: see
    // `width` in `input_transform`).
    for (i, wi) in w.chunks_exact(width).enumerate().take(a) {
        for tx0 in (0..ntx).step_by(8) {
            let d = if mm == 4 {
                isa.windows(wi[4 * tx0..][..34].try_into().expect("34 values"))
            } else {
                std::array::from_fn(|j| {
                    isa.load(&std::array::from_fn::<f32, 8, _>(|q| {
                        wi[mm * (tx0 + q) + j]
                    }))
                })
            };
            let r = T::input(&d);
            let at = dest.at(t0 + tx0);
            for (j, &rj) in r.iter().enumerate().take(a) {
                dest.store(isa, i * a + j, at, rj);
            }
        }
    }
}

/// Where the `α` input rows of a tile row come from: row `y0 + i − pad.top` of `source`'s `dims`
/// input, shifted right by `pad.left`.
struct Fill<'a> {
    source: &'a Source<'a>,
    dims: (usize, usize),
    pad: Padding,
    y0: usize,
}

/// Where an input transform reads a channel's plane: the input array's, read as it is, or through
/// the row mask of a fused ReLU, or as the 2×2 average pooling's input gradient of it (`unpool`: the
/// plane is `dims`, the rows the transform asks for twice as many), then through the mask.
struct Source<'a> {
    plane: &'a [f32],
    dims: (usize, usize),
    mask: Option<&'a [u32]>,
    unpool: bool,
}

impl<'a> Source<'a> {
    /// Where channel `c` of the input `x` is read, for the convolution `g` with `fusion`.
    fn of_channel(x: &'a [f32], g: &Geometry, fusion: Fusion<'a>, c: usize) -> Source<'a> {
        let plane_len = g.plane.0 * g.plane.1;
        let (mask, unpool) = match fusion {
            Fusion::MaskedInput { mask, unpool } => {
                let words = g.h_a * row_mask::words_per_row(g.w_a);
                (Some(&mask[c * words..(c + 1) * words]), unpool.is_some())
            }
            _ => (None, false),
        };
        Source {
            plane: &x[c * plane_len..(c + 1) * plane_len],
            dims: g.plane,
            mask,
            unpool,
        }
    }

    /// `row[k]` = column `k − left` of row `iy` of the `h × w` input, 0 outside it (`iy` past
    /// the bottom, padding included, wraps to a large value).
    #[inline(always)]
    fn row<I: Isa>(&self, isa: I, row: &mut [f32], (h, w): (usize, usize), iy: usize, left: usize) {
        if iy >= h || (self.mask.is_none() && !self.unpool) {
            // Outside the input (all zeros), or the input as it is.
            crate::winograd::padded_row(row, self.plane, (h, w), iy, left);
            return;
        }
        let (lo, hi) = (left.min(row.len()), (left + w).min(row.len()));
        let (head, rest) = row.split_at_mut(lo);
        let (body, tail) = rest.split_at_mut(hi - lo);
        head.fill(0.0);
        tail.fill(0.0);
        // The ReLU's input gradient is read through its mask: bit `x` for column `x` of the row.
        let wpr = row_mask::words_per_row(w);
        let words = self.mask.map(|m| &m[iy * wpr..(iy + 1) * wpr]);
        if self.unpool {
            self.unpooled_body(isa, body, iy, words);
        } else {
            body.copy_from_slice(&self.plane[iy * w..][..body.len()]);
            if let Some(words) = words {
                for (x, v) in body.chunks_mut(8).enumerate() {
                    let bits = words[x / 4] >> (8 * (x % 4));
                    if v.len() == 8 {
                        isa.store(isa.keep(isa.load(v), bits), v);
                    } else {
                        row_mask::mask_word(v, bits);
                    }
                }
            }
        }
    }

    /// The columns `0..body.len()` of row `iy` of the pooling's input gradient (through the mask
    /// `words` when given): column `x` is a quarter of the pooled gradient at `(iy / 2, x / 2)`
    /// ([`row_mask::pool_share`]), 0 in the rows and columns no window reaches.
    #[inline(always)]
    fn unpooled_body<I: Isa>(&self, isa: I, body: &mut [f32], iy: usize, words: Option<&[u32]>) {
        let (hp, wp) = self.dims;
        if iy / 2 >= hp {
            body.fill(0.0);
            return;
        }
        let src = &self.plane[(iy / 2) * wp..(iy / 2 + 1) * wp];
        let reached = body.len().min(2 * wp);
        let (body, unreached) = body.split_at_mut(reached);
        unreached.fill(0.0);
        let bits_at = |x: usize| words.map_or(u32::MAX, |w| w[x / 32] >> (x % 32));
        let x0 = body.len() / 8 * 8;
        for (x, v) in body.chunks_exact_mut(8).enumerate() {
            // `0 + g/4` is `0 + g·¼` bit for bit: both round the same exact quotient.
            let share = isa.splat(0.0) + isa.pairs(&src[4 * x..]) * 0.25;
            isa.store(isa.keep(share, bits_at(8 * x)), v);
        }
        if x0 < body.len() {
            // The last columns, fewer than 8; `x0` then names a word of the row (a row of
            // exactly `x0` columns has no word `x0 / 32`).
            for (x, v) in body.iter_mut().enumerate().skip(x0) {
                *v = row_mask::pool_share(src[x / 2]);
            }
            row_mask::mask_word(&mut body[x0..], bits_at(x0));
        }
    }
}

/// The ReLU of a forward output pass ([`Fusion::Relu`]): where its mask goes, the output row of the
/// block's first row, and, when it pools, the convolution's output rows and (at least) columns.
#[derive(Clone, Copy)]
struct ReluOut<'a> {
    bits: Option<RowBits<'a>>,
    y0: usize,
    full: (usize, usize),
    pool: bool,
}

/// [`output_transform`] with the instruction set `simd`.
fn output_transform_with<T: Tile>(
    simd: Simd,
    m: &[f32],
    at: (usize, usize),
    rows: (usize, usize, usize),
    b: f32,
    plane: ArrayViewMut2<'_, f32>,
    how: (bool, Option<ReluOut<'_>>),
) {
    match simd {
        Simd::Portable => output_transform::<T, _>(Portable, m, at, rows, b, plane, how),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: an `Avx2` exists only where the CPU has AVX2 and FMA (`Avx2::detect`).
        Simd::Avx2(isa) => unsafe { output_transform_avx2::<T>(isa, m, at, rows, b, plane, how) },
    }
}

/// [`output_transform`] compiled with AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn output_transform_avx2<T: Tile>(
    isa: Avx2,
    m: &[f32],
    at: (usize, usize),
    rows: (usize, usize, usize),
    b: f32,
    plane: ArrayViewMut2<'_, f32>,
    how: (bool, Option<ReluOut<'_>>),
) {
    output_transform::<T, _>(isa, m, at, rows, b, plane, how);
}

/// `Y = Aᵀ m A + b` of output channel `o` for every tile of the block (`m` laid out
/// `[e][c_b_pad][n_pad]`, `M_e` at `e·m_stride`), clipped to the output (sizes that are not multiples of `m`). With
/// `accumulate`, `Y` is added to `plane`; with a ReLU, `max(Y, 0)` is written and its mask kept.
///
/// The mask goes a word at a time: eight tiles give 32 columns of a row (`m = 4`), starting at a
/// multiple of 32, so one word of the row mask; each channel's task writes its own rows.
#[inline(always)]
fn output_transform<T: Tile, I: Isa>(
    isa: I,
    m: &[f32],
    (o, m_stride): (usize, usize),
    rows: (usize, usize, usize),
    b: f32,
    mut plane: ArrayViewMut2<'_, f32>,
    (accumulate, relu): (bool, Option<ReluOut<'_>>),
) {
    let mm = T::M;
    let (n_rows, ntx, n_pad) = rows;
    assert!(
        relu.is_none() || mm * 8 == 32,
        "a mask word per eight tiles"
    );
    let (h_out, w_out) = plane.dim();
    // The convolution's own output rows and columns (the plane is pooled when the ReLU pools).
    let (h_full, w_full) = match relu {
        Some(r) if r.pool => (r.full.0 - r.y0.min(r.full.0), r.full.1),
        _ => (h_out, w_out),
    };
    let plane = plane
        .as_slice_mut()
        .expect("a channel's output rows are contiguous");
    for r in 0..n_rows {
        for k0 in (0..ntx).step_by(8) {
            let len = (ntx - k0).min(8);
            let mut rows = tile_rows::<T, I>(isa, m, (o, m_stride, n_pad), (r * ntx + k0, len), b);
            // Each output row of the eight tiles is 8m contiguous values.
            let x0 = mm * k0;
            let cols = (mm * len).min(w_full - x0);
            let live = h_full.saturating_sub(mm * r).min(mm);
            if let Some(relu) = relu {
                for (ii, row) in rows.iter_mut().enumerate().take(live) {
                    // A constant length where the eight tiles are whole: vector compares.
                    let word = if cols == 32 {
                        row_mask::relu_word(&mut row[..32])
                    } else {
                        row_mask::relu_word(&mut row[..cols])
                    };
                    if let Some(bits) = relu.bits {
                        bits.write(o, relu.y0 + mm * r + ii, k0 / 8, word);
                    }
                }
                if relu.pool {
                    pool_rows(&rows, (r, k0), (h_out, w_out), plane);
                    continue;
                }
            }
            for (ii, row) in rows.iter().enumerate().take(live) {
                let oy = mm * r + ii;
                let dst = &mut plane[oy * w_out + x0..oy * w_out + x0 + cols];
                if cols == 8 * mm {
                    // Whole groups: vector loads and stores (neither a `memcpy` call nor the
                    // scalar loop the compiler made of the addition).
                    for (d, y) in dst.chunks_exact_mut(8).zip(row.chunks_exact(8)) {
                        let y = isa.load(y);
                        let sum = if accumulate { isa.load(d) + y } else { y };
                        isa.store(sum, d);
                    }
                } else if accumulate {
                    for (d, &y) in dst.iter_mut().zip(&row[..cols]) {
                        *d += y;
                    }
                } else {
                    dst.copy_from_slice(&row[..cols]);
                }
            }
        }
    }
}

/// The `m` output rows of the eight tiles `t … t + len − 1` of output channel `o`, `Y = Aᵀ m A + b`
/// (`m` laid out `[e][c_b_pad][n_pad]`, `M_e` at `e·m_stride`): row `i'` holds the tiles' row `i'` side by side, `8m`
/// values (those of tiles past `len` are not outputs).
#[inline(always)]
fn tile_rows<T: Tile, I: Isa>(
    isa: I,
    m: &[f32],
    (o, m_stride, n_pad): (usize, usize, usize),
    (t, len): (usize, usize),
    b: f32,
) -> [[f32; 8 * MAX_M]; MAX_M] {
    let (a, mm) = (T::A, T::M);
    // Along the patch columns for each patch row i: s[i][j'], eight tiles at a time (arrays built
    // whole rather than zeroed and filled, which took a `memset` call per group).
    let s: [[I::V; MAX_A]; MAX_A] = std::array::from_fn(|i| {
        let d: [I::V; MAX_A] = std::array::from_fn(|j| {
            if i < a && j < a {
                let at = (i * a + j) * m_stride + o * n_pad + t;
                // 36 rows are read side by side, more than the hardware prefetchers follow.
                if let Some(ahead) = m.get(at + PREFETCH_AHEAD) {
                    isa.prefetch(ahead);
                }
                isa.load_partial(&m[at..at + len])
            } else {
                I::V::default()
            }
        });
        T::output(&d)
    });
    // Along the patch rows: y[j'][i'] (i' the output row in the tile).
    let y: [[I::V; MAX_A]; MAX_M] =
        std::array::from_fn(|jj| T::output(&std::array::from_fn(|i| s[i][jj])));
    let b8 = isa.splat(b);
    std::array::from_fn(|ii| {
        if mm == 4 && ii < mm {
            return isa.interleave(std::array::from_fn(|jj| y[jj][ii] + b8));
        }
        std::array::from_fn(|k| {
            let (q, jj) = (k / mm, k % mm);
            if q < 8 && jj < mm && ii < mm {
                isa.lanes(y[jj][ii])[q] + b
            } else {
                0.0
            }
        })
    })
}

/// The 2×2 average pooling of four output rows (`m = 4`) of eight tiles, after their ReLU, into the
/// block's pooled `plane` (`h_out × w_out`): pooled rows `2r, 2r + 1`, columns from `2·k0`.
fn pool_rows(
    rows: &[[f32; 8 * MAX_M]; MAX_M],
    (r, k0): (usize, usize),
    (h_out, w_out): (usize, usize),
    plane: &mut [f32],
) {
    let px0 = 2 * k0;
    let n = w_out.saturating_sub(px0).min(16);
    for pr in 0..2 {
        let py = 2 * r + pr;
        if py >= h_out {
            break;
        }
        let (top, bottom) = (&rows[2 * pr], &rows[2 * pr + 1]);
        let dst = &mut plane[py * w_out + px0..][..n];
        for (k, d) in dst.iter_mut().enumerate() {
            let (x, y) = (2 * k, 2 * k + 1);
            *d = row_mask::pool_window(top[x], top[y], bottom[x], bottom[y]);
        }
    }
}

#[cfg(test)]
mod tests;
