//! ReLU: forward values, mask-based backward, finite differences.

use ndarray::Array3;
use tensor_ops::{Layer, Relu, Saved, Shape};

use crate::{arr3, backward, check_layer_fd, forward};

#[test]
fn relu_forward_and_backward_match_the_definition() {
    // 3·7·11 = 231 elements: not a multiple of 64, so the last mask word is partial.
    let x = arr3(1, (3, 7, 11), -1.0, 1.0);
    let layer = Relu::new("relu");
    let (y, saved) = forward(&layer, x.view());
    assert_eq!(y, x.mapv(|v| v.max(0.0)));
    let dy = arr3(2, (3, 7, 11), -1.0, 1.0);
    let gi = backward(&layer, &saved, Shape::new(3, 7, 11), dy.view());
    let want = Array3::from_shape_fn((3, 7, 11), |i| if x[i] > 0.0 { dy[i] } else { 0.0 });
    assert_eq!(gi, want);
}

#[test]
fn relu_over_several_parallel_chunks() {
    let x = arr3(3, (5, 150, 200), -1.0, 1.0);
    let layer = Relu::new("relu");
    let (y, saved) = forward(&layer, x.view());
    assert_eq!(y, x.mapv(|v| v.max(0.0)));
    let dy = arr3(4, (5, 150, 200), -1.0, 1.0);
    let gi = backward(&layer, &saved, Shape::new(5, 150, 200), dy.view());
    assert_eq!(
        gi,
        Array3::from_shape_fn((5, 150, 200), |i| if x[i] > 0.0 { dy[i] } else { 0.0 })
    );
}

#[test]
fn fd_relu() {
    // Values −2.125 + 0.25·i: |x| ≥ 0.125 > 10h, so no step crosses the kink.
    let x = Array3::from_shape_vec(
        (2, 4, 5),
        test_utils::shuffled_linspace(9, 40, -2.125, 0.25),
    )
    .unwrap();
    check_layer_fd(&Relu::new("relu"), &x, 10);
}

/// In place, the forward pass, its mask and the backward pass are those of the out-of-place calls,
/// to the bit (also across the 64-element mask words and the parallel chunks).
#[test]
fn in_place_equals_out_of_place() {
    let relu = Relu::new("r");
    assert!(relu.runs_in_place());
    let mut x = arr3(3, (3, 210, 170), -1.0, 1.0);
    x[[0, 0, 0]] = 0.0;
    let (y, saved) = forward(&relu, x.view());
    let mut data = x.clone();
    let mut saved_in_place = Saved::default();
    relu.forward_in_place(data.view_mut(), Some(&mut saved_in_place))
        .unwrap();
    assert_eq!(data, y);
    assert_eq!(saved_in_place.mask, saved.mask);
    let g = arr3(4, x.dim(), -1.0, 1.0);
    let dx = backward(&relu, &saved, Shape::of(&x), g.view());
    let mut grad = g.clone();
    relu.backward_input_in_place(&saved_in_place, grad.view_mut())
        .unwrap();
    assert_eq!(grad, dx);
    let mut plain = x.clone();
    relu.forward_in_place(plain.view_mut(), None).unwrap();
    assert_eq!(plain, y);
}
