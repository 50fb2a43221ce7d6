//! `nst batch` through the binary on the tiny synthetic model: a sweep run, skipped when done, its
//! status and contact sheet; a failing job recorded while the others finish; an interrupted job
//! resumed to the same image as an uninterrupted one; two workers on one folder running each job once;
//! shards; a video's frames warm-started, sequenced and measured for flicker; errors naming the file.

use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};

use image::{Rgb, RgbImage};
use serde_json::Value;

use crate::{fixture, interrupt_when, nst, nst_command, stderr, temp_dir};

/// Writes `batch.toml` in `dir` (after the fixture) and returns the common arguments.
fn setup(dir: &Path, batch: &str) -> PathBuf {
    let (weights, _, _) = fixture(dir);
    RgbImage::from_fn(36, 36, |x, y| Rgb([(x * 7) as u8, 200, (y * 7) as u8]))
        .save(dir.join("content2.png"))
        .unwrap();
    std::fs::write(dir.join("batch.toml"), batch).unwrap();
    weights
}

fn batch(dir: &Path, weights: &Path, args: &[&str]) -> Output {
    let mut all = vec!["batch", args[0], "batch.toml", "--weights"];
    let w = weights.display().to_string();
    all.push(&w);
    all.extend(["--threads", "1"]);
    all.extend(&args[1..]);
    nst(dir, &all)
}

fn spawn_batch(dir: &Path, weights: &Path, args: &[&str]) -> Child {
    let w = weights.display().to_string();
    let mut all = vec![
        "batch",
        "run",
        "batch.toml",
        "--weights",
        &w,
        "--threads",
        "1",
    ];
    all.extend(args);
    nst_command(dir, &all)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `nst batch status --json`.
fn status_json(dir: &Path, weights: &Path) -> (Option<i32>, Value) {
    let out = batch(dir, weights, &["status", "--json"]);
    let v: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
    (out.status.code(), v)
}

/// A job's folder from the status JSON (relative to where `nst` ran).
fn folder(dir: &Path, job: &Value) -> PathBuf {
    dir.join(job["folder"].as_str().unwrap())
}

fn job_json(dir: &Path, job: &Value) -> Value {
    serde_json::from_slice(&std::fs::read(folder(dir, job).join("job.json")).unwrap()).unwrap()
}

const SWEEP: &str = r#"
[defaults]
iterations = 6
print_every = 3
[[job]]
contents = ["content.png", "content2.png"]
style = "style.jpg"
vary = { beta = [10, 100] }
"#;

#[test]
fn a_sweep_runs_each_job_once_then_skips_them_and_reports_them() {
    let dir = temp_dir("batch-sweep");
    let w = setup(&dir, SWEEP);
    let plan = batch(&dir, &w, &["plan"]);
    assert!(plan.status.success(), "{}", stderr(&plan));
    let text = stdout(&plan);
    assert!(text.contains("4 jobs"), "{text}");
    assert!(text.contains("content=content2 beta=100"), "{text}");
    let out = batch(&dir, &w, &["run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).matches("done in").count(),
        4,
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("4 jobs: 4 done"), "{}", stdout(&out));
    let (code, v) = status_json(&dir, &w);
    assert_eq!(code, Some(0));
    for job in v["jobs"].as_array().unwrap() {
        assert_eq!(job["status"], "done", "{job}");
        assert!(
            text.contains(job["id"].as_str().unwrap()),
            "plan and status agree on ids"
        );
        let folder = folder(&dir, job);
        for f in [
            "result.png",
            "result.run.json",
            "job.json",
            "checkpoint.json",
            "iter-0003.png",
        ] {
            assert!(folder.join(f).is_file(), "{f} in {}", folder.display());
        }
        assert_eq!(folder.file_name().unwrap(), job["id"].as_str().unwrap());
        assert_eq!(job_json(&dir, job)["attempts"].as_array().unwrap().len(), 1);
        assert!(job["final"]["total"].as_f64().unwrap() > 0.0, "{job}");
    }
    let sheet = image::open(dir.join("batch-out/contact-sheet.png")).unwrap();
    assert!(
        sheet.width() > 2 * 256 && sheet.height() > 2 * 256,
        "a 2x2 grid"
    );
    let first = folder(&dir, &v["jobs"][0]);
    let before = std::fs::metadata(first.join("result.png"))
        .unwrap()
        .modified()
        .unwrap();
    let again = batch(&dir, &w, &["run"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(
        stderr(&again).matches("already done").count(),
        4,
        "{}",
        stderr(&again)
    );
    let after = std::fs::metadata(first.join("result.png"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after, "a done job is not run again");
    let sheet = batch(&dir, &w, &["sheet", "-o", "sheet.jpg", "--cell", "64"]);
    assert!(sheet.status.success(), "{}", stderr(&sheet));
    assert!(
        stdout(&sheet).contains("4 of 4 results"),
        "{}",
        stdout(&sheet)
    );
    assert!(dir.join("sheet.jpg").is_file());
}

#[test]
fn a_failing_job_is_recorded_and_the_others_finish() {
    let dir = temp_dir("batch-failure");
    // A picture that is not one, and a learning rate that makes the run diverge.
    let batch_toml = "[defaults]\niterations = 4\n[[job]]\ncontents = [\"content.png\", \"broken.png\", \"content2.png\"]\nstyle = \"style.jpg\"\n[[job]]\ncontent = \"content.png\"\nstyle = \"style.jpg\"\nlearning_rate = 1e30\n";
    let w = setup(&dir, batch_toml);
    std::fs::write(dir.join("broken.png"), "this is not a picture").unwrap();
    let out = batch(&dir, &w, &["run"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("2 of this worker's 4 jobs failed"),
        "{}",
        stderr(&out)
    );
    let (code, v) = status_json(&dir, &w);
    assert_eq!(code, Some(1));
    let statuses: Vec<&str> = v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["done", "failed", "done", "failed"]);
    let error = v["jobs"][1]["error"].as_str().unwrap();
    assert!(
        error.contains("broken.png") && error.contains("--content"),
        "{error}"
    );
    let diverged = v["jobs"][3]["error"].as_str().unwrap();
    assert!(diverged.contains("non-finite"), "{diverged}");
    let text = stdout(&batch(&dir, &w, &["status"]));
    assert!(
        text.contains("failed: ") && text.contains("broken.png"),
        "{text}"
    );
    // Not retried unless asked.
    let again = batch(&dir, &w, &["run"]);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        job_json(&dir, &v["jobs"][1])["attempts"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let retried = batch(&dir, &w, &["run", "--retry-failed"]);
    assert_eq!(retried.status.code(), Some(1));
    assert_eq!(
        job_json(&dir, &v["jobs"][1])["attempts"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn an_interrupted_job_resumes_to_the_image_of_an_uninterrupted_run() {
    let dir = temp_dir("batch-resume");
    let w = setup(
        &dir,
        "[defaults]\niterations = 600\nprint_every = 5\n[[job]]\ncontent = \"content.png\"\nstyle = \"style.jpg\"\n",
    );
    let said = interrupt_when(spawn_batch(&dir, &w, &[]), " iteration    5/").join("\n");
    assert!(said.contains("interrupted: checkpoint written"), "{said}");
    let (code, v) = status_json(&dir, &w);
    assert_eq!(
        (code, v["jobs"][0]["status"].as_str()),
        (Some(3), Some("interrupted"))
    );
    let out = batch(&dir, &w, &["run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("resuming at iteration"),
        "{}",
        stderr(&out)
    );
    let record = job_json(&dir, &v["jobs"][0]);
    let attempts = record["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["outcome"], "interrupted");
    assert!(attempts[1]["from_iteration"].as_u64().unwrap() >= 5);
    assert_eq!(
        (
            attempts[1]["outcome"].as_str(),
            attempts[1]["iterations"].as_u64()
        ),
        (Some("done"), Some(600))
    );
    // The same job in another folder, never interrupted: the same id, the same picture.
    let whole = batch(&dir, &w, &["run", "--out-dir", "whole"]);
    assert!(whole.status.success(), "{}", stderr(&whole));
    let id = v["jobs"][0]["id"].as_str().unwrap();
    // Pixels, not bytes: the PNG carries its settings, whose folders differ.
    let pixels = |d: &str| {
        image::open(dir.join(d).join(id).join("result.png"))
            .unwrap()
            .to_rgb8()
            .into_raw()
    };
    assert!(
        pixels("batch-out") == pixels("whole"),
        "resumed and uninterrupted results differ"
    );
}

#[test]
fn two_workers_on_one_folder_run_each_job_exactly_once() {
    let dir = temp_dir("batch-two-workers");
    let batch_toml = "[defaults]\niterations = 40\nprint_every = 0\n[[job]]\ncontents = [\"content.png\", \"content2.png\"]\nstyle = \"style.jpg\"\nvary = { seed = [1, 2, 3] }\n";
    let w = setup(&dir, batch_toml);
    let a = spawn_batch(&dir, &w, &[]);
    let b = spawn_batch(&dir, &w, &[]);
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success(), "{}", stderr(&a));
    assert!(b.status.success(), "{}", stderr(&b));
    let runs = stderr(&a).matches("done in").count() + stderr(&b).matches("done in").count();
    assert_eq!(runs, 6, "{}\n---\n{}", stderr(&a), stderr(&b));
    let (code, v) = status_json(&dir, &w);
    assert_eq!(code, Some(0));
    for job in v["jobs"].as_array().unwrap() {
        assert_eq!(
            (job["attempts"].as_u64(), job["completions"].as_u64()),
            (Some(1), Some(1)),
            "{job}"
        );
    }
}

#[test]
fn shards_split_the_batch_as_the_plan_says() {
    let dir = temp_dir("batch-shards");
    let batch_toml = "[defaults]\niterations = 3\nprint_every = 0\n[[job]]\ncontents = [\"content.png\", \"content2.png\"]\nstyle = \"style.jpg\"\nvary = { seed = [1, 2, 3] }\n";
    let w = setup(&dir, batch_toml);
    let plan = batch(&dir, &w, &["plan", "--json", "--shards", "2"]);
    let plan: Value = serde_json::from_slice(&plan.stdout).unwrap();
    let first = batch(&dir, &w, &["run", "--shard", "1/2"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let (code, v) = status_json(&dir, &w);
    let n_first = plan["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["shard"] == 1)
        .count();
    for (p, s) in plan["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .zip(v["jobs"].as_array().unwrap())
    {
        let want = if p["shard"] == 1 { "done" } else { "pending" };
        assert_eq!(s["status"], want, "{p}");
    }
    assert_eq!(code, Some(if n_first == 6 { 0 } else { 3 }));
    let mut second = nst_command(
        &dir,
        &[
            "batch",
            "run",
            "batch.toml",
            "--weights",
            &w.display().to_string(),
            "--threads",
            "1",
        ],
    );
    second
        .env("SLURM_ARRAY_TASK_ID", "1")
        .env("NST_SHARD_COUNT", "2");
    let second = second.output().unwrap();
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(
        stderr(&second).contains("SLURM_ARRAY_TASK_ID=1 of 2: shard 2/2"),
        "{}",
        stderr(&second)
    );
    assert_eq!(status_json(&dir, &w).0, Some(0));
}

/// Four frames: a window sliding over a picture.
fn frames(dir: &Path) {
    std::fs::create_dir_all(dir.join("clip")).unwrap();
    let big = RgbImage::from_fn(80, 40, |x, y| {
        Rgb([
            (x * 3) as u8,
            ((x * y) % 200) as u8,
            if (x / 10 + y / 10) % 2 == 0 { 30 } else { 220 },
        ])
    });
    for i in 0..4 {
        image::imageops::crop_imm(&big, i * 3, 0, 48, 40)
            .to_image()
            .save(dir.join(format!("clip/frame_{:02}.png", i + 1)))
            .unwrap();
    }
}

#[test]
fn video_frames_start_from_the_previous_result_and_report_flicker() {
    let dir = temp_dir("batch-video");
    let w = setup(
        &dir,
        "[defaults]\niterations = 5\nprint_every = 0\n[[job]]\nname = \"walk\"\nframes = \"clip/*.png\"\nstyle = \"style.jpg\"\nsegment_frames = 3\n[[job]]\nname = \"calm\"\nframes = \"clip/*.png\"\nstyle = \"style.jpg\"\ntemporal_weight = 50\ntemporal_threshold = 255\n",
    );
    frames(&dir);
    let out = batch(&dir, &w, &["run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for n in 1..=4 {
        assert!(
            dir.join(format!("batch-out/walk/{n:04}.png")).is_file(),
            "frame {n}"
        );
    }
    let (_, v) = status_json(&dir, &w);
    let jobs = v["jobs"].as_array().unwrap();
    let run_record = |k: usize| -> Value {
        let p = folder(&dir, &jobs[k]).join("result.run.json");
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    assert_eq!(run_record(0)["settings"]["init_image"], Value::Null);
    let prev = PathBuf::from(jobs[0]["folder"].as_str().unwrap()).join("result.png");
    assert_eq!(
        run_record(1)["settings"]["init_image"].as_str(),
        prev.to_str()
    );
    assert_eq!(
        run_record(3)["settings"]["init_image"],
        Value::Null,
        "frame 4 starts a segment"
    );
    // The second video starts with the same job as the first (same settings, same frame: one job,
    // copied into both sequences), then holds each frame close to the previous result.
    assert_eq!(jobs.len(), 7, "the shared first frame is one job");
    let t = &run_record(4)["settings"]["temporal"];
    let prev = Path::new(jobs[0]["folder"].as_str().unwrap()).join("result.png");
    assert_eq!(t["previous"].as_str(), prev.to_str(), "{t}");
    assert_eq!(
        (t["weight"].as_f64(), t["threshold"].as_f64()),
        (Some(50.0), Some(255.0))
    );
    assert_eq!(
        run_record(0)["settings"]["temporal"],
        Value::Null,
        "the first frame has none"
    );
    assert!(
        jobs[4]["final"]["temporal"].as_f64().unwrap() > 0.0,
        "{}",
        jobs[4]
    );
    for n in [1, 4] {
        assert!(
            dir.join(format!("batch-out/calm/{n:04}.png")).is_file(),
            "calm frame {n}"
        );
    }
    assert_eq!(v["videos"][1]["flicker"]["pairs"], 3);
    let f = &v["videos"][0]["flicker"];
    assert_eq!(f["pairs"], 3);
    assert!(
        f["inputs"].as_f64().unwrap() > 0.0 && f["results"].as_f64().unwrap() > 0.0,
        "{f}"
    );
    assert!(
        stdout(&out).contains("video walk: flicker"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn bad_batch_files_are_refused_naming_the_file_and_entry() {
    let dir = temp_dir("batch-errors");
    let w = setup(
        &dir,
        "[[job]]\ncontent = \"content.png\"\nstyle = \"style.jpg\"\nbeta = \"lots\"\n",
    );
    let out = batch(&dir, &w, &["run"]);
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(e.contains("batch.toml: job 1: invalid type"), "{e}");
    let missing = nst(&dir, &["batch", "plan", "nope.toml"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("nope.toml"),
        "{}",
        stderr(&missing)
    );
    let shard = batch(&dir, &w, &["run", "--shard", "3/2"]);
    assert_eq!(shard.status.code(), Some(2), "a usage error");
    assert!(
        stderr(&shard).contains("expected I/N"),
        "{}",
        stderr(&shard)
    );
}
