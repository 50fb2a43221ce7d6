//! Unit tests of the content cost: hand values, identities and errors.

use approx::assert_abs_diff_eq;
use ndarray::{Array3, array};

use super::*;
use crate::Error;

#[test]
fn hand_values_for_every_norm() {
    // C = 2, H = 1, W = 2: differences 1, −2, 0, 3, Σd² = 14, N = 4.
    let g = array![[[1.0_f32, 0.0]], [[5.0, 3.0]]];
    let t = array![[[0.0_f32, 2.0]], [[5.0, 0.0]]];
    let d = array![[[1.0_f32, -2.0]], [[0.0, 3.0]]];
    for (norm, k) in [
        (ContentNorm::QuarterMean, 1.0 / 16.0),
        (ContentNorm::Half, 0.5),
        (ContentNorm::Mean, 0.25),
    ] {
        let c = content_loss(g.view(), t.view(), norm).unwrap();
        assert_abs_diff_eq!(c.value, 14.0 * k, epsilon = 1e-12);
        assert_abs_diff_eq!(c.grad, d.mapv(|x| x * (2.0 * k) as f32), epsilon = 1e-7);
    }
}

#[test]
fn zero_at_its_target_with_zero_gradient() {
    let t = Array3::from_shape_fn((3, 4, 5), |(c, i, j)| {
        (c * 20 + i * 5 + j) as f32 * 0.37 - 4.0
    });
    for norm in [
        ContentNorm::QuarterMean,
        ContentNorm::Half,
        ContentNorm::Mean,
    ] {
        let c = content_loss(t.view(), t.view(), norm).unwrap();
        assert_eq!(c.value, 0.0);
        assert!(c.grad.iter().all(|&x| x == 0.0));
    }
}

#[test]
fn default_is_quartermean() {
    assert_eq!(ContentNorm::default(), ContentNorm::QuarterMean);
}

#[test]
#[allow(deprecated)]
fn the_former_name_seed_still_names_the_default() {
    assert_eq!(ContentNorm::Seed, ContentNorm::QuarterMean);
    assert!(matches!(ContentNorm::default(), ContentNorm::Seed));
}

#[test]
fn non_contiguous_inputs_and_gradient_give_the_same_result() {
    let g = Array3::from_shape_fn((2, 3, 4), |(c, i, j)| (c + 2 * i + 3 * j) as f32 * 0.5);
    let t = Array3::from_shape_fn((2, 3, 4), |(c, i, j)| (3 * c + i + j) as f32 * 0.25);
    let want = content_loss(g.view(), t.view(), ContentNorm::QuarterMean).unwrap();
    // Same logical arrays stored transposed.
    let gt = g.view().permuted_axes([2, 1, 0]).to_owned();
    let tt = t.view().permuted_axes([2, 1, 0]).to_owned();
    let mut grad_t = Array3::<f32>::zeros((4, 3, 2));
    let value = content_loss_accumulate(
        gt.view().permuted_axes([2, 1, 0]),
        tt.view().permuted_axes([2, 1, 0]),
        ContentNorm::QuarterMean,
        grad_t.view_mut().permuted_axes([2, 1, 0]),
    )
    .unwrap();
    assert_eq!(value, want.value);
    assert_eq!(grad_t.view().permuted_axes([2, 1, 0]), want.grad);
}

#[test]
fn shape_mismatch_names_both_shapes() {
    let g = Array3::<f32>::zeros((2, 3, 4));
    let t = Array3::<f32>::zeros((2, 4, 3));
    let err = content_loss(g.view(), t.view(), ContentNorm::QuarterMean).unwrap_err();
    assert_eq!(
        err,
        Error::ShapeMismatch {
            op: "content_loss",
            left_name: "generated",
            left: vec![2, 3, 4],
            right_name: "target",
            right: vec![2, 4, 3],
        }
    );
    let msg = err.to_string();
    assert!(
        msg.contains("[2, 3, 4]") && msg.contains("[2, 4, 3]"),
        "{msg}"
    );
    let mut grad = Array3::<f32>::zeros((1, 3, 4));
    let err = content_loss_accumulate(
        g.view(),
        g.view(),
        ContentNorm::QuarterMean,
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

#[test]
fn an_all_ones_mask_is_the_plain_cost_and_a_zero_mask_is_none() {
    let g = Array3::from_shape_fn((2, 3, 4), |(c, i, j)| (c + 2 * i + 3 * j) as f32 * 0.5);
    let t = Array3::from_shape_fn((2, 3, 4), |(c, i, j)| (3 * c + i + j) as f32 * 0.25);
    for norm in [
        ContentNorm::QuarterMean,
        ContentNorm::Half,
        ContentNorm::Mean,
    ] {
        let plain = content_loss(g.view(), t.view(), norm).unwrap();
        let mut grad = Array3::zeros(g.raw_dim());
        let ones = ndarray::Array2::ones((3, 4));
        let v =
            masked_content_loss_accumulate(g.view(), t.view(), ones.view(), norm, grad.view_mut())
                .unwrap();
        assert_eq!(v, plain.value);
        assert_eq!(grad, plain.grad);
        let zeros = ndarray::Array2::zeros((3, 4));
        let mut grad = Array3::zeros(g.raw_dim());
        let v =
            masked_content_loss_accumulate(g.view(), t.view(), zeros.view(), norm, grad.view_mut())
                .unwrap();
        assert_eq!(v, 0.0);
        assert!(grad.iter().all(|&x| x == 0.0));
    }
}

#[test]
fn a_mask_weights_each_position_by_hand() {
    // C = 2, H = 1, W = 2; differences 1, −2 | 0, 3; mask 0.5, 1.
    let g = array![[[1.0_f32, 0.0]], [[5.0, 3.0]]];
    let t = array![[[0.0_f32, 2.0]], [[5.0, 0.0]]];
    let m = array![[0.5_f32, 1.0]];
    let mut grad = Array3::zeros((2, 1, 2));
    let v = masked_content_loss_accumulate(
        g.view(),
        t.view(),
        m.view(),
        ContentNorm::Half,
        grad.view_mut(),
    )
    .unwrap();
    assert_abs_diff_eq!(v, 0.5 * (0.5 * 1.0 + 4.0 + 0.0 + 9.0), epsilon = 1e-12);
    assert_abs_diff_eq!(grad, array![[[0.5, -2.0]], [[0.0, 3.0]]], epsilon = 1e-7);
}

#[test]
fn a_mask_of_the_wrong_shape_or_range_is_refused() {
    let g = Array3::<f32>::zeros((1, 2, 2));
    let mut grad = Array3::zeros((1, 2, 2));
    let wrong = ndarray::Array2::<f32>::ones((2, 3));
    let e = masked_content_loss_accumulate(
        g.view(),
        g.view(),
        wrong.view(),
        ContentNorm::Half,
        grad.view_mut(),
    );
    assert!(matches!(e, Err(Error::ShapeMismatch { .. })), "{e:?}");
    let bad = array![[0.0_f32, 1.5], [0.0, f32::NAN]];
    let e = masked_content_loss_accumulate(
        g.view(),
        g.view(),
        bad.view(),
        ContentNorm::Half,
        grad.view_mut(),
    );
    assert!(
        matches!(e, Err(Error::InvalidMask { index: 1, .. })),
        "{e:?}"
    );
}
