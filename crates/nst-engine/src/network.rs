//! The network side: layer specifications (`relu1_1:0.2,…`), a [`Network`] of `tensor-ops` layers built
//! from a MatConvNet [`VggModel`], and a VGG-19 with random weights for timing without a model file.
//!
//! This is the glue between `vgg-weights` and `tensor-ops`: MatConvNet's padding becomes a
//! [`Padding`], each conv, ReLU and pooling layer becomes its `tensor-ops` layer, and the model's mean
//! pixel is what [`crate::image_io::Picture::to_tensor`] subtracts. A VGG model expects RGB images in
//! 0–255 with the model's mean pixel (`VggModel::mean_rgb`, or [`crate::IMAGENET_MEAN`]) subtracted,
//! as `[3, H, W]` `f32`.

use std::fmt;

use tensor_ops::{AvgPool2d, Conv2d, MaxPool2d, Network, Padding, Relu};
use vgg_weights::{LayerKind, PoolMethod, VggModel};

use crate::objective::{Error, Result};

/// A layer name with its weight, as in `relu1_1:0.2`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LayerWeight {
    /// The layer's name in the model (e.g. `relu4_2`).
    pub name: String,
    /// Its weight.
    pub weight: f32,
}

impl fmt::Display for LayerWeight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.weight)
    }
}

/// The default content layer: `conv4_2` after its ReLU.
pub const DEFAULT_CONTENT_LAYERS: &str = "relu4_2:1";
/// The default style layers: `conv1_1 … conv5_1` after their ReLUs, 0.2 each.
pub const DEFAULT_STYLE_LAYERS: &str =
    "relu1_1:0.2,relu2_1:0.2,relu3_1:0.2,relu4_1:0.2,relu5_1:0.2";

/// Parses `name[:weight],…` (a missing weight is 1).
///
/// # Errors
/// [`Error::InvalidSpec`] for an empty list, an empty name, a weight that is not a finite number ≥ 0,
/// or a layer named twice.
pub fn parse_layers(flag: &'static str, spec: &str) -> Result<Vec<LayerWeight>> {
    let err = |reason: String| Error::InvalidSpec {
        flag,
        spec: spec.to_owned(),
        reason,
    };
    let mut out: Vec<LayerWeight> = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, weight) = match item.split_once(':') {
            Some((n, w)) => {
                let w: f32 = w
                    .trim()
                    .parse()
                    .map_err(|_| err(format!("`{w}` is not a number")))?;
                (n.trim(), w)
            }
            None => (item, 1.0),
        };
        if name.is_empty() {
            return Err(err("a layer name is empty".into()));
        }
        if !(weight.is_finite() && weight >= 0.0) {
            return Err(err(format!(
                "the weight of `{name}` must be a finite number ≥ 0"
            )));
        }
        if out.iter().any(|l| l.name == name) {
            return Err(err(format!("`{name}` is named twice")));
        }
        out.push(LayerWeight {
            name: name.to_owned(),
            weight,
        });
    }
    if out.is_empty() {
        return Err(err("no layer given".into()));
    }
    Ok(out)
}

/// The last of the named layers in VGG order (`conv4_2` < `relu4_2` < `conv5_1`), when every name is
/// of the VGG form `<kind><block>_<index>` or `pool<block>`; `None` otherwise (then the whole model
/// must be loaded to find them).
pub fn last_vgg_layer<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<String> {
    fn key(name: &str) -> Option<(u32, u32, u32)> {
        let (kind, rest) = name.split_at(name.find(|c: char| c.is_ascii_digit())?);
        let kind_rank = match kind {
            "conv" => 0,
            "relu" => 1,
            "pool" => return Some((rest.parse().ok()?, u32::MAX, 0)),
            _ => return None,
        };
        let (block, idx) = rest.split_once('_')?;
        Some((block.parse().ok()?, idx.parse().ok()?, kind_rank))
    }
    let mut best: Option<((u32, u32, u32), &str)> = None;
    for name in names {
        let k = key(name)?;
        if best.is_none_or(|(b, _)| k > b) {
            best = Some((k, name));
        }
    }
    best.map(|(_, n)| n.to_owned())
}

/// VGG-19's layers up to `last` (a layer name such as `relu5_1`; all 16 conv layers and their ReLUs and
/// max pools when it names none of them), with seeded He-uniform random weights and zero biases, and the
/// mean pixel of the ImageNet files: the real network's shapes and work, for timing without the file.
pub fn random_vgg19(last: &str, seed: u64) -> VggModel {
    use rand::{Rng, SeedableRng};
    const BLOCKS: [(usize, usize); 5] = [(2, 64), (2, 128), (4, 256), (4, 512), (4, 512)];
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut layers = Vec::new();
    let mut c_in = 3;
    'blocks: for (b, &(n, c_out)) in BLOCKS.iter().enumerate() {
        for k in 1..=n {
            let bound = (6.0 / (9.0 * c_in as f32)).sqrt();
            let weights = ndarray::Array4::from_shape_simple_fn((c_out, c_in, 3, 3), || {
                rng.random_range(-bound..bound)
            });
            let conv = vgg_weights::Conv {
                weights,
                bias: ndarray::Array1::zeros(c_out),
                stride: [1, 1],
                pad: vgg_weights::Pad::uniform(1),
            };
            for (name, kind) in [
                (format!("conv{}_{k}", b + 1), LayerKind::Conv(conv)),
                (format!("relu{}_{k}", b + 1), LayerKind::Relu),
            ] {
                let done = name == last;
                layers.push(vgg_weights::Layer { name, kind });
                if done {
                    break 'blocks;
                }
            }
            c_in = c_out;
        }
        layers.push(vgg_weights::Layer {
            name: format!("pool{}", b + 1),
            kind: LayerKind::Pool(vgg_weights::Pool {
                method: PoolMethod::Max,
                size: [2, 2],
                stride: [2, 2],
                pad: vgg_weights::Pad::default(),
            }),
        });
        if format!("pool{}", b + 1) == last {
            break;
        }
    }
    VggModel {
        layout: vgg_weights::Layout::Beta16,
        mean_rgb: Some([123.68, 116.779, 103.939]),
        layers,
    }
}

/// Builds a network of the model's layers; `pooling` replaces the pooling method of every pool layer.
///
/// # Errors
/// [`Error::NotAChain`] for a layer kind other than conv, ReLU and pooling; [`Error::Ops`] when a layer
/// is invalid (e.g. a zero stride).
pub fn build_network(model: &VggModel, pooling: Option<PoolMethod>) -> Result<Network> {
    let mut layers: Vec<Box<dyn tensor_ops::Layer>> = Vec::with_capacity(model.layers.len());
    for layer in &model.layers {
        let pad = |p: vgg_weights::Pad| Padding {
            top: p.top,
            bottom: p.bottom,
            left: p.left,
            right: p.right,
        };
        let boxed: Box<dyn tensor_ops::Layer> = match &layer.kind {
            LayerKind::Conv(c) => Box::new(Conv2d::new(
                layer.name.clone(),
                c.weights.clone(),
                c.bias.clone(),
                c.stride,
                pad(c.pad),
            )?),
            LayerKind::Relu => Box::new(Relu::new(layer.name.clone())),
            LayerKind::Pool(p) => match pooling.unwrap_or(p.method) {
                PoolMethod::Max => Box::new(MaxPool2d::new(
                    layer.name.clone(),
                    p.size,
                    p.stride,
                    pad(p.pad),
                )?),
                PoolMethod::Avg => Box::new(AvgPool2d::new(
                    layer.name.clone(),
                    p.size,
                    p.stride,
                    pad(p.pad),
                )?),
            },
            LayerKind::Other { type_name } => {
                return Err(Error::NotAChain {
                    layer: layer.name.clone(),
                    type_name: type_name.clone(),
                });
            }
            #[allow(unreachable_patterns, reason = "LayerKind is non-exhaustive")]
            _ => {
                return Err(Error::NotAChain {
                    layer: layer.name.clone(),
                    type_name: "unknown".into(),
                });
            }
        };
        layers.push(boxed);
    }
    Ok(Network::new(layers))
}
