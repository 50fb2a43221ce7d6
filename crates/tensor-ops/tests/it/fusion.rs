//! A layer and the ReLU above it, and a 2×2 average pooling above that, run as one
//! (`Layer::forward_fused`, `Layer::backward_input_fused`): the same values as the separate layers,
//! bit for bit, on the fused F(4×4) path and on the generic one.

use std::sync::atomic::{AtomicUsize, Ordering};

use ndarray::{Array3, ArrayView3, ArrayViewMut3};
use tensor_ops::{AvgPool2d, Conv2d, Epilogue, Layer, Network, Padding, Relu, Saved, Shape};

use crate::{arr1, arr3, arr4, backward, forward};

fn conv(name: &str, seed: u64, (c_in, c_out): (usize, usize), pad: Padding) -> Conv2d {
    Conv2d::new(
        name,
        arr4(seed, (c_out, c_in, 3, 3), -0.15, 0.15),
        arr1(seed + 100, c_out, -0.1, 0.1),
        [1, 1],
        pad,
    )
    .unwrap()
}

fn pool(name: &str) -> AvgPool2d {
    AvgPool2d::new(name, [2, 2], [2, 2], Padding::ZERO).unwrap()
}

/// `(c_in, c_out, h, w, padding, fused)`, `fused` whether the layer fuses a ReLU and a ReLU with
/// pooling: F(4×4) tiles both ways (one phased block; several blocks run whole; widths across mask
/// words, 70 = 2·32 + 6; odd output sizes, whose last row or column a pooling drops; padding 0 to
/// 2, where the output and the input gradient differ in size), im2col (3 input channels; a ReLU
/// only) and an F(2×2)-sized layer (the generic path).
type Case = (usize, usize, usize, usize, [usize; 4], (bool, bool));
const CASES: [Case; 8] = [
    (16, 24, 40, 37, [1, 1, 1, 1], (true, true)),
    (16, 16, 430, 37, [1, 1, 1, 1], (true, true)),
    (17, 19, 33, 70, [1, 1, 1, 1], (true, true)),
    (16, 16, 40, 41, [0, 2, 1, 2], (true, true)),
    (16, 16, 40, 37, [2, 2, 2, 2], (true, true)),
    (16, 16, 20, 19, [1, 1, 1, 1], (false, false)),
    (3, 16, 40, 37, [1, 1, 1, 1], (true, false)),
    (3, 16, 23, 1100, [0, 1, 2, 0], (true, false)),
];

fn padding([top, bottom, left, right]: [usize; 4]) -> Padding {
    Padding {
        top,
        bottom,
        left,
        right,
    }
}

/// `forward_fused` is `max(forward, 0)` (pooled) with the mask by rows; `backward_input_fused` is
/// the input gradient of `mask ⊙ dY` (`dY` spread over the pooling windows), replacing or added into
/// `grad_input`.
#[test]
fn a_layer_with_its_epilogue_matches_the_separate_layers() {
    for (k, &case) in CASES.iter().enumerate() {
        check_epilogue(k, case, Epilogue::Relu);
        check_epilogue(k, case, Epilogue::ReluAvgPool2);
    }
}

/// The separate layers' output, and their gradient with respect to the layer's output `pre`, for
/// the gradient `dy` of the epilogue's output.
fn separate(pre: &Array3<f32>, dy: &Array3<f32>, epilogue: Epilogue) -> (Array3<f32>, Array3<f32>) {
    let relu = pre.mapv(|v| v.max(0.0));
    let (out, grad) = match epilogue {
        Epilogue::ReluAvgPool2 => {
            let pool = pool("pool");
            let (pooled, saved) = forward(&pool, relu.view());
            (pooled, backward(&pool, &saved, Shape::of(pre), dy.view()))
        }
        _ => (relu, dy.clone()),
    };
    let masked = ndarray::Zip::from(&grad)
        .and(pre)
        .map_collect(|&g, &v| if v > 0.0 { g } else { 0.0 });
    (out, masked)
}

fn check_epilogue(k: usize, (c_in, c_out, h, w, pad, fused): Case, epilogue: Epilogue) {
    let seed = 10 * k as u64;
    let layer = conv("conv", seed, (c_in, c_out), padding(pad));
    let x = arr3(seed + 1, (c_in, h, w), -1.0, 1.0);
    let shape = Shape::of(&x);
    let what = format!("case {k} ({c_in}→{c_out}, {h}×{w}, pad {pad:?}, {epilogue:?})");
    let fused = match epilogue {
        Epilogue::Relu => fused.0,
        _ => fused.1,
    };
    assert_eq!(layer.fuses(shape, epilogue), fused, "{what}");
    let (pre, _) = forward(&layer, x.view());
    let out_shape = epilogue.output_shape(Shape::of(&pre));
    let dy = arr3(seed + 2, out_shape.dim(), -1.0, 1.0);
    let (want_out, masked_dy) = separate(&pre, &dy, epilogue);

    let mut out = Array3::from_elem(out_shape.dim(), f32::NAN);
    let mut saved = Saved::default();
    layer
        .forward_fused(x.view(), out.view_mut(), Some(&mut saved), epilogue)
        .unwrap();
    assert_eq!(out, want_out, "{what}: forward");
    let (_, rows, cols) = pre.dim();
    let words = cols.div_ceil(32);
    assert_eq!(saved.row_mask.len(), c_out * rows * words);
    // Rows a pooling drops need no mask.
    let kept = match epilogue {
        Epilogue::ReluAvgPool2 => rows / 2 * 2,
        _ => rows,
    };
    for ((c, y, xx), &v) in pre.indexed_iter().filter(|((_, y, _), _)| *y < kept) {
        let bit = saved.row_mask[(c * rows + y) * words + xx / 32] >> (xx % 32) & 1;
        assert_eq!(bit == 1, v > 0.0, "{what}: mask bit ({c}, {y}, {xx})");
    }
    let mut no_keep = Array3::from_elem(out_shape.dim(), f32::NAN);
    layer
        .forward_fused(x.view(), no_keep.view_mut(), None, epilogue)
        .unwrap();
    assert_eq!(no_keep, out, "{what}: forward without a record");

    let want = backward(&layer, &saved, shape, masked_dy.view());
    let mut got = Array3::from_elem(x.dim(), f32::NAN);
    layer
        .backward_input_fused(&saved, dy.view(), got.view_mut(), false, epilogue)
        .unwrap();
    assert_eq!(got, want, "{what}: input gradient");

    let base = arr3(seed + 3, x.dim(), -1.0, 1.0);
    let mut sum = base.clone();
    layer
        .backward_input_fused(&saved, dy.view(), sum.view_mut(), true, epilogue)
        .unwrap();
    let mut want_sum = base.clone();
    layer
        .backward_input_add(&saved, masked_dy.view(), want_sum.view_mut())
        .unwrap();
    assert_eq!(sum, want_sum, "{what}: added gradient");
}

/// A mask of another shape (or none: the forward pass was `forward`) is an error, not a panic.
#[test]
fn the_fused_gradient_wants_the_mask_of_forward_fused() {
    let layer = conv("conv", 1, (16, 16), Padding::uniform(1));
    let x = arr3(2, (16, 40, 37), -1.0, 1.0);
    let (pre, saved) = forward(&layer, x.view());
    let mut grad = Array3::zeros(x.dim());
    let err = layer
        .backward_input_fused(&saved, pre.view(), grad.view_mut(), false, Epilogue::Relu)
        .unwrap_err();
    assert!(err.to_string().contains("conv"), "{err}");
    // A plain forward pass after a fused one drops the fused one's mask.
    let mut saved = Saved::default();
    let mut out = Array3::zeros(pre.dim());
    layer
        .forward_fused(x.view(), out.view_mut(), Some(&mut saved), Epilogue::Relu)
        .unwrap();
    layer
        .forward(x.view(), out.view_mut(), Some(&mut saved))
        .unwrap();
    let err = layer
        .backward_input_fused(&saved, pre.view(), grad.view_mut(), false, Epilogue::Relu)
        .unwrap_err();
    assert!(err.to_string().contains("mask"), "{err}");
}

/// An im2col layer of another kernel size and stride fuses a ReLU the same way.
#[test]
fn a_strided_im2col_layer_with_its_relu_matches_the_two_layers() {
    let layer = Conv2d::new(
        "conv",
        arr4(60, (8, 3, 5, 5), -0.2, 0.2),
        arr1(61, 8, -0.1, 0.1),
        [2, 2],
        Padding::uniform(2),
    )
    .unwrap();
    let x = arr3(62, (3, 45, 71), -1.0, 1.0);
    assert!(layer.fuses(Shape::of(&x), Epilogue::Relu));
    assert!(!layer.fuses(Shape::of(&x), Epilogue::ReluAvgPool2));
    let (pre, _) = forward(&layer, x.view());
    let dy = arr3(63, pre.dim(), -1.0, 1.0);
    let (want_out, masked_dy) = separate(&pre, &dy, Epilogue::Relu);
    let mut out = Array3::zeros(pre.dim());
    let mut saved = Saved::default();
    layer
        .forward_fused(x.view(), out.view_mut(), Some(&mut saved), Epilogue::Relu)
        .unwrap();
    assert_eq!(out, want_out);
    let want = backward(&layer, &saved, Shape::of(&x), masked_dy.view());
    let mut got = Array3::zeros(x.dim());
    layer
        .backward_input_fused(&saved, dy.view(), got.view_mut(), false, Epilogue::Relu)
        .unwrap();
    assert_eq!(got, want);
}

/// A layer that counts the calls of its fused methods and otherwise is the layer it wraps.
#[derive(Debug)]
struct Counted {
    inner: Box<dyn Layer>,
    fused: AtomicUsize,
    relu: bool,
    /// Claims to run in place (its default `forward_in_place` copies), whatever the inner layer says.
    in_place: bool,
}

impl Counted {
    fn new(inner: impl Layer + 'static, relu: bool) -> Box<Counted> {
        Box::new(Counted {
            inner: Box::new(inner),
            fused: AtomicUsize::new(0),
            relu,
            in_place: false,
        })
    }
}

impl Layer for Counted {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn output_shape(&self, input: Shape) -> tensor_ops::Result<Shape> {
        self.inner.output_shape(input)
    }
    fn forward(
        &self,
        input: ArrayView3<'_, f32>,
        output: ArrayViewMut3<'_, f32>,
        saved: Option<&mut Saved>,
    ) -> tensor_ops::Result<()> {
        self.inner.forward(input, output, saved)
    }
    fn backward_input(
        &self,
        saved: &Saved,
        grad_output: ArrayView3<'_, f32>,
        grad_input: ArrayViewMut3<'_, f32>,
    ) -> tensor_ops::Result<()> {
        self.inner.backward_input(saved, grad_output, grad_input)
    }
    fn runs_in_place(&self) -> bool {
        self.in_place || self.inner.runs_in_place()
    }
    fn row_window(&self) -> Option<tensor_ops::RowWindow> {
        self.inner.row_window()
    }
    fn forward_in_place(
        &self,
        data: ArrayViewMut3<'_, f32>,
        saved: Option<&mut Saved>,
    ) -> tensor_ops::Result<()> {
        if self.in_place {
            let input = data.to_owned();
            return self.inner.forward(input.view(), data, saved);
        }
        self.inner.forward_in_place(data, saved)
    }
    fn backward_input_in_place(
        &self,
        saved: &Saved,
        mut grad: ArrayViewMut3<'_, f32>,
    ) -> tensor_ops::Result<()> {
        if self.in_place {
            let grad_output = grad.to_owned();
            return self
                .inner
                .backward_input(saved, grad_output.view(), grad.view_mut());
        }
        self.inner.backward_input_in_place(saved, grad)
    }
    fn backward_input_add(
        &self,
        saved: &Saved,
        grad_output: ArrayView3<'_, f32>,
        grad_input: ArrayViewMut3<'_, f32>,
    ) -> tensor_ops::Result<()> {
        self.inner
            .backward_input_add(saved, grad_output, grad_input)
    }
    /// Only when asked to: the unfused network hides its ReLUs and poolings.
    fn is_relu(&self) -> bool {
        self.relu && self.inner.is_relu()
    }
    fn is_avg_pool_2x2(&self) -> bool {
        self.relu && self.inner.is_avg_pool_2x2()
    }
    fn fuses(&self, input: Shape, epilogue: Epilogue) -> bool {
        self.inner.fuses(input, epilogue)
    }
    fn forward_fused(
        &self,
        input: ArrayView3<'_, f32>,
        output: ArrayViewMut3<'_, f32>,
        saved: Option<&mut Saved>,
        epilogue: Epilogue,
    ) -> tensor_ops::Result<()> {
        self.fused.fetch_add(1, Ordering::Relaxed);
        self.inner.forward_fused(input, output, saved, epilogue)
    }
    fn backward_input_fused(
        &self,
        saved: &Saved,
        grad_output: ArrayView3<'_, f32>,
        grad_input: ArrayViewMut3<'_, f32>,
        accumulate: bool,
        epilogue: Epilogue,
    ) -> tensor_ops::Result<()> {
        self.fused.fetch_add(1, Ordering::Relaxed);
        self.inner
            .backward_input_fused(saved, grad_output, grad_input, accumulate, epilogue)
    }
}

/// conv_a (fused, the first layer) → relu_a (tap) → conv_b (fused, its input gradient added into
/// relu_a's array) → relu_b → conv_c (tapped: not fused) → relu_c → conv_d (fused) → relu_d (tap,
/// deepest). With `fuse` false the ReLUs (and the poolings of [`pooled`]) do not say what they are,
/// so nothing is fused.
fn chain(fuse: bool) -> Network {
    let relu = |name: &str| -> Box<dyn Layer> { Counted::new(Relu::new(name), fuse) };
    let c = |name: &str, seed: u64, ch: (usize, usize)| -> Box<dyn Layer> {
        Counted::new(conv(name, seed, ch, Padding::uniform(1)), false)
    };
    Network::new(vec![
        c("conv_a", 1, (16, 16)),
        relu("relu_a"),
        c("conv_b", 2, (16, 24)),
        relu("relu_b"),
        c("conv_c", 3, (24, 16)),
        relu("relu_c"),
        c("conv_d", 4, (16, 20)),
        relu("relu_d"),
    ])
}

/// conv_a → relu_a → pool_a (fused as one, the first layer) → conv_b → relu_b → pool_b (tap; fused)
/// → conv_c → relu_c (tap) → pool_c (relu_c tapped: conv_c takes relu_c only) → conv_d → relu_d
/// (tap, deepest).
fn pooled(fuse: bool) -> Network {
    let relu = |name: &str| -> Box<dyn Layer> { Counted::new(Relu::new(name), fuse) };
    let avg = |name: &str| -> Box<dyn Layer> { Counted::new(pool(name), fuse) };
    let c = |name: &str, seed: u64, ch: (usize, usize)| -> Box<dyn Layer> {
        Counted::new(conv(name, seed, ch, Padding::uniform(1)), false)
    };
    Network::new(vec![
        c("conv_a", 1, (16, 16)),
        relu("relu_a"),
        avg("pool_a"),
        c("conv_b", 2, (16, 24)),
        relu("relu_b"),
        avg("pool_b"),
        c("conv_c", 3, (24, 16)),
        relu("relu_c"),
        avg("pool_c"),
        c("conv_d", 4, (16, 20)),
        relu("relu_d"),
    ])
}

fn fused_calls(net: &Network) -> Vec<usize> {
    net.layers()
        .iter()
        .map(|l| {
            let c = l
                .as_any()
                .downcast_ref::<Counted>()
                .expect("a counted layer");
            c.fused.load(Ordering::Relaxed)
        })
        .collect()
}

/// Runs `fused` and `plain` (the same layers, nothing fused) through a forward pass, both backward
/// walks and an inference pass on `x`, and checks that every result is the same, bit for bit, and
/// that `fused` ran its fused steps at `heads` (once per pass).
fn check_against_unfused(
    mut fused: Network,
    mut plain: Network,
    x: &Array3<f32>,
    taps: &[usize],
    heads: &[usize],
) {
    let n = fused.len();
    let expect = |passes: usize| -> Vec<usize> {
        (0..n)
            .map(|i| if heads.contains(&i) { passes } else { 0 })
            .collect()
    };
    let mut outs = [Vec::new(), Vec::new()];
    fused.forward_into(x.view(), taps, &mut outs[0]).unwrap();
    plain.forward_into(x.view(), taps, &mut outs[1]).unwrap();
    assert_eq!(outs[0], outs[1], "tapped outputs");
    assert_eq!(fused_calls(&fused), expect(1), "fused forward passes");
    assert_eq!(fused_calls(&plain), vec![0; n]);

    let grads: Vec<Array3<f32>> = outs[0]
        .iter()
        .enumerate()
        .map(|(j, o)| arr3(40 + j as u64, o.dim(), -1.0, 1.0))
        .collect();
    let views: Vec<ArrayView3<'_, f32>> = grads.iter().map(|g| g.view()).collect();
    let want = plain.backward(&views).unwrap();
    let got = fused.backward(&views).unwrap();
    assert_eq!(got, want, "backward");
    assert_eq!(fused_calls(&fused), expect(2));

    let mut in_place = [Array3::zeros(x.dim()), Array3::zeros(x.dim())];
    for (k, net) in [&mut fused, &mut plain].into_iter().enumerate() {
        let taps = &mut outs[k];
        for (t, g) in taps.iter_mut().zip(&grads) {
            t.assign(g);
        }
        net.workspace(1000).fill(f32::NAN);
        net.backward_in_place(taps, in_place[k].view_mut()).unwrap();
    }
    assert_eq!(in_place[0], in_place[1], "backward_in_place");
    assert_eq!(fused_calls(&fused), expect(3));

    // Inference walks fuse too, and keep nothing.
    let inferred = fused.forward_inference(x.view(), taps).unwrap();
    let again = plain.forward_inference(x.view(), taps).unwrap();
    assert_eq!(inferred, again, "forward_inference");
    assert_eq!(fused_calls(&fused), expect(4));
}

/// The network runs each convolution that is not tapped with its ReLU as one, and its outputs and
/// input gradients (both backward walks) are those of the unfused network, bit for bit.
#[test]
fn a_fused_network_matches_the_unfused_one_bit_for_bit() {
    let x = arr3(5, (16, 41, 38), -1.0, 1.0);
    check_against_unfused(chain(true), chain(false), &x, &[1, 4, 7], &[0, 2, 6]);
}

/// The same with poolings: a convolution, its ReLU and the pooling above run as one where the ReLU
/// is not tapped; odd sizes, whose last row or column each pooling drops. At 131×150, conv_d's
/// 16×18 output is too small for F(4×4) tiles and runs alone.
#[test]
fn a_network_with_fused_poolings_matches_the_unfused_one_bit_for_bit() {
    let x = arr3(6, (16, 131, 150), -1.0, 1.0);
    check_against_unfused(pooled(true), pooled(false), &x, &[5, 7, 10], &[0, 3, 6]);
    let x = arr3(7, (16, 263, 271), -1.0, 1.0);
    check_against_unfused(pooled(true), pooled(false), &x, &[5, 7, 10], &[0, 3, 6, 9]);
}

/// A step whose output is far larger than its input: conv_b (16 → 64 channels) with its ReLU and
/// pooling writes the tapped pooling's array, which holds exactly conv_a's output; the plan must
/// not put conv_a's output there (the fused step would read and write one array).
#[test]
fn a_fused_step_never_writes_over_its_own_input() {
    let make = |fuse: bool| {
        Network::new(vec![
            Counted::new(conv("conv_a", 1, (16, 16), Padding::uniform(1)), false),
            Counted::new(conv("conv_b", 2, (16, 64), Padding::uniform(1)), false),
            Counted::new(Relu::new("relu_b"), fuse),
            Counted::new(pool("pool_b"), fuse),
        ])
    };
    let x = arr3(8, (16, 40, 40), -1.0, 1.0);
    check_against_unfused(make(true), make(false), &x, &[3], &[1]);
}

/// A layer that runs in place is never the head of a fused step (it would write its output over
/// what it reads); the walk then runs the layers one by one.
#[test]
fn a_layer_that_runs_in_place_is_not_fused() {
    let make = |fuse: bool| {
        let mut own = Counted::new(conv("conv_b", 2, (16, 16), Padding::uniform(1)), false);
        own.in_place = true;
        Network::new(vec![
            Counted::new(conv("conv_a", 1, (16, 16), Padding::uniform(1)), false),
            own,
            Counted::new(Relu::new("relu_b"), fuse),
        ])
    };
    let x = arr3(9, (16, 40, 36), -1.0, 1.0);
    check_against_unfused(make(true), make(false), &x, &[2], &[]);
}

/// Walks over bands of rows fuse too (each band where it is large enough), with the same tapped rows
/// as the unfused network.
#[test]
fn band_walks_of_a_fused_network_match_the_unfused_ones() {
    let x = arr3(10, (16, 263, 140), -1.0, 1.0);
    let taps = [5, 7, 10];
    let mut bands: [Vec<(usize, usize, Array3<f32>)>; 2] = [Vec::new(), Vec::new()];
    for (k, mut net) in [pooled(true), pooled(false)].into_iter().enumerate() {
        net.forward_visit_rows(x.view(), &taps, 96, |j, first, rows| {
            bands[k].push((j, first, rows.to_owned()));
            Ok::<(), tensor_ops::Error>(())
        })
        .unwrap();
        if k == 0 {
            assert!(
                fused_calls(&net)[0] > 0,
                "the first band fuses conv_a's step"
            );
        }
    }
    assert!(bands[0].len() > taps.len(), "several bands");
    assert_eq!(bands[0], bands[1]);
}
