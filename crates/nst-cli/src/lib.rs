//! The style-transfer pipeline behind the `nst` binary, as a library (Gatys, Ecker & Bethge 2016).
//!
//! - [`pipeline`]: the network built from a MatConvNet VGG model and [`pipeline::StyleObjective`], the
//!   cost of an image with its gradient, for the optimizers of `nst-optim`. No I/O, no printing.
//! - [`image_io`]: decoding (EXIF orientation, alpha, 16-bit, CMYK), the working-size rules, tensors,
//!   atomic writes.
//! - [`download`]: the only code that uses the network (the pre-trained weights).
//! - [`checkpoint`], [`metrics`], [`settings`], [`estimate`]: what a run saves, logs and checks.
//! - [`cli`], [`app`]: the command line (clap types, dispatch, printing) used by the `nst` binary.
//!
//! ## Features
//! - `cuda`: the GPU backend of `tensor-ops` (`nst stylize --device cuda`): the whole iteration on the GPU
//!   ([`pipeline::StyleObjective::on_device`], device-resident Adam in the run loop).
#![warn(missing_docs)]
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the command-line layer (app, stylize) prints"
)]

pub mod app;
pub mod checkpoint;
pub mod cli;
pub mod download;
pub mod estimate;
pub mod image_io;
pub mod metrics;
pub mod pipeline;
pub mod settings;
pub mod stylize;
#[cfg(test)]
mod testing;
