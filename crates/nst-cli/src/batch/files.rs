//! Finding a batch's input files: the images of a folder and the frames matching a pattern, in
//! natural order (`frame2.png` before `frame10.png`).

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

/// Extensions of the images a folder entry takes (case-insensitive).
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "gif"];

/// The image files directly in `dir`, in natural order.
///
/// # Errors
/// A message naming the folder when it cannot be read or holds no image.
pub fn images_in(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut found = list(dir, |name| {
        Path::new(name)
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.as_str()))
    })?;
    if found.is_empty() {
        return Err(format!(
            "the folder {} holds no image ({})",
            dir.display(),
            IMAGE_EXTENSIONS.join(", ")
        ));
    }
    sort_naturally(&mut found);
    Ok(found)
}

/// The files matching `pattern` (`*` and `?` in the file name only), in natural order.
///
/// # Errors
/// A message naming the pattern when its folder cannot be read or nothing matches.
pub fn frames(pattern: &Path) -> Result<Vec<PathBuf>, String> {
    let dir = match pattern.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let glob = pattern
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut found = list(dir, |name| matches(glob.as_bytes(), name.as_bytes()))?;
    if found.is_empty() {
        return Err(format!("no file matches {}", pattern.display()));
    }
    sort_naturally(&mut found);
    Ok(found)
}

fn list(dir: &Path, keep: impl Fn(&str) -> bool) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read the folder {}: {e}", dir.display()))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read the folder {}: {e}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if keep(&name) && entry.path().is_file() {
            out.push(dir.join(name));
        }
    }
    Ok(out)
}

/// Whether `name` matches the glob `pat` (`*`: any run of characters, `?`: one character).
pub fn matches(pat: &[u8], name: &[u8]) -> bool {
    match (pat.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            matches(&pat[1..], name) || (!name.is_empty() && matches(pat, &name[1..]))
        }
        (Some(b'?'), Some(_)) => matches(&pat[1..], &name[1..]),
        (Some(p), Some(n)) if p == n => matches(&pat[1..], &name[1..]),
        _ => false,
    }
}

/// Sorts paths by file name in natural order (runs of digits compared as numbers).
pub fn sort_naturally(paths: &mut [PathBuf]) {
    paths.sort_by(|a, b| {
        let name = |p: &PathBuf| p.file_name().map(|n| n.to_string_lossy().into_owned());
        natural(&name(a).unwrap_or_default(), &name(b).unwrap_or_default()).then_with(|| a.cmp(b))
    });
}

/// Natural order: digit runs compare by value, everything else by character.
pub fn natural(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let (da, ra) = digits(a);
                let (db, rb) = digits(b);
                let (ta, tb) = (trim_zeros(da), trim_zeros(db));
                let by_value = ta.len().cmp(&tb.len()).then_with(|| ta.cmp(tb));
                if by_value != Ordering::Equal {
                    return by_value;
                }
                (a, b) = (ra, rb);
            }
            (Some(x), Some(y)) if x != y => return x.cmp(y),
            _ => (a, b) = (&a[1..], &b[1..]),
        }
    }
}

fn digits(s: &[u8]) -> (&[u8], &[u8]) {
    let n = s.iter().take_while(|c| c.is_ascii_digit()).count();
    s.split_at(n)
}

fn trim_zeros(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|c| **c == b'0').count();
    &s[n..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_compares_numbers_by_value() {
        let mut v: Vec<PathBuf> = ["f10.png", "f2.png", "f1.png", "f02b.png", "g.png"]
            .iter()
            .map(PathBuf::from)
            .collect();
        sort_naturally(&mut v);
        let names: Vec<_> = v.iter().map(|p| p.to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["f1.png", "f2.png", "f02b.png", "f10.png", "g.png"]);
    }

    #[test]
    fn globs_match_stars_and_question_marks() {
        assert!(matches(b"*.png", b"frame_0001.png"));
        assert!(matches(b"f???.png", b"f001.png"));
        assert!(!matches(b"f???.png", b"f0001.png"));
        assert!(!matches(b"*.png", b"frame.jpg"));
        assert!(matches(b"*", b""));
    }

    #[test]
    fn folders_and_patterns_list_in_order_and_name_what_is_missing() {
        let dir = crate::testing::TempDir::new("files-list");
        for n in ["3.png", "10.png", "1.PNG", "notes.txt"] {
            std::fs::write(dir.path().join(n), b"x").unwrap();
        }
        let imgs = images_in(dir.path()).unwrap();
        let names: Vec<_> = imgs
            .iter()
            .map(|p| p.file_name().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["1.PNG", "3.png", "10.png"]);
        let f = frames(&dir.path().join("*.png")).unwrap();
        assert_eq!(f.len(), 2, "{f:?}");
        let e = frames(&dir.path().join("*.jpg")).unwrap_err();
        assert!(e.contains("no file matches") && e.contains("*.jpg"), "{e}");
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        assert!(images_in(&empty).unwrap_err().contains("holds no image"));
    }
}
