//! Videos given as frames: each finished frame copied into a numbered sequence for ffmpeg
//! (`<out_dir>/<video>/0001.png`, …), and the flicker measure: the mean absolute difference between
//! consecutive results, against the same measure on the input frames at the results' size.

use std::path::Path;

use anyhow::{Context as _, Result};
use image::RgbImage;

use super::plan::{Plan, Video};
use super::state::Status;

/// Copies finished job `k`'s result to its place in the sequence of every video it is a frame of
/// (atomically); with `only_missing`, only where that place is empty (a job found done, whose worker
/// may have stopped before copying it).
///
/// # Errors
/// When a sequence folder or file cannot be written.
pub fn copy_to_sequence(plan: &Plan, k: usize, only_missing: bool) -> Result<()> {
    let job = &plan.jobs[k];
    for video in &plan.videos {
        for (i, _) in video.jobs.iter().enumerate().filter(|(_, j)| **j == k) {
            std::fs::create_dir_all(&video.sequence_dir)
                .with_context(|| format!("creating {}", video.sequence_dir.display()))?;
            let dest = video.sequence_dir.join(format!("{:04}.png", i + 1));
            if only_missing && dest.is_file() {
                continue;
            }
            let mut src = std::fs::File::open(&job.spec.output)
                .with_context(|| format!("reading {}", job.spec.output.display()))?;
            nst_engine::image_io::write_atomically(&dest, |f| {
                std::io::copy(&mut src, f)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })?;
        }
    }
    Ok(())
}

/// The flicker of a video: over the pairs of consecutive frames that are both done, the mean absolute
/// difference of the results and of the inputs (0–255 per channel value).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Flicker {
    /// Pairs measured.
    pub pairs: usize,
    /// Mean |result(t) − result(t−1)|.
    pub outputs: f64,
    /// Mean |input(t) − input(t−1)|, the inputs resized to the results' size.
    pub inputs: f64,
}

impl Flicker {
    /// How much more the results change from frame to frame than the inputs do (1: as much).
    pub fn ratio(&self) -> f64 {
        self.outputs / self.inputs
    }
}

/// The flicker of `video`, given every job's status; `None` with fewer than two consecutive frames
/// done.
///
/// # Errors
/// When a result or an input cannot be read.
pub fn flicker(plan: &Plan, video: &Video, statuses: &[Status]) -> Result<Option<Flicker>> {
    let (mut pairs, mut outputs, mut inputs) = (0_usize, 0.0, 0.0);
    let mut previous: Option<(RgbImage, RgbImage)> = None;
    for &k in &video.jobs {
        if statuses[k] != Status::Done {
            previous = None;
            continue;
        }
        let job = &plan.jobs[k];
        let out = image::open(&job.spec.output)
            .with_context(|| format!("reading {}", job.spec.output.display()))?
            .to_rgb8();
        let input = input_at(&job.spec.content, out.width(), out.height())?;
        if let Some((po, pi)) = &previous
            && po.dimensions() == out.dimensions()
        {
            outputs += mean_abs_diff(po, &out);
            inputs += mean_abs_diff(pi, &input);
            pairs += 1;
        }
        previous = Some((out, input));
    }
    Ok((pairs > 0).then(|| Flicker {
        pairs,
        outputs: outputs / pairs as f64,
        inputs: inputs / pairs as f64,
    }))
}

/// An input frame resized to `width × height` as the engine resizes it (Lanczos-3), 8-bit.
fn input_at(path: &Path, width: u32, height: u32) -> Result<RgbImage> {
    let size = nst_engine::Size { width, height };
    let p = nst_engine::image_io::load_at(path, size)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(RgbImage::from_fn(width, height, |x, y| {
        let v = p.pixels.get_pixel(x, y).0;
        image::Rgb(v.map(|c| (c * 255.0).round().clamp(0.0, 255.0) as u8))
    }))
}

/// The mean absolute difference of two images of the same size, per channel value.
///
/// # Panics
/// If the sizes differ.
#[track_caller]
pub fn mean_abs_diff(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions(), "images of the same size");
    let sum: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(&x, &y)| u64::from(x.abs_diff(y)))
        .sum();
    sum as f64 / a.as_raw().len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_absolute_difference_is_per_channel_value() {
        let a = RgbImage::from_pixel(2, 2, image::Rgb([10, 20, 30]));
        let b = RgbImage::from_pixel(2, 2, image::Rgb([13, 20, 24]));
        assert_eq!(mean_abs_diff(&a, &b), 3.0);
        assert_eq!(mean_abs_diff(&a, &a), 0.0);
        let f = Flicker {
            pairs: 2,
            outputs: 6.0,
            inputs: 4.0,
        };
        assert_eq!(f.ratio(), 1.5);
    }
}
