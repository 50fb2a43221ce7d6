//! The style target of each style layer for each kind of style cost (Gram, guided Gram, mean–covariance,
//! 2-Wasserstein), and one style term's cost against its target.

use ndarray::{Array1, Array2, Array3, ArrayView2, ArrayView3, ArrayViewMut3};
use nst_costs::{FeatureStats, StyleNorm, StyleScratch, StyleTarget, W2Target};
use tensor_ops::{Backend, Network, Shape};

use super::{Result, StyleImage, StyleLossKind, target_features};

/// What one style layer's cost compares the generated features with.
#[derive(Debug, Clone)]
pub(super) enum TermTarget {
    /// The blended Gram matrix of the style images, rescaled to the generated image's positions.
    Gram(Array2<f32>),
    /// The mean and covariance (or their W2 target) of the style images' features; several style
    /// images are one Gaussian fit of their blend (the mixture's mean and covariance).
    Stats(StyleTarget),
    /// Guided Gram matrices (spatial control): one part per style image.
    Guided(Vec<GuidedPart>),
}

/// One style image's share of a guided term.
#[derive(Debug, Clone)]
pub(super) struct GuidedPart {
    /// Where the style applies in the generated image, on the layer's grid.
    mask: Array2<f32>,
    /// The guided Gram of the style image over its own region.
    target: Array2<f32>,
    /// The style's weight: its blend weight normalized to sum to the number of styles, so that with
    /// equal blends every style weighs 1 in its region.
    weight: f32,
}

/// The style targets of an objective, in the order of its style layers: reusable by another objective
/// with the same network, style layers, style images, style settings and generated size
/// ([`super::StyleObjective::style_targets`], [`super::StyleObjective::with_style_targets`]).
#[derive(Debug, Clone)]
pub struct StyleTargetSet {
    pub(super) targets: Vec<TermTarget>,
}

impl StyleTargetSet {
    /// The Gram target of each style layer, when every target is a plain Gram matrix.
    pub fn grams(&self) -> Option<Vec<&Array2<f32>>> {
        self.targets
            .iter()
            .map(|t| match t {
                TermTarget::Gram(g) => Some(g),
                _ => None,
            })
            .collect()
    }

    /// How many style layers it has targets for.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether it has no target (no style layer).
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }
}

/// The number of 2×2 poolings between the image and the output of layer `index`: the layers whose
/// output is smaller than their input (`shapes[k]` is layer `k`'s input).
pub(super) fn poolings_before(shapes: &[Shape], index: usize) -> usize {
    (0..=index)
        .filter(|&k| shapes[k + 1].height < shapes[k].height)
        .count()
}

/// `mask` (`[H, W]` on the image's grid) on layer `index`'s grid.
pub(super) fn mask_on_layer(
    mask: ArrayView2<'_, f32>,
    shapes: &[Shape],
    index: usize,
) -> Result<Array2<f32>> {
    let m = nst_costs::downsample_mask(mask, poolings_before(shapes, index))?;
    let s = shapes[index + 1];
    if m.dim() != (s.height, s.width) {
        return Err(super::Error::InvalidSetting(format!(
            "a mask of {:?} pixels reaches {:?} at a layer of {}×{}: masks need poolings that halve sizes rounding down (not --pooling file with padded poolings)",
            mask.dim(),
            m.dim(),
            s.height,
            s.width
        )));
    }
    Ok(m)
}

/// The target of every style layer `style_idx` from the style images.
pub(super) fn compute(
    network: &mut Network,
    backend: &Backend,
    styles: &[StyleImage<'_>],
    style_idx: &[usize],
    shapes: &[Shape],
    kind: StyleLossKind,
) -> Result<Vec<TermTarget>> {
    if style_idx.is_empty() {
        return Ok(Vec::new());
    }
    let guided = styles
        .iter()
        .any(|s| s.mask.is_some() || s.region.is_some());
    if guided && kind != StyleLossKind::Gram {
        return Err(super::Error::InvalidSetting(format!(
            "style masks work with the Gram style cost, not {kind}"
        )));
    }
    if guided {
        return guided_targets(network, backend, styles, style_idx, shapes);
    }
    match kind {
        StyleLossKind::Gram => Ok(super::style_targets(
            network, backend, styles, style_idx, shapes,
        )?
        .into_iter()
        .map(TermTarget::Gram)
        .collect()),
        StyleLossKind::MeanCov | StyleLossKind::W2 => {
            stats_targets(network, backend, styles, style_idx, kind)
        }
    }
}

/// Guided Gram targets: each style image's guided Gram over its region, and its mask on the generated
/// image, at every style layer.
fn guided_targets(
    network: &mut Network,
    backend: &Backend,
    styles: &[StyleImage<'_>],
    style_idx: &[usize],
    shapes: &[Shape],
) -> Result<Vec<TermTarget>> {
    let total: f32 = styles.iter().map(|s| s.weight).sum();
    let mut parts: Vec<Vec<GuidedPart>> = vec![Vec::new(); style_idx.len()];
    for (number, s) in styles.iter().enumerate() {
        let feats = target_features(network, backend, s.image, style_idx)?;
        let (_, sh, sw) = s.image.dim();
        let style_shapes = network.shapes(
            Shape::new(3, sh, sw),
            *style_idx.iter().max().expect("not empty"),
        )?;
        for (j, f) in feats.iter().enumerate() {
            let i = style_idx[j];
            let region = match s.region {
                Some(r) => mask_on_layer(r, &style_shapes, i)?,
                None => Array2::ones((f.shape()[1], f.shape()[2])),
            };
            // An empty region has no statistics: its zero target would fade the style's region to black.
            if region.iter().all(|&v| v == 0.0) {
                return Err(super::Error::InvalidSetting(format!(
                    "the style image mask of style image {} selects nothing at style layer {} ({}×{}): make its white region larger",
                    number + 1,
                    network.layers()[i].name(),
                    region.nrows(),
                    region.ncols()
                )));
            }
            let mask = match s.mask {
                Some(m) => mask_on_layer(m, shapes, i)?,
                None => Array2::ones((shapes[i + 1].height, shapes[i + 1].width)),
            };
            parts[j].push(GuidedPart {
                mask,
                target: nst_costs::guided_gram(f.view(), region.view(), backend.gemm())?,
                weight: s.weight / total * styles.len() as f32,
            });
        }
    }
    Ok(parts.into_iter().map(TermTarget::Guided).collect())
}

/// Mean–covariance or W2 targets: the Gaussian fit of the blended style images at each layer.
fn stats_targets(
    network: &mut Network,
    backend: &Backend,
    styles: &[StyleImage<'_>],
    style_idx: &[usize],
    kind: StyleLossKind,
) -> Result<Vec<TermTarget>> {
    let total: f64 = styles.iter().map(|s| f64::from(s.weight)).sum();
    let mut per_layer: Vec<Vec<(FeatureStats, f64)>> = vec![Vec::new(); style_idx.len()];
    for s in styles {
        let feats = target_features(network, backend, s.image, style_idx)?;
        for (j, f) in feats.iter().enumerate() {
            per_layer[j].push((
                FeatureStats::from_features(f.view())?,
                f64::from(s.weight) / total,
            ));
        }
    }
    per_layer
        .into_iter()
        .map(|parts| {
            let stats = mixture(&parts);
            Ok(TermTarget::Stats(match kind {
                StyleLossKind::MeanCov => StyleTarget::MeanCov(stats),
                _ => StyleTarget::W2(W2Target::new(stats)?),
            }))
        })
        .collect()
}

/// The mean and covariance of a mixture: `μ = Σ wᵢ·μᵢ`, `Σ = Σ wᵢ·(Σᵢ + μᵢ·μᵢᵀ) − μ·μᵀ` (weights
/// summing to 1). One part is returned unchanged.
pub(super) fn mixture(parts: &[(FeatureStats, f64)]) -> FeatureStats {
    if let [(one, _)] = parts {
        return one.clone();
    }
    let c = parts[0].0.n_channels();
    let mut mean = Array1::<f64>::zeros(c);
    let mut second = Array2::<f64>::zeros((c, c));
    for (s, w) in parts {
        mean.scaled_add(*w, &s.mean);
        let mu = s.mean.view().insert_axis(ndarray::Axis(1));
        second.scaled_add(*w, &(&s.cov + &mu.dot(&mu.t())));
    }
    let mu = mean.view().insert_axis(ndarray::Axis(1));
    let cov = second - mu.dot(&mu.t());
    FeatureStats { mean, cov }
}

/// One style term's cost against `target`, its unit-weight gradient added into `grad`; a guided term
/// computes each part's gradient in `part_grad` (resized as needed) before weighting it.
pub(super) fn term_cost(
    target: &TermTarget,
    features: ArrayView3<'_, f32>,
    norm: StyleNorm,
    backend: &Backend,
    (scratch, part_grad): (&mut StyleScratch, &mut Array3<f32>),
    mut grad: ArrayViewMut3<'_, f32>,
) -> Result<f64> {
    let gemm = backend.gemm();
    Ok(match target {
        TermTarget::Gram(g) => {
            nst_costs::style_layer_loss_accumulate(features, g.view(), norm, gemm, scratch, grad)?
        }
        TermTarget::Stats(t) => {
            nst_costs::style_loss_accumulate(features, t, norm, gemm, scratch, grad)?
        }
        TermTarget::Guided(parts) => {
            let mut sum = 0.0;
            if part_grad.dim() != features.dim() {
                *part_grad = Array3::zeros(features.raw_dim());
            }
            for p in parts {
                part_grad.fill(0.0);
                let v = nst_costs::guided_style_loss_accumulate(
                    features,
                    p.mask.view(),
                    p.target.view(),
                    norm,
                    gemm,
                    scratch,
                    part_grad.view_mut(),
                )?;
                sum += f64::from(p.weight) * v;
                grad.scaled_add(p.weight, part_grad);
            }
            sum
        }
    })
}

/// The given targets, checked against the style layers: one per layer, of the layer's channels.
pub(super) fn check(
    set: StyleTargetSet,
    style_idx: &[usize],
    shapes: &[Shape],
) -> Result<Vec<TermTarget>> {
    if set.targets.len() != style_idx.len() {
        return Err(super::Error::InvalidSetting(format!(
            "{} style targets given for {} style layers",
            set.targets.len(),
            style_idx.len()
        )));
    }
    for (t, &i) in set.targets.iter().zip(style_idx) {
        let c = shapes[i + 1].channels;
        let dim = match t {
            TermTarget::Gram(g) => g.dim(),
            TermTarget::Stats(StyleTarget::MeanCov(s)) => s.cov.dim(),
            TermTarget::Stats(StyleTarget::W2(w)) => w.stats().cov.dim(),
            TermTarget::Stats(_) => (c, c),
            TermTarget::Guided(parts) => {
                let grid = (shapes[i + 1].height, shapes[i + 1].width);
                if let Some(p) = parts.iter().find(|p| p.mask.dim() != grid) {
                    return Err(super::Error::InvalidSetting(format!(
                        "a style mask is {:?} but its layer is {grid:?}",
                        p.mask.dim()
                    )));
                }
                parts
                    .iter()
                    .map(|p| p.target.dim())
                    .find(|d| *d != (c, c))
                    .unwrap_or((c, c))
            }
        };
        if dim != (c, c) {
            return Err(super::Error::InvalidSetting(format!(
                "a style target is {dim:?} but its layer has {c} channels"
            )));
        }
    }
    Ok(set.targets)
}

#[cfg(test)]
mod tests;
