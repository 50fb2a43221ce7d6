//! Batch files: the forms of content and style, `vary`, the frames options, TOML and JSON alike, and
//! errors that name the file, the entry and the key.

use std::path::{Path, PathBuf};

use super::*;

const TOML: &str = r#"
out_dir = "out"
[defaults]
iterations = 30

[[job]]
name = "one"
content = "a.jpg"
style = ["s1.jpg", "s2.jpg"]
beta = 100

[[job]]
contents = ["a.jpg", "b.jpg"]
styles = ["s1.jpg", ["s1.jpg", "s2.jpg"]]
vary = { seed = [0, 1], alpha = [1, 10] }

[[job]]
content_dir = "photos"
style_dir = "paintings"

[[job]]
frames = "clip/*.png"
style = "s1.jpg"
segment_frames = 4
temporal_weight = 0.5
"#;

#[test]
fn toml_forms_are_read_with_paths_from_the_file_s_folder() {
    let f = parse(TOML, Path::new("dir/b.toml")).unwrap();
    assert_eq!(f.base, PathBuf::from("dir"));
    assert_eq!(f.out_dir, Some(PathBuf::from("dir/out")));
    assert_eq!(f.defaults["iterations"], 30);
    assert_eq!(f.jobs.len(), 4);
    let one = &f.jobs[0];
    assert_eq!(one.name.as_deref(), Some("one"));
    assert_eq!(one.content, ContentSource::Files(vec!["dir/a.jpg".into()]));
    assert_eq!(
        one.style,
        StyleSource::Sets(vec![vec!["dir/s1.jpg".into(), "dir/s2.jpg".into()]])
    );
    assert_eq!(one.settings["beta"], 100);
    assert!(!one.settings.contains_key("name"));
    let two = &f.jobs[1];
    assert_eq!(
        two.style,
        StyleSource::Sets(vec![
            vec!["dir/s1.jpg".into()],
            vec!["dir/s1.jpg".into(), "dir/s2.jpg".into()]
        ])
    );
    let keys: Vec<&str> = two.vary.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["alpha", "seed"]);
    assert_eq!(f.jobs[2].content, ContentSource::Dir("dir/photos".into()));
    assert_eq!(f.jobs[2].style, StyleSource::Dir("dir/paintings".into()));
    let ContentSource::Frames(fr) = &f.jobs[3].content else {
        panic!("frames expected")
    };
    assert_eq!(fr.pattern, PathBuf::from("dir/clip/*.png"));
    assert!(fr.warm_start);
    assert_eq!((fr.segment_frames, fr.temporal_weight), (4, 0.5));
    assert_eq!(fr.temporal_threshold, DEFAULT_TEMPORAL_THRESHOLD);
    assert!(f.jobs[3].settings.is_empty(), "{:?}", f.jobs[3].settings);
}

#[test]
fn json_files_mean_the_same_as_toml() {
    let json = r#"{"out_dir": "out", "defaults": {"iterations": 30},
        "job": [{"content": "a.jpg", "style": "s.jpg", "vary": {"beta": [1, 2]}}]}"#;
    let toml = "out_dir = \"out\"\n[defaults]\niterations = 30\n[[job]]\ncontent = \"a.jpg\"\nstyle = \"s.jpg\"\nvary = { beta = [1, 2] }\n";
    let a = parse(json, Path::new("b.json")).unwrap();
    let b = parse(toml, Path::new("b.toml")).unwrap();
    assert_eq!(a.jobs, b.jobs);
    assert_eq!(a.out_dir, Some(PathBuf::from("./out")));
}

#[track_caller]
fn check_error(text: &str, at: &str, words: &[&str]) {
    let e = parse(text, Path::new("x/batch.toml")).unwrap_err();
    assert_eq!(e.file, PathBuf::from("x/batch.toml"));
    assert_eq!(e.at, at, "{e}");
    for w in words {
        assert!(e.message.contains(w), "{e} lacks {w}");
    }
    assert!(e.to_string().starts_with("x/batch.toml: "), "{e}");
}

#[test]
fn mistakes_are_named_with_the_entry_and_key() {
    let job = |body: &str| format!("[[job]]\n{body}\n");
    check_error("jobs = 1\n", "the file", &["unknown key `jobs`"]);
    check_error("out_dir = \"o\"\n", "the file", &["no [[job]]"]);
    check_error("[[job\n", "the file", &[]);
    check_error(&job("style = \"s\""), "job 1", &["no content"]);
    check_error(
        &job("content = \"a\"\ncontents = [\"b\"]\nstyle = \"s\""),
        "job 1",
        &["content, contents"],
    );
    check_error(&job("content = \"a\""), "job 1", &["no style"]);
    check_error(
        &job("content = \"a\"\nstyle = \"s\"\nwarm_start = false"),
        "job 1",
        &["`warm_start` applies only to a video"],
    );
    check_error(
        &job("content = \"a\"\nstyle = \"s\"\nvary = { beta = 3 }"),
        "job 1",
        &["`vary.beta` must be a non-empty list"],
    );
    check_error(
        &job("content = \"a\"\nstyle = \"s\"\nname = \"a/b\""),
        "job 1",
        &["`name`"],
    );
    check_error(
        &job("frames = \"*/x.png\"\nstyle = \"s\""),
        "job 1",
        &["file name only"],
    );
    check_error(
        &job("frames = \"c/*.png\"\nstyle = \"s\"\nsegment_frames = 2.5"),
        "job 1",
        &["whole number"],
    );
    check_error(
        &format!(
            "{}{}",
            job("content = \"a\"\nstyle = \"s\""),
            job("content = 3\nstyle = \"s\"")
        ),
        "job 2",
        &["`content` must be a path"],
    );
    let e = parse("{}", Path::new("b.yaml")).unwrap_err();
    assert!(e.message.contains("*.toml or *.json"), "{e}");
}
