//! `nst inspect`.

use serde_json::Value;

use crate::{fixture, nst, stderr, temp_dir};

#[test]
fn inspect_lists_every_layer_in_our_layout() {
    let dir = temp_dir("inspect");
    let (w, _, _) = fixture(&dir);
    let w = w.display().to_string();
    let out = nst(&dir, &["inspect", &w]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("beta16"), "{text}");
    assert!(text.contains("123.680"), "{text}");
    assert!(
        text.contains("conv1_1") && text.contains("[6,3,3,3]"),
        "{text}"
    );
    assert!(text.contains("pool4") && text.contains("max 2x2"), "{text}");

    let out = nst(&dir, &["inspect", "--json", &w]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let layers = v["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 13 * 2 + 4);
    assert_eq!(layers[0]["weights"], serde_json::json!([6, 3, 3, 3]));
    assert_eq!(layers[0]["pad"], serde_json::json!([1, 1, 1, 1]));
    assert_eq!(layers[4]["type"], "pool");
    assert_eq!(layers[4]["stride"], serde_json::json!([2, 2]));
    assert_eq!(v["mean_rgb"].as_array().unwrap().len(), 3);
}

/// `inspect` and `bench` on bad input: a message naming the file or flag (each cause once), exit 1.
#[test]
fn inspect_and_bench_refuse_bad_input() {
    let dir = temp_dir("inspect-bad");
    let (w, _, _) = fixture(&dir);
    let w = w.display().to_string();
    let cases: [(&[&str], &str); 4] = [
        (
            &["bench", "--weights", &w, "--size", "100000x100000"],
            "larger than 16384 pixels on a side",
        ),
        (&["inspect", "nothere.mat"], "nothere.mat"),
        (
            &["bench", "--weights", &w, "--iterations", "0"],
            "--iterations must be at least 1",
        ),
        (&["bench", "--weights", &w, "--size", "0x4"], "--size"),
    ];
    for (args, needle) in cases {
        let out = nst(&dir, args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(err.matches("(os error").count() <= 1, "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
