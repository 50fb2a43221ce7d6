//! Rectified linear unit `y = max(x, 0)`; the backward pass keeps one bit per element.

use ndarray::{ArrayView3, ArrayViewMut3};
use rayon::prelude::*;

use crate::layer::{Saved, check_contiguous, check_shape};
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
        let shape = Shape::of(&input);
        check_shape(&self.name, "output", shape, Shape::of(&output))?;
        check_contiguous(&self.name, "output", &output)?;
        let input = input.as_standard_layout();
        let x = input.as_slice().expect("standard layout");
        let y = output
            .as_slice_mut()
            .expect("the output is in standard layout");
        match saved {
            None => y
                .par_chunks_mut(CHUNK)
                .zip(x.par_chunks(CHUNK))
                .for_each(|(y, x)| {
                    for (y, &x) in y.iter_mut().zip(x) {
                        *y = x.max(0.0);
                    }
                }),
            Some(saved) => {
                saved.input_shape = shape;
                saved.mask.clear();
                saved.mask.resize(x.len().div_ceil(64), 0);
                y.par_chunks_mut(CHUNK)
                    .zip(x.par_chunks(CHUNK))
                    .zip(saved.mask.par_chunks_mut(CHUNK / 64))
                    .for_each(|((y, x), mask)| {
                        for ((y, x), word) in y.chunks_mut(64).zip(x.chunks(64)).zip(mask) {
                            let mut bits = 0_u64;
                            for (b, (y, &x)) in y.iter_mut().zip(x).enumerate() {
                                bits |= u64::from(x > 0.0) << b;
                                *y = x.max(0.0);
                            }
                            *word = bits;
                        }
                    });
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
        let shape = Shape::of(&grad_input);
        check_shape(&self.name, "grad_input", saved.input_shape, shape)?;
        check_shape(&self.name, "grad_output", shape, Shape::of(&grad_output))?;
        check_contiguous(&self.name, "grad_input", &grad_input)?;
        if saved.mask.len() != shape.len().div_ceil(64) {
            return Err(Error::ShapeMismatch {
                layer: self.name.clone(),
                what: "saved mask".to_owned(),
                expected: shape,
                actual: saved.input_shape,
            });
        }
        let go = grad_output.as_standard_layout();
        let dy = go.as_slice().expect("standard layout");
        let dx = grad_input
            .as_slice_mut()
            .expect("grad_input is in standard layout");
        dx.par_chunks_mut(CHUNK)
            .zip(dy.par_chunks(CHUNK))
            .zip(saved.mask.par_chunks(CHUNK / 64))
            .for_each(|((dx, dy), mask)| {
                for ((dx, dy), &word) in dx.chunks_mut(64).zip(dy.chunks(64)).zip(mask) {
                    for (b, (dx, &dy)) in dx.iter_mut().zip(dy).enumerate() {
                        *dx = if word >> b & 1 == 1 { dy } else { 0.0 };
                    }
                }
            });
        Ok(())
    }
}
