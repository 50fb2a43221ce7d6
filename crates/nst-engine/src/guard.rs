//! What keeps a run from destroying a picture: no output may be one of the inputs (compared as files,
//! so that links and other spellings do not slip through), and a run owns its output folder through a
//! lock file while it runs.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::spec::RunSpec;
use crate::{Error, Result};

/// The lock file's name inside the output folder.
pub const LOCK_FILE: &str = ".nst.lock";

/// Refuses a spec whose outputs (the result, its run record, the checkpoint, the metrics, the
/// animation, the plot, an intermediate image's name) are the same file as one of its inputs (the
/// content, a style, the start image, the weights).
///
/// # Errors
/// [`Error::Spec`] naming the output's flag and the input's.
pub fn check_outputs_are_not_inputs(spec: &RunSpec) -> Result<()> {
    let mut inputs: Vec<(&str, &Path)> =
        vec![("--content", &spec.content), ("--weights", &spec.weights)];
    inputs.extend(spec.styles.iter().map(|s| ("--style", s.as_path())));
    if let Some(p) = &spec.init_image {
        inputs.push(("--init-image", p));
    }
    inputs.extend(
        spec.style_masks
            .iter()
            .map(|p| ("--style-mask", p.as_path())),
    );
    inputs.extend(
        spec.style_image_masks
            .iter()
            .map(|p| ("--style-image-mask", p.as_path())),
    );
    if let Some(p) = &spec.content_mask {
        inputs.push(("--content-mask", p));
    }
    let record = spec.output.with_extension("run.json");
    let checkpoint = spec.out_dir.join(crate::checkpoint::FILE_NAME);
    let mut outputs: Vec<(&str, &Path)> = vec![
        ("--output", &spec.output),
        ("the run record beside --output", &record),
        ("the checkpoint in --out-dir", &checkpoint),
    ];
    for (flag, p) in [
        ("--metrics", &spec.metrics),
        ("--animate", &spec.animate),
        ("--plot", &spec.plot),
    ] {
        if let Some(p) = p {
            outputs.push((flag, p));
        }
    }
    for (in_flag, input) in &inputs {
        if let Some((out_flag, _)) = outputs.iter().find(|(_, o)| same_file(input, o)) {
            return Err(Error::Spec(format!(
                "{out_flag} would overwrite the input {} ({in_flag}): choose another output",
                input.display()
            )));
        }
        if is_intermediate_image_in(input, &spec.out_dir) {
            return Err(Error::Spec(format!(
                "the input {} ({in_flag}) is named like an intermediate image of --out-dir {}, which the run overwrites: move it or choose another --out-dir",
                input.display(),
                spec.out_dir.display()
            )));
        }
    }
    Ok(())
}

/// Whether two paths name the same existing file (device and inode on Unix, canonical paths elsewhere).
/// A path that does not exist is no input's file.
fn same_file(a: &Path, b: &Path) -> bool {
    let (Ok(ma), Ok(mb)) = (fs::metadata(a), fs::metadata(b)) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        let _ = (&ma, &mb);
        ma.dev() == mb.dev() && ma.ino() == mb.ino()
    }
    #[cfg(not(unix))]
    {
        let _ = (ma, mb);
        matches!((fs::canonicalize(a), fs::canonicalize(b)), (Ok(x), Ok(y)) if x == y)
    }
}

/// Whether `input` is an `iter-NNNN.png` file in `out_dir`.
fn is_intermediate_image_in(input: &Path, out_dir: &Path) -> bool {
    let name = input.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let looks = name.starts_with("iter-") && name.ends_with(".png");
    let (Some(parent), Ok(dir)) = (input.parent(), fs::canonicalize(out_dir)) else {
        return false;
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    looks && fs::canonicalize(parent).is_ok_and(|p| p == dir)
}

/// The output folder held by this run: `.nst.lock` with the owner's process id, created atomically;
/// removed when dropped.
#[derive(Debug)]
pub struct FolderLock {
    path: PathBuf,
}

impl FolderLock {
    /// Takes the lock of `dir` (which must exist). A lock left by a process that no longer runs is taken
    /// over.
    ///
    /// # Errors
    /// [`Error::Busy`] when a running process holds it; [`Error::OutDir`]-like I/O errors as
    /// [`Error::Spec`].
    pub fn acquire(dir: &Path) -> Result<FolderLock> {
        let path = dir.join(LOCK_FILE);
        for _ in 0..2 {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    let _ = writeln!(f, "{}", std::process::id());
                    let _ = f.sync_all();
                    return Ok(FolderLock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = fs::read_to_string(&path).unwrap_or_default();
                    let pid: Option<u32> = holder.trim().parse().ok();
                    match pid {
                        Some(pid) if process_alive(pid) => {
                            return Err(Error::Busy {
                                dir: dir.to_owned(),
                                pid,
                            });
                        }
                        // A dead owner (or a file torn before its pid was written): take it over.
                        _ => {
                            let _ = fs::remove_file(&path);
                        }
                    }
                }
                Err(e) => {
                    return Err(Error::Spec(format!(
                        "cannot create the lock file {}: {e}",
                        path.display()
                    )));
                }
            }
        }
        Err(Error::Spec(format!(
            "another process keeps taking the lock {}",
            path.display()
        )))
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for FolderLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Whether a process with this id runs now (on Linux, `/proc/<pid>` exists; elsewhere assume it does,
/// so that a lock is never stolen from a live run).
fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let proc = Path::new("/proc");
    if proc.join("self").exists() {
        proc.join(pid.to_string()).exists()
    } else {
        true
    }
}

/// Creates `dir`'s lock file for tests as if a process with `pid` held it.
#[cfg(test)]
pub(crate) fn plant_lock(dir: &Path, pid: u32) {
    let mut f = fs::File::create(dir.join(LOCK_FILE)).expect("the test folder is writable");
    writeln!(f, "{pid}").expect("the test folder is writable");
}

#[cfg(test)]
mod tests;
