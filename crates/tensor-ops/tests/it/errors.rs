//! Error paths: bad shapes and configurations give specific `Err` variants naming the layer and the shapes.

use ndarray::{Array1, Array3, Array4, s};
use tensor_ops::{
    AvgPool2d, Backend, Conv2d, Error, Layer, MaxPool2d, Network, Padding, Relu, Saved, Shape,
};

fn conv(name: &str) -> Conv2d {
    Conv2d::new(
        name,
        Array4::zeros((4, 3, 3, 3)),
        Array1::zeros(4),
        [1, 1],
        Padding::uniform(1),
    )
    .unwrap()
}

#[test]
fn conv_rejects_a_wrong_channel_count() {
    let err = conv("conv1_1")
        .output_shape(Shape::new(2, 8, 8))
        .unwrap_err();
    assert_eq!(
        err,
        Error::ChannelMismatch {
            layer: "conv1_1".into(),
            input: Shape::new(2, 8, 8),
            weight: [4, 3, 3, 3]
        }
    );
    assert_eq!(
        err.to_string(),
        "layer `conv1_1`: input [2, 8, 8] does not match weight [4, 3, 3, 3]: expected 3 input channels"
    );
}

#[test]
fn conv_rejects_an_input_smaller_than_its_kernel() {
    let layer = Conv2d::new(
        "c",
        Array4::zeros((1, 1, 5, 5)),
        Array1::zeros(1),
        [1, 1],
        Padding::ZERO,
    )
    .unwrap();
    let err = layer.output_shape(Shape::new(1, 4, 9)).unwrap_err();
    assert_eq!(
        err,
        Error::InputTooSmall {
            layer: "c".into(),
            input: Shape::new(1, 4, 9),
            window: [5, 5],
            padding: Padding::ZERO
        }
    );
}

#[test]
fn conv_rejects_bad_configurations() {
    let bias = Conv2d::new(
        "c",
        Array4::zeros((4, 3, 3, 3)),
        Array1::zeros(3),
        [1, 1],
        Padding::ZERO,
    )
    .unwrap_err();
    assert!(
        matches!(bias, Error::InvalidConfig { ref layer, .. } if layer == "c"),
        "{bias}"
    );
    let stride = Conv2d::new(
        "c",
        Array4::zeros((4, 3, 3, 3)),
        Array1::zeros(4),
        [0, 1],
        Padding::ZERO,
    )
    .unwrap_err();
    assert!(matches!(stride, Error::InvalidConfig { .. }), "{stride}");
    let empty = Conv2d::new(
        "c",
        Array4::zeros((4, 0, 3, 3)),
        Array1::zeros(4),
        [1, 1],
        Padding::ZERO,
    )
    .unwrap_err();
    assert!(matches!(empty, Error::InvalidConfig { .. }), "{empty}");
}

#[test]
fn layers_reject_wrong_output_and_gradient_shapes() {
    let layer = conv("conv1");
    let x = Array3::<f32>::zeros((3, 5, 5));
    let mut out = Array3::<f32>::zeros((4, 5, 4));
    let err = layer.forward(x.view(), out.view_mut(), None).unwrap_err();
    assert_eq!(
        err,
        Error::ShapeMismatch {
            layer: "conv1".into(),
            what: "output".into(),
            expected: Shape::new(4, 5, 5),
            actual: Shape::new(4, 5, 4)
        }
    );

    let mut saved = Saved::default();
    let mut y = Array3::<f32>::zeros((4, 5, 5));
    layer
        .forward(x.view(), y.view_mut(), Some(&mut saved))
        .unwrap();
    let mut gi = Array3::<f32>::zeros((3, 5, 5));
    let bad = Array3::<f32>::zeros((4, 5, 6));
    let err = layer
        .backward_input(&saved, bad.view(), gi.view_mut())
        .unwrap_err();
    assert_eq!(
        err,
        Error::ShapeMismatch {
            layer: "conv1".into(),
            what: "grad_output".into(),
            expected: Shape::new(4, 5, 5),
            actual: Shape::new(4, 5, 6)
        }
    );

    let relu = Relu::new("relu1");
    let mut out = Array3::<f32>::zeros((3, 5, 4));
    let err = relu.forward(x.view(), out.view_mut(), None).unwrap_err();
    assert_eq!(
        err,
        Error::ShapeMismatch {
            layer: "relu1".into(),
            what: "output".into(),
            expected: Shape::new(3, 5, 5),
            actual: Shape::new(3, 5, 4)
        }
    );
}

#[test]
fn layers_reject_non_contiguous_output_buffers() {
    let relu = Relu::new("relu1");
    let x = Array3::<f32>::zeros((3, 5, 5));
    let mut big = Array3::<f32>::zeros((3, 5, 10));
    let err = relu
        .forward(x.view(), big.slice_mut(s![.., .., ..;2]), None)
        .unwrap_err();
    assert_eq!(
        err,
        Error::NotContiguous {
            layer: "relu1".into(),
            what: "output".into()
        }
    );
}

#[test]
fn pools_reject_padding_not_smaller_than_the_window_and_small_inputs() {
    let err = MaxPool2d::new("pool1", [2, 2], [2, 2], Padding::uniform(2)).unwrap_err();
    assert!(
        matches!(err, Error::InvalidConfig { ref layer, .. } if layer == "pool1"),
        "{err}"
    );
    let err = AvgPool2d::new("pool2", [2, 2], [0, 2], Padding::ZERO).unwrap_err();
    assert!(
        matches!(err, Error::InvalidConfig { ref layer, .. } if layer == "pool2"),
        "{err}"
    );
    let pool = MaxPool2d::new("pool5", [2, 2], [2, 2], Padding::ZERO).unwrap();
    let err = pool.output_shape(Shape::new(512, 1, 1)).unwrap_err();
    assert_eq!(
        err,
        Error::InputTooSmall {
            layer: "pool5".into(),
            input: Shape::new(512, 1, 1),
            window: [2, 2],
            padding: Padding::ZERO
        }
    );
}

fn net() -> Network {
    Network::new(vec![Box::new(conv("conv1")), Box::new(Relu::new("relu1"))])
}

#[test]
fn network_rejects_bad_taps_and_bad_input() {
    let x = Array3::<f32>::zeros((3, 6, 6));
    let mut n = net();
    assert_eq!(
        n.forward(x.view(), &[2]).unwrap_err(),
        Error::TapOutOfRange {
            tap: 2,
            n_layers: 2
        }
    );
    assert_eq!(n.forward(x.view(), &[]).unwrap_err(), Error::NoTaps);
    let err = n
        .forward(Array3::<f32>::zeros((1, 6, 6)).view(), &[1])
        .unwrap_err();
    assert_eq!(
        err,
        Error::ChannelMismatch {
            layer: "conv1".into(),
            input: Shape::new(1, 6, 6),
            weight: [4, 3, 3, 3]
        }
    );
}

#[test]
fn network_backward_needs_a_matching_forward() {
    let x = Array3::<f32>::zeros((3, 6, 6));
    let g = Array3::<f32>::zeros((4, 6, 6));
    let mut n = net();
    assert_eq!(n.backward(&[g.view()]).unwrap_err(), Error::NoForwardPass);
    n.forward_inference(x.view(), &[1]).unwrap();
    assert_eq!(n.backward(&[g.view()]).unwrap_err(), Error::NoForwardPass);
    n.forward(x.view(), &[0, 1]).unwrap();
    assert_eq!(
        n.backward(&[g.view()]).unwrap_err(),
        Error::TapCount {
            expected: 2,
            actual: 1
        }
    );
    let bad = Array3::<f32>::zeros((4, 6, 5));
    let err = n.backward(&[g.view(), bad.view()]).unwrap_err();
    assert_eq!(
        err,
        Error::ShapeMismatch {
            layer: "relu1".into(),
            what: "grad_taps[1]".into(),
            expected: Shape::new(4, 6, 6),
            actual: Shape::new(4, 6, 5)
        }
    );
    // A failed forward leaves nothing to differentiate.
    n.forward(Array3::<f32>::zeros((1, 6, 6)).view(), &[1])
        .unwrap_err();
    assert_eq!(n.backward(&[g.view()]).unwrap_err(), Error::NoForwardPass);
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_backend_without_the_feature_is_not_compiled() {
    assert_eq!(
        Backend::cuda().unwrap_err(),
        Error::NotCompiled { feature: "cuda" }
    );
    assert_eq!(
        Backend::cuda().unwrap_err().to_string(),
        "backend not compiled in: rebuild with `--features cuda`"
    );
}

#[test]
fn cpu_backend_is_always_there() {
    assert_eq!(Backend::Cpu.name(), "cpu");
    assert_eq!(Backend::Cpu.gemm().name(), "cpu");
}
