//! A neural style transfer run (Gatys, Ecker & Bethge 2016) as a library: from a [`RunSpec`] (images,
//! model file, costs, optimizer, sizes, outputs) to a stylized picture, with events to follow it, a
//! [`Control`] to cancel or pause it, checkpoints to resume it bit for bit, and coarse-to-fine stages for large
//! pictures.
//!
//! - [`RunSpec`]: every setting, plain and serde-able, with the defaults of the course program this
//!   project replaces (400 px, 200 Adam iterations, α = 10, β = 40).
//! - [`Run::prepare`] then [`Run::execute`] (or [`run`] for both): the run, emitting [`Event`]s to an
//!   [`EventSink`] in order (see [`events`]).
//! - [`stages`]: coarse-to-fine planning (`Scales`); [`resample`]: the image and Adam's moments carried
//!   from one stage to the next.
//! - [`network`]: the glue from a MatConvNet VGG model (`vgg-weights`) to a `tensor-ops` network, and the
//!   layer specifications; [`objective`]: the cost of an image and its gradient.
//! - [`cache`]: style targets shared by runs with the same style (the frames of a video).
//! - [`animation`]: the GIF of a run, for the front ends that write one.
//! - [`image_io`]: decoding, working sizes, atomic writes; [`checkpoint`]; [`estimate`] (memory and
//!   time before a run); [`record`] (metrics records and the run record).
//!
//! What it does not do: print, parse command lines, download weights or draw progress bars. Those are
//! the front ends' (`nst` is one); they receive every event and decide what to show.
//!
//! ## Input convention
//! Images are `[3, H, W]` `f32` RGB in 0–255 minus the model's mean pixel (MatConvNet's `meta.normalization.averageImage`, or
//! [`IMAGENET_MEAN`] when the file has none).
//!
//! ## Features
//! - `cuda`: the GPU backend of `tensor-ops` ([`DeviceKind::Cuda`]): the whole iteration on the GPU.
//!
//! ## Example
//! Stylize two small images (here with a small random VGG-19-shaped model written on the spot; the
//! runnable `examples/stylize.rs` takes a model file on its command line):
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = std::env::temp_dir().join(format!("nst-engine-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! # let weights = dir.join("tiny.mat");
//! # let model = nst_engine::network::random_vgg19("relu2_1", 7);
//! # vgg_weights::write::write_simplenn(&weights, &model, vgg_weights::Layout::Beta16, vgg_weights::write::Compression::None)?;
//! # let (content, style) = (dir.join("c.png"), dir.join("s.png"));
//! # image::RgbImage::from_fn(16, 12, |x, y| image::Rgb([(x * 15) as u8, (y * 20) as u8, 90])).save(&content)?;
//! # image::RgbImage::from_fn(14, 10, |x, y| image::Rgb([(x * y % 255) as u8, 90, (y * 25) as u8])).save(&style)?;
//! use nst_engine::{Control, Event, RunOptions, RunSpec, SinkError};
//!
//! let mut spec = RunSpec::new(&content, vec![style], &weights);
//! spec.objective.content_layers = nst_engine::network::parse_layers("--content-layers", "relu2_1")?;
//! spec.objective.style_layers = nst_engine::network::parse_layers("--style-layers", "relu1_1,relu2_1")?;
//! spec.iterations = 5;
//! spec.out_dir = dir.join("out");
//! spec.output = spec.out_dir.join("result.png");
//!
//! let mut last_total = None;
//! let mut sink = |e: &Event| {
//!     if let Event::Step { costs, .. } = e {
//!         last_total = Some(costs.total);
//!     }
//!     Ok::<(), SinkError>(())
//! };
//! let summary = nst_engine::run(spec, RunOptions::default(), &mut sink, &Control::new())?;
//! assert_eq!(summary.iterations, 5);
//! assert!(summary.output.exists() && last_total.is_some());
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

pub mod animation;
pub mod bench;
pub mod cache;
pub mod checkpoint;
pub mod color;
pub mod estimate;
pub mod events;
pub mod guard;
pub mod image_io;
pub mod network;
pub mod objective;
pub mod record;
mod render;
pub mod resample;
mod run;
pub mod spec;
pub mod stages;

#[cfg(test)]
mod testing;

use std::path::PathBuf;

pub use cache::StyleCache;
pub use events::{Control, Event, EventSink, NoEvents, SinkError, Started, Summary};
pub use image_io::{Picture, Size};
pub use objective::{Breakdown, ObjectiveSpec, StyleObjective};
pub use record::{Ended, Record};
pub use run::{BeforeWeights, Place, Run, RunOptions};
pub use spec::{
    DeviceKind, InitKind, OptimizerKind, PoolingKind, Preset, RunSpec, Scales, Temporal,
};
pub use stages::Stage;

/// The ImageNet mean pixel (RGB), used when a model file has none.
pub const IMAGENET_MEAN: [f32; 3] = [123.68, 116.779, 103.939];

/// Errors of a run. Messages name the file, or the setting by its `nst stylize` flag.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is out of range or contradicts another.
    #[error("{0}")]
    Spec(String),
    /// An input image cannot be used.
    #[error("{flag}")]
    Image {
        /// The flag that named it (`--content`, `--style`, `--init-image`).
        flag: &'static str,
        /// Why.
        #[source]
        source: image_io::ImageError,
    },
    /// Another run holds the output folder.
    #[error(
        "the output folder {} is in use by another nst run (process {pid}); wait for it to finish, or choose another --out-dir",
        dir.display()
    )]
    Busy {
        /// The folder.
        dir: PathBuf,
        /// The process that holds it.
        pid: u32,
    },
    /// The output folder cannot be used.
    #[error("the output folder {} (--out-dir)", path.display())]
    OutDir {
        /// The folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: image_io::ImageError,
    },
    /// An output file's folder does not accept files.
    #[error("cannot write {}", path.display())]
    Unwritable {
        /// The output.
        path: PathBuf,
        /// Why.
        #[source]
        source: image_io::ImageError,
    },
    /// Writing an output failed.
    #[error(transparent)]
    Output(#[from] image_io::ImageError),
    /// The model file cannot be read.
    #[error("loading the VGG weights {} (--weights)", path.display())]
    Weights {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: vgg_weights::Error,
    },
    /// The model cannot be run as a network.
    #[error("the weights {} (--weights)", path.display())]
    Network {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<objective::Error>,
    },
    /// The content and style targets cannot be computed (an image too small for the network, a layer
    /// not in it).
    #[error("computing the content and style targets at the working size {size} (from --content {} and --max-size/--size)", content.display())]
    Targets {
        /// The stage's size.
        size: Size,
        /// The content image.
        content: PathBuf,
        /// Why.
        #[source]
        source: Box<objective::Error>,
    },
    /// The objective failed outside an evaluation.
    #[error(transparent)]
    Objective(Box<objective::Error>),
    /// Evaluating the cost failed.
    #[error("evaluating the cost")]
    Evaluate(#[source] Box<objective::Error>),
    /// The device asked for cannot be used.
    #[error("{0}")]
    Device(String),
    /// The working size does not fit in the available memory.
    #[error("{0}")]
    TooLarge(String),
    /// A checkpoint cannot be read or written.
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    /// A checkpoint does not fit the settings.
    #[error("--resume {}: {reason}", path.display())]
    Resume {
        /// The checkpoint.
        path: PathBuf,
        /// What does not fit.
        reason: String,
    },
    /// The optimizer cannot be built from its settings or state.
    #[error("the optimizer")]
    Optimizer(#[source] nst_optim::Error),
    /// An optimizer step failed for another reason than a non-finite cost.
    #[error("the optimizer failed: {0}")]
    Step(String),
    /// The cost or its gradient became non-finite; the last good image was written.
    #[error(
        "the image or its cost became non-finite at iteration {at} ({what}); the last good image (iteration {good}) is in {}; lower --learning-rate (now {learning_rate}) or the weights ({weights}: Adam squares the weighted gradient in 32-bit floats, which overflow past about 1.8e19)",
        output.display()
    )]
    Diverged {
        /// The iteration whose cost was not finite.
        at: usize,
        /// The cost and the count of non-finite gradient entries.
        what: String,
        /// The iteration of the image written.
        good: usize,
        /// Where it was written.
        output: PathBuf,
        /// The learning rate used.
        learning_rate: f32,
        /// The cost weights, as flags.
        weights: String,
    },
    /// The front end's preparation hook ([`RunOptions::before_weights`]) failed.
    #[error(transparent)]
    Prepare(Box<dyn std::error::Error + Send + Sync>),
    /// The event sink failed.
    #[error("following the run")]
    Sink(#[source] SinkError),
}

impl From<objective::Error> for Error {
    fn from(e: objective::Error) -> Error {
        Error::Objective(Box::new(e))
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Prepares and executes `spec` ([`Run::prepare`] then [`Run::execute`]).
///
/// # Errors
/// As [`Run::prepare`] and [`Run::execute`].
pub fn run(
    spec: RunSpec,
    options: RunOptions<'_>,
    sink: &mut dyn EventSink,
    control: &Control,
) -> Result<Summary> {
    Run::prepare(spec, None, options, sink)?.execute(sink, control)
}
