//! From the optimized tensor to the picture that is written: the mean added back, clipped and rounded
//! to 8 bits; with `preserve_colors`, the result's luminance with the content's chrominance (YIQ).

use image::RgbImage;
use ndarray::ArrayView3;

use crate::image_io::{Picture, tensor_to_rgb8};

/// How an image is turned into 8-bit RGB.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Render<'a> {
    pub(crate) mean: [f32; 3],
    /// The content at the image's size, when its colours are kept.
    pub(crate) colors_of: Option<&'a Picture>,
}

impl Render<'_> {
    /// `x` (`[3, H, W]` = `shape`, mean subtracted) as 8-bit RGB.
    pub(crate) fn rgb8(&self, x: &[f32], shape: (usize, usize, usize)) -> RgbImage {
        let view = ArrayView3::from_shape(shape, x).expect("x has the stage's shape");
        match self.colors_of {
            None => tensor_to_rgb8(view, self.mean),
            Some(c) => with_chrominance_of(view, self.mean, c),
        }
    }

    /// `x` as 16-bit RGB samples (row-major, interleaved): the float values clipped to 0–255 and
    /// rounded once to 1/65535, never through 8 bits.
    pub(crate) fn rgb16(&self, x: &[f32], shape: (usize, usize, usize)) -> Vec<u16> {
        let (_, h, w) = shape;
        let view = ArrayView3::from_shape(shape, x).expect("x has the stage's shape");
        let colors = self.colors_of.map(|c| c.resized(w as u32, h as u32));
        let mut out = Vec::with_capacity(3 * h * w);
        for yy in 0..h {
            for xx in 0..w {
                let px = |ch: usize| view[[ch, yy, xx]] + self.mean[ch];
                let rgb = match &colors {
                    None => [px(0), px(1), px(2)],
                    Some(c) => recolor(
                        [px(0), px(1), px(2)],
                        c.pixels.get_pixel(xx as u32, yy as u32).0,
                    ),
                };
                out.extend(rgb.map(|v| (v.clamp(0.0, 255.0) / 255.0 * 65535.0).round() as u16));
            }
        }
        out
    }
}

/// The luminance (Y of YIQ) of `rgb` (0–255) with the I and Q of `content` (0–1).
fn recolor(rgb: [f32; 3], content: [f32; 3]) -> [f32; 3] {
    let y = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2];
    let [r, g, b] = content.map(|v| v * 255.0);
    let i = 0.596 * r - 0.274 * g - 0.322 * b;
    let q = 0.211 * r - 0.523 * g + 0.312 * b;
    [
        y + 0.956 * i + 0.621 * q,
        y - 0.272 * i - 0.647 * q,
        y - 1.106 * i + 1.703 * q,
    ]
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

/// The luminance (Y of YIQ) of `view` with the I and Q of `content` (resized to the view's size).
fn with_chrominance_of(view: ArrayView3<'_, f32>, mean: [f32; 3], content: &Picture) -> RgbImage {
    let (_, h, w) = view.dim();
    let c = content.resized(w as u32, h as u32);
    RgbImage::from_fn(w as u32, h as u32, |xx, yy| {
        let px = |ch: usize| view[[ch, yy as usize, xx as usize]] + mean[ch];
        let out = recolor([px(0), px(1), px(2)], c.pixels.get_pixel(xx, yy).0);
        image::Rgb(out.map(|v| v.clamp(0.0, 255.0).round() as u8))
    })
}
