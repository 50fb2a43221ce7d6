//! Replays the committed cargo-fuzz corpus (`fuzz/corpus/mat_reader`) through the same calls as the
//! fuzz target, so that every input that once crashed stays fixed.

use std::path::PathBuf;

use crate::alloc::largest_allocation;
use crate::robustness::exercise;

#[test]
fn fuzz_corpus_replays_without_panics() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/mat_reader");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let (_, largest) = largest_allocation(|| exercise(&bytes));
        assert!(
            largest <= bytes.len() * vgg_weights::mat::MAX_ZLIB_RATIO as usize + (1 << 20),
            "{}: allocation of {largest} bytes",
            path.display()
        );
        n += 1;
    }
    assert!(n >= 10, "only {n} corpus files in {}", dir.display());
}
