//! Benchmarks of tensor-ops: one `criterion_group!` per op in `benches/ops/<op>.rs`.
//!
//! Names are `<op>/<backend>/<shape>`. GEMM and convolution report `Throughput::Elements(2·m·n·k)`:
//! their "elements" are FLOPs, so criterion's `elem/s` reads as FLOP/s.

use criterion::criterion_main;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

mod ops {
    pub(crate) mod conv2d;
    pub(crate) mod gemm;
    pub(crate) mod pool;
    pub(crate) mod relu;
}

/// `n` values drawn uniformly from `[lo, hi)` with a seeded RNG (`rand` only, so that the benches
/// build from the published package).
pub(crate) fn uniform_vec(seed: u64, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

criterion_main!(
    ops::gemm::benches,
    ops::conv2d::benches,
    ops::relu::benches,
    ops::pool::benches
);
