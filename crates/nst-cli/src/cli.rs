//! The command line: clap types for `nst stylize | inspect | download-weights | bench`.
//!
//! Stylize options are `Option`s so that the pipeline can tell a flag the user gave from a default
//! (a resumed run takes its settings from the checkpoint and refuses flags that would change them).

use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};
pub use nst_engine::color::ColorSpace;
pub use nst_engine::objective::StyleLossKind;
pub use nst_engine::spec::{ColorMatchKind, PreserveColors};
pub use nst_engine::{DeviceKind, InitKind, OptimizerKind, PoolingKind, Preset, Scales};

/// A parser for one of the engine's named settings (`adam`, `lbfgs`, …), listing the names in `--help`.
fn choice<T>(names: &'static [&'static str]) -> impl TypedValueParser<Value = T>
where
    T: std::str::FromStr<Err = String> + Clone + Send + Sync + 'static,
{
    PossibleValuesParser::new(names).map(|s| s.parse::<T>().expect("every listed name parses"))
}

/// `nst`: neural style transfer (Gatys, Ecker & Bethge) on the CPU, from a MatConvNet VGG model.
#[derive(Debug, Parser)]
#[command(name = "nst", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Worker threads for the numerical kernels (default: every core).
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,
    /// Print only errors (no progress bar, no cost lines).
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Paint the content image in the style of the style image(s).
    Stylize(Box<StylizeArgs>),
    /// Show what a MatConvNet `.mat` model holds: layout, mean pixel, every layer.
    Inspect(InspectArgs),
    /// Download the pre-trained VGG weights (resumable, checksum verified).
    DownloadWeights(DownloadArgs),
    /// Time a few iterations of the pipeline at a given size (no images needed).
    Bench(BenchArgs),
    /// Many runs from a batch file (TOML or JSON): plan, run (shardable across workers), status, sheet.
    Batch(BatchArgs),
    /// The studio in the browser: a local web page to start, watch, steer and browse runs.
    Serve(ServeArgs),
}

/// `nst serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The address to listen on; any other than loopback requires a token (one is generated).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The port (0: any free port).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Open the page in the default browser.
    #[arg(long)]
    pub open: bool,
    /// The token every request must carry [default: none on loopback, a random one otherwise].
    #[arg(long, env = "NST_SERVE_TOKEN", value_name = "TOKEN")]
    pub token: Option<String>,
    /// The folder of the studio's runs, uploads and history.
    #[arg(long, default_value = "nst-studio", value_name = "DIR")]
    pub out_dir: PathBuf,
    /// The VGG `.mat` file [default: pretrained-model/imagenet-vgg-verydeep-19.mat].
    #[arg(long, env = "NST_WEIGHTS", value_name = "PATH")]
    pub weights: Option<PathBuf>,
    /// Never download: stop with a message if the weights are missing.
    #[arg(long, env = "NST_OFFLINE", value_parser = clap::builder::BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true")]
    pub offline: Option<bool>,
    /// Sample images offered on the page [default: `images` when that folder exists].
    #[arg(long, value_name = "DIR")]
    pub samples: Option<PathBuf>,
    /// The most runs waiting in the queue.
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub queue: usize,
    /// Save a checkpoint every N iterations: a killed server loses at most N.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub checkpoint_every: usize,
}

/// `nst stylize`.
#[derive(Debug, Clone, Default, Args)]
pub struct StylizeArgs {
    /// Content image (PNG, JPEG or GIF); a bare name not found is looked up in `images/`.
    #[arg(
        long,
        short = 'c',
        alias = "content_image_filename",
        value_name = "PATH"
    )]
    pub content: Option<PathBuf>,
    /// Style image; repeat the flag to blend several styles (see --style-blend).
    #[arg(long, short = 's', alias = "style_image_filename", value_name = "PATH")]
    pub style: Vec<PathBuf>,
    /// Weights of the style images, comma separated, normalized to sum 1 (default: equal).
    #[arg(long, value_delimiter = ',', value_name = "W,W,...", value_parser = f32_flag)]
    pub style_blend: Vec<f32>,
    /// Final image; the format comes from the extension (png, jpg/jpeg, gif) [default: OUT_DIR/result.png].
    #[arg(long, short = 'o', value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Folder for the intermediate images, checkpoints and, by default, the result [default: output].
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Number of optimizer iterations [default: 200].
    #[arg(long, short = 'n', alias = "epochs", value_name = "N")]
    pub iterations: Option<usize>,
    /// Print the costs and save an intermediate image every K iterations (0: never) [default: 20].
    #[arg(long, alias = "print_every", value_name = "K")]
    pub print_every: Option<usize>,
    /// The optimizer [default: adam].
    #[arg(long, value_parser = choice::<OptimizerKind>(OptimizerKind::NAMES))]
    pub optimizer: Option<OptimizerKind>,
    /// Adam's learning rate, in pixel units (0–255) [default: 2.0].
    #[arg(long, alias = "learning_rate", value_name = "LR", value_parser = f32_flag)]
    pub learning_rate: Option<f32>,
    /// Weight α of the content cost [default: 10].
    #[arg(long, alias = "content-weight", value_name = "ALPHA", value_parser = f32_flag)]
    pub alpha: Option<f32>,
    /// Weight β of the style cost [default: 40].
    #[arg(long, alias = "style-weight", value_name = "BETA", value_parser = f32_flag)]
    pub beta: Option<f32>,
    /// Weight of the total-variation cost (squared differences) [default: 0].
    #[arg(long, value_name = "W", value_parser = f32_flag)]
    pub tv_weight: Option<f32>,
    /// Share of noise in the start image for `--init noise` [default: 0.6].
    #[arg(long, value_name = "R", value_parser = f32_flag)]
    pub noise_ratio: Option<f32>,
    /// Start image: noise (`--noise-ratio` of noise on the content), content, random, style [default: noise].
    #[arg(long, value_parser = choice::<InitKind>(InitKind::NAMES))]
    pub init: Option<InitKind>,
    /// Start from this image (resized to the working size); overrides --init.
    #[arg(long, value_name = "PATH")]
    pub init_image: Option<PathBuf>,
    /// Seed of the start noise: the same seed and thread count give bit-identical images [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Longest side of the working size, in pixels; smaller images are not enlarged [default: 400].
    #[arg(long, value_name = "N", conflicts_with = "size")]
    pub max_size: Option<u32>,
    /// Exact working size `WxH` (e.g. 400x300); aspect is not kept.
    #[arg(long, value_name = "WxH")]
    pub size: Option<String>,
    /// Allow a working size larger than the content image (it is enlarged).
    #[arg(long)]
    pub upscale: bool,
    /// Pooling in the network, replacing the file's (`file` keeps it) [default: avg, as the seed].
    #[arg(long, value_parser = choice::<PoolingKind>(PoolingKind::NAMES))]
    pub pooling: Option<PoolingKind>,
    /// Content layers with weights, e.g. `relu4_2` or `relu4_2:1.0` [default: relu4_2].
    #[arg(long, value_name = "LAYER[:W],...")]
    pub content_layers: Option<String>,
    /// Style layers with weights [default: relu1_1:0.2,relu2_1:0.2,relu3_1:0.2,relu4_1:0.2,relu5_1:0.2].
    #[arg(long, value_name = "LAYER[:W],...")]
    pub style_layers: Option<String>,
    /// Keep the content's colours (Gatys et al. 2016b): `luminance` transfers style on luminance only
    /// (YIQ; the flag alone means this), `match` maps each style image's colours onto the content's
    /// before the run (--color-match).
    #[arg(long, value_name = "luminance|match", num_args = 0..=1, default_missing_value = "luminance", value_parser = choice::<PreserveColors>(PreserveColors::NAMES))]
    pub preserve_colors: Option<PreserveColors>,
    /// How --preserve-colors match maps colours: chol (Cholesky), pca (symmetric square roots, Image
    /// Analogies) or sym (the optimal-transport map) [default: pca].
    #[arg(long, value_parser = choice::<ColorMatchKind>(ColorMatchKind::NAMES))]
    pub color_match: Option<ColorMatchKind>,
    /// A mask per style image, in the order of --style, aligned with the content: white where that style
    /// applies (guided Gram matrices). Give it once per --style.
    #[arg(long, value_name = "PATH")]
    pub style_mask: Vec<PathBuf>,
    /// A mask per style image over the style image itself: white where its style is taken from.
    #[arg(long, value_name = "PATH")]
    pub style_image_mask: Vec<PathBuf>,
    /// A mask aligned with the content: the content cost's weight at each position (white 1, black 0).
    #[arg(long, value_name = "PATH")]
    pub content_mask: Option<PathBuf>,
    /// The style cost: gram (Gatys et al.), mean-cov (feature means and covariances) or w2
    /// (2-Wasserstein distance of Gaussian fits) [default: gram].
    #[arg(long, value_parser = choice::<StyleLossKind>(StyleLossKind::NAMES))]
    pub style_loss: Option<StyleLossKind>,
    /// Scale each layer's gradient to unit L1 norm before weighting and summing (neural-style's
    /// -normalize_gradients); `--normalize-gradients false` turns a preset's off.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub normalize_gradients: Option<bool>,
    /// The VGG `.mat` file [default: pretrained-model/imagenet-vgg-verydeep-19.mat].
    #[arg(long, env = "NST_WEIGHTS", value_name = "PATH")]
    pub weights: Option<PathBuf>,
    /// Never download: stop with a message if the weights are missing.
    #[arg(long, env = "NST_OFFLINE", value_parser = clap::builder::BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true")]
    pub offline: Option<bool>,
    /// Compute device: `auto` takes the GPU when one is compiled in and usable, else the CPU [default: cpu].
    #[arg(long, value_parser = choice::<DeviceKind>(DeviceKind::NAMES))]
    pub device: Option<DeviceKind>,
    /// Append one JSON object per logged iteration to this file.
    #[arg(long, value_name = "PATH")]
    pub metrics: Option<PathBuf>,
    /// Write an animated GIF of the image at every print step.
    #[arg(long, value_name = "PATH.gif")]
    pub animate: Option<PathBuf>,
    /// Plot the cost curves (PNG or SVG, from the extension).
    #[arg(long, value_name = "PATH")]
    pub plot: Option<PathBuf>,
    /// Write a checkpoint every K iterations (0: only on interrupt) [default: 0].
    #[arg(long, value_name = "K")]
    pub checkpoint_every: Option<usize>,
    /// Continue a run from a checkpoint file or the folder that holds `checkpoint.json`.
    #[arg(long, value_name = "DIR_OR_FILE")]
    pub resume: Option<PathBuf>,
    /// Coarse-to-fine: `auto` (stages ×√2 apart from 256 px up to the working size; `auto:MIN` for
    /// another smallest size) or long sides such as `256,512` before the working size [default: single].
    #[arg(long, value_name = "auto|auto:MIN|N,N,...", value_parser = parse_scales)]
    pub scales: Option<Scales>,
    /// Iterations of each stage after the first with --scales [default: a quarter of --iterations].
    #[arg(long, value_name = "N")]
    pub scale_iterations: Option<usize>,
    /// The style image's long side as a multiple of the working size's, one value or one per --style
    /// [default: 1].
    #[arg(long, value_delimiter = ',', value_name = "F,F,...", value_parser = f32_flag)]
    pub style_scale: Vec<f32>,
    /// Show and write an exponential moving average of the iterates with this decay (e.g. 0.9),
    /// bias-corrected and restarted at each stage [default: off].
    #[arg(long, value_name = "DECAY", value_parser = f32_flag)]
    pub average: Option<f32>,
    /// Start from another tool's recipe (seed, gatys, jcjohnson; docs/presets.md); flags given override it.
    #[arg(long, value_parser = choice::<Preset>(Preset::NAMES))]
    pub preset: Option<Preset>,
    /// Print the resolved settings (JSON) and exit without running.
    #[arg(long)]
    pub print_settings: bool,
    /// Keep the content's colours as a post-process: every written image gets the result's luminance
    /// with the content's chrominance (in --color-space).
    #[arg(long)]
    pub original_colors: bool,
    /// The colour space of --original-colors [default: yuv, as neural-style's -original_colors].
    #[arg(long, value_parser = choice::<ColorSpace>(ColorSpace::NAMES), requires = "original_colors")]
    pub color_space: Option<ColorSpace>,
    /// Bits per channel of the result: 8, or 16 for a PNG (the float image rounded once) [default: 8].
    #[arg(long, value_name = "8|16")]
    pub bit_depth: Option<u8>,
    /// Run even if the working size looks too large for the available memory.
    #[arg(long)]
    pub force: bool,
}

/// `nst inspect`.
#[derive(Debug, Clone, Args)]
pub struct InspectArgs {
    /// The `.mat` file.
    pub file: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `nst download-weights`.
#[derive(Debug, Clone, Args)]
pub struct DownloadArgs {
    /// Which network.
    #[arg(long, value_enum, default_value_t = ModelKind::Vgg19)]
    pub model: ModelKind,
    /// Which published file (VGG-16 exists only as `current`).
    #[arg(long, value_enum, default_value_t = VariantKind::Current)]
    pub variant: VariantKind,
    /// Folder to download into.
    #[arg(long, default_value = "pretrained-model", value_name = "DIR")]
    pub dir: PathBuf,
    /// Do not use the network: only say whether the file is there and what to do otherwise.
    #[arg(long)]
    pub offline: bool,
    /// Download from this URL instead of the published one (a mirror); the checksum still applies.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
}

/// `nst bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// The VGG `.mat` file [default: pretrained-model/imagenet-vgg-verydeep-19.mat].
    #[arg(
        long,
        env = "NST_WEIGHTS",
        value_name = "PATH",
        conflicts_with = "random_weights"
    )]
    pub weights: Option<PathBuf>,
    /// Time VGG-19's layers (to `conv5_1`) with seeded random weights instead of a weights file: the same
    /// work per iteration, for machines without the 550 MB file (the costs printed mean nothing).
    #[arg(long)]
    pub random_weights: bool,
    /// Working size `WxH`.
    #[arg(long, default_value = "400x300", value_name = "WxH")]
    pub size: String,
    /// Timed iterations (after one warm-up).
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub iterations: usize,
    /// Compute device.
    #[arg(long, value_parser = choice::<DeviceKind>(DeviceKind::NAMES), default_value = "cpu")]
    pub device: DeviceKind,
}

/// `nst batch`.
#[derive(Debug, Clone, Args)]
pub struct BatchArgs {
    /// What to do with the batch file.
    #[command(subcommand)]
    pub command: BatchCommand,
}

/// The `nst batch` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum BatchCommand {
    /// Print the expanded jobs with their ids (and with --shards N, the shard of each); runs nothing.
    Plan(BatchPlanArgs),
    /// Run the jobs (of this worker's shard): done ones are skipped, interrupted ones resumed.
    Run(BatchRunArgs),
    /// Print every job's status from the job folders (exit 0: all done, 1: some failed, 3: not all done yet).
    Status(BatchStatusArgs),
    /// Write the contact sheet: every result in a grid, labelled by the settings that vary.
    Sheet(BatchSheetArgs),
}

/// The batch file and what the command line changes of it.
#[derive(Debug, Clone, Args)]
pub struct BatchFileArgs {
    /// The batch file (`.toml` or `.json`; see docs/batch.md).
    pub file: PathBuf,
    /// Where the job folders go [default: the file's `out_dir`, else FILE-out beside the file].
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// The VGG `.mat` file [default: the file's `weights`, else pretrained-model/imagenet-vgg-verydeep-19.mat].
    #[arg(long, env = "NST_WEIGHTS", value_name = "PATH")]
    pub weights: Option<PathBuf>,
}

/// `nst batch plan`.
#[derive(Debug, Clone, Args)]
pub struct BatchPlanArgs {
    #[command(flatten)]
    #[allow(missing_docs, reason = "flattened: documented by its fields")]
    pub batch: BatchFileArgs,
    /// Show which of N shards runs each job.
    #[arg(long, value_name = "N")]
    pub shards: Option<usize>,
    /// Print JSON (every job's id, label, folder and settings).
    #[arg(long)]
    pub json: bool,
}

/// `nst batch run`.
#[derive(Debug, Clone, Args)]
pub struct BatchRunArgs {
    #[command(flatten)]
    #[allow(missing_docs, reason = "flattened: documented by its fields")]
    pub batch: BatchFileArgs,
    /// This worker's shard, I/N with 1 ≤ I ≤ N [default: from SLURM_ARRAY_TASK_ID or
    /// JOB_COMPLETION_INDEX when set, else the whole batch].
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<crate::batch::shard::Shard>,
    /// The number of shards, for a scheduler's 0-based index (SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX).
    #[arg(long, env = "NST_SHARD_COUNT", value_name = "N")]
    pub shard_count: Option<usize>,
    /// Run the jobs that failed before again.
    #[arg(long)]
    pub retry_failed: bool,
    /// Take over a job lock whose heartbeat is older than this, from any host.
    #[arg(long, value_name = "SECONDS", default_value_t = crate::batch::lock::LockConfig::DEFAULT_STALE_SECONDS)]
    pub stale_after: u64,
    /// Never download the default weights.
    #[arg(long, env = "NST_OFFLINE", value_parser = clap::builder::BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true")]
    pub offline: Option<bool>,
    /// Run jobs even when their estimated memory exceeds what is available.
    #[arg(long)]
    pub force: bool,
}

/// `nst batch status`.
#[derive(Debug, Clone, Args)]
pub struct BatchStatusArgs {
    #[command(flatten)]
    #[allow(missing_docs, reason = "flattened: documented by its fields")]
    pub batch: BatchFileArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// A lock whose heartbeat is older than this does not count as running.
    #[arg(long, value_name = "SECONDS", default_value_t = crate::batch::lock::LockConfig::DEFAULT_STALE_SECONDS)]
    pub stale_after: u64,
}

/// `nst batch sheet`.
#[derive(Debug, Clone, Args)]
pub struct BatchSheetArgs {
    #[command(flatten)]
    #[allow(missing_docs, reason = "flattened: documented by its fields")]
    pub batch: BatchFileArgs,
    /// The sheet (PNG or JPEG) [default: OUT_DIR/contact-sheet.png].
    #[arg(long, short = 'o', value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// The size of each cell's picture, in pixels.
    #[arg(long, default_value_t = 256, value_name = "PX")]
    pub cell: u32,
}

fn parse_shard(s: &str) -> Result<crate::batch::shard::Shard, String> {
    s.parse()
}

/// `--model`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModelKind {
    /// VGG-19 (`imagenet-vgg-verydeep-19.mat`).
    Vgg19,
    /// VGG-16 (`imagenet-vgg-verydeep-16.mat`).
    Vgg16,
}

/// `--variant`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VariantKind {
    /// MatConvNet beta16 (uncompressed, about 576 MB).
    Beta16,
    /// The current files (compressed).
    Current,
}

fn parse_scales(s: &str) -> Result<Scales, String> {
    s.parse()
}

/// A number for an `f32` setting, refusing one that a 32-bit float cannot hold instead of letting it
/// become 0 or infinity (`--learning-rate 1e-50` would otherwise be refused as "not > 0, 0").
fn f32_flag(s: &str) -> Result<f32, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    let single = v as f32;
    if v.is_finite() && v != 0.0 && (single == 0.0 || single.is_subnormal() || !single.is_finite())
    {
        return Err(format!(
            "`{s}` cannot be held in a 32-bit float (magnitudes from about 1.2e-38 to 3.4e38)"
        ));
    }
    Ok(single)
}
