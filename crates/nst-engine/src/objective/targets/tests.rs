//! The controls of the objective on a tiny random network: guided Grams (masks), the content mask, the
//! mean–covariance and W2 style costs and gradient normalization, against finite differences, hand
//! identities and a short optimization.

use std::ops::ControlFlow;

use ndarray::{Array2, Array3, ArrayView2, s};
use tensor_ops::Backend;
use test_utils::{GradCheck, check_grad, uniform_vec};
use vgg_weights::PoolMethod;

use super::super::tests::tiny_model;
use super::super::*;
use super::{mask_on_layer, mixture, poolings_before};
use crate::network::{build_network, parse_layers};

fn spec(content: &str, style: &str, alpha: f32, beta: f32) -> ObjectiveSpec {
    ObjectiveSpec {
        content_layers: parse_layers("--content-layers", content).unwrap(),
        style_layers: parse_layers("--style-layers", style).unwrap(),
        alpha,
        beta,
        ..ObjectiveSpec::course()
    }
}

fn image(seed: u64, h: usize, w: usize) -> Array3<f32> {
    Array3::from_shape_vec((3, h, w), uniform_vec(seed, 3 * h * w, -1.0, 1.0)).unwrap()
}

fn soft_mask(seed: u64, h: usize, w: usize) -> Array2<f32> {
    Array2::from_shape_vec((h, w), uniform_vec(seed, h * w, 0.0, 1.0)).unwrap()
}

fn objective(
    s: &ObjectiveSpec,
    content: &Array3<f32>,
    styles: &[StyleImage<'_>],
) -> StyleObjective {
    let m = tiny_model(7, 3, PoolMethod::Avg);
    StyleObjective::new(
        build_network(&m, None).unwrap(),
        Backend::Cpu,
        s,
        content.view(),
        styles,
    )
    .unwrap()
}

fn gradient(obj: &mut StyleObjective, x: &Array3<f32>) -> (Breakdown, Array3<f32>) {
    let mut grad = Array3::zeros(x.raw_dim());
    let b = obj.evaluate(x.view(), grad.view_mut()).unwrap();
    (b, grad)
}

/// The whole objective's gradient against central differences.
#[track_caller]
fn fd(obj: &mut StyleObjective, x: &Array3<f32>) {
    let (_, grad) = gradient(obj, x);
    let max = grad.iter().fold(0.0_f32, |a, g| a.max(g.abs()));
    assert!(max > 1e-3, "gradient scale {max}: nothing would be checked");
    let xs = x.as_slice().unwrap().to_vec();
    let mut scratch = vec![0.0_f32; xs.len()];
    check_grad(
        &xs,
        grad.as_slice().unwrap(),
        |p| nst_optim::Objective::value_and_grad(obj, p, &mut scratch).unwrap(),
        GradCheck {
            h: 1e-3,
            max_coords: 192,
            ..GradCheck::default()
        },
    )
    .unwrap();
}

#[test]
fn fd_guided_styles_with_regions_and_a_content_mask() {
    let (content, a, b) = (image(8, 8, 8), image(9, 10, 12), image(10, 8, 8));
    let (mask_a, region_a) = (soft_mask(20, 8, 8), soft_mask(21, 10, 12));
    let mask_b = mask_a.mapv(|v| 1.0 - v);
    let styles = [
        StyleImage {
            mask: Some(mask_a.view()),
            region: Some(region_a.view()),
            ..StyleImage::new(a.view(), 1.0)
        },
        StyleImage {
            mask: Some(mask_b.view()),
            ..StyleImage::new(b.view(), 3.0)
        },
    ];
    let s = spec(
        "relu2_1",
        "relu1_1:0.4,relu2_1:0.3,relu2_2:0.3",
        20.0,
        2.0e3,
    );
    let mut obj = objective(&s, &content, &styles);
    obj.set_content_mask(soft_mask(22, 8, 8).view()).unwrap();
    fd(&mut obj, &image(11, 8, 8));
}

#[test]
fn fd_mean_cov_and_w2_with_blended_styles() {
    let (content, a, b) = (image(8, 8, 8), image(9, 12, 10), image(10, 8, 8));
    let styles = [
        StyleImage::new(a.view(), 1.0),
        StyleImage::new(b.view(), 2.0),
    ];
    for kind in [StyleLossKind::MeanCov, StyleLossKind::W2] {
        let s = ObjectiveSpec {
            style_loss: kind,
            ..spec("relu2_1", "relu1_1:0.5,relu2_2:0.5", 1.0, 50.0)
        };
        let mut obj = objective(&s, &content, &styles);
        fd(&mut obj, &image(11, 8, 8));
    }
}

/// All-white masks give the plain Gram cost: the guided Gram normalized by the mask's energy is `G/M`
/// and the guided cost's `1/(4·C²)` makes up for it.
#[test]
fn white_masks_are_the_plain_gram_cost() {
    let (content, style) = (image(8, 8, 8), image(9, 10, 12));
    let (white, white_s) = (Array2::ones((8, 8)), Array2::ones((10, 12)));
    let s = spec("relu2_1", "relu1_1,relu2_1,relu2_2", 10.0, 40.0);
    let mut plain = objective(&s, &content, &[StyleImage::new(style.view(), 1.0)]);
    let masked = StyleImage {
        mask: Some(white.view()),
        region: Some(white_s.view()),
        ..StyleImage::new(style.view(), 1.0)
    };
    let mut guided = objective(&s, &content, &[masked]);
    let x = image(11, 8, 8);
    let ((bp, gp), (bg, gg)) = (gradient(&mut plain, &x), gradient(&mut guided, &x));
    approx::assert_relative_eq!(bp.style, bg.style, max_relative = 1e-4);
    let scale = gp.iter().fold(0.0_f32, |a, g| a.max(g.abs()));
    approx::assert_abs_diff_eq!(gp, gg, epsilon = 1e-4 * scale);
    // And an all-white content mask is the plain content cost.
    guided.set_content_mask(white.view()).unwrap();
    assert_eq!(gradient(&mut guided, &x).0.content, bg.content);
}

/// A style whose mask is black on the left half leaves the left half's style gradient zero, as far as
/// `relu1_1`'s 3×3 receptive field reaches no masked position.
#[test]
fn a_black_mask_region_gets_no_style_gradient() {
    let (content, style) = (image(8, 8, 16), image(9, 8, 8));
    let mask = Array2::from_shape_fn((8, 16), |(_, x)| if x < 8 { 0.0 } else { 1.0 });
    let styles = [StyleImage {
        mask: Some(mask.view()),
        ..StyleImage::new(style.view(), 1.0)
    }];
    let mut obj = objective(&spec("relu1_1", "relu1_1", 0.0, 1.0e3), &content, &styles);
    let (b, grad) = gradient(&mut obj, &image(11, 8, 16));
    assert!(b.style > 0.0);
    assert!(grad.slice(s![.., .., ..7]).iter().all(|&g| g == 0.0));
    assert!(grad.slice(s![.., .., 8..]).iter().any(|&g| g != 0.0));
}

/// Two complementary masks that split the image: after a short L-BFGS run on the style cost alone,
/// each half's features have the Gram statistics of its own style, far closer than the other's.
#[test]
fn two_masks_give_each_half_its_own_styles_statistics() {
    let (h, w) = (8, 16);
    let a = image(30, 8, 8);
    let b = image(31, 8, 8).mapv(|v| v * 3.0 + 1.0);
    let left = Array2::from_shape_fn((h, w), |(_, x)| if x < w / 2 { 1.0 } else { 0.0 });
    let right = left.mapv(|v| 1.0 - v);
    let styles = [
        StyleImage {
            mask: Some(left.view()),
            ..StyleImage::new(a.view(), 1.0)
        },
        StyleImage {
            mask: Some(right.view()),
            ..StyleImage::new(b.view(), 1.0)
        },
    ];
    let mut obj = objective(
        &spec("relu1_1", "relu1_1", 0.0, 1.0),
        &image(8, h, w),
        &styles,
    );
    let mut x = image(12, h, w).into_raw_vec_and_offset().0;
    let mut opt = nst_optim::Lbfgs::new(nst_optim::LbfgsConfig::default()).unwrap();
    nst_optim::minimize(&mut opt, &mut x, &mut obj, 300, |_| {
        ControlFlow::Continue(())
    })
    .unwrap();
    let x = Array3::from_shape_vec((3, h, w), x).unwrap();
    let net = build_network(&tiny_model(7, 3, PoolMethod::Avg), None).unwrap();
    let relu = net.index_of("relu1_1").unwrap();
    let mut net = net;
    let mut feats = |img: &Array3<f32>| {
        net.forward_inference(img.view(), &[relu])
            .unwrap()
            .remove(0)
    };
    let gram_over = |f: &Array3<f32>, m: ArrayView2<'_, f32>| {
        nst_costs::guided_gram(f.view(), m, &tensor_ops::CpuGemm).unwrap()
    };
    let (fx, fa, fb) = (feats(&x), feats(&a), feats(&b));
    let whole = Array2::ones((8, 8));
    let (ga, gb) = (gram_over(&fa, whole.view()), gram_over(&fb, whole.view()));
    let dist = |p: &Array2<f32>, q: &Array2<f32>| {
        let d: f32 = (p - q).iter().map(|v| v * v).sum();
        d.sqrt() / q.iter().map(|v| v * v).sum::<f32>().sqrt()
    };
    let (gl, gr) = (gram_over(&fx, left.view()), gram_over(&fx, right.view()));
    let (own_l, other_l) = (dist(&gl, &ga), dist(&gl, &gb));
    let (own_r, other_r) = (dist(&gr, &gb), dist(&gr, &ga));
    assert!(
        own_l < 0.05 && own_l * 10.0 < other_l,
        "left: {own_l} vs {other_l}"
    );
    assert!(
        own_r < 0.05 && own_r * 10.0 < other_r,
        "right: {own_r} vs {other_r}"
    );
}

/// `normalize_gradients` scales each layer's gradient by its L1 norm: with one term, the image
/// gradient is the plain one divided by a constant, and the reported costs are unchanged.
#[test]
fn normalized_gradients_are_the_plain_ones_scaled_per_layer() {
    let (content, style) = (image(8, 8, 8), image(9, 8, 8));
    let styles = [StyleImage::new(style.view(), 1.0)];
    let plain_spec = spec("relu2_1", "relu2_2", 0.0, 40.0);
    let norm_spec = ObjectiveSpec {
        normalize_gradients: true,
        ..plain_spec.clone()
    };
    let x = image(11, 8, 8);
    let (bp, gp) = gradient(&mut objective(&plain_spec, &content, &styles), &x);
    let (bn, gn) = gradient(&mut objective(&norm_spec, &content, &styles), &x);
    assert_eq!(bp.total, bn.total);
    let ratio = gp[[0, 3, 3]] / gn[[0, 3, 3]];
    assert!((ratio - 1.0).abs() > 1e-3, "the gradient was not rescaled");
    approx::assert_relative_eq!(
        gp,
        gn.mapv(|g| g * ratio),
        max_relative = 1e-3,
        epsilon = 1e-9
    );
}

#[test]
fn the_mixture_of_two_gaussians_by_hand() {
    use ndarray::array;
    let a = nst_costs::FeatureStats {
        mean: array![0.0, 2.0],
        cov: array![[1.0, 0.0], [0.0, 1.0]],
    };
    let b = nst_costs::FeatureStats {
        mean: array![2.0, 2.0],
        cov: array![[3.0, 1.0], [1.0, 1.0]],
    };
    let m = mixture(&[(a, 0.5), (b, 0.5)]);
    assert_eq!(m.mean, array![1.0, 2.0]);
    // E[xxᵀ] − μμᵀ: diag (0.5·(1 + 0) + 0.5·(3 + 4)) − 1 = 3, off-diagonal 0.5·1 = 0.5, …
    approx::assert_abs_diff_eq!(m.cov, array![[3.0, 0.5], [0.5, 1.0]], epsilon = 1e-12);
}

/// A mask reaches each layer through the poolings before it: none for `relu1_1`, one (2×2 means) for
/// `relu2_1` and `relu2_2`, checked against a hand computation.
#[test]
fn masks_reach_each_layer_through_its_poolings() {
    let net = build_network(&tiny_model(7, 3, PoolMethod::Avg), None).unwrap();
    let last = net.index_of("relu2_2").unwrap();
    let shapes = net.shapes(tensor_ops::Shape::new(3, 4, 6), last).unwrap();
    let mask = ndarray::array![
        [1.0_f32, 1.0, 0.0, 0.0, 1.0, 0.5],
        [1.0, 1.0, 0.0, 1.0, 0.5, 0.5],
        [0.0, 0.0, 0.0, 0.0, 1.0, 1.0],
        [0.0, 1.0, 0.0, 0.0, 1.0, 1.0],
    ];
    let at = |name: &str| mask_on_layer(mask.view(), &shapes, net.index_of(name).unwrap()).unwrap();
    assert_eq!(at("relu1_1"), mask);
    let want = ndarray::array![[1.0_f32, 0.25, 0.625], [0.25, 0.0, 1.0]];
    assert_eq!(at("relu2_1"), want);
    assert_eq!(at("relu2_2"), want);
    assert_eq!(
        poolings_before(&shapes, net.index_of("conv1_1").unwrap()),
        0
    );
    assert_eq!(poolings_before(&shapes, net.index_of("pool1").unwrap()), 1);
}

/// With two terms at different scales, each is normalized on its own: the image gradient is the sum of
/// the terms' plain gradients divided by their own norms, not the plain total rescaled.
#[test]
fn normalization_is_per_layer_with_two_terms() {
    let (content, style) = (image(8, 8, 8), image(9, 8, 8));
    let styles = [StyleImage::new(style.view(), 1.0)];
    let x = image(11, 8, 8);
    let grad_of = |content_layers: &str, alpha: f32, beta: f32, normalize: bool| {
        let s = ObjectiveSpec {
            normalize_gradients: normalize,
            ..spec(content_layers, "relu1_1", alpha, beta)
        };
        gradient(&mut objective(&s, &content, &styles), &x).1
    };
    // Each term alone, normalized, and both together.
    let content_only = grad_of("relu2_2", 1.0, 0.0, true);
    let style_only = grad_of("relu2_2", 0.0, 1.0, true);
    let both = grad_of("relu2_2", 1.0, 1.0, true);
    approx::assert_abs_diff_eq!(both, &content_only + &style_only, epsilon = 1e-6);
    // The plain gradients have very different scales, so a rescaled plain total differs.
    let plain = grad_of("relu2_2", 1.0, 1.0, false);
    let ratio = both[[0, 2, 2]] / plain[[0, 2, 2]];
    assert!(
        both.iter()
            .zip(&plain)
            .any(|(b, p)| (b - ratio * p).abs() > 1e-3 * b.abs().max(1e-9)),
        "per-layer normalization equals a global rescale here"
    );
}

/// Masks with another style cost than the Gram matrix are refused by the library too.
#[test]
fn masks_with_another_style_loss_are_refused() {
    let (content, style) = (image(8, 8, 8), image(9, 8, 8));
    let mask = Array2::ones((8, 8));
    let styles = [StyleImage {
        mask: Some(mask.view()),
        ..StyleImage::new(style.view(), 1.0)
    }];
    let s = ObjectiveSpec {
        style_loss: StyleLossKind::W2,
        ..spec("relu2_1", "relu1_1", 1.0, 1.0)
    };
    let m = tiny_model(7, 3, PoolMethod::Avg);
    let e = StyleObjective::new(
        build_network(&m, None).unwrap(),
        Backend::Cpu,
        &s,
        content.view(),
        &styles,
    )
    .unwrap_err();
    assert!(e.to_string().contains("Gram"), "{e}");
}
