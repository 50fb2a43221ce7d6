//! Convolution, ReLU and pooling with backpropagation for `[C, H, W]` f32 activations (batch 1),
//! and a network walk that keeps only what the backward pass needs.
//!
//! - [`Conv2d`]: any kernel, stride and padding, with bias; im2col + GEMM over tiles of output rows,
//!   run in parallel with rayon (one pool: each tile calls single-threaded `matrixmultiply`). The input
//!   gradient is `col2im(Wᵀ·dY)`; weight and bias gradients are on request ([`Conv2d::backward_params`]).
//!   3×3 stride-1 layers with at least [`WINOGRAD_MIN_CHANNELS`] channels use Winograd F(4×4, 3×3)
//!   for both directions instead ([`ConvAlgorithm::Winograd4`]; outputs of fewer than 64 4×4 tiles
//!   take F(2×2, 3×3), [`ConvAlgorithm::Winograd`]), on a microkernel of the crate's own (AVX-512,
//!   AVX2+FMA or portable, chosen at run time).
//! - [`Relu`] (one mask bit per element), [`MaxPool2d`] (one byte per output for the argmax) and [`AvgPool2d`],
//!   with MatConvNet's output sizes and padding rules (see the [`pool`] module docs).
//! - [`Network`]: a list of boxed [`Layer`]s; `forward(input, taps)` returns the tapped outputs,
//!   `backward(grad_taps)` sums the gradients arriving at several taps on the way down. [`Layer`] is
//!   open: a layer type of your own goes into a [`Network`] like the built-in ones. Where a layer can
//!   ([`Layer::fuses`]), the walk runs it with the ReLU above it, and a 2×2 average pooling above
//!   that, as one step ([`Epilogue`]): F(4×4) and im2col convolutions apply them in their output
//!   pass and read the gradient through the ReLU's mask, with the same values bit for bit.
//! - [`Gemm`]: `C ← α·A·B + β·C`, with [`CpuGemm`] (parallel, deterministic) and, behind the `cuda`
//!   feature, `CublasGemm`; [`Backend`] selects one at run time.
//! - [`device`]: the same layers on a device ([`device::Device`], [`device::DeviceNetwork`]), with every
//!   activation kept in device memory.
//!
//! Results are bit-identical from run to run for the same input: work is split into fixed-size items
//! that never depend on the thread count, and no reduction depends on scheduling order.
//!
//! Activations, weights and gradients are [`ndarray`] arrays. The crate re-exports the `ndarray` it is
//! built with (version 0.17) as `tensor_ops::ndarray`; a program on another `ndarray` major version
//! gets "mismatched types" errors and should depend on `ndarray = "0.17"` or use the re-export.
//!
//! This crate knows nothing about VGG, images, losses or optimizers; building a network from
//! a file of weights is the caller's job (one [`Conv2d::new`] per convolution, as in the example).
//!
//! ## Features
//! - `cuda`: `CublasGemm`, `Backend::Cuda` and `device::cuda::CudaDevice` (cuBLAS + kernels compiled by NVRTC)
//!   through `cudarc` with dynamic loading. Builds without a CUDA toolkit; `Backend::cuda()` and
//!   `CudaDevice::new()` probe for the driver, cuBLAS and NVRTC libraries at run time and return
//!   [`Error::DeviceUnavailable`] when they are missing. Without the feature `Backend::cuda()` returns [`Error::NotCompiled`].
//!
//! The [`device`] module is the device-resident backend (activations kept on a device for the whole pass);
//! it is always compiled, so that a [`device::Device`] can also be implemented outside this crate.
//!
//! ## Example
//! ```
//! use approx::assert_abs_diff_eq;
//! use tensor_ops::ndarray::{array, Array1, Array3, Array4};
//! use tensor_ops::{Conv2d, Layer, Network, Padding, Relu};
//!
//! // A 1×1 convolution that doubles its single channel, then a ReLU.
//! let conv = Conv2d::new("conv", Array4::from_elem((1, 1, 1, 1), 2.0), Array1::zeros(1), [1, 1], Padding::ZERO)?;
//! let mut net = Network::new(vec![Box::new(conv), Box::new(Relu::new("relu"))]);
//! let x = array![[[1.0_f32, -1.0], [0.5, -2.0]]];
//! let out = net.forward(x.view(), &[1])?;
//! assert_abs_diff_eq!(out[0], array![[[2.0, 0.0], [1.0, 0.0]]]);
//! let grad = net.backward(&[Array3::ones((1, 2, 2)).view()])?;
//! assert_abs_diff_eq!(grad, array![[[2.0, 0.0], [2.0, 0.0]]]);
//! # Ok::<(), tensor_ops::Error>(())
//! ```
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod backend;
pub mod conv2d;
#[cfg(feature = "cuda")]
mod cuda;
pub mod device;
mod error;
mod gemm;
mod layer;
mod network;
mod packed_gemm;
pub mod pool;
mod relu;
mod row_mask;
mod shape;
mod winograd;
mod winograd4;

/// The `ndarray` crate (version 0.17) whose arrays this crate's layers take and return.
pub use ndarray;

pub use backend::Backend;
pub use conv2d::{Conv2d, Conv2dGeometry, Conv2dParamGrads, ConvAlgorithm, WINOGRAD_MIN_CHANNELS};
#[cfg(feature = "cuda")]
#[cfg_attr(docsrs, doc(cfg(feature = "cuda")))]
pub use cuda::CublasGemm;
pub use error::{Error, Result};
pub use gemm::{CpuGemm, Gemm};
pub use layer::{Epilogue, Layer, RowWindow, Saved};
pub use network::Network;
pub use pool::{AvgPool2d, MaxPool2d, PoolGeometry};
pub use relu::Relu;
pub use shape::{Padding, Shape};

/// The README's examples, run as doctests so that they keep compiling and passing.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
