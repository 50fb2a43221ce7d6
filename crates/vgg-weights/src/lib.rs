//! Reads MatConvNet models (`.mat`, MAT v5) such as `imagenet-vgg-verydeep-19.mat` into `ndarray` arrays,
//! without MATLAB or Python.
//!
//! [`load`] reads any MatConvNet "simplenn" chain of conv/relu/pool layers (VGG-16, VGG-19), from both
//! published VGG-19 files: the `beta16` one (variables `layers`, `normalization`, `classes`, uncompressed)
//! and the current one (variables `layers`, `meta`, each compressed). Fields are looked up by name, never
//! by position. Convolution weights come out as `[c_out, c_in, kh, kw]`, row-major `f32`, converted from
//! MatConvNet's column-major `[kh, kw, c_in, c_out]` (dimension 0 is the filter row, i.e. the height).
//! Layers of other types (softmax, dropout, …) are kept as [`LayerKind::Other`] with no data.
//!
//! [`LoadOptions::last_layer`] stops after the named layer, and nothing after it is read: an uncompressed
//! file is memory-mapped and its layers decoded lazily, and a compressed `layers` variable is decompressed
//! as a stream, only as far as the last layer (zlib cannot seek, but it can stop).
//!
//! The module [`mat`] is a standalone MAT Level-5 reader (both byte orders, miCOMPRESSED, numeric, logical,
//! char, cell and struct arrays) and [`write`](mod@write) a small MAT v5 writer, used by tests and tools to make
//! synthetic VGG files.
//!
//! The arrays are [`ndarray`] 0.17's. The crate re-exports the `ndarray` it is built with as
//! `vgg_weights::ndarray`; a program on another `ndarray` major version gets "mismatched types" errors
//! and should depend on `ndarray = "0.17"` or use the re-export.
//!
//! It does not read MAT 7.3 (HDF5) or Level-4 files (they are refused with a message that says so),
//! sparse, object or function-handle arrays (an error for that variable only), DagNN models, or layers
//! other than conv/relu/pool beyond their name and type. It does no inference.
//!
//! ## Features
//! None: the crate always builds with no system library.
//!
//! # Examples
//! Write a tiny model and load it back:
//! ```
//! use ndarray::{Array1, Array4};
//! use vgg_weights::write::{write_simplenn, Compression};
//! use vgg_weights::{Conv, Layer, LayerKind, Layout, LoadOptions, Pad, VggModel};
//!
//! let model = VggModel {
//!     layout: Layout::Current,
//!     mean_rgb: Some([123.68, 116.779, 103.939]),
//!     layers: vec![
//!         Layer {
//!             name: "conv1_1".into(),
//!             kind: LayerKind::Conv(Conv {
//!                 weights: Array4::from_shape_fn((2, 3, 3, 3), |(k, c, y, x)| (1000 * k + 100 * c + 10 * x + y) as f32),
//!                 bias: Array1::from(vec![0.5, 1.5]),
//!                 stride: [1, 1],
//!                 pad: Pad::uniform(1),
//!             }),
//!         },
//!         Layer { name: "relu1_1".into(), kind: LayerKind::Relu },
//!     ],
//! };
//! let dir = std::env::temp_dir().join(format!("vgg-weights-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("tiny.mat");
//! write_simplenn(&path, &model, Layout::Current, Compression::Zlib)?;
//!
//! let loaded = vgg_weights::load(&path, &LoadOptions::default())?;
//! assert_eq!(loaded, model);
//! let LayerKind::Conv(conv) = &loaded.layers[0].kind else { panic!("conv1_1 is a convolution") };
//! assert_eq!(conv.weights.shape(), &[2, 3, 3, 3]); // [c_out, c_in, kh, kw]
//! assert_eq!(conv.weights[[1, 2, 0, 1]], 1210.0); // k = 1, c = 2, y = 0, x = 1
//!
//! // Only what is needed, up to a named layer:
//! let first = vgg_weights::load(&path, &LoadOptions::up_to("conv1_1"))?;
//! assert_eq!(first.layers.len(), 1);
//! std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), vgg_weights::Error>(())
//! ```

#![warn(missing_docs)]

pub mod mat;
pub mod write;

mod error;
mod vgg;

use std::fmt;
use std::path::Path;

use ndarray::{Array1, Array4};

/// The `ndarray` crate (version 0.17) whose arrays hold the weights of a [`VggModel`].
pub use ndarray;

pub use error::{Error, Result};

/// What to load.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Stop after the layer of this name (e.g. `"conv5_1"` for style transfer); `None` loads every layer.
    pub last_layer: Option<String>,
}

impl LoadOptions {
    /// Load the layers up to and including `name`.
    pub fn up_to(name: impl Into<String>) -> LoadOptions {
        LoadOptions {
            last_layer: Some(name.into()),
        }
    }
}

/// Which of the two published file layouts a model came from (or is written as).
///
/// Other layouts may be read in later versions, so a `match` needs a `_` arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Layout {
    /// MatConvNet beta16: variables `layers`, `normalization` (with `averageImage`), `classes`.
    Beta16,
    /// The current files: variables `layers` and `meta` (with `meta.normalization.averageImage`).
    Current,
}

impl fmt::Display for Layout {
    /// `beta16` or `current`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layout::Beta16 => "beta16",
            Layout::Current => "current",
        })
    }
}

/// A MatConvNet simplenn model: a chain of layers and the mean pixel.
#[derive(Debug, Clone, PartialEq)]
pub struct VggModel {
    /// The file layout it was read from.
    pub layout: Layout,
    /// The mean pixel (R, G, B), subtracted from images before the first layer; `None` if the file has none.
    ///
    /// The network expects RGB images with values in 0–255 and this mean pixel subtracted from each
    /// pixel (MatConvNet's `normalization.averageImage`; for the ImageNet VGG files
    /// `[123.68, 116.779, 103.939]`), as `[3, H, W]` `f32` for `tensor-ops`.
    pub mean_rgb: Option<[f32; 3]>,
    /// The layers, in order (up to [`LoadOptions::last_layer`]).
    pub layers: Vec<Layer>,
}

impl VggModel {
    /// Index of the layer called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.layers.iter().position(|l| l.name == name)
    }

    /// The layer called `name`.
    pub fn layer(&self, name: &str) -> Option<&Layer> {
        self.layers.iter().find(|l| l.name == name)
    }
}

/// One layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// Its name (e.g. `conv1_1`).
    pub name: String,
    /// What it does, with its parameters.
    pub kind: LayerKind,
}

/// The kind of a layer, with its parameters.
///
/// More kinds may be recognised in later versions (they are [`LayerKind::Other`] now), so a `match`
/// needs a `_` arm.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum LayerKind {
    /// Convolution.
    Conv(Conv),
    /// Rectified linear unit.
    Relu,
    /// Max or average pooling.
    Pool(Pool),
    /// Any other MatConvNet layer type (`softmax`, `dropout`, `lrn`, …), kept by name only.
    Other {
        /// MatConvNet's `type` string.
        type_name: String,
    },
}

impl LayerKind {
    /// MatConvNet's `type` string: `conv`, `relu`, `pool`, or the stored name of another type.
    pub fn type_name(&self) -> &str {
        match self {
            LayerKind::Conv(_) => "conv",
            LayerKind::Relu => "relu",
            LayerKind::Pool(_) => "pool",
            LayerKind::Other { type_name } => type_name,
        }
    }
}

/// A convolution layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Conv {
    /// Filters `[c_out, c_in, kh, kw]`, row-major.
    pub weights: Array4<f32>,
    /// One bias per output channel.
    pub bias: Array1<f32>,
    /// `[y, x]`.
    pub stride: [usize; 2],
    /// Zero padding.
    pub pad: Pad,
}

/// A pooling layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// Max or average.
    pub method: PoolMethod,
    /// Window `[h, w]`.
    pub size: [usize; 2],
    /// `[y, x]`.
    pub stride: [usize; 2],
    /// Padding.
    pub pad: Pad,
}

/// The pooling function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PoolMethod {
    /// Maximum over the window.
    Max,
    /// Average over the window.
    Avg,
}

impl fmt::Display for PoolMethod {
    /// `max` or `avg`, as MatConvNet writes them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PoolMethod::Max => "max",
            PoolMethod::Avg => "avg",
        })
    }
}

/// Padding on each side, in pixels (MatConvNet's `[top bottom left right]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Pad {
    /// Rows added above.
    pub top: usize,
    /// Rows added below.
    pub bottom: usize,
    /// Columns added on the left.
    pub left: usize,
    /// Columns added on the right.
    pub right: usize,
}

impl Pad {
    /// The same padding on all four sides.
    pub fn uniform(p: usize) -> Pad {
        Pad {
            top: p,
            bottom: p,
            left: p,
            right: p,
        }
    }
}

/// Loads a MatConvNet simplenn model from a `.mat` file.
///
/// The file is memory-mapped; only the layers up to [`LoadOptions::last_layer`] are converted.
///
/// # Errors
/// [`Error::Mat`] when the file cannot be read as a MAT Level-5 file (I/O, truncated, bad header, a size
/// field larger than the file, MAT 7.3 or Level 4, corrupt compressed data, no `layers` variable);
/// [`Error::MissingField`], [`Error::WrongClass`], [`Error::WrongShape`], [`Error::NotAChain`] or
/// [`Error::UnsupportedLayer`] when it is not a simplenn chain of the expected form;
/// [`Error::UnknownLayer`] when `last_layer` names no layer.
pub fn load(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<VggModel> {
    let file = mat::MatFile::open(path)?;
    vgg::from_mat(&file, opts)
}

/// Loads a model from the bytes of a `.mat` file; errors name it `<memory>`.
///
/// # Errors
/// As [`load`].
pub fn load_bytes(bytes: Vec<u8>, opts: &LoadOptions) -> Result<VggModel> {
    let file = mat::MatFile::from_bytes(bytes)?;
    vgg::from_mat(&file, opts)
}

/// Extracts a model from an already opened [`mat::MatFile`].
///
/// # Errors
/// As [`load`].
pub fn from_mat_file(file: &mat::MatFile, opts: &LoadOptions) -> Result<VggModel> {
    vgg::from_mat(file, opts)
}

/// The README's examples, run as doctests so that they keep compiling and passing.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
