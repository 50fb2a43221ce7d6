//! The ReLU mask of a layer that applies the ReLU itself ([`Layer::forward_relu`]), kept by rows.
//!
//! Bit `x % 32` of word `(c·H + y)·⌈W/32⌉ + x / 32` is set where output `(c, y, x)` was positive before
//! the ReLU. Each row starts at a word of its own, so that the tasks that write different rows (a
//! convolution's output pass writes whole rows of a channel) never share a word, and a row is read
//! back 32 values a word from its start.

use ndarray::{ArrayView3, ArrayViewMut3, Axis};
use rayon::prelude::*;

use crate::layer::{Saved, check_contiguous, check_shape};
use crate::{Error, Layer, Result, Shape};

/// Words per row of a row mask of width `w`.
pub(crate) fn words_per_row(w: usize) -> usize {
    w.div_ceil(32)
}

/// Words of the row mask of a `[C, H, W]` output.
pub(crate) fn mask_len(shape: Shape) -> usize {
    shape.channels * shape.height * words_per_row(shape.width)
}

/// `y = max(y, 0)` for up to 32 values (a row's word), returning bit `b` set where `y[b] > 0` before.
#[inline]
pub(crate) fn relu_word(y: &mut [f32]) -> u32 {
    let mut bits = 0_u32;
    for (b, v) in y.iter_mut().enumerate().take(32) {
        bits |= u32::from(*v > 0.0) << b;
        *v = v.max(0.0);
    }
    bits
}

/// `v[b] = 0` where bit `b` of `word` is clear, for up to 32 values.
#[inline]
pub(crate) fn mask_word(v: &mut [f32], word: u32) {
    for (b, x) in v.iter_mut().enumerate().take(32) {
        // All ones where the bit is set, else 0: a bitwise select without a branch.
        let keep = 0_u32.wrapping_sub((word >> b) & 1);
        *x = f32::from_bits(x.to_bits() & keep);
    }
}

/// `row[x] = 0` where the mask row `words` has bit `x` clear (`row` starts at column 0).
#[inline]
pub(crate) fn mask_row(row: &mut [f32], words: &[u32]) {
    for (v, &w) in row.chunks_mut(32).zip(words) {
        mask_word(v, w);
    }
}

/// ReLU over `output` in place, its row mask into `mask` when given (the generic path of
/// [`Layer::forward_relu`]), one channel per task.
pub(crate) fn relu_rows(mut output: ArrayViewMut3<'_, f32>, mask: Option<&mut Vec<u32>>) {
    let (_, h, w) = output.dim();
    let wpr = words_per_row(w);
    let run = |mut plane: ndarray::ArrayViewMut2<'_, f32>, bits: Option<&mut [u32]>| {
        let plane = plane
            .as_slice_mut()
            .expect("a channel of a standard-layout array");
        match bits {
            Some(bits) => {
                for (row, words) in plane.chunks_mut(w).zip(bits.chunks_mut(wpr)) {
                    for (v, word) in row.chunks_mut(32).zip(words) {
                        *word = relu_word(v);
                    }
                }
            }
            None => plane.iter_mut().for_each(|v| *v = v.max(0.0)),
        }
    };
    let n_channels = output.dim().0;
    let planes = output.axis_iter_mut(Axis(0)).into_par_iter();
    match mask {
        Some(mask) => {
            mask.clear();
            mask.resize(n_channels * h * wpr, 0);
            planes
                .zip(mask.par_chunks_mut((h * wpr).max(1)))
                .for_each(|(p, bits)| run(p, Some(bits)));
        }
        None => planes.for_each(|p| run(p, None)),
    }
}

/// Checks that `saved` holds the row mask of an output of shape `shape` (named after `layer`).
pub(crate) fn check_mask(layer: &str, saved: &Saved, shape: Shape) -> Result<()> {
    if saved.row_mask.len() == mask_len(shape) {
        Ok(())
    } else {
        Err(Error::ShapeMismatch {
            layer: layer.to_owned(),
            what: "saved ReLU mask (forward_relu)".to_owned(),
            expected: shape,
            actual: saved.input_shape,
        })
    }
}

/// `dY ⊙ mask` as a new array (the generic path of [`Layer::backward_input_masked`]).
pub(crate) fn masked_copy(grad_output: ArrayView3<'_, f32>, mask: &[u32]) -> ndarray::Array3<f32> {
    let mut out = grad_output.to_owned();
    let (_, _, w) = out.dim();
    let wpr = words_per_row(w);
    let data = out.as_slice_mut().expect("a fresh array");
    if w > 0 {
        data.par_chunks_mut(w)
            .zip(mask.par_chunks(wpr))
            .for_each(|(row, words)| mask_row(row, words));
    }
    out
}

/// The default [`Layer::forward_relu`]: the forward pass, then the ReLU over its output.
pub(crate) fn forward_then_relu<L: Layer + ?Sized>(
    layer: &L,
    input: ArrayView3<'_, f32>,
    mut output: ArrayViewMut3<'_, f32>,
    saved: Option<&mut Saved>,
) -> Result<()> {
    check_contiguous(layer.name(), "output", &output)?;
    match saved {
        Some(saved) => {
            layer.forward(input, output.view_mut(), Some(saved))?;
            relu_rows(output, Some(&mut saved.row_mask));
        }
        None => {
            layer.forward(input, output.view_mut(), None)?;
            relu_rows(output, None);
        }
    }
    Ok(())
}

/// The default [`Layer::backward_input_masked`]: `dY ⊙ mask` into a temporary, then the layer's
/// input gradient (added into `grad_input` with `accumulate`).
pub(crate) fn mask_then_backward<L: Layer + ?Sized>(
    layer: &L,
    saved: &Saved,
    grad_output: ArrayView3<'_, f32>,
    grad_input: ArrayViewMut3<'_, f32>,
    accumulate: bool,
) -> Result<()> {
    let shape = Shape::of(&grad_output);
    check_shape(
        layer.name(),
        "grad_output",
        layer.output_shape(saved.input_shape)?,
        shape,
    )?;
    check_mask(layer.name(), saved, shape)?;
    let masked = masked_copy(grad_output, &saved.row_mask);
    if accumulate {
        layer.backward_input_add(saved, masked.view(), grad_input)
    } else {
        layer.backward_input(saved, masked.view(), grad_input)
    }
}

/// Where an output pass writes row-mask words: the mask of a `[C, H, W]` output, shared by the
/// tasks of one pass, each of which writes the words of rows no other task writes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowBits {
    ptr: *mut u32,
    len: usize,
    height: usize,
    words_per_row: usize,
}

// SAFETY: a `RowBits` is only a base pointer into a mask that outlives the parallel section that
// shares it (borrowed mutably for the whole pass, see `RowBits::new`); tasks write disjoint rows.
unsafe impl Send for RowBits {}
// SAFETY: as for `Send`: shared use only writes the words of disjoint rows.
unsafe impl Sync for RowBits {}

impl RowBits {
    /// The writer of `mask`, the row mask of an output of `height × width` per channel (sized by
    /// [`mask_len`]). The mask must stay borrowed (unused otherwise) while the writer is in use.
    pub(crate) fn new(mask: &mut [u32], height: usize, width: usize) -> RowBits {
        RowBits {
            ptr: mask.as_mut_ptr(),
            len: mask.len(),
            height,
            words_per_row: words_per_row(width),
        }
    }

    /// Writes word `word` of row `y` of channel `c`. Callers write only rows their task owns.
    ///
    /// # Panics
    /// When the word lies outside the mask.
    #[inline(always)]
    pub(crate) fn write(&self, c: usize, y: usize, word: usize, bits: u32) {
        assert!(
            y < self.height && word < self.words_per_row,
            "a word of the row"
        );
        let i = (c * self.height + y) * self.words_per_row + word;
        assert!(i < self.len, "a word of the mask");
        // SAFETY: `i < len` (checked above) keeps the write inside the mask; the word belongs to row
        // `(c, y)`, which only the calling task writes (see the type's docs).
        unsafe { self.ptr.add(i).write(bits) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn relu_rows_masks_by_row_and_masked_copy_undoes_nothing_else() {
        let (c, h, w) = (3, 5, 37);
        let mut y = Array3::from_shape_fn((c, h, w), |(a, b, d)| {
            ((a * 31 + b * 7 + d * 3) % 11) as f32 - 5.0
        });
        let before = y.clone();
        let mut mask = vec![7_u32; 2];
        relu_rows(y.view_mut(), Some(&mut mask));
        assert_eq!(mask.len(), c * h * 2);
        for ((a, b, d), &x) in before.indexed_iter() {
            assert_eq!(y[[a, b, d]], x.max(0.0));
            let bit = mask[(a * h + b) * 2 + d / 32] >> (d % 32) & 1;
            assert_eq!(bit == 1, x > 0.0, "bit of ({a}, {b}, {d})");
        }
        // Bits past the row's end stay clear.
        assert_eq!(mask[1] >> (w - 32), 0);
        let dy = Array3::from_shape_fn((c, h, w), |(a, b, d)| (a + b + d) as f32 + 0.5);
        let masked = masked_copy(dy.view(), &mask);
        for ((a, b, d), &g) in dy.indexed_iter() {
            let want = if before[[a, b, d]] > 0.0 { g } else { 0.0 };
            assert_eq!(masked[[a, b, d]], want);
        }
    }
}
