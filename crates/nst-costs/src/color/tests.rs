//! Unit tests of colour matching: matched statistics for every method, hand-computed matrices, flat images, errors.

use approx::{assert_abs_diff_eq, relative_eq};
use ndarray::Array3;

use super::*;

const METHODS: [ColorMatch; 3] = [ColorMatch::Cholesky, ColorMatch::Pca, ColorMatch::Symmetric];

/// `n` pixels `M·u + offset` with `u` uniform in `[0, 1)³`: correlated colours.
fn pixels(n: usize, seed: u64, mix: [[f32; 3]; 3], offset: [f32; 3]) -> Vec<[f32; 3]> {
    let u = crate::testing::uniform_vec(seed, 3 * n, 0.0, 1.0);
    u.chunks(3)
        .map(|u| std::array::from_fn(|c| offset[c] + (0..3).map(|k| mix[c][k] * u[k]).sum::<f32>()))
        .collect()
}

fn style_pixels() -> Vec<[f32; 3]> {
    pixels(
        2000,
        1,
        [[60.0, 20.0, 5.0], [10.0, 90.0, 30.0], [0.0, 25.0, 40.0]],
        [20.0, 10.0, 30.0],
    )
}

fn content_pixels() -> Vec<[f32; 3]> {
    pixels(
        1500,
        2,
        [[120.0, -30.0, 10.0], [40.0, 50.0, 0.0], [5.0, 60.0, 20.0]],
        [60.0, 80.0, 40.0],
    )
}

/// Every entry of the mean and covariance of `got` within `1e-3` (relative) of `want`'s, the
/// covariance's relative to its largest entry so that near-zero off-diagonal entries are fair.
#[track_caller]
fn check_same_stats(got: &ColorStats, want: &ColorStats) {
    let mean_scale = want.mean.iter().fold(0.0_f64, |m, x| m.max(x.abs()));
    let cov_scale = want
        .cov
        .iter()
        .flatten()
        .fold(0.0_f64, |m, x| m.max(x.abs()));
    for c in 0..3 {
        let (g, w) = (got.mean[c], want.mean[c]);
        assert!(
            relative_eq!(g, w, epsilon = 1e-3 * mean_scale, max_relative = 1e-3),
            "mean {c}: {g} vs {w}"
        );
        for d in 0..3 {
            let (g, w) = (got.cov[c][d], want.cov[c][d]);
            assert!(
                relative_eq!(g, w, epsilon = 1e-3 * cov_scale, max_relative = 1e-3),
                "cov {c}{d}: {g} vs {w}"
            );
        }
    }
}

#[test]
fn style_pixels_take_the_content_mean_and_covariance_for_every_method() {
    let content = ColorStats::from_pixels(&content_pixels()).unwrap();
    let style = ColorStats::from_pixels(&style_pixels()).unwrap();
    for method in METHODS {
        let map = ColorMap::new(&style, &content, method).unwrap();
        let mut px = style_pixels();
        map.apply_pixels(&mut px);
        check_same_stats(&ColorStats::from_pixels(&px).unwrap(), &content);
    }
}

#[test]
fn the_same_on_chw_images() {
    let to_image = |px: &[[f32; 3]], h: usize, w: usize| {
        Array3::from_shape_fn((3, h, w), |(c, i, j)| px[i * w + j][c])
    };
    let content = to_image(&content_pixels(), 30, 50);
    let mut style = to_image(&style_pixels(), 40, 50);
    let to = ColorStats::from_chw(content.view()).unwrap();
    assert_eq!(to, ColorStats::from_pixels(&content_pixels()).unwrap());
    let from = ColorStats::from_chw(style.view()).unwrap();
    for method in METHODS {
        let mut s = style.clone();
        ColorMap::new(&from, &to, method)
            .unwrap()
            .apply_chw(s.view_mut())
            .unwrap();
        check_same_stats(&ColorStats::from_chw(s.view()).unwrap(), &to);
    }
    // A non-standard layout (stored as [W, H, C]) is mapped in place the same way.
    let map = ColorMap::new(&from, &to, ColorMatch::Pca).unwrap();
    let mut stored_t = style.view().permuted_axes([2, 1, 0]).to_owned();
    map.apply_chw(stored_t.view_mut().permuted_axes([2, 1, 0]))
        .unwrap();
    map.apply_chw(style.view_mut()).unwrap();
    assert_eq!(stored_t.view().permuted_axes([2, 1, 0]), style);
}

#[test]
fn hand_computed_matrices() {
    // Σ_from = I, Σ_to = [[5, 4, 0], [4, 5, 0], [0, 0, 1]]:
    // the symmetric square root of Σ_to is [[2, 1, 0], [1, 2, 0], [0, 0, 1]] (eigenvalues 9, 1, 1),
    // its Cholesky factor [[√5, 0, 0], [4/√5, 3/√5, 0], [0, 0, 1]].
    let from = ColorStats {
        mean: [1.0, 2.0, 3.0],
        cov: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
    };
    let to = ColorStats {
        mean: [0.0, 0.0, 10.0],
        cov: [[5.0, 4.0, 0.0], [4.0, 5.0, 0.0], [0.0, 0.0, 1.0]],
    };
    let root = [[2.0, 1.0, 0.0], [1.0, 2.0, 0.0], [0.0, 0.0, 1.0]];
    let r5 = 5.0_f64.sqrt();
    let chol = [[r5, 0.0, 0.0], [4.0 / r5, 3.0 / r5, 0.0], [0.0, 0.0, 1.0]];
    for (method, want) in [
        (ColorMatch::Cholesky, chol),
        (ColorMatch::Pca, root),
        (ColorMatch::Symmetric, root),
    ] {
        let map = ColorMap::new(&from, &to, method).unwrap();
        for (got, want) in map.matrix().iter().flatten().zip(want.iter().flatten()) {
            assert_abs_diff_eq!(*got, *want, epsilon = 1e-12);
        }
        // b = μ_to − A·μ_from, and apply(x) = A·x + b.
        let a = map.matrix();
        let b = map.offset();
        for c in 0..3 {
            let a_mu: f64 = (0..3).map(|k| a[c][k] * from.mean[k]).sum();
            assert_abs_diff_eq!(b[c], to.mean[c] - a_mu, epsilon = 1e-12);
        }
        let x = [0.5_f32, -1.0, 4.0];
        let y = map.apply(x);
        for c in 0..3 {
            let want: f64 = (0..3).map(|k| a[c][k] * f64::from(x[k])).sum::<f64>() + b[c];
            assert_abs_diff_eq!(f64::from(y[c]), want, epsilon = 1e-5);
        }
    }
    // Diagonal covariances: every method scales each channel by σ_to/σ_from.
    let from = ColorStats {
        mean: [0.0; 3],
        cov: [[4.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 9.0]],
    };
    let to = ColorStats {
        mean: [0.0; 3],
        cov: [[1.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 1.0]],
    };
    for method in METHODS {
        let a = ColorMap::new(&from, &to, method).unwrap().matrix();
        let want = [[0.5, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0 / 3.0]];
        for (got, want) in a.iter().flatten().zip(want.iter().flatten()) {
            assert_abs_diff_eq!(*got, *want, epsilon = 1e-12);
        }
    }
}

#[test]
fn symmetric_method_gives_a_symmetric_matrix_and_the_others_differ() {
    let content = ColorStats::from_pixels(&content_pixels()).unwrap();
    let style = ColorStats::from_pixels(&style_pixels()).unwrap();
    let a = |m| ColorMap::new(&style, &content, m).unwrap().matrix();
    let (chol, pca, sym) = (
        a(ColorMatch::Cholesky),
        a(ColorMatch::Pca),
        a(ColorMatch::Symmetric),
    );
    for (i, (sym_row, chol_row)) in sym.iter().zip(&chol).enumerate() {
        for (j, &x) in sym_row.iter().enumerate() {
            assert_abs_diff_eq!(x, sym[j][i], epsilon = 1e-12);
        }
        // L_to·L_from⁻¹ is lower triangular.
        assert!(chol_row.iter().skip(i + 1).all(|&x| x == 0.0), "{chol:?}");
    }
    assert!((pca[0][1] - pca[1][0]).abs() > 1e-3, "{pca:?}");
    assert!((pca[0][1] - sym[0][1]).abs() > 1e-3);
    assert_eq!(ColorMatch::default(), ColorMatch::Pca);
}

#[test]
fn flat_and_grey_style_images_give_finite_maps() {
    let content = ColorStats::from_pixels(&content_pixels()).unwrap();
    // A flat image: every pixel goes to the content mean.
    let mut flat = vec![[10.0_f32, 20.0, 30.0]; 50];
    let stats = ColorStats::from_pixels(&flat).unwrap();
    assert_eq!(stats.cov, [[0.0; 3]; 3]);
    for method in METHODS {
        let map = ColorMap::new(&stats, &content, method).unwrap();
        let mut px = flat.clone();
        map.apply_pixels(&mut px);
        for (&v, &mean) in px.iter().flatten().zip(content.mean.iter().cycle()) {
            assert_abs_diff_eq!(f64::from(v), mean, epsilon = 1e-3);
        }
    }
    // A grey gradient (R = G = B): rank 1, so only the grey axis can be matched; finite anyway.
    flat.iter_mut()
        .enumerate()
        .for_each(|(i, p)| *p = [i as f32; 3]);
    let grey = ColorStats::from_pixels(&flat).unwrap();
    for method in METHODS {
        let map = ColorMap::new(&grey, &content, method).unwrap();
        assert!(map.matrix().iter().flatten().all(|x| x.is_finite()));
        let mut px = flat.clone();
        map.apply_pixels(&mut px);
        assert!(px.iter().flatten().all(|x| x.is_finite()));
    }
}

#[test]
fn errors_for_bad_input() {
    assert!(matches!(
        ColorStats::from_pixels(&[]),
        Err(Error::EmptyInput { .. })
    ));
    let err = ColorStats::from_pixels(&[[0.0, f32::NAN, 0.0]]).unwrap_err();
    assert!(matches!(err, Error::NonFinite { .. }), "{err}");
    let err = ColorStats::from_chw(Array3::<f32>::zeros((4, 2, 2)).view()).unwrap_err();
    assert!(
        matches!(&err, Error::ShapeMismatch { left, .. } if left == &[4, 2, 2]),
        "{err}"
    );
    assert!(matches!(
        ColorStats::from_chw(Array3::<f32>::zeros((3, 0, 2)).view()),
        Err(Error::EmptyInput { .. })
    ));
    let ok = ColorStats::from_pixels(&[[0.0, 1.0, 2.0], [1.0, 0.0, 2.0]]).unwrap();
    let mut bad = ok;
    bad.cov[2][1] = f64::INFINITY;
    for (from, to) in [(&bad, &ok), (&ok, &bad)] {
        let err = ColorMap::new(from, to, ColorMatch::Cholesky).unwrap_err();
        assert!(matches!(err, Error::NonFinite { .. }), "{err}");
    }
    let map = ColorMap::new(&ok, &ok, ColorMatch::Pca).unwrap();
    let mut two = Array3::<f32>::zeros((2, 2, 2));
    assert!(matches!(
        map.apply_chw(two.view_mut()),
        Err(Error::ShapeMismatch { .. })
    ));
}
