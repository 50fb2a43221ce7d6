//! `relu/cpu/<shape>`: forward with mask and backward, on conv1_1's output at 256² (elements = activations).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group};
use ndarray::Array3;
use tensor_ops::{Layer, Relu, Saved};

fn relu(c: &mut Criterion) {
    let mut group = c.benchmark_group("relu");
    group.sample_size(10);
    let dim = (64, 256, 256);
    let x = Array3::from_shape_vec(dim, crate::uniform_vec(1, 64 * 256 * 256, -1.0, 1.0))
        .expect("sized");
    let layer = Relu::new("relu1_1");
    let mut y = Array3::zeros(dim);
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
                .backward_input(&saved, black_box(x.view()), dx.view_mut())
                .expect("backward")
        })
    });
    group.finish();
}

criterion_group!(benches, relu);
