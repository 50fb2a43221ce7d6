//! Rewrites a MatConvNet model in the other layout or storage:
//! `cargo run --release --example rewrite -- IN OUT beta16|current plain|zlib`.

#![allow(clippy::print_stdout)]

use std::path::PathBuf;

use vgg_weights::write::{Compression, write_simplenn};
use vgg_weights::{Layout, LoadOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output, layout, storage] = args.as_slice() else {
        return Err("usage: rewrite IN OUT beta16|current plain|zlib".into());
    };
    let layout = match layout.as_str() {
        "beta16" => Layout::Beta16,
        "current" => Layout::Current,
        other => return Err(format!("unknown layout {other}").into()),
    };
    let compression = match storage.as_str() {
        "plain" => Compression::None,
        "zlib" => Compression::Zlib,
        other => return Err(format!("unknown storage {other}").into()),
    };
    let model = vgg_weights::load(PathBuf::from(input), &LoadOptions::default())?;
    write_simplenn(PathBuf::from(output), &model, layout, compression)?;
    println!("wrote {output} ({} layers)", model.layers.len());
    Ok(())
}
