//! Convolution: reference agreement (proptest), adjoint identities, finite differences, tiling, determinism.

use ndarray::{Array3, ArrayView3};
use proptest::prelude::*;
use tensor_ops::{Conv2d, ConvAlgorithm, Layer, Padding, Shape};

use crate::{arr1, arr3, arr4, backward, dot, forward};

/// Geometry of a generated case: `(c_in, c_out, h, w, kernel, stride, pad [t, b, l, r])`.
type Case = (usize, usize, usize, usize, usize, usize, [usize; 4]);

fn cases() -> impl Strategy<Value = Case> {
    (
        1..=4_usize,
        1..=4_usize,
        1..=9_usize,
        1..=9_usize,
        prop::sample::select(vec![1_usize, 3, 5]),
        1..=2_usize,
        [0..=1_usize, 0..=1, 0..=1, 0..=1],
    )
        .prop_filter(
            "padded input at least the kernel",
            |&(_, _, h, w, k, _, p)| h + p[0] + p[1] >= k && w + p[2] + p[3] >= k,
        )
}

fn pad(p: [usize; 4]) -> Padding {
    Padding {
        top: p[0],
        bottom: p[1],
        left: p[2],
        right: p[3],
    }
}

fn conv(seed: u64, (c_in, c_out, _, _, k, s, p): Case) -> Conv2d {
    Conv2d::new(
        "conv",
        arr4(seed, (c_out, c_in, k, k), -1.0, 1.0),
        arr1(seed + 1, c_out, -1.0, 1.0),
        [s, s],
        pad(p),
    )
    .unwrap()
}

/// The layer under every algorithm that applies to it.
fn variants(layer: &Conv2d) -> Vec<Conv2d> {
    [
        ConvAlgorithm::Im2col,
        ConvAlgorithm::Winograd,
        ConvAlgorithm::Winograd4,
    ]
    .into_iter()
    .filter_map(|a| layer.clone().with_algorithm(a).ok())
    .collect()
}

/// Checks the fast forward against the direct seven-loop convolution.
#[track_caller]
fn check_forward(layer: &Conv2d, x: &Array3<f32>, weight: &ndarray::Array4<f32>) {
    let (y, _) = forward(layer, x.view());
    let p = layer.padding().to_array();
    let want =
        test_utils::reference::conv2d(x.view(), weight.view(), layer.bias(), layer.stride(), p);
    assert_eq!(y.dim(), want.dim());
    let k = weight.len() / weight.dim().0;
    let tol = 1e-5 * (k as f32).sqrt() * 4.0;
    for (a, b) in y.iter().zip(&want) {
        assert!(
            (a - b).abs() <= tol * (1.0 + b.abs()),
            "conv {:?}: {a} vs reference {b}",
            layer.weight_dims()
        );
    }
}

/// Checks `⟨conv(x), y⟩ = ⟨x, convᵀ(y)⟩` (no bias: the map must be linear).
#[track_caller]
fn check_adjoint(layer: &Conv2d, x: &Array3<f32>, seed: u64) {
    let (out, saved) = forward(layer, x.view());
    let y = arr3(seed, out.dim(), -1.0, 1.0);
    let xt_y = backward(layer, &saved, Shape::of(x), y.view());
    let lhs = dot(&out, &y);
    let rhs = dot(x, &xt_y);
    let scale = out.iter().map(|v| f64::from(v.abs())).sum::<f64>() + 1.0;
    assert!(
        (lhs - rhs).abs() <= 1e-6 * scale,
        "⟨Ax, y⟩ = {lhs}, ⟨x, Aᵀy⟩ = {rhs}"
    );
}

fn without_bias(layer: &Conv2d, weight: ndarray::Array4<f32>) -> Conv2d {
    let c_out = weight.dim().0;
    Conv2d::new(
        "conv",
        weight,
        ndarray::Array1::zeros(c_out),
        layer.stride(),
        layer.padding(),
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn conv_matches_seven_loop_reference(case in cases(), seed in 0..1000_u64) {
        let (c_in, c_out, h, w, k, _, _) = case;
        let weight = arr4(seed, (c_out, c_in, k, k), -1.0, 1.0);
        for layer in variants(&conv(seed, case)) {
            check_forward(&layer, &arr3(seed + 2, (c_in, h, w), -1.0, 1.0), &weight);
        }
    }

    #[test]
    fn conv_input_adjoint(case in cases(), seed in 0..1000_u64) {
        let (c_in, c_out, h, w, k, _, _) = case;
        let layer = without_bias(&conv(seed, case), arr4(seed, (c_out, c_in, k, k), -1.0, 1.0));
        for layer in variants(&layer) {
            check_adjoint(&layer, &arr3(seed + 2, (c_in, h, w), -1.0, 1.0), seed + 3);
        }
    }
}

/// Shapes large enough to split into several row tiles (and, for the wide-K case, byte-limited tiles),
/// where the even/odd scheduling of the backward pass matters.
const TILED: [Case; 5] = [
    (3, 8, 70, 41, 3, 1, [1, 1, 1, 1]),
    (5, 4, 61, 33, 5, 2, [1, 0, 1, 1]),
    (4, 6, 64, 40, 1, 1, [0, 0, 0, 0]),
    (64, 8, 30, 29, 3, 1, [1, 1, 1, 1]),
    (2, 3, 45, 50, 5, 1, [0, 1, 1, 0]),
];

#[test]
fn tiled_conv_matches_reference_and_adjoint() {
    for (i, &case) in TILED.iter().enumerate() {
        let (c_in, c_out, h, w, k, _, _) = case;
        let seed = 100 + i as u64;
        let weight = arr4(seed, (c_out, c_in, k, k), -1.0, 1.0);
        let layer = conv(seed, case);
        let x = arr3(seed + 2, (c_in, h, w), -1.0, 1.0);
        for layer in variants(&layer) {
            check_forward(&layer, &x, &weight);
            let linear = without_bias(&layer, weight.clone())
                .with_algorithm(layer.algorithm())
                .unwrap();
            check_adjoint(&linear, &x, seed + 3);
        }
    }
}

#[test]
fn one_by_one_identity_kernel_copies_the_input() {
    let mut weight = ndarray::Array4::zeros((3, 3, 1, 1));
    for c in 0..3 {
        weight[[c, c, 0, 0]] = 1.0;
    }
    let layer = Conv2d::new(
        "id",
        weight,
        ndarray::Array1::zeros(3),
        [1, 1],
        Padding::ZERO,
    )
    .unwrap();
    let x = arr3(7, (3, 5, 4), -1.0, 1.0);
    let (y, _) = forward(&layer, x.view());
    assert_eq!(y, x);
}

/// `L = Σ R ⊙ conv(x)` with a seeded `R`.
fn project_conv(layer: &Conv2d, x: ArrayView3<'_, f32>, r: &Array3<f32>) -> f64 {
    let (y, _) = forward(layer, x);
    test_utils::project(r.as_slice().unwrap(), y.as_slice().unwrap())
}

const FD_CASES: [Case; 3] = [
    (2, 3, 5, 6, 3, 1, [1, 1, 1, 1]),
    (3, 2, 7, 5, 3, 2, [1, 0, 0, 1]),
    (2, 2, 6, 6, 5, 1, [1, 1, 0, 1]),
];

#[test]
fn fd_conv2d_input() {
    for (i, &case) in FD_CASES.iter().enumerate() {
        let (c_in, _, h, w, _, _, _) = case;
        for layer in variants(&conv(10 + i as u64, case)) {
            crate::check_layer_fd(
                &layer,
                &arr3(20 + i as u64, (c_in, h, w), -1.0, 1.0),
                30 + i as u64,
            );
        }
    }
}

/// `FD_CASES` are too small for F(4×4) (below 64 tiles it hands over to F(2×2)): this one has 81.
#[test]
fn fd_conv2d_input_winograd4_tiles() {
    let case = (2, 3, 34, 33, 3, 1, [1, 1, 1, 1]);
    let layer = conv(13, case)
        .with_algorithm(ConvAlgorithm::Winograd4)
        .unwrap();
    crate::check_layer_fd(&layer, &arr3(23, (2, 34, 33), -1.0, 1.0), 33);
}

/// Which parameter gradient a finite-difference check perturbs.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Param {
    Weight,
    Bias,
}

/// Finite-difference check of `Conv2d::backward_params` with respect to one parameter, over `FD_CASES`.
#[track_caller]
fn check_param_fd(param: Param) {
    for (i, &case) in FD_CASES.iter().enumerate() {
        let (c_in, c_out, h, w, k, s, p) = case;
        let seed = 40 + i as u64;
        let weight = arr4(seed, (c_out, c_in, k, k), -1.0, 1.0);
        let bias = arr1(seed + 1, c_out, -1.0, 1.0);
        let x = arr3(seed + 2, (c_in, h, w), -1.0, 1.0);
        let make = |wt: ndarray::Array4<f32>, b: ndarray::Array1<f32>| {
            Conv2d::new("conv", wt, b, [s, s], pad(p)).unwrap()
        };
        let layer = make(weight.clone(), bias.clone());
        let (y, _) = forward(&layer, x.view());
        let r = arr3(seed + 3, y.dim(), -1.0, 1.0);
        let grads = layer.backward_params(x.view(), r.view()).unwrap();
        let result = match param {
            Param::Weight => {
                let f = |v: &[f32]| {
                    let wt = ndarray::Array4::from_shape_vec(weight.dim(), v.to_vec()).unwrap();
                    project_conv(&make(wt, bias.clone()), x.view(), &r)
                };
                test_utils::check_grad(
                    weight.as_slice().unwrap(),
                    grads.grad_weight.as_slice().unwrap(),
                    f,
                    Default::default(),
                )
            }
            Param::Bias => {
                let f = |v: &[f32]| {
                    project_conv(
                        &make(weight.clone(), ndarray::Array1::from(v.to_vec())),
                        x.view(),
                        &r,
                    )
                };
                test_utils::check_grad(
                    bias.as_slice().unwrap(),
                    grads.grad_bias.as_slice().unwrap(),
                    f,
                    Default::default(),
                )
            }
        };
        result.unwrap_or_else(|e| panic!("{param:?} gradient, case {case:?}: {e}"));
    }
}

#[test]
fn fd_conv2d_weight() {
    check_param_fd(Param::Weight);
}

#[test]
fn fd_conv2d_bias() {
    check_param_fd(Param::Bias);
}

#[test]
fn weight_gradient_over_several_tiles_matches_one_tile_reference() {
    // dW[o, c, i, j] = Σ_{y,x} dY[o, y, x] · X[c, y·s − pt + i, x·s − pl + j]: compare the tiled
    // accumulation with this sum written out directly.
    let (c_in, c_out, h, w, k) = (3, 4, 70, 41, 3);
    let weight = arr4(1, (c_out, c_in, k, k), -1.0, 1.0);
    let layer = Conv2d::new(
        "conv",
        weight,
        arr1(2, c_out, -1.0, 1.0),
        [1, 1],
        Padding::uniform(1),
    )
    .unwrap();
    let x = arr3(3, (c_in, h, w), -1.0, 1.0);
    let dy = arr3(4, (c_out, h, w), -1.0, 1.0);
    let grads = layer.backward_params(x.view(), dy.view()).unwrap();
    let mut want = ndarray::Array4::<f64>::zeros((c_out, c_in, k, k));
    for ((o, c, i, j), v) in want.indexed_iter_mut() {
        for y in 0..h {
            for xx in 0..w {
                let (iy, ix) = ((y + i) as isize - 1, (xx + j) as isize - 1);
                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                    *v += f64::from(dy[[o, y, xx]]) * f64::from(x[[c, iy as usize, ix as usize]]);
                }
            }
        }
    }
    for (a, b) in grads.grad_weight.iter().zip(&want) {
        assert!(
            (f64::from(*a) - b).abs() <= 1e-3 * (1.0 + b.abs()),
            "{a} vs {b}"
        );
    }
    let want_bias: Vec<f64> = dy
        .outer_iter()
        .map(|p| p.iter().map(|&v| f64::from(v)).sum())
        .collect();
    for (a, b) in grads.grad_bias.iter().zip(&want_bias) {
        assert!(
            (f64::from(*a) - b).abs() <= 1e-4 * (1.0 + b.abs()),
            "{a} vs {b}"
        );
    }
}

/// Forward and input-backward of a multi-tile layer in a pool of `threads` threads.
fn run_in_pool(
    threads: usize,
    layer: &Conv2d,
    x: &Array3<f32>,
    dy: &Array3<f32>,
) -> (Array3<f32>, Array3<f32>) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let (y, saved) = forward(layer, x.view());
        let gi = backward(layer, &saved, Shape::of(x), dy.view());
        (y, gi)
    })
}

#[test]
fn results_are_bit_identical_across_runs_and_thread_counts() {
    // The second size gives F(4×4) enough blocks to run them whole on one thread each (the first
    // runs each block's phases in parallel).
    for (h, w) in [(67, 45), (420, 40)] {
        bit_identical_across_thread_counts(h, w);
    }
}

fn bit_identical_across_thread_counts(h: usize, w: usize) {
    let (c_in, c_out) = (16, 8);
    let layer = Conv2d::new(
        "conv",
        arr4(5, (c_out, c_in, 3, 3), -1.0, 1.0),
        arr1(6, c_out, -1.0, 1.0),
        [1, 1],
        Padding::uniform(1),
    )
    .unwrap();
    let x = arr3(7, (c_in, h, w), -1.0, 1.0);
    let dy = arr3(8, (c_out, h, w), -1.0, 1.0);
    let bits = |a: &Array3<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    for layer in variants(&layer) {
        let alg = layer.algorithm();
        let first = run_in_pool(2, &layer, &x, &dy);
        for threads in [2, 1, 3] {
            let again = run_in_pool(threads, &layer, &x, &dy);
            assert_eq!(
                bits(&first.0),
                bits(&again.0),
                "{alg:?} forward, {threads} threads"
            );
            assert_eq!(
                bits(&first.1),
                bits(&again.1),
                "{alg:?} backward, {threads} threads"
            );
        }
    }
}

#[test]
fn gradient_is_independent_of_prior_buffer_content() {
    let layer = conv(3, (2, 3, 9, 8, 3, 2, [1, 1, 1, 1]));
    let x = arr3(4, (2, 9, 8), -1.0, 1.0);
    let (y, saved) = forward(&layer, x.view());
    let dy = arr3(5, y.dim(), -1.0, 1.0);
    let mut a = Array3::from_elem((2, 9, 8), 7.0_f32);
    let mut b = Array3::from_elem((2, 9, 8), -3.0_f32);
    layer
        .backward_input(&saved, dy.view(), a.view_mut())
        .unwrap();
    layer
        .backward_input(&saved, dy.view(), b.view_mut())
        .unwrap();
    assert_eq!(a, b);
}

#[test]
fn algorithm_defaults_and_rejections() {
    let c3 = conv(1, (16, 16, 5, 5, 3, 1, [1, 1, 1, 1]));
    assert_eq!(c3.algorithm(), ConvAlgorithm::Winograd4);
    let few_channels = conv(1, (3, 16, 5, 5, 3, 1, [1, 1, 1, 1]));
    assert_eq!(few_channels.algorithm(), ConvAlgorithm::Im2col);
    assert_eq!(
        few_channels
            .with_algorithm(ConvAlgorithm::Winograd)
            .unwrap()
            .algorithm(),
        ConvAlgorithm::Winograd
    );
    assert_eq!(
        conv(1, (16, 16, 5, 5, 3, 2, [1, 1, 1, 1])).algorithm(),
        ConvAlgorithm::Im2col
    );
    assert_eq!(
        conv(1, (16, 16, 5, 5, 5, 1, [1, 1, 1, 1])).algorithm(),
        ConvAlgorithm::Im2col
    );
    let err = conv(1, (2, 2, 5, 5, 1, 1, [0, 0, 0, 0]))
        .with_algorithm(ConvAlgorithm::Winograd)
        .unwrap_err();
    assert!(
        matches!(err, tensor_ops::Error::InvalidConfig { ref layer, .. } if layer == "conv"),
        "{err}"
    );
    let err = conv(1, (2, 2, 9, 9, 3, 1, [3, 0, 0, 0]))
        .with_algorithm(ConvAlgorithm::Winograd)
        .unwrap_err();
    assert!(
        matches!(err, tensor_ops::Error::InvalidConfig { .. }),
        "{err}"
    );
    assert_eq!(
        c3.with_algorithm(ConvAlgorithm::Im2col)
            .unwrap()
            .algorithm(),
        ConvAlgorithm::Im2col
    );
}

/// Winograd F(2×2, 3×3) against im2col on VGG-like layers (He-scaled weights, O(1) inputs, many
/// channels, odd sizes, several work items). The stated tolerance, element-wise, for the forward
/// pass: `|y_winograd − y_im2col| ≤ 1e-5 · (max_o Σ_{c,i,j} |W[o,c,i,j]| + 1)` (inputs in [−1, 1]);
/// for the input gradient the same with the sum over output channels `o`.
#[test]
fn winograd_agrees_with_im2col_on_vgg_like_layers() {
    winograd_agrees(ConvAlgorithm::Winograd, 1e-5);
}

/// Winograd F(4×4, 3×3) against im2col on the same layers, to `4e-5 · (Σ|W| + 1)`: its transforms
/// have entries up to 8 (`Aᵀ`) and 5 (`Bᵀ`) and weights scaled by 1/24, so its rounding error is
/// several times F(2×2)'s (measured worst on these layers: see `docs/performance.md`).
#[test]
fn winograd4_agrees_with_im2col_on_vgg_like_layers() {
    winograd_agrees(ConvAlgorithm::Winograd4, 1e-5);
}

#[track_caller]
#[allow(
    clippy::print_stderr,
    reason = "the measured error is the figure the docs quote"
)]
fn winograd_agrees(algorithm: ConvAlgorithm, rel: f32) {
    for (i, &(c_in, c_out, h, w)) in [
        (64, 64, 37, 50),
        (128, 32, 19, 25),
        (3, 64, 30, 41),
        (256, 16, 9, 12),
        (16, 16, 420, 40),
    ]
    .iter()
    .enumerate()
    {
        let seed = 500 + 10 * i as u64;
        let bound = (6.0 / (9 * c_in) as f32).sqrt();
        let weight = arr4(seed, (c_out, c_in, 3, 3), -bound, bound);
        let wino = Conv2d::new(
            "conv",
            weight.clone(),
            arr1(seed + 1, c_out, -0.1, 0.1),
            [1, 1],
            Padding::uniform(1),
        )
        .unwrap();
        let wino = wino.with_algorithm(algorithm).unwrap();
        let im2col = wino.clone().with_algorithm(ConvAlgorithm::Im2col).unwrap();
        let x = arr3(seed + 2, (c_in, h, w), -1.0, 1.0);
        let row_l1 = weight
            .outer_iter()
            .map(|wo| wo.iter().map(|v| v.abs()).sum::<f32>())
            .fold(0.0, f32::max);
        let tol = rel * (row_l1 + 1.0);
        let (a, sa) = forward(&wino, x.view());
        let (b, sb) = forward(&im2col, x.view());
        let worst = a
            .iter()
            .zip(&b)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f32::max);
        eprintln!(
            "{algorithm:?} forward {c_in}→{c_out} {h}×{w}: worst {worst:.3e}, {:.3e} of Σ|W| + 1",
            worst / (row_l1 + 1.0)
        );
        assert!(
            worst <= tol,
            "{algorithm:?} forward {c_in}→{c_out} {h}×{w}: worst {worst} > {tol}"
        );
        let dy = arr3(seed + 3, a.dim(), -1.0, 1.0);
        let ga = backward(&wino, &sa, Shape::of(&x), dy.view());
        let gb = backward(&im2col, &sb, Shape::of(&x), dy.view());
        let col_l1 = (0..c_in)
            .map(|c| {
                weight
                    .index_axis(ndarray::Axis(1), c)
                    .iter()
                    .map(|v| v.abs())
                    .sum::<f32>()
            })
            .fold(0.0, f32::max);
        let tol = rel * (col_l1 + 1.0);
        let worst = ga
            .iter()
            .zip(&gb)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f32::max);
        eprintln!(
            "{algorithm:?} backward {c_in}→{c_out} {h}×{w}: worst {worst:.3e}, {:.3e} of Σ|W| + 1",
            worst / (col_l1 + 1.0)
        );
        assert!(
            worst <= tol,
            "{algorithm:?} backward {c_in}→{c_out} {h}×{w}: worst {worst} > {tol}"
        );
    }
}
