//! A stylization step from the four library crates alone, written as a stranger would write it:
//! a tiny random VGG-like model written with `vgg-weights`' writer and read back, turned into a
//! `tensor-ops` network by hand, content, style and total-variation costs from `nst-costs`, and
//! Adam then L-BFGS steps from `nst-optim`. `cargo xtask test` runs it; it prints what it does and
//! fails (non-zero exit) if a step does not behave.

use std::error::Error;
use std::ops::ControlFlow;
use std::path::Path;

use nst_costs::{
    ContentNorm, StyleNorm, TvKind, content_loss, gram, style_layer_loss, total_variation,
};
use nst_optim::{Adam, AdamConfig, Lbfgs, LbfgsConfig, Objective, Optimizer, minimize};
// The arrays of all four crates are the one `ndarray` they re-export: no version to keep in step.
use tensor_ops::ndarray::{Array1, Array2, Array3, Array4, ArrayView3};
use tensor_ops::{AvgPool2d, Conv2d, CpuGemm, Layer, MaxPool2d, Network, Padding, Relu};
use vgg_weights::write::{Compression, write_simplenn};
use vgg_weights::{Conv, LayerKind, Layout, LoadOptions, Pad, Pool, PoolMethod, VggModel};

/// Errors of this program: those of every crate, boxed.
type BoxError = Box<dyn Error + Send + Sync>;

/// Image size: 3 channels of 24×24 pixels.
const SHAPE: (usize, usize, usize) = (3, 24, 24);

fn main() -> Result<(), BoxError> {
    let model = random_model(7);
    let path = std::env::temp_dir().join(format!("nst-downstream-{}.mat", std::process::id()));
    let result = run(&model, &path);
    // Remove the file whatever happened.
    let _ = std::fs::remove_file(&path);
    result
}

fn run(model: &VggModel, path: &Path) -> Result<(), BoxError> {
    // 1. vgg-weights: write the model as a MatConvNet file, read it back whole and in part.
    write_simplenn(path, model, Layout::Current, Compression::Zlib)?;
    let loaded = vgg_weights::load(path, &LoadOptions::default())?;
    if &loaded != model {
        return Err("the model read back differs from the one written".into());
    }
    let first = vgg_weights::load(path, &LoadOptions::up_to("relu1_1"))?;
    println!(
        "vgg-weights: wrote and read back {} layers ({} up to relu1_1)",
        loaded.layers.len(),
        first.layers.len()
    );

    // 2. tensor-ops: the network, by hand.
    let mut net = network_from(&loaded)?;
    let taps = ["relu1_1", "relu2_1"].map(|name| net.index_of(name).expect("the model has it"));
    println!(
        "tensor-ops: a network of {} layers, taps {taps:?}",
        net.len()
    );

    // 3. nst-costs: the targets, from a content and a style image.
    let content = image(|c, y, x| 60.0 * ((x + y) as f32 / 8.0).sin() + 10.0 * c as f32);
    let style = image(|c, y, x| {
        if (x / 4 + y / 4 + c) % 2 == 0 {
            80.0
        } else {
            -80.0
        }
    });
    let content_target = net.forward(content.view(), &[taps[1]])?.remove(0);
    let style_targets: Vec<Array2<f32>> = net
        .forward(style.view(), &taps)?
        .iter()
        .map(|f| gram(f.view(), &CpuGemm))
        .collect();
    let mut objective = Stylization {
        net,
        taps,
        content_target,
        style_targets,
    };

    // 4. nst-optim: Adam from the content image, then L-BFGS.
    let mut x: Vec<f32> = content.iter().copied().collect();
    let mut values = Vec::new();
    let mut adam = Adam::new(AdamConfig::tensorflow_v1(2.0))?;
    // `?` on the optimizer's error: OptimError<BoxError> is an Error, so it converts into a BoxError.
    minimize(&mut adam, &mut x, &mut objective, 5, |info| {
        values.push(info.value);
        ControlFlow::Continue(())
    })?;
    let shown: Vec<String> = values.iter().map(|v| format!("{v:.4e}")).collect();
    println!("nst-optim: Adam, 5 steps: cost {}", shown.join(" → "));
    if values.windows(2).any(|w| w[1] >= w[0]) {
        return Err("Adam did not decrease the cost at every step".into());
    }
    let mut lbfgs = Lbfgs::new(LbfgsConfig::default())?;
    let report = minimize(&mut lbfgs, &mut x, &mut objective, 5, |_| {
        ControlFlow::Continue(())
    })?;
    let last = report.last.ok_or("L-BFGS took no step")?;
    println!(
        "nst-optim: L-BFGS, {} steps ({} evaluations): cost {:.4e}",
        report.iterations,
        lbfgs.evaluations(),
        last.value
    );
    if last.value >= *values.last().expect("five Adam steps") {
        return Err("L-BFGS did not decrease the cost further".into());
    }
    Ok(())
}

/// `J = α·J_content(relu2_1) + β·Σ ½·J_style(relu1_1, relu2_1) + w_tv·TV(x)` and its gradient.
struct Stylization {
    net: Network,
    taps: [usize; 2],
    content_target: Array3<f32>,
    style_targets: Vec<Array2<f32>>,
}

impl Objective for Stylization {
    type Error = BoxError;

    fn value_and_grad(&mut self, x: &[f32], grad: &mut [f32]) -> Result<f64, BoxError> {
        let (alpha, beta, tv_weight) = (10.0_f32, 1e3_f32, 1e-3_f32);
        let image = ArrayView3::from_shape(SHAPE, x)?;
        let features = self.net.forward(image, &self.taps)?;
        let mut value = 0.0;
        let mut tap_grads = Vec::with_capacity(features.len());
        for (f, target) in features.iter().zip(&self.style_targets) {
            let style = style_layer_loss(f.view(), target.view(), StyleNorm::Gatys2016, &CpuGemm)?;
            value += f64::from(beta * 0.5) * style.value;
            tap_grads.push(style.grad * (beta * 0.5));
        }
        let content = content_loss(
            features[1].view(),
            self.content_target.view(),
            ContentNorm::QuarterMean,
        )?;
        value += f64::from(alpha) * content.value;
        tap_grads[1] += &(content.grad * alpha);
        let views: Vec<ArrayView3<'_, f32>> = tap_grads.iter().map(|g| g.view()).collect();
        let mut image_grad = self.net.backward(&views)?;
        let tv = total_variation(image, TvKind::Squared)?;
        value += f64::from(tv_weight) * tv.value;
        image_grad.scaled_add(tv_weight, &tv.grad);
        grad.copy_from_slice(
            image_grad
                .as_slice()
                .ok_or("the gradient is in standard layout")?,
        );
        Ok(value)
    }
}

/// The glue from a MatConvNet model to a network: one tensor-ops layer per layer of the file.
fn network_from(model: &VggModel) -> Result<Network, BoxError> {
    let pad = |p: Pad| Padding {
        top: p.top,
        bottom: p.bottom,
        left: p.left,
        right: p.right,
    };
    let mut layers: Vec<Box<dyn Layer>> = Vec::with_capacity(model.layers.len());
    for layer in &model.layers {
        let name = layer.name.clone();
        layers.push(match &layer.kind {
            LayerKind::Conv(c) => Box::new(Conv2d::new(
                name,
                c.weights.clone(),
                c.bias.clone(),
                c.stride,
                pad(c.pad),
            )?),
            LayerKind::Relu => Box::new(Relu::new(name)),
            LayerKind::Pool(p) if p.method == PoolMethod::Max => {
                Box::new(MaxPool2d::new(name, p.size, p.stride, pad(p.pad))?)
            }
            LayerKind::Pool(p) => Box::new(AvgPool2d::new(name, p.size, p.stride, pad(p.pad))?),
            // `LayerKind` is non-exhaustive: kinds this program does not know are errors.
            other => {
                return Err(
                    format!("layer `{name}`: no layer for type `{}`", other.type_name()).into(),
                );
            }
        });
    }
    Ok(Network::new(layers))
}

/// conv1_1 (3 → 8) relu1_1 pool1 conv2_1 (8 → 16) relu2_1, with seeded uniform weights.
fn random_model(seed: u64) -> VggModel {
    let mut rng = XorShift(seed.max(1));
    let mut conv = |name: &str, c_in: usize, c_out: usize| vgg_weights::Layer {
        name: name.to_owned(),
        kind: LayerKind::Conv(Conv {
            weights: Array4::from_shape_simple_fn((c_out, c_in, 3, 3), || rng.uniform(0.2)),
            bias: Array1::from_shape_simple_fn(c_out, || rng.uniform(0.1)),
            stride: [1, 1],
            pad: Pad::uniform(1),
        }),
    };
    let relu = |name: &str| vgg_weights::Layer {
        name: name.to_owned(),
        kind: LayerKind::Relu,
    };
    let conv1 = conv("conv1_1", 3, 8);
    let conv2 = conv("conv2_1", 8, 16);
    VggModel {
        layout: Layout::Current,
        mean_rgb: Some([123.68, 116.779, 103.939]),
        layers: vec![
            conv1,
            relu("relu1_1"),
            vgg_weights::Layer {
                name: "pool1".to_owned(),
                kind: LayerKind::Pool(Pool {
                    method: PoolMethod::Max,
                    size: [2, 2],
                    stride: [2, 2],
                    pad: Pad::default(),
                }),
            },
            conv2,
            relu("relu2_1"),
        ],
    }
}

/// An image of [`SHAPE`] from a function of (channel, row, column).
fn image(f: impl Fn(usize, usize, usize) -> f32) -> Array3<f32> {
    Array3::from_shape_fn(SHAPE, |(c, y, x)| f(c, y, x))
}

/// xorshift64: seeded numbers without another dependency.
struct XorShift(u64);

impl XorShift {
    /// Uniform in `[-bound, bound)`.
    fn uniform(&mut self, bound: f32) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let unit = (self.0 >> 40) as f32 / (1_u64 << 24) as f32;
        bound * (2.0 * unit - 1.0)
    }
}
