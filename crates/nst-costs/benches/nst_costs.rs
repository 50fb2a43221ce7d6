//! Benchmarks of nst-costs (filled in by issue 4).
fn main() {}
