//! The batch file, TOML or JSON (`docs/batch.md`): parsed into a [`BatchFile`] whose paths are resolved
//! against the file's folder, so that the same file runs from any working folder and on any machine
//! that has the inputs at the same relative places. Settings stay JSON values here; a job's are merged
//! and checked in [`crate::batch::settings`].

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// An error in a batch file: the file, where in it, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {at}: {message}", file.display())]
pub struct BatchError {
    /// The batch file.
    pub file: PathBuf,
    /// Where in it (`job 2`, `[defaults]`, `the file`).
    pub at: String,
    /// What is wrong.
    pub message: String,
}

/// A parsed batch file.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchFile {
    /// The file itself.
    pub path: PathBuf,
    /// Its folder: relative paths inside it are resolved against this.
    pub base: PathBuf,
    /// `out_dir`: where the job folders go (resolved), unless `--out-dir` says otherwise.
    pub out_dir: Option<PathBuf>,
    /// `weights`: the model (resolved), unless `--weights` or `NST_WEIGHTS` say otherwise.
    pub weights: Option<PathBuf>,
    /// `[defaults]`: settings of every job.
    pub defaults: Map<String, Value>,
    /// The `[[job]]` entries, in order.
    pub jobs: Vec<JobEntry>,
}

/// One `[[job]]` entry: one job, or the cross product it stands for.
#[derive(Debug, Clone, PartialEq)]
pub struct JobEntry {
    /// Its position in the file, from 1 (for messages).
    pub number: usize,
    /// `name`: a label for its jobs (and the folder of a video's frames).
    pub name: Option<String>,
    /// `content`, `contents`, `content_dir` or `frames`.
    pub content: ContentSource,
    /// `style`, `styles` or `style_dir`.
    pub style: StyleSource,
    /// Every other key: `nst stylize` settings.
    pub settings: Map<String, Value>,
    /// `vary`: settings with several values, one job per combination.
    pub vary: Vec<(String, Vec<Value>)>,
}

/// Where an entry's content images come from.
#[derive(Debug, Clone, PartialEq)]
pub enum ContentSource {
    /// `content = "a.jpg"` or `contents = ["a.jpg", "b.jpg"]`: one job per file.
    Files(Vec<PathBuf>),
    /// `content_dir = "photos"`: one job per image in the folder.
    Dir(PathBuf),
    /// `frames = "clip/*.png"`: the frames of a video, in order.
    Frames(Frames),
}

/// A video given as a folder of frames.
#[derive(Debug, Clone, PartialEq)]
pub struct Frames {
    /// The pattern, resolved; `*` and `?` are allowed in the file name only.
    pub pattern: PathBuf,
    /// `warm_start` (default true): each frame starts from the previous frame's result.
    pub warm_start: bool,
    /// `segment_frames` (default 0: the whole clip): frames per segment; a segment's first frame
    /// starts cold, and segments are what workers share out.
    pub segment_frames: usize,
    /// `temporal_weight` (default 0: off): weight of the temporal term.
    pub temporal_weight: f32,
    /// `temporal_threshold` (default 8, in 0–255 units): the largest change of a pixel between two
    /// input frames that still counts as "did not change".
    pub temporal_threshold: f32,
}

/// Where an entry's style images come from: a list of style sets, each one job's styles (blended
/// when more than one).
#[derive(Debug, Clone, PartialEq)]
pub enum StyleSource {
    /// `style = "s.jpg"` (one set), `style = ["a.jpg", "b.jpg"]` (one blended set) or
    /// `styles = ["a.jpg", ["b.jpg", "c.jpg"]]` (one set per element).
    Sets(Vec<Vec<PathBuf>>),
    /// `style_dir = "paintings"`: one set per image in the folder.
    Dir(PathBuf),
}

/// The keys of a `[[job]]` that are not `nst stylize` settings.
const ENTRY_KEYS: &[&str] = &[
    "name",
    "content",
    "contents",
    "content_dir",
    "frames",
    "style",
    "styles",
    "style_dir",
    "vary",
    "warm_start",
    "segment_frames",
    "temporal_weight",
    "temporal_threshold",
];

/// The keys of a `[[job]]` that only a video (`frames`) takes.
const FRAME_KEYS: &[&str] = &[
    "warm_start",
    "segment_frames",
    "temporal_weight",
    "temporal_threshold",
];

/// The default `temporal_threshold`.
pub const DEFAULT_TEMPORAL_THRESHOLD: f32 = 8.0;

/// Reads and parses a batch file (`.toml` or `.json`).
///
/// # Errors
/// [`BatchError`] naming the file and the entry for anything unreadable or malformed.
pub fn load(path: &Path) -> Result<BatchFile, BatchError> {
    let text = std::fs::read_to_string(path).map_err(|e| BatchError {
        file: path.to_owned(),
        at: "the file".into(),
        message: format!("cannot read it: {e}"),
    })?;
    parse(&text, path)
}

/// Parses the text of the batch file `path` (the format comes from its extension).
///
/// # Errors
/// As [`load`].
pub fn parse(text: &str, path: &Path) -> Result<BatchFile, BatchError> {
    let err = |at: &str, message: String| BatchError {
        file: path.to_owned(),
        at: at.to_owned(),
        message,
    };
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    let value: Value = match ext.as_deref() {
        Some("toml") => toml::from_str(text).map_err(|e| err("the file", e.to_string()))?,
        Some("json") => serde_json::from_str(text).map_err(|e| err("the file", e.to_string()))?,
        _ => {
            return Err(err(
                "the file",
                "a batch file is TOML or JSON: name it *.toml or *.json".into(),
            ));
        }
    };
    let Value::Object(top) = value else {
        return Err(err("the file", "the top level must be a table".into()));
    };
    let base = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    Reader {
        file: path,
        base: &base,
    }
    .file(top)
}

/// Turns JSON values into the parsed file, resolving paths against `base`.
struct Reader<'a> {
    file: &'a Path,
    base: &'a Path,
}

impl Reader<'_> {
    fn err(&self, at: &str, message: impl Into<String>) -> BatchError {
        BatchError {
            file: self.file.to_owned(),
            at: at.to_owned(),
            message: message.into(),
        }
    }

    fn file(&self, top: Map<String, Value>) -> Result<BatchFile, BatchError> {
        let mut out = BatchFile {
            path: self.file.to_owned(),
            base: self.base.to_owned(),
            out_dir: None,
            weights: None,
            defaults: Map::new(),
            jobs: Vec::new(),
        };
        for (key, value) in top {
            match key.as_str() {
                "out_dir" => out.out_dir = Some(self.path("out_dir", &key, &value)?),
                "weights" => out.weights = Some(self.path("weights", &key, &value)?),
                "defaults" => match value {
                    Value::Object(m) => out.defaults = m,
                    _ => return Err(self.err("[defaults]", "must be a table of settings")),
                },
                "job" => {
                    let Value::Array(entries) = value else {
                        return Err(self.err("job", "write each job as a [[job]] table"));
                    };
                    for (i, e) in entries.into_iter().enumerate() {
                        out.jobs.push(self.entry(i + 1, e)?);
                    }
                }
                other => {
                    return Err(self.err(
                        "the file",
                        format!(
                            "unknown key `{other}` at the top level (it takes out_dir, weights, [defaults] and [[job]] tables)"
                        ),
                    ));
                }
            }
        }
        if out.jobs.is_empty() {
            return Err(self.err("the file", "no [[job]] table: nothing to do"));
        }
        Ok(out)
    }

    fn entry(&self, number: usize, value: Value) -> Result<JobEntry, BatchError> {
        let at = format!("job {number}");
        let Value::Object(mut m) = value else {
            return Err(self.err(&at, "must be a table"));
        };
        let name = match m.remove("name") {
            None => None,
            Some(Value::String(s)) if valid_name(&s) => Some(s),
            Some(_) => {
                return Err(self.err(
                    &at,
                    "`name` must be a non-empty string of letters, digits, `-`, `_` and `.`",
                ));
            }
        };
        let content = self.content(&at, &mut m)?;
        let style = self.style(&at, &mut m)?;
        let vary = self.vary(&at, m.remove("vary"))?;
        if !matches!(content, ContentSource::Frames(_))
            && let Some(k) = FRAME_KEYS.iter().find(|k| m.contains_key(**k))
        {
            return Err(self.err(&at, format!("`{k}` applies only to a video (`frames`)")));
        }
        m.retain(|k, _| !ENTRY_KEYS.contains(&k.as_str()));
        Ok(JobEntry {
            number,
            name,
            content,
            style,
            settings: m,
            vary,
        })
    }

    fn content(&self, at: &str, m: &mut Map<String, Value>) -> Result<ContentSource, BatchError> {
        let given: Vec<&str> = ["content", "contents", "content_dir", "frames"]
            .into_iter()
            .filter(|k| m.contains_key(*k))
            .collect();
        let key = match given.as_slice() {
            [one] => *one,
            [] => {
                return Err(self.err(
                    at,
                    "no content: give `content`, `contents`, `content_dir` or `frames`",
                ));
            }
            many => {
                return Err(self.err(at, format!("give one of {}, not several", many.join(", "))));
            }
        };
        let v = m.remove(key).expect("the key is present");
        match key {
            "content" => Ok(ContentSource::Files(vec![self.path(at, key, &v)?])),
            "contents" => Ok(ContentSource::Files(self.paths(at, key, &v)?)),
            "content_dir" => Ok(ContentSource::Dir(self.path(at, key, &v)?)),
            _ => Ok(ContentSource::Frames(self.frames(at, &v, m)?)),
        }
    }

    fn frames(
        &self,
        at: &str,
        pattern: &Value,
        m: &Map<String, Value>,
    ) -> Result<Frames, BatchError> {
        let pattern = self.path(at, "frames", pattern)?;
        let dir = pattern.parent().unwrap_or(Path::new(""));
        if dir.to_string_lossy().contains(['*', '?']) {
            return Err(self.err(
                at,
                "`frames`: `*` and `?` are allowed in the file name only (e.g. \"clip/*.png\")",
            ));
        }
        let number = |key: &str, default: f64| -> Result<f64, BatchError> {
            match m.get(key) {
                None => Ok(default),
                Some(v) => v
                    .as_f64()
                    .filter(|x| x.is_finite() && *x >= 0.0)
                    .ok_or_else(|| self.err(at, format!("`{key}` must be a number ≥ 0"))),
            }
        };
        let warm_start = match m.get("warm_start") {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(self.err(at, "`warm_start` must be true or false")),
        };
        let segment = number("segment_frames", 0.0)?;
        if segment.fract() != 0.0 {
            return Err(self.err(at, "`segment_frames` must be a whole number"));
        }
        Ok(Frames {
            pattern,
            warm_start,
            segment_frames: segment as usize,
            temporal_weight: number("temporal_weight", 0.0)? as f32,
            temporal_threshold: number("temporal_threshold", f64::from(DEFAULT_TEMPORAL_THRESHOLD))?
                as f32,
        })
    }

    fn style(&self, at: &str, m: &mut Map<String, Value>) -> Result<StyleSource, BatchError> {
        let given: Vec<&str> = ["style", "styles", "style_dir"]
            .into_iter()
            .filter(|k| m.contains_key(*k))
            .collect();
        match given.as_slice() {
            ["style"] => {
                let v = m.remove("style").expect("present");
                Ok(StyleSource::Sets(vec![self.paths(at, "style", &v)?]))
            }
            ["styles"] => {
                let v = m.remove("styles").expect("present");
                let Value::Array(items) = v else {
                    return Err(self.err(at, "`styles` must be a list (one job per element)"));
                };
                let sets = items
                    .iter()
                    .map(|item| self.paths(at, "styles", item))
                    .collect::<Result<Vec<_>, _>>()?;
                if sets.is_empty() {
                    return Err(self.err(at, "`styles` is empty"));
                }
                Ok(StyleSource::Sets(sets))
            }
            ["style_dir"] => {
                let v = m.remove("style_dir").expect("present");
                Ok(StyleSource::Dir(self.path(at, "style_dir", &v)?))
            }
            [] => Err(self.err(at, "no style: give `style`, `styles` or `style_dir`")),
            many => Err(self.err(at, format!("give one of {}, not several", many.join(", ")))),
        }
    }

    fn vary(&self, at: &str, v: Option<Value>) -> Result<Vec<(String, Vec<Value>)>, BatchError> {
        let Some(v) = v else {
            return Ok(Vec::new());
        };
        let Value::Object(m) = v else {
            return Err(self.err(
                at,
                "`vary` must be a table of lists, e.g. vary = { beta = [10, 100] }",
            ));
        };
        m.into_iter()
            .map(|(k, v)| match v {
                Value::Array(values) if !values.is_empty() => Ok((k, values)),
                _ => Err(self.err(at, format!("`vary.{k}` must be a non-empty list of values"))),
            })
            .collect()
    }

    /// A path value, resolved against the file's folder.
    fn path(&self, at: &str, key: &str, v: &Value) -> Result<PathBuf, BatchError> {
        match v {
            Value::String(s) if !s.is_empty() => Ok(self.base.join(s)),
            _ => Err(self.err(at, format!("`{key}` must be a path (a non-empty string)"))),
        }
    }

    /// One path or a non-empty list of paths.
    fn paths(&self, at: &str, key: &str, v: &Value) -> Result<Vec<PathBuf>, BatchError> {
        match v {
            Value::Array(items) if !items.is_empty() => {
                items.iter().map(|i| self.path(at, key, i)).collect()
            }
            Value::Array(_) => Err(self.err(at, format!("`{key}` is an empty list"))),
            other => Ok(vec![self.path(at, key, other)?]),
        }
    }
}

/// Whether `s` can name a folder on every system (letters, digits, `-`, `_`, `.`; not `.` or `..`).
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests;
