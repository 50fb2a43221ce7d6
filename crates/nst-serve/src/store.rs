//! The studio's folder: uploads, runs and their records. Every file the server reads or writes is named
//! here from a server-chosen id checked against a fixed pattern; no client-chosen path reaches the
//! filesystem, and symbolic links are never followed.
//!
//! ```text
//! OUT/uploads/u<16 hex>.<png|jpg|gif>    uploaded images
//! OUT/runs/r<6 digits>/studio.json       the run's settings, state and costs (RunInfo)
//! OUT/runs/r<6 digits>/result.png        the engine's result, checkpoint.json, intermediate images
//! OUT/runs/r<6 digits>/run.gif           the animation of the run
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::settings::Settings;
use crate::{Error, Result};

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Waiting in the queue.
    Queued,
    /// Iterating.
    Running,
    /// Paused between two iterations.
    Paused,
    /// Every iteration done.
    Done,
    /// Stopped by the user: the result so far is kept.
    Stopped,
    /// It failed; see [`RunInfo::error`].
    Failed,
}

/// One point of the cost plot.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CostPoint {
    /// Iterations done.
    pub iteration: usize,
    /// The weighted total.
    pub total: f64,
    /// The content cost (not multiplied by α).
    pub content: f64,
    /// The style cost (not multiplied by β).
    pub style: f64,
    /// The total-variation cost (not multiplied by its weight).
    pub tv: f64,
}

/// A run as the studio keeps it (`studio.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Its id (`r000001`).
    pub id: String,
    /// Its settings.
    pub settings: Settings,
    /// Where it stands.
    pub state: RunState,
    /// When it was created (seconds since the Unix epoch).
    pub created: u64,
    /// Seconds of optimization so far.
    pub seconds: f64,
    /// Iterations done.
    pub iteration: usize,
    /// Iterations asked for (grows with "continue").
    pub total: usize,
    /// The stage in progress and the number of stages.
    pub stage: [usize; 2],
    /// Every step's costs.
    pub costs: Vec<CostPoint>,
    /// Why it failed.
    pub error: Option<String>,
    /// Whether the next start resumes from the run's checkpoint.
    pub resume: bool,
}

/// The kinds of image a run can name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// A sample image, by file name.
    Sample(String),
    /// An upload, by id.
    Upload(String),
    /// A run's result, by run id.
    Run(String),
}

impl ImageRef {
    /// Parses `sample:NAME`, `upload:ID` or `run:ID`, checking the id's shape (not its existence).
    ///
    /// # Errors
    /// [`Error::BadRequest`] for anything else.
    pub fn parse(text: &str) -> Result<ImageRef> {
        let bad = || Error::BadRequest(format!("`{text}` names no image"));
        let (kind, name) = text.split_once(':').ok_or_else(bad)?;
        match kind {
            "sample" if is_plain_name(name) => Ok(ImageRef::Sample(name.to_owned())),
            "upload" if is_upload_id(name) => Ok(ImageRef::Upload(name.to_owned())),
            "run" if is_run_id(name) => Ok(ImageRef::Run(name.to_owned())),
            _ => Err(bad()),
        }
    }
}

/// `r` and six digits.
pub fn is_run_id(s: &str) -> bool {
    s.len() == 7 && s.starts_with('r') && s[1..].bytes().all(|b| b.is_ascii_digit())
}

/// `u`, sixteen lower-case hex digits, and `.png`, `.jpg` or `.gif`.
pub fn is_upload_id(s: &str) -> bool {
    let Some((stem, ext)) = s.split_once('.') else {
        return false;
    };
    stem.len() == 17
        && stem.starts_with('u')
        && stem[1..]
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && matches!(ext, "png" | "jpg" | "gif")
}

/// A file name of letters, digits, `_`, `-` and one inner `.`, no longer than 100 bytes.
fn is_plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && !s.contains("..")
}

/// The studio's folder.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    samples: Option<PathBuf>,
    sample_names: Vec<String>,
}

impl Store {
    /// Opens (creating) the folder `root` and lists the sample images of `samples`.
    ///
    /// # Errors
    /// [`Error::Io`] when the folders cannot be created or read.
    pub fn open(root: &Path, samples: Option<&Path>) -> Result<Store> {
        for dir in [root.join("uploads"), root.join("runs")] {
            fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        let root = fs::canonicalize(root).map_err(|e| Error::io(root, e))?;
        let mut sample_names = Vec::new();
        if let Some(dir) = samples {
            for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
                let entry = entry.map_err(|e| Error::io(dir, e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let ext = name.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
                let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
                if is_file && is_plain_name(&name) && matches!(ext.as_str(), "png" | "jpg" | "jpeg")
                {
                    sample_names.push(name);
                }
            }
            sample_names.sort();
        }
        Ok(Store {
            root,
            samples: samples.map(Path::to_owned),
            sample_names,
        })
    }

    /// The folder (canonical).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The sample images' names.
    pub fn samples(&self) -> &[String] {
        &self.sample_names
    }

    /// The folder of run `id` (an id from [`is_run_id`]).
    pub fn run_dir(&self, id: &str) -> PathBuf {
        debug_assert!(is_run_id(id));
        self.root.join("runs").join(id)
    }

    /// The folder of uploads.
    pub fn uploads(&self) -> PathBuf {
        self.root.join("uploads")
    }

    /// The file an image reference names, when it exists as a regular file (not a link).
    ///
    /// # Errors
    /// [`Error::NotFound`] otherwise.
    pub fn image_path(&self, r: &ImageRef) -> Result<PathBuf> {
        let path = match r {
            ImageRef::Sample(name) => match (&self.samples, self.sample_names.contains(name)) {
                (Some(dir), true) => dir.join(name),
                _ => return Err(Error::NotFound),
            },
            ImageRef::Upload(id) => self.uploads().join(id),
            ImageRef::Run(id) => self.run_dir(id).join("result.png"),
        };
        regular_file(&path)
    }

    /// A file of run `id` by its fixed name (`result.png`, `run.gif`).
    ///
    /// # Errors
    /// [`Error::NotFound`] when the id is malformed or the file is missing or a link.
    pub fn run_file(&self, id: &str, name: &'static str) -> Result<PathBuf> {
        if !is_run_id(id) {
            return Err(Error::NotFound);
        }
        regular_file(&self.run_dir(id).join(name))
    }

    /// Writes a run's record atomically.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn save(&self, info: &RunInfo) -> Result<()> {
        let dir = self.run_dir(&info.id);
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let path = dir.join("studio.json");
        let text = serde_json::to_vec_pretty(info).expect("a RunInfo serializes");
        nst_engine::image_io::write_atomically(&path, |f| {
            std::io::Write::write_all(f, &text).map_err(|e| e.to_string())
        })
        .map_err(|e| Error::Io {
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })
    }

    /// Every run record in the folder, oldest first; unreadable ones are skipped.
    pub fn load_all(&self) -> Vec<RunInfo> {
        let mut runs: Vec<RunInfo> = fs::read_dir(self.root.join("runs"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| is_run_id(&e.file_name().to_string_lossy()))
            .filter_map(|e| {
                let path = regular_file(&e.path().join("studio.json")).ok()?;
                serde_json::from_slice::<RunInfo>(&fs::read(path).ok()?).ok()
            })
            .filter(|r| is_run_id(&r.id))
            .collect();
        runs.sort_by(|a, b| a.id.cmp(&b.id));
        runs
    }
}

/// `path` when it is a regular file and not a symbolic link.
fn regular_file(path: &Path) -> Result<PathBuf> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_file() => Ok(path.to_owned()),
        _ => Err(Error::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_server_shaped_names_parse() {
        assert_eq!(
            ImageRef::parse("run:r000012").unwrap(),
            ImageRef::Run("r000012".into())
        );
        assert!(ImageRef::parse("upload:u0123456789abcdef.png").is_ok());
        for bad in [
            "run:../etc",
            "run:r00001",
            "upload:u0123456789abcdef.exe",
            "upload:../../u0123456789abcdef.png",
            "sample:../secret.png",
            "sample:/etc/passwd",
            "sample:..",
            "sample:a%2f..",
            "file:/etc/passwd",
            "",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad}");
        }
    }
}
