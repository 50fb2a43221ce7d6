//! Image input and output: decoding with EXIF orientation, alpha and bit-depth handling, the working-size
//! rules, conversion to and from the network's `[3, H, W]` mean-subtracted tensors, and atomic writes.
//!
//! Decoding rules:
//! - PNG, JPEG (including CMYK) and GIF (first frame); the format is sniffed from the bytes, not the name.
//! - EXIF orientation is applied, so a phone photo comes out the way it is displayed.
//! - Grayscale becomes RGB; 16-bit channels keep their precision until the tensor (f32).
//! - Alpha is composited on **white** (`c·a + 255·(1 − a)`): a transparent logo on white looks as it does
//!   in a browser.
//! - Empty, unreadable, not-an-image, zero-size and huge (more than [`MAX_PIXELS`] pixels or a side over
//!   [`MAX_SIDE`]) files are errors that name the file.

use std::fs::{self, File};
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};

use image::codecs::gif::GifEncoder;
use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Rgb32FImage, RgbImage};
use ndarray::{Array3, ArrayView3};

/// The largest side we decode.
pub const MAX_SIDE: u32 = 16_384;
/// The most pixels we decode (64 MP).
pub const MAX_PIXELS: u64 = 64 * 1024 * 1024;

/// Errors of image input and output.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// The file cannot be opened or read.
    #[error("cannot read image {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is empty.
    #[error("image {} is an empty file", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The bytes are not a supported image.
    #[error("{} is not a PNG, JPEG or GIF image", path.display())]
    NotAnImage {
        /// The file.
        path: PathBuf,
    },
    /// The image cannot be decoded.
    #[error("cannot decode image {}", path.display())]
    Decode {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: image::ImageError,
    },
    /// A JPEG that ends before its end-of-image marker: decoders fill the rest with gray.
    #[error(
        "image {} is truncated (the JPEG data ends before its end-of-image marker): was the download or copy cut short?",
        path.display()
    )]
    Truncated {
        /// The file.
        path: PathBuf,
    },
    /// Zero width or height.
    #[error("image {} has zero size ({width}x{height})", path.display())]
    ZeroSize {
        /// The file.
        path: PathBuf,
        /// Width.
        width: u32,
        /// Height.
        height: u32,
    },
    /// Too large to decode.
    #[error(
        "image {} is {width}x{height}, larger than the {MAX_SIDE}-pixel side / {} MP limit: shrink it first",
        path.display(), MAX_PIXELS / (1024 * 1024)
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Width.
        width: u32,
        /// Height.
        height: u32,
    },
    /// The output extension names no format we write.
    #[error("cannot write {}: unknown image format (use .png, .jpg, .jpeg or .gif)", path.display())]
    UnknownOutputFormat {
        /// The file.
        path: PathBuf,
    },
    /// Writing failed.
    #[error("cannot write {}: {reason}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// Result of this module.
pub type Result<T, E = ImageError> = std::result::Result<T, E>;

/// A decoded image: RGB in 0–255, f32, row-major `[H, W, 3]` inside an [`Rgb32FImage`] scaled by 255.
#[derive(Debug, Clone)]
pub struct Picture {
    /// Pixels, 0–1 per channel (as `image` keeps float images).
    pub pixels: Rgb32FImage,
}

impl Picture {
    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.pixels.width()
    }
    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.pixels.height()
    }

    /// Resized to exactly `width × height` (Lanczos-3, [`crate::resample::rgb32f`]; a copy when the
    /// size is already right).
    pub fn resized(&self, width: u32, height: u32) -> Picture {
        if (width, height) == (self.width(), self.height()) {
            return self.clone();
        }
        Picture {
            pixels: crate::resample::rgb32f(&self.pixels, width, height),
        }
    }

    /// `[3, H, W]`, RGB 0–255 minus `mean`.
    pub fn to_tensor(&self, mean: [f32; 3]) -> Array3<f32> {
        let (w, h) = (self.width() as usize, self.height() as usize);
        let mut t = Array3::<f32>::zeros((3, h, w));
        for (x, y, p) in self.pixels.enumerate_pixels() {
            for c in 0..3 {
                t[[c, y as usize, x as usize]] = p.0[c] * 255.0 - mean[c];
            }
        }
        t
    }
}

/// Reads an image, honouring EXIF orientation, compositing alpha on white.
///
/// # Errors
/// See [`ImageError`]; every variant names the file.
pub fn load(path: &Path) -> Result<Picture> {
    Ok(Picture {
        pixels: flatten_on_white(&decode(path)?),
    })
}

/// Decodes `path` with its EXIF orientation applied.
fn decode(path: &Path) -> Result<DynamicImage> {
    let format = sniff(path)?;
    // The JPEG decoder quietly fills a cut-off file with gray; a cut-off download must not pass as an image.
    if format == ImageFormat::Jpeg && !jpeg_is_complete(&fs::read(path).map_err(read_err(path))?) {
        return Err(ImageError::Truncated {
            path: path.to_owned(),
        });
    }
    let (decoder, _) = open_decoder(path, format)?;
    let decode_err = |source| ImageError::Decode {
        path: path.to_owned(),
        source,
    };
    let mut decoder = decoder;
    let orientation = decoder.orientation().map_err(decode_err)?;
    let mut img = DynamicImage::from_decoder(decoder).map_err(decode_err)?;
    img.apply_orientation(orientation);
    Ok(img)
}

/// Reads an image (as [`load`]) and resizes it to `size` (Lanczos-3): an 8-bit RGB image (most
/// photos) is resized straight from its 8-bit pixels, so that a large photo never exists as a
/// full-size float picture.
///
/// # Errors
/// As [`load`].
pub fn load_at(path: &Path, size: Size) -> Result<Picture> {
    let img = decode(path)?;
    if let DynamicImage::ImageRgb8(rgb) = &img {
        return Ok(Picture {
            pixels: crate::resample::rgb8_to_rgb32f(rgb, size.width, size.height),
        });
    }
    let full = Picture {
        pixels: flatten_on_white(&img),
    };
    drop(img);
    Ok(full.resized(size.width, size.height))
}

/// The size of an image as [`load`] would return it (EXIF orientation applied), read from its header
/// alone: the working size can be checked before hundreds of megabytes are decoded.
///
/// # Errors
/// As [`load`], except that a truncated JPEG is found only by [`load`].
pub fn dimensions(path: &Path) -> Result<(u32, u32)> {
    let format = sniff(path)?;
    let (mut decoder, (width, height)) = open_decoder(path, format)?;
    let orientation = decoder.orientation().map_err(|source| ImageError::Decode {
        path: path.to_owned(),
        source,
    })?;
    use image::metadata::Orientation as O;
    Ok(match orientation {
        O::Rotate90 | O::Rotate270 | O::Rotate90FlipH | O::Rotate270FlipH => (height, width),
        _ => (width, height),
    })
}

fn read_err(path: &Path) -> impl Fn(std::io::Error) -> ImageError + '_ {
    move |source| ImageError::Read {
        path: path.to_owned(),
        source,
    }
}

/// The format of `path` from its first bytes, after the checks that need no decoder (exists, is a
/// file, is not empty).
fn sniff(path: &Path) -> Result<ImageFormat> {
    let meta = fs::metadata(path).map_err(read_err(path))?;
    if meta.is_dir() {
        return Err(ImageError::Read {
            path: path.to_owned(),
            source: std::io::Error::other("it is a folder"),
        });
    }
    if meta.len() == 0 {
        return Err(ImageError::Empty {
            path: path.to_owned(),
        });
    }
    let mut head = [0_u8; 32];
    let n = {
        use std::io::Read as _;
        let mut f = File::open(path).map_err(read_err(path))?;
        let mut n = 0;
        while n < head.len() {
            match f.read(&mut head[n..]).map_err(read_err(path))? {
                0 => break,
                k => n += k,
            }
        }
        n
    };
    // Sniff the format from the bytes: a file's name says nothing about what it holds.
    match image::guess_format(&head[..n]) {
        Ok(f @ (ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Gif)) => Ok(f),
        _ => Err(ImageError::NotAnImage {
            path: path.to_owned(),
        }),
    }
}

/// A decoder for `path` whose stored size passed the limits, and that size.
fn open_decoder(path: &Path, format: ImageFormat) -> Result<(impl ImageDecoder, (u32, u32))> {
    let mut reader = ImageReader::open(path).map_err(read_err(path))?;
    reader.set_format(format);
    let decoder = reader.into_decoder().map_err(|source| ImageError::Decode {
        path: path.to_owned(),
        source,
    })?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(ImageError::ZeroSize {
            path: path.to_owned(),
            width,
            height,
        });
    }
    if width > MAX_SIDE || height > MAX_SIDE || u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(ImageError::TooLarge {
            path: path.to_owned(),
            width,
            height,
        });
    }
    Ok((decoder, (width, height)))
}

/// Whether the JPEG `bytes` reach their end-of-image marker (`FF D9`): walks the marker segments by
/// their lengths and the entropy-coded data after each start-of-scan (where `FF` is followed by `00`, a
/// restart marker or fill), so that an `FF D9` inside an EXIF thumbnail or appended data does not count
/// and data appended after the marker (e.g. a motion photo's video) is allowed.
pub(crate) fn jpeg_is_complete(bytes: &[u8]) -> bool {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return false;
    }
    let mut i = 2;
    loop {
        // Skip anything up to the next marker (some writers leave stray bytes between segments).
        while i < bytes.len() && bytes[i] != 0xFF {
            i += 1;
        }
        while i < bytes.len() && bytes[i] == 0xFF {
            i += 1;
        }
        let Some(&marker) = bytes.get(i) else {
            return false;
        };
        i += 1;
        match marker {
            0xD9 => return true,
            // Standalone markers: restart markers, TEM, and a stray SOI.
            0x01 | 0xD0..=0xD8 => continue,
            _ => {
                let Some(len) = bytes.get(i..i + 2) else {
                    return false;
                };
                i += usize::from(u16::from_be_bytes([len[0], len[1]]));
                if marker == 0xDA {
                    // Entropy-coded data up to the next marker that is not stuffing or a restart.
                    loop {
                        match bytes.get(i..i + 2) {
                            None => return false,
                            Some([0xFF, 0x00 | 0xD0..=0xD7]) => i += 2,
                            Some([0xFF, 0xFF]) => i += 1,
                            Some([0xFF, _]) => break,
                            Some(_) => i += 1,
                        }
                    }
                }
            }
        }
    }
}

/// RGB 0–1 with alpha composited on white.
fn flatten_on_white(img: &DynamicImage) -> Rgb32FImage {
    if !img.color().has_alpha() {
        // No RGBA f32 detour: for a large photo it would be the peak of the whole run.
        return img.to_rgb32f();
    }
    let rgba = img.to_rgba32f();
    let mut out = Rgb32FImage::new(rgba.width(), rgba.height());
    for (o, p) in out.pixels_mut().zip(rgba.pixels()) {
        let a = p.0[3].clamp(0.0, 1.0);
        for c in 0..3 {
            o.0[c] = p.0[c] * a + (1.0 - a);
        }
    }
    out
}

/// A working size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Size {
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

impl std::str::FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Size, String> {
        let (w, h) = s
            .split_once(['x', 'X'])
            .ok_or_else(|| format!("`{s}` is not WIDTHxHEIGHT (e.g. 400x300)"))?;
        let parse = |v: &str| {
            v.trim()
                .parse::<u32>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("`{s}` is not WIDTHxHEIGHT with positive integers"))
        };
        Ok(Size {
            width: parse(w)?,
            height: parse(h)?,
        })
    }
}

/// How the working size is chosen from the content image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeRule {
    /// Long side at most this (never enlarged unless `upscale`).
    MaxSide {
        /// The long side.
        max: u32,
        /// Enlarge smaller images to `max`.
        upscale: bool,
    },
    /// Exactly this (enlarging needs `upscale`).
    Exact {
        /// The size.
        size: Size,
        /// Allow enlarging.
        upscale: bool,
    },
}

/// The working size for a content image of `width × height`, and a note when the rule could not be
/// followed literally (e.g. the image is smaller than `--max-size`).
///
/// # Errors
/// A message when an exact size would enlarge the image without `upscale`.
pub fn working_size(
    width: u32,
    height: u32,
    rule: SizeRule,
) -> Result<(Size, Option<String>), String> {
    match rule {
        SizeRule::MaxSide { max, upscale } => {
            let long = width.max(height);
            if long <= max && !upscale {
                let note = (long < max).then(|| {
                    format!(
                        "content is {width}x{height}, smaller than --max-size {max}: kept at its size (--upscale enlarges it)"
                    )
                });
                return Ok((Size { width, height }, note));
            }
            Ok((scale_long_side(width, height, max), None))
        }
        SizeRule::Exact { size, upscale } => {
            if (size.width > width || size.height > height) && !upscale {
                return Err(format!(
                    "--size {size} would enlarge the {width}x{height} content image: pass --upscale to allow it"
                ));
            }
            Ok((size, None))
        }
    }
}

/// `width × height` scaled so that its long side is `long`, aspect kept (each side at least 1).
pub fn scale_long_side(width: u32, height: u32, long: u32) -> Size {
    let s = f64::from(long) / f64::from(width.max(height));
    let side = |v: u32| ((f64::from(v) * s).round() as u32).max(1);
    Size {
        width: side(width),
        height: side(height),
    }
}

/// Converts a `[3, H, W]` mean-subtracted tensor back to 8-bit RGB: add the mean, clip to 0–255, round.
///
/// # Panics
/// If the tensor does not have 3 channels.
#[track_caller]
pub fn tensor_to_rgb8(t: ArrayView3<'_, f32>, mean: [f32; 3]) -> RgbImage {
    let (c, h, w) = t.dim();
    assert_eq!(c, 3, "an RGB tensor has 3 channels");
    RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let px = |ch: usize| {
            (t[[ch, y as usize, x as usize]] + mean[ch])
                .clamp(0.0, 255.0)
                .round() as u8
        };
        image::Rgb([px(0), px(1), px(2)])
    })
}

/// The format of an output path, from its extension.
///
/// # Errors
/// [`ImageError::UnknownOutputFormat`].
pub fn output_format(path: &Path) -> Result<ImageFormat> {
    match ImageFormat::from_path(path) {
        Ok(f @ (ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Gif)) => Ok(f),
        _ => Err(ImageError::UnknownOutputFormat {
            path: path.to_owned(),
        }),
    }
}

/// Writes `img` to `path` atomically (a temporary file in the same folder, then a rename); the format
/// comes from the extension; JPEG at quality 95.
///
/// # Errors
/// [`ImageError::UnknownOutputFormat`] or [`ImageError::Write`].
pub fn save_rgb8(img: &RgbImage, path: &Path) -> Result<()> {
    let format = output_format(path)?;
    write_atomically(path, |file| {
        let mut w = BufWriter::new(file);
        match format {
            ImageFormat::Jpeg => JpegEncoder::new_with_quality(&mut w, 95)
                .encode_image(img)
                .map_err(|e| e.to_string())?,
            ImageFormat::Gif => {
                let frame = image::Frame::new(DynamicImage::ImageRgb8(img.clone()).to_rgba8());
                GifEncoder::new_with_speed(&mut w, 10)
                    .encode_frame(frame)
                    .map_err(|e| e.to_string())?;
            }
            _ => encode_png(
                &mut w,
                (img.width(), img.height()),
                PngPixels::Eight(img.as_raw()),
                &[],
            )?,
        }
        w.flush().map_err(|e| e.to_string())?;
        Ok(())
    })
}

/// The samples of a PNG: 8 or 16 bits per channel, RGB, row-major.
#[derive(Debug, Clone, Copy)]
pub enum PngPixels<'a> {
    /// 8-bit samples.
    Eight(&'a [u8]),
    /// 16-bit samples.
    Sixteen(&'a [u16]),
}

/// Writes an RGB PNG to `path` atomically, marked as sRGB (perceptual intent, so viewers show the
/// colours the numbers mean without guessing a profile) and with `text` as UTF-8 text chunks
/// (`iTXt`, keyword → text).
///
/// # Errors
/// [`ImageError::Write`] naming `path`.
pub fn save_png(
    path: &Path,
    size: (u32, u32),
    pixels: PngPixels<'_>,
    text: &[(String, String)],
) -> Result<()> {
    write_atomically(path, |file| {
        let mut w = BufWriter::new(file);
        encode_png(&mut w, size, pixels, text)?;
        w.flush().map_err(|e| e.to_string())
    })
}

fn encode_png(
    w: &mut impl std::io::Write,
    (width, height): (u32, u32),
    pixels: PngPixels<'_>,
    text: &[(String, String)],
) -> Result<(), String> {
    let mut enc = png::Encoder::new(w, width, height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_source_srgb(png::SrgbRenderingIntent::Perceptual);
    for (key, value) in text {
        enc.add_itxt_chunk(key.clone(), value.clone())
            .map_err(|e| e.to_string())?;
    }
    let bytes: std::borrow::Cow<'_, [u8]> = match pixels {
        PngPixels::Eight(b) => {
            enc.set_depth(png::BitDepth::Eight);
            b.into()
        }
        PngPixels::Sixteen(v) => {
            enc.set_depth(png::BitDepth::Sixteen);
            v.iter()
                .flat_map(|s| s.to_be_bytes())
                .collect::<Vec<u8>>()
                .into()
        }
    };
    let mut writer = enc.write_header().map_err(|e| e.to_string())?;
    writer.write_image_data(&bytes).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())
}

/// Runs `write` on a temporary file next to `path`, syncs it and renames it onto `path`; on failure the
/// temporary file is removed.
///
/// # Errors
/// [`ImageError::Write`] naming `path`.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut File) -> Result<(), String>,
) -> Result<()> {
    let fail = |reason: String| ImageError::Write {
        path: path.to_owned(),
        reason,
    };
    let tmp = temp_path(path);
    let result = (|| {
        // Created and listed under one lock, so that an exit in between cannot leave it unlisted.
        let mut file = pending_temps(|p| {
            let file = File::create(&tmp);
            if file.is_ok() {
                p.push(tmp.clone());
            }
            file
        })
        .map_err(|e| e.to_string())?;
        write(&mut file)?;
        file.sync_all().map_err(|e| e.to_string())?;
        fs::rename(&tmp, path).map_err(|e| e.to_string())
    })();
    pending_temps(|p| p.retain(|t| t != &tmp));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(fail)
}

/// Runs `f` on the list of temporary files that [`write_atomically`] is writing now, under its lock.
fn pending_temps<T>(f: impl FnOnce(&mut Vec<PathBuf>) -> T) -> T {
    static PENDING: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    f(&mut PENDING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner))
}

/// Removes the temporary files of the writes in progress that `which` selects.
fn remove_pending_temps_where(p: &mut Vec<PathBuf>, which: impl Fn(&Path) -> bool) {
    p.retain(|t| {
        if which(t) {
            let _ = fs::remove_file(t);
            false
        } else {
            true
        }
    });
}

/// Removes the temporary files of the writes in progress and returns while still holding their lock,
/// so that no write can create another one before `then` runs (a second Ctrl-C passes
/// `std::process::exit`): the destination files stay as they were, and no `.tmp` is left behind.
pub fn remove_pending_temps_then<T>(then: impl FnOnce() -> T) -> T {
    pending_temps(|p| {
        remove_pending_temps_where(p, |_| true);
        then()
    })
}

/// `.<name>.<pid>.tmp` beside `path`.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Checks that files can be created in `dir` (creating it if needed), by writing and removing a probe.
///
/// # Errors
/// [`ImageError::Write`] naming the folder.
pub fn check_writable_dir(dir: &Path) -> Result<()> {
    let fail = |reason: String| ImageError::Write {
        path: dir.to_owned(),
        reason,
    };
    // Name the culprit when the folder, or a folder above it, is a regular file.
    if let Some(file) = dir.ancestors().find(|a| a.is_file()) {
        return Err(fail(format!("{} is a file, not a folder", file.display())));
    }
    fs::create_dir_all(dir).map_err(|e| fail(format!("cannot create the folder: {e}")))?;
    let probe = dir.join(format!(".nst-write-probe.{}", std::process::id()));
    File::create(&probe)
        .and_then(|mut f| f.write_all(b"probe"))
        .map_err(|e| fail(format!("the folder is not writable: {e}")))?;
    fs::remove_file(&probe).map_err(|e| fail(format!("cannot remove the probe file: {e}")))
}

/// Checks that the folder of `path` (the current folder for a bare name) accepts new files.
///
/// # Errors
/// [`ImageError::Write`] naming the folder.
pub fn check_parent_writable(path: &Path) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    check_writable_dir(dir)
}

#[cfg(test)]
mod tests;
