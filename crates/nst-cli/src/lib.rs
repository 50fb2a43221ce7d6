//! The style-transfer pipeline behind the `nst` binary, as a library.
#![warn(missing_docs)]

pub mod cli;
pub mod download;
pub mod image_io;
pub mod pipeline;
#[cfg(test)]
mod testing;
