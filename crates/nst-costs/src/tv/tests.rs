//! Unit tests of total variation: hand values, identities, errors.

use approx::assert_abs_diff_eq;
use ndarray::{Array3, array};

use super::*;

#[test]
fn constant_image_costs_zero_with_zero_gradient() {
    let x = Array3::from_elem((3, 5, 4), 117.25_f32);
    for kind in [
        TvKind::Squared,
        TvKind::Abs { eps: 1e-3 },
        TvKind::Abs { eps: 10.0 },
    ] {
        let tv = total_variation(x.view(), kind).unwrap();
        assert_eq!(tv.value, 0.0, "{kind:?}");
        assert!(tv.grad.iter().all(|&g| g == 0.0), "{kind:?}");
    }
}

#[test]
fn default_is_squared() {
    assert_eq!(TvKind::default(), TvKind::Squared);
}

#[test]
fn hand_values_two_channels() {
    // Channel 0: [[1, 2], [4, 8]], channel 1 constant 5.
    let x = array![[[1.0_f32, 2.0], [4.0, 8.0]], [[5.0, 5.0], [5.0, 5.0]]];
    // Differences of channel 0: vertical 3, 6; horizontal 1, 4.
    let sq = total_variation(x.view(), TvKind::Squared).unwrap();
    assert_abs_diff_eq!(sq.value, 9.0 + 36.0 + 1.0 + 16.0);
    // x00: −2·3 − 2·1 = −8; x01: −2·6 + 2·1 = −10; x10: 2·3 − 2·4 = −2; x11: 2·6 + 2·4 = 20.
    assert_abs_diff_eq!(
        sq.grad,
        array![[[-8.0, -10.0], [-2.0, 20.0]], [[0.0, 0.0], [0.0, 0.0]]]
    );

    let eps = 4.0_f64;
    let phi = |d: f64| (d * d + eps * eps).sqrt() - eps;
    let dphi = |d: f64| (d / (d * d + eps * eps).sqrt()) as f32;
    let ab = total_variation(x.view(), TvKind::Abs { eps: 4.0 }).unwrap();
    assert_abs_diff_eq!(
        ab.value,
        phi(3.0) + phi(6.0) + phi(1.0) + phi(4.0),
        epsilon = 1e-12
    );
    let want = array![
        [
            [-dphi(3.0) - dphi(1.0), -dphi(6.0) + dphi(1.0)],
            [dphi(3.0) - dphi(4.0), dphi(6.0) + dphi(4.0)]
        ],
        [[0.0, 0.0], [0.0, 0.0]]
    ];
    assert_abs_diff_eq!(ab.grad, want, epsilon = 1e-7);
}

#[test]
fn smooth_abs_tends_to_abs() {
    let x = array![[[0.0_f32, 3.0, -1.0]]];
    let tv = total_variation(x.view(), TvKind::Abs { eps: 1e-6 }).unwrap();
    assert_abs_diff_eq!(tv.value, 3.0 + 4.0, epsilon = 1e-5);
    assert_abs_diff_eq!(tv.grad, array![[[-1.0, 2.0, -1.0]]], epsilon = 1e-6);
}

#[test]
fn one_pixel_and_empty_images() {
    for shape in [(3, 1, 1), (0, 4, 4), (2, 0, 3)] {
        let tv = total_variation(Array3::<f32>::ones(shape).view(), TvKind::Squared).unwrap();
        assert_eq!(tv.value, 0.0);
        assert_eq!(tv.grad.dim(), shape);
    }
}

#[test]
fn non_contiguous_gradient_buffer() {
    let x = Array3::from_shape_fn((2, 3, 4), |(c, i, j)| ((c * 7 + i * 3 + j * j) % 5) as f32);
    let want = total_variation(x.view(), TvKind::Squared).unwrap();
    let mut grad_t = Array3::<f32>::ones((4, 3, 2));
    let v = total_variation_accumulate(
        x.view(),
        TvKind::Squared,
        grad_t.view_mut().permuted_axes([2, 1, 0]),
    )
    .unwrap();
    assert_eq!(v, want.value);
    assert_eq!(
        grad_t.view().permuted_axes([2, 1, 0]),
        want.grad.mapv(|g| g + 1.0)
    );
}

#[test]
fn invalid_eps_and_shape_are_errors() {
    let x = Array3::<f32>::zeros((1, 2, 2));
    for eps in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        let err = total_variation(x.view(), TvKind::Abs { eps }).unwrap_err();
        assert!(
            matches!(err, crate::Error::InvalidParameter { name: "eps", .. }),
            "{err}"
        );
    }
    let mut g = Array3::<f32>::zeros((1, 2, 3));
    let err = total_variation_accumulate(x.view(), TvKind::Squared, g.view_mut()).unwrap_err();
    assert!(
        err.to_string().contains("[1, 2, 2]") && err.to_string().contains("[1, 2, 3]"),
        "{err}"
    );
}
