//! Colour spaces: round trips, known values, and chrominance taken from the content.

use super::*;

const SAMPLES: [[f32; 3]; 6] = [
    [0.0, 0.0, 0.0],
    [255.0, 255.0, 255.0],
    [200.0, 120.0, 40.0],
    [10.0, 200.0, 90.0],
    [30.0, 60.0, 250.0],
    [128.0, 128.0, 128.0],
];

#[test]
fn every_space_round_trips() {
    for name in ColorSpace::NAMES {
        let space: ColorSpace = name.parse().unwrap();
        assert_eq!(space.to_string(), *name);
        // YIQ's published 3-decimal matrices are inverses only to about 0.2 of 255.
        let tol = if space == ColorSpace::Yiq { 0.5 } else { 0.05 };
        for rgb in SAMPLES {
            let back = from_space(space, to_space(space, rgb));
            for (a, b) in rgb.iter().zip(back) {
                assert!((a - b).abs() < tol, "{name} {rgb:?} -> {back:?}");
            }
        }
    }
}

#[test]
fn known_values() {
    // White is L* = 100 with no chroma in Lab and Luv; gray has no chroma in every space.
    for space in [ColorSpace::Lab, ColorSpace::Luv] {
        let [l, c1, c2] = to_space(space, [255.0; 3]);
        assert!(
            (l - 100.0).abs() < 0.01 && c1.abs() < 0.05 && c2.abs() < 0.05,
            "{space}: {l} {c1} {c2}"
        );
    }
    for name in ColorSpace::NAMES {
        let space: ColorSpace = name.parse().unwrap();
        let [_, c1, c2] = to_space(space, [128.0; 3]);
        assert!(c1.abs() < 0.05 && c2.abs() < 0.05, "{name}: {c1} {c2}");
    }
    // sRGB red in Lab: L* 53.24, a* 80.09, b* 67.20 (the usual reference values).
    let [l, a, b] = to_space(ColorSpace::Lab, [255.0, 0.0, 0.0]);
    assert!(
        (l - 53.24).abs() < 0.05 && (a - 80.09).abs() < 0.1 && (b - 67.20).abs() < 0.1,
        "{l} {a} {b}"
    );
    // YCbCr of pure blue: Y = 0.114·255, Cb = 0.564·(255 − Y).
    let [y, cb, cr] = to_space(ColorSpace::Ycbcr, [0.0, 0.0, 255.0]);
    assert!(
        (y - 29.07).abs() < 0.01
            && (cb - 0.564 * (255.0 - 29.07)).abs() < 0.01
            && (cr + 0.713 * 29.07).abs() < 0.01
    );
}

#[test]
fn the_chrominance_is_the_contents_and_the_luminance_the_results() {
    for name in ColorSpace::NAMES {
        let space: ColorSpace = name.parse().unwrap();
        let (result, content) = ([90.0, 140.0, 110.0], [160.0, 100.0, 80.0]);
        let tol = if space == ColorSpace::Yiq { 0.5 } else { 0.05 };
        let mixed = with_chrominance(space, result, content);
        let [l, c1, c2] = to_space(space, mixed);
        let [lr, _, _] = to_space(space, result);
        let [_, cc1, cc2] = to_space(space, content);
        assert!((l - lr).abs() < tol, "{name}: luminance {l} vs {lr}");
        assert!(
            (c1 - cc1).abs() < tol && (c2 - cc2).abs() < tol,
            "{name}: chroma"
        );
    }
}
