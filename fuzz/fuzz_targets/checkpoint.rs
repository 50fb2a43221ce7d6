//! Fuzzes checkpoint parsing (`nst_engine::checkpoint::Checkpoint::from_bytes`): JSON of any shape,
//! checksums, shapes, bit patterns and optimizer states must give an error, never a panic. A parsed
//! checkpoint is saved and read back, which must give the same checkpoint.
//! Run: `cargo fuzz run checkpoint -s none` (from the repository root; works on stable).

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use nst_engine::checkpoint::Checkpoint;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.json");
    if let Ok(c) = Checkpoint::from_bytes(data, path) {
        let _ = c.image();
        let dir = std::env::temp_dir().join(format!("nst-fuzz-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let file = dir.join("checkpoint.json");
        c.save(&file).expect("a parsed checkpoint saves");
        let bytes = std::fs::read(&file).expect("just written");
        let back = Checkpoint::from_bytes(&bytes, path).expect("a saved checkpoint loads");
        assert_eq!(back.image_bits, c.image_bits);
        assert_eq!(back.iteration, c.iteration);
    }
});
