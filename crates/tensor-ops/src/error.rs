//! The error type of `tensor-ops`.

use crate::shape::{Padding, Shape};

/// Everything that can go wrong in `tensor-ops`. Variants name the layer and the shapes involved.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A layer was configured with impossible parameters (zero stride, padding not smaller than the window, …).
    #[error("layer `{layer}`: invalid configuration: {reason}")]
    InvalidConfig {
        /// The layer's name.
        layer: String,
        /// What is wrong.
        reason: String,
    },
    /// The input's channel count does not match the convolution's weights.
    #[error("layer `{layer}`: input {input} does not match weight [{}, {}, {}, {}]: expected {} input channels",
        weight[0], weight[1], weight[2], weight[3], weight[1])]
    ChannelMismatch {
        /// The layer's name.
        layer: String,
        /// Shape of the input that was given.
        input: Shape,
        /// Weight dimensions `[c_out, c_in, kh, kw]`.
        weight: [usize; 4],
    },
    /// The (padded) input is smaller than the kernel or pooling window.
    #[error("layer `{layer}`: input {input} with padding {padding} is smaller than the {}×{} window", window[0], window[1])]
    InputTooSmall {
        /// The layer's name.
        layer: String,
        /// Shape of the input that was given.
        input: Shape,
        /// Kernel or window size `[h, w]`.
        window: [usize; 2],
        /// Padding of the layer.
        padding: Padding,
    },
    /// An array handed to a layer or network has the wrong shape.
    #[error("layer `{layer}`: {what} has shape {actual}, expected {expected}")]
    ShapeMismatch {
        /// The layer's name (or `network`).
        layer: String,
        /// Which array (`output`, `grad_output`, `grad_input`, `grad_taps[1]`, …).
        what: String,
        /// The shape that was expected.
        expected: Shape,
        /// The shape that was given.
        actual: Shape,
    },
    /// An output or gradient buffer handed to a layer is not in standard (row-major, contiguous) layout.
    #[error("layer `{layer}`: {what} must be in standard (row-major, contiguous) layout")]
    NotContiguous {
        /// The layer's name.
        layer: String,
        /// Which array.
        what: String,
    },
    /// A pooling window has more elements than the 32-bit argmax positions can address.
    #[error("layer `{layer}`: input {input}: the pooling window has more than 2^32 elements")]
    TooLarge {
        /// The layer's name.
        layer: String,
        /// Shape of the input that was given.
        input: Shape,
    },
    /// A tap index is past the last layer of the network.
    #[error("network: tap {tap} is out of range for {n_layers} layers")]
    TapOutOfRange {
        /// The tap that was asked for.
        tap: usize,
        /// Number of layers of the network.
        n_layers: usize,
    },
    /// `Network::forward` was called without taps.
    #[error("network: no taps given")]
    NoTaps,
    /// `Network::backward` was called without a preceding `Network::forward` (an inference pass keeps nothing).
    #[error("network: backward needs a preceding `forward` (not `forward_inference`)")]
    NoForwardPass,
    /// `Network::backward` got a different number of gradients than the last forward had taps.
    #[error("network: got {actual} tap gradients, the last forward had {expected} taps")]
    TapCount {
        /// Number of taps of the last forward pass.
        expected: usize,
        /// Number of gradients given.
        actual: usize,
    },
    /// The requested backend was not compiled into this build.
    #[error("backend not compiled in: rebuild with `--features {feature}`")]
    NotCompiled {
        /// The cargo feature that enables it.
        feature: &'static str,
    },
    /// The backend is compiled in but no usable device was found.
    #[error("device unavailable: {reason}")]
    DeviceUnavailable {
        /// What was missing.
        reason: String,
    },
    /// A layer type has no kernels on the device-resident backend.
    #[error(
        "layer `{layer}`: this layer type has no device kernels (convolution, ReLU and pooling do)"
    )]
    NoDeviceKernel {
        /// The layer's name.
        layer: String,
    },
    /// A device call failed.
    #[error("device error in {op}: {message}")]
    Device {
        /// The operation that failed.
        op: &'static str,
        /// The driver's message.
        message: String,
    },
}

/// `Result` with [`enum@Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Replaces the layer name of a layer-level error (used by geometry constructors, which know only the op).
    pub(crate) fn in_layer(mut self, name: &str) -> Self {
        match &mut self {
            Error::InvalidConfig { layer, .. }
            | Error::ChannelMismatch { layer, .. }
            | Error::InputTooSmall { layer, .. }
            | Error::ShapeMismatch { layer, .. }
            | Error::NotContiguous { layer, .. }
            | Error::TooLarge { layer, .. } => *layer = name.to_owned(),
            _ => {}
        }
        self
    }
}
