//! Plan expansion: cross products, folders, videos, ids that stay the same across runs and folders and
//! change with an input's bytes, labels of what varies, and errors that name the entry.

use std::path::{Path, PathBuf};

use super::*;
use crate::batch::file;
use crate::testing::TempDir;

/// A folder with a fake model, two contents, two styles, a folder of three frames and a batch file.
fn fixture(dir: &Path, batch: &str) -> PathBuf {
    std::fs::write(dir.join("w.mat"), b"not really a model").unwrap();
    for (name, bytes) in [
        ("a.png", "A"),
        ("b.png", "B"),
        ("s1.png", "S1"),
        ("s2.png", "S2"),
    ] {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    std::fs::create_dir_all(dir.join("clip")).unwrap();
    for i in [1, 2, 10] {
        std::fs::write(dir.join(format!("clip/f{i}.png")), format!("frame {i}")).unwrap();
    }
    let path = dir.join("batch.toml");
    std::fs::write(&path, batch).unwrap();
    path
}

fn plan_of(path: &Path) -> Result<Plan, file::BatchError> {
    let f = file::load(path).unwrap();
    expand(&f, &PlanOptions::default())
}

const SWEEP: &str = r#"
weights = "w.mat"
[defaults]
iterations = 5
[[job]]
contents = ["a.png", "b.png"]
styles = ["s1.png", "s2.png"]
vary = { beta = [10, 100] }
[[job]]
content = "a.png"
style = ["s1.png", "s2.png"]
"#;

#[test]
fn cross_products_expand_in_order_with_labels_of_what_varies() {
    let dir = TempDir::new("plan-sweep");
    let plan = plan_of(&fixture(dir.path(), SWEEP)).unwrap();
    assert_eq!(plan.jobs.len(), 2 * 2 * 2 + 1);
    assert_eq!(plan.out_dir, dir.path().join("batch-out"));
    let labels: Vec<&str> = plan.jobs.iter().map(|j| j.label.as_str()).collect();
    assert_eq!(labels[0], "content=a style=s1 beta=10");
    assert_eq!(labels[1], "content=a style=s1 beta=100");
    assert_eq!(labels[2], "content=a style=s2 beta=10");
    assert_eq!(labels[7], "content=b style=s2 beta=100");
    assert_eq!(
        labels[8], "content=a style=s1+s2",
        "no beta in the last job"
    );
    assert_eq!(plan.jobs[1].spec.objective.beta, 100.0);
    assert_eq!(plan.jobs[8].spec.styles.len(), 2);
    assert!(plan.jobs.iter().all(|j| j.spec.iterations == 5));
    let ids: std::collections::HashSet<_> = plan.jobs.iter().map(|j| j.id.clone()).collect();
    assert_eq!(ids.len(), plan.jobs.len(), "ids are distinct");
    for j in &plan.jobs {
        assert_eq!(j.dir(), plan.out_dir.join(j.id.as_str()));
        assert_eq!(j.spec.output, j.dir().join("result.png"));
        assert_eq!(
            j.spec.checkpoint_every,
            crate::batch::settings::DEFAULT_CHECKPOINT_EVERY
        );
    }
}

#[test]
fn ids_are_stable_across_runs_and_folders_and_follow_the_bytes() {
    let one = TempDir::new("plan-ids-1");
    let two = TempDir::new("plan-ids-2");
    let a = plan_of(&fixture(one.path(), SWEEP)).unwrap();
    let again = plan_of(&one.path().join("batch.toml")).unwrap();
    let b = plan_of(&fixture(two.path(), SWEEP)).unwrap();
    let ids = |p: &Plan| p.jobs.iter().map(|j| j.id.to_string()).collect::<Vec<_>>();
    assert_eq!(ids(&a), ids(&again));
    assert_eq!(
        ids(&a),
        ids(&b),
        "another folder, the same bytes: the same ids"
    );
    // The same ids as when this test was written: a change of the scheme must be deliberate.
    std::fs::write(two.path().join("b.png"), "B changed").unwrap();
    let c = plan_of(&two.path().join("batch.toml")).unwrap();
    for (k, (x, y)) in ids(&a).iter().zip(ids(&c)).enumerate() {
        let uses_b = a.jobs[k].spec.content.ends_with("b.png");
        assert_eq!(x != &y, uses_b, "job {k}: only the jobs of b.png change");
    }
    std::fs::write(two.path().join("w.mat"), "another model").unwrap();
    let d = plan_of(&two.path().join("batch.toml")).unwrap();
    assert!(
        ids(&c).iter().zip(ids(&d)).all(|(x, y)| x != &y),
        "the model is in every id"
    );
}

#[test]
fn folders_expand_to_their_images_and_videos_to_chained_frames() {
    let dir = TempDir::new("plan-folders");
    let batch = r#"
weights = "w.mat"
[[job]]
content_dir = "clip"
style = "s1.png"
[[job]]
name = "walk"
frames = "clip/f*.png"
style = "s2.png"
segment_frames = 2
"#;
    let plan = plan_of(&fixture(dir.path(), batch)).unwrap();
    assert_eq!(plan.jobs.len(), 6);
    let contents: Vec<_> = plan.jobs[..3]
        .iter()
        .map(|j| j.spec.content.clone())
        .collect();
    assert_eq!(
        contents,
        ["f1.png", "f2.png", "f10.png"].map(|n| dir.path().join("clip").join(n))
    );
    assert_eq!(plan.videos.len(), 1);
    let v = &plan.videos[0];
    assert_eq!(
        (v.name.as_str(), v.segments, v.jobs.clone()),
        ("walk", 2, vec![3, 4, 5])
    );
    assert_eq!(v.sequence_dir, plan.out_dir.join("walk"));
    let frames: Vec<&FrameLink> = plan.jobs[3..]
        .iter()
        .map(|j| j.frame.as_ref().unwrap())
        .collect();
    assert_eq!(frames[0].previous, None);
    assert_eq!(frames[1].previous, Some(3));
    assert_eq!(
        frames[2].previous, None,
        "a segment's first frame starts cold"
    );
    assert_eq!(
        plan.jobs[4].spec.init_image.as_deref(),
        Some(plan.jobs[3].spec.output.as_path())
    );
    assert_eq!(plan.jobs[5].spec.init_image, None);
    assert_eq!(plan.jobs[4].label, "video=walk frame=0002 style=s2");
}

#[test]
fn a_changed_frame_changes_its_id_and_every_warm_started_frame_after_it() {
    let dir = TempDir::new("plan-chain");
    let batch = "weights = \"w.mat\"\n[[job]]\nframes = \"clip/*.png\"\nstyle = \"s1.png\"\n";
    let path = fixture(dir.path(), batch);
    let before: Vec<_> = plan_of(&path)
        .unwrap()
        .jobs
        .iter()
        .map(|j| j.id.clone())
        .collect();
    std::fs::write(dir.path().join("clip/f2.png"), "frame 2 changed").unwrap();
    let after: Vec<_> = plan_of(&path)
        .unwrap()
        .jobs
        .iter()
        .map(|j| j.id.clone())
        .collect();
    assert_eq!(before[0], after[0]);
    assert_ne!(before[1], after[1]);
    assert_ne!(before[2], after[2], "frame 3 starts from frame 2's result");
}

#[test]
fn bad_settings_and_missing_inputs_name_the_entry() {
    let dir = TempDir::new("plan-errors");
    let check = |batch: &str, words: &[&str]| {
        let e = plan_of(&fixture(dir.path(), batch)).unwrap_err();
        for w in words {
            assert!(e.to_string().contains(w), "{e} lacks {w}");
        }
    };
    let head = "weights = \"w.mat\"\n[[job]]\ncontent = \"a.png\"\nstyle = \"s1.png\"\n";
    check(
        &format!("{head}noise_ratio = 0.3\ninit = \"content\"\n"),
        &["job 1", "noise_ratio applies only to init noise"],
    );
    check(
        &format!("{head}iterations = 0\n"),
        &["job 1", "iterations must be at least 1"],
    );
    check(
        &format!("{head}colour = 1\n"),
        &["job 1", "unknown field `colour`"],
    );
    check(
        "weights = \"w.mat\"\n[[job]]\ncontent = \"nope.png\"\nstyle = \"s1.png\"\n",
        &["job 1", "content", "nope.png"],
    );
    check(
        "weights = \"none.mat\"\n[[job]]\ncontent = \"a.png\"\nstyle = \"s1.png\"\n",
        &["weights", "none.mat"],
    );
    check(
        "weights = \"w.mat\"\n[[job]]\nframes = \"clip/*.jpg\"\nstyle = \"s1.png\"\n",
        &["job 1", "no file matches"],
    );
}

#[test]
fn the_same_job_twice_is_one_job_shared_by_the_videos_that_have_it() {
    let dir = TempDir::new("plan-shared");
    let batch = r#"
weights = "w.mat"
[[job]]
contents = ["a.png", "a.png"]
style = "s1.png"
[[job]]
name = "cold"
frames = "clip/*.png"
style = "s1.png"
warm_start = false
[[job]]
name = "warm"
frames = "clip/*.png"
style = "s1.png"
"#;
    let plan = plan_of(&fixture(dir.path(), batch)).unwrap();
    assert_eq!(
        plan.jobs.len(),
        1 + 3 + 2,
        "one still job, and the first frame once"
    );
    let (cold, warm) = (&plan.videos[0], &plan.videos[1]);
    assert_eq!(
        cold.jobs[0], warm.jobs[0],
        "both videos start with the same job"
    );
    assert_ne!(cold.jobs[1], warm.jobs[1]);
    assert_eq!(
        plan.jobs[warm.jobs[1]].frame.as_ref().unwrap().previous,
        Some(cold.jobs[0])
    );
}
