//! Every setting of a stylize run, resolved from the flags (defaults = the seed) and saved in
//! checkpoints and run records.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cli::{DeviceKind, InitKind, OptimizerKind, PoolingKind, StylizeArgs};
use crate::download::{DEFAULT_DIR, VGG19_FILE_NAME};
use crate::image_io::{MAX_PIXELS, MAX_SIDE, Size, SizeRule};
use crate::pipeline::{ObjectiveSpec, SEED_CONTENT_LAYERS, SEED_STYLE_LAYERS, parse_layers};

/// The seed's number of iterations.
pub const SEED_ITERATIONS: usize = 200;
/// The seed's print/save interval.
pub const SEED_PRINT_EVERY: usize = 20;
/// The seed's working size (long side).
pub const SEED_MAX_SIZE: u32 = 400;
/// The seed's noise ratio.
pub const SEED_NOISE_RATIO: f32 = 0.6;
/// The folder of bare file names that are not found (the seed's habit).
pub const IMAGES_DIR: &str = "images";

/// A run's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Content image.
    pub content: PathBuf,
    /// Style images.
    pub styles: Vec<PathBuf>,
    /// Their blend weights (normalized to sum 1).
    pub style_blend: Vec<f32>,
    /// The weights file.
    pub weights: PathBuf,
    /// Iterations.
    pub iterations: usize,
    /// Print/save interval (0: never).
    pub print_every: usize,
    /// Optimizer.
    pub optimizer: OptimizerKind,
    /// Adam's learning rate.
    pub learning_rate: f32,
    /// Layers and weights of the cost.
    pub objective: ObjectiveSpec,
    /// Noise share of the start image.
    pub noise_ratio: f32,
    /// Start image kind.
    pub init: InitKind,
    /// Start image file (overrides `init`).
    pub init_image: Option<PathBuf>,
    /// Seed of the start noise.
    pub seed: u64,
    /// `--max-size`.
    pub max_size: u32,
    /// `--size`.
    pub size: Option<Size>,
    /// `--upscale`.
    pub upscale: bool,
    /// Pooling override.
    pub pooling: PoolingKind,
    /// Luminance-only transfer.
    pub preserve_colors: bool,
    /// Device asked for.
    pub device: DeviceKind,
    /// Output folder.
    pub out_dir: PathBuf,
    /// Final image.
    pub output: PathBuf,
    /// `--metrics`.
    pub metrics: Option<PathBuf>,
    /// `--animate`.
    pub animate: Option<PathBuf>,
    /// `--plot`.
    pub plot: Option<PathBuf>,
    /// `--checkpoint-every`.
    pub checkpoint_every: usize,
}

impl Settings {
    /// The working-size rule.
    pub fn size_rule(&self) -> SizeRule {
        match self.size {
            Some(size) => SizeRule::Exact {
                size,
                upscale: self.upscale,
            },
            None => SizeRule::MaxSide {
                max: self.max_size,
                upscale: self.upscale,
            },
        }
    }

    /// Settings of a new run from the flags; defaults are the seed's.
    ///
    /// # Errors
    /// A message naming the flag for missing or contradicting flags and values out of range.
    pub fn from_args(a: &StylizeArgs) -> Result<Settings, String> {
        let content = a
            .content
            .clone()
            .ok_or("--content is required (or --resume a checkpoint)")?;
        if a.style.is_empty() {
            return Err("--style is required (give it once per style image)".into());
        }
        let styles = a.style.clone();
        let style_blend = if a.style_blend.is_empty() {
            vec![1.0; styles.len()]
        } else {
            a.style_blend.clone()
        };
        if style_blend.len() != styles.len() {
            return Err(format!(
                "--style-blend has {} weights but {} --style images were given",
                style_blend.len(),
                styles.len()
            ));
        }
        if style_blend.iter().any(|w| !(w.is_finite() && *w >= 0.0))
            || style_blend.iter().sum::<f32>() <= 0.0
        {
            return Err("--style-blend weights must be finite, ≥ 0 and not all 0".into());
        }
        let objective = ObjectiveSpec {
            content_layers: parse_layers(
                "--content-layers",
                a.content_layers.as_deref().unwrap_or(SEED_CONTENT_LAYERS),
            )
            .map_err(|e| e.to_string())?,
            style_layers: parse_layers(
                "--style-layers",
                a.style_layers.as_deref().unwrap_or(SEED_STYLE_LAYERS),
            )
            .map_err(|e| e.to_string())?,
            alpha: a.alpha.unwrap_or(10.0),
            beta: a.beta.unwrap_or(40.0),
            tv_weight: a.tv_weight.unwrap_or(0.0),
        };
        for (flag, v) in [
            ("--alpha", objective.alpha),
            ("--beta", objective.beta),
            ("--tv-weight", objective.tv_weight),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{flag} must be a finite number ≥ 0, not {v}"));
            }
        }
        let learning_rate = a.learning_rate.unwrap_or(2.0);
        if !(learning_rate.is_finite() && learning_rate > 0.0) {
            return Err(format!(
                "--learning-rate must be a finite number > 0, not {learning_rate}"
            ));
        }
        let optimizer = a.optimizer.unwrap_or(OptimizerKind::Adam);
        if optimizer == OptimizerKind::Lbfgs && a.learning_rate.is_some() {
            return Err("--learning-rate applies to --optimizer adam; L-BFGS chooses its steps by line search".into());
        }
        let noise_ratio = a.noise_ratio.unwrap_or(SEED_NOISE_RATIO);
        if !(0.0..=1.0).contains(&noise_ratio) {
            return Err(format!(
                "--noise-ratio must be between 0 and 1, not {noise_ratio}"
            ));
        }
        let init = a.init.unwrap_or(InitKind::Noise);
        if a.noise_ratio.is_some() && (init != InitKind::Noise || a.init_image.is_some()) {
            return Err("--noise-ratio applies only to --init noise".into());
        }
        if a.init.is_some() && a.init_image.is_some() {
            return Err("--init and --init-image contradict each other: give one".into());
        }
        let size = a
            .size
            .as_deref()
            .map(str::parse::<Size>)
            .transpose()
            .map_err(|e| format!("--size: {e}"))?;
        if let Some(size) = size {
            check_working_size(size)?;
        }
        let max_size = a.max_size.unwrap_or(SEED_MAX_SIZE);
        if max_size == 0 || max_size > MAX_SIDE {
            return Err(format!(
                "--max-size must be between 1 and {MAX_SIDE}, not {max_size}"
            ));
        }
        check_iterations(a.iterations)?;
        let out_dir = a.out_dir.clone().unwrap_or_else(|| PathBuf::from("output"));
        let output = a
            .output
            .clone()
            .unwrap_or_else(|| out_dir.join("result.png"));
        Ok(Settings {
            content,
            styles,
            style_blend,
            weights: a.weights.clone().unwrap_or_else(default_weights),
            iterations: a.iterations.unwrap_or(SEED_ITERATIONS),
            print_every: a.print_every.unwrap_or(SEED_PRINT_EVERY),
            optimizer,
            learning_rate,
            objective,
            noise_ratio,
            init,
            init_image: a.init_image.clone(),
            seed: a.seed.unwrap_or(0),
            max_size,
            size,
            upscale: a.upscale,
            pooling: a.pooling.unwrap_or(PoolingKind::Avg),
            preserve_colors: a.preserve_colors,
            device: a.device.unwrap_or(DeviceKind::Cpu),
            out_dir,
            output,
            metrics: a.metrics.clone(),
            animate: a.animate.clone(),
            plot: a.plot.clone(),
            checkpoint_every: a.checkpoint_every.unwrap_or(0),
        })
    }

    /// A checkpoint's settings with the flags a resumed run may change applied (iterations, print
    /// interval, outputs, checkpoints, device, weights path).
    ///
    /// # Errors
    /// A message naming the first flag that would change the optimization itself.
    pub fn resumed(mut self, a: &StylizeArgs) -> Result<Settings, String> {
        let fixed: [(&str, bool); 19] = [
            ("--content", a.content.is_some()),
            ("--style", !a.style.is_empty()),
            ("--style-blend", !a.style_blend.is_empty()),
            ("--optimizer", a.optimizer.is_some()),
            ("--learning-rate", a.learning_rate.is_some()),
            ("--alpha", a.alpha.is_some()),
            ("--beta", a.beta.is_some()),
            ("--tv-weight", a.tv_weight.is_some()),
            ("--noise-ratio", a.noise_ratio.is_some()),
            ("--init", a.init.is_some()),
            ("--init-image", a.init_image.is_some()),
            ("--seed", a.seed.is_some()),
            ("--max-size", a.max_size.is_some()),
            ("--size", a.size.is_some()),
            ("--upscale", a.upscale),
            ("--pooling", a.pooling.is_some()),
            ("--content-layers", a.content_layers.is_some()),
            ("--style-layers", a.style_layers.is_some()),
            ("--preserve-colors", a.preserve_colors),
        ];
        if let Some((flag, _)) = fixed.iter().find(|(_, given)| *given) {
            return Err(format!(
                "{flag} cannot be changed when resuming: the checkpoint's settings are used (start a new run to change it)"
            ));
        }
        check_iterations(a.iterations)?;
        if let Some(n) = a.iterations {
            self.iterations = n;
        }
        if let Some(k) = a.print_every {
            self.print_every = k;
        }
        if let Some(d) = &a.out_dir {
            self.out_dir = d.clone();
            if a.output.is_none() {
                self.output = d.join("result.png");
            }
        }
        if let Some(o) = &a.output {
            self.output = o.clone();
        }
        if a.metrics.is_some() {
            self.metrics = a.metrics.clone();
        }
        if a.animate.is_some() {
            self.animate = a.animate.clone();
        }
        if a.plot.is_some() {
            self.plot = a.plot.clone();
        }
        if let Some(k) = a.checkpoint_every {
            self.checkpoint_every = k;
        }
        if let Some(d) = a.device {
            self.device = d;
        }
        if let Some(w) = &a.weights {
            self.weights = w.clone();
        }
        self.validate()?;
        Ok(self)
    }

    /// Checks what the run relies on and [`Settings::from_args`] guarantees, for settings read from a
    /// file (a checkpoint can be edited by hand).
    ///
    /// # Errors
    /// A message naming the first setting out of range.
    pub fn validate(&self) -> Result<(), String> {
        if self.styles.is_empty() {
            return Err("no style image".into());
        }
        if self.style_blend.len() != self.styles.len()
            || self
                .style_blend
                .iter()
                .any(|w| !(w.is_finite() && *w >= 0.0))
            || self.style_blend.iter().sum::<f32>() <= 0.0
        {
            return Err(format!(
                "{} style blend weights for {} style images (finite, ≥ 0, not all 0)",
                self.style_blend.len(),
                self.styles.len()
            ));
        }
        let o = &self.objective;
        for (what, layers) in [("content", &o.content_layers), ("style", &o.style_layers)] {
            if layers.is_empty() {
                return Err(format!("no {what} layer"));
            }
            if let Some(l) = layers
                .iter()
                .find(|l| !(l.weight.is_finite() && l.weight >= 0.0))
            {
                return Err(format!("{what} layer {} has weight {}", l.name, l.weight));
            }
        }
        for (what, v) in [
            ("alpha", o.alpha),
            ("beta", o.beta),
            ("tv weight", o.tv_weight),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{what} {v} (finite, ≥ 0)"));
            }
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(format!(
                "learning rate {} (finite, > 0)",
                self.learning_rate
            ));
        }
        if !(0.0..=1.0).contains(&self.noise_ratio) {
            return Err(format!("noise ratio {} (0 to 1)", self.noise_ratio));
        }
        if self.max_size == 0 || self.iterations == 0 {
            return Err("max size and iterations must be at least 1".into());
        }
        Ok(())
    }
}

/// A working size within the limits of decoded images (so that no size computation can overflow).
///
/// # Errors
/// A message naming `--size`.
pub fn check_working_size(size: Size) -> Result<(), String> {
    if size.width > MAX_SIDE
        || size.height > MAX_SIDE
        || u64::from(size.width) * u64::from(size.height) > MAX_PIXELS
    {
        return Err(format!(
            "--size {size} is larger than {MAX_SIDE} pixels on a side or {} MP",
            MAX_PIXELS / (1024 * 1024)
        ));
    }
    Ok(())
}

/// `--iterations 0` would only write the start image under the result's name: refuse it.
fn check_iterations(n: Option<usize>) -> Result<(), String> {
    if n == Some(0) {
        return Err("--iterations must be at least 1 (--init content writes the content image as the start)".into());
    }
    Ok(())
}

/// `pretrained-model/imagenet-vgg-verydeep-19.mat`.
pub fn default_weights() -> PathBuf {
    Path::new(DEFAULT_DIR).join(VGG19_FILE_NAME)
}

/// `path` if it exists; else, for a bare file name, `images/<name>` if that exists (as the seed did);
/// else `path` unchanged (the caller's error then names it).
pub fn find_image(path: &Path) -> PathBuf {
    if path.exists() {
        return path.to_owned();
    }
    let bare = path.components().count() == 1;
    let candidate = Path::new(IMAGES_DIR).join(path);
    if bare && candidate.exists() {
        candidate
    } else {
        path.to_owned()
    }
}

#[cfg(test)]
mod tests;
