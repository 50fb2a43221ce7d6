//! The network walk: taps, summed gradients from several taps, buffer reuse, finite differences.

use ndarray::{Array1, Array3, Array4, ArrayView3};
use tensor_ops::{AvgPool2d, Conv2d, Layer, MaxPool2d, Network, Padding, Relu, Shape};

use crate::{arr1, arr3, arr4, backward, forward};

/// conv1 (1×1, 1→3) → relu1 → pool1 (max 2×2/2) → conv2 (3×3, 3→2, pad 1) → pool2 (avg 3×3/2, pad 1).
///
/// conv1 is 1×1 with weights of magnitude ≥ 0.8 and no bias, so with inputs `−2.125 + 0.25·i` every
/// ReLU input is at least 0.1 = 10h away from the kink and values inside a pooling window stay
/// ≥ 0.2 > 2h apart: no finite-difference step crosses a kink.
fn small_net() -> Network {
    let w1 = Array4::from_shape_vec((3, 1, 1, 1), vec![1.0, -0.8, 1.3]).unwrap();
    let layers: Vec<Box<dyn Layer>> = vec![
        Box::new(Conv2d::new("conv1", w1, Array1::zeros(3), [1, 1], Padding::ZERO).unwrap()),
        Box::new(Relu::new("relu1")),
        Box::new(MaxPool2d::new("pool1", [2, 2], [2, 2], Padding::ZERO).unwrap()),
        Box::new(
            Conv2d::new(
                "conv2",
                arr4(1, (2, 3, 3, 3), -1.0, 1.0),
                arr1(2, 2, -1.0, 1.0),
                [1, 1],
                Padding::uniform(1),
            )
            .unwrap(),
        ),
        Box::new(AvgPool2d::new("pool2", [3, 3], [2, 2], Padding::uniform(1)).unwrap()),
    ];
    Network::new(layers)
}

fn input() -> Array3<f32> {
    Array3::from_shape_vec(
        (1, 9, 7),
        test_utils::shuffled_linspace(3, 63, -2.125, 0.25),
    )
    .unwrap()
}

#[test]
fn fd_network_two_taps() {
    let mut net = small_net();
    let taps = [
        net.index_of("relu1").unwrap(),
        net.index_of("pool2").unwrap(),
    ];
    let x = input();
    let outs = net.forward(x.view(), &taps).unwrap();
    let r: Vec<Array3<f32>> = outs
        .iter()
        .enumerate()
        .map(|(j, o)| arr3(20 + j as u64, o.dim(), -1.0, 1.0))
        .collect();
    let analytic = net.backward(&[r[0].view(), r[1].view()]).unwrap();
    let mut probe = small_net();
    let f = |v: &[f32]| {
        let xv = ArrayView3::from_shape(x.dim(), v).unwrap();
        let outs = probe.forward_inference(xv, &taps).unwrap();
        outs.iter()
            .zip(&r)
            .map(|(o, r)| test_utils::project(r.as_slice().unwrap(), o.as_slice().unwrap()))
            .sum::<f64>()
    };
    test_utils::check_grad(
        x.as_slice().unwrap(),
        analytic.as_slice().unwrap(),
        f,
        test_utils::GradCheck::default(),
    )
    .unwrap();
}

/// The network walk equals chaining the layers by hand, and the gradient from two taps is the sum
/// of the gradients from each tap alone.
#[test]
fn network_matches_layer_by_layer_and_sums_tap_gradients() {
    let mut net = small_net();
    let x = input();
    let taps = [1, 4];
    let outs = net.forward(x.view(), &taps).unwrap();
    let g1 = arr3(5, outs[0].dim(), -1.0, 1.0);
    let g2 = arr3(6, outs[1].dim(), -1.0, 1.0);
    let both = net.backward(&[g1.view(), g2.view()]).unwrap();

    // By hand.
    let mut acts = vec![x.clone()];
    let mut saved = Vec::new();
    for layer in net.layers() {
        let (y, s) = forward(layer.as_ref(), acts.last().unwrap().view());
        acts.push(y);
        saved.push(s);
    }
    assert_eq!(outs[0], acts[2]);
    assert_eq!(outs[1], acts[5]);
    let mut g = g2.clone();
    for i in (0..5).rev() {
        if i == 1 {
            g += &g1;
        }
        g = backward(
            net.layers()[i].as_ref(),
            &saved[i],
            Shape::of(&acts[i]),
            g.view(),
        );
    }
    assert_eq!(both, g);

    // Linearity in the tap gradients.
    net.forward(x.view(), &taps).unwrap();
    let zero1 = Array3::zeros(g1.dim());
    let zero2 = Array3::zeros(g2.dim());
    let only1 = net.backward(&[g1.view(), zero2.view()]).unwrap();
    let only2 = net.backward(&[zero1.view(), g2.view()]).unwrap();
    for ((a, b), c) in both.iter().zip(&only1).zip(&only2) {
        assert!(
            (a - (b + c)).abs() <= 1e-5 * (1.0 + a.abs()),
            "{a} vs {b} + {c}"
        );
    }
}

#[test]
fn taps_in_any_order_and_repeated() {
    let mut net = small_net();
    let x = input();
    let a = net.forward(x.view(), &[4, 1, 4]).unwrap();
    let b = net.forward_inference(x.view(), &[1, 4]).unwrap();
    assert_eq!(a[0], b[1]);
    assert_eq!(a[1], b[0]);
    assert_eq!(a[2], b[1]);
}

#[test]
fn repeated_passes_reuse_outputs_and_give_identical_results() {
    let mut net = small_net();
    let x = input();
    let mut outs = Vec::new();
    net.forward_into(x.view(), &[1, 4], &mut outs).unwrap();
    let ptrs: Vec<*const f32> = outs.iter().map(|o| o.as_ptr()).collect();
    let g: Vec<Array3<f32>> = outs.iter().map(|o| Array3::ones(o.dim())).collect();
    let first = net.backward(&[g[0].view(), g[1].view()]).unwrap();
    let first_outs = outs.clone();
    net.forward_into(x.view(), &[1, 4], &mut outs).unwrap();
    assert_eq!(
        ptrs,
        outs.iter().map(|o| o.as_ptr()).collect::<Vec<_>>(),
        "tap arrays were reallocated"
    );
    assert_eq!(outs, first_outs);
    assert_eq!(net.backward(&[g[0].view(), g[1].view()]).unwrap(), first);
}

#[test]
fn input_size_can_change_between_passes() {
    let mut net = small_net();
    let big = arr3(1, (1, 20, 17), -1.0, 1.0);
    let small = arr3(2, (1, 6, 6), -1.0, 1.0);
    let out_big = net.forward(big.view(), &[4]).unwrap();
    let out_small = net.forward(small.view(), &[4]).unwrap();
    let mut fresh = small_net();
    assert_eq!(out_small, fresh.forward(small.view(), &[4]).unwrap());
    assert_eq!(out_big[0].dim(), (2, 5, 4));
    let g = net
        .backward(&[Array3::ones(out_small[0].dim()).view()])
        .unwrap();
    assert_eq!(g.dim(), (1, 6, 6));
}

/// Networks run inside rayon jobs (several images at once) give the same results as run one at a
/// time. Whether a thread nests one convolution inside another here depends on work stealing, so
/// this does not reliably reproduce that case; `winograd::conv3x3` handles it with `try_borrow_mut`.
#[test]
fn networks_in_parallel_jobs_agree_with_sequential_runs() {
    use rayon::prelude::*;
    let make = || {
        let layers: Vec<Box<dyn Layer>> = vec![
            Box::new(
                Conv2d::new(
                    "conv1",
                    arr4(1, (16, 16, 3, 3), -0.2, 0.2),
                    arr1(2, 16, -0.1, 0.1),
                    [1, 1],
                    Padding::uniform(1),
                )
                .unwrap(),
            ),
            Box::new(Relu::new("relu1")),
            Box::new(
                Conv2d::new(
                    "conv2",
                    arr4(3, (16, 16, 3, 3), -0.2, 0.2),
                    arr1(4, 16, -0.1, 0.1),
                    [1, 1],
                    Padding::uniform(1),
                )
                .unwrap(),
            ),
        ];
        Network::new(layers)
    };
    let inputs: Vec<Array3<f32>> = (0..6)
        .map(|i| arr3(10 + i, (16, 40, 33), -1.0, 1.0))
        .collect();
    let run = |x: &Array3<f32>| {
        let mut net = make();
        let out = net.forward(x.view(), &[2]).unwrap();
        let g = net.backward(&[out[0].view()]).unwrap();
        (out, g)
    };
    let sequential: Vec<_> = inputs.iter().map(run).collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let parallel: Vec<_> = pool.install(|| inputs.par_iter().map(run).collect());
    assert_eq!(sequential, parallel);
}

/// A VGG-like chain with every case of the in-place walk: Winograd and im2col convolutions, ReLUs
/// run in place (tapped and not), a tapped convolution followed by a ReLU (which must then not run in
/// place), a layer tapped twice, a pooling and a convolution directly above taps (their gradients are
/// added into the tap's array), max and average pooling.
fn vgg_like() -> Network {
    let conv = |name: &str, seed: u64, c_in: usize, c_out: usize| -> Box<dyn Layer> {
        Box::new(
            Conv2d::new(
                name,
                arr4(seed, (c_out, c_in, 3, 3), -0.15, 0.15),
                arr1(seed + 100, c_out, -0.1, 0.1),
                [1, 1],
                Padding::uniform(1),
            )
            .unwrap(),
        )
    };
    let layers: Vec<Box<dyn Layer>> = vec![
        conv("conv1_1", 1, 3, 16),      // 0: im2col (3 input channels)
        Box::new(Relu::new("relu1_1")), // 1: tap
        conv("conv1_2", 2, 16, 16),     // 2: Winograd, gradient added into tap relu1_1
        Box::new(Relu::new("relu1_2")), // 3
        Box::new(MaxPool2d::new("pool1", [2, 2], [2, 2], Padding::ZERO).unwrap()), // 4: tap
        conv("conv2_1", 3, 16, 24),     // 5: tap (a convolution); above a tapped pool
        Box::new(Relu::new("relu2_1")), // 6: tap, twice
        conv("conv2_2", 4, 24, 24),     // 7
        Box::new(Relu::new("relu2_2")), // 8
        Box::new(AvgPool2d::new("pool2", [2, 2], [2, 2], Padding::ZERO).unwrap()), // 9
        conv("conv3_1", 5, 24, 16),     // 10
        Box::new(Relu::new("relu3_1")), // 11: tap (deepest)
    ];
    Network::new(layers)
}

const VGG_TAPS: [usize; 6] = [1, 6, 4, 5, 11, 6];

/// `backward_in_place` gives `backward`'s input gradient (to float rounding: a gradient added into a
/// tap's array is summed in another order), needs no extra arrays, leaves the outputs of a repeated
/// forward pass unchanged, and survives a caller's use of the workspace between the passes.
#[test]
fn backward_in_place_matches_backward() {
    let mut net = vgg_like();
    let x = arr3(7, (3, 22, 19), -1.0, 1.0);
    let outs = net.forward(x.view(), &VGG_TAPS).unwrap();
    let grads: Vec<Array3<f32>> = outs
        .iter()
        .enumerate()
        .map(|(j, o)| arr3(30 + j as u64, o.dim(), -1.0, 1.0))
        .collect();
    let views: Vec<ArrayView3<'_, f32>> = grads.iter().map(|g| g.view()).collect();
    let expected = net.backward(&views).unwrap();

    let mut fresh = vgg_like();
    let mut taps = Vec::new();
    for _ in 0..2 {
        fresh.forward_into(x.view(), &VGG_TAPS, &mut taps).unwrap();
        assert_eq!(taps, outs, "in-place forward outputs");
        fresh.workspace(5000).fill(f32::NAN);
        for (t, g) in taps.iter_mut().zip(&grads) {
            t.assign(g);
        }
        let mut got = Array3::from_elem(x.dim(), f32::NAN);
        fresh.backward_in_place(&mut taps, got.view_mut()).unwrap();
        let scale = expected.iter().fold(0.0_f32, |m, v| m.max(v.abs()));
        for (a, b) in got.iter().zip(&expected) {
            assert!((a - b).abs() <= 1e-5 * scale, "{a} vs {b} (scale {scale})");
        }
    }
}

/// `forward_visit` hands over the same outputs as `forward`, in the walk's order.
#[test]
fn forward_visit_matches_forward() {
    let mut net = vgg_like();
    let x = arr3(8, (3, 17, 24), -1.0, 1.0);
    let outs = net.forward(x.view(), &VGG_TAPS).unwrap();
    let mut seen = Vec::new();
    let mut visiting = vgg_like();
    visiting
        .forward_visit(x.view(), &VGG_TAPS, |j, out| {
            assert_eq!(out, outs[j], "tap {j}");
            seen.push(j);
            Ok::<(), tensor_ops::Error>(())
        })
        .unwrap();
    assert_eq!(seen, vec![0, 2, 3, 1, 5, 4]);
    let err = visiting.backward(&[]).unwrap_err();
    assert!(matches!(err, tensor_ops::Error::NoForwardPass), "{err}");
    let stop = visiting.forward_visit(x.view(), &VGG_TAPS, |j, _| {
        if j == 3 {
            Err(tensor_ops::Error::NoTaps)
        } else {
            Ok::<(), tensor_ops::Error>(())
        }
    });
    assert!(matches!(stop, Err(tensor_ops::Error::NoTaps)));
}

/// Gradient arrays and an input gradient that do not fit are refused by name.
#[test]
fn backward_in_place_checks_its_arrays() {
    let mut net = vgg_like();
    let x = arr3(9, (3, 12, 12), -1.0, 1.0);
    let mut taps = Vec::new();
    net.forward_into(x.view(), &[1, 11], &mut taps).unwrap();
    let mut wrong = Array3::zeros((3, 12, 11));
    let err = net
        .backward_in_place(&mut taps, wrong.view_mut())
        .unwrap_err();
    assert!(err.to_string().contains("grad_input"), "{err}");
    let mut transposed = vec![
        taps[0]
            .clone()
            .reversed_axes()
            .as_standard_layout()
            .to_owned(),
    ];
    transposed[0] = transposed[0].clone().reversed_axes();
    transposed.push(taps[1].clone());
    let mut grad = Array3::zeros(x.dim());
    let err = net
        .backward_in_place(&mut transposed, grad.view_mut())
        .unwrap_err();
    assert!(err.to_string().contains("grad_taps[0]"), "{err}");
    let err = net
        .backward_in_place(&mut taps[..1], grad.view_mut())
        .unwrap_err();
    assert!(matches!(err, tensor_ops::Error::TapCount { .. }), "{err}");
}

/// A walk over bands of rows hands over every row of every tap once, in order, equal to the whole
/// pass to float rounding, for band heights from one row to the whole input and heights that the
/// poolings do not divide.
#[test]
fn forward_visit_rows_covers_every_row_once() {
    for (height, width) in [(37, 19), (45, 8), (16, 9)] {
        let x = arr3(10 + height as u64, (3, height, width), -1.0, 1.0);
        let mut net = vgg_like();
        let whole = net.forward_inference(x.view(), &VGG_TAPS).unwrap();
        for band_rows in [1, 3, 8, 17, height - 1, height, 1000] {
            let mut next = vec![0; VGG_TAPS.len()];
            net.forward_visit_rows(x.view(), &VGG_TAPS, band_rows, |j, first, rows| {
                assert_eq!(first, next[j], "tap {j}, bands of {band_rows} rows");
                let want = whole[j].slice(ndarray::s![.., first..first + rows.dim().1, ..]);
                let scale = whole[j].iter().fold(1.0_f32, |m, v| m.max(v.abs()));
                for (a, b) in rows.iter().zip(want.iter()) {
                    assert!(
                        (a - b).abs() <= 1e-5 * scale,
                        "tap {j} row {first}: {a} vs {b}"
                    );
                }
                next[j] += rows.dim().1;
                Ok::<(), tensor_ops::Error>(())
            })
            .unwrap();
            let heights: Vec<usize> = whole.iter().map(|w| w.dim().1).collect();
            assert_eq!(next, heights, "{height}x{width}, bands of {band_rows} rows");
        }
    }
}

/// The same with a padded 3×3 average pooling of stride 2 and a strided, padded convolution: windows
/// that overlap and reach into the padding.
#[test]
fn forward_visit_rows_with_padded_and_strided_windows() {
    let layers: Vec<Box<dyn Layer>> = vec![
        Box::new(
            Conv2d::new(
                "conv0",
                arr4(40, (2, 1, 3, 3), -1.0, 1.0),
                arr1(41, 2, -0.1, 0.1),
                [2, 1],
                Padding::uniform(1),
            )
            .unwrap(),
        ),
        Box::new(Relu::new("relu0")),
        Box::new(AvgPool2d::new("pool0", [3, 3], [2, 2], Padding::uniform(1)).unwrap()),
        Box::new(
            Conv2d::new(
                "conv1",
                arr4(42, (3, 2, 3, 3), -1.0, 1.0),
                arr1(43, 3, -0.1, 0.1),
                [1, 1],
                Padding::uniform(1),
            )
            .unwrap(),
        ),
    ];
    let mut net = Network::new(layers);
    let taps = [1, 3, 2];
    for height in [29, 40, 41] {
        let x = arr3(44, (1, height, 7), -1.0, 1.0);
        let whole = net.forward_inference(x.view(), &taps).unwrap();
        for band_rows in [1, 4, 5, 9, 13] {
            assert_bands_match(&mut net, x.view(), &taps, band_rows, &whole);
        }
    }
}

/// A band near the bottom that only the shallow tap wants rows from stops at that tap: the deeper
/// layer without padding would not fit in the band (found by review). A convolution padded as tall
/// as its kernel walks whole.
#[test]
fn forward_visit_rows_with_unpadded_layers_and_tall_padding() {
    let conv = |name: &str, seed: u64, c_in: usize, pad: usize, k: usize| -> Box<dyn Layer> {
        Box::new(
            Conv2d::new(
                name,
                arr4(seed, (2, c_in, k, k), -1.0, 1.0),
                arr1(seed + 1, 2, -0.1, 0.1),
                [1, 1],
                Padding::uniform(pad),
            )
            .unwrap(),
        )
    };
    for (layers, taps) in [
        (
            vec![
                conv("conv1", 50, 1, 1, 3),
                Box::new(Relu::new("relu1")) as Box<dyn Layer>,
                Box::new(MaxPool2d::new("pool1", [2, 2], [2, 2], Padding::ZERO).unwrap()),
                conv("conv2", 52, 2, 0, 3),
            ],
            vec![1, 3],
        ),
        (
            vec![conv("conv1", 54, 1, 1, 1), conv("conv2", 56, 2, 1, 3)],
            vec![0, 1],
        ),
    ] {
        let mut net = Network::new(layers);
        let x = arr3(58, (1, 41, 6), -1.0, 1.0);
        let whole = net.forward_inference(x.view(), &taps).unwrap();
        assert_bands_match(&mut net, x.view(), &taps, 8, &whole);
    }
}

/// A walk over bands of `band_rows` rows hands over every row of every tap once, in order, each
/// within 1e-5 of the whole pass `whole`.
fn assert_bands_match(
    net: &mut Network,
    x: ArrayView3<'_, f32>,
    taps: &[usize],
    band_rows: usize,
    whole: &[Array3<f32>],
) {
    let mut next = vec![0; taps.len()];
    net.forward_visit_rows(x, taps, band_rows, |j, first, rows| {
        assert_eq!(first, next[j]);
        let want = whole[j].slice(ndarray::s![.., first..first + rows.dim().1, ..]);
        for (a, b) in rows.iter().zip(want.iter()) {
            assert!((a - b).abs() <= 1e-5, "tap {j} row {first}: {a} vs {b}");
        }
        next[j] += rows.dim().1;
        Ok::<(), tensor_ops::Error>(())
    })
    .unwrap();
    assert_eq!(next, whole.iter().map(|w| w.dim().1).collect::<Vec<_>>());
}
