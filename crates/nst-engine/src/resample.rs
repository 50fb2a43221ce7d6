//! Resampling between the stages of a coarse-to-fine run: the image with a separable Lanczos-3 filter,
//! Adam's moments with a triangle (bilinear) filter, as `[C, H, W]` `f32` planes, without clipping or
//! rounding to 8 bits.
//!
//! Rule (pinned by the tests): each output sample `i` of a line of `n_in` samples resized to `n_out` sits
//! at `(i + ½)·n_in/n_out − ½` in input coordinates; the kernel (Lanczos-3: `sinc(x)·sinc(x/3)` for
//! `|x| < 3`; triangle: `1 − |x|` for `|x| < 1`) is stretched by `n_in/n_out` when shrinking (so that it
//! also low-passes), samples outside the line are the nearest edge sample, and the weights are
//! normalized to sum 1. Rows are resized first, then columns; every sum runs in a fixed order, so the
//! result does not depend on the thread count.

use ndarray::{Array3, ArrayView3, Axis};
use nst_optim::AdamState;

/// `planes` (`[C, H, W]`) resized to `height × width` with Lanczos-3 (see the module docs).
///
/// # Examples
/// ```
/// use ndarray::Array3;
/// let flat = Array3::from_elem((1, 4, 6), 7.5_f32);
/// let big = nst_engine::resample::lanczos3(flat.view(), 8, 12);
/// assert_eq!(big.dim(), (1, 8, 12));
/// assert!(big.iter().all(|&v| (v - 7.5).abs() < 1e-5)); // a constant stays constant
/// ```
pub fn lanczos3(planes: ArrayView3<'_, f32>, height: usize, width: usize) -> Array3<f32> {
    resample(planes, height, width, Filter::Lanczos3)
}

/// `planes` resized with the triangle (bilinear) filter: every output is a convex combination of
/// inputs, so signs and bounds such as `|m| ≤ c·√v` between two planes are kept.
pub fn bilinear(planes: ArrayView3<'_, f32>, height: usize, width: usize) -> Array3<f32> {
    resample(planes, height, width, Filter::Triangle)
}

/// An 8-bit RGB picture resized to `width × height` with Lanczos-3 straight into `f32` (0–1, as
/// `image` keeps float pictures): each sample is converted (`v/255`) as the rows are shrunk, so that
/// no full-size float copy of a large photo is ever made (a 24 MP photo is 72 MB in 8 bits, 288 MB in
/// `f32`). Same taps and arithmetic as [`rgb32f`] on the converted picture, to the bit.
pub fn rgb8_to_rgb32f(img: &image::RgbImage, width: u32, height: u32) -> image::Rgb32FImage {
    let (w, h) = (img.width(), img.height());
    let out = resize_interleaved(img.as_raw(), (w, h), (width, height), |v| {
        f32::from(v) / 255.0
    });
    image::Rgb32FImage::from_raw(width, height, out).expect("the buffer has width × height pixels")
}

/// A float RGB picture resized to `width × height` with Lanczos-3 (the taps of [`lanczos3`]).
pub fn rgb32f(img: &image::Rgb32FImage, width: u32, height: u32) -> image::Rgb32FImage {
    let (w, h) = (img.width(), img.height());
    let out = resize_interleaved(img.as_raw(), (w, h), (width, height), |v| v);
    image::Rgb32FImage::from_raw(width, height, out).expect("the buffer has width × height pixels")
}

/// Interleaved RGB samples (`[h][w][3]`) resized with Lanczos-3, rows first, each sample converted by
/// `to_f32` as it is read.
fn resize_interleaved<T: Copy>(
    raw: &[T],
    (w, h): (u32, u32),
    (ow, oh): (u32, u32),
    to_f32: impl Fn(T) -> f32,
) -> Vec<f32> {
    let (w, h, ow, oh) = (w as usize, h as usize, ow as usize, oh as usize);
    let cols = Taps::new(w, ow, Filter::Lanczos3);
    let rows = Taps::new(h, oh, Filter::Lanczos3);
    let mut mid = vec![0.0_f32; h * ow * 3];
    for y in 0..h {
        let src = &raw[y * w * 3..(y + 1) * w * 3];
        let dst = &mut mid[y * ow * 3..(y + 1) * ow * 3];
        for (x, (first, weights)) in cols.iter().enumerate() {
            for ch in 0..3 {
                dst[x * 3 + ch] = weights
                    .iter()
                    .enumerate()
                    .map(|(k, wk)| wk * to_f32(src[cols.clamp(first + k as isize) * 3 + ch]))
                    .sum();
            }
        }
    }
    let mut out = vec![0.0_f32; oh * ow * 3];
    for (y, (first, weights)) in rows.iter().enumerate() {
        let dst = &mut out[y * ow * 3..(y + 1) * ow * 3];
        for (k, wk) in weights.iter().enumerate() {
            let r = rows.clamp(first + k as isize);
            let src = &mid[r * ow * 3..(r + 1) * ow * 3];
            for (o, s) in dst.iter_mut().zip(src) {
                *o += wk * s;
            }
        }
    }
    out
}

/// The kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Filter {
    Lanczos3,
    Triangle,
}

impl Filter {
    fn support(self) -> f64 {
        match self {
            Filter::Lanczos3 => 3.0,
            Filter::Triangle => 1.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        match self {
            Filter::Lanczos3 => lanczos_kernel(x),
            Filter::Triangle => (1.0 - x.abs()).max(0.0),
        }
    }
}

fn resample(
    planes: ArrayView3<'_, f32>,
    height: usize,
    width: usize,
    filter: Filter,
) -> Array3<f32> {
    let (c, h, w) = planes.dim();
    let rows = Taps::new(h, height, filter);
    let cols = Taps::new(w, width, filter);
    // Horizontal pass: [C, H, W] → [C, H, width].
    let mut mid = Array3::<f32>::zeros((c, h, width));
    for (src, mut dst) in planes.axis_iter(Axis(0)).zip(mid.axis_iter_mut(Axis(0))) {
        for (src_row, mut dst_row) in src.rows().into_iter().zip(dst.rows_mut()) {
            for (o, (first, weights)) in dst_row.iter_mut().zip(cols.iter()) {
                *o = weights
                    .iter()
                    .enumerate()
                    .map(|(k, wk)| wk * src_row[cols.clamp(first + k as isize)])
                    .sum();
            }
        }
    }
    // Vertical pass: [C, H, width] → [C, height, width].
    let mut out = Array3::<f32>::zeros((c, height, width));
    for ch in 0..c {
        for (i, (first, weights)) in rows.iter().enumerate() {
            for (k, wk) in weights.iter().enumerate() {
                let src = mid.index_axis(Axis(0), ch);
                let src = src.index_axis(Axis(0), rows.clamp(first + k as isize));
                let mut dst = out.index_axis_mut(Axis(0), ch);
                let mut dst = dst.index_axis_mut(Axis(0), i);
                dst.zip_mut_with(&src, |o, &s| *o += wk * s);
            }
        }
    }
    out
}

/// Adam's state carried to the next stage: both moments resampled with [`bilinear`], the first divided
/// by the area ratio `r = (H'·W')/(H·W)` and the second by `r²`, the step count kept.
///
/// Why the rescaling: every cost of the objective is normalized per position (content by `1/(H·W)`,
/// style by `1/(H·W)²` with Grams that grow as `H·W`), so the gradient of each pixel scales as `1/r`
/// when the image grows by `r` in area. Moments rescaled the same way make the next stage's first
/// steps as large as if Adam had seen its gradients all along (`m/√v` is unchanged), instead of
/// steps that are `r` times too small. The triangle filter, unlike Lanczos' negative lobes, keeps
/// every second moment positive and never makes `|m|/√v` larger than it was anywhere (a convex
/// combination, and `√` is concave): a ringing second moment near 0 under a first moment that is not
/// would make Adam's step `m/(√v + ε)` explode.
///
/// # Errors
/// [`nst_optim::Error::InvalidState`] when the state's moments do not have `3·from.0·from.1` values.
pub fn adam_state(
    state: AdamState,
    from: (usize, usize),
    to: (usize, usize),
) -> Result<AdamState, nst_optim::Error> {
    let (m, v) = state.moments();
    if m.is_empty() {
        return Ok(state);
    }
    fn view(data: &[f32], from: (usize, usize)) -> Result<ArrayView3<'_, f32>, nst_optim::Error> {
        ArrayView3::from_shape((3, from.0, from.1), data).map_err(|_| {
            nst_optim::Error::InvalidState {
                reason: format!(
                    "the moments have {} values, not 3×{}×{}",
                    data.len(),
                    from.0,
                    from.1
                ),
            }
        })
    }
    let r = (to.0 * to.1) as f32 / (from.0 * from.1) as f32;
    let m2 = bilinear(view(m, from)?, to.0, to.1).mapv(|x| x / r);
    let v2 = bilinear(view(v, from)?, to.0, to.1).mapv(|x| x / (r * r));
    state.with_moments(
        m2.into_raw_vec_and_offset().0,
        v2.into_raw_vec_and_offset().0,
    )
}

/// For each output sample of a line: the first input index (may be outside the line) and the weights.
struct Taps {
    n_in: usize,
    taps: Vec<(isize, Vec<f32>)>,
}

impl Taps {
    fn new(n_in: usize, n_out: usize, filter: Filter) -> Taps {
        let scale = n_in as f64 / n_out as f64;
        let stretch = scale.max(1.0);
        let support = filter.support() * stretch;
        let taps = (0..n_out)
            .map(|i| {
                let center = (i as f64 + 0.5) * scale - 0.5;
                let first = (center - support).ceil() as isize;
                let last = (center + support).floor() as isize;
                let raw: Vec<f64> = (first..=last)
                    .map(|j| filter.weight((j as f64 - center) / stretch))
                    .collect();
                let sum: f64 = raw.iter().sum();
                (first, raw.iter().map(|w| (w / sum) as f32).collect())
            })
            .collect();
        Taps { n_in, taps }
    }

    fn iter(&self) -> impl Iterator<Item = (isize, &[f32])> {
        self.taps.iter().map(|(f, w)| (*f, w.as_slice()))
    }

    fn clamp(&self, j: isize) -> usize {
        j.clamp(0, self.n_in as isize - 1) as usize
    }
}

fn lanczos_kernel(x: f64) -> f64 {
    // Exactly 0 at the other integers (where `sin(π·k)` is only about 1e-16), so that a resize to the
    // same size, or by a whole factor at aligned samples, copies values exactly.
    if x != 0.0 && x.fract() == 0.0 {
        return 0.0;
    }
    let sinc = |v: f64| {
        if v.abs() < 1e-12 {
            1.0
        } else {
            let p = std::f64::consts::PI * v;
            p.sin() / p
        }
    };
    if x.abs() < 3.0 {
        sinc(x) * sinc(x / 3.0)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests;
