//! Fuzzes the MAT reader (every variable decoded and converted) and `load_bytes`.
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

fuzz_target!(|data: &[u8]| {
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
});
