//! 2-D convolution (cross-correlation, as in MatConvNet and PyTorch) by tiled im2col + GEMM, with its backward passes.
//!
//! ```text
//! Y[o, y, x] = b[o] + Σ_{c, i, j} W[o, c, i, j] · X[c, y·sy − pt + i, x·sx − pl + j]   (X = 0 outside)
//! ```
//! As matrices, per tile of output rows: `Y_tile = W · cols_tile + b`, with `W: [C_out, K]`, `K = C_in·KH·KW`,
//! and `cols_tile: [K, rows·W_out]` the im2col of the input rows the tile reads. The input gradient is
//! `dX = col2im(Wᵀ · dY)`, the weight gradient `dW = Σ_tiles dY_tile · cols_tileᵀ`, the bias gradient `db = Σ_{y,x} dY`.
//! A whole-layer im2col buffer is never built: each tile's columns live in a per-thread buffer that
//! is reused across tiles, layers and passes.

use std::cell::RefCell;

use ndarray::{
    Array1, Array2, Array4, ArrayView1, ArrayView2, ArrayView3, ArrayViewMut2, ArrayViewMut3, Axis,
    ShapeBuilder, s,
};
use rayon::prelude::*;

use crate::gemm::sgemm;
use crate::layer::{RowWindow, Saved, check_contiguous, check_shape};
use crate::row_mask::{self, RowBits};
use crate::{CpuGemm, Epilogue, Error, Gemm, Layer, Padding, Result, Shape, shape::out_len};
use crate::{winograd, winograd4};

/// Validated geometry of a convolution: input shape, kernel, stride, padding, and the output shape they give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dGeometry {
    input: Shape,
    output: Shape,
    kernel: [usize; 2],
    stride: [usize; 2],
    pad: Padding,
}

impl Conv2dGeometry {
    /// Validates a convolution of an `input`-shaped activation with weights of dimensions
    /// `[c_out, c_in, kh, kw]`, stride `[sy, sx]` and padding `pad`.
    ///
    /// The output has `floor((H + pt + pb − KH) / sy) + 1` rows (and likewise columns), as in MatConvNet.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a zero stride or kernel dimension, [`Error::ChannelMismatch`] when
    /// `input.channels != c_in`, [`Error::InputTooSmall`] when the padded input is smaller than the kernel.
    /// The errors name the op `conv2d`; [`Conv2d`] replaces that with its own name.
    pub fn new(input: Shape, weight: [usize; 4], stride: [usize; 2], pad: Padding) -> Result<Self> {
        let [c_out, c_in, kh, kw] = weight;
        let layer = "conv2d".to_owned();
        if stride.contains(&0) || weight.contains(&0) {
            return Err(Error::InvalidConfig {
                layer,
                reason: format!("weight {weight:?} and stride {stride:?} must be positive"),
            });
        }
        if input.channels != c_in {
            return Err(Error::ChannelMismatch {
                layer,
                input,
                weight,
            });
        }
        let too_small = || Error::InputTooSmall {
            layer: "conv2d".to_owned(),
            input,
            window: [kh, kw],
            padding: pad,
        };
        let h_out =
            out_len(input.height, pad.top, pad.bottom, kh, stride[0]).ok_or_else(too_small)?;
        let w_out =
            out_len(input.width, pad.left, pad.right, kw, stride[1]).ok_or_else(too_small)?;
        Ok(Conv2dGeometry {
            input,
            output: Shape::new(c_out, h_out, w_out),
            kernel: [kh, kw],
            stride,
            pad,
        })
    }

    /// Input shape.
    pub fn input(&self) -> Shape {
        self.input
    }

    /// Output shape.
    pub fn output(&self) -> Shape {
        self.output
    }

    /// `K = C_in·KH·KW`, the inner dimension of the GEMM.
    pub fn k(&self) -> usize {
        self.input.channels * self.kernel[0] * self.kernel[1]
    }

    /// Multiply-adds of the forward pass times two: `2·C_out·K·H_out·W_out`.
    pub fn flops(&self) -> f64 {
        2.0 * self.output.channels as f64 * self.k() as f64 * self.output.plane() as f64
    }

    /// Output rows per tile. Depends only on the geometry (never on the thread count), so results are
    /// deterministic. A tile holds at least `KH` rows, so the input rows read by tiles `i` and `i + 2`
    /// never overlap (the backward pass relies on it).
    fn rows_per_tile(&self) -> usize {
        let w_out = self.output.width.max(1);
        let by_cols = TILE_COLS.div_ceil(w_out);
        let by_bytes = (TILE_FLOATS / (self.k() * w_out)).max(1);
        by_cols.min(by_bytes).max(self.kernel[0]).max(1)
    }

    /// The tiles: output row ranges.
    fn tiles(&self) -> Vec<(usize, usize)> {
        let rows = self.rows_per_tile();
        (0..self.output.height.div_ceil(rows))
            .map(|t| (t * rows, ((t + 1) * rows).min(self.output.height)))
            .collect()
    }

    /// Input rows `[lo, hi)` read by output rows `[r0, r1)`, clipped to the input.
    fn footprint(&self, r0: usize, r1: usize) -> (usize, usize) {
        let lo = (r0 * self.stride[0]).saturating_sub(self.pad.top);
        let hi = ((r1 - 1) * self.stride[0] + self.kernel[0])
            .saturating_sub(self.pad.top)
            .min(self.input.height);
        (lo.min(hi), hi)
    }
}

/// A `[C, rows, W]` row tile of a standard-layout tensor as the strided `[C, rows·W]` matrix it is.
fn rows_as_matrix_mut(mut t: ArrayViewMut3<'_, f32>) -> ArrayViewMut2<'_, f32> {
    let merged = t.merge_axes(Axis(1), Axis(2));
    assert!(
        merged || t.dim().1 <= 1,
        "rows of a standard-layout tile are contiguous"
    );
    let (c, rows, w) = t.dim();
    if merged || rows == 1 {
        t.index_axis_move(Axis(1), 0)
    } else {
        // rows == 0: an empty matrix.
        t.into_shape_with_order((c, rows * w))
            .expect("an empty view reshapes")
    }
}

/// Read-only version of [`rows_as_matrix_mut`].
fn rows_as_matrix(mut t: ArrayView3<'_, f32>) -> ArrayView2<'_, f32> {
    let merged = t.merge_axes(Axis(1), Axis(2));
    assert!(
        merged || t.dim().1 <= 1,
        "rows of a standard-layout tile are contiguous"
    );
    let (c, rows, w) = t.dim();
    if merged || rows == 1 {
        t.index_axis_move(Axis(1), 0)
    } else {
        t.into_shape_with_order((c, rows * w))
            .expect("an empty view reshapes")
    }
}

/// Target number of output columns per tile.
const TILE_COLS: usize = 512;
/// Upper bound on a tile's im2col buffer, in floats (4 MiB).
const TILE_FLOATS: usize = 1 << 20;

thread_local! {
    /// Per-thread im2col / col2im tile buffer, grown once and reused.
    static COLS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// Per-thread buffer of a masked tile of the output gradient.
    static MASKED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on the row tile `dy` (`[C, rows·W]`, rows from `r0` of an output of `shape`) masked by
/// the row mask `mask`, in this thread's buffer.
fn with_masked<R>(
    dy: ArrayView2<'_, f32>,
    (mask, r0, shape): (&[u32], usize, Shape),
    f: impl FnOnce(ArrayView2<'_, f32>) -> R,
) -> R {
    let (c, n) = dy.dim();
    let (h, w) = (shape.height, shape.width);
    let wpr = row_mask::words_per_row(w);
    MASKED.with(|cell| {
        let mut buf = cell.borrow_mut();
        if buf.len() < c * n {
            buf.resize(c * n, 0.0);
        }
        let buf = &mut buf[..c * n];
        if w > 0 {
            for (ch, (dst, src)) in buf.chunks_mut(n).zip(dy.outer_iter()).enumerate() {
                dst.iter_mut().zip(&src).for_each(|(d, &s)| *d = s);
                for (y, row) in dst.chunks_mut(w).enumerate() {
                    let at = (ch * h + r0 + y) * wpr;
                    row_mask::mask_row(row, &mask[at..at + wpr]);
                }
            }
        }
        f(ArrayView2::from_shape((c, n), &*buf).expect("c·n floats"))
    })
}

/// Runs `f` with this thread's tile buffer, grown to at least `len` floats.
fn with_cols<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    COLS.with(|cell| {
        let mut buf = cell.borrow_mut();
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
        f(&mut buf[..len])
    })
}

/// Valid output columns `[lo, hi)` for kernel column `kx`: those whose input column `x·s − pl + kx` lies in `[0, w)`.
fn valid_cols(w: usize, w_out: usize, s: usize, pl: usize, kx: usize) -> (usize, usize) {
    let lo = if kx >= pl { 0 } else { (pl - kx).div_ceil(s) };
    let hi = if w + pl > kx {
        ((w - 1 + pl - kx) / s + 1).min(w_out)
    } else {
        0
    };
    (lo.min(hi), hi)
}

/// im2col of output rows `[r0, r1)`: `cols[(c·KH + i)·KW + j, (y − r0)·W_out + x] = X[c, y·sy − pt + i, x·sx − pl + j]`.
///
/// `input` is the `[C, H, W]` input in standard layout; `cols` has `K·(r1 − r0)·W_out` elements.
pub(crate) fn im2col(g: &Conv2dGeometry, input: &[f32], r0: usize, r1: usize, cols: &mut [f32]) {
    let (h, w) = (g.input.height, g.input.width);
    let w_out = g.output.width;
    let [kh, kw] = g.kernel;
    let [sy, sx] = g.stride;
    let n = (r1 - r0) * w_out;
    debug_assert_eq!(input.len(), g.input.len());
    debug_assert_eq!(cols.len(), g.k() * n);
    for c in 0..g.input.channels {
        let plane = &input[c * h * w..(c + 1) * h * w];
        for i in 0..kh {
            for j in 0..kw {
                let row = (c * kh + i) * kw + j;
                let dst = &mut cols[row * n..(row + 1) * n];
                let (lo, hi) = valid_cols(w, w_out, sx, g.pad.left, j);
                for (y, d) in (r0..r1).zip(dst.chunks_exact_mut(w_out)) {
                    let iy = (y * sy + i).wrapping_sub(g.pad.top);
                    if iy >= h || lo >= hi {
                        d.fill(0.0);
                        continue;
                    }
                    d[..lo].fill(0.0);
                    d[hi..].fill(0.0);
                    let src = &plane[iy * w..(iy + 1) * w];
                    let x0 = lo * sx + j - g.pad.left;
                    if sx == 1 {
                        d[lo..hi].copy_from_slice(&src[x0..x0 + hi - lo]);
                    } else {
                        for (k, v) in d[lo..hi].iter_mut().enumerate() {
                            *v = src[x0 + k * sx];
                        }
                    }
                }
            }
        }
    }
}

/// col2im of output rows `[r0, r1)`, the adjoint of [`im2col`]: adds each column entry into the input
/// position it was read from. `grad` holds input rows `[f0, f0 + grad.dim().1)`, which must cover the
/// rows read by the tile.
pub(crate) fn col2im(
    g: &Conv2dGeometry,
    cols: &[f32],
    r0: usize,
    r1: usize,
    f0: usize,
    mut grad: ArrayViewMut3<'_, f32>,
) {
    let (h, w) = (g.input.height, g.input.width);
    let w_out = g.output.width;
    let [kh, kw] = g.kernel;
    let [sy, sx] = g.stride;
    let n = (r1 - r0) * w_out;
    debug_assert_eq!(cols.len(), g.k() * n);
    for c in 0..g.input.channels {
        let mut plane = grad.index_axis_mut(Axis(0), c);
        for i in 0..kh {
            for j in 0..kw {
                let row = (c * kh + i) * kw + j;
                let src = &cols[row * n..(row + 1) * n];
                let (lo, hi) = valid_cols(w, w_out, sx, g.pad.left, j);
                if lo >= hi {
                    continue;
                }
                for (y, sv) in (r0..r1).zip(src.chunks_exact(w_out)) {
                    let iy = (y * sy + i).wrapping_sub(g.pad.top);
                    if iy >= h {
                        continue;
                    }
                    let mut dst_row = plane.row_mut(iy - f0);
                    let dst = dst_row.as_slice_mut().expect("grad rows are contiguous");
                    let x0 = lo * sx + j - g.pad.left;
                    if sx == 1 {
                        for (d, v) in dst[x0..x0 + hi - lo].iter_mut().zip(&sv[lo..hi]) {
                            *d += v;
                        }
                    } else {
                        for (k, v) in sv[lo..hi].iter().enumerate() {
                            dst[x0 + k * sx] += v;
                        }
                    }
                }
            }
        }
    }
}

/// Forward pass: `output = conv(input, weight) + bias` into `output` (`[C_out, H_out, W_out]`, standard layout).
///
/// `weight` is the `[C_out, K]` matrix (row-major `[C_out, C_in, KH, KW]`), `input` the standard-layout input.
/// With `relu`, each tile of rows then goes through a ReLU while it is in cache, its mask written by
/// rows (see `row_mask`) when a writer is given.
pub(crate) fn forward(
    g: &Conv2dGeometry,
    input: &[f32],
    (weight, bias): (ArrayView2<'_, f32>, ArrayView1<'_, f32>),
    mut output: ArrayViewMut3<'_, f32>,
    relu: Option<Option<RowBits<'_>>>,
) {
    debug_assert_eq!(Shape::of(&output), g.output);
    debug_assert_eq!(weight.dim(), (g.output.channels, g.k()));
    let rows = g.rows_per_tile();
    let w_out = g.output.width;
    let k = g.k();
    output
        .axis_chunks_iter_mut(Axis(1), rows)
        .into_par_iter()
        .enumerate()
        .for_each(|(t, mut out)| {
            let r0 = t * rows;
            let r1 = r0 + out.dim().1;
            let n = (r1 - r0) * w_out;
            for (mut plane, &b) in out.outer_iter_mut().zip(bias) {
                plane.fill(b);
            }
            let mut out2 = rows_as_matrix_mut(out);
            debug_assert_eq!(out2.dim(), (g.output.channels, n));
            with_cols(k * n, |cols| {
                im2col(g, input, r0, r1, cols);
                let cols = ArrayView2::from_shape((k, n), cols).expect("k·n floats");
                sgemm(1.0, weight, cols, 1.0, out2.view_mut());
            });
            if let Some(bits) = relu {
                relu_tile(out2, (r0, w_out), bits);
            }
        });
}

/// The ReLU of a row tile `[C, rows·W]` of the output (its first row `r0`), its mask by rows into
/// `bits` when given (the tile's rows, which no other tile writes).
fn relu_tile(mut tile: ArrayViewMut2<'_, f32>, (r0, w): (usize, usize), bits: Option<RowBits<'_>>) {
    if w == 0 {
        return;
    }
    for (c, mut channel) in tile.outer_iter_mut().enumerate() {
        let channel = channel
            .as_slice_mut()
            .expect("a channel's rows of a tile are contiguous");
        for (y, row) in channel.chunks_mut(w).enumerate() {
            for (word, values) in row.chunks_mut(32).enumerate() {
                let mask = row_mask::relu_word(values);
                if let Some(bits) = bits {
                    bits.write(c, r0 + y, word, mask);
                }
            }
        }
    }
}

/// Input gradient: `grad_input = col2im(Wᵀ · grad_output)` into `grad_input` (`[C_in, H, W]`), which is
/// overwritten, or added to with `accumulate`.
///
/// Tiles whose input footprints overlap are never run at the same time: even-numbered tiles run in
/// parallel first, then odd-numbered ones (tiles `i` and `i + 2` read disjoint input rows, see
/// `rows_per_tile`). Every element therefore receives its contributions in a fixed order.
///
/// With `mask` (the row mask of a fused ReLU, see `row_mask`), `grad_output` is read through it: each
/// tile's rows are masked into a buffer of the tile's own.
pub(crate) fn backward_input(
    g: &Conv2dGeometry,
    weight: ArrayView2<'_, f32>,
    (grad_output, mask): (ArrayView3<'_, f32>, Option<&[u32]>),
    mut grad_input: ArrayViewMut3<'_, f32>,
    accumulate: bool,
) {
    debug_assert_eq!(Shape::of(&grad_output), g.output);
    debug_assert_eq!(Shape::of(&grad_input), g.input);
    if !accumulate {
        grad_input.fill(0.0);
    }
    let tiles = g.tiles();
    let k = g.k();
    let w_out = g.output.width;
    let c_out = g.output.channels;
    let plane_out = g.output.plane();
    let go = grad_output.as_standard_layout();
    let go = go.as_slice().expect("standard layout");
    for parity in 0..2 {
        // Carve grad_input into the disjoint footprints of this parity's tiles.
        let mut pieces = Vec::new();
        let mut rest = grad_input.view_mut();
        let mut rest_start = 0;
        for (t, &(r0, r1)) in tiles.iter().enumerate().skip(parity).step_by(2) {
            let (f0, f1) = g.footprint(r0, r1);
            let (_, tail) = rest.split_at(Axis(1), f0 - rest_start);
            let (piece, tail) = tail.split_at(Axis(1), f1 - f0);
            pieces.push((t, f0, piece));
            rest = tail;
            rest_start = f1;
        }
        pieces.into_par_iter().for_each(|(t, f0, piece)| {
            let (r0, r1) = tiles[t];
            let n = (r1 - r0) * w_out;
            let dy = ArrayView2::from_shape((c_out, n).strides((plane_out, 1)), &go[r0 * w_out..])
                .expect("a row tile of a standard-layout tensor is a strided matrix");
            let run = |dy: ArrayView2<'_, f32>| {
                with_cols(k * n, |cols| {
                    let mut cols_m =
                        ArrayViewMut2::from_shape((k, n), &mut *cols).expect("k·n floats");
                    sgemm(1.0, weight.t(), dy, 0.0, cols_m.view_mut());
                    col2im(g, cols, r0, r1, f0, piece);
                })
            };
            match mask {
                Some(mask) => with_masked(dy, (mask, r0, g.output), run),
                None => run(dy),
            }
        });
    }
}

/// Weight and bias gradients `dW = Σ_tiles dY_tile · cols_tileᵀ` (`[C_out, K]`) and `db = Σ_{y,x} dY`.
///
/// Tiles are accumulated in order with the parallel, deterministic [`CpuGemm`].
pub(crate) fn backward_params(
    g: &Conv2dGeometry,
    input: &[f32],
    grad_output: ArrayView3<'_, f32>,
) -> (Array2<f32>, Array1<f32>) {
    let k = g.k();
    let w_out = g.output.width;
    let c_out = g.output.channels;
    let go = grad_output.as_standard_layout();
    let mut grad_weight = Array2::<f32>::zeros((c_out, k));
    let mut cols = Vec::new();
    for (r0, r1) in g.tiles() {
        let n = (r1 - r0) * w_out;
        cols.resize(k * n, 0.0);
        im2col(g, input, r0, r1, &mut cols);
        let cols_m = ArrayView2::from_shape((k, n), &cols[..]).expect("k·n floats");
        let dy = rows_as_matrix(go.slice(s![.., r0..r1, ..]));
        debug_assert_eq!(dy.dim(), (c_out, n));
        CpuGemm.gemm(1.0, dy, cols_m.t(), 1.0, grad_weight.view_mut());
    }
    let grad_bias = go
        .outer_iter()
        .map(|plane| plane.iter().map(|&v| f64::from(v)).sum::<f64>() as f32)
        .collect();
    (grad_weight, grad_bias)
}

/// How a [`Conv2d`] computes its forward pass and input gradient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConvAlgorithm {
    /// Tiled im2col + GEMM forward, `col2im(Wᵀ·dY)` backward. Works for every geometry.
    Im2col,
    /// Winograd F(2×2, 3×3) forward, and backward as the Winograd convolution of `dY` with the
    /// flipped, transposed kernel. Only for 3×3 kernels, stride 1, padding ≤ 2.
    Winograd,
    /// Winograd F(4×4, 3×3) (4× fewer multiplies than direct convolution, against 2.25× for
    /// F(2×2)), both directions as [`ConvAlgorithm::Winograd`]; same geometry limits. Outputs of
    /// fewer than 64 4×4 tiles (32×32 pixels) are computed with F(2×2), whose weight transform is
    /// cheaper. Its float error is 10–15× F(2×2)'s, still inside the bound both are tested to
    /// (`1e-5·(Σ|W| + 1)` against im2col on VGG-like layers).
    Winograd4,
}

/// Fewest input and output channels for which [`Conv2d::new`] picks Winograd by default.
pub const WINOGRAD_MIN_CHANNELS: usize = 16;

/// A convolution layer with bias: weights `[C_out, C_in, KH, KW]`, any stride and padding.
///
/// The algorithm defaults to [`ConvAlgorithm::Winograd4`] where it applies (3×3, stride 1, padding ≤ 2)
/// and both channel counts are at least [`WINOGRAD_MIN_CHANNELS`] (small outputs then take F(2×2)),
/// and to [`ConvAlgorithm::Im2col`] elsewhere; [`Conv2d::with_algorithm`] overrides it.
#[derive(Debug, Clone)]
pub struct Conv2d {
    algorithm: ConvAlgorithm,
    name: String,
    /// `[C_out, C_in·KH·KW]`, row-major.
    weight: Array2<f32>,
    dims: [usize; 4],
    bias: Array1<f32>,
    stride: [usize; 2],
    pad: Padding,
}

/// Gradients of a convolution's parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Conv2dParamGrads {
    /// `∂L/∂W`, `[C_out, C_in, KH, KW]`.
    pub grad_weight: Array4<f32>,
    /// `∂L/∂b`, `[C_out]`.
    pub grad_bias: Array1<f32>,
}

impl Conv2d {
    /// A convolution named `name` with `weight` `[C_out, C_in, KH, KW]`, `bias` `[C_out]`, stride `[sy, sx]` and padding.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for an empty kernel, a zero stride, or a bias whose length is not `C_out`.
    ///
    /// # Examples
    /// ```
    /// use ndarray::{Array1, Array3, Array4};
    /// use tensor_ops::{Conv2d, Layer, Padding, Shape};
    /// let conv = Conv2d::new("conv1", Array4::ones((8, 3, 3, 3)), Array1::zeros(8), [1, 1], Padding::uniform(1))?;
    /// assert_eq!(conv.output_shape(Shape::new(3, 5, 7))?, Shape::new(8, 5, 7));
    /// let mut out = Array3::zeros((8, 5, 7));
    /// conv.forward(Array3::ones((3, 5, 7)).view(), out.view_mut(), None)?;
    /// assert_eq!(out[[0, 2, 3]], 27.0); // an interior pixel sees 3·3·3 ones
    /// assert_eq!(out[[0, 0, 0]], 12.0); // a corner sees 3·2·2
    /// # Ok::<(), tensor_ops::Error>(())
    /// ```
    pub fn new(
        name: impl Into<String>,
        weight: Array4<f32>,
        bias: Array1<f32>,
        stride: [usize; 2],
        pad: Padding,
    ) -> Result<Self> {
        let name = name.into();
        let (c_out, c_in, kh, kw) = weight.dim();
        let dims = [c_out, c_in, kh, kw];
        if dims.contains(&0) || stride.contains(&0) {
            return Err(Error::InvalidConfig {
                layer: name,
                reason: format!("weight {dims:?} and stride {stride:?} must be positive"),
            });
        }
        if bias.len() != c_out {
            return Err(Error::InvalidConfig {
                layer: name,
                reason: format!(
                    "bias has {} elements, weight {dims:?} has {c_out} output channels",
                    bias.len()
                ),
            });
        }
        let weight = weight
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order((c_out, c_in * kh * kw))
            .expect("a standard-layout array reshapes");
        // Winograd's GEMMs have inner dimension C_in (forward) and C_out (backward): with few
        // channels (VGG's conv1_1 has C_in = 3) they starve, and im2col (K = 9·C_in) is faster.
        let algorithm = if winograd::applies([kh, kw], stride, pad)
            && c_in.min(c_out) >= WINOGRAD_MIN_CHANNELS
        {
            ConvAlgorithm::Winograd4
        } else {
            ConvAlgorithm::Im2col
        };
        Ok(Conv2d {
            algorithm,
            name,
            weight,
            dims,
            bias,
            stride,
            pad,
        })
    }

    /// The same layer computed with `algorithm`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when `algorithm` is Winograd and the layer is not 3×3, stride 1, padding ≤ 2.
    pub fn with_algorithm(mut self, algorithm: ConvAlgorithm) -> Result<Self> {
        if matches!(
            algorithm,
            ConvAlgorithm::Winograd | ConvAlgorithm::Winograd4
        ) && !winograd::applies([self.dims[2], self.dims[3]], self.stride, self.pad)
        {
            return Err(Error::InvalidConfig {
                layer: self.name,
                reason: format!(
                    "Winograd needs a 3×3 kernel, stride 1 and padding ≤ 2, not {:?} stride {:?} padding {}",
                    self.dims, self.stride, self.pad
                ),
            });
        }
        self.algorithm = algorithm;
        Ok(self)
    }

    /// The algorithm in use.
    pub fn algorithm(&self) -> ConvAlgorithm {
        self.algorithm
    }

    /// Weight dimensions `[C_out, C_in, KH, KW]`.
    pub fn weight_dims(&self) -> [usize; 4] {
        self.dims
    }

    /// The weights as the `[C_out, C_in·KH·KW]` GEMM matrix.
    pub fn weight_matrix(&self) -> ArrayView2<'_, f32> {
        self.weight.view()
    }

    /// The bias, `[C_out]`.
    pub fn bias(&self) -> ArrayView1<'_, f32> {
        self.bias.view()
    }

    /// Stride `[sy, sx]`.
    pub fn stride(&self) -> [usize; 2] {
        self.stride
    }

    /// Padding.
    pub fn padding(&self) -> Padding {
        self.pad
    }

    /// The geometry of this layer on an input of shape `input`.
    ///
    /// # Errors
    /// As [`Conv2dGeometry::new`], naming this layer.
    pub fn geometry(&self, input: Shape) -> Result<Conv2dGeometry> {
        Conv2dGeometry::new(input, self.dims, self.stride, self.pad)
            .map_err(|e| e.in_layer(&self.name))
    }

    /// Gradients of the weights and the bias, given the forward `input` and `grad_output = ∂L/∂Y`.
    /// Not used by the network walk (style transfer optimizes the image only).
    ///
    /// # Errors
    /// When `input` does not fit the layer or `grad_output` is not of the output's shape.
    pub fn backward_params(
        &self,
        input: ArrayView3<'_, f32>,
        grad_output: ArrayView3<'_, f32>,
    ) -> Result<Conv2dParamGrads> {
        let g = self.geometry(Shape::of(&input))?;
        check_shape(&self.name, "grad_output", g.output, Shape::of(&grad_output))?;
        let input = input.as_standard_layout();
        let (gw, grad_bias) =
            backward_params(&g, input.as_slice().expect("standard layout"), grad_output);
        let grad_weight = gw
            .into_shape_with_order(self.dims)
            .expect("[C_out, K] reshapes to the weight dims");
        Ok(Conv2dParamGrads {
            grad_weight,
            grad_bias,
        })
    }
}

impl Layer for Conv2d {
    fn row_window(&self) -> Option<RowWindow> {
        // Padding as tall as the kernel makes output rows that read no input row: walks over bands
        // of rows do not handle those, so such a layer walks whole.
        let kh = self.dims[2];
        (self.pad.top < kh && self.pad.bottom < kh).then_some(RowWindow {
            kernel: kh,
            stride: self.stride[0],
            pad_top: self.pad.top,
        })
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn output_shape(&self, input: Shape) -> Result<Shape> {
        Ok(self.geometry(input)?.output)
    }

    fn forward(
        &self,
        input: ArrayView3<'_, f32>,
        output: ArrayViewMut3<'_, f32>,
        saved: Option<&mut Saved>,
    ) -> Result<()> {
        let g = self.geometry(Shape::of(&input))?;
        check_shape(&self.name, "output", g.output, Shape::of(&output))?;
        check_contiguous(&self.name, "output", &output)?;
        match self.algorithm {
            ConvAlgorithm::Im2col => {
                let input = input.as_standard_layout();
                let x = input.as_slice().expect("standard layout");
                forward(&g, x, (self.weight.view(), self.bias.view()), output, None);
            }
            ConvAlgorithm::Winograd | ConvAlgorithm::Winograd4 => {
                let dir = winograd::Direction::Forward;
                self.winograd(dir, self.bias.view(), input, self.pad, output, false);
            }
        }
        if let Some(saved) = saved {
            saved.input_shape = g.input;
            // No ReLU ran: a mask of an earlier fused pass must not pass for this one's.
            saved.row_mask.clear();
        }
        Ok(())
    }

    fn backward_input(
        &self,
        saved: &Saved,
        grad_output: ArrayView3<'_, f32>,
        grad_input: ArrayViewMut3<'_, f32>,
    ) -> Result<()> {
        self.input_gradient(saved, grad_output, grad_input, false)
    }

    fn backward_input_add(
        &self,
        saved: &Saved,
        grad_output: ArrayView3<'_, f32>,
        grad_input: ArrayViewMut3<'_, f32>,
    ) -> Result<()> {
        self.input_gradient(saved, grad_output, grad_input, true)
    }

    /// F(4×4) layers fuse a ReLU (and a 2×2 average pooling after it) where both directions run on
    /// F(4×4) tiles: the output pass applies them (and writes the ReLU's mask a word per 32 columns),
    /// and the input gradient's input pass reads `dY` through the mask (spreading the pooling's
    /// gradient on the way). im2col layers fuse a ReLU: each tile of output rows goes through it
    /// while in cache, and the input gradient masks each tile of `dY` into a buffer of its own.
    fn fuses(&self, input: Shape, epilogue: Epilogue) -> bool {
        let Ok(g) = self.geometry(input) else {
            return false;
        };
        match self.algorithm {
            ConvAlgorithm::Winograd4 => {
                winograd4::uses_tiles(g.output.height, g.output.width)
                    && winograd4::uses_tiles(g.input.height, g.input.width)
            }
            ConvAlgorithm::Im2col => epilogue == Epilogue::Relu,
            _ => false,
        }
    }

    fn forward_fused(
        &self,
        input: ArrayView3<'_, f32>,
        output: ArrayViewMut3<'_, f32>,
        saved: Option<&mut Saved>,
        epilogue: Epilogue,
    ) -> Result<()> {
        let in_shape = Shape::of(&input);
        if !self.fuses(in_shape, epilogue) {
            return row_mask::forward_then_epilogue(self, input, output, saved, epilogue);
        }
        let g = self.geometry(in_shape)?;
        let out_shape = epilogue.output_shape(g.output);
        check_shape(&self.name, "output", out_shape, Shape::of(&output))?;
        check_contiguous(&self.name, "output", &output)?;
        let pool = epilogue == Epilogue::ReluAvgPool2;
        let bits = saved.map(|saved| {
            saved.input_shape = g.input;
            // Every word of a row the output needs is written (each row's words cover its columns;
            // rows a pooling drops need none), so no zeroing.
            saved.row_mask.resize(row_mask::mask_len(g.output), 0);
            RowBits::new(&mut saved.row_mask, g.output.height, g.output.width)
        });
        let (w, b) = (self.weight.view(), self.bias.view());
        if self.algorithm == ConvAlgorithm::Im2col {
            let input = input.as_standard_layout();
            let x = input.as_slice().expect("standard layout");
            forward(&g, x, (w, b), output, Some(bits));
        } else {
            let args = (winograd::Direction::Forward, w, b, input, self.pad, output);
            winograd4::conv3x3_fused(args, false, winograd4::Fusion::Relu { bits, pool });
        }
        Ok(())
    }

    fn backward_input_fused(
        &self,
        saved: &Saved,
        grad_output: ArrayView3<'_, f32>,
        grad_input: ArrayViewMut3<'_, f32>,
        accumulate: bool,
        epilogue: Epilogue,
    ) -> Result<()> {
        let in_shape = Shape::of(&grad_input);
        if !self.fuses(in_shape, epilogue) {
            let grads = (grad_output, grad_input);
            return row_mask::epilogue_then_backward(self, saved, grads, accumulate, epilogue);
        }
        let g = self.geometry(in_shape)?;
        check_shape(&self.name, "grad_input", saved.input_shape, g.input)?;
        let out_shape = epilogue.output_shape(g.output);
        check_shape(
            &self.name,
            "grad_output",
            out_shape,
            Shape::of(&grad_output),
        )?;
        check_contiguous(&self.name, "grad_input", &grad_input)?;
        row_mask::check_mask(&self.name, saved, g.output)?;
        if self.algorithm == ConvAlgorithm::Im2col {
            let dy = (grad_output, Some(saved.row_mask.as_slice()));
            backward_input(&g, self.weight.view(), dy, grad_input, accumulate);
            return Ok(());
        }
        let unpool =
            (epilogue == Epilogue::ReluAvgPool2).then_some((g.output.height, g.output.width));
        let fusion = winograd4::Fusion::MaskedInput {
            mask: &saved.row_mask,
            unpool,
        };
        let (dir, w) = (winograd::Direction::Backward, self.weight.view());
        let flipped = self.flipped_padding();
        let args = (
            dir,
            w,
            ArrayView1::from(&[]),
            grad_output,
            flipped,
            grad_input,
        );
        winograd4::conv3x3_fused(args, accumulate, fusion);
        Ok(())
    }
}

impl Conv2d {
    /// The input gradient into `grad_input`, added to its content with `accumulate`.
    fn input_gradient(
        &self,
        saved: &Saved,
        grad_output: ArrayView3<'_, f32>,
        grad_input: ArrayViewMut3<'_, f32>,
        accumulate: bool,
    ) -> Result<()> {
        let g = self.geometry(Shape::of(&grad_input))?;
        check_shape(&self.name, "grad_input", saved.input_shape, g.input)?;
        check_shape(&self.name, "grad_output", g.output, Shape::of(&grad_output))?;
        check_contiguous(&self.name, "grad_input", &grad_input)?;
        match self.algorithm {
            ConvAlgorithm::Im2col => {
                let dy = (grad_output, None);
                backward_input(&g, self.weight.view(), dy, grad_input, accumulate)
            }
            ConvAlgorithm::Winograd | ConvAlgorithm::Winograd4 => {
                let (dir, no_bias) = (winograd::Direction::Backward, ArrayView1::from(&[]));
                let flipped = self.flipped_padding();
                self.winograd(dir, no_bias, grad_output, flipped, grad_input, accumulate);
            }
        }
        Ok(())
    }

    /// The padding of the input gradient's Winograd convolution: dX = conv(dY, flip(Wᵀ)) with padding
    /// 2 − p on each side, again 3×3 and stride 1.
    fn flipped_padding(&self) -> Padding {
        let p = self.pad;
        Padding {
            top: 2 - p.top,
            bottom: 2 - p.bottom,
            left: 2 - p.left,
            right: 2 - p.right,
        }
    }

    /// The layer's Winograd convolution (F(2×2) or F(4×4)) in direction `dir`, added into `output`
    /// with `accumulate` (see `winograd::conv3x3`).
    fn winograd(
        &self,
        dir: winograd::Direction,
        bias: ArrayView1<'_, f32>,
        input: ArrayView3<'_, f32>,
        pad: Padding,
        output: ArrayViewMut3<'_, f32>,
        accumulate: bool,
    ) {
        let w = self.weight.view();
        if self.algorithm == ConvAlgorithm::Winograd4 {
            winograd4::conv3x3(dir, w, bias, input, pad, output, accumulate);
        } else {
            winograd::conv3x3(dir, w, bias, input, pad, output, accumulate);
        }
    }
}

#[cfg(test)]
mod tests;
