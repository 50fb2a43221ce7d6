//! `gemm/cpu/<m>x<k>x<n>`: CpuGemm on VGG-19 conv shapes at 256² and the Gram matrix of conv1_1 (elements = FLOPs).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group};
use ndarray::Array2;
use tensor_ops::{CpuGemm, Gemm};

fn gemm(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemm");
    group.sample_size(10);
    // (name, m, k, n): conv3_1 and conv5_1 as GEMMs at 256², the Gram matrix F·Fᵀ of conv1_1 at 256², and a tiny case.
    for (name, m, k, n) in [
        ("tiny_8x9x8", 8, 9, 8),
        ("conv3_1_256x1152x4096", 256, 1152, 4096),
        ("conv5_1_512x4608x256", 512, 4608, 256),
        ("gram1_1_64x65536x64", 64, 65536, 64),
    ] {
        let a =
            Array2::from_shape_vec((m, k), crate::uniform_vec(1, m * k, -1.0, 1.0)).expect("sized");
        let b =
            Array2::from_shape_vec((k, n), crate::uniform_vec(2, k * n, -1.0, 1.0)).expect("sized");
        let mut out = Array2::<f32>::zeros((m, n));
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        group.bench_function(format!("cpu/{name}"), |bench| {
            bench.iter(|| {
                CpuGemm.gemm(
                    1.0,
                    black_box(a.view()),
                    black_box(b.view()),
                    0.0,
                    out.view_mut(),
                )
            });
        });
    }
    group.finish();
}

criterion_group!(benches, gemm);
