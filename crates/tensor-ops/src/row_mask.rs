//! The ReLU mask of a layer that applies the ReLU itself ([`Layer::forward_fused`]), kept by rows,
//! and the generic (unfused) epilogues.
//!
//! Bit `x % 32` of word `(c·H + y)·⌈W/32⌉ + x / 32` is set where output `(c, y, x)` was positive before
//! the ReLU. Each row starts at a word of its own, so that the tasks that write different rows (a
//! convolution's output pass writes whole rows of a channel) never share a word, and a row is read
//! back 32 values a word from its start.

use ndarray::{Array3, ArrayView3, ArrayViewMut3, Axis};
use rayon::prelude::*;

use crate::layer::{Saved, check_contiguous, check_shape};
use crate::{Epilogue, Error, Layer, Result, Shape};

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
#[inline(always)]
pub(crate) fn mask_word(v: &mut [f32], word: u32) {
    for (b, x) in v.iter_mut().enumerate().take(32) {
        // All ones where the bit is set, else 0: a bitwise select without a branch.
        let keep = 0_u32.wrapping_sub((word >> b) & 1);
        *x = f32::from_bits(x.to_bits() & keep);
    }
}

/// `row[x] = 0` where the mask row `words` has bit `x` clear (`row` starts at column 0).
#[inline(always)]
pub(crate) fn mask_row(row: &mut [f32], words: &[u32]) {
    for (v, &w) in row.chunks_mut(32).zip(words) {
        mask_word(v, w);
    }
}

/// ReLU over `output` in place, its row mask into `mask` when given (the generic path of
/// [`Layer::forward_fused`]), one channel per task.
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
        // The words say nothing of the shape they were kept for: name the words.
        let words = Shape::new(1, 1, saved.row_mask.len());
        Err(Error::ShapeMismatch {
            layer: layer.to_owned(),
            what: format!(
                "saved ReLU mask: {} words for an output of {shape} (was the forward pass forward_fused?)",
                saved.row_mask.len()
            ),
            expected: Shape::new(1, 1, mask_len(shape)),
            actual: words,
        })
    }
}

/// `(0 + a + b + c + d) / 4` over the 2×2 windows of `full`, into `pooled` (`⌊H/2⌋ × ⌊W/2⌋`): the
/// arithmetic of [`AvgPool2d`](crate::AvgPool2d) for these windows.
pub(crate) fn avg_pool2(full: ArrayView3<'_, f32>, mut pooled: ArrayViewMut3<'_, f32>) {
    pooled
        .axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(full.axis_iter(Axis(0)))
        .for_each(|(mut p, f)| {
            for ((y, x), v) in p.indexed_iter_mut() {
                let (a, b) = (f[[2 * y, 2 * x]], f[[2 * y, 2 * x + 1]]);
                let (c, d) = (f[[2 * y + 1, 2 * x]], f[[2 * y + 1, 2 * x + 1]]);
                *v = pool_window(a, b, c, d);
            }
        });
}

/// One window of the 2×2 average pooling: `(0 + a + b + c + d) / 4`, `a, b` the upper row.
#[inline(always)]
pub(crate) fn pool_window(a: f32, b: f32, c: f32, d: f32) -> f32 {
    (0.0 + a + b + c + d) / 4.0
}

/// One input's share of a 2×2 average pooling's output gradient `g`: `0 + g / 4`.
#[inline(always)]
pub(crate) fn pool_share(g: f32) -> f32 {
    0.0 + g / 4.0
}

/// The gradient with respect to a layer's output (of shape `full`) of its epilogue, given the
/// gradient `grad` of the epilogue's output: `mask ⊙ grad`, or `mask ⊙` the pooling's input
/// gradient (a quarter of each window's gradient to its four inputs, 0 for rows and columns no
/// window reaches).
pub(crate) fn unfused_gradient(
    grad: ArrayView3<'_, f32>,
    full: Shape,
    mask: &[u32],
    epilogue: Epilogue,
) -> Array3<f32> {
    let mut out = match epilogue {
        Epilogue::Relu => grad.to_owned(),
        Epilogue::ReluAvgPool2 => Array3::from_shape_fn(full.dim(), |(c, y, x)| {
            let (py, px) = (y / 2, x / 2);
            if py < grad.dim().1 && px < grad.dim().2 {
                pool_share(grad[[c, py, px]])
            } else {
                0.0
            }
        }),
    };
    let wpr = words_per_row(full.width);
    let data = out.as_slice_mut().expect("a fresh array");
    if full.width > 0 {
        data.par_chunks_mut(full.width)
            .zip(mask.par_chunks(wpr))
            .for_each(|(row, words)| mask_row(row, words));
    }
    out
}

/// The default [`Layer::forward_fused`]: the forward pass (into a temporary when pooling), then the
/// ReLU and the pooling over its output.
pub(crate) fn forward_then_epilogue<L: Layer + ?Sized>(
    layer: &L,
    input: ArrayView3<'_, f32>,
    mut output: ArrayViewMut3<'_, f32>,
    mut saved: Option<&mut Saved>,
    epilogue: Epilogue,
) -> Result<()> {
    let full = layer.output_shape(Shape::of(&input))?;
    check_shape(
        layer.name(),
        "output",
        epilogue.output_shape(full),
        Shape::of(&output),
    )?;
    check_contiguous(layer.name(), "output", &output)?;
    let mut own = match epilogue {
        Epilogue::Relu => None,
        Epilogue::ReluAvgPool2 => Some(Array3::zeros(full.dim())),
    };
    let mut y = match own.as_mut() {
        Some(a) => a.view_mut(),
        None => output.view_mut(),
    };
    layer.forward(input, y.view_mut(), saved.as_deref_mut())?;
    relu_rows(y, saved.map(|s| &mut s.row_mask));
    if let Some(full) = own {
        avg_pool2(full.view(), output);
    }
    Ok(())
}

/// The default [`Layer::backward_input_fused`]: the gradient with respect to the layer's output in
/// a temporary, then the layer's input gradient (added into `grad_input` with `accumulate`).
pub(crate) fn epilogue_then_backward<L: Layer + ?Sized>(
    layer: &L,
    saved: &Saved,
    (grad_output, grad_input): (ArrayView3<'_, f32>, ArrayViewMut3<'_, f32>),
    accumulate: bool,
    epilogue: Epilogue,
) -> Result<()> {
    let full = layer.output_shape(saved.input_shape)?;
    let shape = Shape::of(&grad_output);
    check_shape(
        layer.name(),
        "grad_output",
        epilogue.output_shape(full),
        shape,
    )?;
    check_mask(layer.name(), saved, full)?;
    let dy = unfused_gradient(grad_output, full, &saved.row_mask, epilogue);
    if accumulate {
        layer.backward_input_add(saved, dy.view(), grad_input)
    } else {
        layer.backward_input(saved, dy.view(), grad_input)
    }
}

/// Where an output pass writes row-mask words: the mask of a `[C, H, W]` output, shared by the
/// tasks of one pass, each of which writes the words of rows no other task writes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowBits<'a> {
    ptr: *mut u32,
    len: usize,
    height: usize,
    words_per_row: usize,
    /// The mask stays borrowed mutably for as long as any copy of the writer lives.
    mask: std::marker::PhantomData<&'a mut [u32]>,
}

// SAFETY: a `RowBits` is a base pointer into a mask it borrows mutably for its lifetime `'a`, so the
// mask outlives every copy shared by a parallel section and nothing else reads or writes it
// meanwhile; tasks write disjoint rows (see `RowBits::write`).
unsafe impl Send for RowBits<'_> {}
// SAFETY: as for `Send`: shared use only writes the words of disjoint rows.
unsafe impl Sync for RowBits<'_> {}

impl<'a> RowBits<'a> {
    /// The writer of `mask`, the row mask of an output of `height × width` per channel (sized by
    /// [`mask_len`]), borrowed for as long as the writer lives.
    pub(crate) fn new(mask: &'a mut [u32], height: usize, width: usize) -> RowBits<'a> {
        RowBits {
            ptr: mask.as_mut_ptr(),
            len: mask.len(),
            height,
            words_per_row: words_per_row(width),
            mask: std::marker::PhantomData,
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
    fn relu_rows_masks_by_row_and_the_mask_keeps_the_gradient_where_it_was_positive() {
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
        let full = Shape::new(c, h, w);
        let masked = unfused_gradient(dy.view(), full, &mask, Epilogue::Relu);
        for ((a, b, d), &g) in dy.indexed_iter() {
            let want = if before[[a, b, d]] > 0.0 { g } else { 0.0 };
            assert_eq!(masked[[a, b, d]], want);
        }
    }
}
