//! Max and average pooling with MatConvNet's semantics for odd sizes and padding.
//!
//! Output size: `floor((H + pt + pb − KH) / sy) + 1` (likewise for the width); rows and columns that no
//! whole step reaches are dropped, as in MatConvNet's `vl_nnpool`. Padding must be smaller than the
//! window, so every window overlaps the input. Padded positions never take part:
//! max pooling takes the maximum over the window clipped to the input (the same as padding with `−∞`),
//! and average pooling divides by the number of input pixels in the clipped window, not by `KH·KW`.
//! That is MatConvNet's choice (`pooling_cpu.cpp`: the accumulator is built with the clipped window
//! `(y2 − y1)·(x2 − x1)`), and PyTorch's `count_include_pad = false`.

use ndarray::{ArrayView2, ArrayView3, ArrayViewMut2, ArrayViewMut3, Axis};
use rayon::prelude::*;

use crate::layer::{RowWindow, Saved, check_contiguous, check_shape};
use crate::{Error, Layer, Padding, Result, Shape, shape::out_len};

/// Validated geometry of a pooling layer on a given input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolGeometry {
    input: Shape,
    output: Shape,
    pub(crate) window: [usize; 2],
    pub(crate) stride: [usize; 2],
    pub(crate) pad: Padding,
}

impl PoolGeometry {
    /// Validates pooling of an `input`-shaped activation with `window` `[kh, kw]`, `stride` `[sy, sx]` and `pad`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a zero window or stride, or padding not smaller than the window;
    /// [`Error::InputTooSmall`] when the padded input is smaller than the window. Errors name the op
    /// `pool2d`; the layers replace that with their own names.
    pub fn new(input: Shape, window: [usize; 2], stride: [usize; 2], pad: Padding) -> Result<Self> {
        validate("pool2d", window, stride, pad)?;
        let too_small = || Error::InputTooSmall {
            layer: "pool2d".to_owned(),
            input,
            window,
            padding: pad,
        };
        let h_out = out_len(input.height, pad.top, pad.bottom, window[0], stride[0])
            .ok_or_else(too_small)?;
        let w_out = out_len(input.width, pad.left, pad.right, window[1], stride[1])
            .ok_or_else(too_small)?;
        Ok(PoolGeometry {
            input,
            output: Shape::new(input.channels, h_out, w_out),
            window,
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

    /// Whether this is a 2×2 window with stride 2 and no padding (VGG's pooling): every window lies
    /// whole inside the input and no two overlap.
    fn halves(&self) -> bool {
        self.window == [2, 2] && self.stride == [2, 2] && self.pad == Padding::ZERO
    }

    /// The window of output pixel `(y, x)` clipped to the input: rows `[y0, y1)`, columns `[x0, x1)`.
    fn window_of(&self, y: usize, x: usize) -> ([usize; 2], [usize; 2]) {
        let y0 = y * self.stride[0];
        let x0 = x * self.stride[1];
        let rows = [
            y0.saturating_sub(self.pad.top),
            (y0 + self.window[0] - self.pad.top).min(self.input.height),
        ];
        let cols = [
            x0.saturating_sub(self.pad.left),
            (x0 + self.window[1] - self.pad.left).min(self.input.width),
        ];
        (rows, cols)
    }
}

fn validate(layer: &str, window: [usize; 2], stride: [usize; 2], pad: Padding) -> Result<()> {
    if window.contains(&0) || stride.contains(&0) {
        return Err(Error::InvalidConfig {
            layer: layer.to_owned(),
            reason: format!("window {window:?} and stride {stride:?} must be positive"),
        });
    }
    if pad.top >= window[0]
        || pad.bottom >= window[0]
        || pad.left >= window[1]
        || pad.right >= window[1]
    {
        return Err(Error::InvalidConfig {
            layer: layer.to_owned(),
            reason: format!("padding {pad} must be smaller than the window {window:?}"),
        });
    }
    Ok(())
}

/// Max pooling: the maximum over each window clipped to the input. The backward pass routes each
/// output gradient to its window's (first) maximum, kept as its position inside the window.
#[derive(Debug, Clone)]
pub struct MaxPool2d {
    spec: PoolSpec,
}

/// Average pooling: the mean over each window clipped to the input (padding is not counted).
#[derive(Debug, Clone)]
pub struct AvgPool2d {
    spec: PoolSpec,
}

/// What both pooling kinds are configured with, validated once.
#[derive(Debug, Clone)]
struct PoolSpec {
    name: String,
    window: [usize; 2],
    stride: [usize; 2],
    pad: Padding,
}

impl PoolSpec {
    fn row_window(&self) -> RowWindow {
        RowWindow {
            kernel: self.window[0],
            stride: self.stride[0],
            pad_top: self.pad.top,
        }
    }

    fn new(name: String, window: [usize; 2], stride: [usize; 2], pad: Padding) -> Result<Self> {
        validate(&name, window, stride, pad)?;
        Ok(PoolSpec {
            name,
            window,
            stride,
            pad,
        })
    }

    fn geometry(&self, input: Shape) -> Result<PoolGeometry> {
        PoolGeometry::new(input, self.window, self.stride, self.pad)
            .map_err(|e| e.in_layer(&self.name))
    }

    /// The geometry of a backward pass, after checking the gradients against it and against the
    /// forward pass that filled `saved`, and that `grad_input` can be written in place.
    fn backward_geometry(
        &self,
        saved: &Saved,
        grad_output: &ArrayView3<'_, f32>,
        grad_input: &ArrayViewMut3<'_, f32>,
    ) -> Result<PoolGeometry> {
        let g = self.geometry(Shape::of(grad_input))?;
        check_shape(&self.name, "grad_input", saved.input_shape, g.input)?;
        check_shape(&self.name, "grad_output", g.output, Shape::of(grad_output))?;
        check_contiguous(&self.name, "grad_input", grad_input)?;
        Ok(g)
    }
}

impl MaxPool2d {
    /// A max-pooling layer with `window` `[kh, kw]`, `stride` `[sy, sx]` and `pad` (smaller than the window).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a zero window or stride, or padding not smaller than the window.
    pub fn new(
        name: impl Into<String>,
        window: [usize; 2],
        stride: [usize; 2],
        pad: Padding,
    ) -> Result<Self> {
        Ok(MaxPool2d {
            spec: PoolSpec::new(name.into(), window, stride, pad)?,
        })
    }

    /// The geometry of this layer on an input of shape `input`.
    ///
    /// # Errors
    /// As [`PoolGeometry::new`], naming this layer.
    pub fn geometry(&self, input: Shape) -> Result<PoolGeometry> {
        self.spec.geometry(input)
    }
}

impl AvgPool2d {
    /// An average-pooling layer with `window` `[kh, kw]`, `stride` `[sy, sx]` and `pad` (smaller than the window).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a zero window or stride, or padding not smaller than the window.
    ///
    /// # Examples
    /// ```
    /// use ndarray::{array, Array3};
    /// use tensor_ops::{AvgPool2d, Layer, Padding};
    /// let pool = AvgPool2d::new("pool", [2, 2], [2, 2], Padding::ZERO)?;
    /// let x = array![[[1.0_f32, 2.0, 9.0], [3.0, 6.0, 9.0], [9.0, 9.0, 9.0]]]; // odd size: last row and column dropped
    /// let mut y = Array3::zeros((1, 1, 1));
    /// pool.forward(x.view(), y.view_mut(), None)?;
    /// assert_eq!(y, array![[[3.0]]]);
    /// # Ok::<(), tensor_ops::Error>(())
    /// ```
    pub fn new(
        name: impl Into<String>,
        window: [usize; 2],
        stride: [usize; 2],
        pad: Padding,
    ) -> Result<Self> {
        Ok(AvgPool2d {
            spec: PoolSpec::new(name.into(), window, stride, pad)?,
        })
    }

    /// The geometry of this layer on an input of shape `input`.
    ///
    /// # Errors
    /// As [`PoolGeometry::new`], naming this layer.
    pub fn geometry(&self, input: Shape) -> Result<PoolGeometry> {
        self.spec.geometry(input)
    }
}

impl MaxPool2d {
    /// Whether the argmax of a window fits a byte (windows of at most 256 elements, VGG's 2×2 among them).
    fn small_window(&self) -> bool {
        self.spec.window[0] * self.spec.window[1] <= 256
    }
}

/// Max over the clipped windows of one channel plane `xp` (`w_in` columns) into `y`, calling
/// `store(o, offset)` with each maximum's position inside its window, `(r − r0)·KW + (c − c0)`.
fn max_plane(g: &PoolGeometry, xp: &[f32], y: &mut [f32], mut store: impl FnMut(usize, usize)) {
    let w_in = g.input.width;
    for oy in 0..g.output.height {
        for ox in 0..g.output.width {
            let ([r0, r1], [c0, c1]) = g.window_of(oy, ox);
            let (mut best_r, mut best_c) = (r0, c0);
            for r in r0..r1 {
                for c in c0..c1 {
                    if xp[r * w_in + c] > xp[best_r * w_in + best_c] {
                        (best_r, best_c) = (r, c);
                    }
                }
            }
            let o = oy * g.output.width + ox;
            y[o] = xp[best_r * w_in + best_c];
            store(o, (best_r - r0) * g.window[1] + best_c - c0);
        }
    }
}

impl Layer for MaxPool2d {
    fn row_window(&self) -> Option<RowWindow> {
        Some(self.spec.row_window())
    }

    fn name(&self) -> &str {
        &self.spec.name
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn output_shape(&self, input: Shape) -> Result<Shape> {
        Ok(self.geometry(input)?.output)
    }

    /// Records, per output, the position of the maximum inside its window: in `saved.offsets` (one
    /// byte) for windows of at most 256 elements, else in `saved.indices`.
    fn forward(
        &self,
        input: ArrayView3<'_, f32>,
        mut output: ArrayViewMut3<'_, f32>,
        saved: Option<&mut Saved>,
    ) -> Result<()> {
        let g = self.geometry(Shape::of(&input))?;
        check_shape(&self.spec.name, "output", g.output, Shape::of(&output))?;
        check_contiguous(&self.spec.name, "output", &output)?;
        if u32::try_from(self.spec.window[0] * self.spec.window[1]).is_err() {
            return Err(Error::TooLarge {
                layer: self.spec.name.clone(),
                input: g.input,
            });
        }
        let input = input.as_standard_layout();
        let x = input.as_slice().expect("standard layout");
        let plane_in = g.input.plane();
        let plane_out = g.output.plane();
        let y = output.as_slice_mut().expect("checked standard layout");
        let planes = y
            .par_chunks_mut(plane_out)
            .zip(x.par_chunks(plane_in.max(1)));
        match saved {
            None => planes.for_each(|(y, xp)| max_plane(&g, xp, y, |_, _| {})),
            Some(saved) => {
                saved.input_shape = g.input;
                saved.offsets.clear();
                saved.indices.clear();
                if self.small_window() {
                    saved.offsets.resize(g.output.len(), 0);
                    planes
                        .zip(saved.offsets.par_chunks_mut(plane_out))
                        .for_each(|((y, xp), off)| {
                            max_plane(&g, xp, y, |o, k| {
                                off[o] = u8::try_from(k).expect("windows of at most 256 elements")
                            });
                        });
                } else {
                    saved.indices.resize(g.output.len(), 0);
                    planes
                        .zip(saved.indices.par_chunks_mut(plane_out))
                        .for_each(|((y, xp), idx)| {
                            max_plane(&g, xp, y, |o, k| {
                                idx[o] =
                                    u32::try_from(k).expect("checked: the window area fits u32")
                            });
                        });
                }
            }
        }
        Ok(())
    }

    fn backward_input(
        &self,
        saved: &Saved,
        grad_output: ArrayView3<'_, f32>,
        mut grad_input: ArrayViewMut3<'_, f32>,
    ) -> Result<()> {
        let g = self
            .spec
            .backward_geometry(saved, &grad_output, &grad_input)?;
        let n_saved = if self.small_window() {
            saved.offsets.len()
        } else {
            saved.indices.len()
        };
        if n_saved != g.output.len() {
            return Err(Error::ShapeMismatch {
                layer: self.spec.name.clone(),
                what: "saved argmax positions".to_owned(),
                expected: g.output,
                actual: saved.input_shape,
            });
        }
        let go = grad_output.as_standard_layout();
        let dy = go.as_slice().expect("standard layout");
        let plane_in = g.input.plane();
        let plane_out = g.output.plane();
        let w_in = g.input.width;
        let kw = self.spec.window[1];
        let dx = grad_input.as_slice_mut().expect("checked standard layout");
        let small = self.small_window();
        dx.par_chunks_mut(plane_in)
            .zip(dy.par_chunks(plane_out))
            .enumerate()
            .for_each(|(c, (dx, dy))| {
                dx.fill(0.0);
                for oy in 0..g.output.height {
                    for ox in 0..g.output.width {
                        let o = oy * g.output.width + ox;
                        let k = if small {
                            usize::from(saved.offsets[c * plane_out + o])
                        } else {
                            saved.indices[c * plane_out + o] as usize
                        };
                        let ([r0, _], [c0, _]) = g.window_of(oy, ox);
                        // A position outside the plane would be a corrupted record: `get_mut` keeps it
                        // from writing elsewhere, and the debug assertion reports it.
                        let slot = (r0 + k / kw) * w_in + c0 + k % kw;
                        debug_assert!(slot < plane_in, "argmax position outside its channel");
                        if let Some(v) = dx.get_mut(slot) {
                            *v += dy[o];
                        }
                    }
                }
            });
        Ok(())
    }
}

/// Average pooling of one plane with 2×2 windows, stride 2 and no padding ([`PoolGeometry::halves`]),
/// row pair by row pair; `false` (nothing written) when a row is not contiguous, for the general
/// loop. Each mean is summed in the general loop's order, from `0.0`, so the bits are the same.
fn avg2x2_forward(x: ArrayView2<'_, f32>, mut y: ArrayViewMut2<'_, f32>) -> bool {
    let (h_out, w_out) = y.dim();
    for oy in 0..h_out {
        let (Some(r0), Some(r1)) = (x.row(2 * oy).to_slice(), x.row(2 * oy + 1).to_slice()) else {
            return false;
        };
        let Some(out) = y.row_mut(oy).into_slice() else {
            return false;
        };
        let pairs = r0.chunks_exact(2).zip(r1.chunks_exact(2));
        for (v, (a, b)) in out[..w_out].iter_mut().zip(pairs) {
            *v = (0.0 + a[0] + a[1] + b[0] + b[1]) / 4.0;
        }
    }
    true
}

/// The input gradient of [`avg2x2_forward`]: each window's four inputs get a quarter of its output
/// gradient, rows and columns no window reaches get 0.
fn avg2x2_backward(dy: ArrayView2<'_, f32>, mut dx: ArrayViewMut2<'_, f32>) -> bool {
    let (h_out, w_out) = dy.dim();
    let w = dx.dim().1;
    let mut rows = dx.rows_mut().into_iter();
    for oy in 0..h_out {
        let Some(d) = dy.row(oy).to_slice() else {
            return false;
        };
        for _ in 0..2 {
            let Some(out) = rows.next().and_then(|r| r.into_slice()) else {
                return false;
            };
            for (pair, &g) in out[..2 * w_out].chunks_exact_mut(2).zip(d) {
                let share = 0.0 + g / 4.0;
                pair[0] = share;
                pair[1] = share;
            }
            out[2 * w_out..w].fill(0.0);
        }
    }
    for mut row in rows {
        row.fill(0.0);
    }
    true
}

impl Layer for AvgPool2d {
    fn row_window(&self) -> Option<RowWindow> {
        Some(self.spec.row_window())
    }

    fn is_avg_pool_2x2(&self) -> bool {
        self.spec.window == [2, 2] && self.spec.stride == [2, 2] && self.spec.pad == Padding::ZERO
    }

    fn name(&self) -> &str {
        &self.spec.name
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
        mut output: ArrayViewMut3<'_, f32>,
        saved: Option<&mut Saved>,
    ) -> Result<()> {
        let g = self.geometry(Shape::of(&input))?;
        check_shape(&self.spec.name, "output", g.output, Shape::of(&output))?;
        check_contiguous(&self.spec.name, "output", &output)?;
        output
            .axis_iter_mut(Axis(0))
            .into_par_iter()
            .zip(input.axis_iter(Axis(0)))
            .for_each(|(mut y, x)| {
                if g.halves() && avg2x2_forward(x, y.view_mut()) {
                    return;
                }
                for oy in 0..g.output.height {
                    for ox in 0..g.output.width {
                        let ([r0, r1], [c0, c1]) = g.window_of(oy, ox);
                        let mut sum = 0.0_f32;
                        for r in r0..r1 {
                            for c in c0..c1 {
                                sum += x[[r, c]];
                            }
                        }
                        y[[oy, ox]] = sum / ((r1 - r0) * (c1 - c0)) as f32;
                    }
                }
            });
        if let Some(saved) = saved {
            saved.input_shape = g.input;
        }
        Ok(())
    }

    fn backward_input(
        &self,
        saved: &Saved,
        grad_output: ArrayView3<'_, f32>,
        mut grad_input: ArrayViewMut3<'_, f32>,
    ) -> Result<()> {
        let g = self
            .spec
            .backward_geometry(saved, &grad_output, &grad_input)?;
        grad_input
            .axis_iter_mut(Axis(0))
            .into_par_iter()
            .zip(grad_output.axis_iter(Axis(0)))
            .for_each(|(mut dx, dy)| {
                if g.halves() && avg2x2_backward(dy, dx.view_mut()) {
                    return;
                }
                dx.fill(0.0);
                for oy in 0..g.output.height {
                    for ox in 0..g.output.width {
                        let ([r0, r1], [c0, c1]) = g.window_of(oy, ox);
                        let share = dy[[oy, ox]] / ((r1 - r0) * (c1 - c0)) as f32;
                        for r in r0..r1 {
                            for c in c0..c1 {
                                dx[[r, c]] += share;
                            }
                        }
                    }
                }
            });
        Ok(())
    }
}
