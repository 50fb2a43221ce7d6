//! Timing Adam iterations of the default objective at a size, on synthetic images: what `nst bench`
//! measures, with the run's own optimizer path (on a device, the iterate and moments stay there).

use std::time::Instant;

use ndarray::Array3;
use nst_optim::{Adam, AdamConfig};
use tensor_ops::Backend;
use vgg_weights::{PoolMethod, VggModel};

use crate::image_io::Size;
use crate::objective::{ObjectiveSpec, StyleImage, StyleObjective};
use crate::run::Opt;
use crate::{Error, Result};

/// What [`time_adam`] measured.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchReport {
    /// Seconds to build the network and the targets.
    pub startup_seconds: f64,
    /// Seconds of each timed iteration (the warm-up excluded).
    pub seconds: Vec<f64>,
    /// The objective's value at the start of every step, the warm-up's first: the same numbers as
    /// `benches/compare/compare.py`'s PyTorch worker prints for the same algorithm, so the two runs
    /// can be checked against each other.
    pub costs: Vec<f64>,
    /// Where the objective ran.
    pub device: &'static str,
}

impl BenchReport {
    /// The median of [`BenchReport::seconds`].
    pub fn median(&self) -> f64 {
        crate::record::median(&self.seconds)
    }
}

/// Builds the default objective (average pooling) of `model` at `size` on `backend` with synthetic
/// content and style images, then times one warm-up and `iterations` Adam steps; `each(i, seconds,
/// cost)` is called after every step (step 0 is the warm-up), with the objective's value at the step's start.
///
/// # Errors
/// [`Error::Objective`] when the network or a target cannot be built; [`Error::Step`] when a step fails.
pub fn time_adam(
    model: &VggModel,
    backend: Backend,
    size: Size,
    iterations: usize,
    mut each: impl FnMut(usize, f64, f64),
) -> Result<BenchReport> {
    let t0 = Instant::now();
    let spec = ObjectiveSpec::course();
    let (h, w) = (size.height as usize, size.width as usize);
    let img = |k: usize| {
        Array3::from_shape_fn((3, h, w), |(c, y, x)| {
            ((c * 31 + y * 7 + x * 13 + k) % 97) as f32 - 48.0
        })
    };
    let (content, style) = (img(0), img(5));
    let network = crate::network::build_network(model, Some(PoolMethod::Avg))?;
    let mut obj = StyleObjective::new(
        network,
        backend,
        &spec,
        content.view(),
        &[StyleImage::new(style.view(), 1.0)],
    )?;
    let startup_seconds = t0.elapsed().as_secs_f64();
    let mut x = img(9).into_raw_vec_and_offset().0;
    let adam = Adam::new(AdamConfig::tensorflow_v1(2.0)).map_err(Error::Optimizer)?;
    let mut opt = Opt::adam(adam, &obj);
    let mut seconds = Vec::with_capacity(iterations);
    let mut costs = Vec::with_capacity(iterations + 1);
    for i in 0..=iterations {
        let t = Instant::now();
        let report = opt
            .step(&mut x, &mut obj)
            .map_err(|e| Error::Step(format!("step {i}: {e}")))?;
        let s = t.elapsed().as_secs_f64();
        if i > 0 {
            seconds.push(s);
        }
        costs.push(report.value);
        each(i, s, report.value);
    }
    Ok(BenchReport {
        startup_seconds,
        seconds,
        costs,
        device: obj.device_name(),
    })
}
