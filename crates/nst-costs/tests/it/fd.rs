//! Central-difference checks of every gradient in the crate, through the public API.

use ndarray::{Array2, Array3, ArrayView3};
use nst_costs::{
    ContentNorm, FeatureStats, StyleLoss, StyleNorm, StyleTarget, TvKind, W2Target, blend_grams,
    content_loss, gram, guided_gram, guided_style_loss, masked_content_loss_accumulate,
    mean_cov_loss, rescale_gram, style_layer_loss, style_loss, total_variation, w2_loss,
};
use tensor_ops::CpuGemm;
use test_utils::{GradCheck, check_grad, uniform_vec};

fn random(shape: (usize, usize, usize), seed: u64) -> Array3<f32> {
    Array3::from_shape_vec(
        shape,
        uniform_vec(seed, shape.0 * shape.1 * shape.2, -1.0, 1.0),
    )
    .unwrap()
}

/// Checks `grad` against central differences of `cost` at `x`. The absolute tolerance is scaled to
/// the gradient's largest entry, because the normalized costs have gradients far below 1.
#[track_caller]
fn check(x: &Array3<f32>, grad: &Array3<f32>, mut cost: impl FnMut(ArrayView3<'_, f32>) -> f64) {
    let scale = grad.iter().fold(0.0_f64, |m, &g| m.max(f64::from(g).abs()));
    assert!(
        scale > 0.0,
        "the gradient is identically zero: nothing would be checked"
    );
    let cfg = GradCheck {
        epsilon: 1e-3 * scale,
        max_coords: 128,
        ..GradCheck::default()
    };
    let shape = x.raw_dim();
    let result = check_grad(
        x.as_slice().unwrap(),
        grad.as_slice().unwrap(),
        |v| cost(ArrayView3::from_shape(shape, v).unwrap()),
        cfg,
    );
    if let Err(m) = result {
        panic!("gradient check failed (scale {scale:e}): {m}");
    }
}

#[test]
fn fd_content_loss_every_norm() {
    let x = random((3, 4, 5), 1);
    let target = random((3, 4, 5), 2);
    for norm in [
        ContentNorm::QuarterMean,
        ContentNorm::Half,
        ContentNorm::Mean,
    ] {
        let c = content_loss(x.view(), target.view(), norm).unwrap();
        check(&x, &c.grad, |v| {
            content_loss(v, target.view(), norm).unwrap().value
        });
    }
}

#[test]
fn fd_masked_content_loss_soft_mask() {
    let x = random((3, 4, 5), 31);
    let target = random((3, 4, 5), 32);
    let mask = random((1, 4, 5), 33)
        .mapv(|v| (v + 1.0) / 2.0)
        .into_shape_with_order((4, 5))
        .unwrap();
    let cost = |v: ArrayView3<'_, f32>, grad: &mut Array3<f32>| {
        masked_content_loss_accumulate(
            v,
            target.view(),
            mask.view(),
            ContentNorm::QuarterMean,
            grad.view_mut(),
        )
        .unwrap()
    };
    let mut grad = Array3::zeros(x.raw_dim());
    cost(x.view(), &mut grad);
    check(&x, &grad, |v| cost(v, &mut Array3::zeros(x.raw_dim())));
}

#[test]
fn fd_style_layer_loss_every_norm() {
    let x = random((4, 5, 6), 3);
    let target = gram(random((4, 5, 6), 4).view(), &CpuGemm);
    for norm in [
        StyleNorm::Gatys2016,
        StyleNorm::Johnson2016,
        StyleNorm::TorchTutorial,
    ] {
        let c = style_layer_loss(x.view(), target.view(), norm, &CpuGemm).unwrap();
        check(&x, &c.grad, |v| {
            style_layer_loss(v, target.view(), norm, &CpuGemm)
                .unwrap()
                .value
        });
    }
}

#[test]
fn fd_style_layer_loss_wide_layer_against_blended_rescaled_targets() {
    // 16 channels on 9×7 positions (1008 inputs, a random subset of 128 checked); the target is a
    // blend of a same-size style and a larger one rescaled to this size.
    let x = random((16, 9, 7), 5);
    let same = gram(random((16, 9, 7), 6).view(), &CpuGemm);
    let big = gram(random((16, 12, 11), 7).mapv(|v| v * 0.5).view(), &CpuGemm);
    let big = rescale_gram(big.view(), 12 * 11, 9 * 7).unwrap();
    let target: Array2<f32> = blend_grams(&[(same.view(), 0.3), (big.view(), 0.7)]).unwrap();
    let c = style_layer_loss(x.view(), target.view(), StyleNorm::Gatys2016, &CpuGemm).unwrap();
    check(&x, &c.grad, |v| {
        style_layer_loss(v, target.view(), StyleNorm::Gatys2016, &CpuGemm)
            .unwrap()
            .value
    });
}

#[test]
fn fd_total_variation_squared() {
    let x = random((3, 5, 6), 8);
    let tv = total_variation(x.view(), TvKind::Squared).unwrap();
    check(&x, &tv.grad, |v| {
        total_variation(v, TvKind::Squared).unwrap().value
    });
}

#[test]
fn fd_total_variation_smooth_abs() {
    // ε = 0.5 keeps the curvature 1/ε well within what h = 1e-2 resolves.
    let x = random((3, 5, 6), 9);
    let kind = TvKind::Abs { eps: 0.5 };
    let tv = total_variation(x.view(), kind).unwrap();
    check(&x, &tv.grad, |v| total_variation(v, kind).unwrap().value);
}

#[test]
fn fd_check_rejects_a_wrong_gradient() {
    // The harness itself must be able to fail: a gradient off by 2 % in one coordinate is caught.
    let x = random((2, 3, 3), 10);
    let target = random((2, 3, 3), 11);
    let c = content_loss(x.view(), target.view(), ContentNorm::Half).unwrap();
    let mut wrong = c.grad.clone();
    wrong[[1, 2, 0]] *= 1.02;
    let scale = wrong
        .iter()
        .fold(0.0_f64, |m, &g| m.max(f64::from(g).abs()));
    let cfg = GradCheck {
        epsilon: 1e-3 * scale,
        max_coords: 128,
        ..GradCheck::default()
    };
    let shape = x.raw_dim();
    let err = check_grad(
        x.as_slice().unwrap(),
        wrong.as_slice().unwrap(),
        |v| {
            content_loss(
                ArrayView3::from_shape(shape, v).unwrap(),
                target.view(),
                ContentNorm::Half,
            )
            .unwrap()
            .value
        },
        cfg,
    )
    .unwrap_err();
    assert_eq!(err.index, 9 + 2 * 3); // [1, 2, 0] in a [2, 3, 3] array
    assert_eq!(err.n_failed, 1);
}

#[test]
fn fd_style_layer_loss_against_an_asymmetric_target() {
    // A target that is not a Gram (e.g. loaded from elsewhere): the gradient must still be the
    // gradient of the value returned, 2k·(D + Dᵀ)·A rather than 4k·D·A.
    let x = random((4, 3, 5), 12);
    let g = gram(random((4, 3, 5), 13).view(), &CpuGemm);
    let noise = Array2::from_shape_vec((4, 4), uniform_vec(14, 16, -2.0, 2.0)).unwrap();
    let target = &g + &noise;
    assert_ne!(target, target.t());
    let c = style_layer_loss(x.view(), target.view(), StyleNorm::Gatys2016, &CpuGemm).unwrap();
    check(&x, &c.grad, |v| {
        style_layer_loss(v, target.view(), StyleNorm::Gatys2016, &CpuGemm)
            .unwrap()
            .value
    });
}

fn random_mask(h: usize, w: usize, seed: u64) -> Array2<f32> {
    Array2::from_shape_vec((h, w), uniform_vec(seed, h * w, 0.0, 1.0)).unwrap()
}

#[test]
fn fd_guided_style_loss_soft_mask_every_norm() {
    let x = random((4, 5, 6), 20);
    let mask = random_mask(5, 6, 21);
    // The target: another image of another size under its own mask.
    let target = guided_gram(
        random((4, 7, 3), 22).view(),
        random_mask(7, 3, 23).view(),
        &CpuGemm,
    )
    .unwrap();
    for norm in [
        StyleNorm::Gatys2016,
        StyleNorm::Johnson2016,
        StyleNorm::TorchTutorial,
    ] {
        let c = guided_style_loss(x.view(), mask.view(), target.view(), norm, &CpuGemm).unwrap();
        check(&x, &c.grad, |v| {
            guided_style_loss(v, mask.view(), target.view(), norm, &CpuGemm)
                .unwrap()
                .value
        });
    }
}

#[test]
fn fd_guided_style_loss_half_mask_wide_layer() {
    // 16 channels on 9×7 positions, the left four columns selected; the checked coordinates on the
    // right, outside the region, must have a zero gradient both ways.
    let x = random((16, 9, 7), 24);
    let mask = Array2::from_shape_fn((9, 7), |(_, j)| if j < 4 { 1.0 } else { 0.0 });
    let target = guided_gram(random((16, 9, 7), 25).view(), mask.view(), &CpuGemm).unwrap();
    let c = guided_style_loss(
        x.view(),
        mask.view(),
        target.view(),
        StyleNorm::Gatys2016,
        &CpuGemm,
    )
    .unwrap();
    check(&x, &c.grad, |v| {
        guided_style_loss(
            v,
            mask.view(),
            target.view(),
            StyleNorm::Gatys2016,
            &CpuGemm,
        )
        .unwrap()
        .value
    });
}

#[test]
fn fd_mean_cov_loss() {
    let x = random((4, 5, 6), 26);
    let target =
        FeatureStats::from_features(random((4, 6, 3), 27).mapv(|v| 2.0 * v + 0.5).view()).unwrap();
    let c = mean_cov_loss(x.view(), &target).unwrap();
    check(&x, &c.grad, |v| mean_cov_loss(v, &target).unwrap().value);
}

#[test]
fn fd_mean_cov_loss_against_an_asymmetric_target() {
    let x = random((3, 4, 5), 28);
    let mut target = FeatureStats::from_features(random((3, 4, 5), 29).view()).unwrap();
    target.cov[[0, 2]] += 0.3;
    let c = mean_cov_loss(x.view(), &target).unwrap();
    check(&x, &c.grad, |v| mean_cov_loss(v, &target).unwrap().value);
}

#[test]
fn fd_w2_loss() {
    let x = random((4, 5, 6), 30);
    let target =
        W2Target::from_features(random((4, 6, 3), 31).mapv(|v| 2.0 * v + 0.5).view()).unwrap();
    let c = w2_loss(x.view(), &target).unwrap();
    check(&x, &c.grad, |v| w2_loss(v, &target).unwrap().value);
}

#[test]
fn fd_w2_loss_wide_layer_relu_like_features() {
    // 40 channels (above the Jacobi order, so the eigen decomposition is Householder + QL) on
    // 10×8 positions, non-negative like ReLU outputs, against a correlated style.
    let c = 40;
    let x = random((c, 10, 8), 32).mapv(|v| v.abs() + 0.05);
    let mix = Array2::from_shape_vec((c, c), uniform_vec(33, c * c, -0.5, 0.5)).unwrap();
    let base = random((c, 9, 9), 34);
    let style = Array3::from_shape_fn((c, 9, 9), |(k, i, j)| {
        (0..c).map(|l| mix[[k, l]] * base[[l, i, j]]).sum::<f32>()
    });
    let target = W2Target::from_features(style.view()).unwrap();
    let cost = w2_loss(x.view(), &target).unwrap();
    check(&x, &cost.grad, |v| w2_loss(v, &target).unwrap().value);
}

#[test]
fn fd_w2_loss_against_a_singular_style() {
    // A style of three positions has Σ_S of rank 2 in 6 channels, so R = Σ_S^{1/2} is singular and
    // X = R·Σ_G·R has four eigenvalues at 0 whatever the generated features; they stay below the
    // floor under every perturbation, so the cost is smooth there and central differences apply.
    let x = random((6, 4, 5), 35);
    let target = W2Target::from_features(random((6, 1, 3), 36).view()).unwrap();
    let c = w2_loss(x.view(), &target).unwrap();
    check(&x, &c.grad, |v| w2_loss(v, &target).unwrap().value);
}

#[test]
fn fd_w2_loss_rank_deficient_features_along_their_span() {
    // Six channels on four positions: Σ_G has rank 3. W₂ has a square-root kink across the rank
    // (moving off it raises a zero eigenvalue of X to about h², and √(h²) = |h|), so a step of one
    // coordinate cannot check it. Directions `D = K·(A − μ·1ᵀ) + d·1ᵀ` keep the centered features in
    // the same rank, so there the cost is smooth: check ⟨∂J/∂A, D⟩ against central differences.
    let (c, m) = (6, 4);
    let x = random((c, 2, 2), 37);
    let target = W2Target::from_features(random((c, 5, 4), 38).view()).unwrap();
    let cost = w2_loss(x.view(), &target).unwrap();
    let a = x.to_shape((c, m)).unwrap().to_owned();
    let mean = a.mean_axis(ndarray::Axis(1)).unwrap();
    let centered = &a - &mean.view().insert_axis(ndarray::Axis(1));
    let value = |v: &Array2<f32>| {
        let v3 = v.to_shape((c, 2, 2)).unwrap();
        w2_loss(v3.view(), &target).unwrap().value
    };
    let grad = cost.grad.to_shape((c, m)).unwrap().to_owned();
    for seed in 0..8 {
        let k = Array2::from_shape_vec((c, c), uniform_vec(40 + seed, c * c, -1.0, 1.0)).unwrap();
        let shift = Array2::from_shape_vec((c, 1), uniform_vec(60 + seed, c, -1.0, 1.0)).unwrap();
        let d = k.dot(&centered) + &shift;
        let h = 1e-2_f32;
        let numeric = (value(&(&a + &(&d * h))) - value(&(&a - &(&d * h)))) / (2.0 * f64::from(h));
        let analytic: f64 = grad
            .iter()
            .zip(&d)
            .map(|(&g, &d)| f64::from(g) * f64::from(d))
            .sum();

        assert!(
            approx::relative_eq!(analytic, numeric, epsilon = 1e-4, max_relative = 1e-2),
            "direction {seed}: analytic {analytic:e}, numeric {numeric:e}"
        );
    }
}

#[test]
fn fd_style_loss_every_kind() {
    let x = random((3, 4, 5), 38);
    let style = random((3, 5, 4), 39);
    for kind in [StyleLoss::Gram, StyleLoss::MeanCov, StyleLoss::W2] {
        let target = StyleTarget::from_features(kind, style.view(), &CpuGemm).unwrap();
        let c = style_loss(x.view(), &target, StyleNorm::Gatys2016, &CpuGemm).unwrap();
        check(&x, &c.grad, |v| {
            style_loss(v, &target, StyleNorm::Gatys2016, &CpuGemm)
                .unwrap()
                .value
        });
    }
}
