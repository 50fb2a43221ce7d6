//! Benchmarks of nst-costs: the Gram matrix and the style gradient at VGG-19's style layers for a
//! 400×300 image, plus the content and total-variation costs at that size.
//!
//! Run with `cargo bench -p nst-costs --bench nst_costs`. Throughput is in nominal FLOPs ("elements"
//! = FLOPs): `2·C²·M` for the Gram, `4·C²·M` for the full style cost (Gram + gradient GEMM), counted
//! as for a full `A·Aᵀ` even though the Gram computes only its upper block triangle.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ndarray::{Array2, Array3};
use nst_costs::{
    ContentNorm, StyleNorm, StyleScratch, TvKind, content_loss_accumulate, gram, gram_into,
    style_layer_loss_accumulate, total_variation_accumulate,
};
use tensor_ops::CpuGemm;

/// VGG-19 style layers at 400×300 (W×H): `(name, C, H, W)`.
const LAYERS: [(&str, usize, usize, usize); 5] = [
    ("conv1_1", 64, 300, 400),
    ("conv2_1", 128, 150, 200),
    ("conv3_1", 256, 75, 100),
    ("conv4_1", 512, 37, 50),
    ("conv5_1", 512, 18, 25),
];

/// Deterministic, ReLU-like non-negative features.
fn features(c: usize, h: usize, w: usize) -> Array3<f32> {
    Array3::from_shape_fn((c, h, w), |(k, i, j)| {
        (((k * 7919 + i * 104_729 + j * 1_299_709) % 1000) as f32) * 1e-3
    })
}

fn bench_gram(cr: &mut Criterion) {
    let mut group = cr.benchmark_group("gram (elements = FLOPs)");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for (name, c, h, w) in LAYERS {
        let f = features(c, h, w);
        let mut out = Array2::<f32>::zeros((c, c));
        group.throughput(Throughput::Elements((2 * c * c * h * w) as u64));
        group.bench_function(
            BenchmarkId::new("cpu", format!("{name}_{c}x{h}x{w}")),
            |b| b.iter(|| gram_into(black_box(f.view()), &CpuGemm, out.view_mut()).unwrap()),
        );
    }
    group.finish();
}

fn bench_style(cr: &mut Criterion) {
    let mut group = cr.benchmark_group("style_layer_loss (elements = FLOPs)");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for (name, c, h, w) in LAYERS {
        let f = features(c, h, w);
        let target = gram(features(c, h, w).mapv(|v| 1.0 - v).view(), &CpuGemm);
        let mut grad = Array3::<f32>::zeros((c, h, w));
        let mut scratch = StyleScratch::new();
        group.throughput(Throughput::Elements((4 * c * c * h * w) as u64));
        group.bench_function(
            BenchmarkId::new("cpu", format!("{name}_{c}x{h}x{w}")),
            |b| {
                b.iter(|| {
                    style_layer_loss_accumulate(
                        black_box(f.view()),
                        target.view(),
                        StyleNorm::Gatys2016,
                        &CpuGemm,
                        &mut scratch,
                        grad.view_mut(),
                    )
                    .unwrap()
                })
            },
        );
    }
    group.finish();
}

fn bench_content_and_tv(cr: &mut Criterion) {
    let mut group = cr.benchmark_group("elementwise costs");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    // conv4_2, Gatys et al.'s content layer, at 400×300.
    let a = features(512, 37, 50);
    let t = a.mapv(|v| v * 0.5);
    let mut grad = Array3::<f32>::zeros(a.raw_dim());
    group.bench_function("content_loss/cpu/conv4_2_512x37x50", |b| {
        b.iter(|| {
            content_loss_accumulate(
                black_box(a.view()),
                t.view(),
                ContentNorm::QuarterMean,
                grad.view_mut(),
            )
            .unwrap()
        })
    });
    let img = features(3, 300, 400).mapv(|v| v * 255.0);
    let mut grad = Array3::<f32>::zeros(img.raw_dim());
    for (label, kind) in [
        ("squared", TvKind::Squared),
        ("abs", TvKind::Abs { eps: 1e-3 }),
    ] {
        group.bench_function(format!("total_variation/{label}/3x300x400"), |b| {
            b.iter(|| {
                total_variation_accumulate(black_box(img.view()), kind, grad.view_mut()).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_gram, bench_style, bench_content_and_tv);
criterion_main!(benches);
