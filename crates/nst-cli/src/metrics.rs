//! What a run reports: metrics records (JSON lines), the cost plot (PNG or SVG) and the GIF animation.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};

use image::RgbImage;
use plotters::prelude::*;

use nst_engine::Record;
use nst_engine::image_io::{ImageError, write_atomically};

/// Appends records to a JSON-lines file, flushing each line.
#[derive(Debug)]
pub struct MetricsWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl MetricsWriter {
    /// Creates (or, with `append`, extends) the file.
    ///
    /// # Errors
    /// [`ImageError::Write`] naming the file.
    pub fn open(path: &Path, append: bool) -> Result<MetricsWriter, ImageError> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(path)
            .map_err(|e| ImageError::Write {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(MetricsWriter {
            path: path.to_owned(),
            out: BufWriter::new(file),
        })
    }

    /// Writes one line.
    ///
    /// # Errors
    /// [`ImageError::Write`].
    pub fn write(&mut self, r: &Record) -> Result<(), ImageError> {
        let line = serde_json::to_string(r).expect("a record serializes");
        writeln!(self.out, "{line}")
            .and_then(|()| self.out.flush())
            .map_err(|e| ImageError::Write {
                path: self.path.clone(),
                reason: e.to_string(),
            })
    }
}

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

pub(crate) fn register_font_once() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The font is compiled in and valid; a failure would only make the labels disappear.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// Whether `path` names a plot format we write (`.png` or `.svg`).
pub fn plot_format_ok(path: &Path) -> bool {
    matches!(ext(path).as_deref(), Some("png" | "svg"))
}

fn ext(path: &Path) -> Option<String> {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
}

/// Plots total, α·content and β·style (and the TV term when used) against the iteration, on a log scale;
/// PNG or SVG from the extension, written atomically.
///
/// # Errors
/// [`ImageError::Write`] (or [`ImageError::UnknownOutputFormat`] for another extension).
pub fn plot(
    path: &Path,
    history: &[Record],
    alpha: f32,
    beta: f32,
    tv_weight: f32,
) -> Result<(), ImageError> {
    register_font_once();
    let (w, h) = (800_u32, 500_u32);
    let fail = |e: String| ImageError::Write {
        path: path.to_owned(),
        reason: e,
    };
    match ext(path).as_deref() {
        Some("svg") => {
            let mut svg = String::new();
            {
                let backend = SVGBackend::with_string(&mut svg, (w, h));
                draw(backend.into_drawing_area(), history, alpha, beta, tv_weight).map_err(fail)?;
            }
            write_atomically(path, |f| {
                f.write_all(svg.as_bytes()).map_err(|e| e.to_string())
            })
        }
        Some("png") => {
            let mut buf = vec![255_u8; (w * h * 3) as usize];
            {
                let backend = BitMapBackend::with_buffer(&mut buf, (w, h));
                draw(backend.into_drawing_area(), history, alpha, beta, tv_weight).map_err(fail)?;
            }
            let img = RgbImage::from_raw(w, h, buf).expect("the buffer has w·h·3 bytes");
            nst_engine::image_io::save_rgb8(&img, path)
        }
        _ => Err(ImageError::UnknownOutputFormat {
            path: path.to_owned(),
        }),
    }
}

fn draw<DB: DrawingBackend>(
    area: DrawingArea<DB, plotters::coord::Shift>,
    history: &[Record],
    alpha: f32,
    beta: f32,
    tv_weight: f32,
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    area.fill(&WHITE).map_err(e)?;
    type Series = (&'static str, RGBColor, Vec<(f64, f64)>);
    let series: Vec<Series> = [
        (
            "total",
            BLACK,
            1.0_f64,
            (|r: &Record| r.total) as fn(&Record) -> f64,
        ),
        ("α·content", BLUE, f64::from(alpha), |r| r.content),
        ("β·style", RED, f64::from(beta), |r| r.style),
        ("tv_weight·tv", GREEN, f64::from(tv_weight), |r| r.tv),
    ]
    .into_iter()
    .map(|(name, color, k, f)| {
        let pts = history
            .iter()
            .map(|r| (r.iteration as f64, k * f(r)))
            .filter(|&(_, v)| v.is_finite() && v > 0.0)
            .collect();
        (name, color, pts)
    })
    .filter(|(_, _, pts): &(_, _, Vec<_>)| !pts.is_empty())
    .collect();
    let x_max = history
        .iter()
        .map(|r| r.iteration)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let all = series.iter().flat_map(|s| s.2.iter().map(|p| p.1));
    let (lo, hi) = all.fold((f64::INFINITY, 0.0_f64), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let (lo, hi) = if lo.is_finite() {
        (lo / 2.0, hi * 2.0)
    } else {
        (1e-3, 1.0)
    };
    let mut chart = ChartBuilder::on(&area)
        .caption("cost per iteration", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, (lo..hi).log_scale())
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("iteration")
        .y_desc("cost")
        .y_label_formatter(&|v| format!("{v:.0e}"))
        .draw()
        .map_err(e)?;
    for (name, color, pts) in series {
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(e)?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(e)?;
    area.present().map_err(e)
}

/// The GIF of a run (shared with `nst serve`).
pub use nst_engine::animation::Animation;

#[cfg(test)]
mod tests;
