//! `nst batch` on a real Slurm cluster: a batch of small jobs on the tiny model submitted as an array
//! of 3 tasks; one task is cancelled while it runs a job and resubmitted alone; every job must end
//! done exactly once, and `nst batch status` must agree.
//!
//! Runs only with `NST_TEST_SLURM=1`, which `.ci/slurm-test` (the `slurm` leg of `cargo xtask test`)
//! sets after it has brought a one-node cluster up; then a missing cluster is a failure, not a skip.
//! Waiting on the scheduler is polling: the daemons run outside this process.

#![allow(
    clippy::print_stderr,
    reason = "the test says when it is skipped and what it measured"
)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use image::{Rgb, RgbImage};
use serde_json::Value;

use crate::{fixture, nst, stderr, temp_dir};

/// How long any one wait on the scheduler may take.
const PATIENCE: Duration = Duration::from_secs(300);

fn run(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Submits the batch as an array (`0-2`, or one index to resubmit); returns the array job's id.
fn submit(dir: &Path, array: &str) -> String {
    let nst = env!("CARGO_BIN_EXE_nst");
    let wrap = format!(
        "{nst} batch run batch.toml --weights tiny-vgg.mat --threads 1 --shard-count 3 --stale-after 60"
    );
    let out = run(
        "sbatch",
        &[
            "--parsable",
            &format!("--array={array}"),
            "--chdir",
            &dir.display().to_string(),
            "-o",
            &dir.join("slurm-%A_%a.out").display().to_string(),
            "--wrap",
            &wrap,
        ],
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Polls `until` every 0.2 s for at most [`PATIENCE`].
#[track_caller]
fn wait_for(what: &str, mut until: impl FnMut() -> bool) {
    let start = Instant::now();
    while !until() {
        assert!(start.elapsed() < PATIENCE, "waited too long for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn array_gone(job: &str) -> bool {
    let out = run("squeue", &["-h", "-j", job]);
    String::from_utf8_lossy(&out.stdout).trim().is_empty()
}

fn status(dir: &Path) -> (Option<i32>, Value) {
    let out = nst(
        dir,
        &[
            "batch",
            "status",
            "batch.toml",
            "--weights",
            "tiny-vgg.mat",
            "--json",
        ],
    );
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
    (out.status.code(), v)
}

/// The job `id` in `nst batch status --json`'s output.
fn find<'v>(v: &'v Value, id: &str) -> &'v Value {
    v["jobs"]
        .as_array()
        .and_then(|jobs| jobs.iter().find(|j| j["id"] == id))
        .unwrap_or_else(|| panic!("no job {id} in {v}"))
}

/// The array index of a task that is running a job under way, with that job's id.
fn running_task(dir: &Path) -> Option<(usize, String)> {
    let (_, v) = status(dir);
    v["jobs"].as_array()?.iter().find_map(|j| {
        let folder = dir.join(j["folder"].as_str()?);
        let record: Value =
            serde_json::from_slice(&std::fs::read(folder.join("job.json")).ok()?).ok()?;
        let shard = record["attempts"].as_array()?.last()?["shard"]
            .as_str()?
            .to_owned();
        let under_way = record["state"] == "running" && folder.join("iter-0020.png").is_file();
        let index: usize = shard.split('/').next()?.parse().ok()?;
        let id = j["id"].as_str()?.to_owned();
        under_way.then_some((index - 1, id))
    })
}

#[test]
fn slurm_array_runs_every_job_once_even_with_a_task_killed() {
    if std::env::var("NST_TEST_SLURM").as_deref() != Ok("1") {
        eprintln!(
            "SKIPPED slurm_array_runs_every_job_once_even_with_a_task_killed: NST_TEST_SLURM is not 1 (.ci/slurm-test sets it)"
        );
        return;
    }
    let dir = temp_dir("slurm-array");
    fixture(&dir);
    RgbImage::from_fn(36, 36, |x, y| Rgb([(x * 7) as u8, 200, (y * 7) as u8]))
        .save(dir.join("content2.png"))
        .unwrap();
    let batch = "[defaults]\niterations = 1500\nprint_every = 10\ncheckpoint_every = 50\n[[job]]\ncontents = [\"content.png\", \"content2.png\"]\nstyle = \"style.jpg\"\nvary = { seed = [1, 2, 3] }\n";
    std::fs::write(dir.join("batch.toml"), batch).unwrap();
    let started = Instant::now();
    let array = submit(&dir, "0-2");
    let mut victim = None;
    wait_for("a task running a job", || {
        victim = running_task(&dir);
        victim.is_some()
    });
    let (index, job) = victim.expect("found above");
    run("scancel", &[&format!("{array}_{index}")]);
    wait_for("the first array to end", || array_gone(&array));
    let show = run("scontrol", &["show", "job", &format!("{array}_{index}")]);
    let show = String::from_utf8_lossy(&show.stdout);
    assert!(show.contains("JobState=CANCELLED"), "{show}");
    let (code, v) = status(&dir);
    assert_eq!(
        code,
        Some(3),
        "a job of the cancelled task is not done: {v}"
    );
    let killed = find(&v, &job);
    assert_ne!(killed["status"], "done", "{killed}");

    let again = submit(&dir, &index.to_string());
    wait_for("the resubmitted task to end", || array_gone(&again));
    let (code, v) = status(&dir);
    assert_eq!(code, Some(0), "{v:#}");
    for j in v["jobs"].as_array().unwrap() {
        assert_eq!(j["status"], "done", "{j}");
        assert_eq!(j["completions"], 1, "finished exactly once: {j}");
    }
    let killed = find(&v, &job);
    assert!(killed["attempts"].as_u64().unwrap() >= 2, "{killed}");
    let log = std::fs::read_to_string(dir.join(format!("slurm-{again}_{index}.out"))).unwrap();
    assert!(
        log.contains(&format!(
            "SLURM_ARRAY_TASK_ID={index} of 3: shard {}/3",
            index + 1
        )),
        "{log}"
    );
    eprintln!(
        "slurm: 6 jobs as an array of 3, task {index} cancelled during job {job} and resubmitted: all done once in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
