//! `max_pool/cpu/<shape>` and `avg_pool/cpu/<shape>`: 2×2/2 pooling of conv1_2's output at 256², forward and backward (elements = input activations).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group};
use ndarray::Array3;
use tensor_ops::{AvgPool2d, Layer, MaxPool2d, Padding, Saved};

fn pool(c: &mut Criterion) {
    let dim = (64, 256, 256);
    let x = Array3::from_shape_vec(dim, crate::uniform_vec(1, 64 * 256 * 256, -1.0, 1.0))
        .expect("sized");
    let layers: [(&str, Box<dyn Layer>); 2] = [
        (
            "max_pool",
            Box::new(MaxPool2d::new("pool1", [2, 2], [2, 2], Padding::ZERO).expect("valid")),
        ),
        (
            "avg_pool",
            Box::new(AvgPool2d::new("pool1", [2, 2], [2, 2], Padding::ZERO).expect("valid")),
        ),
    ];
    for (name, layer) in layers {
        let mut group = c.benchmark_group(name);
        group.sample_size(10);
        let mut y = Array3::zeros((64, 128, 128));
        let mut dx = Array3::zeros(dim);
        let mut saved = Saved::default();
        group.throughput(Throughput::Elements(x.len() as u64));
        group.bench_function("cpu/forward_64x256x256", |b| {
            b.iter(|| {
                layer
                    .forward(black_box(x.view()), y.view_mut(), Some(&mut saved))
                    .expect("forward")
            })
        });
        group.bench_function("cpu/backward_64x256x256", |b| {
            b.iter(|| {
                layer
                    .backward_input(&saved, black_box(y.view()), dx.view_mut())
                    .expect("backward")
            })
        });
        group.finish();
    }
}

criterion_group!(benches, pool);
