//! Unit tests of the mean–covariance and W2 costs: hand examples with exact square roots, identities, errors.

use approx::{assert_abs_diff_eq, assert_relative_eq};
use ndarray::{Array2, Array3, array};
use tensor_ops::CpuGemm;

use super::*;
use crate::{StyleLoss, StyleNorm, StyleTarget, gram, rescale_gram, style_layer_loss, style_loss};

fn features(c: usize, h: usize, w: usize, seed: u64) -> Array3<f32> {
    Array3::from_shape_vec(
        (c, h, w),
        crate::testing::uniform_vec(seed, c * h * w, -1.0, 1.0),
    )
    .unwrap()
}

/// Two orthonormal ±1 patterns of mean 0 over four positions: `z1 = [1, −1, 1, −1]`,
/// `z2 = [1, 1, −1, −1]` (`z·z/4 = 1`, `z1·z2 = 0`). `[C = 2, H = 1, W = 4]` features
/// `p·z1 + q·z2` (channel 0) and `r·z1 + s·z2` (channel 1) have `Σ = [[p² + q², pr + qs], [pr + qs, r² + s²]]`.
fn two_channels(p: f32, q: f32, r: f32, s: f32, mean: [f32; 2]) -> Array3<f32> {
    let z1 = [1.0_f32, -1.0, 1.0, -1.0];
    let z2 = [1.0_f32, 1.0, -1.0, -1.0];
    Array3::from_shape_fn((2, 1, 4), |(c, _, j)| {
        let (a, b) = if c == 0 { (p, q) } else { (r, s) };
        a * z1[j] + b * z2[j] + mean[c]
    })
}

#[test]
fn feature_stats_match_naive_loops() {
    let f = features(3, 4, 5, 1).mapv(|x| x + 2.0);
    let s = FeatureStats::from_features(f.view()).unwrap();
    let m = 20.0;
    for a in 0..3 {
        let mean: f64 = f
            .index_axis(ndarray::Axis(0), a)
            .iter()
            .map(|&x| f64::from(x))
            .sum::<f64>()
            / m;
        assert_abs_diff_eq!(s.mean[a], mean, epsilon = 1e-12);
        for b in 0..3 {
            let mut cov = 0.0;
            for (x, y) in f
                .index_axis(ndarray::Axis(0), a)
                .iter()
                .zip(f.index_axis(ndarray::Axis(0), b))
            {
                cov += (f64::from(*x) - s.mean[a]) * (f64::from(*y) - s.mean[b]);
            }
            assert_abs_diff_eq!(s.cov[[a, b]], cov / m, epsilon = 1e-6);
        }
    }
    assert_eq!(s.cov, s.cov.t());
}

#[test]
fn w2_hand_values_with_exact_square_roots() {
    let style_identity = two_channels(1.0, 0.0, 0.0, 1.0, [0.0, 0.0]); // Σ_S = I
    let t = W2Target::from_features(style_identity.view()).unwrap();
    assert_abs_diff_eq!(t.sqrt_cov(), Array2::eye(2), epsilon = 1e-15);
    // Σ_G = [[5, 4], [4, 5]] (eigenvalues 9, 1; square root [[2, 1], [1, 2]]): W₂² = 10 + 2 − 2·4 = 4.
    let g = two_channels(2.0, 1.0, 1.0, 2.0, [0.0, 0.0]);
    assert_abs_diff_eq!(
        w2_loss(g.view(), &t).unwrap().value,
        4.0 / 2.0,
        epsilon = 1e-12
    );
    // The same with the means 1 apart: + 1.
    let g = two_channels(2.0, 1.0, 1.0, 2.0, [1.0, 0.0]);
    assert_abs_diff_eq!(
        w2_loss(g.view(), &t).unwrap().value,
        5.0 / 2.0,
        epsilon = 1e-12
    );

    // Σ_S = diag(4, 1) (R = diag(2, 1)) against Σ_G = [[5/4, 2], [2, 5]], which do not commute:
    // R·Σ_G·R = [[5, 4], [4, 5]], whose square root has trace 4, so W₂² = 6.25 + 5 − 8 = 3.25.
    let style = two_channels(2.0, 0.0, 0.0, 1.0, [0.0, 0.0]);
    let t = W2Target::from_features(style.view()).unwrap();
    assert_abs_diff_eq!(
        t.sqrt_cov(),
        array![[2.0, 0.0], [0.0, 1.0]],
        epsilon = 1e-15
    );
    let g = two_channels(1.0, 0.5, 1.0, 2.0, [0.0, 0.0]);
    let gs = FeatureStats::from_features(g.view()).unwrap();
    assert_abs_diff_eq!(gs.cov, array![[1.25, 2.0], [2.0, 5.0]], epsilon = 1e-15);
    assert_abs_diff_eq!(
        w2_loss(g.view(), &t).unwrap().value,
        3.25 / 2.0,
        epsilon = 1e-12
    );
    // Swapping the roles gives the same distance (W₂ is symmetric).
    let t_swapped = W2Target::from_features(g.view()).unwrap();
    let swapped = w2_loss(style.view(), &t_swapped).unwrap().value;
    assert_abs_diff_eq!(swapped, 3.25 / 2.0, epsilon = 1e-12);
    // And the mean–covariance cost of the same pair: ‖[[−2.75, 2], [2, 4]]‖² / 4.
    let mc = mean_cov_loss(g.view(), t.stats()).unwrap().value;
    assert_abs_diff_eq!(mc, (2.75 * 2.75 + 4.0 + 4.0 + 16.0) / 4.0, epsilon = 1e-12);
}

#[test]
fn w2_of_uncorrelated_channels_is_the_mean_of_mean_and_std_differences() {
    // Li et al. 2017's statistics loss: (1/C)·Σ_c (μ_G − μ_S)² + (σ_G − σ_S)².
    let g = two_channels(3.0, 0.0, 0.0, 0.5, [1.0, -2.0]); // σ = 3, 0.5
    let style = two_channels(1.0, 0.0, 0.0, 2.0, [0.0, 0.5]); // σ = 1, 2
    let t = W2Target::from_features(style.view()).unwrap();
    let want = (1.0 + 4.0 + 2.5 * 2.5 + 1.5 * 1.5) / 2.0;
    assert_abs_diff_eq!(w2_loss(g.view(), &t).unwrap().value, want, epsilon = 1e-12);
}

#[test]
fn zero_cost_and_zero_gradient_at_the_own_statistics() {
    let f = features(5, 6, 7, 2).mapv(|x| x.max(0.0) + 0.1);
    let stats = FeatureStats::from_features(f.view()).unwrap();
    let mc = mean_cov_loss(f.view(), &stats).unwrap();
    assert_eq!(mc.value, 0.0);
    assert!(mc.grad.iter().all(|&g| g == 0.0));
    let w2 = w2_loss(f.view(), &W2Target::new(stats).unwrap()).unwrap();
    assert!(w2.value.abs() < 1e-12, "{}", w2.value);
    assert!(w2.grad.iter().all(|&g| g.abs() < 1e-7), "{:?}", w2.grad);
}

#[test]
fn covariance_term_is_the_johnson_gram_cost_of_centered_features() {
    let center = |f: Array3<f32>| {
        let mean = f
            .mean_axis(ndarray::Axis(2))
            .unwrap()
            .mean_axis(ndarray::Axis(1))
            .unwrap();
        let mut f = f;
        for (mut ch, m) in f.outer_iter_mut().zip(mean) {
            ch.mapv_inplace(|x| x - m);
        }
        f
    };
    let g = center(features(4, 5, 6, 3));
    let s = center(features(4, 3, 7, 4));
    let stats = FeatureStats::from_features(s.view()).unwrap();
    let mc = mean_cov_loss(g.view(), &stats).unwrap();
    let target = rescale_gram(gram(s.view(), &CpuGemm).view(), 21, 30).unwrap();
    let johnson =
        style_layer_loss(g.view(), target.view(), StyleNorm::Johnson2016, &CpuGemm).unwrap();
    assert_relative_eq!(mc.value, johnson.value, max_relative = 1e-5);
}

#[test]
fn singular_covariances_stay_finite() {
    // Six channels on four positions (rank ≤ 3), against a full-rank style and a rank-deficient one.
    let g = features(6, 2, 2, 5);
    for style in [features(6, 5, 4, 6), features(6, 1, 3, 7)] {
        let t = W2Target::from_features(style.view()).unwrap();
        let cost = w2_loss(g.view(), &t).unwrap();
        assert!(cost.value.is_finite() && cost.value > 0.0, "{}", cost.value);
        assert!(cost.grad.iter().all(|g| g.is_finite()));
    }
    // A constant style: Σ_S = 0, so R = 0 and the floor falls back to its relative value.
    let t = W2Target::from_features(Array3::from_elem((3, 2, 2), 0.5).view()).unwrap();
    assert_eq!(t.floor(), W2Target::FLOOR_RELATIVE);
    let g = features(3, 2, 2, 8);
    let cost = w2_loss(g.view(), &t).unwrap();
    let gs = FeatureStats::from_features(g.view()).unwrap();
    let want = ((&gs.mean - 0.5).mapv(|d| d * d).sum() + gs.cov.diag().sum()) / 3.0;
    assert_relative_eq!(cost.value, want, max_relative = 1e-9);
}

#[test]
fn accumulate_adds_and_handles_non_standard_layouts() {
    let f = features(3, 4, 5, 9);
    let t = W2Target::from_features(features(3, 5, 4, 10).view()).unwrap();
    let want_w2 = w2_loss(f.view(), &t).unwrap();
    let want_mc = mean_cov_loss(f.view(), t.stats()).unwrap();
    let f_t = f.view().permuted_axes([2, 1, 0]).to_owned();
    let mut scratch = StyleScratch::new();
    let mut grad_t = Array3::<f32>::ones((5, 4, 3));
    let mut v = w2_loss_accumulate(
        f_t.view().permuted_axes([2, 1, 0]),
        &t,
        &mut scratch,
        grad_t.view_mut().permuted_axes([2, 1, 0]),
    )
    .unwrap();
    v += mean_cov_loss_accumulate(
        f_t.view().permuted_axes([2, 1, 0]),
        t.stats(),
        &mut scratch,
        grad_t.view_mut().permuted_axes([2, 1, 0]),
    )
    .unwrap();
    assert_relative_eq!(v, want_w2.value + want_mc.value, max_relative = 1e-9);
    let got = grad_t.view().permuted_axes([2, 1, 0]).mapv(|g| g - 1.0);
    assert_abs_diff_eq!(got, &want_w2.grad + &want_mc.grad, epsilon = 1e-6);
}

#[test]
fn style_loss_dispatches_to_the_target_kind() {
    let f = features(3, 4, 5, 11);
    let s = features(3, 4, 5, 12);
    for kind in [StyleLoss::Gram, StyleLoss::MeanCov, StyleLoss::W2] {
        let target = StyleTarget::from_features(kind, s.view(), &CpuGemm).unwrap();
        assert_eq!(target.kind(), kind);
        let got = style_loss(f.view(), &target, StyleNorm::Johnson2016, &CpuGemm).unwrap();
        let want = match &target {
            StyleTarget::Gram(g) => {
                style_layer_loss(f.view(), g.view(), StyleNorm::Johnson2016, &CpuGemm).unwrap()
            }
            StyleTarget::MeanCov(st) => mean_cov_loss(f.view(), st).unwrap(),
            StyleTarget::W2(t) => w2_loss(f.view(), t).unwrap(),
        };
        assert_eq!(got, want, "{kind:?}");
    }
    assert_eq!(StyleLoss::default(), StyleLoss::Gram);
}

#[test]
fn errors_for_bad_targets_and_features() {
    let f = features(2, 3, 3, 13);
    let stats = FeatureStats::from_features(f.view()).unwrap();
    let wrong = FeatureStats {
        mean: Array1::zeros(3),
        cov: Array2::eye(3),
    };
    let err = mean_cov_loss(f.view(), &wrong).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ShapeMismatch {
                left_name: "target mean",
                ..
            }
        ),
        "{err}"
    );
    let ragged = FeatureStats {
        mean: Array1::zeros(2),
        cov: Array2::eye(3),
    };
    let err = W2Target::new(ragged.clone()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ShapeMismatch {
                left_name: "target cov",
                ..
            }
        ),
        "{err}"
    );
    assert!(mean_cov_loss(f.view(), &ragged).is_err());
    let mut nan = stats.clone();
    nan.cov[[0, 1]] = f64::NAN;
    assert!(matches!(
        W2Target::new(nan.clone()),
        Err(Error::NonFinite { .. })
    ));
    assert!(matches!(
        mean_cov_loss(f.view(), &nan),
        Err(Error::NonFinite { .. })
    ));
    let mut bad = f.clone();
    bad[[1, 2, 0]] = f32::INFINITY;
    let t = W2Target::new(stats.clone()).unwrap();
    assert!(matches!(
        w2_loss(bad.view(), &t),
        Err(Error::NonFinite {
            what: "the features",
            ..
        })
    ));
    assert!(matches!(
        FeatureStats::from_features(bad.view()),
        Err(Error::NonFinite { .. })
    ));
    let empty = Array3::<f32>::zeros((2, 0, 3));
    assert!(matches!(
        w2_loss(empty.view(), &t),
        Err(Error::EmptyInput { .. })
    ));
    let mut grad = Array3::<f32>::zeros((2, 3, 4));
    let err = mean_cov_loss_accumulate(f.view(), &stats, &mut StyleScratch::new(), grad.view_mut())
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ShapeMismatch {
                right_name: "grad",
                ..
            }
        ),
        "{err}"
    );
}
