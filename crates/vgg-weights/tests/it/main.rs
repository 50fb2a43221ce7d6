//! Integration tests of `vgg-weights`: one binary, with a counting global allocator.

mod alloc;
mod corpus;
mod fake_vgg;
mod matlab;
mod robustness;
mod roundtrip;
mod vgg;

use std::path::PathBuf;

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

/// Path of a committed fixture.
fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}
