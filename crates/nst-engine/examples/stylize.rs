//! Stylizes one image with the engine alone, printing its events:
//!
//! ```text
//! cargo run --release -p nst-engine --example stylize -- MODEL.mat CONTENT STYLE OUT.png [ITERATIONS]
//! ```
//!
//! `MODEL.mat` is a MatConvNet VGG model (`imagenet-vgg-verydeep-19.mat`). With `--random-model` in
//! its place, VGG-19's first layers with random weights are written next to `OUT.png` first and the
//! run is 96 px (the pictures then mean nothing; `cargo xtask test` runs the example this way).
#![allow(
    clippy::print_stdout,
    reason = "an example program prints what it does"
)]

use std::path::PathBuf;

use nst_engine::network::{parse_layers, random_vgg19};
use nst_engine::{Control, Event, RunOptions, RunSpec, SinkError};
use vgg_weights::Layout;
use vgg_weights::write::{Compression, write_simplenn};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, content, style, out, rest @ ..] = args.as_slice() else {
        return Err(
            "usage: stylize MODEL.mat|--random-model CONTENT STYLE OUT.png [ITERATIONS]".into(),
        );
    };
    let out = PathBuf::from(out);
    let dir = out.parent().map(PathBuf::from).unwrap_or_default();
    let mut spec;
    if model == "--random-model" {
        let weights = dir.join("random-vgg.mat");
        write_simplenn(
            &weights,
            &random_vgg19("relu2_1", 1),
            Layout::Beta16,
            Compression::None,
        )?;
        spec = RunSpec::new(content, vec![style.into()], weights);
        // The random model stops at relu2_1, so the costs use the layers it has.
        spec.objective.content_layers = parse_layers("--content-layers", "relu2_1")?;
        spec.objective.style_layers = parse_layers("--style-layers", "relu1_1,relu2_1")?;
        spec.max_size = 96;
    } else {
        spec = RunSpec::new(content, vec![style.into()], model);
    }
    spec.iterations = rest.first().map(|n| n.parse()).transpose()?.unwrap_or(100);
    spec.print_every = 10;
    spec.out_dir = dir.join("stylize-example");
    spec.output = out;

    let control = Control::new();
    let mut sink = |e: &Event| {
        match e {
            Event::Started(s) => println!("working size {}, {} stage(s)", s.size, s.stages.len()),
            Event::Logged { record, .. } => println!(
                "iteration {:>4}: total {:.4e} (content {:.4e}, style {:.4e})",
                record.iteration, record.total, record.content, record.style
            ),
            Event::Finished(s) => println!("{:?}: {}", s.ended, s.output.display()),
            _ => {}
        }
        Ok::<(), SinkError>(())
    };
    nst_engine::run(spec, RunOptions::default(), &mut sink, &control)?;
    Ok(())
}
