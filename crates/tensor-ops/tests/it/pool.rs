//! Pooling: reference agreement (proptest), MatConvNet semantics, argmax routing, finite differences.

use ndarray::{Array3, array};
use proptest::prelude::*;
use tensor_ops::{AvgPool2d, Layer, MaxPool2d, Padding, Shape};

use crate::{arr3, backward, check_layer_fd, dot, forward};

/// `(c, h, w, window, stride, pad [t, b, l, r])`.
type Case = (usize, usize, usize, usize, usize, [usize; 4]);

fn cases() -> impl Strategy<Value = Case> {
    (
        1..=4_usize,
        1..=9_usize,
        1..=9_usize,
        1..=3_usize,
        1..=3_usize,
    )
        .prop_flat_map(|(c, h, w, k, s)| {
            (
                Just(c),
                Just(h),
                Just(w),
                Just(k),
                Just(s),
                [0..k, 0..k, 0..k, 0..k],
            )
        })
        .prop_filter("padded input at least the window", |&(_, h, w, k, _, p)| {
            h + p[0] + p[1] >= k && w + p[2] + p[3] >= k
        })
}

fn pad(p: [usize; 4]) -> Padding {
    Padding {
        top: p[0],
        bottom: p[1],
        left: p[2],
        right: p[3],
    }
}

/// Distinct values (a shuffled linspace), so the argmax is unique.
fn distinct(seed: u64, (c, h, w): (usize, usize, usize)) -> Array3<f32> {
    Array3::from_shape_vec(
        (c, h, w),
        test_utils::shuffled_linspace(seed, c * h * w, -1.0, 0.05),
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn max_pool_matches_reference(case in cases(), seed in 0..1000_u64) {
        let (c, h, w, k, s, p) = case;
        let layer = MaxPool2d::new("pool", [k, k], [s, s], pad(p)).unwrap();
        let x = arr3(seed, (c, h, w), -1.0, 1.0);
        let (y, _) = forward(&layer, x.view());
        prop_assert_eq!(y, test_utils::reference::max_pool(x.view(), [k, k], [s, s], p));
    }

    #[test]
    fn avg_pool_matches_reference(case in cases(), seed in 0..1000_u64) {
        let (c, h, w, k, s, p) = case;
        let layer = AvgPool2d::new("pool", [k, k], [s, s], pad(p)).unwrap();
        let x = arr3(seed, (c, h, w), -1.0, 1.0);
        let (y, _) = forward(&layer, x.view());
        let want = test_utils::reference::avg_pool(x.view(), [k, k], [s, s], p);
        for (a, b) in y.iter().zip(&want) {
            prop_assert!((a - b).abs() <= 1e-6, "{} vs {}", a, b);
        }
    }

    /// Max pooling's backward puts each `grad_out` at its window's argmax, and nowhere else.
    #[test]
    fn max_pool_backward_routes_to_argmax(case in cases(), seed in 0..1000_u64) {
        let (c, h, w, k, s, p) = case;
        let layer = MaxPool2d::new("pool", [k, k], [s, s], pad(p)).unwrap();
        let x = distinct(seed, (c, h, w));
        let (y, saved) = forward(&layer, x.view());
        let dy = arr3(seed + 1, y.dim(), -1.0, 1.0);
        let gi = backward(&layer, &saved, Shape::new(c, h, w), dy.view());
        let mut want = Array3::<f32>::zeros((c, h, w));
        for ((ch, oy, ox), &m) in y.indexed_iter() {
            let (iy, ix) = x.index_axis(ndarray::Axis(0), ch).indexed_iter().find(|&(_, &v)| v == m).map(|(i, _)| i).unwrap();
            want[[ch, iy, ix]] += dy[[ch, oy, ox]];
        }
        for (a, b) in gi.iter().zip(&want) {
            prop_assert!((a - b).abs() <= 1e-6, "{} vs {}", a, b);
        }
    }

    /// Average pooling is linear: `⟨avg(x), y⟩ = ⟨x, avgᵀ(y)⟩`.
    #[test]
    fn avg_pool_adjoint(case in cases(), seed in 0..1000_u64) {
        let (c, h, w, k, s, p) = case;
        let layer = AvgPool2d::new("pool", [k, k], [s, s], pad(p)).unwrap();
        let x = arr3(seed, (c, h, w), -1.0, 1.0);
        let (out, saved) = forward(&layer, x.view());
        let y = arr3(seed + 1, out.dim(), -1.0, 1.0);
        let xt_y = backward(&layer, &saved, Shape::new(c, h, w), y.view());
        let (lhs, rhs) = (dot(&out, &y), dot(&x, &xt_y));
        prop_assert!((lhs - rhs).abs() <= 1e-5 * (1.0 + lhs.abs()), "{} vs {}", lhs, rhs);
    }
}

#[test]
fn vgg_pool_drops_the_odd_last_row_and_column() {
    let layer = MaxPool2d::new("pool1", [2, 2], [2, 2], Padding::ZERO).unwrap();
    assert_eq!(
        layer.output_shape(Shape::new(64, 375, 501)).unwrap(),
        Shape::new(64, 187, 250)
    );
    let x = array![[
        [1.0_f32, 5.0, 100.0],
        [3.0, 2.0, 100.0],
        [100.0, 100.0, 100.0]
    ]];
    let (y, _) = forward(&layer, x.view());
    assert_eq!(y, array![[[5.0]]]);
}

/// VGG's 2×2 average pooling (stride 2, no padding) has a row-pair path of its own: it must give the
/// general loop's bits (the four summed in order from 0, divided by 4), drop the odd last row and
/// column (forward) and give them 0 (backward), on contiguous planes, on views whose rows are
/// contiguous but not adjacent, and on views with strided columns (the general loop).
#[test]
fn avg_pool_2x2_row_pairs_match_the_definition_to_the_bit() {
    let layer = AvgPool2d::new("pool", [2, 2], [2, 2], Padding::ZERO).unwrap();
    let big = arr3(5, (3, 9, 23), -1.0, 1.0);
    let views = [
        big.slice(ndarray::s![.., .., ..11]), // rows contiguous, row stride 23
        big.slice(ndarray::s![.., .., ..;2]), // columns strided: the general loop
        big.slice(ndarray::s![.., ..7, ..]),  // a band of rows
    ];
    let whole = arr3(6, (2, 7, 9), -1.0, 1.0);
    for x in views.into_iter().chain([whole.view()]) {
        let (c, h, w) = x.dim();
        let (y, saved) = forward(&layer, x);
        let want = Array3::from_shape_fn((c, h / 2, w / 2), |(ch, oy, ox)| {
            let at = |r: usize, col: usize| x[[ch, 2 * oy + r, 2 * ox + col]];
            (0.0 + at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1)) / 4.0
        });
        assert_eq!(y, want, "forward of a {:?} view", x.strides());
        let dy = arr3(7, y.dim(), -1.0, 1.0);
        let gi = backward(&layer, &saved, Shape::new(c, h, w), dy.view());
        let want = Array3::from_shape_fn((c, h, w), |(ch, r, col)| {
            if r < 2 * (h / 2) && col < 2 * (w / 2) {
                dy[[ch, r / 2, col / 2]] / 4.0
            } else {
                0.0
            }
        });
        assert_eq!(gi, want, "backward of a {:?} view", x.strides());
    }
}

#[test]
fn avg_pool_with_padding_divides_by_the_clipped_window() {
    // 3×3 window, stride 2, padding 1 on a 3×3 input: the corner window covers 2×2 input pixels.
    let layer = AvgPool2d::new("pool", [3, 3], [2, 2], Padding::uniform(1)).unwrap();
    let x = array![[[1.0_f32, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]];
    let (y, _) = forward(&layer, x.view());
    assert_eq!(y, array![[[3.0, 4.0], [6.0, 7.0]]]); // (1+2+4+5)/4, (2+3+5+6)/4, …
}

#[test]
fn max_pool_with_padding_ignores_the_padding() {
    let layer = MaxPool2d::new("pool", [2, 2], [2, 2], Padding::uniform(1)).unwrap();
    let x = array![[[-1.0_f32, -2.0], [-3.0, -4.0]]];
    let (y, _) = forward(&layer, x.view());
    assert_eq!(y, array![[[-1.0, -2.0], [-3.0, -4.0]]]); // never 0 from the padding
}

const FD_CASES: [Case; 4] = [
    (2, 6, 7, 2, 2, [0, 0, 0, 0]),
    (2, 7, 5, 3, 2, [1, 1, 1, 1]),
    (1, 8, 8, 3, 1, [1, 0, 0, 2]),
    (3, 5, 5, 2, 1, [0, 1, 1, 0]),
];

#[test]
fn fd_max_pool() {
    for (i, &(c, h, w, k, s, p)) in FD_CASES.iter().enumerate() {
        let layer = MaxPool2d::new("pool", [k, k], [s, s], pad(p)).unwrap();
        check_layer_fd(&layer, &distinct(50 + i as u64, (c, h, w)), 60 + i as u64);
    }
}

#[test]
fn fd_avg_pool() {
    for (i, &(c, h, w, k, s, p)) in FD_CASES.iter().enumerate() {
        let layer = AvgPool2d::new("pool", [k, k], [s, s], pad(p)).unwrap();
        check_layer_fd(&layer, &distinct(70 + i as u64, (c, h, w)), 80 + i as u64);
    }
}

/// Windows of more than 256 elements keep their argmax positions in 32 bits (`Saved::indices`).
#[test]
fn large_windows_route_to_the_argmax_too() {
    let (k, s, p) = ([17, 16], [3, 2], [2, 1, 0, 3]);
    let layer = MaxPool2d::new("pool", k, s, pad(p)).unwrap();
    let x = distinct(5, (2, 21, 19));
    let (y, saved) = forward(&layer, x.view());
    assert!(saved.offsets.is_empty() && saved.indices.len() == y.len());
    assert_eq!(y, test_utils::reference::max_pool(x.view(), k, s, p));
    let dy = arr3(6, y.dim(), -1.0, 1.0);
    let gi = backward(&layer, &saved, Shape::new(2, 21, 19), dy.view());
    let mut want = Array3::<f32>::zeros((2, 21, 19));
    for ((ch, oy, ox), &m) in y.indexed_iter() {
        let (iy, ix) = x
            .index_axis(ndarray::Axis(0), ch)
            .indexed_iter()
            .find(|&(_, &v)| v == m)
            .map(|(i, _)| i)
            .unwrap();
        want[[ch, iy, ix]] += dy[[ch, oy, ox]];
    }
    for (a, b) in gi.iter().zip(&want) {
        assert!((a - b).abs() <= 1e-6, "{a} vs {b}");
    }
}
