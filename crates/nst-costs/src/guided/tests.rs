//! Unit tests of the guided Gram and cost and of the mask resizing: hand values, identities, errors.

use approx::assert_abs_diff_eq;
use ndarray::{Array2, Array3, array, s};
use tensor_ops::CpuGemm;

use super::*;
use crate::{gram, rescale_gram, style_layer_loss};

fn features(c: usize, h: usize, w: usize, seed: u64) -> Array3<f32> {
    Array3::from_shape_vec(
        (c, h, w),
        crate::testing::uniform_vec(seed, c * h * w, -1.0, 1.0),
    )
    .unwrap()
}

/// `1` on the columns `< split`, `0` right of it.
fn left_mask(h: usize, w: usize, split: usize) -> Array2<f32> {
    Array2::from_shape_fn((h, w), |(_, j)| if j < split { 1.0 } else { 0.0 })
}

const NORMS: [StyleNorm; 3] = [
    StyleNorm::Gatys2016,
    StyleNorm::Johnson2016,
    StyleNorm::TorchTutorial,
];

#[test]
fn complementary_masks_give_each_half_its_own_gram_statistics() {
    let (c, h, w, split) = (3, 4, 6, 2);
    let f = features(c, h, w, 1);
    let left = left_mask(h, w, split);
    let right = left.mapv(|m| 1.0 - m);
    let own_left = gram(f.slice(s![.., .., ..split]), &CpuGemm) / (h * split) as f32;
    let own_right = gram(f.slice(s![.., .., split..]), &CpuGemm) / (h * (w - split)) as f32;
    let g_left = guided_gram(f.view(), left.view(), &CpuGemm).unwrap();
    let g_right = guided_gram(f.view(), right.view(), &CpuGemm).unwrap();
    assert_abs_diff_eq!(g_left, own_left, epsilon = 1e-6);
    assert_abs_diff_eq!(g_right, own_right, epsilon = 1e-6);
    // The two halves average to the whole image's per-position Gram (weights 2/6 and 4/6).
    let whole = gram(f.view(), &CpuGemm) / (h * w) as f32;
    let mixed = g_left * (split as f32 / w as f32) + g_right * ((w - split) as f32 / w as f32);
    assert_abs_diff_eq!(mixed, whole, epsilon = 1e-6);
}

#[test]
fn each_half_matched_to_its_own_target_costs_nothing_and_ignores_the_other_half() {
    let (c, h, w) = (4, 3, 6);
    let f = features(c, h, w, 2);
    let left = left_mask(h, w, 3);
    let right = left.mapv(|m| 1.0 - m);
    // The right half's target comes from another image: the left region's cost must not see it.
    let other = features(c, h, w, 3);
    let t_left = guided_gram(f.view(), left.view(), &CpuGemm).unwrap();
    let t_right = guided_gram(other.view(), right.view(), &CpuGemm).unwrap();
    for norm in NORMS {
        let cost = guided_style_loss(f.view(), left.view(), t_left.view(), norm, &CpuGemm).unwrap();
        assert_eq!(cost.value, 0.0);
        assert!(cost.grad.iter().all(|&g| g == 0.0));
        let cost =
            guided_style_loss(f.view(), right.view(), t_right.view(), norm, &CpuGemm).unwrap();
        assert!(cost.value > 0.0);
        // The gradient of the right region's cost is zero on every left position.
        assert!(cost.grad.slice(s![.., .., ..3]).iter().all(|&g| g == 0.0));
        assert!(cost.grad.slice(s![.., .., 3..]).iter().any(|&g| g != 0.0));
    }
}

#[test]
fn black_mask_leaves_the_style_gradient_zero() {
    let f = features(3, 4, 5, 4);
    let black = Array2::<f32>::zeros((4, 5));
    let target = gram(features(3, 4, 5, 5).view(), &CpuGemm);
    assert_eq!(
        guided_gram(f.view(), black.view(), &CpuGemm).unwrap(),
        Array2::zeros((3, 3))
    );
    let mut scratch = StyleScratch::new();
    let mut grad = Array3::<f32>::from_elem((3, 4, 5), 0.5);
    for norm in NORMS {
        let value = guided_style_loss_accumulate(
            f.view(),
            black.view(),
            target.view(),
            norm,
            &CpuGemm,
            &mut scratch,
            grad.view_mut(),
        )
        .unwrap();
        assert_eq!(value, 0.0);
        assert!(grad.iter().all(|&g| g == 0.5));
    }
}

#[test]
fn all_ones_mask_is_the_plain_style_loss_against_a_rescaled_gram() {
    let f = features(5, 4, 6, 6);
    let style = features(5, 7, 3, 7);
    let ones = Array2::<f32>::ones((4, 6));
    let style_ones = Array2::<f32>::ones((7, 3));
    let guided_target = guided_gram(style.view(), style_ones.view(), &CpuGemm).unwrap();
    let plain_target = rescale_gram(gram(style.view(), &CpuGemm).view(), 21, 24).unwrap();
    for norm in NORMS {
        let guided =
            guided_style_loss(f.view(), ones.view(), guided_target.view(), norm, &CpuGemm).unwrap();
        let plain = style_layer_loss(f.view(), plain_target.view(), norm, &CpuGemm).unwrap();
        approx::assert_relative_eq!(guided.value, plain.value, max_relative = 1e-5);
        let scale = plain.grad.iter().fold(0.0_f32, |m, g| m.max(g.abs()));
        assert_abs_diff_eq!(guided.grad, plain.grad, epsilon = 1e-5 * scale);
    }
}

#[test]
fn soft_mask_gram_matches_a_naive_weighted_mean() {
    let (c, h, w) = (3, 5, 4);
    let f = features(c, h, w, 8);
    let mask =
        Array2::from_shape_vec((h, w), crate::testing::uniform_vec(9, h * w, 0.0, 1.0)).unwrap();
    let g = guided_gram(f.view(), mask.view(), &CpuGemm).unwrap();
    let energy: f64 = mask.iter().map(|&m| f64::from(m).powi(2)).sum();
    let naive = Array2::from_shape_fn((c, c), |(a, b)| {
        let mut sum = 0.0;
        for i in 0..h {
            for j in 0..w {
                let m2 = f64::from(mask[[i, j]]).powi(2);
                sum += m2 * f64::from(f[[a, i, j]]) * f64::from(f[[b, i, j]]);
            }
        }
        sum / energy
    });
    assert_abs_diff_eq!(g.mapv(f64::from), naive, epsilon = 1e-6);
    assert_eq!(g, g.t());
}

#[test]
fn accumulate_adds_reuses_scratch_across_shapes_and_handles_non_standard_layouts() {
    let f = features(4, 3, 5, 10);
    let mask =
        Array2::from_shape_vec((3, 5), crate::testing::uniform_vec(11, 15, 0.0, 1.0)).unwrap();
    let target = guided_gram(features(4, 3, 5, 12).view(), mask.view(), &CpuGemm).unwrap();
    let norm = StyleNorm::Gatys2016;
    let want = guided_style_loss(f.view(), mask.view(), target.view(), norm, &CpuGemm).unwrap();
    let mut scratch = StyleScratch::new();
    // A larger layer first, so the scratch holds stale values of another shape.
    let big = features(6, 7, 8, 13);
    let big_target = gram(big.view(), &CpuGemm);
    let mut big_grad = Array3::<f32>::zeros((6, 7, 8));
    guided_style_loss_accumulate(
        big.view(),
        Array2::<f32>::ones((7, 8)).view(),
        big_target.view(),
        norm,
        &CpuGemm,
        &mut scratch,
        big_grad.view_mut(),
    )
    .unwrap();
    // Features, mask and gradient all stored transposed; the gradient starts at 1.
    let f_t = f.view().permuted_axes([2, 1, 0]).to_owned();
    let mask_t = mask.t().to_owned();
    let mut grad_t = Array3::<f32>::ones((5, 3, 4));
    let value = guided_style_loss_accumulate(
        f_t.view().permuted_axes([2, 1, 0]),
        mask_t.t(),
        target.view(),
        norm,
        &CpuGemm,
        &mut scratch,
        grad_t.view_mut().permuted_axes([2, 1, 0]),
    )
    .unwrap();
    approx::assert_relative_eq!(value, want.value, max_relative = 1e-6);
    let got = grad_t.view().permuted_axes([2, 1, 0]).mapv(|g| g - 1.0);
    assert_abs_diff_eq!(got, want.grad, epsilon = 1e-6);
}

#[test]
fn downsample_mask_by_hand() {
    let m = array![
        [1.0_f32, 0.0, 1.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 1.0, 0.0, 1.0],
        [1.0, 1.0, 0.0, 0.0, 0.5, 0.5],
        [1.0, 1.0, 0.0, 0.0, 0.5, 0.5],
    ];
    assert_eq!(downsample_mask(m.view(), 0).unwrap(), m);
    let once = array![[0.25_f32, 1.0, 0.25], [1.0, 0.0, 0.5]];
    assert_eq!(downsample_mask(m.view(), 1).unwrap(), once);
    // 2×3 → 1×1: the odd last column (0.25, 0.5) reaches no output.
    assert_eq!(
        downsample_mask(m.view(), 2).unwrap(),
        array![[(0.25 + 1.0 + 1.0 + 0.0) / 4.0]]
    );
    let err = downsample_mask(m.view(), 3).unwrap_err();
    assert_eq!(
        err,
        Error::MaskTooSmall {
            height: 4,
            width: 6,
            n_pools: 3
        }
    );
}

#[test]
fn downsample_mask_matches_tensor_ops_average_pooling() {
    use tensor_ops::{AvgPool2d, Layer, Padding};
    let (h, w) = (13, 10);
    let m =
        Array2::from_shape_vec((h, w), crate::testing::uniform_vec(14, h * w, 0.0, 1.0)).unwrap();
    let pool = AvgPool2d::new("pool", [2, 2], [2, 2], Padding::ZERO).unwrap();
    let mut x = m.clone().insert_axis(ndarray::Axis(0));
    for n in 1..=3 {
        let (oh, ow) = (x.shape()[1] / 2, x.shape()[2] / 2);
        let mut y = Array3::zeros((1, oh, ow));
        pool.forward(x.view(), y.view_mut(), None).unwrap();
        let ours = downsample_mask(m.view(), n).unwrap();
        assert_abs_diff_eq!(ours, y.index_axis(ndarray::Axis(0), 0), epsilon = 1e-6);
        x = y;
    }
}

#[test]
fn downsampled_complementary_masks_stay_complementary() {
    let m =
        Array2::from_shape_vec((17, 12), crate::testing::uniform_vec(15, 204, 0.0, 1.0)).unwrap();
    let a = downsample_mask(m.view(), 2).unwrap();
    let b = downsample_mask(m.mapv(|v| 1.0 - v).view(), 2).unwrap();
    assert_eq!(a.dim(), (4, 3));
    assert_abs_diff_eq!(&a + &b, Array2::ones((4, 3)), epsilon = 1e-6);
    assert!(a.iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn errors_for_bad_masks_and_shapes() {
    let f = features(2, 3, 4, 16);
    let target = Array2::<f32>::zeros((2, 2));
    let norm = StyleNorm::Gatys2016;
    let err = guided_gram(f.view(), Array2::<f32>::ones((4, 3)).view(), &CpuGemm).unwrap_err();
    assert!(
        matches!(&err, Error::ShapeMismatch { left, right, .. } if left == &[4, 3] && right == &[3, 4]),
        "{err}"
    );
    let mut bad = Array2::<f32>::ones((3, 4));
    bad[[1, 2]] = 1.5;
    let err = guided_gram(f.view(), bad.view(), &CpuGemm).unwrap_err();
    assert_eq!(
        err,
        Error::InvalidMask {
            op: "guided_gram",
            index: 6,
            value: 1.5
        }
    );
    bad[[1, 2]] = f32::NAN;
    let err = guided_style_loss(f.view(), bad.view(), target.view(), norm, &CpuGemm).unwrap_err();
    assert!(matches!(err, Error::InvalidMask { index: 6, .. }), "{err}");
    bad[[1, 2]] = -0.1;
    assert!(downsample_mask(bad.view(), 1).is_err());
    let ones = Array2::<f32>::ones((3, 4));
    let err = guided_style_loss(
        f.view(),
        ones.view(),
        Array2::zeros((3, 3)).view(),
        norm,
        &CpuGemm,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ShapeMismatch {
                left_name: "target",
                ..
            }
        ),
        "{err}"
    );
    let mut grad = Array3::<f32>::zeros((2, 3, 5));
    let err = guided_style_loss_accumulate(
        f.view(),
        ones.view(),
        target.view(),
        norm,
        &CpuGemm,
        &mut StyleScratch::new(),
        grad.view_mut(),
    )
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
