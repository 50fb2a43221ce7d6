//! Outputs that are inputs, and the output folder's lock.

use super::*;
use crate::testing::TempDir;

#[test]
fn an_output_that_is_an_input_is_refused_through_links_too() {
    let tmp = TempDir::new("guard-same-file");
    let dir = tmp.path();
    std::fs::write(dir.join("c.png"), b"content").unwrap();
    std::fs::write(dir.join("s.png"), b"style").unwrap();
    let mut spec = RunSpec::new(
        dir.join("c.png"),
        vec![dir.join("s.png")],
        dir.join("w.mat"),
    );
    spec.out_dir = dir.join("out");
    spec.output = dir.join("c.png");
    let err = check_outputs_are_not_inputs(&spec).unwrap_err().to_string();
    assert!(
        err.contains("--output") && err.contains("--content"),
        "{err}"
    );
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(dir.join("s.png"), dir.join("link.png")).unwrap();
        spec.output = dir.join("result.png");
        spec.plot = Some(dir.join("link.png"));
        let err = check_outputs_are_not_inputs(&spec).unwrap_err().to_string();
        assert!(err.contains("--plot") && err.contains("--style"), "{err}");
        spec.plot = None;
        std::fs::hard_link(dir.join("c.png"), dir.join("hard.png")).unwrap();
        spec.metrics = Some(dir.join("./hard.png"));
        let err = check_outputs_are_not_inputs(&spec).unwrap_err().to_string();
        assert!(err.contains("--metrics"), "{err}");
        spec.metrics = None;
    }
    spec.out_dir = dir.to_owned();
    spec.output = dir.join("result.png");
    std::fs::write(dir.join("iter-0020.png"), b"x").unwrap();
    spec.init_image = Some(dir.join("iter-0020.png"));
    let err = check_outputs_are_not_inputs(&spec).unwrap_err().to_string();
    assert!(
        err.contains("intermediate image") && err.contains("--init-image"),
        "{err}"
    );
    spec.init_image = None;
    assert!(check_outputs_are_not_inputs(&spec).is_ok());
}

#[test]
fn the_folder_lock_is_exclusive_released_on_drop_and_taken_from_the_dead() {
    let tmp = TempDir::new("guard-lock");
    let dir = tmp.path();
    let lock = FolderLock::acquire(dir).unwrap();
    let pid = std::fs::read_to_string(lock.path()).unwrap();
    assert_eq!(pid.trim(), std::process::id().to_string());
    match FolderLock::acquire(dir) {
        Err(Error::Busy { pid, .. }) => assert_eq!(pid, std::process::id()),
        other => panic!("a held lock must be refused: {other:?}"),
    }
    drop(lock);
    assert!(!dir.join(LOCK_FILE).exists(), "released on drop");
    // A process id that is not running (pid_max is at most 2^22 on Linux).
    plant_lock(dir, 4_194_303);
    let taken = FolderLock::acquire(dir).unwrap();
    let pid = std::fs::read_to_string(taken.path()).unwrap();
    assert_eq!(
        pid.trim(),
        std::process::id().to_string(),
        "a dead owner's lock is taken over"
    );
}
