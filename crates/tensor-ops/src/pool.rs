//! Max and average pooling with MatConvNet's semantics for odd sizes and padding.
//!
//! Output size: `floor((H + pt + pb − KH) / sy) + 1` (likewise for the width); rows and columns that no
//! whole step reaches are dropped, as in MatConvNet's `vl_nnpool`. Padding must be smaller than the
//! window, so every window overlaps the input. Padded positions never take part:
//! max pooling takes the maximum over the window clipped to the input (the same as padding with `−∞`),
//! and average pooling divides by the number of input pixels in the clipped window, not by `KH·KW`.
//! That is MatConvNet's choice (`pooling_cpu.cpp`: the accumulator is built with the clipped window
//! `(y2 − y1)·(x2 − x1)`), and PyTorch's `count_include_pad = false`.

use ndarray::{ArrayView3, ArrayViewMut3, Axis};
use rayon::prelude::*;

use crate::layer::{Saved, check_contiguous, check_shape};
use crate::{Error, Layer, Padding, Result, Shape, shape::out_len};

/// Validated geometry of a pooling layer on a given input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolGeometry {
    input: Shape,
    output: Shape,
    window: [usize; 2],
    stride: [usize; 2],
    pad: Padding,
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
/// output gradient to its window's (first) maximum, kept as a 32-bit flat input index.
#[derive(Debug, Clone)]
pub struct MaxPool2d {
    name: String,
    window: [usize; 2],
    stride: [usize; 2],
    pad: Padding,
}

/// Average pooling: the mean over each window clipped to the input (padding is not counted).
#[derive(Debug, Clone)]
pub struct AvgPool2d {
    name: String,
    window: [usize; 2],
    stride: [usize; 2],
    pad: Padding,
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
        let name = name.into();
        validate(&name, window, stride, pad)?;
        Ok(MaxPool2d {
            name,
            window,
            stride,
            pad,
        })
    }

    /// The geometry of this layer on an input of shape `input`.
    ///
    /// # Errors
    /// As [`PoolGeometry::new`], naming this layer.
    pub fn geometry(&self, input: Shape) -> Result<PoolGeometry> {
        PoolGeometry::new(input, self.window, self.stride, self.pad)
            .map_err(|e| e.in_layer(&self.name))
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
        let name = name.into();
        validate(&name, window, stride, pad)?;
        Ok(AvgPool2d {
            name,
            window,
            stride,
            pad,
        })
    }

    /// The geometry of this layer on an input of shape `input`.
    ///
    /// # Errors
    /// As [`PoolGeometry::new`], naming this layer.
    pub fn geometry(&self, input: Shape) -> Result<PoolGeometry> {
        PoolGeometry::new(input, self.window, self.stride, self.pad)
            .map_err(|e| e.in_layer(&self.name))
    }
}

impl Layer for MaxPool2d {
    fn name(&self) -> &str {
        &self.name
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
        check_shape(&self.name, "output", g.output, Shape::of(&output))?;
        check_contiguous(&self.name, "output", &output)?;
        if u32::try_from(g.input.len()).is_err() {
            return Err(Error::TooLarge {
                layer: self.name.clone(),
                input: g.input,
            });
        }
        let input = input.as_standard_layout();
        let x = input.as_slice().expect("standard layout");
        let plane_in = g.input.plane();
        let plane_out = g.output.plane();
        let w_in = g.input.width;
        let y = output.as_slice_mut().expect("checked standard layout");
        let mut dummy = Vec::new();
        let indices = match saved {
            Some(saved) => {
                saved.input_shape = g.input;
                saved.indices.clear();
                saved.indices.resize(g.output.len(), 0);
                &mut saved.indices
            }
            None => &mut dummy,
        };
        let run = |c: usize, y: &mut [f32], mut idx: Option<&mut [u32]>| {
            let xp = &x[c * plane_in..(c + 1) * plane_in];
            for oy in 0..g.output.height {
                for ox in 0..g.output.width {
                    let ([r0, r1], [c0, c1]) = g.window_of(oy, ox);
                    let mut best = r0 * w_in + c0;
                    for r in r0..r1 {
                        for col in c0..c1 {
                            if xp[r * w_in + col] > xp[best] {
                                best = r * w_in + col;
                            }
                        }
                    }
                    let o = oy * g.output.width + ox;
                    y[o] = xp[best];
                    if let Some(idx) = idx.as_deref_mut() {
                        idx[o] = u32::try_from(c * plane_in + best)
                            .expect("checked above: the input has fewer than 2^32 elements");
                    }
                }
            }
        };
        if indices.is_empty() {
            y.par_chunks_mut(plane_out.max(1))
                .enumerate()
                .for_each(|(c, y)| run(c, y, None));
        } else {
            y.par_chunks_mut(plane_out)
                .zip(indices.par_chunks_mut(plane_out))
                .enumerate()
                .for_each(|(c, (y, idx))| run(c, y, Some(idx)));
        }
        Ok(())
    }

    fn backward_input(
        &self,
        saved: &Saved,
        grad_output: ArrayView3<'_, f32>,
        mut grad_input: ArrayViewMut3<'_, f32>,
    ) -> Result<()> {
        let g = self.geometry(Shape::of(&grad_input))?;
        check_shape(&self.name, "grad_input", saved.input_shape, g.input)?;
        check_shape(&self.name, "grad_output", g.output, Shape::of(&grad_output))?;
        check_contiguous(&self.name, "grad_input", &grad_input)?;
        if saved.indices.len() != g.output.len() {
            return Err(Error::ShapeMismatch {
                layer: self.name.clone(),
                what: "saved indices".to_owned(),
                expected: g.output,
                actual: saved.input_shape,
            });
        }
        let go = grad_output.as_standard_layout();
        let dy = go.as_slice().expect("standard layout");
        let plane_in = g.input.plane();
        let plane_out = g.output.plane();
        let dx = grad_input.as_slice_mut().expect("checked standard layout");
        if plane_out == 0 || plane_in == 0 {
            dx.fill(0.0);
            return Ok(());
        }
        dx.par_chunks_mut(plane_in)
            .zip(
                dy.par_chunks(plane_out)
                    .zip(saved.indices.par_chunks(plane_out)),
            )
            .enumerate()
            .for_each(|(c, (dx, (dy, idx)))| {
                dx.fill(0.0);
                let base = c * plane_in;
                for (&d, &i) in dy.iter().zip(idx) {
                    // An index outside this channel would be a corrupted record; `get_mut` keeps it from
                    // writing elsewhere, and the debug assertion reports it.
                    let slot = (i as usize).wrapping_sub(base);
                    debug_assert!(slot < plane_in, "argmax index outside its channel");
                    if let Some(v) = dx.get_mut(slot) {
                        *v += d;
                    }
                }
            });
        Ok(())
    }
}

impl Layer for AvgPool2d {
    fn name(&self) -> &str {
        &self.name
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
        check_shape(&self.name, "output", g.output, Shape::of(&output))?;
        check_contiguous(&self.name, "output", &output)?;
        output
            .axis_iter_mut(Axis(0))
            .into_par_iter()
            .zip(input.axis_iter(Axis(0)))
            .for_each(|(mut y, x)| {
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
        let g = self.geometry(Shape::of(&grad_input))?;
        check_shape(&self.name, "grad_input", saved.input_shape, g.input)?;
        check_shape(&self.name, "grad_output", g.output, Shape::of(&grad_output))?;
        check_contiguous(&self.name, "grad_input", &grad_input)?;
        grad_input
            .axis_iter_mut(Axis(0))
            .into_par_iter()
            .zip(grad_output.axis_iter(Axis(0)))
            .for_each(|(mut dx, dy)| {
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
