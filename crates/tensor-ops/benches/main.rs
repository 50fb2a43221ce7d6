//! Benchmarks of tensor-ops: one `criterion_group!` per op in `benches/ops/<op>.rs`.
//!
//! Names are `<op>/<backend>/<shape>`. GEMM and convolution report `Throughput::Elements(2·m·n·k)`:
//! their "elements" are FLOPs, so criterion's `elem/s` reads as FLOP/s.

use criterion::criterion_main;

mod ops {
    pub(crate) mod conv2d;
    pub(crate) mod gemm;
    pub(crate) mod pool;
    pub(crate) mod relu;
}

criterion_main!(
    ops::gemm::benches,
    ops::conv2d::benches,
    ops::relu::benches,
    ops::pool::benches
);
