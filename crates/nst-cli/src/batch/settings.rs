//! A job's `nst stylize` settings in a batch file: the keys are the flags' names with `_` for `-`
//! (`max_size`, `learning_rate`), checked by serde and then by the same code as the flags
//! ([`crate::args::from_args`]), so that a batch job and `nst stylize` mean the same thing.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::cli::{
    ColorMatchKind, ColorSpace, DeviceKind, InitKind, OptimizerKind, PoolingKind, PreserveColors,
    Preset, Scales, StyleLossKind, StylizeArgs,
};

/// The settings a batch job may give (every one optional; the defaults are `nst stylize`'s).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `--iterations`.
    pub iterations: Option<usize>,
    /// `--print-every`.
    pub print_every: Option<usize>,
    /// `--optimizer`.
    pub optimizer: Option<String>,
    /// `--learning-rate`.
    pub learning_rate: Option<f32>,
    /// `--alpha`.
    pub alpha: Option<f32>,
    /// `--beta`.
    pub beta: Option<f32>,
    /// `--tv-weight`.
    pub tv_weight: Option<f32>,
    /// `--noise-ratio`.
    pub noise_ratio: Option<f32>,
    /// `--init`.
    pub init: Option<String>,
    /// `--init-image` (relative to the batch file's folder).
    pub init_image: Option<PathBuf>,
    /// `--seed`.
    pub seed: Option<u64>,
    /// `--max-size`.
    pub max_size: Option<u32>,
    /// `--size` (`WxH`).
    pub size: Option<String>,
    /// `--upscale`.
    pub upscale: Option<bool>,
    /// `--pooling`.
    pub pooling: Option<String>,
    /// `--content-layers`.
    pub content_layers: Option<String>,
    /// `--style-layers`.
    pub style_layers: Option<String>,
    /// `--preserve-colors`: `true` (luminance), `false`, `"luminance"` or `"match"`.
    pub preserve_colors: Option<BoolOrName>,
    /// `--color-match`.
    pub color_match: Option<String>,
    /// `--style-loss`.
    pub style_loss: Option<String>,
    /// `--normalize-gradients`.
    pub normalize_gradients: Option<bool>,
    /// `--device`.
    pub device: Option<String>,
    /// `--checkpoint-every` (default in a batch: [`DEFAULT_CHECKPOINT_EVERY`]).
    pub checkpoint_every: Option<usize>,
    /// `--scales`.
    pub scales: Option<String>,
    /// `--scale-iterations`.
    pub scale_iterations: Option<usize>,
    /// `--style-scale`: one number, or one per style image.
    pub style_scale: Option<OneOrMany>,
    /// `--style-blend`.
    pub style_blend: Option<Vec<f32>>,
    /// `--average`.
    pub average: Option<f32>,
    /// `--preset`.
    pub preset: Option<String>,
    /// `--original-colors`.
    pub original_colors: Option<bool>,
    /// `--color-space`.
    pub color_space: Option<String>,
    /// `--bit-depth`.
    pub bit_depth: Option<u8>,
}

/// A switch given as a boolean or by the name of its method.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum BoolOrName {
    /// `true` or `false`.
    Bool(bool),
    /// A method's name.
    Name(String),
}

/// One number or a list of numbers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One value for all.
    One(f32),
    /// One per item.
    Many(Vec<f32>),
}

/// How often a batch job writes its checkpoint when the file does not say: a worker killed without
/// warning (a node lost, a time limit) loses at most this many iterations.
pub const DEFAULT_CHECKPOINT_EVERY: usize = 50;

/// Keys people may expect but that the batch decides, with why.
const BATCH_OWNED: &[(&str, &str)] = &[
    (
        "out_dir",
        "each job writes to its own folder under the batch's out_dir (top level, or --out-dir)",
    ),
    (
        "output",
        "each job's result is <out_dir>/<job id>/result.png",
    ),
    (
        "weights",
        "the model is set for the whole batch (top-level `weights`, --weights or NST_WEIGHTS)",
    ),
    (
        "resume",
        "an interrupted job resumes from its checkpoint by itself",
    ),
    (
        "metrics",
        "each job's metrics are in its run record and checkpoint",
    ),
    ("animate", "not available in a batch"),
    ("plot", "not available in a batch"),
];

impl Settings {
    /// Checks a merged table of settings.
    ///
    /// # Errors
    /// A message naming the unknown key or the value of the wrong type.
    pub fn from_map(map: &Map<String, Value>) -> Result<Settings, String> {
        if let Some((key, why)) = BATCH_OWNED.iter().find(|(k, _)| map.contains_key(*k)) {
            return Err(format!("`{key}` cannot be set per job: {why}"));
        }
        Settings::deserialize(Value::Object(map.clone())).map_err(|e| e.to_string())
    }

    /// The `nst stylize` flags these settings stand for, with `content`, `styles` and `weights`;
    /// a relative `init_image` is taken from `base`.
    ///
    /// # Errors
    /// A message naming the setting whose value is not one of its names.
    pub fn to_args(
        &self,
        content: &Path,
        styles: &[PathBuf],
        weights: &Path,
        base: &Path,
    ) -> Result<StylizeArgs, String> {
        Ok(StylizeArgs {
            content: Some(content.to_owned()),
            style: styles.to_vec(),
            weights: Some(weights.to_owned()),
            style_blend: self.style_blend.clone().unwrap_or_default(),
            iterations: self.iterations,
            print_every: self.print_every,
            optimizer: choice::<OptimizerKind>("optimizer", &self.optimizer)?,
            learning_rate: self.learning_rate,
            alpha: self.alpha,
            beta: self.beta,
            tv_weight: self.tv_weight,
            noise_ratio: self.noise_ratio,
            init: choice::<InitKind>("init", &self.init)?,
            init_image: self.init_image.as_ref().map(|p| base.join(p)),
            seed: self.seed,
            max_size: self.max_size,
            size: self.size.clone(),
            upscale: self.upscale.unwrap_or(false),
            pooling: choice::<PoolingKind>("pooling", &self.pooling)?,
            content_layers: self.content_layers.clone(),
            style_layers: self.style_layers.clone(),
            preserve_colors: match &self.preserve_colors {
                None | Some(BoolOrName::Bool(false)) => None,
                Some(BoolOrName::Bool(true)) => Some(PreserveColors::Luminance),
                Some(BoolOrName::Name(n)) => {
                    Some(n.parse().map_err(|e| format!("preserve_colors: {e}"))?)
                }
            },
            color_match: choice::<ColorMatchKind>("color_match", &self.color_match)?,
            style_loss: choice::<StyleLossKind>("style_loss", &self.style_loss)?,
            normalize_gradients: self.normalize_gradients,
            device: choice::<DeviceKind>("device", &self.device)?,
            checkpoint_every: Some(self.checkpoint_every.unwrap_or(DEFAULT_CHECKPOINT_EVERY)),
            scales: self
                .scales
                .as_deref()
                .map(str::parse::<Scales>)
                .transpose()
                .map_err(|e| format!("scales: {e}"))?,
            scale_iterations: self.scale_iterations,
            style_scale: match &self.style_scale {
                None => Vec::new(),
                Some(OneOrMany::One(f)) => vec![*f],
                Some(OneOrMany::Many(v)) => v.clone(),
            },
            average: self.average,
            preset: choice::<Preset>("preset", &self.preset)?,
            original_colors: self.original_colors.unwrap_or(false),
            color_space: choice::<ColorSpace>("color_space", &self.color_space)?,
            bit_depth: self.bit_depth,
            ..StylizeArgs::default()
        })
    }
}

/// A named choice (`adam`, `lbfgs`, …) from its text.
fn choice<T: std::str::FromStr<Err = String>>(
    key: &str,
    v: &Option<String>,
) -> Result<Option<T>, String> {
    v.as_deref()
        .map(str::parse::<T>)
        .transpose()
        .map_err(|e| format!("{key}: {e}"))
}

/// `nst stylize`'s messages name flags (`--noise-ratio`); a batch file names keys (`noise_ratio`).
pub fn flags_to_keys(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("--") {
        out.push_str(&rest[..at]);
        let flag = &rest[at + 2..];
        let end = flag
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
            .unwrap_or(flag.len());
        if end == 0 {
            out.push_str("--");
        } else {
            out.push_str(&flag[..end].replace('-', "_"));
        }
        rest = &flag[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not a table"),
        }
    }

    #[test]
    fn known_settings_are_read_with_their_types() {
        let s = Settings::from_map(&map(serde_json::json!({
            "iterations": 30, "beta": 100, "optimizer": "lbfgs", "style_scale": [0.5, 1.0], "upscale": true
        })))
        .unwrap();
        assert_eq!(s.iterations, Some(30));
        assert_eq!(s.beta, Some(100.0));
        assert_eq!(s.style_scale, Some(OneOrMany::Many(vec![0.5, 1.0])));
        let a = s
            .to_args(
                Path::new("c.png"),
                &[PathBuf::from("s.png")],
                Path::new("w.mat"),
                Path::new("."),
            )
            .unwrap();
        assert_eq!(a.optimizer, Some(OptimizerKind::Lbfgs));
        assert!(a.upscale);
        assert_eq!(a.checkpoint_every, Some(DEFAULT_CHECKPOINT_EVERY));
    }

    #[test]
    fn unknown_keys_wrong_types_and_batch_keys_are_refused_by_name() {
        let e = Settings::from_map(&map(serde_json::json!({"itertions": 3}))).unwrap_err();
        assert!(e.contains("itertions"), "{e}");
        let e = Settings::from_map(&map(serde_json::json!({"iterations": "many"}))).unwrap_err();
        assert!(e.contains("invalid type"), "{e}");
        let e = Settings::from_map(&map(serde_json::json!({"out_dir": "x"}))).unwrap_err();
        assert!(e.contains("`out_dir` cannot be set per job"), "{e}");
        let s = Settings::from_map(&map(serde_json::json!({"optimizer": "sgd"}))).unwrap();
        let e = s
            .to_args(Path::new("c"), &[], Path::new("w"), Path::new("."))
            .unwrap_err();
        assert!(
            e.starts_with("optimizer: `sgd` is not one of adam, lbfgs"),
            "{e}"
        );
    }

    #[test]
    fn flag_names_become_keys() {
        assert_eq!(
            flags_to_keys("--noise-ratio applies only to --init noise"),
            "noise_ratio applies only to init noise"
        );
        assert_eq!(flags_to_keys("a -- b"), "a -- b");
    }
}
