//! The contact sheet: every result of a batch in one grid, in plan order (so a sweep's last varied
//! setting runs along the rows), each cell captioned with the job's label (the settings that vary
//! across the batch); a job without a result shows its status instead.

use std::path::Path;

use anyhow::{Context as _, Result};
use image::imageops::FilterType;
use image::{Rgb, RgbImage};
use plotters::prelude::*;

use super::plan::Plan;
use super::state::Status;

/// Margin around and between cells, in pixels.
const PAD: u32 = 10;
/// Caption line height and font size, in pixels.
const LINE: u32 = 16;
const FONT: f64 = 13.0;
/// Title height.
const TITLE: u32 = 30;
/// Caption lines per cell at most.
const MAX_LINES: usize = 4;

/// The contact sheet of `plan` with thumbnails fitting `cell × cell` pixels.
///
/// # Errors
/// When a result exists but cannot be read.
pub fn render(plan: &Plan, statuses: &[Status], cell: u32) -> Result<RgbImage> {
    let n = plan.jobs.len().max(1);
    let columns = (n as f64).sqrt().ceil() as u32;
    let rows = (n as u32).div_ceil(columns);
    let thumbs: Vec<Option<RgbImage>> = plan
        .jobs
        .iter()
        .zip(statuses)
        .map(|(j, s)| {
            (*s == Status::Done)
                .then(|| thumbnail(&j.spec.output, cell))
                .transpose()
        })
        .collect::<Result<_>>()?;
    // As tall as the tallest picture (landscape results leave no band under them).
    let pic_h = thumbs
        .iter()
        .flatten()
        .map(RgbImage::height)
        .max()
        .unwrap_or(cell);
    let captions: Vec<Vec<String>> = plan.jobs.iter().map(|j| caption(&j.label)).collect();
    let lines = captions.iter().map(Vec::len).max().unwrap_or(1).max(1) as u32;
    let (cw, ch) = (cell + PAD, pic_h + lines * LINE + PAD);
    let (width, height) = (columns * cw + PAD, TITLE + rows * ch + PAD);
    let mut sheet = RgbImage::from_pixel(width, height, Rgb([255, 255, 255]));
    let title = plan
        .file
        .file_name()
        .map_or_else(String::new, |f| f.to_string_lossy().into_owned());
    let mut texts = vec![(
        format!("{title}: {} jobs", plan.jobs.len()),
        PAD as i32,
        8,
        16,
    )];
    for (k, (thumb, status)) in thumbs.iter().zip(statuses).enumerate() {
        let (col, row) = (k as u32 % columns, k as u32 / columns);
        let (x0, y0) = (PAD + col * cw, TITLE + row * ch);
        match thumb {
            Some(t) => {
                let (dx, dy) = ((cell - t.width()) / 2, (pic_h - t.height()) / 2);
                image::imageops::replace(&mut sheet, t, i64::from(x0 + dx), i64::from(y0 + dy));
            }
            None => {
                fill(&mut sheet, (x0, y0), (cell, pic_h), Rgb([225, 225, 225]));
                let y = (y0 + pic_h / 2) as i32 - 8;
                texts.push((status.word().to_owned(), (x0 + 8) as i32, y, 14));
            }
        }
        for (i, line) in captions[k].iter().enumerate() {
            let y = (y0 + pic_h + 2 + i as u32 * LINE) as i32;
            texts.push((line.clone(), x0 as i32, y, 0));
        }
    }
    draw_texts(&mut sheet, &texts)?;
    Ok(sheet)
}

/// Writes the contact sheet to `path` (PNG or JPEG from the extension), atomically.
///
/// # Errors
/// As [`render`], and when the file cannot be written.
pub fn write(plan: &Plan, statuses: &[Status], cell: u32, path: &Path) -> Result<()> {
    let sheet = render(plan, statuses, cell)?;
    nst_engine::image_io::save_rgb8(&sheet, path)
        .with_context(|| format!("writing the contact sheet {}", path.display()))
}

/// A label as caption lines: one `key=value` word per line, the last line saying how many more.
fn caption(label: &str) -> Vec<String> {
    let words: Vec<&str> = label.split_whitespace().collect();
    if words.len() <= MAX_LINES {
        return words.into_iter().map(str::to_owned).collect();
    }
    let mut lines: Vec<String> = words[..MAX_LINES - 1]
        .iter()
        .map(|w| (*w).to_owned())
        .collect();
    lines.push(words[MAX_LINES - 1..].join(" "));
    lines
}

fn thumbnail(path: &Path, cell: u32) -> Result<RgbImage> {
    let img = image::open(path)
        .with_context(|| format!("reading {}", path.display()))?
        .to_rgb8();
    let scale = f64::from(cell) / f64::from(img.width().max(img.height()));
    let side = |v: u32| ((f64::from(v) * scale).round() as u32).clamp(1, cell);
    Ok(image::imageops::resize(
        &img,
        side(img.width()),
        side(img.height()),
        FilterType::Triangle,
    ))
}

fn fill(img: &mut RgbImage, (x0, y0): (u32, u32), (w, h): (u32, u32), color: Rgb<u8>) {
    for y in y0..(y0 + h).min(img.height()) {
        for x in x0..(x0 + w).min(img.width()) {
            img.put_pixel(x, y, color);
        }
    }
}

/// Draws `(text, x, y, size)` on `img` (size 0: the caption size), in the bundled DejaVu Sans.
fn draw_texts(img: &mut RgbImage, texts: &[(String, i32, i32, u32)]) -> Result<()> {
    crate::metrics::register_font_once();
    let (w, h) = img.dimensions();
    let area = BitMapBackend::with_buffer(img, (w, h)).into_drawing_area();
    for (text, x, y, size) in texts {
        let size = if *size == 0 { FONT } else { f64::from(*size) };
        let style = ("sans-serif", size).into_font().color(&BLACK);
        area.draw(&Text::new(text.clone(), (*x, *y), style))
            .map_err(|e| anyhow::anyhow!("drawing the captions: {e}"))?;
    }
    area.present()
        .map_err(|e| anyhow::anyhow!("drawing the captions: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::caption;

    #[test]
    fn captions_put_one_setting_per_line_and_fold_the_rest() {
        assert_eq!(caption("content=a beta=10"), ["content=a", "beta=10"]);
        assert_eq!(caption("a=1 b=2 c=3 d=4 e=5").last().unwrap(), "d=4 e=5");
        assert!(caption("").is_empty());
    }
}
