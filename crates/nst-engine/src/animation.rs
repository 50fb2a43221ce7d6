//! The animation of a run: its logged images as an endlessly looping GIF, at most
//! [`Animation::MAX_FRAMES`] frames however long the run.

use std::io::BufWriter;
use std::path::Path;

use image::codecs::gif::{GifEncoder, Repeat};
use image::{Delay, Frame, RgbImage, RgbaImage};

use crate::image_io::{ImageError, write_atomically};

/// Frames of an animation (`nst stylize --animate`, the studio's GIF of a run), kept in memory (at most [`Animation::MAX_FRAMES`]; beyond that every other
/// frame is dropped, so the animation still spans the whole run).
#[derive(Debug, Default)]
pub struct Animation {
    frames: Vec<RgbaImage>,
    stride: usize,
    offered: usize,
}

impl Animation {
    /// The most frames kept.
    pub const MAX_FRAMES: usize = 120;

    /// Offers a frame.
    pub fn push(&mut self, img: &RgbImage) {
        self.stride = self.stride.max(1);
        if self.offered.is_multiple_of(self.stride) {
            self.frames
                .push(image::DynamicImage::ImageRgb8(img.clone()).to_rgba8());
            if self.frames.len() > Self::MAX_FRAMES {
                let kept = std::mem::take(&mut self.frames)
                    .into_iter()
                    .step_by(2)
                    .collect();
                self.frames = kept;
                self.stride *= 2;
            }
        }
        self.offered += 1;
    }

    /// Number of frames kept.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether no frame was kept.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Writes an endlessly looping GIF (200 ms a frame, 1.5 s on the last), atomically.
    ///
    /// # Errors
    /// [`ImageError::Write`].
    pub fn save(&self, path: &Path) -> Result<(), ImageError> {
        let n = self.frames.len();
        write_atomically(path, |f| {
            let mut enc = GifEncoder::new_with_speed(BufWriter::new(f), 10);
            enc.set_repeat(Repeat::Infinite)
                .map_err(|e| e.to_string())?;
            let frames = self.frames.iter().enumerate().map(|(i, img)| {
                let ms = if i + 1 == n { 1500 } else { 200 };
                Frame::from_parts(img.clone(), 0, 0, Delay::from_numer_denom_ms(ms, 1))
            });
            enc.encode_frames(frames).map_err(|e| e.to_string())
        })
    }
}
