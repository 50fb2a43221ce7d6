//! Colour matching and mask reading.

use image::{Rgb, Rgb32FImage};

use super::*;

fn picture(w: u32, h: u32, f: impl Fn(u32, u32) -> [f32; 3]) -> Picture {
    Picture {
        pixels: Rgb32FImage::from_fn(w, h, |x, y| Rgb(f(x, y))),
    }
}

fn stats(p: &Picture) -> ColorStats {
    let pixels: Vec<[f32; 3]> = p.pixels.pixels().map(|px| px.0).collect();
    ColorStats::from_pixels(&pixels).unwrap()
}

/// After `match`, the style's pixel mean and covariance equal the content's to 1e-3 (relative to the
/// content's), for every method.
#[test]
fn matched_styles_have_the_contents_mean_and_covariance() {
    let content = picture(23, 17, |x, y| {
        let (x, y) = (x as f32 / 23.0, y as f32 / 17.0);
        [
            0.2 + 0.5 * x,
            0.6 - 0.3 * y + 0.1 * x * y,
            0.3 + 0.2 * (x * 7.0).sin(),
        ]
    });
    let want = stats(&content);
    for method in [
        ColorMatchKind::Chol,
        ColorMatchKind::Pca,
        ColorMatchKind::Sym,
    ] {
        let mut styles = vec![picture(31, 11, |x, y| {
            let (x, y) = (x as f32 / 31.0, y as f32 / 11.0);
            [
                0.9 - 0.4 * y,
                0.1 + 0.8 * x * x,
                0.5 + 0.3 * (y * 5.0).cos() - 0.2 * x,
            ]
        })];
        match_colors(
            &mut styles,
            (&content, Path::new("c.png")),
            method,
            &["s.png".into()],
        )
        .unwrap();
        let got = stats(&styles[0]);
        let scale = want
            .cov
            .iter()
            .flatten()
            .fold(0.0_f64, |m, v| m.max(v.abs()));
        for c in 0..3 {
            assert!(
                (got.mean[c] - want.mean[c]).abs() < 1e-3,
                "{method}: mean {c}"
            );
            for d in 0..3 {
                let diff = (got.cov[c][d] - want.cov[c][d]).abs();
                assert!(
                    diff < 1e-3 * scale,
                    "{method}: cov[{c}][{d}] off by {diff:e}"
                );
            }
        }
    }
}

#[test]
fn a_mask_is_its_luminance_clamped_to_0_1() {
    let p = picture(4, 2, |x, _| {
        if x < 2 {
            [1.0, 1.0, 1.0]
        } else {
            [0.0, 0.0, 0.0]
        }
    });
    let m = mask_at(
        &p,
        Size {
            width: 4,
            height: 2,
        },
    );
    assert_eq!(m.row(0).to_vec(), vec![1.0, 1.0, 0.0, 0.0]);
    // A resize with overshoot stays in [0, 1].
    let m = mask_at(
        &p,
        Size {
            width: 13,
            height: 5,
        },
    );
    assert!(m.iter().all(|v| (0.0..=1.0).contains(v)));
}
