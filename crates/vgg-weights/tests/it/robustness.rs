//! Truncated and byte-mutated copies of every fixture: each must give `Ok` or `Err`, never a panic,
//! and never one allocation far beyond the file's size.

use std::ops::ControlFlow;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use vgg_weights::mat::MatFile;
use vgg_weights::{LoadOptions, load_bytes};

use crate::alloc::largest_allocation;
use crate::data;

/// Every committed `.mat` fixture.
pub(crate) fn fixtures() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for dir in ["", "matlab-written"] {
        let mut entries: Vec<_> = std::fs::read_dir(data(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "mat"))
            .collect();
        entries.sort();
        for p in entries {
            out.push((
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            ));
        }
    }
    out
}

/// Reads every variable through the MAT reader, converting all numeric data, and the model through
/// `load_bytes`; returns whether anything succeeded. Must never panic.
pub(crate) fn exercise(bytes: &[u8]) -> bool {
    let mut any_ok = false;
    if let Ok(file) = MatFile::from_bytes(bytes.to_vec()) {
        for info in file.variables() {
            if let Ok(value) = file.decode_info(info) {
                any_ok = true;
                touch(&value);
            }
            // The streaming path, stopping half-way and going to the end.
            let half = info
                .dims
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .unwrap_or(0)
                / 2;
            let _ = file.visit_cell(&info.name, |i, v| {
                touch(&v);
                if i == half {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            });
            let _ = file.visit_cell(&info.name, |_, v| {
                touch(&v);
                ControlFlow::Continue(())
            });
        }
    }
    any_ok |= load_bytes(bytes.to_vec(), &LoadOptions::default()).is_ok();
    any_ok
}

fn touch(value: &vgg_weights::mat::Value) {
    use vgg_weights::mat::Value;
    match value {
        Value::Numeric(n) => {
            let _ = n.to_f64_vec();
            let _ = n.imag_to_f64_vec();
        }
        Value::Char(c) => {
            let _ = c.text();
            let _ = c.rows();
        }
        Value::Cell(c) => c.elems().iter().for_each(touch),
        Value::Struct(s) => {
            s.values().iter().for_each(touch);
            let _ = s.element(0).count();
        }
        _ => {}
    }
}

/// The same file with every top-level element wrapped in its own miCOMPRESSED element (little-endian
/// files only), so that byte mutations of plain files reach the decompressing code paths with valid
/// zlib streams. `None` when the file is not a little-endian Level-5 file.
pub(crate) fn recompress(bytes: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write as _;
    if bytes.len() < 128 || &bytes[126..128] != b"IM" {
        return None;
    }
    let mut out = bytes[..128].to_vec();
    let mut pos = 128;
    while pos + 8 <= bytes.len() {
        let size = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
        let end = (pos + 8).checked_add(size)?.min(bytes.len());
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&bytes[pos..end]).unwrap();
        let z = enc.finish().unwrap();
        out.extend_from_slice(&15u32.to_le_bytes());
        out.extend_from_slice(&(z.len() as u32).to_le_bytes());
        out.extend_from_slice(&z);
        pos = end.next_multiple_of(8);
    }
    Some(out)
}

/// Largest single allocation allowed while reading `len` bytes: the decompression bound (zlib's
/// ratio) on the file, plus slack for fixed-size buffers.
fn allocation_bound(len: usize) -> usize {
    len * vgg_weights::mat::MAX_ZLIB_RATIO as usize + (1 << 20)
}

#[test]
fn mutated_and_truncated_fixtures_never_panic_or_overallocate() {
    let mut rng = SmallRng::seed_from_u64(0x5eed_2026);
    let mut tried = 0usize;
    let mut recompressed_count = 0usize;
    let mut ok = 0usize;
    let mut worst_ratio = 0.0f64;
    for (name, bytes) in fixtures() {
        // Truncations at 40 positions (all of them for short files), including every header boundary.
        let mut cuts: Vec<usize> = (0..40).map(|_| rng.random_range(0..=bytes.len())).collect();
        cuts.extend(
            [0, 8, 127, 128, 129, 135, 136]
                .into_iter()
                .filter(|&c| c <= bytes.len()),
        );
        let mut variants: Vec<Vec<u8>> = cuts.into_iter().map(|c| bytes[..c].to_vec()).collect();
        // Byte mutations: 1 to 8 random bytes set to random values, biased to the first 512 bytes
        // where the tags and size fields are.
        for _ in 0..60 {
            let mut m = bytes.clone();
            for _ in 0..rng.random_range(1..=8) {
                let hi = if rng.random_bool(0.7) {
                    m.len().min(512)
                } else {
                    m.len()
                };
                let i = rng.random_range(0..hi);
                m[i] = match rng.random_range(0..4) {
                    0 => 0xff,
                    1 => 0,
                    2 => m[i] ^ (1 << rng.random_range(0..8)),
                    _ => rng.random(),
                };
            }
            variants.push(m);
        }
        // Mutated plain files, recompressed: mutations inside valid zlib streams.
        let recompressed: Vec<Vec<u8>> = variants
            .iter()
            .filter(|v| v.get(128..132).is_some_and(|t| t == 14u32.to_le_bytes()))
            .filter_map(|v| recompress(v))
            .collect();
        recompressed_count += recompressed.len();
        variants.extend(recompressed);
        for v in variants {
            let ((), largest) = largest_allocation(|| {
                ok += usize::from(exercise(&v));
            });
            // The reader copies the input once (`to_vec`) and may decompress up to the zlib bound.
            assert!(
                largest <= allocation_bound(v.len().max(1)),
                "{name}: a mutated copy of {} bytes made an allocation of {largest} bytes",
                v.len()
            );
            worst_ratio = worst_ratio.max(largest as f64 / v.len().max(4096) as f64);
            tried += 1;
        }
    }
    // 110 fixtures, about 107 variants each (fewer truncations of files under 136 bytes): 11,750,
    // plus 2,152 recompressed copies of the variants of uncompressed little-endian files.
    assert_eq!(
        (tried, recompressed_count),
        (13_902, 2_152),
        "the number of mutated files tried"
    );
    // Observed: the largest allocation stays within a small multiple of the file size (decompressed
    // fixtures are about 10 times their compressed size), far below the guaranteed bound above.
    assert!(
        worst_ratio < 16.0,
        "an allocation of {worst_ratio} times the file size"
    );
    // Mutations must leave some files readable, or the test would only exercise the header check.
    assert!(ok > tried / 10, "only {ok} of {tried} mutated files read");
}
