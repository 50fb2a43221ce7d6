//! Unit tests of the Gram matrix and the style cost: naive references, hand values, identities, errors.

use approx::assert_abs_diff_eq;
use ndarray::{Array2, Array3, array};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tensor_ops::CpuGemm;

use super::*;

/// `G[i][j] = Σ_k A[i,k]·A[j,k]` by loops in f64.
fn naive_gram(f: &Array3<f32>) -> Array2<f64> {
    let (c, h, w) = f.dim();
    Array2::from_shape_fn((c, c), |(i, j)| {
        let mut s = 0.0;
        for y in 0..h {
            for x in 0..w {
                s += f64::from(f[[i, y, x]]) * f64::from(f[[j, y, x]]);
            }
        }
        s
    })
}

/// A `[c, h, w]` map of values drawn uniformly from `[-1, 1)` with a seeded RNG (the unit tests use
/// `rand` directly, so that they also build from the published package).
fn features(c: usize, h: usize, w: usize, seed: u64) -> Array3<f32> {
    let mut rng = SmallRng::seed_from_u64(seed);
    Array3::from_shape_simple_fn((c, h, w), || rng.random_range(-1.0..1.0))
}

#[test]
fn gram_matches_naive_and_is_exactly_symmetric() {
    // Channel counts below, at and across the block size GRAM_BLOCK (several block rows, ragged last).
    for (c, h, w) in [
        (1, 1, 1),
        (3, 5, 7),
        (8, 4, 9),
        (17, 3, 3),
        (GRAM_BLOCK, 2, 3),
        (2 * GRAM_BLOCK + 45, 3, 2),
    ] {
        let f = features(c, h, w, (c * h * w) as u64);
        let g = gram(f.view(), &CpuGemm);
        assert_abs_diff_eq!(g.mapv(f64::from), naive_gram(&f), epsilon = 1e-5);
        assert_eq!(g, g.t(), "gram of {c}x{h}x{w} is not exactly symmetric");
    }
}

#[test]
fn gram_of_non_contiguous_features() {
    let f = features(3, 4, 5, 1);
    let stored_t = f.view().permuted_axes([2, 1, 0]).to_owned();
    let g = gram(stored_t.view().permuted_axes([2, 1, 0]), &CpuGemm);
    assert_abs_diff_eq!(g, gram(f.view(), &CpuGemm), epsilon = 1e-6);
}

/// A band of rows of a tensor (what a band walk hands over) is read in place, with the result of the
/// band copied out, to the bit.
#[test]
fn gram_of_a_band_of_rows() {
    let f = features(5, 9, 7, 3);
    let band = f.slice(ndarray::s![.., 2..6, ..]);
    assert!(!band.is_standard_layout());
    assert_eq!(gram(band, &CpuGemm), gram(band.to_owned().view(), &CpuGemm));
    // In place: the band's rows merge into one axis of the same memory.
    let mut merged = band;
    assert!(merged.merge_axes(ndarray::Axis(1), ndarray::Axis(2)));
    assert_eq!(
        merged.index_axis_move(ndarray::Axis(1), 0).as_ptr(),
        band.as_ptr()
    );
}

#[test]
fn gram_into_checks_the_output_shape() {
    let f = features(3, 2, 2, 2);
    let mut out = Array2::<f32>::zeros((3, 2));
    let err = gram_into(f.view(), &CpuGemm, out.view_mut()).unwrap_err();
    assert!(
        matches!(&err, Error::ShapeMismatch { left, right, .. } if left == &[3, 2] && right == &[3, 3]),
        "{err}"
    );
}

#[test]
fn hand_values_for_every_norm() {
    // A = [[1, 2], [0, 1]] (C = 2, M = 2): G_G = [[5, 2], [2, 1]].
    // G_S = [[4, 2], [2, 0]], so D = G_G − G_S = [[1, 0], [0, 1]], Σ D² = 2,
    // and D·A = A, so ∂J/∂A = 4k·A.
    let a = array![[[1.0_f32, 2.0]], [[0.0, 1.0]]];
    let target = array![[4.0_f32, 2.0], [2.0, 0.0]];
    for (norm, k) in [
        (StyleNorm::Gatys2016, 1.0 / (4.0 * 4.0 * 4.0)),
        (StyleNorm::Johnson2016, 1.0 / 16.0),
        (StyleNorm::TorchTutorial, 1.0 / 64.0),
    ] {
        let cost = style_layer_loss(a.view(), target.view(), norm, &CpuGemm).unwrap();
        assert_abs_diff_eq!(cost.value, 2.0 * k, epsilon = 1e-12);
        assert_abs_diff_eq!(cost.grad, a.mapv(|x| x * (4.0 * k) as f32), epsilon = 1e-7);
    }
}

#[test]
fn default_is_gatys2016() {
    assert_eq!(StyleNorm::default(), StyleNorm::Gatys2016);
}

#[test]
#[allow(deprecated)]
fn the_former_name_seed_still_names_the_default() {
    assert_eq!(StyleNorm::Seed, StyleNorm::Gatys2016);
    assert!(matches!(StyleNorm::default(), StyleNorm::Seed));
}

#[test]
fn zero_at_its_own_gram_with_zero_gradient() {
    let f = features(5, 6, 7, 3);
    let g = gram(f.view(), &CpuGemm);
    for norm in [
        StyleNorm::Gatys2016,
        StyleNorm::Johnson2016,
        StyleNorm::TorchTutorial,
    ] {
        let cost = style_layer_loss(f.view(), g.view(), norm, &CpuGemm).unwrap();
        assert_eq!(cost.value, 0.0);
        assert!(cost.grad.iter().all(|&x| x == 0.0));
    }
}

#[test]
fn accumulate_adds_and_handles_non_standard_layouts() {
    let f = features(4, 3, 5, 4);
    let target = gram(features(4, 3, 5, 5).view(), &CpuGemm);
    let want = style_layer_loss(f.view(), target.view(), StyleNorm::Gatys2016, &CpuGemm).unwrap();

    // Standard layout, accumulating onto ones, scratch reused twice.
    let mut scratch = StyleScratch::new();
    let mut grad = Array3::<f32>::ones((4, 3, 5));
    for _ in 0..2 {
        grad.fill(1.0);
        let v = style_layer_loss_accumulate(
            f.view(),
            target.view(),
            StyleNorm::Gatys2016,
            &CpuGemm,
            &mut scratch,
            grad.view_mut(),
        )
        .unwrap();
        assert_eq!(v, want.value);
        assert_abs_diff_eq!(grad, want.grad.mapv(|x| x + 1.0), epsilon = 1e-6);
    }

    // Transposed storage for both the input and the gradient.
    let f_t = f.view().permuted_axes([2, 1, 0]).to_owned();
    let mut grad_t = Array3::<f32>::zeros((5, 3, 4));
    let v = style_layer_loss_accumulate(
        f_t.view().permuted_axes([2, 1, 0]),
        target.view(),
        StyleNorm::Gatys2016,
        &CpuGemm,
        &mut scratch,
        grad_t.view_mut().permuted_axes([2, 1, 0]),
    )
    .unwrap();
    assert_abs_diff_eq!(v, want.value, epsilon = 1e-12 * want.value.abs().max(1.0));
    assert_abs_diff_eq!(
        grad_t.view().permuted_axes([2, 1, 0]),
        want.grad.view(),
        epsilon = 1e-6
    );
}

#[test]
fn style_shape_errors_name_both_shapes() {
    let f = features(3, 2, 2, 6);
    let bad_target = Array2::<f32>::zeros((2, 2));
    let err =
        style_layer_loss(f.view(), bad_target.view(), StyleNorm::Gatys2016, &CpuGemm).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("[2, 2]") && msg.contains("[3, 3]"), "{msg}");
    let target = gram(f.view(), &CpuGemm);
    let mut grad = Array3::<f32>::zeros((3, 2, 1));
    let err = style_layer_loss_accumulate(
        f.view(),
        target.view(),
        StyleNorm::Gatys2016,
        &CpuGemm,
        &mut StyleScratch::new(),
        grad.view_mut(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::ShapeMismatch { left, right, .. } if left == &[3, 2, 2] && right == &[3, 2, 1]),
        "{err}"
    );
}

#[test]
fn blend_normalizes_the_weights() {
    let g1 = array![[1.0_f32, 2.0], [2.0, 5.0]];
    let g2 = array![[3.0_f32, 0.0], [0.0, 1.0]];
    let b = blend_grams(&[(g1.view(), 1.0), (g2.view(), 3.0)]).unwrap();
    assert_abs_diff_eq!(b, array![[2.5, 0.5], [0.5, 2.0]], epsilon = 1e-7);
    // A single target with any positive weight is itself; a zero weight drops a target.
    assert_eq!(blend_grams(&[(g1.view(), 7.5)]).unwrap(), g1);
    assert_eq!(
        blend_grams(&[(g1.view(), 2.0), (g2.view(), 0.0)]).unwrap(),
        g1
    );
}

#[test]
fn blend_rejects_bad_weights_and_shapes() {
    let g = array![[1.0_f32]];
    let g2 = Array2::<f32>::zeros((2, 2));
    for (w, idx) in [(-0.5_f32, 1), (f32::NAN, 1), (f32::INFINITY, 1)] {
        let err = blend_grams(&[(g.view(), 1.0), (g.view(), w)]).unwrap_err();
        assert!(
            matches!(err, Error::InvalidBlendWeight { index, .. } if index == idx),
            "{err}"
        );
    }
    assert_eq!(blend_grams(&[]).unwrap_err(), Error::NoBlendWeight);
    assert_eq!(
        blend_grams(&[(g.view(), 0.0), (g.view(), 0.0)]).unwrap_err(),
        Error::NoBlendWeight
    );
    let err = blend_grams(&[(g.view(), 1.0), (g2.view(), 1.0)]).unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
}

#[test]
fn rescale_matches_a_stationary_texture_at_another_size() {
    // A texture that repeats every 2 pixels: its per-position Gram is the same at every even size.
    let tex = |h: usize, w: usize| {
        Array3::from_shape_fn((3, h, w), |(c, i, j)| ((c + 1) * (1 + (i + j) % 2)) as f32)
    };
    let g_big = gram(tex(8, 6).view(), &CpuGemm);
    let g_small = gram(tex(4, 2).view(), &CpuGemm);
    assert_abs_diff_eq!(
        rescale_gram(g_big.view(), 48, 8).unwrap(),
        g_small,
        epsilon = 1e-5
    );
    // The style cost of the small texture against the rescaled big target is then 0.
    let target = rescale_gram(g_big.view(), 48, 8).unwrap();
    let cost = style_layer_loss(
        tex(4, 2).view(),
        target.view(),
        StyleNorm::Gatys2016,
        &CpuGemm,
    )
    .unwrap();
    assert_abs_diff_eq!(cost.value, 0.0, epsilon = 1e-12);
}

#[test]
fn rescale_rejects_zero_positions() {
    let g = array![[1.0_f32]];
    for (s, t) in [(0, 1), (1, 0)] {
        let err = rescale_gram(g.view(), s, t).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidParameter {
                    op: "rescale_gram",
                    ..
                }
            ),
            "{err}"
        );
    }
}

#[test]
fn empty_maps_cost_zero() {
    for shape in [(3, 0, 4), (0, 2, 2)] {
        let f = Array3::<f32>::zeros(shape);
        let target = Array2::<f32>::zeros((shape.0, shape.0));
        assert_eq!(gram(f.view(), &CpuGemm).dim(), (shape.0, shape.0));
        let cost =
            style_layer_loss(f.view(), target.view(), StyleNorm::Gatys2016, &CpuGemm).unwrap();
        assert_eq!(cost.value, 0.0);
        assert_eq!(cost.grad.dim(), shape);
    }
}

#[test]
fn empty_strided_views_cost_zero_without_panicking() {
    // Empty views with non-unit strides take the layout-conversion paths of every cost.
    use ndarray::s;
    let big = Array3::<f32>::ones((6, 5, 4));
    let mut grad = Array3::<f32>::zeros((6, 5, 4));
    let mut scratch = StyleScratch::new();
    let slices = [
        s![..;2, 0..0, ..],
        s![0..0, ..;2, ..;3],
        s![..;2, ..;2, 1..1],
    ];
    for info in slices {
        let v = big.slice(info);
        let mut gv = grad.slice_mut(info);
        let c = v.shape()[0];
        assert_eq!(gram(v, &CpuGemm), Array2::<f32>::zeros((c, c)));
        let target = Array2::<f32>::zeros((c, c));
        let style = style_layer_loss_accumulate(
            v,
            target.view(),
            StyleNorm::Gatys2016,
            &CpuGemm,
            &mut scratch,
            gv.view_mut(),
        )
        .unwrap();
        let content =
            crate::content_loss_accumulate(v, v, crate::ContentNorm::QuarterMean, gv.view_mut())
                .unwrap();
        let tv =
            crate::total_variation_accumulate(v, crate::TvKind::Squared, gv.view_mut()).unwrap();
        assert_eq!((style, content, tv), (0.0, 0.0, 0.0));
    }
    assert!(grad.iter().all(|&g| g == 0.0));
}

/// The in-place cost writes exactly `weight ×` the gradient that the accumulating one adds into a
/// zeroed array (blocks of 256 positions, a last short block, channel counts past one GEMM row band),
/// and returns the same value.
#[test]
fn in_place_cost_is_the_weighted_accumulated_gradient() {
    for (k, &(c, h, w)) in [(3, 5, 7), (64, 20, 30), (130, 9, 31)].iter().enumerate() {
        let f = features(c, h, w, 40 + k as u64);
        let target = gram(features(c, h, w, 50 + k as u64).view(), &CpuGemm);
        let mut scratch = StyleScratch::new();
        let mut grad = Array3::zeros(f.raw_dim());
        let norm = StyleNorm::Gatys2016;
        let want = style_layer_loss_accumulate(
            f.view(),
            target.view(),
            norm,
            &CpuGemm,
            &mut scratch,
            grad.view_mut(),
        )
        .unwrap();
        let mut in_place = f.clone();
        let got = style_layer_loss_in_place(
            in_place.view_mut(),
            target.view(),
            norm,
            0.7,
            &CpuGemm,
            &mut scratch,
        )
        .unwrap();
        assert_eq!(got, want, "value, {c}×{h}×{w}");
        assert_eq!(in_place, grad.mapv(|g| g * 0.7), "gradient, {c}×{h}×{w}");
    }
}

#[test]
fn in_place_cost_rejects_other_layouts_and_shapes() {
    let mut f = features(4, 3, 5, 1);
    let before = f.clone();
    let mut scratch = StyleScratch::new();
    let norm = StyleNorm::Gatys2016;
    // Reversed axes: [5, 3, 4] (a 5×5 target fits), not in standard layout.
    let five = Array2::<f32>::zeros((5, 5));
    let transposed = f.view_mut().reversed_axes();
    let err = style_layer_loss_in_place(transposed, five.view(), norm, 1.0, &CpuGemm, &mut scratch)
        .unwrap_err();
    assert!(matches!(err, Error::NotContiguous { .. }), "{err}");
    let three = Array2::<f32>::zeros((3, 3));
    let err = style_layer_loss_in_place(
        f.view_mut(),
        three.view(),
        norm,
        1.0,
        &CpuGemm,
        &mut scratch,
    )
    .unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
    assert_eq!(f, before, "a rejected call leaves the features alone");
}
