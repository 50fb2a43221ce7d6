//! Writes VGG-19's layers (up to `LAST`, default `relu5_1`) with seeded random weights as a MatConvNet
//! `.mat` file: the real network's shapes and work, for timing and large-size runs without the 550 MB
//! ImageNet file (the pictures mean nothing):
//!
//! ```text
//! cargo run --release -p nst-engine --example random_vgg19 -- OUT.mat [LAST] [SEED]
//! ```
#![allow(clippy::print_stdout, reason = "an example program says what it wrote")]

use vgg_weights::Layout;
use vgg_weights::write::{Compression, write_simplenn};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (out, last, seed) = match args.as_slice() {
        [out] => (out.clone(), "relu5_1".to_owned(), 1),
        [out, last] => (out.clone(), last.clone(), 1),
        [out, last, seed] => (out.clone(), last.clone(), seed.parse()?),
        _ => return Err("usage: random_vgg19 OUT.mat [LAST] [SEED]".into()),
    };
    let model = nst_engine::network::random_vgg19(&last, seed);
    write_simplenn(&out, &model, Layout::Beta16, Compression::None)?;
    println!("wrote {out}: {} layers up to {last}", model.layers.len());
    Ok(())
}
