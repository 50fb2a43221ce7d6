//! `conv2d_forward/cpu/<layer>` and `conv2d_backward_input/cpu/<layer>` on VGG-19 layers at 256² (elements = FLOPs).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group};
use ndarray::{Array1, Array3, Array4};
use tensor_ops::{Conv2d, Layer, Padding, Saved, Shape};

/// (name, c_in, c_out, input side): conv1_1 at 256², conv3_1 at 64², conv5_1 at 16², and a tiny case.
const LAYERS: [(&str, usize, usize, usize); 4] = [
    ("tiny_4to4_9", 4, 4, 9),
    ("conv1_1_256", 3, 64, 256),
    ("conv3_1_64", 128, 256, 64),
    ("conv5_1_16", 512, 512, 16),
];

fn conv2d(c: &mut Criterion) {
    for (direction, backward) in [("conv2d_forward", false), ("conv2d_backward_input", true)] {
        let mut group = c.benchmark_group(direction);
        group.sample_size(10);
        for (name, c_in, c_out, side) in LAYERS {
            let k = c_in * 9;
            let w = Array4::from_shape_vec(
                (c_out, c_in, 3, 3),
                crate::uniform_vec(1, c_out * k, -0.1, 0.1),
            )
            .expect("sized");
            let layer = Conv2d::new(name, w, Array1::zeros(c_out), [1, 1], Padding::uniform(1))
                .expect("valid layer");
            let x = Array3::from_shape_vec(
                (c_in, side, side),
                crate::uniform_vec(2, c_in * side * side, -1.0, 1.0),
            )
            .expect("sized");
            let out_shape = layer.output_shape(Shape::of(&x)).expect("fits");
            let mut y = Array3::zeros(out_shape.dim());
            let mut saved = Saved::default();
            layer
                .forward(x.view(), y.view_mut(), Some(&mut saved))
                .expect("forward");
            let mut dx = Array3::zeros(x.dim());
            group.throughput(Throughput::Elements(
                (2 * c_out * k * out_shape.plane()) as u64,
            ));
            group.bench_function(format!("cpu/{name}"), |bench| {
                if backward {
                    bench.iter(|| {
                        layer
                            .backward_input(&saved, black_box(y.view()), dx.view_mut())
                            .expect("backward")
                    });
                } else {
                    bench.iter(|| {
                        layer
                            .forward(black_box(x.view()), y.view_mut(), None)
                            .expect("forward")
                    });
                }
            });
        }
        group.finish();
    }
}

criterion_group!(benches, conv2d);
