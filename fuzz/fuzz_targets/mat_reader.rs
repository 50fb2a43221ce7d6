//! Fuzzes the MAT reader (every variable decoded and converted, cells walked with `visit_cell`) and
//! `load_bytes`, on the input and on the input with each variable recompressed.
//! Run: `cargo fuzz run mat_reader -s none` (from the repository root; works on stable).

#![no_main]

use std::ops::ControlFlow;

use libfuzzer_sys::fuzz_target;
use vgg_weights::LoadOptions;
use vgg_weights::mat::{MatFile, Value};

fn touch(value: &Value) {
    match value {
        Value::Numeric(n) => {
            let _ = n.to_f64_vec();
            let _ = n.to_f32_vec();
            let _ = n.imag_to_f64_vec();
            let _ = n.scalar();
        }
        Value::Char(c) => {
            let _ = c.text();
            let _ = c.rows();
        }
        Value::Cell(c) => c.elems().iter().for_each(touch),
        Value::Struct(s) => {
            s.values().iter().for_each(touch);
            let _ = s.element(0).count();
            let _ = s.field_names().first().and_then(|f| s.field(0, f));
        }
        _ => {}
    }
}

/// The same file with every top-level element wrapped in its own miCOMPRESSED element (little-endian
/// files only), so that mutations of plain files reach the decompressing paths with valid zlib streams.
fn recompress(bytes: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write as _;
    if bytes.len() < 128 || &bytes[126..128] != b"IM" || bytes.get(128..132)? != 14u32.to_le_bytes() {
        return None;
    }
    let mut out = bytes[..128].to_vec();
    let mut pos = 128;
    while pos + 8 <= bytes.len() {
        let size = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().ok()?) as usize;
        let end = (pos + 8).checked_add(size)?.min(bytes.len());
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&bytes[pos..end]).ok()?;
        let z = enc.finish().ok()?;
        out.extend_from_slice(&15u32.to_le_bytes());
        out.extend_from_slice(&u32::try_from(z.len()).ok()?.to_le_bytes());
        out.extend_from_slice(&z);
        pos = end.next_multiple_of(8);
    }
    Some(out)
}

fn exercise(data: &[u8]) {
    if let Ok(file) = MatFile::from_bytes(data.to_vec()) {
        for info in file.variables() {
            if let Ok(value) = file.decode_info(info) {
                touch(&value);
            }
            let half = info.dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).unwrap_or(0) / 2;
            let _ = file.visit_cell(&info.name, |i, v| {
                touch(&v);
                if i == half { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
            });
        }
    }
    let _ = vgg_weights::load_bytes(data.to_vec(), &LoadOptions::default());
    let _ = vgg_weights::load_bytes(data.to_vec(), &LoadOptions::up_to("conv1_1"));
}

fuzz_target!(|data: &[u8]| {
    exercise(data);
    if let Some(z) = recompress(data) {
        exercise(&z);
    }
});
