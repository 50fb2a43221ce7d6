//! [`StyleObjective`], the cost `J = α·J_content + β·J_style + w_tv·TV` of an image
//! with its gradient (Gatys, Ecker & Bethge 2016), which the optimizers of `nst-optim` minimize.
//!
//! Conventions: images are `[3, H, W]` f32, RGB 0–255 minus the model's mean pixel (no clipping inside
//! the optimization; clipping happens only when an image is written). Costs use the normalizations of the
//! original course program: content `1/(4·C·H·W)·Σ(F − P)²`, style per layer `1/(4·C²·(H·W)²)·Σ(G − A)²`
//! ([`ContentNorm::QuarterMean`], [`StyleNorm::Gatys2016`]). A style image whose feature maps have another size than
//! the generated image's has its Gram matrices rescaled to the generated size (`nst_costs::rescale_gram`),
//! so the style weight means the same whatever the style image's size.

use std::fmt;

use ndarray::{Array2, Array3, ArrayView2, ArrayView3, ArrayViewMut3};
use nst_costs::{ContentNorm, StyleNorm, StyleScratch, TvKind};
use rayon::prelude::*;
use tensor_ops::{Backend, Network, Shape};

use crate::network::{DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, LayerWeight, parse_layers};

/// Errors of the network and the objective.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A layer specification (`--content-layers`, `--style-layers`) cannot be parsed.
    #[error("{flag}: cannot parse `{spec}`: {reason}")]
    InvalidSpec {
        /// The flag.
        flag: &'static str,
        /// What was given.
        spec: String,
        /// What is wrong.
        reason: String,
    },
    /// A named layer is not in the model.
    #[error("{flag}: the model has no layer `{name}` (it has: {available})")]
    UnknownLayer {
        /// The flag that named it.
        flag: &'static str,
        /// The name.
        name: String,
        /// The layers the model has.
        available: String,
    },
    /// The model cannot be run as a feed-forward chain of conv/ReLU/pool layers.
    #[error(
        "the model is not a VGG chain: layer `{layer}` has type `{type_name}`, which style transfer cannot run"
    )]
    NotAChain {
        /// The layer.
        layer: String,
        /// Its type.
        type_name: String,
    },
    /// A setting is out of range.
    #[error("{0}")]
    InvalidSetting(String),
    /// A network operation failed.
    #[error(transparent)]
    Ops(#[from] tensor_ops::Error),
    /// A cost failed.
    #[error(transparent)]
    Costs(#[from] nst_costs::Error),
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the objective is made of.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ObjectiveSpec {
    /// Content layers and their weights.
    pub content_layers: Vec<LayerWeight>,
    /// Style layers and their weights.
    pub style_layers: Vec<LayerWeight>,
    /// α, the weight of the content cost.
    pub alpha: f32,
    /// β, the weight of the style cost.
    pub beta: f32,
    /// Weight of the total-variation cost (squared differences, on the image).
    pub tv_weight: f32,
    /// Normalization of each content layer's cost.
    #[serde(default)]
    pub content_norm: ContentNormKind,
    /// Normalization of each style layer's cost.
    #[serde(default)]
    pub style_norm: StyleNormKind,
    /// Which statistics of the features the style cost matches.
    #[serde(default, skip_serializing_if = "is_default")]
    pub style_loss: StyleLossKind,
    /// Scale each layer's gradient to unit L1 norm before it is weighted and summed (neural-style's
    /// `-normalize_gradients`); the costs reported are the costs as computed.
    #[serde(default, skip_serializing_if = "is_default")]
    pub normalize_gradients: bool,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

pub use crate::spec::StyleLossKind;

/// The content cost's normalization `k` in `k·Σ(F − P)²` (see `nst_costs::ContentNorm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ContentNormKind {
    /// `1/(4·C·H·W)`, the course program's (the default).
    #[default]
    Course,
    /// `½`, Gatys et al. 2016, eq. 1.
    Half,
    /// `1/(C·H·W)`, the mean squared error (neural-style, the PyTorch tutorial).
    Mean,
}

impl ContentNormKind {
    /// The `nst_costs` normalization.
    pub fn norm(self) -> ContentNorm {
        match self {
            ContentNormKind::Course => ContentNorm::QuarterMean,
            ContentNormKind::Half => ContentNorm::Half,
            ContentNormKind::Mean => ContentNorm::Mean,
        }
    }
}

/// The style cost's normalization `k` in `k·Σ(G − A)²` (see `nst_costs::StyleNorm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StyleNormKind {
    /// `1/(4·C²·(H·W)²)`, Gatys et al. 2016 eq. 4 and the course program's (the default).
    #[default]
    Gatys,
    /// `1/(C·H·W)²`, Johnson et al. 2016.
    Johnson,
    /// `1/((C·H·W)²·C²)`: the Gram divided by `C·H·W`, then the mean of the squared differences
    /// (neural-style, the PyTorch tutorial).
    MeanGram,
}

impl StyleNormKind {
    /// The `nst_costs` normalization.
    pub fn norm(self) -> StyleNorm {
        match self {
            StyleNormKind::Gatys => StyleNorm::Gatys2016,
            StyleNormKind::Johnson => StyleNorm::Johnson2016,
            StyleNormKind::MeanGram => StyleNorm::TorchTutorial,
        }
    }
}

impl ObjectiveSpec {
    /// The course program's: content `relu4_2`, style `relu1_1 … relu5_1` at 0.2, α = 10, β = 40, no TV.
    pub fn course() -> ObjectiveSpec {
        ObjectiveSpec {
            content_layers: parse_layers("--content-layers", DEFAULT_CONTENT_LAYERS)
                .expect("a valid constant"),
            style_layers: parse_layers("--style-layers", DEFAULT_STYLE_LAYERS)
                .expect("a valid constant"),
            alpha: 10.0,
            beta: 40.0,
            tv_weight: 0.0,
            content_norm: ContentNormKind::Course,
            style_norm: StyleNormKind::Gatys,
            style_loss: StyleLossKind::Gram,
            normalize_gradients: false,
        }
    }

    /// Every layer name, content first.
    pub fn layer_names(&self) -> impl Iterator<Item = &str> {
        self.content_layers
            .iter()
            .chain(&self.style_layers)
            .map(|l| l.name.as_str())
    }
}

/// The cost of one image, term by term.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Breakdown {
    /// `α·content + β·style + tv_weight·tv`.
    pub total: f64,
    /// `J_content`, unweighted by α (already weighted by the layer weights).
    pub content: f64,
    /// `J_style`, unweighted by β (already weighted by the layer weights).
    pub style: f64,
    /// The TV cost, unweighted.
    pub tv: f64,
    /// Each style layer's cost, unweighted (neither by its layer weight nor by β).
    pub style_layers: Vec<(String, f64)>,
    /// The temporal term, unweighted (0 without one; see [`StyleObjective::set_temporal`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub temporal: f64,
}

/// Whether a cost is 0 (an absent term is not written).
pub(crate) fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

impl Breakdown {
    /// Whether every number is finite.
    pub fn is_finite(&self) -> bool {
        [self.total, self.content, self.style, self.tv]
            .iter()
            .all(|v| v.is_finite())
    }
}

struct ContentTerm {
    slot: usize,
    weight: f32,
    target: Array3<f32>,
    /// The content cost's weight per position on the layer's grid (`--content-mask`).
    mask: Option<Array2<f32>>,
}

/// The temporal term: the previous result `target` (mean subtracted), the mask of unchanged pixels
/// (`[H, W]`, 0 or 1) and the weight.
struct TemporalTerm {
    target: Array3<f32>,
    mask: Array2<f32>,
    weight: f32,
}

struct StyleTerm {
    slot: usize,
    name: String,
    weight: f32,
    target: TermTarget,
}

/// The style-transfer cost of an image and its gradient: a forward pass to the deepest tapped layer, the
/// costs at the taps, and one backward pass.
pub struct StyleObjective {
    /// When set, evaluations run there instead of on `network` (see [`StyleObjective::on_device`]).
    device: Option<Box<dyn device::Evaluate>>,
    /// Non-finite gradient entries of the last device Adam step.
    non_finite_grad: usize,
    network: Network,
    backend: Backend,
    shape: Shape,
    taps: Vec<usize>,
    content: Vec<ContentTerm>,
    style: Vec<StyleTerm>,
    alpha: f32,
    beta: f32,
    tv_weight: f32,
    content_norm: ContentNorm,
    style_norm: StyleNorm,
    normalize_gradients: bool,
    temporal: Option<TemporalTerm>,
    last: Option<Breakdown>,
    evaluations: u64,
    /// Buffers reused by every evaluation, so that the hot loop allocates nothing large: the tapped
    /// features (over which each tap's gradient is then written, for the network's in-place backward
    /// pass), one term's unit-weight gradient at each tap that more than one term uses (empty
    /// elsewhere), the TV gradient and the style cost's Gram scratch. A tap's summed gradient is built
    /// in the network's workspace, free between its passes.
    feats: Vec<Array3<f32>>,
    terms_at: Vec<usize>,
    term_grads: Vec<Array3<f32>>,
    tv_grad: Array3<f32>,
    style_scratch: StyleScratch,
    guided_grad: Array3<f32>,
}

impl fmt::Debug for StyleObjective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StyleObjective")
            .field("shape", &self.shape)
            .field("taps", &self.taps)
            .field("evaluations", &self.evaluations)
            .finish_non_exhaustive()
    }
}

/// Where [`StyleObjective::build`] gets the style targets.
enum StyleTargets<'i, 'a> {
    /// Computed from these images.
    Images(&'i [StyleImage<'a>]),
    /// Given.
    Given(StyleTargetSet),
}

impl StyleTargets<'_, '_> {
    /// The target of each style layer (`style_idx`), computed or checked.
    fn targets(
        self,
        network: &mut Network,
        backend: &Backend,
        style_idx: &[usize],
        shapes: &[Shape],
        kind: StyleLossKind,
    ) -> Result<Vec<TermTarget>> {
        match self {
            StyleTargets::Images(styles) => {
                targets::compute(network, backend, styles, style_idx, shapes, kind)
            }
            StyleTargets::Given(set) => targets::check(set, style_idx, shapes),
        }
    }
}

/// A style image (mean subtracted), its blend weight and its optional masks.
#[derive(Debug, Clone, Copy)]
pub struct StyleImage<'a> {
    /// `[3, H, W]`; any size.
    pub image: ArrayView3<'a, f32>,
    /// Blend weight (the weights are normalized to sum 1).
    pub weight: f32,
    /// Where this style applies in the generated image (`[H, W]` of the content, values in `[0, 1]`):
    /// with a mask on any style image the style cost is the guided one (Gatys et al. 2017), each style
    /// matched in its own region; `None`: everywhere.
    pub mask: Option<ArrayView2<'a, f32>>,
    /// The region of this style image its statistics are taken from (`[H, W]` of `image`); `None`:
    /// all of it.
    pub region: Option<ArrayView2<'a, f32>>,
}

impl<'a> StyleImage<'a> {
    /// A style image that applies everywhere, with its blend weight.
    pub fn new(image: ArrayView3<'a, f32>, weight: f32) -> StyleImage<'a> {
        StyleImage {
            image,
            weight,
            mask: None,
            region: None,
        }
    }
}

impl StyleObjective {
    /// Computes the content features of `content` and the (blended) Gram matrices of the style images,
    /// and keeps the network for the evaluations. The generated image has the content image's shape.
    ///
    /// # Errors
    /// [`Error::UnknownLayer`] for a layer not in the network; [`Error::InvalidSetting`] for no style
    /// image or weights that do not make sense; [`Error::Ops`] when an image is too small for the network
    /// (e.g. 8 pixels through 4 poolings).
    pub fn new(
        network: Network,
        backend: Backend,
        spec: &ObjectiveSpec,
        content: ArrayView3<'_, f32>,
        styles: &[StyleImage<'_>],
    ) -> Result<StyleObjective> {
        check_inputs(spec, styles)?;
        StyleObjective::build(
            network,
            backend,
            spec,
            content,
            StyleTargets::Images(styles),
        )
    }

    /// [`StyleObjective::new`] with the style targets given instead of computed: `targets` as
    /// [`StyleObjective::style_targets`] returned them for the same network, style layers, style
    /// images, style settings and generated size (the frames of a video share their style targets).
    ///
    /// # Errors
    /// As [`StyleObjective::new`]; [`Error::InvalidSetting`] when `targets` do not fit the style layers.
    pub fn with_style_targets(
        network: Network,
        backend: Backend,
        spec: &ObjectiveSpec,
        content: ArrayView3<'_, f32>,
        targets: StyleTargetSet,
    ) -> Result<StyleObjective> {
        check_weights(spec)?;
        StyleObjective::build(
            network,
            backend,
            spec,
            content,
            StyleTargets::Given(targets),
        )
    }

    /// The style target of each style layer (for the default Gram cost, the blended Gram matrix
    /// rescaled to the generated size), in the order of the specification's style layers.
    pub fn style_targets(&self) -> StyleTargetSet {
        StyleTargetSet {
            targets: self.style.iter().map(|t| t.target.clone()).collect(),
        }
    }

    fn build(
        mut network: Network,
        backend: Backend,
        spec: &ObjectiveSpec,
        content: ArrayView3<'_, f32>,
        style: StyleTargets<'_, '_>,
    ) -> Result<StyleObjective> {
        let (content_idx, style_idx) = layer_indices(&network, spec)?;
        let mut taps: Vec<usize> = content_idx.iter().chain(&style_idx).copied().collect();
        taps.sort_unstable();
        taps.dedup();
        let slot = |i: usize| {
            taps.iter()
                .position(|&t| t == i)
                .expect("every index is a tap")
        };
        let shape = Shape::of(&content);
        let last = *taps.last().expect("at least one layer");
        let shapes = network.shapes(shape, last)?;

        let content_features = if content_idx.is_empty() {
            Vec::new()
        } else {
            target_features(&mut network, &backend, content, &content_idx)?
        };
        let content_terms: Vec<ContentTerm> = spec
            .content_layers
            .iter()
            .zip(&content_idx)
            .zip(content_features)
            .map(|((l, &i), target)| ContentTerm {
                slot: slot(i),
                weight: l.weight,
                target,
                mask: None,
            })
            .collect();
        let targets =
            style.targets(&mut network, &backend, &style_idx, &shapes, spec.style_loss)?;
        // The style images' walks may have grown the buffers beyond what the evaluations need.
        network.release_buffers();
        let style_terms: Vec<StyleTerm> = spec
            .style_layers
            .iter()
            .zip(&style_idx)
            .zip(targets)
            .map(|((l, &i), target)| StyleTerm {
                slot: slot(i),
                name: l.name.clone(),
                weight: l.weight,
                target,
            })
            .collect();
        let mut terms_at = vec![0; taps.len()];
        let term_slots = content_terms.iter().map(|t| t.slot);
        for slot in term_slots.chain(style_terms.iter().map(|t| t.slot)) {
            terms_at[slot] += 1;
        }
        let objective = StyleObjective {
            device: None,
            non_finite_grad: 0,
            network,
            backend,
            shape,
            taps,
            content: content_terms,
            style: style_terms,
            alpha: spec.alpha,
            beta: spec.beta,
            tv_weight: spec.tv_weight,
            content_norm: spec.content_norm.norm(),
            style_norm: spec.style_norm.norm(),
            normalize_gradients: spec.normalize_gradients,
            temporal: None,
            last: None,
            evaluations: 0,
            feats: Vec::new(),
            terms_at,
            term_grads: Vec::new(),
            tv_grad: Array3::zeros((0, 0, 0)),
            style_scratch: StyleScratch::new(),
            guided_grad: Array3::zeros((0, 0, 0)),
        };
        #[cfg(feature = "cuda")]
        if let Some(dev) = objective.backend.cuda_device() {
            let dev = dev.clone();
            return objective.on_device(dev);
        }
        Ok(objective)
    }

    /// Moves the evaluations to `dev`: the network's layers up to the deepest tap, the content features
    /// and the target Grams are uploaded once, and each evaluation then runs the forward pass, the costs
    /// and the backward pass on the device; the image goes up and its gradient and the cost terms come
    /// down. The targets are the ones `new` computed, so both paths optimize the same objective.
    ///
    /// # Errors
    /// [`Error::Ops`] when a layer has no device kernels or the device fails.
    pub fn on_device<D: tensor_ops::device::Device + 'static>(mut self, dev: D) -> Result<Self> {
        if let Some(what) = self.cpu_only() {
            return Err(Error::InvalidSetting(format!(
                "{what} runs on the CPU only (the GPU kernels compute the plain Gram and content costs): use --device cpu"
            )));
        }
        let content: Vec<(usize, f32, &[f32])> = self
            .content
            .iter()
            .map(|t| {
                (
                    self.taps[t.slot],
                    t.weight,
                    t.target.as_slice().expect("targets are in standard layout"),
                )
            })
            .collect();
        let style: Vec<(usize, f32, &[f32])> = self
            .style
            .iter()
            .map(|t| {
                (
                    self.taps[t.slot],
                    t.weight,
                    match &t.target {
                        TermTarget::Gram(g) => {
                            g.as_slice().expect("targets are in standard layout")
                        }
                        _ => unreachable!("cpu_only() refused other targets"),
                    },
                )
            })
            .collect();
        let targets = device::Targets {
            content,
            style,
            alpha: self.alpha,
            beta: self.beta,
            tv_weight: self.tv_weight,
            content_norm: self.content_norm,
            style_norm: self.style_norm,
        };
        let engine = device::Engine::new(dev, &self.network, self.shape, &targets)?;
        self.device = Some(Box::new(engine));
        Ok(self)
    }

    /// Makes a device's cost terms the last breakdown.
    fn record(&mut self, values: device::Values) -> Breakdown {
        self.non_finite_grad = values.non_finite_grad;
        let b = Breakdown {
            total: values.total(self.alpha, self.beta, self.tv_weight),
            content: values.content,
            style: values.style,
            tv: values.tv,
            style_layers: self
                .style
                .iter()
                .zip(values.style_layers)
                .map(|(t, v)| (t.name.clone(), v))
                .collect(),
            temporal: 0.0,
        };
        self.last = Some(b.clone());
        b
    }

    fn engine(&mut self) -> Result<&mut dyn device::Evaluate> {
        match &mut self.device {
            Some(e) => Ok(e.as_mut()),
            None => Err(Error::InvalidSetting(
                "the objective is not on a device (StyleObjective::on_device)".into(),
            )),
        }
    }

    /// Whether evaluations run on a device ([`StyleObjective::on_device`]).
    pub fn is_on_device(&self) -> bool {
        self.device.is_some()
    }

    /// Device-resident Adam, step 0: puts the iterate `x` and the moments `m`, `v` on the device.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] when the objective is not on a device or the lengths are wrong;
    /// [`Error::Ops`] when the device fails.
    pub fn device_adam_load(&mut self, x: &[f32], m: &[f32], v: &[f32]) -> Result<()> {
        let n = self.shape.len();
        if x.len() != n || m.len() != n || v.len() != n {
            return Err(Error::InvalidSetting(format!(
                "device Adam: {}, {} and {} values for an image of {n}",
                x.len(),
                m.len(),
                v.len()
            )));
        }
        self.engine()?.adam_load(x, m, v)
    }

    /// One device-resident Adam step with the scalars `s` (from `nst_optim::Adam::step_external`):
    /// the cost of the iterate on the device, term by term; when it is finite, that image is kept as the
    /// last good one and the update is applied on the device; with a non-finite cost or gradient entry
    /// ([`StyleObjective::last_non_finite_grad`]) nothing moves. Only the cost terms cross to the host.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] before [`StyleObjective::device_adam_load`]; [`Error::Ops`].
    pub fn device_adam_step(&mut self, s: &nst_optim::AdamStepScalars) -> Result<Breakdown> {
        let form = match s.form {
            nst_optim::AdamForm::Algorithm1 => 0,
            nst_optim::AdamForm::EpsilonHat => 1,
            other => {
                return Err(Error::InvalidSetting(format!(
                    "device Adam has no kernel for the form {other:?}"
                )));
            }
        };
        let scalars = tensor_ops::device::AdamScalars {
            beta1: s.beta1,
            beta2: s.beta2,
            learning_rate: s.learning_rate,
            epsilon: s.epsilon,
            c1: s.c1,
            c2: s.c2,
            alpha_t: s.alpha_t,
            form,
        };
        self.evaluations += 1;
        let values = self.engine()?.adam_step(&scalars)?;
        Ok(self.record(values))
    }

    /// NaN and infinite entries of the gradient of the last [`StyleObjective::device_adam_step`] (which
    /// applies no update when there are any).
    pub fn last_non_finite_grad(&self) -> usize {
        self.non_finite_grad
    }

    /// Copies a device-resident image (the iterate, or the last good image) into `out`.
    ///
    /// # Errors
    /// As [`StyleObjective::device_adam_load`].
    pub fn device_image(&mut self, which: ResidentImage, out: &mut [f32]) -> Result<()> {
        self.engine()?.download_image(which, out)
    }

    /// Copies the device-resident Adam moments into `m` and `v`.
    ///
    /// # Errors
    /// As [`StyleObjective::device_adam_load`].
    pub fn device_moments(&mut self, m: &mut [f32], v: &mut [f32]) -> Result<()> {
        self.engine()?.download_moments(m, v)
    }

    /// Where evaluations run: `cpu`, or the device's name after [`StyleObjective::on_device`].
    pub fn device_name(&self) -> &'static str {
        self.device.as_ref().map_or("cpu", |d| d.device_name())
    }

    /// The image shape this objective takes.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// The breakdown of the last evaluation.
    pub fn last_breakdown(&self) -> Option<&Breakdown> {
        self.last.as_ref()
    }

    /// Number of evaluations so far.
    pub fn evaluations(&self) -> u64 {
        self.evaluations
    }

    /// The network (e.g. for its shapes).
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// Gives the network back (to build the objective of the next stage of a coarse-to-fine run).
    pub fn into_network(self) -> Network {
        self.network
    }

    /// The cost of `image` (`[3, H, W]`, the content's shape), term by term, and its gradient written
    /// into `grad` (same shape).
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] for a wrong shape; [`Error::Ops`] / [`Error::Costs`] from the layers.
    pub fn evaluate(
        &mut self,
        image: ArrayView3<'_, f32>,
        mut grad: ArrayViewMut3<'_, f32>,
    ) -> Result<Breakdown> {
        if Shape::of(&image) != self.shape || Shape::of(&grad) != self.shape {
            return Err(Error::InvalidSetting(format!(
                "the image has shape {} but the objective was built for {}",
                Shape::of(&image),
                self.shape
            )));
        }
        self.evaluations += 1;
        if self.device.is_some() {
            return self.evaluate_on_device(image, grad);
        }
        self.network
            .forward_into(image, &self.taps, &mut self.feats)?;
        let (content_values, style_values) = self.tap_gradients()?;
        if grad.is_standard_layout() {
            self.network
                .backward_in_place(&mut self.feats, grad.view_mut())?;
        } else {
            let mut own = Array3::zeros(grad.raw_dim());
            self.network
                .backward_in_place(&mut self.feats, own.view_mut())?;
            grad.assign(&own);
        }
        let content = self
            .content
            .iter()
            .zip(&content_values)
            .fold(0.0, |sum, (t, v)| sum + f64::from(t.weight) * v);
        let style = self
            .style
            .iter()
            .zip(&style_values)
            .fold(0.0, |sum, (t, v)| sum + f64::from(t.weight) * v);
        let style_layers = self
            .style
            .iter()
            .zip(style_values)
            .map(|(t, v)| (t.name.clone(), v))
            .collect();
        let temporal = self.temporal_cost(image, grad.view_mut());
        let tv = self.tv_cost(image, grad)?;
        let total = f64::from(self.alpha) * content
            + f64::from(self.beta) * style
            + f64::from(self.tv_weight) * tv
            + self
                .temporal
                .as_ref()
                .map_or(0.0, |t| f64::from(t.weight) * temporal);
        let b = Breakdown {
            total,
            content,
            style,
            tv,
            style_layers,
            temporal,
        };
        self.last = Some(b.clone());
        Ok(b)
    }

    /// [`StyleObjective::evaluate`] on the device: the image goes up, the gradient and the terms come down.
    fn evaluate_on_device(
        &mut self,
        image: ArrayView3<'_, f32>,
        mut grad: ArrayViewMut3<'_, f32>,
    ) -> Result<Breakdown> {
        let engine = self.engine()?;
        let x = image.as_standard_layout();
        let x = x.as_slice().expect("standard layout");
        let values = match grad.as_slice_mut() {
            Some(g) => engine.evaluate(x, g)?,
            None => {
                let mut g = Array3::zeros(grad.raw_dim());
                let values = engine.evaluate(x, g.as_slice_mut().expect("a fresh array"))?;
                grad.assign(&g);
                values
            }
        };
        Ok(self.record(values))
    }

    /// The value of every content and style term (unit weight, in the specification's order), and each
    /// tap's weighted gradient written over its features.
    ///
    /// A tap whose only term is a Gram style term (and no gradient normalization) gets its weighted
    /// gradient written over its features directly ([`nst_costs::style_layer_loss_in_place`]); the
    /// others go through [`StyleObjective::slot_gradient`].
    fn tap_gradients(&mut self) -> Result<(Vec<f64>, Vec<f64>)> {
        let mut values = (vec![0.0; self.content.len()], vec![0.0; self.style.len()]);
        self.term_grads
            .resize_with(self.feats.len(), || Array3::zeros((0, 0, 0)));
        for slot in 0..self.feats.len() {
            if let Some(k) = self.lone_gram_term(slot)
                && let TermTarget::Gram(target) = &self.style[k].target
            {
                // The features are read for the Gram, then replaced by the weighted gradient
                // block by block: no workspace, no zeroing, no copy.
                values.1[k] = nst_costs::style_layer_loss_in_place(
                    self.feats[slot].view_mut(),
                    target.view(),
                    self.style_norm,
                    self.beta * self.style[k].weight,
                    self.backend.gemm(),
                    &mut self.style_scratch,
                )?;
            } else {
                self.slot_gradient(slot, (&mut values.0, &mut values.1))?;
            }
        }
        Ok(values)
    }

    /// The terms of tap `slot`: their values into `content_values` / `style_values`, their weighted
    /// gradients summed over the tap's features.
    ///
    /// The terms add their gradients into the network's workspace, which then replaces the
    /// features: a term with a tap to itself adds its unit-weight gradient into the zeroed workspace
    /// and is weighted on the way back (`w·g`), others go through the tap's scratch and are added
    /// weighted (`0 + w·g`), the arithmetic of the allocating `content_loss` / `style_layer_loss`.
    fn slot_gradient(
        &mut self,
        slot: usize,
        (content_values, style_values): (&mut [f64], &mut [f64]),
    ) -> Result<()> {
        let dim = self.feats[slot].raw_dim();
        let several = self.terms_at[slot] > 1;
        if several && self.term_grads[slot].raw_dim() != dim {
            self.term_grads[slot] = Array3::zeros(dim);
        }
        let work = self.network.workspace(self.feats[slot].len());
        par_fill(work, 0.0);
        let mut sum = ArrayViewMut3::from_shape(dim, work).expect("sized to the features");
        let mut only_weight = 1.0;
        let features = self.feats[slot].view();
        let content = self
            .content
            .iter()
            .enumerate()
            .filter(|(_, t)| t.slot == slot);
        for (k, term) in content {
            let mut buf = term_buffer(&mut sum, &mut self.term_grads[slot], several);
            let (target, norm) = (term.target.view(), self.content_norm);
            content_values[k] = match &term.mask {
                None => nst_costs::content_loss_accumulate(features, target, norm, buf.view_mut())?,
                Some(mask) => nst_costs::masked_content_loss_accumulate(
                    features,
                    target,
                    mask.view(),
                    norm,
                    buf.view_mut(),
                )?,
            };
            let weight = self.alpha * term.weight;
            let grads = &mut self.term_grads[slot];
            only_weight = finish_term(&mut sum, grads, several, self.normalize_gradients, weight);
        }
        for (k, term) in self
            .style
            .iter()
            .enumerate()
            .filter(|(_, t)| t.slot == slot)
        {
            let mut buf = term_buffer(&mut sum, &mut self.term_grads[slot], several);
            style_values[k] = targets::term_cost(
                &term.target,
                features,
                self.style_norm,
                &self.backend,
                (&mut self.style_scratch, &mut self.guided_grad),
                buf.view_mut(),
            )?;
            let weight = self.beta * term.weight;
            let grads = &mut self.term_grads[slot];
            only_weight = finish_term(&mut sum, grads, several, self.normalize_gradients, weight);
        }
        // The network writes its taps in standard layout; the other arm keeps any layout right.
        match (self.feats[slot].as_slice_mut(), sum.as_slice()) {
            (Some(feats), Some(sum)) => par_scaled_copy(feats, sum, only_weight),
            _ => ndarray::Zip::from(&mut self.feats[slot])
                .and(&sum)
                .for_each(|f, &g| *f = g * only_weight),
        }
        Ok(())
    }

    /// The style term at `slot` when it is the slot's only term and there is no gradient
    /// normalization: its gradient can then be written over the features in place (for a Gram target).
    fn lone_gram_term(&self, slot: usize) -> Option<usize> {
        if self.terms_at[slot] != 1 || self.normalize_gradients {
            return None;
        }
        self.style.iter().position(|t| t.slot == slot)
    }

    /// The TV cost of `image`, its weighted gradient added to `grad` (0 and nothing when unweighted).
    /// The temporal cost `1/(3·H·W)·Σ m·(x − p)²`, its weighted gradient `w·2/(3·H·W)·m·(x − p)`
    /// added into `grad`; 0 without the term.
    fn temporal_cost(&self, image: ArrayView3<'_, f32>, mut grad: ArrayViewMut3<'_, f32>) -> f64 {
        let Some(t) = &self.temporal else {
            return 0.0;
        };
        let n = image.len() as f64;
        let scale = (2.0 * f64::from(t.weight) / n) as f32;
        let mut sum = 0.0_f64;
        for ((idx, &x), g) in image.indexed_iter().zip(grad.iter_mut()) {
            let (_, y, xx) = idx;
            if t.mask[[y, xx]] == 0.0 {
                continue;
            }
            let d = x - t.target[idx];
            sum += f64::from(d) * f64::from(d);
            *g += scale * d;
        }
        sum / n
    }

    /// Adds the temporal term of a video frame, `weight · 1/(3·H·W) · Σ m·(x − p)²` (Ruder,
    /// Dosovitskiy & Brox 2016, eq. 4, with the identity in place of the optical-flow warp): `previous`
    /// is `p`, the previous frame's result (mean subtracted, this objective's shape), `mask` is `m`
    /// (`[H, W]`, 1 where the content did not change, else 0).
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] for shapes that do not fit, a weight that is not finite and ≥ 0, or an
    /// objective on a device (whose kernels have no such term).
    pub fn set_temporal(
        &mut self,
        previous: Array3<f32>,
        mask: Array2<f32>,
        weight: f32,
    ) -> Result<()> {
        if self.device.is_some() {
            return Err(Error::InvalidSetting(
                "the temporal term runs on the CPU only: use --device cpu for frames with a temporal weight".into(),
            ));
        }
        let (h, w) = (self.shape.height, self.shape.width);
        if Shape::of(&previous) != self.shape || mask.dim() != (h, w) {
            return Err(Error::InvalidSetting(format!(
                "the temporal target is {} with a {:?} mask, for an image of {}",
                Shape::of(&previous),
                mask.dim(),
                self.shape
            )));
        }
        if !(weight.is_finite() && weight >= 0.0) {
            return Err(Error::InvalidSetting(format!(
                "the temporal weight must be a finite number ≥ 0, not {weight}"
            )));
        }
        self.temporal = Some(TemporalTerm {
            target: previous,
            mask,
            weight,
        });
        Ok(())
    }

    /// Weights the content cost per position by `mask` (`[H, W]` of the generated image, values in
    /// `[0, 1]`; see `nst_costs::masked_content_loss_accumulate`), brought to each content layer's grid.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] for a mask of another size or an objective on a device;
    /// [`Error::Costs`] for values outside `[0, 1]`.
    pub fn set_content_mask(&mut self, mask: ArrayView2<'_, f32>) -> Result<()> {
        if self.device.is_some() {
            return Err(Error::InvalidSetting(
                "--content-mask runs on the CPU only: use --device cpu".into(),
            ));
        }
        if mask.dim() != (self.shape.height, self.shape.width) {
            return Err(Error::InvalidSetting(format!(
                "the content mask is {:?} for an image of {}",
                mask.dim(),
                self.shape
            )));
        }
        let last = *self.taps.last().expect("at least one layer");
        let shapes = self.network.shapes(self.shape, last)?;
        for term in &mut self.content {
            term.mask = Some(targets::mask_on_layer(mask, &shapes, self.taps[term.slot])?);
        }
        Ok(())
    }

    /// The first setting of this objective that has no device kernels.
    fn cpu_only(&self) -> Option<&'static str> {
        if self.normalize_gradients {
            Some("--normalize-gradients")
        } else if self.content.iter().any(|t| t.mask.is_some()) {
            Some("--content-mask")
        } else if self.temporal.is_some() {
            Some("the temporal term")
        } else if self
            .style
            .iter()
            .any(|t| matches!(t.target, TermTarget::Stats(_)))
        {
            Some("--style-loss mean-cov and w2")
        } else if self
            .style
            .iter()
            .any(|t| matches!(t.target, TermTarget::Guided(_)))
        {
            Some("--style-mask and --style-image-mask")
        } else {
            None
        }
    }

    fn tv_cost(
        &mut self,
        image: ArrayView3<'_, f32>,
        mut grad: ArrayViewMut3<'_, f32>,
    ) -> Result<f64> {
        if self.tv_weight <= 0.0 {
            return Ok(0.0);
        }
        if self.tv_grad.dim() == image.dim() {
            self.tv_grad.fill(0.0);
        } else {
            self.tv_grad = Array3::zeros(image.raw_dim());
        }
        let tv =
            nst_costs::total_variation_accumulate(image, TvKind::Squared, self.tv_grad.view_mut())?;
        grad.scaled_add(self.tv_weight, &self.tv_grad);
        Ok(tv)
    }
}

/// The weights and style images make sense together.
fn check_inputs(spec: &ObjectiveSpec, styles: &[StyleImage<'_>]) -> Result<()> {
    if styles.is_empty() && !spec.style_layers.is_empty() {
        return Err(Error::InvalidSetting("no style image given".into()));
    }
    check_weights(spec)?;
    let total_blend: f32 = styles.iter().map(|s| s.weight).sum();
    let blend_ok =
        total_blend.is_finite() && total_blend > 0.0 && styles.iter().all(|s| s.weight >= 0.0);
    if !spec.style_layers.is_empty() && !blend_ok {
        return Err(Error::InvalidSetting(
            "--style-blend weights must be ≥ 0 with a positive sum".into(),
        ));
    }
    Ok(())
}

/// The cost weights: finite and ≥ 0.
fn check_weights(spec: &ObjectiveSpec) -> Result<()> {
    for (what, v) in [
        ("--alpha", spec.alpha),
        ("--beta", spec.beta),
        ("--tv-weight", spec.tv_weight),
    ] {
        if !(v.is_finite() && v >= 0.0) {
            return Err(Error::InvalidSetting(format!(
                "{what} must be a finite number ≥ 0 (got {v})"
            )));
        }
    }
    Ok(())
}

/// The network indices of the content and the style layers.
fn layer_indices(network: &Network, spec: &ObjectiveSpec) -> Result<(Vec<usize>, Vec<usize>)> {
    let index = |flag, name: &str| {
        network.index_of(name).ok_or_else(|| Error::UnknownLayer {
            flag,
            name: name.to_owned(),
            available: network
                .layers()
                .iter()
                .map(|l| l.name().to_owned())
                .collect::<Vec<_>>()
                .join(", "),
        })
    };
    let of = |flag, layers: &[LayerWeight]| {
        layers
            .iter()
            .map(|l| index(flag, &l.name))
            .collect::<Result<Vec<_>>>()
    };
    Ok((
        of("--content-layers", &spec.content_layers)?,
        of("--style-layers", &spec.style_layers)?,
    ))
}

/// The blended target Gram matrix of each style layer: each style image's Grams, rescaled to the
/// generated image's positions (`shapes`), blended by the normalized weights.
fn style_targets(
    network: &mut Network,
    backend: &Backend,
    styles: &[StyleImage<'_>],
    style_idx: &[usize],
    shapes: &[Shape],
) -> Result<Vec<Array2<f32>>> {
    if style_idx.is_empty() {
        return Ok(Vec::new());
    }
    let total_blend: f32 = styles.iter().map(|s| s.weight).sum();
    let mut grams: Vec<Vec<(Array2<f32>, f32)>> = vec![Vec::new(); style_idx.len()];
    let last = *style_idx.iter().max().expect("checked non-empty");
    for s in styles {
        // Bands of rows keep a style image larger than the generated one within the memory of the
        // iterations (the Grams add up band by band).
        let (_, h, w) = s.image.dim();
        let band_rows = match shapes[0].plane() {
            generated if h * w > generated => (generated / w.max(1)).max(MIN_BAND_ROWS),
            _ => h,
        };
        let mut sums: Vec<Option<Array2<f32>>> = vec![None; style_idx.len()];
        visit_feature_rows(
            network,
            backend,
            s.image,
            style_idx,
            band_rows,
            |j, rows| {
                let g = nst_costs::gram(rows, backend.gemm());
                match &mut sums[j] {
                    Some(sum) => *sum += &g,
                    None => sums[j] = Some(g),
                }
                Ok(())
            },
        )?;
        let style_shapes = network.shapes(Shape::of(&s.image), last)?;
        for (j, sum) in sums.into_iter().enumerate() {
            let positions = style_shapes[style_idx[j] + 1].plane();
            let g = sum.expect("every tap has rows");
            let g = nst_costs::rescale_gram(g.view(), positions, shapes[style_idx[j] + 1].plane())?;
            grams[j].push((g, s.weight / total_blend));
        }
    }
    grams
        .iter()
        .map(|gs| {
            let views: Vec<_> = gs.iter().map(|(g, w)| (g.view(), *w)).collect();
            Ok(nst_costs::blend_grams(&views)?)
        })
        .collect()
}

/// The outputs of the layers `taps` for `image`, for the targets: on the backend's GPU when it has one
/// (the same layers, uploaded for this image's size), else by the CPU network.
fn target_features(
    network: &mut Network,
    backend: &Backend,
    image: ArrayView3<'_, f32>,
    taps: &[usize],
) -> Result<Vec<Array3<f32>>> {
    #[cfg(feature = "cuda")]
    if let Some(dev) = backend.cuda_device() {
        return device::features(dev.clone(), network, image, taps);
    }
    let _ = backend;
    Ok(network.forward_inference(image, taps)?)
}

/// Fewest rows per band when a style image's walk runs in bands (the rows above and below a band are
/// computed twice, about 70 + 85 for VGG to `conv5_1`).
const MIN_BAND_ROWS: usize = 256;

/// Hands the outputs of the layers `taps[j]` for `image` to `visit(j, rows)`, in bands of about
/// `band_rows` rows (`Network::forward_visit_rows`, which keeps no copy of the outputs): on the
/// backend's GPU when it has one (whole), else by the CPU network's walk.
fn visit_feature_rows(
    network: &mut Network,
    backend: &Backend,
    image: ArrayView3<'_, f32>,
    taps: &[usize],
    band_rows: usize,
    visit: impl FnMut(usize, ArrayView3<'_, f32>) -> Result<()>,
) -> Result<()> {
    let mut visit = visit;
    #[cfg(feature = "cuda")]
    if let Some(dev) = backend.cuda_device() {
        let feats = device::features(dev.clone(), network, image, taps)?;
        return feats
            .iter()
            .enumerate()
            .try_for_each(|(j, f)| visit(j, f.view()));
    }
    let _ = backend;
    network.forward_visit_rows(image, taps, band_rows, |j, _, rows| visit(j, rows))
}

/// `x[i] = value` for every `i`, in parallel over fixed chunks.
fn par_fill(x: &mut [f32], value: f32) {
    x.par_chunks_mut(ELEMENTWISE_CHUNK)
        .for_each(|c| c.fill(value));
}

/// `dst[i] = weight · src[i]` (a plain copy for weight 1), in parallel over fixed chunks: each
/// element's arithmetic is the same for any thread count.
fn par_scaled_copy(dst: &mut [f32], src: &[f32], weight: f32) {
    dst.par_chunks_mut(ELEMENTWISE_CHUNK)
        .zip(src.par_chunks(ELEMENTWISE_CHUNK))
        .for_each(|(d, s)| {
            if weight == 1.0 {
                d.copy_from_slice(s);
            } else {
                for (d, &s) in d.iter_mut().zip(s) {
                    *d = s * weight;
                }
            }
        });
}

/// Elements per parallel task of [`par_fill`] and [`par_scaled_copy`] (256 KiB of floats).
const ELEMENTWISE_CHUNK: usize = 1 << 16;

/// The zeroed buffer a term adds its unit-weight gradient into: the tap's sum itself when the term is
/// the only one there, else the tap's scratch.
fn term_buffer<'a>(
    sum: &'a mut ArrayViewMut3<'_, f32>,
    scratch: &'a mut Array3<f32>,
    several: bool,
) -> ArrayViewMut3<'a, f32> {
    if several {
        scratch.fill(0.0);
        scratch.view_mut()
    } else {
        sum.view_mut()
    }
}

/// Finishes a term's unit-weight gradient from [`term_buffer`]: normalizes it when asked and, at a tap
/// with several terms, adds it weighted into `sum`. Returns the weight still to apply (a lone term's).
fn finish_term(
    sum: &mut ArrayViewMut3<'_, f32>,
    scratch: &mut Array3<f32>,
    several: bool,
    normalize: bool,
    weight: f32,
) -> f32 {
    if several {
        if normalize {
            nst_costs::normalize_gradient(scratch.view_mut());
        }
        sum.scaled_add(weight, scratch);
        1.0
    } else {
        if normalize {
            nst_costs::normalize_gradient(sum.view_mut());
        }
        weight
    }
}

impl nst_optim::Objective for StyleObjective {
    type Error = Error;

    fn value_and_grad(&mut self, x: &[f32], grad: &mut [f32]) -> Result<f64> {
        let dim = self.shape.dim();
        let image = ArrayView3::from_shape(dim, x).map_err(|_| {
            Error::InvalidSetting(format!(
                "x has {} values, not {}",
                x.len(),
                self.shape.len()
            ))
        })?;
        let grad = ArrayViewMut3::from_shape(dim, grad).map_err(|_| {
            Error::InvalidSetting(format!(
                "the gradient has the wrong length for {}",
                self.shape
            ))
        })?;
        Ok(self.evaluate(image, grad)?.total)
    }
}

mod device;
mod targets;
pub use device::ResidentImage;
pub use targets::StyleTargetSet;
use targets::TermTarget;

#[cfg(test)]
pub(crate) mod tests;
