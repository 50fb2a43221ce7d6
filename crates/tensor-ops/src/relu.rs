//! Rectified linear unit `y = max(x, 0)`; the backward pass keeps one bit per element.

use ndarray::{ArrayView3, ArrayViewMut3};
use rayon::prelude::*;

use crate::layer::{RowWindow, Saved, check_contiguous, check_shape};
use crate::{Error, Layer, Result, Shape};

/// `y = max(x, 0)`, with gradient `dx = dy · [x > 0]` (0 at `x = 0`).
#[derive(Debug, Clone)]
pub struct Relu {
    name: String,
}

impl Relu {
    /// A ReLU layer named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Relu { name: name.into() }
    }
}

/// Elements per parallel work item (a multiple of 64, so each item owns whole mask words).
const CHUNK: usize = 64 * 1024;

impl Layer for Relu {
    fn name(&self) -> &str {
        &self.name
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn output_shape(&self, input: Shape) -> Result<Shape> {
        Ok(input)
    }

    fn forward(
        &self,
        input: ArrayView3<'_, f32>,
        mut output: ArrayViewMut3<'_, f32>,
        saved: Option<&mut Saved>,
    ) -> Result<()> {
        check_shape(&self.name, "output", Shape::of(&input), Shape::of(&output))?;
        check_contiguous(&self.name, "output", &output)?;
        let input = input.as_standard_layout();
        let x = input.as_slice().expect("standard layout");
        self.run_forward(&mut output, Some(x), saved)
    }

    fn backward_input(
        &self,
        saved: &Saved,
        grad_output: ArrayView3<'_, f32>,
        mut grad_input: ArrayViewMut3<'_, f32>,
    ) -> Result<()> {
        check_shape(
            &self.name,
            "grad_output",
            Shape::of(&grad_input),
            Shape::of(&grad_output),
        )?;
        let go = grad_output.as_standard_layout();
        let dy = go.as_slice().expect("standard layout");
        self.run_backward(saved, &mut grad_input, Some(dy))
    }

    fn runs_in_place(&self) -> bool {
        true
    }

    fn is_relu(&self) -> bool {
        true
    }

    fn row_window(&self) -> Option<RowWindow> {
        Some(RowWindow {
            kernel: 1,
            stride: 1,
            pad_top: 0,
        })
    }

    fn forward_in_place(
        &self,
        mut data: ArrayViewMut3<'_, f32>,
        saved: Option<&mut Saved>,
    ) -> Result<()> {
        check_contiguous(&self.name, "data", &data)?;
        self.run_forward(&mut data, None, saved)
    }

    fn backward_input_in_place(
        &self,
        saved: &Saved,
        mut grad: ArrayViewMut3<'_, f32>,
    ) -> Result<()> {
        self.run_backward(saved, &mut grad, None)
    }
}

impl Relu {
    /// `y = max(x, 0)` chunk by chunk, with `x` read from `input` or, without one, from `y` itself;
    /// records the mask in `saved` when given.
    fn run_forward(
        &self,
        output: &mut ArrayViewMut3<'_, f32>,
        input: Option<&[f32]>,
        saved: Option<&mut Saved>,
    ) -> Result<()> {
        let shape = Shape::of(&*output);
        let y = output
            .as_slice_mut()
            .expect("the output is in standard layout");
        let load = |y: &mut [f32], at: usize| {
            if let Some(x) = input {
                y.copy_from_slice(&x[at..at + y.len()]);
            }
        };
        match saved {
            None => y.par_chunks_mut(CHUNK).enumerate().for_each(|(c, y)| {
                load(y, c * CHUNK);
                for v in y {
                    *v = v.max(0.0);
                }
            }),
            Some(saved) => {
                saved.input_shape = shape;
                saved.mask.clear();
                saved.mask.resize(y.len().div_ceil(64), 0);
                y.par_chunks_mut(CHUNK)
                    .zip(saved.mask.par_chunks_mut(CHUNK / 64))
                    .enumerate()
                    .for_each(|(c, (y, mask))| {
                        load(y, c * CHUNK);
                        for (y, word) in y.chunks_mut(64).zip(mask) {
                            *word = relu_word(y);
                        }
                    });
            }
        }
        Ok(())
    }

    /// `dx = dy · mask` chunk by chunk, with `dy` read from `grad_output` or, without one, from
    /// `grad` itself.
    fn run_backward(
        &self,
        saved: &Saved,
        grad: &mut ArrayViewMut3<'_, f32>,
        grad_output: Option<&[f32]>,
    ) -> Result<()> {
        let shape = Shape::of(&*grad);
        check_shape(&self.name, "grad_input", saved.input_shape, shape)?;
        check_contiguous(&self.name, "grad_input", grad)?;
        if saved.mask.len() != shape.len().div_ceil(64) {
            return Err(Error::ShapeMismatch {
                layer: self.name.clone(),
                what: "saved mask".to_owned(),
                expected: shape,
                actual: saved.input_shape,
            });
        }
        let dx = grad
            .as_slice_mut()
            .expect("grad_input is in standard layout");
        dx.par_chunks_mut(CHUNK)
            .zip(saved.mask.par_chunks(CHUNK / 64))
            .enumerate()
            .for_each(|(c, (dx, mask))| {
                if let Some(dy) = grad_output {
                    dx.copy_from_slice(&dy[c * CHUNK..c * CHUNK + dx.len()]);
                }
                for (dx, &word) in dx.chunks_mut(64).zip(mask) {
                    mask_word(dx, word);
                }
            });
        Ok(())
    }
}

/// `y = max(y, 0)` for up to 64 values, returning bit `b` set where `y[b] > 0` (before clamping).
///
/// Whole words go in groups of 16 lanes whose bit positions are constants, a shape the compiler
/// turns into vector compares and mask moves; a shorter last word goes one value at a time.
#[inline]
fn relu_word(y: &mut [f32]) -> u64 {
    let mut bits = 0_u64;
    if y.len() == 64 {
        for (g, group) in y.as_chunks_mut::<16>().0.iter_mut().enumerate() {
            let mut lanes = 0_u16;
            for (b, v) in group.iter_mut().enumerate() {
                lanes |= u16::from(*v > 0.0) << b;
                *v = v.max(0.0);
            }
            bits |= u64::from(lanes) << (16 * g);
        }
    } else {
        for (b, v) in y.iter_mut().enumerate() {
            bits |= u64::from(*v > 0.0) << b;
            *v = v.max(0.0);
        }
    }
    bits
}

/// `dx[b] = 0` where bit `b` of `word` is clear, for up to 64 values (grouped as in [`relu_word`]).
#[inline]
fn mask_word(dx: &mut [f32], word: u64) {
    if dx.len() == 64 {
        for (g, group) in dx.as_chunks_mut::<16>().0.iter_mut().enumerate() {
            let lanes = (word >> (16 * g)) as u16;
            for (b, v) in group.iter_mut().enumerate() {
                // All ones where the bit is set, else 0: a bitwise select without a branch.
                let keep = 0_u32.wrapping_sub(u32::from(lanes >> b) & 1);
                *v = f32::from_bits(v.to_bits() & keep);
            }
        }
    } else {
        for (b, v) in dx.iter_mut().enumerate() {
            if word >> b & 1 == 0 {
                *v = 0.0;
            }
        }
    }
}
