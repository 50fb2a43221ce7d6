//! Replays the committed cargo-fuzz corpus of the checkpoint reader (`fuzz/corpus/checkpoint`): every
//! file gives a checkpoint or an error, never a panic, and the intact ones are the ones expected.

use std::path::{Path, PathBuf};

use nst_engine::checkpoint::Checkpoint;

#[test]
fn checkpoint_corpus_replays_without_panics() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/checkpoint");
    let mut names = Vec::new();
    let mut good = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if Checkpoint::from_bytes(&bytes, Path::new(&name)).is_ok() {
            good.push(name.clone());
        }
        names.push(name);
    }
    assert!(
        names.len() >= 10,
        "only {} corpus files in {}",
        names.len(),
        dir.display()
    );
    for intact in [
        "adam.json",
        "lbfgs.json",
        "stages-average.json",
        "format1.json",
    ] {
        assert!(
            good.iter().any(|g| g == intact),
            "{intact} should load: {good:?}"
        );
    }
    for broken in [
        "cut.json",
        "nan-pixel.json",
        "edited-iteration.json",
        "shape-overflow.json",
    ] {
        assert!(
            !good.iter().any(|g| g == broken),
            "{broken} must be refused"
        );
    }
}
