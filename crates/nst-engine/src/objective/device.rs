//! The style objective evaluated on a [`Device`]: the network, the taps' gradients and the costs stay in
//! device memory; per evaluation the image goes up and its gradient and the cost terms come down.

use ndarray::{Array3, ArrayView3};
use tensor_ops::device::{
    AdamScalars, Device, DeviceNetwork, GemmCall, Kernel, MAX_REDUCTION_BLOCKS,
};
use tensor_ops::{Network, Shape};

use super::Result;

/// The cost terms of one evaluation, unweighted by α, β and the TV weight (as [`super::Breakdown`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Values {
    pub(crate) content: f64,
    pub(crate) style: f64,
    pub(crate) style_layers: Vec<f64>,
    pub(crate) tv: f64,
    /// NaN and infinite entries of the gradient (counted by device Adam steps only; 0 otherwise).
    pub(crate) non_finite_grad: usize,
}

impl Values {
    /// `α·content + β·style + tv_weight·tv`.
    pub(crate) fn total(&self, alpha: f32, beta: f32, tv_weight: f32) -> f64 {
        f64::from(alpha) * self.content
            + f64::from(beta) * self.style
            + f64::from(tv_weight) * self.tv
    }
}

/// What the device path needs from the objective: each term's layer, weight and target.
pub(crate) struct Targets<'a> {
    /// `(layer, weight, target features [C, H, W] in standard layout)`.
    pub(crate) content: Vec<(usize, f32, &'a [f32])>,
    /// `(layer, weight, target Gram [C, C])`.
    pub(crate) style: Vec<(usize, f32, &'a [f32])>,
    pub(crate) alpha: f32,
    pub(crate) beta: f32,
    pub(crate) tv_weight: f32,
}

/// The outputs of the layers `taps` (in that order) of `network` for `image`, computed on `dev` (the
/// layers up to the deepest tap are uploaded for this image's size) and brought to the host.
///
/// # Errors
/// [`super::Error::Ops`] when a layer has no device kernels, the image does not fit the network, or the
/// device fails.
#[cfg_attr(
    not(feature = "cuda"),
    allow(dead_code, reason = "called for a GPU backend, and by the tests")
)]
pub(crate) fn features<D: Device>(
    dev: D,
    network: &Network,
    image: ArrayView3<'_, f32>,
    taps: &[usize],
) -> Result<Vec<Array3<f32>>> {
    let Some(&last) = taps.iter().max() else {
        return Ok(Vec::new());
    };
    let mut net = DeviceNetwork::new(dev, network, Shape::of(&image), last)?;
    let image = image.as_standard_layout();
    net.set_input(image.as_slice().expect("standard layout"))?;
    net.forward()?;
    taps.iter()
        .map(|&t| {
            let mut out = Array3::zeros(net.output_shape(t).dim());
            net.device().download(
                net.output(t),
                out.as_slice_mut().expect("a fresh array is contiguous"),
            )?;
            Ok(out)
        })
        .collect()
}

/// Which device-resident image [`StyleObjective::device_image`](super::StyleObjective::device_image) copies to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResidentImage {
    /// The iterate the next step starts from.
    Current,
    /// The image of the last step whose cost was finite (the one that step evaluated, before its update).
    LastGood,
}

/// A type-erased [`Engine`], so that the objective need not be generic over the device.
pub(crate) trait Evaluate {
    /// The cost of `x` and its gradient into `grad` (both `[3, H, W]`, the objective's shape).
    fn evaluate(&mut self, x: &[f32], grad: &mut [f32]) -> Result<Values>;
    /// The device's name.
    fn device_name(&self) -> &'static str;
    /// Puts the Adam iterate and its moments on the device.
    fn adam_load(&mut self, x: &[f32], m: &[f32], v: &[f32]) -> Result<()>;
    /// Evaluates at the device-resident iterate and, when the cost and every gradient entry are finite,
    /// keeps that image as the last good one and applies the Adam update there. Nothing image-sized
    /// crosses to the host.
    fn adam_step(&mut self, s: &AdamScalars) -> Result<Values>;
    /// Copies a device-resident image to the host.
    fn download_image(&self, which: ResidentImage, out: &mut [f32]) -> Result<()>;
    /// Copies the Adam moments to the host.
    fn download_moments(&self, m: &mut [f32], v: &mut [f32]) -> Result<()>;
}

/// The device-resident Adam state. The iterate has its own buffer (copied into the network's input for
/// each step), so that a host-side [`Evaluate::evaluate`] cannot overwrite it.
struct AdamBuffers<B> {
    x: B,
    m: B,
    v: B,
    last_good: B,
}

struct Term<B> {
    /// Index into `Engine::taps`.
    tap: usize,
    weight: f32,
    target: B,
    /// Elements of the target (`C·H·W` for content, `C²` for style).
    len: usize,
    /// Channels and positions of the tapped layer.
    channels: usize,
    positions: usize,
}

/// The objective's arithmetic on a device; see the module docs.
pub(crate) struct Engine<D: Device> {
    net: DeviceNetwork<D>,
    /// Tapped layers and the gradient with respect to each one's output.
    taps: Vec<(usize, D::Buf)>,
    content: Vec<Term<D::Buf>>,
    style: Vec<Term<D::Buf>>,
    alpha: f32,
    beta: f32,
    tv_weight: f32,
    /// `G − G_S` or `F − F_C` of the term at hand, and the Gram of the style term at hand.
    diff: D::Buf,
    gram: D::Buf,
    /// One accumulator per content term, per style term, the TV, and the non-finite gradient count.
    acc: D::Acc,
    /// The reductions' per-block partial sums.
    partials: D::Acc,
    host_acc: Vec<f64>,
    /// Allocated by the first [`Evaluate::adam_load`].
    adam: Option<AdamBuffers<D::Buf>>,
}

impl<D: Device> Engine<D> {
    /// Uploads layers `0..=last` of `network` for images of `shape`, and the targets.
    pub(crate) fn new(
        dev: D,
        network: &Network,
        shape: Shape,
        targets: &Targets<'_>,
    ) -> Result<Self> {
        let last = targets
            .content
            .iter()
            .chain(&targets.style)
            .map(|t| t.0)
            .max()
            .unwrap_or(0);
        let net = DeviceNetwork::new(dev, network, shape, last)?;
        let dev = net.device();
        let mut taps: Vec<(usize, D::Buf)> = Vec::new();
        let mut diff_len = 0;
        let mut gram_len = 0;
        let term = |(layer, weight, target): &(usize, f32, &[f32]),
                    taps: &mut Vec<(usize, D::Buf)>|
         -> Result<Term<D::Buf>> {
            let out = net.output_shape(*layer);
            let tap = match taps.iter().position(|(l, _)| l == layer) {
                Some(t) => t,
                None => {
                    taps.push((*layer, dev.alloc(out.len())?));
                    taps.len() - 1
                }
            };
            let mut buf = dev.alloc(target.len())?;
            dev.upload(target, &mut buf)?;
            Ok(Term {
                tap,
                weight: *weight,
                target: buf,
                len: target.len(),
                channels: out.channels,
                positions: out.plane(),
            })
        };
        let mut content = Vec::new();
        for t in &targets.content {
            let term = term(t, &mut taps)?;
            diff_len = diff_len.max(term.len);
            content.push(term);
        }
        let mut style = Vec::new();
        for t in &targets.style {
            let term = term(t, &mut taps)?;
            diff_len = diff_len.max(term.len);
            gram_len = gram_len.max(term.len);
            style.push(term);
        }
        let n_acc = content.len() + style.len() + 2;
        Ok(Engine {
            diff: dev.alloc(diff_len)?,
            gram: dev.alloc(gram_len)?,
            acc: dev.alloc_acc(n_acc)?,
            partials: dev.alloc_acc(MAX_REDUCTION_BLOCKS as usize)?,
            host_acc: vec![0.0; n_acc],
            adam: None,
            net,
            taps,
            content,
            style,
            alpha: targets.alpha,
            beta: targets.beta,
            tv_weight: targets.tv_weight,
        })
    }

    /// The costs of the image in the network's input buffer; its gradient is left in the network's
    /// input gradient, whose non-finite entries are counted when `count_non_finite`.
    fn compute(&mut self, count_non_finite: bool) -> Result<Values> {
        self.net.forward()?;
        let dev = self.net.device();
        dev.zero_acc(&mut self.acc)?;
        for (layer, g) in &mut self.taps {
            let n = self.net.output_shape(*layer).len();
            dev.zero(g, n)?;
        }
        let n_content = self.content.len();
        for (slot, t) in self.content.iter().enumerate() {
            let (layer, g) = &mut self.taps[t.tap];
            let k = nst_costs::ContentNorm::QuarterMean.coefficient(t.len);
            dev.launch(Kernel::SubSumSq {
                a: self.net.output(*layer),
                b: &t.target,
                out: &mut self.diff,
                acc: &mut self.acc,
                slot,
                partials: &mut self.partials,
                n: t.len as i64,
            })?;
            // ∂(k·Σ d²)/∂F = 2k·d, weighted by α and the layer weight.
            dev.launch(Kernel::Axpy {
                a: (2.0 * k) as f32 * self.alpha * t.weight,
                x: &self.diff,
                y: g,
                n: t.len as i64,
            })?;
        }
        for (j, t) in self.style.iter().enumerate() {
            let (layer, g) = &mut self.taps[t.tap];
            let f = self.net.output(*layer);
            let (c, p) = (t.channels, t.positions);
            let k = nst_costs::StyleNorm::Gatys2016.coefficient(c, p);
            // G = F·Fᵀ, F = [C, P].
            dev.gemm(GemmCall {
                trans_a: false,
                trans_b: true,
                m: c,
                n: c,
                k: p,
                alpha: 1.0,
                a: f,
                b: f,
                beta: 0.0,
                c: &mut self.gram,
            })?;
            dev.launch(Kernel::SubSumSq {
                a: &self.gram,
                b: &t.target,
                out: &mut self.diff,
                acc: &mut self.acc,
                slot: n_content + j,
                partials: &mut self.partials,
                n: t.len as i64,
            })?;
            // ∂(k·Σ (G − G_S)²)/∂F = 4k·(G − G_S)·F for symmetric G − G_S, weighted by β and the layer weight.
            dev.gemm(GemmCall {
                trans_a: false,
                trans_b: false,
                m: c,
                n: p,
                k: c,
                alpha: (4.0 * k) as f32 * self.beta * t.weight,
                a: &self.diff,
                b: f,
                beta: 1.0,
                c: g,
            })?;
        }
        let grads: Vec<(usize, &D::Buf)> = self.taps.iter().map(|(l, g)| (*l, g)).collect();
        self.net.backward(&grads)?;
        let tv_slot = self.host_acc.len() - 2;
        if self.tv_weight > 0.0 {
            let s = self.net.input_shape();
            let dim = |v: usize| {
                i32::try_from(v).map_err(|_| {
                    super::Error::InvalidSetting(format!(
                        "the image {s} is too large for the device"
                    ))
                })
            };
            let shape = [dim(s.channels)?, dim(s.height)?, dim(s.width)?];
            let (dev, image, g) = self.net.input_and_grad_mut();
            dev.launch(Kernel::TvSquared {
                x: image,
                grad: g,
                acc: &mut self.acc,
                slot: tv_slot,
                partials: &mut self.partials,
                weight: self.tv_weight,
                shape,
            })?;
        }
        if count_non_finite {
            let n = self.net.input_shape().len();
            self.net.device().launch(Kernel::CountNonFinite {
                x: self.net.input_grad(),
                acc: &mut self.acc,
                slot: tv_slot + 1,
                partials: &mut self.partials,
                n: n as i64,
            })?;
        }
        self.net
            .device()
            .download_acc(&self.acc, &mut self.host_acc)?;
        let mut content = 0.0;
        for (t, &sum) in self.content.iter().zip(&self.host_acc) {
            content +=
                f64::from(t.weight) * nst_costs::ContentNorm::QuarterMean.coefficient(t.len) * sum;
        }
        let mut style = 0.0;
        let mut style_layers = Vec::with_capacity(self.style.len());
        for (t, &sum) in self.style.iter().zip(&self.host_acc[n_content..]) {
            let v = nst_costs::StyleNorm::Gatys2016.coefficient(t.channels, t.positions) * sum;
            style += f64::from(t.weight) * v;
            style_layers.push(v);
        }
        Ok(Values {
            content,
            style,
            style_layers,
            tv: self.host_acc[tv_slot],
            // An exact count: at most the image's size, far below 2^53.
            non_finite_grad: self.host_acc[tv_slot + 1] as usize,
        })
    }
}

impl<D: Device> Evaluate for Engine<D> {
    fn evaluate(&mut self, x: &[f32], grad: &mut [f32]) -> Result<Values> {
        self.net.set_input(x)?;
        let values = self.compute(false)?;
        self.net.device().download(self.net.input_grad(), grad)?;
        Ok(values)
    }

    fn device_name(&self) -> &'static str {
        self.net.device().name()
    }

    fn adam_load(&mut self, x: &[f32], m: &[f32], v: &[f32]) -> Result<()> {
        let n = self.net.input_shape().len();
        let dev = self.net.device();
        if self.adam.is_none() {
            self.adam = Some(AdamBuffers {
                x: dev.alloc(n)?,
                m: dev.alloc(n)?,
                v: dev.alloc(n)?,
                last_good: dev.alloc(n)?,
            });
        }
        let a = self.adam.as_mut().expect("allocated above");
        dev.upload(x, &mut a.x)?;
        dev.upload(m, &mut a.m)?;
        dev.upload(v, &mut a.v)?;
        dev.upload(x, &mut a.last_good)?;
        Ok(())
    }

    fn adam_step(&mut self, s: &AdamScalars) -> Result<Values> {
        let Some(a) = &self.adam else {
            return Err(super::Error::InvalidSetting(
                "a device Adam step before the iterate was loaded".into(),
            ));
        };
        self.net.set_input_from(&a.x)?;
        let values = self.compute(true)?;
        if values
            .total(self.alpha, self.beta, self.tv_weight)
            .is_finite()
            && values.non_finite_grad == 0
        {
            let n = self.net.input_shape().len();
            let a = self.adam.as_mut().expect("checked above");
            let dev = self.net.device();
            dev.copy(&a.x, &mut a.last_good, n)?;
            dev.launch(Kernel::Adam {
                x: &mut a.x,
                g: self.net.input_grad(),
                m: &mut a.m,
                v: &mut a.v,
                s: *s,
                n: n as i64,
            })?;
        }
        Ok(values)
    }

    fn download_image(&self, which: ResidentImage, out: &mut [f32]) -> Result<()> {
        let dev = self.net.device();
        match (which, &self.adam) {
            (ResidentImage::Current, Some(a)) => dev.download(&a.x, out)?,
            (ResidentImage::LastGood, Some(a)) => dev.download(&a.last_good, out)?,
            (_, None) => dev.download(self.net.input(), out)?,
        }
        Ok(())
    }

    fn download_moments(&self, m: &mut [f32], v: &mut [f32]) -> Result<()> {
        if let Some(a) = &self.adam {
            let dev = self.net.device();
            dev.download(&a.m, m)?;
            dev.download(&a.v, v)?;
        }
        Ok(())
    }
}
