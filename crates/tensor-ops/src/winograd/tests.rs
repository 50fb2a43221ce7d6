//! The F(2×2) convolution with every GEMM microkernel of this CPU (panel sizes differ between them, so
//! the packed layouts of `U` and `V` and their zero padding are checked for each) against the direct
//! one; `check_every_kernel` also serves F(4×4)'s tests.

use ndarray::{
    Array1, Array2, Array3, ArrayView1, ArrayView2, ArrayView3, ArrayView4, ArrayViewMut3, Axis,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{Direction, conv3x3_with};
use crate::packed_gemm::Kernel;
use crate::{Conv2d, ConvAlgorithm, Layer, Padding, Shape};

/// A test case: `(c_in, c_out, h, w, [top, bottom, left, right])`.
pub(crate) type Case = (usize, usize, usize, usize, [usize; 4]);

/// A Winograd convolution with a given microkernel, with `winograd::conv3x3_with`'s operands.
pub(crate) type ConvWith = fn(
    Kernel,
    Direction,
    ArrayView2<'_, f32>,
    ArrayView1<'_, f32>,
    ArrayView3<'_, f32>,
    Padding,
    ArrayViewMut3<'_, f32>,
    bool,
);

/// Cases both Winograd algorithms are tested on: odd sizes, tile rows that split panels, padding 0–2.
pub(crate) const COMMON_CASES: [Case; 5] = [
    (1, 1, 3, 3, [0, 0, 0, 0]),
    (3, 7, 9, 11, [1, 1, 1, 1]),
    (17, 13, 12, 31, [1, 0, 2, 1]),
    (20, 40, 21, 45, [1, 1, 1, 1]),
    (64, 9, 7, 70, [2, 2, 0, 1]),
];

/// F(2×2)'s own: small images with many channels, whose output channels are split in groups
/// (forward for the first, both directions for the second; uneven last groups).
const GROUPED_CASES: [Case; 2] = [(8, 520, 6, 6, [1, 1, 1, 1]), (300, 264, 4, 5, [1, 1, 0, 2])];

#[test]
fn work_items_are_equal_row_blocks_and_channel_groups_on_small_images() {
    use super::Split;
    // VGG's conv4 at 400×300 (19 × 25 tiles): four blocks of 5, 5, 5 and 4 tile rows, not 6, 6, 6, 1.
    assert_eq!(
        Split::new((19, 25), (512, 512), 8),
        Split {
            rows: 5,
            group: 512
        }
    );
    // conv5_1 (9 × 13 tiles): one block, so two groups of 256 output channels.
    assert_eq!(
        Split::new((9, 13), (512, 512), 8),
        Split {
            rows: 9,
            group: 256
        }
    );
    // conv1_2 at 400×300: many blocks of two tile rows, no groups.
    assert_eq!(
        Split::new((150, 200), (64, 64), 8),
        Split { rows: 2, group: 64 }
    );
    // 6·6 AVX2 panels of 520 channels: 3 groups of 29 panels (174, 174, 172 channels).
    assert_eq!(
        Split::new((3, 3), (8, 520), 6),
        Split {
            rows: 3,
            group: 174
        }
    );
}

/// `n` values drawn uniformly from `[-1, 1)` (unit tests use `rand` directly, so that they also build
/// from the published package, which has no `test-utils`).
fn uniform(seed: u64, n: usize) -> Vec<f32> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// The convolution by im2col (another algorithm of this crate, checked against a direct
/// convolution by the integration tests).
fn im2col(
    x: ArrayView3<'_, f32>,
    w4: ArrayView4<'_, f32>,
    bias: ArrayView1<'_, f32>,
    pad: [usize; 4],
) -> Array3<f32> {
    let conv = Conv2d::new(
        "im2col",
        w4.to_owned(),
        bias.to_owned(),
        [1, 1],
        padding(pad),
    )
    .and_then(|c| c.with_algorithm(ConvAlgorithm::Im2col))
    .unwrap();
    let mut out = Array3::zeros(conv.output_shape(Shape::of(&x)).unwrap().dim());
    conv.forward(x, out.view_mut(), None).unwrap();
    out
}

fn padding([top, bottom, left, right]: [usize; 4]) -> Padding {
    Padding {
        top,
        bottom,
        left,
        right,
    }
}

/// `|got − want| ≤ rel · (Σ|W| + 1)` element-wise, `Σ|W|` the largest L1 norm of a kernel row or column (inputs in [−1, 1]).
#[track_caller]
fn assert_close(got: &Array3<f32>, want: &Array3<f32>, weight_l1: f32, rel: f32, what: &str) {
    let tol = rel * (weight_l1 + 1.0);
    let worst = got
        .iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs())
        .fold(0.0_f32, f32::max);
    assert!(worst <= tol, "{what}: worst |Δ| = {worst:e} > {tol:e}");
}

#[test]
fn every_kernel_matches_the_direct_convolution_both_ways() {
    check_every_kernel(
        conv3x3_with,
        &[&COMMON_CASES[..], &GROUPED_CASES].concat(),
        1e-5,
    );
}

/// `conv` with every microkernel of this CPU against im2col on each case: forward, backward (the
/// input gradient) and backward added into an array's content, to `rel · (Σ|W| + 1)` (see
/// `assert_close`).
#[track_caller]
pub(crate) fn check_every_kernel(conv: ConvWith, cases: &[Case], rel: f32) {
    for kernel in Kernel::available() {
        for (seed, &(c_in, c_out, h, w, pad)) in cases.iter().enumerate() {
            let seed = seed as u64;
            let x = Array3::from_shape_vec((c_in, h, w), uniform(seed, c_in * h * w)).unwrap();
            let w4 = ndarray::Array4::from_shape_vec(
                (c_out, c_in, 3, 3),
                uniform(seed + 100, c_out * c_in * 9),
            )
            .unwrap();
            let bias = Array1::from(uniform(seed + 200, c_out));
            let weight: ArrayView2<'_, f32> =
                w4.view().into_shape_with_order((c_out, c_in * 9)).unwrap();
            // The largest L1 norm of a kernel row (forward) and of a kernel column (backward).
            let abs = w4.mapv(f32::abs);
            let l1_fwd = abs
                .sum_axis(Axis(3))
                .sum_axis(Axis(2))
                .sum_axis(Axis(1))
                .fold(0.0, |m: f32, &v| m.max(v));
            let l1_bwd = abs
                .sum_axis(Axis(3))
                .sum_axis(Axis(2))
                .sum_axis(Axis(0))
                .fold(0.0, |m: f32, &v| m.max(v));
            let what = format!("{kernel:?}, case {seed}");

            let want = im2col(x.view(), w4.view(), bias.view(), pad);
            let mut got = Array3::from_elem(want.dim(), f32::NAN);
            conv(
                kernel,
                Direction::Forward,
                weight,
                bias.view(),
                x.view(),
                padding(pad),
                got.view_mut(),
                false,
            );
            assert_close(&got, &want, l1_fwd, rel, &format!("{what}, forward"));

            // The input gradient: conv(dY, flip(Wᵀ)) with padding 2 − p.
            let dy = Array3::from_shape_vec(want.dim(), uniform(seed + 300, want.len())).unwrap();
            let flipped = Array2::from_shape_fn((c_in, c_out * 9), |(c, r)| {
                let (o, tap) = (r / 9, r % 9);
                w4[[o, c, 2 - tap / 3, 2 - tap % 3]]
            });
            let flipped = flipped.into_shape_with_order((c_in, c_out, 3, 3)).unwrap();
            let back_pad = pad.map(|p| 2 - p);
            let want = im2col(
                dy.view(),
                flipped.view(),
                Array1::zeros(c_in).view(),
                back_pad,
            );
            let mut got = Array3::from_elem((c_in, h, w), f32::NAN);
            conv(
                kernel,
                Direction::Backward,
                weight,
                Array1::zeros(0).view(),
                dy.view(),
                padding(back_pad),
                got.view_mut(),
                false,
            );
            assert_close(&got, &want, l1_bwd, rel, &format!("{what}, backward"));

            // Added into what the output held (the gradient arriving at a tap).
            let base = Array3::from_shape_vec(got.dim(), uniform(seed + 400, got.len())).unwrap();
            let mut sum = base.clone();
            conv(
                kernel,
                Direction::Backward,
                weight,
                Array1::zeros(0).view(),
                dy.view(),
                padding(back_pad),
                sum.view_mut(),
                true,
            );
            assert_close(
                &(sum - &base),
                &want,
                l1_bwd,
                rel,
                &format!("{what}, added"),
            );
        }
    }
}
