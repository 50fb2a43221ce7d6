//! What a run records: one [`Record`] per logged iteration (the metrics), and the run record
//! (`<output>.run.json`: settings, weights checksum, device, timings, outcome, final costs).

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use md5::{Digest as _, Md5};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::image_io::{ImageError, Size, write_atomically};
use crate::objective::Breakdown;
use crate::spec::RunSpec;

/// One logged iteration: one line of the metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Steps taken before this image (0 = the start image), over all stages.
    pub iteration: usize,
    /// `α·content + β·style + tv_weight·tv`.
    pub total: f64,
    /// Content cost (layer-weighted, not multiplied by α).
    pub content: f64,
    /// Style cost (layer-weighted, not multiplied by β).
    pub style: f64,
    /// Total-variation cost (not multiplied by its weight).
    pub tv: f64,
    /// Each style layer's own cost (neither layer-weighted nor multiplied by β).
    pub style_layers: BTreeMap<String, f64>,
    /// Seconds of optimization since the run started (resumed runs continue the count).
    pub seconds: f64,
    /// The stage of a coarse-to-fine run (0 for the first or only one).
    #[serde(default)]
    pub stage: usize,
    /// The image size of that stage.
    #[serde(default)]
    pub size: Option<Size>,
    /// The temporal term (not multiplied by its weight; absent without one).
    #[serde(default, skip_serializing_if = "crate::objective::is_zero")]
    pub temporal: f64,
}

impl Record {
    /// A record of `breakdown` at `iteration` (stage 0, no size; see [`Record::at_stage`]).
    pub fn new(iteration: usize, b: &Breakdown, seconds: f64) -> Record {
        Record {
            iteration,
            total: b.total,
            content: b.content,
            style: b.style,
            tv: b.tv,
            style_layers: b.style_layers.iter().cloned().collect(),
            seconds,
            stage: 0,
            size: None,
            temporal: b.temporal,
        }
    }

    /// The same record, marked with its stage and size.
    pub fn at_stage(mut self, stage: usize, size: Size) -> Record {
        self.stage = stage;
        self.size = Some(size);
        self
    }
}

/// How a run ended, as the run record says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Ended {
    /// Every iteration done.
    Completed,
    /// L-BFGS converged before the last iteration.
    Converged,
    /// Cancelled (Ctrl-C, SIGTERM, a front end's stop): the image and a checkpoint were written.
    #[serde(rename = "interrupted")]
    Cancelled,
    /// The cost or the image became non-finite: the last good image was written.
    Diverged,
}

/// Timings of a run, for its record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Timings {
    pub(crate) startup: f64,
    pub(crate) steps: usize,
    pub(crate) median_step: f64,
    pub(crate) total_steps: f64,
}

/// Everything the run record says besides the settings.
pub(crate) struct RunRecord<'a> {
    pub(crate) spec: &'a RunSpec,
    pub(crate) ended: Ended,
    pub(crate) timings: Timings,
    pub(crate) iterations: usize,
    pub(crate) last: Option<&'a Record>,
    pub(crate) device: &'a str,
    pub(crate) threads: usize,
    pub(crate) stages: &'a [crate::Stage],
}

impl RunRecord<'_> {
    /// Writes the record beside the output (`x.png` → `x.run.json`), atomically; returns its path.
    pub(crate) fn write(&self) -> Result<PathBuf, ImageError> {
        let s = self.spec;
        let path = s.output.with_extension("run.json");
        let weights = weights_checksum(&s.weights);
        let t = self.timings;
        let record = json!({
            "program": "nst",
            "version": env!("CARGO_PKG_VERSION"),
            "outcome": self.ended,
            "finished_unix_seconds": SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            "settings": s,
            "stages": self.stages,
            "weights": { "path": s.weights, "md5": weights.as_ref().map(|w| &w.0), "bytes": weights.as_ref().map(|w| w.1) },
            "device": self.device,
            "threads": self.threads,
            "iterations": self.iterations,
            "timings": {
                "startup_seconds": t.startup,
                "steps_timed": t.steps,
                "median_step_seconds": t.median_step,
                "total_step_seconds": t.total_steps,
            },
            "final": self.last,
        });
        let text = serde_json::to_string_pretty(&record).expect("the record serializes");
        write_atomically(&path, |f| {
            use std::io::Write as _;
            f.write_all(text.as_bytes()).map_err(|e| e.to_string())
        })?;
        Ok(path)
    }
}

/// The median of `v` (the upper one of an even count; 0 for none).
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

/// The weights file's MD5 and size, cached in `<weights>.md5` (with its size and modification time) so
/// that it is computed once per file. `None` when the file cannot be read.
pub fn weights_checksum(path: &Path) -> Option<(String, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    let mtime = meta
        .modified()
        .ok()?
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_secs();
    let mut cache = path.as_os_str().to_owned();
    cache.push(".md5");
    let cache = PathBuf::from(cache);
    if let Ok(text) = std::fs::read_to_string(&cache) {
        let f: Vec<&str> = text.split_whitespace().collect();
        if f.len() == 3 && f[1] == meta.len().to_string() && f[2] == mtime.to_string() {
            return Some((f[0].to_owned(), meta.len()));
        }
    }
    let md5 = md5_hex(path).ok()?;
    // Best effort (a read-only weights folder just means no cache), but never a torn file.
    let line = format!("{md5} {} {mtime}\n", meta.len());
    let _ = write_atomically(&cache, |f| {
        std::io::Write::write_all(f, line.as_bytes()).map_err(|e| e.to_string())
    });
    Some((md5, meta.len()))
}

/// The MD5 of a file, in lower-case hex.
fn md5_hex(path: &Path) -> std::io::Result<String> {
    use std::fmt::Write as _;
    let mut file = std::fs::File::open(path)?;
    let mut md5 = Md5::new();
    let mut buf = vec![0_u8; 1 << 20];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => md5.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(md5.finalize().iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    }))
}
