//! The estimates grow with the size, and the suggested size fits the budget.

use ndarray::{Array1, Array4};
use vgg_weights::{Conv, Layer, Layout, Pad, Pool, PoolMethod};

use super::*;

fn model() -> VggModel {
    let conv = |name: &str, c_in, c_out| Layer {
        name: name.into(),
        kind: LayerKind::Conv(Conv {
            weights: Array4::zeros((c_out, c_in, 3, 3)),
            bias: Array1::zeros(c_out),
            stride: [1, 1],
            pad: Pad::uniform(1),
        }),
    };
    let pool = Layer {
        name: "pool1".into(),
        kind: LayerKind::Pool(Pool {
            method: PoolMethod::Max,
            size: [2, 2],
            stride: [2, 2],
            pad: Pad::default(),
        }),
    };
    VggModel {
        layout: Layout::Beta16,
        mean_rgb: None,
        layers: vec![
            conv("conv1_1", 3, 64),
            Layer {
                name: "relu1_1".into(),
                kind: LayerKind::Relu,
            },
            pool,
            conv("conv2_1", 64, 128),
        ],
    }
}

const TAPS: &[&str] = &["relu1_1", "conv2_1"];

#[test]
fn estimates_scale_with_the_image() {
    let m = model();
    let small = estimate(&m, (100, 100), (100, 100), OptimizerKind::Adam, TAPS);
    let big = estimate(&m, (200, 200), (200, 200), OptimizerKind::Adam, TAPS);
    assert!(big.peak_bytes > small.peak_bytes);
    // conv1_1 (27·64 per pixel) and conv2_1 (576·128 per pixel at a quarter of the pixels), ×2 each way, ×2 passes.
    let want = 2.0 * 2.0 * (100.0 * 100.0 * 27.0 * 64.0 + 50.0 * 50.0 * 576.0 * 128.0);
    assert!(
        (small.flops - want).abs() < 1e-6 * want,
        "{} vs {want}",
        small.flops
    );
    assert!(
        estimate(&m, (100, 100), (100, 100), OptimizerKind::Lbfgs, TAPS).peak_bytes
            > small.peak_bytes
    );
    let budget = small.peak_bytes + (big.peak_bytes - small.peak_bytes) / 2;
    let (h, w) = largest_fitting(
        &m,
        (200, 200),
        (200, 200),
        OptimizerKind::Adam,
        TAPS,
        budget,
    )
    .unwrap();
    assert!(h < 200 && h > 100 && h == w, "{h}x{w}");
    assert!(estimate(&m, (h, w), (h, w), OptimizerKind::Adam, TAPS).peak_bytes <= budget);
    assert_eq!(
        largest_fitting(&m, (200, 200), (200, 200), OptimizerKind::Adam, TAPS, 1),
        None
    );
    assert_eq!(human_bytes(310_000_000), "310 MB");
    assert_eq!(human_bytes(1_500_000_000), "1.5 GB");
}

/// The style images' walk counts when a style image is much larger than the generated one: two
/// buffers of its largest activation against the iterations' working set.
#[test]
fn a_large_style_image_raises_the_estimate() {
    let m = model();
    let same = estimate(&m, (100, 100), (100, 100), OptimizerKind::Adam, TAPS);
    let none = estimate(&m, (100, 100), (0, 0), OptimizerKind::Adam, TAPS);
    assert_eq!(
        same, none,
        "a style of the working size fits in the iterations' memory"
    );
    let big = estimate(&m, (100, 100), (200, 200), OptimizerKind::Adam, TAPS);
    // conv1_1's output of the 200×200 style image, twice, in bytes.
    let walk = 2 * 64 * 40_000 * 4;
    assert!(big.peak_bytes > walk, "{} vs {walk}", big.peak_bytes);
    assert!(big.peak_bytes > same.peak_bytes);
    let fit = largest_fitting(
        &m,
        (100, 100),
        (200, 200),
        OptimizerKind::Adam,
        TAPS,
        same.peak_bytes,
    );
    assert!(fit.is_some_and(|(h, _)| h < 100), "{fit:?}");
    // A style image 40 times the generated one walks in bands: 256 rows and the halo (2 + 1 + 4
    // rows here) at a time, not all 4000.
    let tall = estimate(&m, (100, 100), (4000, 100), OptimizerKind::Adam, TAPS);
    let whole_walk = 2 * 64 * 400_000 * 4;
    let band_walk = 2 * 64 * 263 * 100 * 4;
    assert!(tall.peak_bytes < whole_walk, "{}", tall.peak_bytes);
    assert!(
        tall.peak_bytes > band_walk + 24 * 400_000,
        "{}",
        tall.peak_bytes
    );
}

#[test]
fn reserve_check_refuses_what_the_allocator_cannot_give() {
    assert!(reserve_check(1 << 20).is_ok());
    // 2^60 bytes pass Rust's capacity check (below isize::MAX) but exceed any x86-64 address space
    // (47 bits of user space), so the allocator itself refuses: an error, not an abort.
    let err = reserve_check(1 << 60).unwrap_err();
    assert!(err.contains("memory allocation failed"), "{err}");
    // Beyond isize::MAX, Rust's own check refuses.
    assert!(reserve_check(u64::MAX / 2).is_err());
}
