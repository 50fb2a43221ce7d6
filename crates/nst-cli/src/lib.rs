//! The `nst` command line, a thin front end over `nst-engine` (Gatys, Ecker & Bethge 2016).
//!
//! - [`cli`], [`args`]: the clap types, and the flags turned into the engine's `RunSpec`.
//! - [`stylize`]: `nst stylize`: the engine's events as lines, a progress bar, metrics, GIF and plot.
//! - [`batch`]: `nst batch`: many runs from a batch file, shardable across workers.
//! - [`serve`]: `nst serve`: the studio in the browser (`nst-serve`).
//! - [`app`]: dispatch of the other subcommands (`inspect`, `download-weights`, `bench`).
//! - [`download`]: the only code that uses the network (the pre-trained weights).
//! - [`metrics`]: the metrics file, the cost plot and the animation.
//!
//! ## Features
//! - `cuda`: the GPU backend (`nst stylize --device cuda`), through `nst-engine`'s feature.
#![warn(missing_docs)]
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the command-line layer (app, stylize) prints"
)]

pub mod app;
pub mod args;
pub mod batch;
pub mod cli;
pub mod download;
pub mod metrics;
pub mod serve;
pub mod stylize;
#[cfg(test)]
mod testing;
