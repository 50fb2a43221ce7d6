//! Evaluations per L-BFGS iteration under each first-step rule (`nst_optim::FirstStep`), on a real
//! model with the course objective (average pooling), starting from the content image; without
//! pictures, the synthetic images of `nst bench` (the start is a third one):
//!
//! ```text
//! cargo run --release -p nst-engine --example lbfgs_first_step -- MODEL.mat [WxH] [ITERATIONS] [CONTENT STYLE]
//! ```
#![allow(
    clippy::print_stdout,
    reason = "an example program prints what it measured"
)]

use std::time::Instant;

use ndarray::Array3;
use nst_engine::objective::StyleImage;
use nst_engine::{ObjectiveSpec, StyleObjective};
use nst_optim::{FirstStep, Lbfgs, LbfgsConfig, Optimizer};
use tensor_ops::Backend;
use vgg_weights::{LoadOptions, PoolMethod};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(model_path) = args.first() else {
        return Err("usage: lbfgs_first_step MODEL.mat [WxH] [ITERATIONS] [CONTENT STYLE]".into());
    };
    let size = args.get(1).map_or("400x300", String::as_str);
    let iterations: usize = args.get(2).map_or(Ok(4), |s| s.parse())?;
    let (w, h) = size.split_once('x').ok_or("size WxH")?;
    let (w, h): (usize, usize) = (w.parse()?, h.parse()?);
    let spec = ObjectiveSpec::course();
    let last = nst_engine::network::last_vgg_layer(spec.layer_names());
    let model = vgg_weights::load(model_path, &LoadOptions { last_layer: last })?;
    let img = |k: usize| {
        Array3::from_shape_fn((3, h, w), |(c, y, x)| {
            ((c * 31 + y * 7 + x * 13 + k) % 97) as f32 - 48.0
        })
    };
    let mean = model.mean_rgb.unwrap_or([123.68, 116.779, 103.939]);
    let size = nst_engine::Size {
        width: u32::try_from(w)?,
        height: u32::try_from(h)?,
    };
    let picture = |p: &String| -> Result<Array3<f32>, Box<dyn std::error::Error>> {
        Ok(nst_engine::image_io::load_at(std::path::Path::new(p), size)?.to_tensor(mean))
    };
    let (content, style, start) = match (args.get(3), args.get(4)) {
        (Some(c), Some(s)) => (picture(c)?, picture(s)?, picture(c)?),
        _ => (img(0), img(5), img(9)),
    };
    for rule in [FirstStep::UnitLength, FirstStep::ZeroTarget] {
        let network = nst_engine::network::build_network(&model, Some(PoolMethod::Avg))?;
        let mut obj = StyleObjective::new(
            network,
            Backend::Cpu,
            &spec,
            content.view(),
            &[StyleImage::new(style.view(), 1.0)],
        )?;
        let mut opt = Lbfgs::new(LbfgsConfig {
            first_step: rule,
            ..LbfgsConfig::default()
        })?;
        let mut x = start.clone().into_raw_vec_and_offset().0;
        let t = Instant::now();
        let mut evals = Vec::new();
        let mut value = 0.0;
        for _ in 0..iterations {
            let r = opt.step(&mut x, &mut obj)?;
            evals.push(r.evaluations);
            value = r.value;
        }
        println!(
            "{rule:?}: evaluations per iteration {evals:?}, {} in all, cost after {iterations}: {value:.6e}, {:.1} s",
            evals.iter().sum::<u64>(),
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
