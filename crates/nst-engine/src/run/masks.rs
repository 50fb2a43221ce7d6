//! The masks of spatial control (`--style-mask`, `--style-image-mask`, `--content-mask`) and colour
//! matching (`--preserve-colors match`): read with the images, brought to each stage's sizes.

use std::path::Path;

use ndarray::Array2;
use nst_costs::color::{ColorMap, ColorStats};

use crate::image_io::{self, Picture, Size};
use crate::spec::{ColorMatchKind, RunSpec};
use crate::{Error, Result};

/// The largest difference of aspect ratio (relative) between a mask and the image it belongs to.
const ASPECT_TOLERANCE: f64 = 0.02;

/// The decoded masks, each kept at the size of the image it belongs to.
#[derive(Default)]
pub(super) struct Masks {
    /// One per style image, at the working size.
    pub(super) styles: Vec<Picture>,
    /// One per style image, at that style image's decoded size.
    pub(super) regions: Vec<Picture>,
    /// At the working size.
    pub(super) content: Option<Picture>,
}

impl Masks {
    /// Reads the masks `spec` names: `content` is the content's original size and `size` the working
    /// size; `styles` the style images as decoded (`original` their sizes in the files).
    pub(super) fn decode(
        spec: &RunSpec,
        content: (u32, u32),
        size: Size,
        styles: &[(Picture, (u32, u32))],
    ) -> Result<Masks> {
        let styles_masks = spec
            .style_masks
            .iter()
            .map(|p| load("--style-mask", p, content, size))
            .collect::<Result<_>>()?;
        let regions: Vec<Picture> = spec
            .style_image_masks
            .iter()
            .zip(styles)
            .map(|(p, (s, original))| {
                load(
                    "--style-image-mask",
                    p,
                    *original,
                    Size {
                        width: s.width(),
                        height: s.height(),
                    },
                )
            })
            .collect::<Result<_>>()?;
        let content = spec
            .content_mask
            .as_deref()
            .map(|p| load("--content-mask", p, content, size))
            .transpose()?;
        for (p, region) in spec.style_image_masks.iter().zip(&regions) {
            if region.pixels.pixels().all(|px| px.0 == [0.0; 3]) {
                return Err(Error::Spec(format!(
                    "--style-image-mask {} is black: it selects none of its style image (white marks the region used)",
                    p.display()
                )));
            }
        }
        Ok(Masks {
            styles: styles_masks,
            regions,
            content,
        })
    }
}

/// A mask image read at `size`, after checking that its aspect ratio is that of the image it belongs
/// to (`of`, that image's size in its file).
fn load(flag: &'static str, path: &Path, of: (u32, u32), size: Size) -> Result<Picture> {
    let (w, h) = image_io::dimensions(path).map_err(|source| Error::Image { flag, source })?;
    let aspect = |(w, h): (u32, u32)| f64::from(w) / f64::from(h);
    let (mask, image) = (aspect((w, h)), aspect(of));
    if ((mask - image) / image).abs() > ASPECT_TOLERANCE {
        return Err(Error::Spec(format!(
            "{flag} {} is {w}x{h} but its image is {}x{}: a mask must have its image's proportions (it is resized to it)",
            path.display(),
            of.0,
            of.1
        )));
    }
    image_io::load_at(path, size).map_err(|source| Error::Image { flag, source })
}

/// `mask` at `size` as `[H, W]` values in `[0, 1]`: its luminance (Rec. 601), clamped after the resize.
pub(super) fn mask_at(mask: &Picture, size: Size) -> Array2<f32> {
    let p = mask.resized(size.width, size.height);
    Array2::from_shape_fn((size.height as usize, size.width as usize), |(y, x)| {
        let [r, g, b] = p.pixels.get_pixel(x as u32, y as u32).0;
        (0.299 * r + 0.587 * g + 0.114 * b).clamp(0.0, 1.0)
    })
}

/// Maps each style image's colours so that their mean and covariance equal the content's
/// (Gatys et al. 2016, "Preserving Color in Neural Artistic Style Transfer", §2.1), and returns the
/// maps (the first one also maps a start image taken from the first style).
pub(super) fn match_colors(
    styles: &mut [Picture],
    content: (&Picture, &Path),
    method: ColorMatchKind,
    paths: &[std::path::PathBuf],
) -> Result<Vec<ColorMap>> {
    let (content, content_path) = content;
    let stats = |p: &Picture, what: &Path| {
        let pixels: Vec<[f32; 3]> = p.pixels.pixels().map(|px| px.0).collect();
        ColorStats::from_pixels(&pixels).map_err(|e| {
            Error::Spec(format!(
                "--preserve-colors match: the colours of {} cannot be measured: {e}",
                what.display()
            ))
        })
    };
    let to = stats(content, content_path)?;
    // A single-colour content has no covariance to match: every style would be whitened.
    if (0..3).all(|c| to.cov[c][c] < FLAT_VARIANCE) {
        return Err(Error::Spec(format!(
            "--preserve-colors match: --content {} is a single colour, so there are no colours to match; use --preserve-colors luminance or no colour preservation",
            content_path.display()
        )));
    }
    let mut maps = Vec::with_capacity(styles.len());
    for (style, path) in styles.iter_mut().zip(paths) {
        let from = stats(style, path)?;
        let map = ColorMap::new(&from, &to, method.method()).map_err(|e| {
            Error::Spec(format!(
                "--preserve-colors match --color-match {method}: no colour map from {} to the content: {e}",
                path.display()
            ))
        })?;
        apply(&map, style);
        maps.push(map);
    }
    Ok(maps)
}

/// `p`'s pixels through `map`.
pub(super) fn apply(map: &ColorMap, p: &mut Picture) {
    for px in p.pixels.pixels_mut() {
        px.0 = map.apply(px.0);
    }
}

/// A channel variance (0–1 scale) below which an image counts as a single colour: a 1/255 step on
/// one pixel in a million.
const FLAT_VARIANCE: f64 = 1e-12;

#[cfg(test)]
mod tests;
