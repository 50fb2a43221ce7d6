//! From the optimized tensor to the picture that is written: the mean added back, clipped and rounded
//! to 8 (or 16) bits; with `preserve_colors` or `original_colors`, the result's luminance with the
//! content's chrominance ([`crate::color`]).

use image::RgbImage;
use ndarray::ArrayView3;

use crate::color::{ColorSpace, with_chrominance};
use crate::image_io::{Picture, tensor_to_rgb8};

/// How an image is turned into 8-bit RGB.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Render<'a> {
    pub(crate) mean: [f32; 3],
    /// The content at the image's size and the space its chrominance is taken in, when its colours
    /// are kept.
    pub(crate) colors_of: Option<(ColorSpace, &'a Picture)>,
}

impl Render<'_> {
    /// `x` (`[3, H, W]` = `shape`, mean subtracted) as 8-bit RGB.
    pub(crate) fn rgb8(&self, x: &[f32], shape: (usize, usize, usize)) -> RgbImage {
        let view = ArrayView3::from_shape(shape, x).expect("x has the stage's shape");
        match self.colors_of {
            None => tensor_to_rgb8(view, self.mean),
            Some((space, c)) => with_chrominance_of(view, self.mean, space, c),
        }
    }

    /// `x` as 16-bit RGB samples (row-major, interleaved): the float values clipped to 0–255 and
    /// rounded once to 1/65535, never through 8 bits.
    pub(crate) fn rgb16(&self, x: &[f32], shape: (usize, usize, usize)) -> Vec<u16> {
        let (_, h, w) = shape;
        let view = ArrayView3::from_shape(shape, x).expect("x has the stage's shape");
        let colors = self
            .colors_of
            .map(|(space, c)| (space, c.resized(w as u32, h as u32)));
        let mut out = Vec::with_capacity(3 * h * w);
        for yy in 0..h {
            for xx in 0..w {
                let px = |ch: usize| view[[ch, yy, xx]] + self.mean[ch];
                let rgb = match &colors {
                    None => [px(0), px(1), px(2)],
                    Some((space, c)) => recolor(*space, [px(0), px(1), px(2)], c, xx, yy),
                };
                out.extend(rgb.map(|v| (v.clamp(0.0, 255.0) / 255.0 * 65535.0).round() as u16));
            }
        }
        out
    }
}

/// The luminance of `rgb` (0–255) with the chrominance of `content`'s pixel `(x, y)`, in `space`.
fn recolor(space: ColorSpace, rgb: [f32; 3], content: &Picture, x: usize, y: usize) -> [f32; 3] {
    let c = content
        .pixels
        .get_pixel(x as u32, y as u32)
        .0
        .map(|v| v * 255.0);
    with_chrominance(space, rgb, c)
}

/// Gray picture (Y of YIQ in all three channels), for `preserve_colors`.
pub(crate) fn luminance(p: &Picture) -> Picture {
    let mut q = p.clone();
    for px in q.pixels.pixels_mut() {
        let [r, g, b] = px.0;
        let y = 0.299 * r + 0.587 * g + 0.114 * b;
        px.0 = [y, y, y];
    }
    q
}

/// The luminance of `view` with the chrominance of `content` (resized to the view's size) in `space`.
fn with_chrominance_of(
    view: ArrayView3<'_, f32>,
    mean: [f32; 3],
    space: ColorSpace,
    content: &Picture,
) -> RgbImage {
    let (_, h, w) = view.dim();
    let c = content.resized(w as u32, h as u32);
    RgbImage::from_fn(w as u32, h as u32, |xx, yy| {
        let px = |ch: usize| view[[ch, yy as usize, xx as usize]] + mean[ch];
        let out = recolor(space, [px(0), px(1), px(2)], &c, xx as usize, yy as usize);
        image::Rgb(out.map(|v| v.clamp(0.0, 255.0).round() as u8))
    })
}
