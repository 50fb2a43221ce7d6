//! Benchmarks of tensor-ops (filled in by issue 3).
fn main() {}
