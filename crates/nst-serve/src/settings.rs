//! The settings of a studio run as the page edits them, and their translation into the engine's
//! [`RunSpec`]: every field is checked here, so that a bad form gives a clear `400`, never a panic.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use nst_engine::network::parse_layers;
use nst_engine::{InitKind, OptimizerKind, Preset, RunSpec};

/// The settings of one run: the images by their studio names (see [`crate::store`]) and the main
/// parameters. Missing fields take the defaults of [`Settings::defaults`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The content image: `sample:NAME`, `upload:ID` or `run:ID` (a run's result).
    pub content: String,
    /// The style images, named the same way.
    pub styles: Vec<String>,
    /// The styles' blend weights (empty: equal).
    pub style_blend: Vec<f32>,
    /// The recipe the other fields start from (the page fills the fields from it).
    pub preset: Preset,
    /// The working size's long side.
    pub max_size: u32,
    /// Coarse-to-fine stages (`single`, `auto`, `auto:MIN` or `256,512`).
    pub scales: String,
    /// Iterations.
    pub iterations: usize,
    /// Content weight α.
    pub alpha: f32,
    /// Style weight β.
    pub beta: f32,
    /// Total-variation weight.
    pub tv_weight: f32,
    /// Adam's learning rate.
    pub learning_rate: f32,
    /// The optimizer.
    pub optimizer: OptimizerKind,
    /// The start image.
    pub init: InitKind,
    /// Keep the content's colours (luminance-only transfer).
    pub preserve_colors: bool,
    /// The seed of the start noise.
    pub seed: u64,
    /// Content layers, as `nst stylize --content-layers`.
    pub content_layers: String,
    /// Style layers, as `nst stylize --style-layers`.
    pub style_layers: String,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings::defaults(Preset::Seed)
    }
}

impl Settings {
    /// The settings of `preset` (the seed program's for [`Preset::Seed`]), without images.
    pub fn defaults(preset: Preset) -> Settings {
        let mut s = RunSpec::new("", Vec::new(), "");
        preset.apply(&mut s);
        let layers = |v: &[nst_engine::network::LayerWeight]| {
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        Settings {
            content: String::new(),
            styles: Vec::new(),
            style_blend: Vec::new(),
            preset,
            max_size: s.max_size,
            scales: s.scales.to_string(),
            iterations: s.iterations,
            alpha: s.objective.alpha,
            beta: s.objective.beta,
            tv_weight: s.objective.tv_weight,
            learning_rate: s.learning_rate,
            optimizer: s.optimizer,
            init: s.init,
            preserve_colors: s.preserve_colors,
            seed: s.seed,
            content_layers: layers(&s.objective.content_layers),
            style_layers: layers(&s.objective.style_layers),
        }
    }

    /// The engine's specification: the preset's settings, then every field of `self`; images are the
    /// resolved paths, the outputs go to `out_dir`.
    ///
    /// # Errors
    /// A message naming the field, for a value out of range or contradicting another.
    pub fn to_spec(
        &self,
        content: PathBuf,
        styles: Vec<PathBuf>,
        weights: PathBuf,
        out_dir: PathBuf,
    ) -> Result<RunSpec, String> {
        let mut s = RunSpec::new(content, styles, weights);
        self.preset.apply(&mut s);
        if !self.style_blend.is_empty() {
            s.style_blend = self.style_blend.clone();
        }
        s.max_size = self.max_size;
        s.scales = self.scales.parse().map_err(|e| format!("scales: {e}"))?;
        if self.iterations == 0 {
            return Err("iterations must be at least 1".into());
        }
        s.iterations = self.iterations;
        s.objective.alpha = self.alpha;
        s.objective.beta = self.beta;
        s.objective.tv_weight = self.tv_weight;
        s.learning_rate = self.learning_rate;
        s.optimizer = self.optimizer;
        s.init = self.init;
        s.preserve_colors = self.preserve_colors;
        s.seed = self.seed;
        s.objective.content_layers =
            parse_layers("content layers", &self.content_layers).map_err(|e| e.to_string())?;
        s.objective.style_layers =
            parse_layers("style layers", &self.style_layers).map_err(|e| e.to_string())?;
        s.output = out_dir.join("result.png");
        s.out_dir = out_dir;
        s.validate()?;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_seed_programs() {
        let d = Settings::default();
        assert_eq!((d.max_size, d.iterations), (400, 200));
        assert_eq!((d.alpha, d.beta, d.learning_rate), (10.0, 40.0, 2.0));
        assert_eq!(d.optimizer, OptimizerKind::Adam);
    }

    #[test]
    fn a_bad_field_is_a_message_naming_it() {
        let d = Settings {
            scales: "big".into(),
            ..Settings::default()
        };
        let e = d
            .to_spec("c.png".into(), vec!["s.png".into()], "w".into(), "o".into())
            .unwrap_err();
        assert!(e.starts_with("scales:"), "{e}");
        let d = Settings {
            iterations: 0,
            ..Settings::default()
        };
        let e = d
            .to_spec("c.png".into(), vec!["s.png".into()], "w".into(), "o".into())
            .unwrap_err();
        assert!(e.contains("iterations"), "{e}");
    }
}
