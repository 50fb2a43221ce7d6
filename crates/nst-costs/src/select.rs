//! One style cost chosen at run time: Gram, mean–covariance or 2-Wasserstein, behind one target type.

use ndarray::{Array2, Array3, ArrayView3, ArrayViewMut3};
use tensor_ops::Gemm;

use crate::{
    FeatureStats, LossAndGrad, Result, StyleNorm, StyleScratch, W2Target, gram,
    mean_cov_loss_accumulate, style_layer_loss_accumulate, w2_loss_accumulate,
};

/// Which statistics of a layer's features the style cost matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StyleLoss {
    /// `gram`: the Gram matrix ([`style_layer_loss`](crate::style_layer_loss), normalized by a
    /// [`StyleNorm`]); Gatys et al. 2016. The default.
    #[default]
    Gram,
    /// `mean-cov`: the per-channel mean and the covariance ([`mean_cov_loss`](crate::mean_cov_loss)).
    MeanCov,
    /// `w2`: the 2-Wasserstein distance between Gaussian fits ([`w2_loss`](crate::w2_loss)).
    W2,
}

/// A style target for one layer, for the [`StyleLoss`] it was built for.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum StyleTarget {
    /// The unnormalized Gram matrix `G_S` `[C, C]` (possibly [`blend_grams`](crate::blend_grams)ed
    /// or [`rescale_gram`](crate::rescale_gram)d).
    Gram(Array2<f32>),
    /// The style's mean and covariance.
    MeanCov(FeatureStats),
    /// The style's 2-Wasserstein target.
    W2(W2Target),
}

impl StyleTarget {
    /// The target of `kind` for the style image's features `[C, H, W]`. A Gram target is the style
    /// image's own unnormalized Gram: when the generated image has another size, bring it over with
    /// [`rescale_gram`](crate::rescale_gram) (the mean and covariance need no such step).
    ///
    /// # Errors
    /// As [`FeatureStats::from_features`] and [`W2Target::new`]; a Gram target cannot fail.
    ///
    /// # Examples
    /// ```
    /// use ndarray::Array3;
    /// use nst_costs::{StyleLoss, StyleNorm, StyleTarget, style_loss};
    /// use tensor_ops::CpuGemm;
    ///
    /// let style = Array3::from_shape_fn((3, 4, 5), |(c, i, j)| ((c + 2 * i + 3 * j) % 7) as f32);
    /// for kind in [StyleLoss::Gram, StyleLoss::MeanCov, StyleLoss::W2] {
    ///     let target = StyleTarget::from_features(kind, style.view(), &CpuGemm)?;
    ///     assert_eq!(target.kind(), kind);
    ///     // The style image matches its own statistics.
    ///     let cost = style_loss(style.view(), &target, StyleNorm::Gatys2016, &CpuGemm)?;
    ///     assert!(cost.value.abs() < 1e-6, "{kind:?}: {}", cost.value);
    /// }
    /// # Ok::<(), nst_costs::Error>(())
    /// ```
    pub fn from_features(
        kind: StyleLoss,
        features: ArrayView3<'_, f32>,
        gemm: &dyn Gemm,
    ) -> Result<Self> {
        Ok(match kind {
            StyleLoss::Gram => StyleTarget::Gram(gram(features, gemm)),
            StyleLoss::MeanCov => StyleTarget::MeanCov(FeatureStats::from_features(features)?),
            StyleLoss::W2 => StyleTarget::W2(W2Target::from_features(features)?),
        })
    }

    /// The cost this target is for.
    pub fn kind(&self) -> StyleLoss {
        match self {
            StyleTarget::Gram(_) => StyleLoss::Gram,
            StyleTarget::MeanCov(_) => StyleLoss::MeanCov,
            StyleTarget::W2(_) => StyleLoss::W2,
        }
    }
}

/// The style cost of `target`'s kind, with its gradient: [`style_layer_loss`](crate::style_layer_loss)
/// (normalized by `norm`), [`mean_cov_loss`](crate::mean_cov_loss) or [`w2_loss`](crate::w2_loss).
/// `norm` applies to the Gram cost only; the other two have their own fixed normalizations.
///
/// # Errors
/// Those of the cost called.
pub fn style_loss(
    generated: ArrayView3<'_, f32>,
    target: &StyleTarget,
    norm: StyleNorm,
    gemm: &dyn Gemm,
) -> Result<LossAndGrad> {
    let mut grad = Array3::zeros(generated.raw_dim());
    let mut scratch = StyleScratch::new();
    let value =
        style_loss_accumulate(generated, target, norm, gemm, &mut scratch, grad.view_mut())?;
    Ok(LossAndGrad { value, grad })
}

/// [`style_loss`] that **adds** the gradient into `grad` and returns the cost.
///
/// # Errors
/// Those of the `*_accumulate` cost called.
pub fn style_loss_accumulate(
    generated: ArrayView3<'_, f32>,
    target: &StyleTarget,
    norm: StyleNorm,
    gemm: &dyn Gemm,
    scratch: &mut StyleScratch,
    grad: ArrayViewMut3<'_, f32>,
) -> Result<f64> {
    match target {
        StyleTarget::Gram(g) => {
            style_layer_loss_accumulate(generated, g.view(), norm, gemm, scratch, grad)
        }
        StyleTarget::MeanCov(s) => mean_cov_loss_accumulate(generated, s, scratch, grad),
        StyleTarget::W2(t) => w2_loss_accumulate(generated, t, scratch, grad),
    }
}
