//! The plan: a batch file expanded into jobs, each with its settings as an engine [`RunSpec`], its id,
//! its folder, a label made of the settings that vary across the batch, and the unit by which workers
//! share it out. Expanding reads every input file (for the ids) but runs nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use nst_engine::RunSpec;
use serde_json::{Map, Value};

use super::file::{BatchError, BatchFile, ContentSource, Frames, JobEntry, StyleSource};
use super::files;
use super::ids::{Hashes, IdInputs, JobId, job_id};
use super::settings::{Settings, flags_to_keys};
use super::shard::Unit;
use crate::args::default_weights;

/// What the command line adds to a batch file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanOptions {
    /// `--out-dir`, over the file's `out_dir`.
    pub out_dir: Option<PathBuf>,
    /// `--weights` (or `NST_WEIGHTS`), over the file's `weights`.
    pub weights: Option<PathBuf>,
}

/// A batch file expanded.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The batch file.
    pub file: PathBuf,
    /// Where the job folders go.
    pub out_dir: PathBuf,
    /// The model.
    pub weights: PathBuf,
    /// Every job, in the file's order (a video's frames in order).
    pub jobs: Vec<Job>,
    /// The videos, each a chain of frame jobs.
    pub videos: Vec<Video>,
}

/// One job of a batch.
#[derive(Debug, Clone)]
pub struct Job {
    /// Its id (and folder name).
    pub id: JobId,
    /// The `[[job]]` entry it comes from (from 1).
    pub entry: usize,
    /// What distinguishes it: content, style, each `vary` key, and for a frame its video and number.
    pub dims: Vec<(String, String)>,
    /// The dimensions that vary across the batch, as `key=value` words.
    pub label: String,
    /// Its settings; `out_dir` is the job's folder and `output` its `result.png`.
    pub spec: RunSpec,
    /// For a video's frame: its place in the video.
    pub frame: Option<FrameLink>,
    /// How it is assigned to a shard.
    pub unit: Unit,
}

/// A frame's place in its video.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameLink {
    /// The video's index in [`Plan::videos`].
    pub video: usize,
    /// The frame's number in the video, from 1.
    pub number: usize,
    /// The job index of the previous frame when this one starts from its result.
    pub previous: Option<usize>,
    /// The segment the frame belongs to.
    pub segment: usize,
}

/// A video: frame jobs that run in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Video {
    /// Its name (the entry's `name`, else the frames' folder name).
    pub name: String,
    /// Where its results are copied as a numbered sequence (`0001.png`, …) for ffmpeg.
    pub sequence_dir: PathBuf,
    /// Its frame jobs' indices, in order.
    pub jobs: Vec<usize>,
    /// How many segments it is cut into.
    pub segments: usize,
}

impl Job {
    /// The job's folder.
    pub fn dir(&self) -> &Path {
        &self.spec.out_dir
    }

    /// The iterations the job runs (the first stage's plus the later stages', when planned).
    pub fn iterations(&self) -> usize {
        self.spec.iterations
    }
}

/// Expands `file` into a plan.
///
/// # Errors
/// [`BatchError`] naming the entry for a missing input, a setting that `nst stylize` would refuse, or a
/// weights file that cannot be read (the ids depend on its checksum).
pub fn expand(file: &BatchFile, opts: &PlanOptions) -> Result<Plan, BatchError> {
    let err = |at: &str, message: String| BatchError {
        file: file.path.clone(),
        at: at.to_owned(),
        message,
    };
    let weights = opts
        .weights
        .clone()
        .or_else(|| file.weights.clone())
        .unwrap_or_else(default_weights);
    let (weights_md5, _) = nst_engine::record::weights_checksum(&weights).ok_or_else(|| {
        err(
            "weights",
            format!(
                "cannot read the weights {} (--weights, NST_WEIGHTS or `weights` in the file): job ids include the model's checksum; `nst download-weights` fetches the default one",
                weights.display()
            ),
        )
    })?;
    let out_dir = opts
        .out_dir
        .clone()
        .or_else(|| file.out_dir.clone())
        .unwrap_or_else(|| default_out_dir(&file.path));
    let mut ex = Expander {
        file,
        weights: weights.clone(),
        weights_md5,
        out_dir: out_dir.clone(),
        hashes: Hashes::default(),
        jobs: Vec::new(),
        videos: Vec::new(),
    };
    for entry in &file.jobs {
        ex.entry(entry)?;
    }
    label(&mut ex.jobs);
    Ok(Plan {
        file: file.path.clone(),
        out_dir,
        weights,
        jobs: ex.jobs,
        videos: ex.videos,
    })
}

/// `batch.toml` → `batch-out` beside it.
pub fn default_out_dir(file: &Path) -> PathBuf {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "batch".into());
    file.with_file_name(format!("{stem}-out"))
}

/// One combination of `vary` values: the settings it overrides and its label dimensions.
type Combo = (Map<String, Value>, Vec<(String, String)>);

struct Expander<'a> {
    file: &'a BatchFile,
    weights: PathBuf,
    weights_md5: String,
    out_dir: PathBuf,
    hashes: Hashes,
    jobs: Vec<Job>,
    videos: Vec<Video>,
}

impl Expander<'_> {
    fn err(&self, entry: &JobEntry, message: impl Into<String>) -> BatchError {
        BatchError {
            file: self.file.path.clone(),
            at: format!("job {}", entry.number),
            message: message.into(),
        }
    }

    fn entry(&mut self, entry: &JobEntry) -> Result<(), BatchError> {
        let style_sets = match &entry.style {
            StyleSource::Sets(s) => s.clone(),
            StyleSource::Dir(d) => files::images_in(d)
                .map_err(|e| self.err(entry, format!("style_dir: {e}")))?
                .into_iter()
                .map(|p| vec![p])
                .collect(),
        };
        let combos = combinations(&entry.vary);
        let contents = match &entry.content {
            ContentSource::Frames(f) => {
                let frames = files::frames(&f.pattern)
                    .map_err(|e| self.err(entry, format!("frames: {e}")))?;
                let several = style_sets.len() * combos.len() > 1;
                for styles in &style_sets {
                    for combo in &combos {
                        self.video(entry, f, &frames, styles, combo, several)?;
                    }
                }
                return Ok(());
            }
            ContentSource::Files(v) => v.clone(),
            ContentSource::Dir(d) => {
                files::images_in(d).map_err(|e| self.err(entry, format!("content_dir: {e}")))?
            }
        };
        for content in &contents {
            for styles in &style_sets {
                for combo in &combos {
                    self.still(entry, content, styles, combo)?;
                }
            }
        }
        Ok(())
    }

    /// The engine's settings for one job, checked as `nst stylize` checks its flags.
    fn spec(
        &self,
        entry: &JobEntry,
        content: &Path,
        styles: &[PathBuf],
        combo: &Map<String, Value>,
    ) -> Result<RunSpec, BatchError> {
        let mut merged = self.file.defaults.clone();
        merged.extend(entry.settings.clone());
        merged.extend(combo.clone());
        let s = Settings::from_map(&merged).map_err(|e| self.err(entry, e))?;
        let args = s
            .to_args(content, styles, &self.weights, &self.file.base)
            .map_err(|e| self.err(entry, e))?;
        crate::args::from_args(&args).map_err(|e| {
            self.err(
                entry,
                format!("{} (content {})", flags_to_keys(&e), content.display()),
            )
        })
    }

    /// The hashes of a job's input files.
    fn inputs(&mut self, entry: &JobEntry, spec: &RunSpec) -> Result<IdInputs, BatchError> {
        let mut hash = |what: &str, p: &Path| {
            self.hashes.file(p).map_err(|e| {
                self_err(
                    &self.file.path,
                    entry,
                    format!("{what} {}: {e}", p.display()),
                )
            })
        };
        let content = hash("content", &spec.content)?;
        let styles = spec
            .styles
            .iter()
            .map(|p| hash("style", p))
            .collect::<Result<Vec<_>, _>>()?;
        let init_image = spec
            .init_image
            .as_deref()
            .map(|p| hash("init_image", p))
            .transpose()?;
        Ok(IdInputs {
            content,
            styles,
            init_image,
            weights: self.weights_md5.clone(),
            previous: None,
            temporal: None,
        })
    }

    fn still(
        &mut self,
        entry: &JobEntry,
        content: &Path,
        styles: &[PathBuf],
        combo: &Combo,
    ) -> Result<(), BatchError> {
        let mut spec = self.spec(entry, content, styles, &combo.0)?;
        let inputs = self.inputs(entry, &spec)?;
        let id = job_id(&spec, &inputs);
        if self.jobs.iter().any(|j| j.id == id) {
            return Ok(()); // the same job twice (the same settings and inputs) is one job
        }
        self.place(&mut spec, &id);
        let mut dims = Vec::new();
        if let Some(n) = &entry.name {
            dims.push(("job".to_owned(), n.clone()));
        }
        dims.push(("content".to_owned(), stem(content)));
        dims.push(("style".to_owned(), style_name(styles)));
        dims.extend(combo.1.iter().cloned());
        self.jobs.push(Job {
            unit: Unit::Hash(id.as_u64()),
            id,
            entry: entry.number,
            dims,
            label: String::new(),
            spec,
            frame: None,
        });
        Ok(())
    }

    /// Sets the job's folder and result path.
    fn place(&self, spec: &mut RunSpec, id: &JobId) {
        spec.out_dir = self.out_dir.join(id.as_str());
        spec.output = spec.out_dir.join("result.png");
    }

    fn video(
        &mut self,
        entry: &JobEntry,
        f: &Frames,
        frames: &[PathBuf],
        styles: &[PathBuf],
        combo: &Combo,
        several: bool,
    ) -> Result<(), BatchError> {
        let name = self.video_name(entry, f, styles, combo, several);
        let index = self.videos.len();
        let per = if f.segment_frames == 0 {
            frames.len()
        } else {
            f.segment_frames
        };
        let segments = frames.len().div_ceil(per);
        let mut jobs = Vec::with_capacity(frames.len());
        let mut group = None;
        for (i, frame) in frames.iter().enumerate() {
            let head = i % per == 0;
            let previous = (!head).then(|| jobs[i - 1]);
            let mut spec = self.spec(entry, frame, styles, &combo.0)?;
            let mut inputs = self.inputs(entry, &spec)?;
            if let Some(p) = previous {
                let prev: &Job = &self.jobs[p];
                if f.warm_start {
                    spec.init_image = Some(prev.spec.output.clone());
                    inputs.init_image = None;
                }
                if f.warm_start || f.temporal_weight > 0.0 {
                    inputs.previous = Some(prev.id.clone());
                }
                if f.temporal_weight > 0.0 {
                    self.temporal(entry, f, p, &mut spec, &mut inputs)?;
                }
            }
            let id = job_id(&spec, &inputs);
            let group = *group.get_or_insert(id.as_u64());
            // A frame that is the same job as one of another video (a first frame, with the same
            // settings) is that job: it runs once and is copied into both sequences.
            if let Some(same) = self.jobs.iter().position(|j| j.id == id) {
                jobs.push(same);
                continue;
            }
            self.place(&mut spec, &id);
            let mut dims = vec![
                ("video".to_owned(), name.clone()),
                ("frame".to_owned(), format!("{:04}", i + 1)),
                ("style".to_owned(), style_name(styles)),
            ];
            dims.extend(combo.1.iter().cloned());
            jobs.push(self.jobs.len());
            self.jobs.push(Job {
                id,
                entry: entry.number,
                dims,
                label: String::new(),
                spec,
                frame: Some(FrameLink {
                    video: index,
                    number: i + 1,
                    previous,
                    segment: i / per,
                }),
                unit: Unit::Range {
                    group,
                    index: i / per,
                    count: segments,
                },
            });
        }
        self.videos.push(Video {
            sequence_dir: self.out_dir.join(&name),
            name,
            jobs,
            segments,
        });
        Ok(())
    }

    /// Holds a frame to the result of the previous frame (job `prev`) with the temporal term.
    fn temporal(
        &mut self,
        entry: &JobEntry,
        f: &Frames,
        prev: usize,
        spec: &mut RunSpec,
        inputs: &mut IdInputs,
    ) -> Result<(), BatchError> {
        let p = &self.jobs[prev].spec;
        spec.temporal = Some(nst_engine::Temporal {
            previous: p.output.clone(),
            previous_content: p.content.clone(),
            weight: f.temporal_weight,
            threshold: f.temporal_threshold,
        });
        let before = self.hashes.file(&p.content).map_err(|e| {
            self_err(
                &self.file.path,
                entry,
                format!("frames {}: {e}", p.content.display()),
            )
        })?;
        inputs.temporal = Some((f.temporal_weight, f.temporal_threshold, before));
        Ok(())
    }

    /// The entry's name (or its frames' folder), with the style and varied values when the entry
    /// makes several videos, made unique in the batch.
    fn video_name(
        &self,
        entry: &JobEntry,
        f: &Frames,
        styles: &[PathBuf],
        combo: &Combo,
        several: bool,
    ) -> String {
        let mut name = entry.name.clone().unwrap_or_else(|| {
            f.pattern
                .parent()
                .and_then(Path::file_name)
                .map_or_else(|| "video".to_owned(), |n| n.to_string_lossy().into_owned())
        });
        if several {
            name.push('-');
            name.push_str(&style_name(styles));
            for (k, v) in &combo.1 {
                name.push_str(&format!("-{k}{v}"));
            }
        }
        let mut name = sanitize(&name);
        if self.videos.iter().any(|v| v.name == name) {
            name = format!("{name}-job{}", entry.number);
        }
        name
    }
}

fn self_err(file: &Path, entry: &JobEntry, message: String) -> BatchError {
    BatchError {
        file: file.to_owned(),
        at: format!("job {}", entry.number),
        message,
    }
}

/// Every combination of the `vary` values, in order (the first key varies slowest).
fn combinations(vary: &[(String, Vec<Value>)]) -> Vec<Combo> {
    let mut out: Vec<Combo> = vec![(Map::new(), Vec::new())];
    for (key, values) in vary {
        out = out
            .into_iter()
            .flat_map(|(m, d)| {
                values.iter().map(move |v| {
                    let mut m = m.clone();
                    m.insert(key.clone(), v.clone());
                    let mut d = d.clone();
                    d.push((key.clone(), value_text(v)));
                    (m, d)
                })
            })
            .collect();
    }
    out
}

/// A setting's value as a label shows it (strings without quotes).
fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn stem(p: &Path) -> String {
    p.file_stem().map_or_else(
        || p.display().to_string(),
        |s| s.to_string_lossy().into_owned(),
    )
}

fn style_name(styles: &[PathBuf]) -> String {
    styles.iter().map(|s| stem(s)).collect::<Vec<_>>().join("+")
}

/// Letters, digits, `-`, `_` and `.` kept; anything else becomes `_`.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Gives each job a label made of the dimensions whose values differ across the batch.
fn label(jobs: &mut [Job]) {
    let mut values: BTreeMap<&str, BTreeSet<Option<&str>>> = BTreeMap::new();
    for job in jobs.iter() {
        for (k, _) in &job.dims {
            values.entry(k.as_str()).or_default();
        }
    }
    for (k, set) in &mut values {
        for job in jobs.iter() {
            set.insert(
                job.dims
                    .iter()
                    .find(|(dk, _)| dk == k)
                    .map(|(_, v)| v.as_str()),
            );
        }
    }
    let varied: Vec<String> = values
        .into_iter()
        .filter(|(_, set)| set.len() > 1)
        .map(|(k, _)| k.to_owned())
        .collect();
    for job in jobs.iter_mut() {
        let words: Vec<String> = job
            .dims
            .iter()
            .filter(|(k, _)| varied.contains(k))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        job.label = if words.is_empty() {
            job.dims
                .iter()
                .find(|(k, _)| k == "content" || k == "video")
                .map_or_else(String::new, |(_, v)| v.clone())
        } else {
            words.join(" ")
        };
    }
}

#[cfg(test)]
mod tests;
