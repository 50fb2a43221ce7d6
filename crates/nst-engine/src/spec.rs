//! The run specification: every setting of a style-transfer run, plain and serde-able, with the defaults
//! of the original TensorFlow course program (400 px, 200 Adam iterations at learning rate 2, α = 10,
//! β = 40, average pooling, a 60 % noise start). Saved in checkpoints and run records.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::image_io::{MAX_PIXELS, MAX_SIDE, Size, SizeRule};
use crate::objective::ObjectiveSpec;

/// The default number of iterations (of the first scale).
pub const DEFAULT_ITERATIONS: usize = 200;
/// The default print/save interval.
pub const DEFAULT_PRINT_EVERY: usize = 20;
/// The default working size (long side).
pub const DEFAULT_MAX_SIZE: u32 = 400;
/// The default noise share of the start image.
pub const DEFAULT_NOISE_RATIO: f32 = 0.6;
/// The default learning rate of Adam, in pixel units (0–255).
pub const DEFAULT_LEARNING_RATE: f32 = 2.0;
/// The smallest long side of `--scales auto`.
pub const DEFAULT_MIN_SCALE: u32 = 256;

/// Declares a setting with a fixed set of lower-case names: serde, [`FromStr`] and [`fmt::Display`]
/// use the same names, and `NAMES` lists them (for command-line parsers).
macro_rules! choice {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// Every accepted name, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($text),+];
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!("`{s}` is not one of {}", Self::NAMES.join(", "))),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self { $($name::$variant => $text,)+ })
            }
        }
    };
}

choice! {
    /// The optimizer.
    OptimizerKind {
        /// Adam (Kingma & Ba 2015), the default.
        Adam => "adam",
        /// L-BFGS with a line search (as Gatys et al.).
        Lbfgs => "lbfgs",
    }
}

choice! {
    /// The start image.
    InitKind {
        /// `noise_ratio·U(−20, 20) + (1 − noise_ratio)·content` (the default).
        Noise => "noise",
        /// The content image.
        Content => "content",
        /// `U(−20, 20)` only.
        Random => "random",
        /// The (first) style image, resized to the working size.
        Style => "style",
    }
}

choice! {
    /// Pooling in the network.
    PoolingKind {
        /// Average pooling (the default, and Gatys et al.).
        Avg => "avg",
        /// Max pooling (as trained).
        Max => "max",
        /// Whatever the model file says.
        File => "file",
    }
}

choice! {
    /// The compute device.
    DeviceKind {
        /// The CPU.
        Cpu => "cpu",
        /// An NVIDIA GPU through cuBLAS (needs the `cuda` feature).
        Cuda => "cuda",
        /// The GPU if compiled in and usable, else the CPU.
        Auto => "auto",
    }
}

choice! {
    /// A recipe of another tool: the settings it starts from (explicit settings override them).
    Preset {
        /// The course program this project replaces (the defaults of [`RunSpec::new`]).
        Seed => "seed",
        /// Gatys, Ecker & Bethge 2016: L-BFGS from the content image, content `½·Σ(F − P)²` at
        /// `relu4_2`, style `1/(4·N²·M²)·Σ(G − A)²` at `relu1_1 … relu5_1` weighted 1/5, α/β = 10⁻³,
        /// average pooling, 500 iterations at 512 px.
        Gatys => "gatys",
        /// jcjohnson/neural-style's defaults: content weight 5 at `relu4_2`, style weight 100 at
        /// `relu1_1 … relu5_1` (1 each), mean-squared-error content and Gram (Gram divided by
        /// `C·H·W`, then the mean of the squared differences), TV 10⁻³ in its convention (its TV gradient is `strength·Δ`, that of `½·Σ Δ²`; 5·10⁻⁴ on this crate's `Σ Δ²`), L-BFGS, 1000 iterations, max
        /// pooling, random start, 512 px.
        Jcjohnson => "jcjohnson",
        /// In the manner of crowsonkb's style-transfer-pytorch: the 2-Wasserstein style loss, style
        /// layers `relu1_1 … relu5_1` weighted 256:64:16:4:1 (normalized), content `relu4_2` (mean
        /// squared error) at α = 0.015 against β = 1, Adam at 5.1 (0.02 of the 0–1 range) from
        /// the content image, coarse to fine from 128 px (`--scales auto:128`) to 512 px, 1000
        /// iterations on the first scale and 500 on each later one, iterate averaging at 0.99, max
        /// pooling.
        W2 => "w2",
    }
}

choice! {
    /// Which statistics of a layer's features the style cost matches (`--style-loss`).
    #[derive(Default)]
    StyleLossKind {
        /// The Gram matrix, normalized by the style norm (Gatys et al.; the default).
        #[default]
        Gram => "gram",
        /// The per-channel mean and the covariance (`nst_costs::mean_cov_loss`).
        MeanCov => "mean-cov",
        /// The 2-Wasserstein distance between Gaussian fits of the features (`nst_costs::w2_loss`).
        W2 => "w2",
    }
}

choice! {
    /// How a front end asks to keep the content's colours (`--preserve-colors`): by luminance
    /// ([`RunSpec::preserve_colors`]) or by matching the style's colours ([`RunSpec::color_match`]).
    PreserveColors {
        /// Style on luminance only.
        Luminance => "luminance",
        /// The style images' colours matched to the content's.
        Match => "match",
    }
}

choice! {
    /// How `--preserve-colors match` maps the style image's colours onto the content's (see
    /// `nst_costs::color::ColorMatch`).
    ColorMatchKind {
        /// Cholesky factors (Gatys et al. 2016, `A_chol`).
        Chol => "chol",
        /// Symmetric square roots of both covariances (Image Analogies; Gatys et al. 2016, `A_IA`).
        Pca => "pca",
        /// The symmetric (optimal-transport) map.
        Sym => "sym",
    }
}

impl ColorMatchKind {
    /// The `nst_costs` method.
    pub fn method(self) -> nst_costs::color::ColorMatch {
        match self {
            ColorMatchKind::Chol => nst_costs::color::ColorMatch::Cholesky,
            ColorMatchKind::Pca => nst_costs::color::ColorMatch::Pca,
            ColorMatchKind::Sym => nst_costs::color::ColorMatch::Symmetric,
        }
    }
}

impl Preset {
    /// Sets `spec`'s settings to this recipe's (inputs, outputs and the device are left alone).
    pub fn apply(self, spec: &mut RunSpec) {
        use crate::network::parse_layers;
        use crate::objective::{ContentNormKind, StyleNormKind};
        let layers = |flag, text| parse_layers(flag, text).expect("a valid constant");
        match self {
            Preset::Seed => {}
            Preset::Gatys => {
                spec.optimizer = OptimizerKind::Lbfgs;
                spec.init = InitKind::Content;
                spec.iterations = 500;
                spec.print_every = 50;
                spec.max_size = 512;
                spec.pooling = PoolingKind::Avg;
                spec.objective = ObjectiveSpec {
                    content_layers: layers("--content-layers", "relu4_2:1"),
                    style_layers: layers("--style-layers", crate::network::DEFAULT_STYLE_LAYERS),
                    alpha: 1.0,
                    beta: 1.0e3,
                    tv_weight: 0.0,
                    content_norm: ContentNormKind::Half,
                    style_norm: StyleNormKind::Gatys,
                    ..ObjectiveSpec::course()
                };
            }
            Preset::Jcjohnson => {
                spec.optimizer = OptimizerKind::Lbfgs;
                spec.init = InitKind::Random;
                spec.iterations = 1000;
                spec.print_every = 50;
                spec.max_size = 512;
                spec.pooling = PoolingKind::Max;
                spec.objective = ObjectiveSpec {
                    content_layers: layers("--content-layers", "relu4_2:1"),
                    style_layers: layers(
                        "--style-layers",
                        "relu1_1:1,relu2_1:1,relu3_1:1,relu4_1:1,relu5_1:1",
                    ),
                    alpha: 5.0,
                    beta: 100.0,
                    tv_weight: 5.0e-4,
                    content_norm: ContentNormKind::Mean,
                    style_norm: StyleNormKind::MeanGram,
                    ..ObjectiveSpec::course()
                };
            }
            Preset::W2 => w2_preset(spec),
        }
    }
}

/// [`Preset::W2`]'s settings.
fn w2_preset(spec: &mut RunSpec) {
    use crate::network::parse_layers;
    use crate::objective::{ContentNormKind, StyleLossKind};
    let layers = |flag, text| parse_layers(flag, text).expect("a valid constant");
    spec.optimizer = OptimizerKind::Adam;
    spec.learning_rate = 0.02 * 255.0;
    spec.init = InitKind::Content;
    spec.iterations = 1000;
    spec.scale_iterations = Some(500);
    spec.scales = Scales::Auto { min: 128 };
    spec.average = Some(0.99);
    spec.print_every = 100;
    spec.max_size = 512;
    spec.pooling = PoolingKind::Max;
    let total = 256.0 + 64.0 + 16.0 + 4.0 + 1.0;
    let style = format!(
        "relu1_1:{},relu2_1:{},relu3_1:{},relu4_1:{},relu5_1:{}",
        256.0 / total,
        64.0 / total,
        16.0 / total,
        4.0 / total,
        1.0 / total
    );
    spec.objective = ObjectiveSpec {
        content_layers: layers("--content-layers", "relu4_2:1"),
        style_layers: layers("--style-layers", &style),
        alpha: 0.015,
        beta: 1.0,
        tv_weight: 0.0,
        content_norm: ContentNormKind::Mean,
        style_loss: StyleLossKind::W2,
        ..ObjectiveSpec::course()
    };
}

/// The scales of a coarse-to-fine run: the long sides of the stages before the final one, which is
/// always the working size.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scales {
    /// One stage at the working size (the default).
    #[default]
    Single,
    /// Stages whose long sides step by ×√2 down from the working size's, as long as they are at least
    /// `min` pixels (`auto` = `auto:256`).
    Auto {
        /// The smallest long side.
        min: u32,
    },
    /// These long sides, strictly increasing, then the working size (a last entry equal to the working
    /// size's long side is that final stage).
    List(Vec<u32>),
}

impl FromStr for Scales {
    type Err = String;
    /// `single`, `auto`, `auto:MIN` or a comma-separated list of long sides (`256,512`).
    fn from_str(s: &str) -> Result<Scales, String> {
        let s = s.trim();
        let number = |v: &str| {
            v.trim()
                .parse::<u32>()
                .map_err(|_| format!("`{v}` is not a whole number of pixels"))
        };
        match s {
            "single" | "1" => Ok(Scales::Single),
            "auto" => Ok(Scales::Auto {
                min: DEFAULT_MIN_SCALE,
            }),
            _ => match s.strip_prefix("auto:") {
                Some(min) => Ok(Scales::Auto { min: number(min)? }),
                None => s
                    .split(',')
                    .map(number)
                    .collect::<Result<Vec<_>, _>>()
                    .map(Scales::List),
            },
        }
    }
}

impl fmt::Display for Scales {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scales::Single => f.write_str("single"),
            Scales::Auto { min } => write!(f, "auto:{min}"),
            Scales::List(v) => {
                let v: Vec<String> = v.iter().map(u32::to_string).collect();
                f.write_str(&v.join(","))
            }
        }
    }
}

/// Every setting of a run. [`RunSpec::new`] gives the defaults; fields are public so that a front end
/// fills them from its own flags or forms, then [`RunSpec::validate`] checks them (the engine validates
/// again before it starts).
///
/// Setting names in error messages are the `nst stylize` flags that set them (`--alpha` for
/// `objective.alpha`), since that is where most people meet them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    /// Content image.
    pub content: PathBuf,
    /// Style images.
    pub styles: Vec<PathBuf>,
    /// Their blend weights (normalized to sum 1).
    pub style_blend: Vec<f32>,
    /// The VGG `.mat` file.
    pub weights: PathBuf,
    /// Iterations of the first (or only) stage.
    pub iterations: usize,
    /// Print/save interval (0: never), in iterations counted over all stages.
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
    /// Longest side of the working size.
    pub max_size: u32,
    /// Exact working size (overrides `max_size`).
    pub size: Option<Size>,
    /// Allow a working size larger than the content image.
    pub upscale: bool,
    /// Pooling override.
    pub pooling: PoolingKind,
    /// Luminance-only transfer (YIQ), as Gatys et al. 2016b.
    pub preserve_colors: bool,
    /// Colour matching before the run (`--preserve-colors match`): each style image's RGB mapped by
    /// an affine map so that its mean and covariance equal the content's, by this method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color_match: Option<ColorMatchKind>,
    /// One mask per style image (`--style-mask`), aligned with the content: white where that style
    /// applies (guided Gram matrices). Empty: every style everywhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub style_masks: Vec<PathBuf>,
    /// One mask per style image over the style image itself (`--style-image-mask`): white where its
    /// style is taken from. Empty: the whole style image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub style_image_masks: Vec<PathBuf>,
    /// A mask aligned with the content (`--content-mask`): the content cost's weight at each position
    /// (white 1, black 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_mask: Option<PathBuf>,
    /// Device asked for.
    pub device: DeviceKind,
    /// Output folder: intermediate images, checkpoint, and by default the result.
    pub out_dir: PathBuf,
    /// Final image.
    pub output: PathBuf,
    /// Metrics file (JSON lines), written by the front end.
    pub metrics: Option<PathBuf>,
    /// Animation (GIF), written by the front end.
    pub animate: Option<PathBuf>,
    /// Cost plot, written by the front end.
    pub plot: Option<PathBuf>,
    /// Checkpoint interval (0: only when cancelled).
    pub checkpoint_every: usize,
    /// Coarse-to-fine stages.
    #[serde(default)]
    pub scales: Scales,
    /// Iterations of every stage after the first ([`RunSpec::later_iterations`] when `None`).
    #[serde(default)]
    pub scale_iterations: Option<usize>,
    /// Each style image's long side as a multiple of the working size's (one value for all, or one per
    /// style image; empty = 1 for each, the style as large as the content).
    #[serde(default)]
    pub style_scale: Vec<f32>,
    /// Keep the content's colours as a post-process: every written image gets the result's luminance
    /// with the content's chrominance in this space (the optimization itself is unchanged).
    #[serde(default)]
    pub original_colors: Option<crate::color::ColorSpace>,
    /// Bits per channel of the result (8, or 16 for a PNG result: the float image is rounded once).
    #[serde(default = "eight")]
    pub bit_depth: u8,
    /// Decay of an exponential moving average of the iterates (bias-corrected, restarted at each
    /// stage), used for the intermediate images and the result; `None`: the iterate itself.
    #[serde(default)]
    pub average: Option<f32>,
    /// A term that keeps the image close to a previous frame's result where the content did not
    /// change (video); `None`: no such term.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporal: Option<Temporal>,
}

/// The temporal term of a video frame (Ruder, Dosovitskiy & Brox 2016, eq. 4, with the identity in place
/// of the optical-flow warp): `weight · 1/(3·H·W) · Σ m·(x − p)²`, `p` the previous frame's result and
/// `m` 1 where no channel of the content changed by more than `threshold` from the previous frame
/// (0–255), else 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Temporal {
    /// The previous frame's result.
    pub previous: PathBuf,
    /// The previous frame (the content of the previous run).
    pub previous_content: PathBuf,
    /// The term's weight.
    pub weight: f32,
    /// The largest change of a pixel (0–255, any channel) that counts as unchanged.
    pub threshold: f32,
}

impl RunSpec {
    /// The defaults for `content` and `styles` (equal blend), with the weights at `weights`.
    pub fn new(
        content: impl Into<PathBuf>,
        styles: Vec<PathBuf>,
        weights: impl Into<PathBuf>,
    ) -> RunSpec {
        let out_dir = PathBuf::from("output");
        RunSpec {
            content: content.into(),
            style_blend: vec![1.0; styles.len()],
            styles,
            weights: weights.into(),
            iterations: DEFAULT_ITERATIONS,
            print_every: DEFAULT_PRINT_EVERY,
            optimizer: OptimizerKind::Adam,
            learning_rate: DEFAULT_LEARNING_RATE,
            objective: ObjectiveSpec::course(),
            noise_ratio: DEFAULT_NOISE_RATIO,
            init: InitKind::Noise,
            init_image: None,
            seed: 0,
            max_size: DEFAULT_MAX_SIZE,
            size: None,
            upscale: false,
            pooling: PoolingKind::Avg,
            preserve_colors: false,
            color_match: None,
            style_masks: Vec::new(),
            style_image_masks: Vec::new(),
            content_mask: None,
            device: DeviceKind::Cpu,
            output: out_dir.join("result.png"),
            out_dir,
            metrics: None,
            animate: None,
            plot: None,
            checkpoint_every: 0,
            scales: Scales::Single,
            scale_iterations: None,
            style_scale: Vec::new(),
            average: None,
            original_colors: None,
            bit_depth: 8,
            temporal: None,
        }
    }

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

    /// Iterations of each stage after the first: `scale_iterations`, else a quarter of `iterations`
    /// (at least 1). A later stage starts from the upsampled result of the one before, so it has only
    /// detail to add.
    pub fn later_iterations(&self) -> usize {
        self.scale_iterations
            .unwrap_or((self.iterations / 4).max(1))
    }

    /// The style scale of style image `i`.
    pub fn style_scale_of(&self, i: usize) -> f32 {
        match self.style_scale.as_slice() {
            [] => 1.0,
            [one] => *one,
            many => many.get(i).copied().unwrap_or(1.0),
        }
    }

    /// Checks every setting the run relies on (a spec may come from a hand-edited file).
    ///
    /// # Errors
    /// A message naming the first setting out of range, by its `nst stylize` flag.
    pub fn validate(&self) -> Result<(), String> {
        self.validate_styles()?;
        self.validate_objective()?;
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(format!(
                "--learning-rate must be a finite number > 0, not {}",
                self.learning_rate
            ));
        }
        if !(0.0..=1.0).contains(&self.noise_ratio) {
            return Err(format!(
                "--noise-ratio must be between 0 and 1, not {}",
                self.noise_ratio
            ));
        }
        if self.max_size == 0 || self.max_size > MAX_SIDE {
            return Err(format!(
                "--max-size must be between 1 and {MAX_SIDE}, not {}",
                self.max_size
            ));
        }
        if let Some(size) = self.size {
            check_working_size(size).map_err(|e| format!("--size {e}"))?;
        }
        if self.iterations == 0 || self.scale_iterations == Some(0) {
            return Err("--iterations and --scale-iterations must be at least 1 (--init content writes the content image as the start)".into());
        }
        self.validate_scales()?;
        if (self.preserve_colors || self.color_match.is_some()) && self.original_colors.is_some() {
            return Err(
                "--preserve-colors and --original-colors contradict each other: give one".into(),
            );
        }
        if self.preserve_colors && self.color_match.is_some() {
            return Err("--preserve-colors takes one method: luminance or match, not both".into());
        }
        self.validate_masks()?;
        if self.objective.normalize_gradients && self.optimizer == OptimizerKind::Lbfgs {
            return Err(
                "--normalize-gradients with --optimizer lbfgs: the normalized gradient is not the gradient of the cost the line search measures, so L-BFGS would search blind; use --optimizer adam (as --preset w2 does)".into(),
            );
        }
        let png = self
            .output
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("png"));
        match self.bit_depth {
            8 => {}
            16 if png => {}
            16 => {
                return Err(format!(
                    "--bit-depth 16 needs a PNG result, not {} (--output)",
                    self.output.display()
                ));
            }
            other => return Err(format!("--bit-depth must be 8 or 16, not {other}")),
        }
        self.validate_temporal()?;
        if let Some(d) = self.average
            && !(d.is_finite() && (0.0..1.0).contains(&d))
        {
            return Err(format!(
                "--average must be a decay in [0, 1), e.g. 0.9, not {d}"
            ));
        }
        Ok(())
    }

    fn validate_styles(&self) -> Result<(), String> {
        if self.styles.is_empty() {
            return Err("--style is required (give it once per style image)".into());
        }
        if self.style_blend.len() != self.styles.len() {
            return Err(format!(
                "--style-blend has {} weights but {} --style images were given",
                self.style_blend.len(),
                self.styles.len()
            ));
        }
        if self
            .style_blend
            .iter()
            .any(|w| !(w.is_finite() && *w >= 0.0))
            || self.style_blend.iter().sum::<f32>() <= 0.0
        {
            return Err("--style-blend weights must be finite, ≥ 0 and not all 0".into());
        }
        if self.style_scale.len() > 1 && self.style_scale.len() != self.styles.len() {
            return Err(format!(
                "--style-scale has {} values for {} --style images: give one for all or one per image",
                self.style_scale.len(),
                self.styles.len()
            ));
        }
        if let Some(f) = self
            .style_scale
            .iter()
            .find(|f| !(f.is_finite() && **f > 0.0 && **f <= 16.0))
        {
            return Err(format!(
                "--style-scale must be a number in (0, 16], not {f}"
            ));
        }
        Ok(())
    }

    fn validate_objective(&self) -> Result<(), String> {
        let o = &self.objective;
        for (flag, layers) in [
            ("--content-layers", &o.content_layers),
            ("--style-layers", &o.style_layers),
        ] {
            if layers.is_empty() {
                return Err(format!("{flag}: no layer given"));
            }
            if let Some(l) = layers
                .iter()
                .find(|l| !(l.weight.is_finite() && l.weight >= 0.0))
            {
                return Err(format!("{flag}: layer {} has weight {}", l.name, l.weight));
            }
        }
        for (flag, v) in [
            ("--alpha", o.alpha),
            ("--beta", o.beta),
            ("--tv-weight", o.tv_weight),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{flag} must be a finite number ≥ 0, not {v}"));
            }
        }
        Ok(())
    }

    fn validate_masks(&self) -> Result<(), String> {
        for (flag, masks) in [
            ("--style-mask", &self.style_masks),
            ("--style-image-mask", &self.style_image_masks),
        ] {
            if !masks.is_empty() && masks.len() != self.styles.len() {
                return Err(format!(
                    "{flag} was given {} times for {} --style images: give it once per style image, in the same order (a white image applies a style everywhere)",
                    masks.len(),
                    self.styles.len()
                ));
            }
        }
        let guided = !(self.style_masks.is_empty() && self.style_image_masks.is_empty());
        if guided && self.objective.style_loss != crate::objective::StyleLossKind::Gram {
            return Err(format!(
                "--style-mask and --style-image-mask work with --style-loss gram, not {}",
                self.objective.style_loss
            ));
        }
        Ok(())
    }

    /// The first setting of this run that has no GPU kernels (the style losses other than the Gram
    /// cost, gradient normalization, masks, the temporal term), by its flag; such a run stays on the
    /// CPU. Colour matching happens before the run and needs none.
    pub fn needs_cpu(&self) -> Option<&'static str> {
        let o = &self.objective;
        if o.style_loss != crate::objective::StyleLossKind::Gram {
            Some("--style-loss mean-cov and w2")
        } else if o.normalize_gradients {
            Some("--normalize-gradients")
        } else if !self.style_masks.is_empty() || !self.style_image_masks.is_empty() {
            Some("--style-mask and --style-image-mask")
        } else if self.content_mask.is_some() {
            Some("--content-mask")
        } else if self.temporal.is_some() {
            Some("the temporal term")
        } else {
            None
        }
    }

    fn validate_temporal(&self) -> Result<(), String> {
        let Some(t) = &self.temporal else {
            return Ok(());
        };
        if !(t.weight.is_finite() && t.weight >= 0.0) {
            return Err(format!(
                "the temporal weight must be a finite number ≥ 0, not {}",
                t.weight
            ));
        }
        if !(t.threshold.is_finite() && t.threshold >= 0.0) {
            return Err(format!(
                "the temporal threshold must be a finite number ≥ 0, not {}",
                t.threshold
            ));
        }
        if self.scales != Scales::Single {
            return Err("the temporal term needs a single-scale run (no --scales)".into());
        }
        Ok(())
    }

    fn validate_scales(&self) -> Result<(), String> {
        match &self.scales {
            Scales::Single => Ok(()),
            _ if self.size.is_some() => Err(
                "--scales works with --max-size (the stages keep the content's aspect); --size fixes one exact size: drop one of them (--preset w2 sets --scales auto:128; --scales single keeps --size)".into(),
            ),
            Scales::Auto { min } if *min < 16 || *min > MAX_SIDE => Err(format!(
                "--scales auto:{min}: the smallest scale must be between 16 and {MAX_SIDE} pixels"
            )),
            Scales::Auto { .. } => Ok(()),
            Scales::List(v) => crate::stages::check_list(v),
        }
    }
}

fn eight() -> u8 {
    8
}

/// A working size within the limits of decoded images (so that no size computation can overflow).
///
/// # Errors
/// A message saying the size and the limits (the caller names the flag).
pub fn check_working_size(size: Size) -> Result<(), String> {
    if size.width > MAX_SIDE
        || size.height > MAX_SIDE
        || u64::from(size.width) * u64::from(size.height) > MAX_PIXELS
    {
        return Err(format!(
            "{size} is larger than {MAX_SIDE} pixels on a side or {} MP",
            MAX_PIXELS / (1024 * 1024)
        ));
    }
    Ok(())
}

/// The folder a bare image name is looked up in when it is not found where it is named.
pub const IMAGES_DIR: &str = "images";

/// `path` if it exists; else, for a bare file name, `images/<name>` if that exists (as the original
/// program did); else `path` unchanged (the error then names it).
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
