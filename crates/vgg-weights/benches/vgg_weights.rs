//! Benches of `vgg-weights`: decoding and converting MatConvNet models held in memory.
//! Throughput is in bytes of the stored file.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ndarray::{Array1, Array4};
use vgg_weights::mat::MatFile;
use vgg_weights::write::{Compression, to_bytes};
use vgg_weights::{Conv, Layer, LayerKind, Layout, LoadOptions, Pad, VggModel, from_mat_file};

/// A conv5_1-shaped layer (512 → 512, 3×3; 9.4 MB of f32) as the bytes of a MAT-file.
fn conv5_file(compression: Compression) -> Vec<u8> {
    let dir = std::env::temp_dir().join(format!("vgg-weights-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("conv5.mat");
    let weights = Array4::from_shape_fn((512, 512, 3, 3), |(k, c, y, x)| (k + c + y + x) as f32);
    let model = VggModel {
        layout: Layout::Current,
        mean_rgb: Some([1.0, 2.0, 3.0]),
        layers: vec![Layer {
            name: "conv5_1".into(),
            kind: LayerKind::Conv(Conv {
                weights,
                bias: Array1::zeros(512),
                stride: [1, 1],
                pad: Pad::uniform(1),
            }),
        }],
    };
    vgg_weights::write::write_simplenn(&path, &model, Layout::Current, compression).expect("write");
    let bytes = std::fs::read(&path).expect("read back");
    std::fs::remove_dir_all(&dir).expect("clean up");
    bytes
}

fn bench_load(c: &mut Criterion) {
    let mut group = c.benchmark_group("load");
    let fixtures = [
        ("fake_vgg19_beta16_plain", "fake_vgg19_beta16_plain.mat"),
        ("fake_vgg19_meta_zlib", "fake_vgg19_meta_zlib.mat"),
    ];
    for (name, file) in fixtures {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(file);
        let bytes = std::fs::read(path).expect("fixture");
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        let mat = MatFile::from_bytes(bytes).expect("fixture parses");
        group.bench_function(format!("{name}/all"), |b| {
            b.iter(|| from_mat_file(black_box(&mat), &LoadOptions::default()).expect("loads"))
        });
    }
    for (name, compression) in [("plain", Compression::None), ("zlib", Compression::Zlib)] {
        let bytes = conv5_file(compression);
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        let mat = MatFile::from_bytes(bytes).expect("parses");
        group.bench_function(format!("conv5_1_512x512x3x3/{name}"), |b| {
            b.iter(|| from_mat_file(black_box(&mat), &LoadOptions::default()).expect("loads"))
        });
    }
    group.finish();
}

fn bench_write(c: &mut Criterion) {
    let layers = vgg_weights::write::Array::cell_row(vec![vgg_weights::write::Array::Single {
        dims: vec![3, 3, 64, 64],
        data: (0..3 * 3 * 64 * 64).map(|i| i as f32).collect(),
    }]);
    c.bench_function("write/to_bytes_3x3x64x64/plain", |b| {
        b.iter(|| to_bytes(black_box(&[("layers", &layers)]), Compression::None).expect("writes"))
    });
}

criterion_group!(benches, bench_load, bench_write);
criterion_main!(benches);
