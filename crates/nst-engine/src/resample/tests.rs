//! Lanczos-3 resampling against hand computations, and Adam's moments carried with it.

use approx::assert_abs_diff_eq;
use ndarray::Array3;

use super::*;

#[test]
fn the_kernel_is_an_interpolator() {
    assert_abs_diff_eq!(lanczos_kernel(0.0), 1.0);
    for x in [1.0, 2.0, -1.0, 3.0, 4.5] {
        assert_abs_diff_eq!(lanczos_kernel(x), 0.0, epsilon = 1e-12);
    }
    // sinc(½)·sinc(⅙) = (2/π)·(3/π)·sin(π/6)·... computed by hand: sin(π/2)/(π/2) · sin(π/6)/(π/6).
    let hand = (2.0 / std::f64::consts::PI) * (0.5 / (std::f64::consts::PI / 6.0));
    assert_abs_diff_eq!(lanczos_kernel(0.5), hand, epsilon = 1e-12);
}

#[test]
fn same_size_is_the_identity_and_constants_stay_constant() {
    let a = Array3::from_shape_fn((2, 5, 7), |(c, y, x)| (c * 100 + y * 10 + x) as f32);
    assert_eq!(lanczos3(a.view(), 5, 7), a);
    let flat = Array3::from_elem((3, 6, 4), -12.5_f32);
    for (h, w) in [(12, 8), (3, 2), (7, 9)] {
        let r = lanczos3(flat.view(), h, w);
        assert!(r.iter().all(|&v| (v + 12.5).abs() < 1e-4), "{h}x{w}");
    }
}

#[test]
fn doubling_a_line_matches_a_hand_computation() {
    // One row 0, 0, 0, 8, 0, 0, 0 doubled: output 7 sits at (7 + ½)/2 − ½ = 3.25 in input coordinates.
    let mut a = Array3::<f32>::zeros((1, 1, 7));
    a[[0, 0, 3]] = 8.0;
    let r = lanczos3(a.view(), 1, 14);
    let weights: Vec<f64> = (1..=6).map(|j| lanczos_kernel(j as f64 - 3.25)).collect();
    let sum: f64 = weights.iter().sum();
    let hand = 8.0 * lanczos_kernel(3.0 - 3.25) / sum;
    assert_abs_diff_eq!(f64::from(r[[0, 0, 7]]), hand, epsilon = 1e-5);
}

#[test]
fn values_are_not_clipped() {
    let a = Array3::from_shape_fn(
        (1, 4, 4),
        |(_, y, x)| if (x + y) % 2 == 0 { -300.0 } else { 300.0 },
    );
    let r = lanczos3(a.view(), 8, 8);
    assert!(r.iter().any(|&v| v < -255.0) && r.iter().any(|&v| v > 255.0));
}

#[test]
fn adam_moments_are_resampled_and_rescaled_by_the_area_ratio() {
    use nst_optim::{Adam, AdamConfig, Objective, Optimizer as _};
    struct Quadratic;
    impl Objective for Quadratic {
        type Error = std::convert::Infallible;
        fn value_and_grad(&mut self, x: &[f32], g: &mut [f32]) -> Result<f64, Self::Error> {
            g.copy_from_slice(x);
            Ok(x.iter().map(|v| f64::from(v * v) / 2.0).sum())
        }
    }
    let mut adam = Adam::new(AdamConfig::tensorflow_v1(2.0)).unwrap();
    let mut x = vec![3.0_f32; 3 * 2 * 3];
    adam.step(&mut x, &mut Quadratic).unwrap();
    let state = adam.state();
    let (m, v) = state.moments();
    let (m0, v0) = (m[0], v[0]);
    let up = adam_state(state.clone(), (2, 3), (4, 6)).unwrap();
    assert_eq!(up.step(), 1);
    let (m2, v2) = up.moments();
    assert_eq!(m2.len(), 3 * 4 * 6);
    // Constant moments stay constant, divided by r = 4 and r² = 16.
    assert!(m2.iter().all(|&a| (a - m0 / 4.0).abs() < 1e-6 * m0.abs()));
    assert!(v2.iter().all(|&a| (a - v0 / 16.0).abs() < 1e-6 * v0.abs()));
    let err = adam_state(state, (5, 5), (4, 6)).unwrap_err();
    assert!(err.to_string().contains("not 3×5×5"), "{err}");
}

#[test]
fn resizing_from_8_bits_equals_the_float_planes_rule() {
    let img = image::RgbImage::from_fn(37, 23, |x, y| {
        image::Rgb([
            (x * 7 % 256) as u8,
            (y * 11 % 256) as u8,
            ((x * y) % 256) as u8,
        ])
    });
    let planes = Array3::from_shape_fn((3, 23, 37), |(c, y, x)| {
        f32::from(img.get_pixel(x as u32, y as u32)[c]) / 255.0
    });
    for (w, h) in [(16, 10), (37, 23), (60, 40)] {
        let fast = rgb8_to_rgb32f(&img, w, h);
        let slow = lanczos3(planes.view(), h as usize, w as usize);
        for (x, y, p) in fast.enumerate_pixels() {
            for c in 0..3 {
                let want = slow[[c, y as usize, x as usize]];
                assert!(
                    (p[c] - want).abs() < 1e-6,
                    "{w}x{h} at ({x}, {y}, {c}): {} vs {want}",
                    p[c]
                );
            }
        }
        // Through a float picture of the same size first: the same bits.
        let float = rgb8_to_rgb32f(&img, 37, 23);
        assert_eq!(rgb32f(&float, w, h), fast, "{w}x{h}");
    }
}
