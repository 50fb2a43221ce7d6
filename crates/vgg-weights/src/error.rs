//! The crate's error type.

use std::path::PathBuf;

use crate::mat;

/// Everything that can go wrong while loading or writing a MatConvNet model.
///
/// Every variant names the file (`<memory>` for [`load_bytes`](crate::load_bytes)); errors about one
/// layer name it too.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The MAT-file itself could not be read: I/O, truncated file, bad header, a size field larger than
    /// the file, MAT 7.3 or Level 4, an unsupported class, a missing variable, corrupt compressed data.
    #[error(transparent)]
    Mat(#[from] mat::Error),
    /// A struct lacks a field the model needs.
    #[error("{}: {context} has no field `{field}`", path.display())]
    MissingField {
        /// The file.
        path: PathBuf,
        /// Which struct (e.g. "layer `conv1_1`", "variable `meta`").
        context: String,
        /// The field.
        field: String,
    },
    /// A value has the wrong class.
    #[error("{}: {what} should be {expected}, but is {found}", path.display())]
    WrongClass {
        /// The file.
        path: PathBuf,
        /// Which value.
        what: String,
        /// What it should be.
        expected: String,
        /// What it is.
        found: mat::Class,
    },
    /// A value has the wrong shape or an invalid value.
    #[error("{}: {what} should be {expected}, but is {found}", path.display())]
    WrongShape {
        /// The file.
        path: PathBuf,
        /// Which value.
        what: String,
        /// What it should be.
        expected: String,
        /// What it is (dimensions or values).
        found: String,
    },
    /// The layers do not form a feed-forward chain (e.g. a convolution's input channels do not match the
    /// previous convolution's output channels).
    #[error("{}: not a VGG layer chain at layer `{layer}`: {reason}", path.display())]
    NotAChain {
        /// The file.
        path: PathBuf,
        /// The layer where the chain breaks.
        layer: String,
        /// Why.
        reason: String,
    },
    /// A layer uses a feature this crate does not support (e.g. dilation, leaky ReLU).
    #[error("{}: layer `{layer}`: {reason} is not supported", path.display())]
    UnsupportedLayer {
        /// The file.
        path: PathBuf,
        /// The layer.
        layer: String,
        /// What is not supported.
        reason: String,
    },
    /// [`LoadOptions::last_layer`](crate::LoadOptions::last_layer) names no layer of the model.
    #[error("{}: no layer named `{name}`; the layers are: {}", path.display(), available.join(", "))]
    UnknownLayer {
        /// The file.
        path: PathBuf,
        /// The name asked for.
        name: String,
        /// The layer names in the file.
        available: Vec<String>,
    },
    /// A model cannot be written as asked (e.g. its arrays are inconsistent).
    #[error("{}: cannot write the model: {reason}", path.display())]
    InvalidModel {
        /// The file to be written.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Writing a file failed.
    #[error("{}: cannot write", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
