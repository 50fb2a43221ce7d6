//! Checkpoints: everything a run needs to continue bit for bit, in one JSON file written atomically.
//!
//! Format (`checkpoint.json`, `format` = [`FORMAT_VERSION`]): the run's [`RunSpec`], the iteration
//! reached, the stage of a coarse-to-fine run that the image belongs to, the image as the bit patterns of its `f32` values (`image_bits`, `[3, H, W]` row-major, so
//! that no decimal round trip can change a bit), the optimizer's serde state (`nst-optim` writes its
//! floats exactly), the seeded RNG's state, the metrics history (for `--plot`) and the seconds spent so
//! far; with `--average`, the moving average of the iterates in the same exact form. Version 1 files
//! (before stages) are read as stage 0 without an average.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use md5::{Digest as _, Md5};

use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

use crate::image_io::write_atomically;
use crate::record::Record;
use crate::spec::RunSpec;

/// Version of the checkpoint format.
pub const FORMAT_VERSION: u32 = 2;
/// The file name inside the output folder.
pub const FILE_NAME: &str = "checkpoint.json";

/// The optimizer's state, tagged by kind.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum OptimizerState {
    /// Adam.
    Adam(nst_optim::AdamState),
    /// L-BFGS.
    Lbfgs(nst_optim::LbfgsState),
}

/// A saved run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    /// [`FORMAT_VERSION`].
    pub format: u32,
    /// The program version that wrote it.
    pub version: String,
    /// The run's settings.
    pub settings: RunSpec,
    /// Iterations completed (over all stages).
    pub iteration: usize,
    /// The stage the image belongs to (0 for a single-scale run).
    #[serde(default)]
    pub stage: usize,
    /// `[3, H, W]` of the image.
    pub shape: [usize; 3],
    /// `f32::to_bits` of every pixel value, mean subtracted.
    pub image_bits: Vec<u32>,
    /// The optimizer.
    pub optimizer: OptimizerState,
    /// The RNG (it drew the start noise; kept so that any later draw continues the same stream).
    pub rng: Xoshiro256PlusPlus,
    /// Every metrics record so far.
    pub history: Vec<Record>,
    /// Seconds of optimization so far.
    pub seconds: f64,
    /// The moving average of the iterates (`--average`), when there is one.
    #[serde(default)]
    pub average: Option<AverageState>,
    /// MD5 of each other field's JSON, written by [`Checkpoint::save`] and checked by
    /// [`Checkpoint::load`] (format 2): an edited or damaged field is an error that names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksums: Option<BTreeMap<String, String>>,
}

/// The state of the moving average of the iterates: `f32::to_bits` of the (uncorrected) average, and
/// how many iterates it has seen in this stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AverageState {
    /// The uncorrected average, as bit patterns.
    pub bits: Vec<u32>,
    /// Iterates averaged so far in this stage.
    pub count: u64,
}

/// Errors of checkpoint I/O.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// Cannot read.
    #[error("cannot read checkpoint {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not a checkpoint of ours.
    #[error("{} is not a valid nst checkpoint: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Cannot write.
    #[error(transparent)]
    Write(#[from] crate::image_io::ImageError),
}

impl Checkpoint {
    /// The image values.
    pub fn image(&self) -> Vec<f32> {
        self.image_bits.iter().map(|&b| f32::from_bits(b)).collect()
    }

    /// Writes it atomically to `path`.
    ///
    /// # Errors
    /// [`CheckpointError::Write`].
    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        let mut value = serde_json::to_value(self)
            .expect("a checkpoint serializes (no maps with non-string keys)");
        let sums = field_checksums(&value);
        value["checksums"] = serde_json::to_value(sums).expect("a map of strings serializes");
        let json = serde_json::to_vec(&value).expect("a JSON value serializes");
        write_atomically(path, |f| {
            use std::io::Write as _;
            f.write_all(&json).map_err(|e| e.to_string())
        })?;
        Ok(())
    }

    /// Reads `path`, or `path/checkpoint.json` when `path` is a folder.
    ///
    /// # Errors
    /// [`CheckpointError::Read`] or [`CheckpointError::Invalid`].
    pub fn load(path: &Path) -> Result<(Checkpoint, PathBuf), CheckpointError> {
        let file = if path.is_dir() {
            path.join(FILE_NAME)
        } else {
            path.to_owned()
        };
        let bytes = std::fs::read(&file).map_err(|source| CheckpointError::Read {
            path: file.clone(),
            source,
        })?;
        Ok((Checkpoint::from_bytes(&bytes, &file)?, file))
    }

    /// Parses and checks a checkpoint's bytes (as [`Checkpoint::load`]); `path` only names the file in
    /// errors.
    ///
    /// # Errors
    /// [`CheckpointError::Invalid`] for anything that is not an intact checkpoint of ours.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Checkpoint, CheckpointError> {
        let invalid = |reason: String| CheckpointError::Invalid {
            path: path.to_owned(),
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
        let c: Checkpoint =
            serde_json::from_value(value.clone()).map_err(|e| invalid(e.to_string()))?;
        if !(1..=FORMAT_VERSION).contains(&c.format) {
            return Err(invalid(format!(
                "format {} (this program reads {FORMAT_VERSION})",
                c.format
            )));
        }
        let n_values = c.shape.iter().try_fold(1_usize, |n, &d| n.checked_mul(d));
        if c.shape[0] != 3 || n_values != Some(c.image_bits.len()) {
            return Err(invalid(format!(
                "the image has {} values, not the {:?} its shape says",
                c.image_bits.len(),
                c.shape
            )));
        }
        if c.format >= 2 {
            check_sums(&value, c.checksums.as_ref()).map_err(invalid)?;
        }
        c.check_consistency().map_err(invalid)?;
        Ok(c)
    }

    /// The checks a checksum cannot make: finite values, and the optimizer state in agreement with the
    /// settings and the iteration (so that no edited setting is silently ignored).
    fn check_consistency(&self) -> Result<(), String> {
        if let Some(i) = self
            .image_bits
            .iter()
            .position(|b| !f32::from_bits(*b).is_finite())
        {
            return Err(format!("`image_bits`: value {i} is not a finite number"));
        }
        match (&self.optimizer, self.settings.optimizer) {
            (OptimizerState::Adam(s), crate::OptimizerKind::Adam) => {
                if s.config().learning_rate != self.settings.learning_rate {
                    return Err(format!(
                        "`settings.learning_rate` is {} but the Adam state was made with {}",
                        self.settings.learning_rate,
                        s.config().learning_rate
                    ));
                }
                if s.step() != self.iteration as u64 {
                    return Err(format!(
                        "`iteration` is {} but the Adam state has taken {} steps",
                        self.iteration,
                        s.step()
                    ));
                }
            }
            (OptimizerState::Lbfgs(_), crate::OptimizerKind::Lbfgs) => {}
            (_, kind) => {
                return Err(format!(
                    "`settings.optimizer` is {kind} but the optimizer state is of the other kind"
                ));
            }
        }
        Ok(())
    }
}

/// MD5 of the JSON of every top-level field but `checksums`, in hex.
fn field_checksums(value: &serde_json::Value) -> BTreeMap<String, String> {
    let Some(fields) = value.as_object() else {
        return BTreeMap::new();
    };
    fields
        .iter()
        .filter(|(k, _)| k.as_str() != "checksums")
        .map(|(k, v)| {
            let bytes = serde_json::to_vec(v).expect("a JSON value serializes");
            let digest = Md5::digest(&bytes);
            let hex = digest.iter().map(|b| format!("{b:02x}")).collect();
            (k.clone(), hex)
        })
        .collect()
}

/// Compares the stored checksums with the fields: every field must have its sum, and match it.
fn check_sums(
    value: &serde_json::Value,
    stored: Option<&BTreeMap<String, String>>,
) -> Result<(), String> {
    let Some(stored) = stored else {
        return Err("it has no `checksums` (a format 2 checkpoint always has them)".into());
    };
    let now = field_checksums(value);
    let bad: Vec<&str> = now
        .iter()
        .filter(|(k, v)| stored.get(*k) != Some(v))
        .map(|(k, _)| k.as_str())
        .chain(
            stored
                .keys()
                .filter(|k| !now.contains_key(*k))
                .map(String::as_str),
        )
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the field(s) `{}` do not match their checksums: the file was edited or damaged (start a new run, or resume an intact checkpoint)",
            bad.join("`, `")
        ))
    }
}

#[cfg(test)]
mod tests;
