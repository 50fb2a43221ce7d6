//! Times `vgg_weights::load` of the layers up to `conv5_1` (or the layer given):
//! `cargo run --release --example load_time -- FILE [LAST_LAYER]`.

#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::time::Instant;

use vgg_weights::{LayerKind, LoadOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(args.next().ok_or("usage: load_time FILE [LAST_LAYER]")?);
    let last = args.next().unwrap_or_else(|| "conv5_1".to_owned());
    let start = Instant::now();
    let model = vgg_weights::load(&path, &LoadOptions::up_to(&last))?;
    let elapsed = start.elapsed();
    let n_weights: usize = model
        .layers
        .iter()
        .map(|l| match &l.kind {
            LayerKind::Conv(c) => c.weights.len() + c.bias.len(),
            _ => 0,
        })
        .sum();
    println!(
        "loaded {} layers up to {last} ({n_weights} parameters) in {:.3} s",
        model.layers.len(),
        elapsed.as_secs_f64()
    );
    Ok(())
}
